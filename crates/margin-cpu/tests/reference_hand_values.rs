//! Hand-computed values of the reference on tiny inputs whose distances are integers, guarding
//! against a formula that is consistently wrong in every backend (which equivalence tests between
//! backends cannot catch).

use margin_core::{
    CircleConfig, ContrastiveConfig, CosFaceConfig, Distance, GeneralizedLiftedStructureConfig,
    LiftedStructureConfig, Loss, Metric, Mining, MultiSimilarityConfig, NPairConfig, NTXentConfig,
    ProxyAnchorConfig, ProxyNcaConfig, QuadrupletConfig, SupConConfig, TripletCenterConfig,
    TripletConfig,
};
use margin_cpu::reference::{RefOutput, evaluate, pairwise};

fn plain(distance: Distance) -> Metric {
    Metric::new(distance, false)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + b.abs())
}

fn assert_slice(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            close(*g, *w),
            "{what}[{i}]: got {g}, want {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

fn run(loss: Loss, x: &[f64], d: usize, labels: &[i64]) -> RefOutput {
    evaluate(&loss, x, labels.len(), d, labels, None).unwrap()
}

/// a = (0,0), b = (3,0) share label 0; c = (0,4) has label 1: |ab| = 3, |ac| = 4, |bc| = 5.
const TRIANGLE: [f64; 6] = [0.0, 0.0, 3.0, 0.0, 0.0, 4.0];
const TRIANGLE_LABELS: [i64; 3] = [0, 0, 1];

#[test]
fn pairwise_on_the_3_4_5_triangle() {
    let m = pairwise(plain(Distance::Euclidean), &TRIANGLE, 3, &TRIANGLE, 3, 2);
    assert_slice(
        &m,
        &[0.0, 3.0, 4.0, 3.0, 0.0, 5.0, 4.0, 5.0, 0.0],
        "euclidean",
    );
    let m = pairwise(
        plain(Distance::SquaredEuclidean),
        &TRIANGLE,
        3,
        &TRIANGLE,
        3,
        2,
    );
    assert_slice(
        &m,
        &[0.0, 9.0, 16.0, 9.0, 0.0, 25.0, 16.0, 25.0, 0.0],
        "squared",
    );
    let m = pairwise(plain(Distance::Dot), &TRIANGLE, 3, &TRIANGLE, 3, 2);
    assert_slice(&m, &[0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 16.0], "dot");
    // Cosine normalizes: b and c are orthogonal unit vectors after normalization; a stays 0.
    let m = pairwise(plain(Distance::Cosine), &TRIANGLE, 3, &TRIANGLE, 3, 2);
    assert_slice(&m, &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], "cosine");
}

