//! Finite-difference checks of the f64 reference's gradients with a reference set
//! ([`evaluate_with_reference`]), for every loss that takes one × distance × normalization
//! (× mining × smooth for triplet, × mining for quadruplet), on random rectangles with and
//! without a self index; then the edge cases of the contract (M = 1, N = 1, no positives, no
//! negatives, a self index on every row, rule 2.3) and the square case as a special rectangle.
//!
//! As in `reference_gradcheck.rs`: central differences in f64 with a relative step of 1e-6, the
//! analytic and numeric gradients within 1e-5 in relative norm; a coordinate whose step crosses a
//! kink (a change of the active counts, or two-step and one-step differences that disagree) is
//! skipped, never compensated by a looser tolerance. Circle holds its relu factors constant (as
//! PML), so its check differentiates a surrogate with those factors frozen at the base point.
//!
//! The reference set is a constant: only the batch is perturbed. With a self index, the
//! reference holds near copies of the batch rows at their self columns (as in a cross-batch
//! memory, see [`rectangle`]), and one row has no copy.

use margin_core::{
    Backend, CircleConfig, ContrastiveConfig, Distance, Embeddings,
    GeneralizedLiftedStructureConfig, LiftedStructureConfig, Loss, LossInput, LossKind,
    MarginError, Metric, Mining, MultiSimilarityConfig, NO_SELF, NTXentConfig, QuadrupletConfig,
    ReferenceSet, SupConConfig, TripletConfig,
};
use margin_cpu::reference::{
    RefOutput, RefSet, ReferenceBackend, evaluate, evaluate_with_reference, pairwise,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

const REL_STEP: f64 = 1e-6;
const TOLERANCE: f64 = 1e-5;
/// Random rectangles per configuration and self-index mode.
const SEEDS: u64 = 3;
const N: usize = 5;
const M: usize = 7;
const D: usize = 3;
const CLASSES: usize = 3;

/// Which loss, before its margins are fitted to the data.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Contrastive,
    Triplet { mining: Mining, smooth: bool },
    Quadruplet { mining: Mining },
    LiftedStructure,
    MultiSimilarity,
    Circle,
    NTXent,
    SupCon,
    GeneralizedLiftedStructure,
}

fn variants() -> Vec<Variant> {
    let mut out = vec![Variant::Contrastive];
    for mining in [Mining::All, Mining::Hard, Mining::SemiHard] {
        for smooth in [false, true] {
            out.push(Variant::Triplet { mining, smooth });
        }
    }
    out.extend([
        Variant::Quadruplet {
            mining: Mining::All,
        },
        Variant::Quadruplet {
            mining: Mining::Hard,
        },
        Variant::LiftedStructure,
        Variant::MultiSimilarity,
        Variant::Circle,
        Variant::NTXent,
        Variant::SupCon,
        Variant::GeneralizedLiftedStructure,
    ]);
    out
}

/// The seven distinct metrics: four distances × normalize on/off, cosine always normalized.
fn metrics() -> Vec<Metric> {
    let mut out = Vec::new();
    for distance in Distance::ALL {
        out.push(Metric::new(distance, true));
        if distance != Distance::Cosine {
            out.push(Metric::new(distance, false));
        }
    }
    out
}

/// Circle is cosine only (as PML's).
fn accepts(variant: Variant, metric: Metric) -> bool {
    !matches!(variant, Variant::Circle) || metric.distance == Distance::Cosine
}

/// About the `q` quantile of `values`, between two neighbouring values (never on one).
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 2) as f64 * q).round() as usize;
    (v[i] + v[i + 1]) / 2.0
}

/// A random rectangle: batch, reference, labels and (optionally) a self index.
struct Rectangle {
    x: Vec<f64>,
    y: Vec<i64>,
    r: Vec<f64>,
    rl: Vec<i64>,
    sigma: Option<Vec<u32>>,
    n: usize,
    m: usize,
}

impl Rectangle {
    fn reference(&self) -> RefSet<'_> {
        RefSet {
            embeddings: &self.r,
            m: self.m,
            labels: &self.rl,
            self_index: self.sigma.as_deref(),
        }
    }

    /// The entries of the N x M matrix that are not self pairs.
    fn entries(&self, metric: Metric) -> Vec<f64> {
        let dist = pairwise(metric, &self.x, self.n, &self.r, self.m, D);
        (0..self.n * self.m)
            .filter(|&k| {
                self.sigma
                    .as_ref()
                    .is_none_or(|s| s[k / self.m] as usize != k % self.m)
            })
            .map(|k| dist[k])
            .collect()
    }
}

fn normal(rng: &mut StdRng, len: usize) -> Vec<f64> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

/// `n` labels over `classes`, each class present (for n >= classes), shuffled.
fn labels(rng: &mut StdRng, n: usize, classes: usize) -> Vec<i64> {
    let mut l: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    l.shuffle(rng);
    l
}

/// A random N x M rectangle; with `with_self`, batch rows 0..N−1 have a near copy at a random
/// reference column (with their label) and the last row has none.
///
/// Near, not exact: with exact copies `e(x_a, copy of x_b) = e(x_b, copy of x_a)`, so the matrix
/// holds exact duplicate values, and ties in hard quadruplet's `argmin e_kl` (or a margin placed
/// between two equal values) are genuine kinks that central differences cannot see. Exact copies
/// are covered by the PML cross-batch-memory goldens and by the edge cases below.
fn rectangle(rng: &mut StdRng, with_self: bool) -> Rectangle {
    let x = normal(rng, N * D);
    let y = labels(rng, N, CLASSES);
    let mut r = normal(rng, M * D);
    let mut rl = labels(rng, M, CLASSES);
    let sigma = with_self.then(|| {
        let mut cols: Vec<usize> = (0..M).collect();
        cols.shuffle(rng);
        (0..N)
            .map(|i| {
                if i + 1 == N {
                    return NO_SELF;
                }
                let c = cols[i];
                rl[c] = y[i];
                for k in 0..D {
                    let noise: f64 = StandardNormal.sample(rng);
                    r[c * D + k] = x[i * D + k] + 0.05 * noise;
                }
                c as u32
            })
            .collect()
    });
    Rectangle {
        x,
        y,
        r,
        rl,
        sigma,
        n: N,
        m: M,
    }
}

/// The loss with margins inside the spread of this rectangle's distances.
fn fit_loss(variant: Variant, metric: Metric, rect: &Rectangle) -> Loss {
    let dist = rect.entries(metric);
    let q = |p| quantile(&dist, p);
    let spread = q(0.75) - q(0.25);
    match variant {
        Variant::Contrastive => Loss::Contrastive(ContrastiveConfig {
            metric,
            pos_margin: q(0.4),
            neg_margin: q(0.6),
        }),
        Variant::Triplet { mining, smooth } => Loss::Triplet(TripletConfig {
            metric,
            margin: spread,
            smooth,
            mining,
        }),
        Variant::Quadruplet { mining } => Loss::Quadruplet(QuadrupletConfig {
            metric,
            margin: spread,
            margin2: spread / 2.0,
            mining,
        }),
        Variant::LiftedStructure => Loss::LiftedStructure(LiftedStructureConfig {
            metric,
            neg_margin: q(0.5),
            pos_margin: q(0.25),
        }),
        Variant::MultiSimilarity => Loss::MultiSimilarity(MultiSimilarityConfig {
            metric,
            alpha: 2.0 / spread,
            beta: 10.0 / spread,
            base: q(0.5),
        }),
        Variant::Circle => Loss::Circle(CircleConfig {
            metric,
            margin: 0.3,
            gamma: 8.0,
        }),
        Variant::NTXent => Loss::NTXent(NTXentConfig {
            metric,
            temperature: spread,
        }),
        Variant::SupCon => Loss::SupCon(SupConConfig {
            metric,
            temperature: spread,
        }),
        Variant::GeneralizedLiftedStructure => {
            Loss::GeneralizedLiftedStructure(GeneralizedLiftedStructureConfig {
                metric,
                neg_margin: q(0.25),
                pos_margin: q(0.75),
            })
        }
    }
}