#[test]
fn contrastive_on_the_triangle() {
    // Positive pairs (a,b), (b,a): relu(3 − 1) = 2 each, average 2.
    // Negative pairs: relu(4.5 − 4) = 0.5 for (a,c), (c,a); relu(4.5 − 5) = 0 for (b,c), (c,b):
    // AvgNonZero = 0.5. L = 2.5.
    let loss = Loss::Contrastive(ContrastiveConfig {
        metric: plain(Distance::Euclidean),
        pos_margin: 1.0,
        neg_margin: 4.5,
    });
    let out = run(loss, &TRIANGLE, 2, &TRIANGLE_LABELS);
    assert!(close(out.stats.loss, 2.5), "{}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [2, 2]);
    assert_eq!(out.stats.active, 4);
    // Each group: weight 1/2 per term, two ordered terms per pair → unit gradients of |·|.
    assert_slice(&out.grad, &[-1.0, 1.0, 1.0, 0.0, 0.0, -1.0], "grad");
}

#[test]
fn triplet_on_the_triangle_counts_only_strictly_positive_terms() {
    // (a, b, c): 3 − 4 + 2 = 1 (active); (b, a, c): 3 − 5 + 2 = 0 exactly (not active).
    let loss = Loss::Triplet(TripletConfig {
        metric: plain(Distance::Euclidean),
        margin: 2.0,
        smooth: false,
        mining: Mining::All,
    });
    let out = run(loss, &TRIANGLE, 2, &TRIANGLE_LABELS);
    assert!(close(out.stats.loss, 1.0));
    assert_eq!(out.stats.active_terms, [1, 0]);
    // ∂(|ab| − |ac|): a: (−1, 0) − (0, −1); b: (1, 0); c: −(0, 1).
    assert_slice(&out.grad, &[-1.0, 1.0, 1.0, 0.0, 0.0, -1.0], "grad");

    // Smooth: both triplets count; softplus(1) and softplus(0) = ln 2.
    let smooth = Loss::Triplet(TripletConfig {
        metric: plain(Distance::Euclidean),
        margin: 2.0,
        smooth: true,
        mining: Mining::All,
    });
    let out = run(smooth, &TRIANGLE, 2, &TRIANGLE_LABELS);
    let want = ((1f64.exp().ln_1p()) + 2f64.ln()) / 2.0;
    assert!(close(out.stats.loss, want), "{} vs {want}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [2, 0]);
}

#[test]
fn triplet_with_dot_similarity_flips_signs() {
    // x0 = (1,0), x1 = (1,1) label 0; x2 = (0,2) label 1. s01 = 1, s02 = 0, s12 = 2.
    // (0,1,2): s02 − s01 + 0.5 = −0.5; (1,0,2): s12 − s10 + 0.5 = 1.5. L = 1.5.
    let x = [1.0, 0.0, 1.0, 1.0, 0.0, 2.0];
    let loss = Loss::Triplet(TripletConfig {
        metric: plain(Distance::Dot),
        margin: 0.5,
        smooth: false,
        mining: Mining::All,
    });
    let out = run(loss, &x, 2, &[0, 0, 1]);
    assert!(close(out.stats.loss, 1.5));
    assert_eq!(out.stats.active_terms, [1, 0]);
    // v = x1·x2 − x1·x0: ∂x0 = −x1, ∂x1 = x2 − x0, ∂x2 = x1.
    assert_slice(&out.grad, &[-1.0, -1.0, -1.0, 2.0, 1.0, 1.0], "grad");
}

/// 1-D points: 0, 1, 5 (label 0) and 2, 10 (label 1).
const LINE: [f64; 5] = [0.0, 1.0, 5.0, 2.0, 10.0];
const LINE_LABELS: [i64; 5] = [0, 0, 0, 1, 1];

fn triplet_1d(margin: f64, mining: Mining) -> Loss {
    Loss::Triplet(TripletConfig {
        metric: plain(Distance::Euclidean),
        margin,
        smooth: false,
        mining,
    })
}

#[test]
fn batch_hard_mining_on_a_line() {
    // Per anchor (farthest positive, nearest negative): 0: (5, 2) → 3.05; 1: (4, 1) → 3.05;
    // 5: (5, 3) → 2.05; 2: (8, 1) → 7.05; 10: (8, 5) → 3.05. Mean 3.65.
    let out = run(triplet_1d(0.05, Mining::Hard), &LINE, 1, &LINE_LABELS);
    assert!(close(out.stats.loss, 3.65), "{}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [5, 0]);
}

#[test]
fn batch_hard_mining_breaks_ties_by_lowest_index() {
    // Anchor 0 has two positives at distance 1 (x1 = 1, x2 = −1): the tie goes to x1.
    let x = [0.0, 1.0, -1.0, 3.0];
    let out = run(triplet_1d(2.5, Mining::Hard), &x, 1, &[0, 0, 0, 1]);
    assert!(close(out.stats.loss, 3.5 / 3.0));
    assert_slice(&out.grad, &[0.0, 4.0 / 3.0, -1.0 / 3.0, -1.0], "grad");
}

#[test]
fn semihard_mining_on_a_line() {
    // 0 < d_an − d_ap <= 1.5: (0,1,3) gap 1, (5,1,10) gap 1, (10,2,1) gap 1; each v = 0.5.
    // Gaps of exactly 0, e.g. (1,0,2), are excluded.
    let out = run(triplet_1d(1.5, Mining::SemiHard), &LINE, 1, &LINE_LABELS);
    assert!(close(out.stats.loss, 0.5), "{}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [3, 0]);
}

#[test]
fn triplet_center_by_hand() {
    // x = (0,0) label 0; centers (1,0), (0,2), (−3,0): D = [1, 2, 3].
    let x = [0.0, 0.0];
    let c = [1.0, 0.0, 0.0, 2.0, -3.0, 0.0];
    let loss = |margin| {
        Loss::TripletCenter(TripletCenterConfig {
            metric: plain(Distance::Euclidean),
            margin,
        })
    };
    let out = evaluate(&loss(0.5), &x, 1, 2, &[0], Some((&c, 3))).unwrap();
    assert_eq!(out.stats.loss, 0.0);
    assert_eq!(out.stats.active, 0);
    // 1 − min(2, 3) + 1.5 = 0.5.
    let out = evaluate(&loss(1.5), &x, 1, 2, &[0], Some((&c, 3))).unwrap();
    assert!(close(out.stats.loss, 0.5));
    assert_eq!(out.stats.active_terms, [1, 0]);
    assert_slice(&out.grad, &[-1.0, 1.0], "grad x");
    let cg = out.center_grad.unwrap();
    assert_slice(&cg, &[1.0, 0.0, 0.0, -1.0, 0.0, 0.0], "grad c");
}

#[test]
fn proxy_anchor_by_hand() {
    // Raw dot, α = 2, margin 0.5. x = (1,0) label 0; proxies (0.5,0), (0,1): s = [0.5, 0].
    // Proxy 0: positive exponent 2 (0.5 − 0.5) = 0, no negative; proxy 1: negative exponent
    // 2 (0 + 0.5) = 1, no positive. L = ln 2 / 1 + ln(1 + e) / 2 (one proxy with a positive,
    // K = 2). ∂L/∂s00 = −α σ(0) = −1, ∂L/∂s01 = α σ(1) / 2 = σ(1).
    let x = [1.0, 0.0];
    let c = [0.5, 0.0, 0.0, 1.0];
    let loss = Loss::ProxyAnchor(ProxyAnchorConfig {
        metric: plain(Distance::Dot),
        margin: 0.5,
        alpha: 2.0,
    });
    let out = evaluate(&loss, &x, 1, 2, &[0], Some((&c, 2))).unwrap();
    let e = 1f64.exp();
    let sig = e / (1.0 + e);
    assert!(
        close(out.stats.loss, 2f64.ln() + e.ln_1p() / 2.0),
        "{}",
        out.stats.loss
    );
    assert_eq!(out.stats.active_terms, [1, 1]);
    assert_slice(&out.grad, &[-0.5, sig], "grad x");
    let cg = out.center_grad.unwrap();
    assert_slice(&cg, &[-1.0, 0.0, sig, 0.0], "grad c");
}

#[test]
fn cosface_by_hand() {
    // x = (1,0) label 0; class weights (1,0), (0,1): cos = [1, 0]. Scale 2, margin 0.5:
    // z = [2 (1 − 0.5), 0] = [1, 0], L = ln(e + 1) − 1 = ln(1 + e^−1). ∂L/∂z = [p0 − 1, p1] =
    // [−σ(−1), σ(−1)], ∂z/∂cos = 2; through the normalization only the off-axis parts remain.
    let x = [1.0, 0.0];
    let c = [1.0, 0.0, 0.0, 1.0];
    let loss = Loss::CosFace(CosFaceConfig {
        metric: plain(Distance::Cosine),
        margin: 0.5,
        scale: 2.0,
    });
    let out = evaluate(&loss, &x, 1, 2, &[0], Some((&c, 2))).unwrap();
    let sig = 1.0 / (1.0 + 1f64.exp());
    assert!(
        close(out.stats.loss, (-1f64).exp().ln_1p()),
        "{}",
        out.stats.loss
    );
    assert_eq!(out.stats.active_terms, [1, 0]);
    assert_slice(&out.grad, &[0.0, 2.0 * sig], "grad x");
    let cg = out.center_grad.unwrap();
    assert_slice(&cg, &[0.0, 0.0, 2.0 * sig, 0.0], "grad c");
}

#[test]
fn proxy_nca_drops_an_underflowing_sample() {
    // Raw squared euclidean, softmax scale 1000. Sample 0 = (0,0) sits on proxy 1 but has label 0:
    // log p = −1000 − ln(1 + e^−1000) < ln 2^−1075, so PML's float64 softmax gives it 0 and it is
    // left out. Sample 1 = (1,0) sits on its own proxy: log p = −ln(1 + e^−1000), counted.
    let x = [0.0, 0.0, 1.0, 0.0];
    let c = [1.0, 0.0, 0.0, 0.0];
    let loss = Loss::ProxyNca(ProxyNcaConfig {
        metric: plain(Distance::SquaredEuclidean),
        softmax_scale: 1000.0,
    });
    let out = evaluate(&loss, &x, 2, 2, &[0, 0], Some((&c, 2))).unwrap();
    assert_eq!(out.stats.active_terms, [1, 0]);
    assert!(out.stats.loss.abs() < 1e-300, "{}", out.stats.loss);
    assert!(out.grad.iter().all(|g| g.abs() < 1e-300), "{:?}", out.grad);
}

#[test]
fn n_pair_by_hand() {
    // Labels 0, 1, 0, 1: anchors rows 0, 1; positives rows 2, 3. S = identity (dot), so
    // L = logsumexp(1, 0) − 1 = ln(1 + e^−1).
    let x = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
    let loss = Loss::NPair(NPairConfig {
        metric: plain(Distance::Dot),
    });
    let out = run(loss, &x, 2, &[0, 1, 0, 1]);
    assert!(
        close(out.stats.loss, (-1f64).exp().ln_1p()),
        "{}",
        out.stats.loss
    );
    assert_eq!(out.stats.active_terms, [2, 0]);
}

#[test]
fn lifted_structure_by_hand() {
    // Pair (a, b): Neg = {|ac| = 4, |bc| = 5}; J = ln(e^−3 + e^−4) + 3 = ln(1 + e^−1).
    // Pair (b, a) has the same multiset. L = J² / 2.
    let loss = Loss::LiftedStructure(LiftedStructureConfig {
        metric: plain(Distance::Euclidean),
        neg_margin: 1.0,
        pos_margin: 0.0,
    });
    let out = run(loss, &TRIANGLE, 2, &TRIANGLE_LABELS);
    let j = (-1f64).exp().ln_1p();
    assert!(close(out.stats.loss, j * j / 2.0), "{}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [2, 0]);
}

#[test]
fn quadruplet_by_hand() {
    // 1-D, squared-euclidean: 0, 1 (label 0), 3 (label 1), 7 (label 2). d_ap = 1.
    // Term 1 (margin 5): only (1, 0, 3): 1 − 4 + 5 = 2.
    // Term 2 (margin2 20): (0,1) and (1,0) against (3,7) and (7,3), d = 16: 1 − 16 + 20 = 5.
    let loss = Loss::Quadruplet(QuadrupletConfig {
        metric: plain(Distance::SquaredEuclidean),
        margin: 5.0,
        margin2: 20.0,
        ..Default::default()
    });
    let out = run(loss, &[0.0, 1.0, 3.0, 7.0], 1, &[0, 0, 1, 2]);
    assert!(close(out.stats.loss, 7.0), "{}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [1, 4]);
}

/// `ln(1 + e^v)`.
fn lp1e(v: f64) -> f64 {
    v.exp().ln_1p()
}

#[test]
fn multi_similarity_on_the_triangle() {
    // Euclidean, α = β = 1, base = 3: positives e^{d − 3}, negatives e^{3 − d}.
    // a: ln(1 + e^0) + ln(1 + e^−1); b: ln(1 + e^0) + ln(1 + e^−2); c (no positive):
    // ln(1 + e^−1 + e^−2). Mean over the 3 anchors.
    let loss = Loss::MultiSimilarity(MultiSimilarityConfig {
        metric: plain(Distance::Euclidean),
        alpha: 1.0,
        beta: 1.0,
        base: 3.0,
    });
    let out = run(loss, &TRIANGLE, 2, &TRIANGLE_LABELS);
    let e = f64::exp;
    let want = (2.0 * 2f64.ln() + lp1e(-1.0) + lp1e(-2.0) + (1.0 + e(-1.0) + e(-2.0)).ln()) / 3.0;
    assert!(close(out.stats.loss, want), "{} vs {want}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [2, 3]);
}

#[test]
fn multi_similarity_with_dot_similarity() {
    // x0 = (1,0), x1 = (1,1) label 0; x2 = (0,2) label 1. s01 = 1, s02 = 0, s12 = 2.
    // α = 2, β = 1, base = 0.5: positives (1/2) ln(1 + e^{−2(s − 0.5)}), negatives
    // ln(1 + Σ e^{s − 0.5}).
    let loss = Loss::MultiSimilarity(MultiSimilarityConfig {
        metric: plain(Distance::Dot),
        alpha: 2.0,
        beta: 1.0,
        base: 0.5,
    });
    let out = run(loss, &[1.0, 0.0, 1.0, 1.0, 0.0, 2.0], 2, &[0, 0, 1]);
    let e = f64::exp;
    // Rows 0 and 1 each have the positive term (1/2) ln(1 + e^−1); row 0's negative is s02,
    // row 1's s12, row 2's both.
    let positives = 2.0 * lp1e(-1.0) / 2.0;
    let want = (positives + lp1e(-0.5) + lp1e(1.5) + (1.0 + e(-0.5) + e(1.5)).ln()) / 3.0;
    assert!(close(out.stats.loss, want), "{} vs {want}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [2, 3]);
}

#[test]
fn circle_by_hand() {
    // Unit vectors x0 = (1,0), x1 = (0.6,0.8) label 0; x2 = (0,1) label 1:
    // s01 = 0.6, s02 = 0, s12 = 0.8. m = 0.25, γ = 1.
    // Row 0: lp = −(1.25 − 0.6)(0.6 − 0.75) = 0.0975, ln = (0 + 0.25)(0 − 0.25) = −0.0625.
    // Row 1: lp = 0.0975, ln = (0.8 + 0.25)(0.8 − 0.25) = 0.5775. Row 2 has no positive.
    let loss = Loss::Circle(CircleConfig {
        metric: Metric::new(Distance::Cosine, true),
        margin: 0.25,
        gamma: 1.0,
    });
    let out = run(loss, &[1.0, 0.0, 0.6, 0.8, 0.0, 1.0], 2, &[0, 0, 1]);
    let want = (lp1e(0.0975 - 0.0625) + lp1e(0.0975 + 0.5775)) / 2.0;
    assert!(close(out.stats.loss, want), "{} vs {want}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [2, 0]);
}

#[test]
fn nt_xent_by_hand() {
    // Triangle, euclidean, τ = 0.5 (v = −d): (a,b): ln(e^−6 + e^−8) + 6 = ln(1 + e^−2);
    // (b,a): ln(e^−6 + e^−10) + 6 = ln(1 + e^−4). Mean over P = 2.
    let loss = |temperature| {
        Loss::NTXent(NTXentConfig {
            metric: plain(Distance::Euclidean),
            temperature,
        })
    };
    let out = run(loss(0.5), &TRIANGLE, 2, &TRIANGLE_LABELS);
    let want = (lp1e(-2.0) + lp1e(-4.0)) / 2.0;
    assert!(close(out.stats.loss, want), "{} vs {want}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [2, 0]);

    // 1-D points 0, 1, 2 (label 0) and 4 (label 1), τ = 1; one negative per anchor:
    // (0,1): ln(1 + e^−3); (0,2), (1,0), (1,2): ln(1 + e^−2); (2,0): ln 2; (2,1): ln(1 + e^−1).
    let out = run(loss(1.0), &[0.0, 1.0, 2.0, 4.0], 1, &[0, 0, 0, 1]);
    let want = (lp1e(-3.0) + 3.0 * lp1e(-2.0) + 2f64.ln() + lp1e(-1.0)) / 6.0;
    assert!(close(out.stats.loss, want), "{} vs {want}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [6, 0]);
}

#[test]
fn supcon_by_hand() {
    // 1-D points 0, 1, 2 (label 0) and 4 (label 1), euclidean, τ = 1 (v = −d):
    // row 0: ln(e^−1 + e^−2 + e^−4) + (1 + 2)/2; row 1: ln(2e^−1 + e^−3) + (1 + 1)/2;
    // row 2: ln(2e^−2 + e^−1) + (2 + 1)/2; row 3 has no positive. AvgNonZero over 3 rows.
    let loss = Loss::SupCon(SupConConfig {
        metric: plain(Distance::Euclidean),
        temperature: 1.0,
    });
    let out = run(loss, &[0.0, 1.0, 2.0, 4.0], 1, &[0, 0, 0, 1]);
    let e = f64::exp;
    let rows = [
        (e(-1.0) + e(-2.0) + e(-4.0)).ln() + 1.5,
        (2.0 * e(-1.0) + e(-3.0)).ln() + 1.0,
        (2.0 * e(-2.0) + e(-1.0)).ln() + 1.5,
    ];
    let want = rows.iter().sum::<f64>() / 3.0;
    assert!(close(out.stats.loss, want), "{} vs {want}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [3, 0]);
}

#[test]
fn generalized_lifted_structure_by_hand() {
    // Triangle, euclidean, pos_margin 0, neg_margin 1.5: a: 3 + (1.5 − 4) = 0.5 (active);
    // b: 3 + (1.5 − 5) = −0.5; c (no positive): LSE(−2.5, −3.5) < 0. L = 0.5 / 3.
    let loss = |pos_margin, neg_margin| {
        Loss::GeneralizedLiftedStructure(GeneralizedLiftedStructureConfig {
            metric: plain(Distance::Euclidean),
            neg_margin,
            pos_margin,
        })
    };
    let out = run(loss(0.0, 1.5), &TRIANGLE, 2, &TRIANGLE_LABELS);
    assert!(close(out.stats.loss, 0.5 / 3.0), "{}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [1, 0]);
    // W[a,b] = 1/3, W[a,c] = −1/3: a gets ((a−b)/3 − (a−c)/4)/3, b (b−a)/9, c −(c−a)/12.
    let third = 1.0 / 3.0;
    assert_slice(&out.grad, &[-third, third, third, 0.0, 0.0, -third], "grad");

    // One class: the empty negative LSE counts 0, so each row is relu(d) = 1 (as PML).
    let out = run(loss(0.0, 1.0), &[0.0, 1.0], 1, &[4, 4]);
    assert!(close(out.stats.loss, 1.0), "{}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [2, 0]);
}

#[test]
fn hard_quadruplet_by_hand() {
    // 1-D, squared-euclidean: 0, 1, 2 (label 0), 3 (label 1), 7 (label 2); margin 6,
    // margin2 20. The only pair avoiding label 0 is (3, 7), d = 16.
    // anchor 0: p* = 2 (4), n* = 3 (9): t1 = 1, t2 = 4 − 16 + 20 = 8;
    // anchor 1: positives 0 and 2 tie at 1, p* = 0; n* = 3 (4): t1 = 3, t2 = 5;
    // anchor 2: p* = 0 (4), n* = 3 (1): t1 = 9, t2 = 8. L = 13/3 + 21/3.
    let loss = Loss::Quadruplet(QuadrupletConfig {
        metric: plain(Distance::SquaredEuclidean),
        margin: 6.0,
        margin2: 20.0,
        mining: Mining::Hard,
    });
    let out = run(loss, &[0.0, 1.0, 2.0, 3.0, 7.0], 1, &[0, 0, 0, 1, 2]);
    assert!(close(out.stats.loss, 34.0 / 3.0), "{}", out.stats.loss);
    assert_eq!(out.stats.active_terms, [3, 3]);
    // W (each 1/3): +(0,2), +(1,0), +(2,0) twice (both terms), −(0,3), −(1,3), −(2,3), and
    // −(3,4) three times; the gradient of x_i is Σ_j (W_ij + W_ji) · 2(x_i − x_j).
    assert_slice(&out.grad, &[-14.0 / 3.0, 8.0 / 3.0, 6.0, 4.0, -8.0], "grad");
}