/// Circle on the rectangle with its relu factors frozen at the similarities `frozen` (N x M): a
/// smooth function of `x` whose gradient at the base point is the circle gradient. `count` is
/// the denominator at the base point.
fn circle_frozen(
    cfg: &CircleConfig,
    x: &[f64],
    rect: &Rectangle,
    frozen: &[f64],
    count: u64,
) -> f64 {
    let (n, m) = (rect.n, rect.m);
    let s = pairwise(cfg.metric, x, n, &rect.r, m, D);
    let (mg, gamma) = (cfg.margin, cfg.gamma);
    let lse = |v: &[f64]| {
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        max + v.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
    };
    let mut sum = 0.0;
    for i in 0..n {
        let own = rect.sigma.as_ref().map(|s| s[i] as usize);
        let (mut lp, mut ln) = (Vec::new(), Vec::new());
        for j in 0..m {
            let (sij, fij) = (s[i * m + j], frozen[i * m + j]);
            if rect.y[i] != rect.rl[j] {
                ln.push(gamma * (fij + mg).max(0.0) * (sij - mg));
            } else if own != Some(j) {
                lp.push(-gamma * (1.0 + mg - fij).max(0.0) * (sij - (1.0 - mg)));
            }
        }
        if !lp.is_empty() && !ln.is_empty() {
            sum += (lse(&lp) + lse(&ln)).exp().ln_1p();
        }
    }
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// Relative gradient error and skipped coordinates of one check.
struct Checked {
    error: f64,
    skipped: usize,
}

/// Compares the analytic gradient with central differences over every batch coordinate.
fn check(loss: &Loss, rect: &Rectangle) -> Result<Checked, String> {
    let run = |x: &[f64]| evaluate_with_reference(loss, x, rect.n, D, &rect.y, rect.reference());
    let base = run(&rect.x).map_err(|e| e.to_string())?;
    let frozen = pairwise(loss.metric(), &rect.x, rect.n, &rect.r, rect.m, D);
    let eval = |x: &[f64]| -> RefOutput {
        let mut out = run(x).unwrap();
        if let Loss::Circle(cfg) = loss {
            out.stats.loss = circle_frozen(cfg, x, rect, &frozen, base.stats.active_terms[0]);
        }
        out
    };
    let surrogate = eval(&rect.x).stats.loss;
    if (surrogate - base.stats.loss).abs() > 1e-12 * (1.0 + base.stats.loss.abs()) {
        return Err(format!(
            "the surrogate {surrogate} differs from the loss {}",
            base.stats.loss
        ));
    }
    let at = |i: usize, t: f64| {
        let mut p = rect.x.clone();
        p[i] += t;
        let out = eval(&p);
        (out.stats.loss, out.stats.active_terms)
    };
    let (mut diff2, mut norm2, mut skipped) = (0.0, 0.0, 0);
    for i in 0..rect.x.len() {
        let h = REL_STEP * rect.x[i].abs().max(1.0);
        let (lp, ap) = at(i, h);
        let (lm, am) = at(i, -h);
        let (lp2, _) = at(i, 2.0 * h);
        let (lm2, _) = at(i, -2.0 * h);
        let fd = (lp - lm) / (2.0 * h);
        let fd2 = (lp2 - lm2) / (4.0 * h);
        let kink = ap != base.stats.active_terms
            || am != base.stats.active_terms
            || (fd - fd2).abs() > 1e-4 * (1.0 + fd.abs());
        if kink {
            skipped += 1;
            continue;
        }
        diff2 += (fd - base.grad[i]).powi(2);
        norm2 += fd * fd;
    }
    let error = diff2.sqrt() / norm2.sqrt().max(1e-8);
    let total = rect.x.len();
    if skipped * 5 > total {
        return Err(format!("{skipped} of {total} coordinates sit on a kink"));
    }
    if error > TOLERANCE {
        return Err(format!(
            "relative gradient error {error:.3e} > {TOLERANCE:e} (loss {}, active {:?})",
            base.stats.loss, base.stats.active_terms
        ));
    }
    Ok(Checked { error, skipped })
}

fn describe(variant: Variant, metric: Metric, with_self: bool) -> String {
    let norm = if metric.normalizes() {
        "normalized"
    } else {
        "raw"
    };
    let own = if with_self { "self index" } else { "no self" };
    format!("{variant:?} / {} / {norm} / {own}", metric.distance)
}

#[test]
fn analytic_gradients_match_finite_differences_on_rectangles() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for (vi, variant) in variants().into_iter().enumerate() {
        for (mi, metric) in metrics().into_iter().enumerate() {
            if !accepts(variant, metric) {
                continue;
            }
            for with_self in [false, true] {
                // A configuration must have something active on at least one of its seeds.
                let mut any_active = false;
                for seed in 0..SEEDS {
                    let mut rng = StdRng::seed_from_u64(
                        100_000 * vi as u64 + 1000 * mi as u64 + 10 * seed + u64::from(with_self),
                    );
                    let rect = rectangle(&mut rng, with_self);
                    let loss = fit_loss(variant, metric, &rect);
                    let name = format!("{} / seed {seed}", describe(variant, metric, with_self));
                    cases += 1;
                    match check(&loss, &rect) {
                        Ok(c) => {
                            let active = evaluate_with_reference(
                                &loss,
                                &rect.x,
                                rect.n,
                                D,
                                &rect.y,
                                rect.reference(),
                            )
                            .unwrap()
                            .stats
                            .active_terms;
                            any_active |= active != [0, 0];
                            println!(
                                "{name}: error {:.2e}, skipped {}, active {active:?}",
                                c.error, c.skipped
                            );
                        }
                        Err(e) => failures.push(format!("{name}: {e}")),
                    }
                }
                if !any_active {
                    failures.push(format!(
                        "{}: nothing active on any seed, the check has no teeth",
                        describe(variant, metric, with_self)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} gradient checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every loss that takes a reference set, with each mining and smooth variant, on `metric`
/// (circle stays cosine).
fn every_loss(metric: Metric) -> Vec<Loss> {
    let mut out = Vec::new();
    for kind in LossKind::ALL {
        let mut loss = Loss::default_for(kind);
        if !loss.supports_reference() {
            continue;
        }
        if kind != LossKind::Circle {
            *loss.metric_mut() = metric;
        }
        match loss {
            Loss::Triplet(cfg) => {
                for mining in [Mining::All, Mining::Hard, Mining::SemiHard] {
                    for smooth in [false, true] {
                        out.push(Loss::Triplet(TripletConfig {
                            mining,
                            smooth,
                            ..cfg
                        }));
                    }
                }
            }
            Loss::Quadruplet(cfg) => {
                for mining in [Mining::All, Mining::Hard] {
                    out.push(Loss::Quadruplet(QuadrupletConfig { mining, ..cfg }));
                }
            }
            _ => out.push(loss),
        }
    }
    out
}

/// The seven pair losses of rule 2.3.
fn is_pair_loss(loss: &Loss) -> bool {
    !matches!(loss, Loss::Triplet(_) | Loss::Quadruplet(_))
}

/// f32-exact random values, so that the f32 and f64 faces see the same inputs.
fn normal_f32(rng: &mut StdRng, len: usize) -> Vec<f64> {
    normal(rng, len)
        .into_iter()
        .map(|v| f64::from(v as f32))
        .collect()
}

/// Evaluates through both faces; checks that both succeed with a finite loss >= 0, finite
/// gradients of the batch's shape, and the same loss and counts. Returns the f64 output.
fn both_faces(loss: &Loss, rect: &Rectangle, tag: &str) -> Result<RefOutput, String> {
    let out = evaluate_with_reference(loss, &rect.x, rect.n, D, &rect.y, rect.reference())
        .map_err(|e| format!("{tag}: evaluate_with_reference failed: {e}"))?;
    let finite = out.stats.loss.is_finite() && out.stats.loss >= 0.0;
    if !finite || out.grad.len() != rect.n * D || out.grad.iter().any(|g| !g.is_finite()) {
        return Err(format!("{tag}: non-finite or misshapen output {out:?}"));
    }
    let x32: Vec<f32> = rect.x.iter().map(|&v| v as f32).collect();
    let r32: Vec<f32> = rect.r.iter().map(|&v| v as f32).collect();
    let input = LossInput::new(Embeddings::new(&x32, rect.n, D).unwrap(), &rect.y, None)
        .unwrap()
        .with_reference(ReferenceSet {
            embeddings: Embeddings::new(&r32, rect.m, D).unwrap(),
            labels: &rect.rl,
            self_index: rect.sigma.as_deref(),
        })
        .map_err(|e| format!("{tag}: with_reference failed: {e}"))?;
    let f32_out = ReferenceBackend
        .loss(loss, &input)
        .map_err(|e| format!("{tag}: Backend::loss failed: {e}"))?;
    if f32_out.stats != out.stats
        || f32_out.grad.len() != rect.n * D
        || f32_out.grad.iter().any(|g| !g.is_finite())
    {
        return Err(format!(
            "{tag}: the f32 face differs: {:?} vs {:?}",
            f32_out.stats, out.stats
        ));
    }
    Ok(out)
}

/// A rectangle from explicit labels: random f32-exact rows; `copies` puts an exact copy of batch
/// row i at reference column `sigma[i]` (where not [`NO_SELF`]).
fn explicit(
    rng: &mut StdRng,
    y: &[i64],
    rl: &[i64],
    sigma: Option<Vec<u32>>,
    copies: bool,
) -> Rectangle {
    let (n, m) = (y.len(), rl.len());
    let x = normal_f32(rng, n * D);
    let mut r = normal_f32(rng, m * D);
    if let (Some(s), true) = (&sigma, copies) {
        for (i, &c) in s.iter().enumerate().filter(|(_, c)| **c != NO_SELF) {
            let c = c as usize;
            r[c * D..(c + 1) * D].copy_from_slice(&x[i * D..(i + 1) * D]);
        }
    }
    Rectangle {
        x,
        y: y.to_vec(),
        r,
        rl: rl.to_vec(),
        sigma,
        n,
        m,
    }
}

/// An edge case: name, batch labels, reference labels, self index, and whether the self
/// columns hold exact copies.
type Shape = (&'static str, Vec<i64>, Vec<i64>, Option<Vec<u32>>, bool);

#[test]
fn edge_cases_are_finite_and_follow_the_contract() {
    let mut rng = StdRng::seed_from_u64(4242);
    let identity = |n: usize| Some((0..n as u32).collect::<Vec<u32>>());
    let shapes: Vec<Shape> = vec![
        ("m1", vec![0, 1, 0, 2], vec![0], None, false),
        ("n1", vec![1], vec![0, 1, 1, 2, 0], None, false),
        ("n1_m1_same", vec![3], vec![3], None, false),
        ("n1_m1_other", vec![3], vec![4], None, false),
        ("n2_m1_rule_2_3", vec![0, 1], vec![0], None, false),
        (
            "no_positives",
            vec![0, 1, 0, 1],
            vec![2, 3, 2, 3, 4],
            None,
            false,
        ),
        ("all_positive", vec![5, 5, 5], vec![5, 5, 5, 5], None, false),
        ("all_positive_one_ref", vec![5, 5, 5], vec![5], None, false),
        (
            "mixed_no_neg_rows",
            vec![0, 1, 1, 0],
            vec![0, 0, 0],
            None,
            false,
        ),
        (
            "self_every_row",
            vec![0, 1, 0, 1, 2],
            vec![0, 1, 0, 1, 2, 1, 0],
            identity(5),
            true,
        ),
        (
            "self_one_class",
            vec![7, 7, 7],
            vec![7, 7, 7],
            identity(3),
            true,
        ),
        (
            "self_only_positive",
            vec![0, 1],
            vec![0, 1],
            identity(2),
            true,
        ),
        ("self_n1_m1", vec![2], vec![2], identity(1), true),
        (
            "self_some_rows",
            vec![0, 1, 0],
            vec![1, 0, 0, 2],
            Some(vec![2, NO_SELF, 1]),
            false,
        ),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for metric in metrics() {
        for loss in every_loss(metric) {
            for (name, y, rl, sigma, copies) in &shapes {
                let rect = explicit(&mut rng, y, rl, sigma.clone(), *copies);
                let tag = format!("{name} / {loss:?}");
                checked += 1;
                let out = match both_faces(&loss, &rect, &tag) {
                    Ok(out) => out,
                    Err(e) => {
                        failures.push(e);
                        continue;
                    }
                };
                // Rule 2.3 and "nothing to reduce": loss 0, zero gradient, nothing active.
                let nothing = match *name {
                    "n1_m1_same" | "n1_m1_other" | "n2_m1_rule_2_3" | "self_n1_m1" => {
                        is_pair_loss(&loss)
                    }
                    // No positive anywhere: only contrastive, multi-similarity and generalized
                    // lifted structure have a negative half of their own.
                    "no_positives" => !matches!(
                        loss,
                        Loss::Contrastive(_)
                            | Loss::MultiSimilarity(_)
                            | Loss::GeneralizedLiftedStructure(_)
                    ),
                    // Every pair's positive is the excluded self column.
                    "self_only_positive" => !matches!(
                        loss,
                        Loss::MultiSimilarity(_)
                            | Loss::GeneralizedLiftedStructure(_)
                            | Loss::Contrastive(_)
                    ),
                    _ => false,
                };
                let zero = out.stats.loss == 0.0
                    && out.stats.active_terms == [0, 0]
                    && out.grad.iter().all(|&g| g == 0.0);
                if nothing && !zero {
                    failures.push(format!(
                        "{tag}: expected nothing active, got {:?}",
                        out.stats
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} edge cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// With R = X (exact copies) and σ = identity the rectangle holds the square case's pairs, so
/// every loss value and active count equals the square case's (the gradients differ: the square
/// case also differentiates the reference side). Hard mining is compared on the metrics where
/// the self entry is the closest (not raw dot; contract 3.2).
#[test]
fn the_square_case_is_a_rectangle_with_the_identity_self_index() {
    let mut failures = Vec::new();
    for (mi, metric) in metrics().into_iter().enumerate() {
        for seed in 0..3u64 {
            let mut rng = StdRng::seed_from_u64(777 + 10 * mi as u64 + seed);
            let n = 7;
            let y = labels(&mut rng, n, CLASSES);
            let rect = explicit(&mut rng, &y, &y, Some((0..n as u32).collect()), true);
            for loss in every_loss(metric) {
                let hard = matches!(
                    loss,
                    Loss::Triplet(TripletConfig {
                        mining: Mining::Hard,
                        ..
                    }) | Loss::Quadruplet(QuadrupletConfig {
                        mining: Mining::Hard,
                        ..
                    })
                );
                if hard && metric.distance == Distance::Dot && !metric.normalizes() {
                    continue;
                }
                let square = evaluate(&loss, &rect.x, n, D, &rect.y, None).unwrap();
                let rectangle =
                    evaluate_with_reference(&loss, &rect.x, n, D, &rect.y, rect.reference())
                        .unwrap();
                let (a, b) = (square.stats, rectangle.stats);
                if (a.loss - b.loss).abs() > 1e-12 * (1.0 + a.loss.abs())
                    || a.active_terms != b.active_terms
                {
                    failures.push(format!("{loss:?} seed {seed}: square {a:?}, rect {b:?}"));
                }
                if a.active > 0 && rectangle.grad.iter().all(|&g| g == 0.0) {
                    failures.push(format!("{loss:?} seed {seed}: zero rectangle gradient"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_reference_inputs_are_errors() {
    let mut rng = StdRng::seed_from_u64(9);
    let rect = explicit(&mut rng, &[0, 1, 0], &[1, 0, 0, 2], None, false);
    let run = |loss: &Loss, reference: RefSet<'_>| {
        evaluate_with_reference(loss, &rect.x, rect.n, D, &rect.y, reference)
    };
    let contrastive = Loss::default_for(LossKind::Contrastive);
    for kind in [LossKind::NPair, LossKind::TripletCenter] {
        assert!(matches!(
            run(&Loss::default_for(kind), rect.reference()),
            Err(MarginError::InvalidConfig(_))
        ));
    }
    let bad_sigmas: [&[u32]; 4] = [&[0, 0, 2], &[2, 0, 9], &[2, 0], &[2, 3, 1]];
    for sigma in bad_sigmas {
        let reference = RefSet {
            self_index: Some(sigma),
            ..rect.reference()
        };
        assert!(
            matches!(
                run(&contrastive, reference),
                Err(MarginError::InvalidInput(_))
            ),
            "self index {sigma:?} accepted"
        );
    }
    let mut r_bad = rect.r.clone();
    r_bad[5] = f64::NAN;
    let cases = [
        RefSet {
            embeddings: &r_bad,
            ..rect.reference()
        },
        RefSet {
            m: 3,
            ..rect.reference()
        },
        RefSet {
            labels: &rect.rl[..3],
            ..rect.reference()
        },
        RefSet {
            embeddings: &[],
            m: 0,
            labels: &[],
            self_index: None,
        },
    ];
    for reference in cases {
        assert!(
            matches!(
                run(&contrastive, reference),
                Err(MarginError::InvalidInput(_))
            ),
            "{reference:?} accepted"
        );
    }
    // A valid self index (row 1 has no copy) is accepted.
    let ok = RefSet {
        self_index: Some(&[2, NO_SELF, 1]),
        ..rect.reference()
    };
    assert!(run(&contrastive, ok).is_ok());
}
