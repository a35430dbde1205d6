//! Degenerate but valid batches: tiny N, one class, all labels distinct, duplicate rows, extreme
//! labels and margins. Each must give a finite loss and gradient; batches with nothing to reduce
//! give loss 0, zero gradient and nothing active, never an error.

#[path = "../../../tests/support/mod.rs"]
mod support;

use margin_core::{Distance, Loss, LossKind, Metric, Mining, NPairConfig, TripletConfig};
use margin_cpu::reference::{RefOutput, evaluate};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use support::losses::mining_variants;

fn normal(seed: u64, len: usize) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// Every loss with its defaults, under every distance and normalization it accepts (circle and
/// cosface: cosine only; normalized-softmax: normalized only), plus the triplet miners and smooth
/// variant and the quadruplet miners.
fn all_losses() -> Vec<Loss> {
    let mut out = Vec::new();
    for kind in LossKind::ALL {
        for distance in Distance::ALL {
            for normalize in [false, true] {
                let mut loss = Loss::default_for(kind);
                *loss.metric_mut() = Metric::new(distance, normalize);
                if loss.validate().is_ok() {
                    out.extend(mining_variants(loss));
                }
            }
        }
    }
    out
}

/// Runs `loss` on `x` (n x d) with `labels`; triplet-center gets 3 random centers and needs
/// labels in 0..3, so it sees the labels mod 3.
fn run(loss: &Loss, x: &[f64], d: usize, labels: &[i64]) -> RefOutput {
    let n = labels.len();
    if loss.needs_centers() {
        let centers = normal(99, 3 * d);
        let remapped: Vec<i64> = labels.iter().map(|l| l.rem_euclid(3)).collect();
        evaluate(loss, x, n, d, &remapped, Some((&centers, 3))).unwrap()
    } else {
        evaluate(loss, x, n, d, labels, None).unwrap()
    }
}

fn assert_finite(out: &RefOutput, what: &str) {
    assert!(
        out.stats.loss.is_finite(),
        "{what}: loss {}",
        out.stats.loss
    );
    assert!(
        out.grad.iter().all(|g| g.is_finite()),
        "{what}: grad {:?}",
        out.grad
    );
    if let Some(cg) = &out.center_grad {
        assert!(cg.iter().all(|g| g.is_finite()), "{what}: center grad");
    }
}

fn assert_nothing_active(out: &RefOutput, what: &str) {
    assert_eq!(out.stats.loss, 0.0, "{what}");
    assert_eq!(out.stats.active, 0, "{what}");
    assert_eq!(out.stats.active_terms, [0, 0], "{what}");
    assert!(
        out.grad.iter().all(|&g| g == 0.0),
        "{what}: grad {:?}",
        out.grad
    );
}

/// Whether a loss has nothing to reduce on these batches, by its definition:
/// * triplet-center always has samples; contrastive has pairs as soon as N >= 2;
/// * multi-similarity and generalized-lifted-structure reduce over all N anchors, each with its
///   positives or its negatives alone (a one-class or all-distinct batch still has a loss), so
///   only N = 1 is empty;
/// * the others need a positive and a negative pair (triplets, quadruplets, n-pair's k >= 2 on
///   the batches below, lifted-structure's J, circle's rows, and nt-xent's and supcon's
///   batch-level check).
fn expect_empty(loss: &Loss, labels: &[i64]) -> bool {
    let n = labels.len();
    let has_positive = (0..n).any(|i| (0..n).any(|j| i != j && labels[i] == labels[j]));
    let has_negative = (0..n).any(|i| (0..n).any(|j| labels[i] != labels[j]));
    match loss.kind() {
        LossKind::TripletCenter
        | LossKind::ProxyAnchor
        | LossKind::ProxyNca
        | LossKind::NormalizedSoftmax
        | LossKind::CosFace => false,
        LossKind::Contrastive => n < 2,
        LossKind::MultiSimilarity | LossKind::GeneralizedLiftedStructure => n < 2,
        LossKind::Triplet
        | LossKind::Quadruplet
        | LossKind::NPair
        | LossKind::LiftedStructure
        | LossKind::Circle
        | LossKind::NTXent
        | LossKind::SupCon => !(has_positive && has_negative),
    }
}

/// Losses that are active on every batch with both a positive and a negative pair, whatever
/// the data (no hinge, or one a log-sum-exp over both keeps above 0): checks that the "not
/// empty" side of [`expect_empty`] holds too.
fn always_active_with_pairs(loss: &Loss) -> bool {
    matches!(
        loss.kind(),
        LossKind::MultiSimilarity
            | LossKind::Circle
            | LossKind::NTXent
            | LossKind::SupCon
            | LossKind::NPair
    )
}

#[test]
fn degenerate_batches_give_finite_results_and_empty_losses_are_zero() {
    let d = 3;
    let batches: Vec<(&str, Vec<i64>)> = vec![
        ("N = 1", vec![4]),
        ("N = 2, same label", vec![1, 1]),
        ("N = 2, different labels", vec![1, 2]),
        ("one class", vec![7; 6]),
        ("all labels distinct", vec![0, 1, 2, 3, 4, 5]),
        ("two pairs and a singleton", vec![0, 1, 0, 1, 2]),
    ];
    for (bi, (name, labels)) in batches.iter().enumerate() {
        let x = normal(bi as u64, labels.len() * d);
        for loss in all_losses() {
            let what = format!("{name}, {loss:?}");
            let out = run(&loss, &x, d, labels);
            assert_finite(&out, &what);
            if expect_empty(&loss, labels) {
                assert_nothing_active(&out, &what);
            } else if always_active_with_pairs(&loss) {
                assert!(out.stats.active > 0 && out.stats.loss >= 0.0, "{what}");
            }
        }
    }
}

#[test]
fn duplicate_embeddings_are_finite_and_euclidean_gradient_at_zero_is_zero() {
    let d = 4;
    let mut x = normal(5, 6 * d);
    // Rows 0, 1 (same label) and row 2 (other label) are identical: zero distances of both kinds.
    let (row0, rest) = x.split_at_mut(d);
    rest[..d].copy_from_slice(row0);
    rest[d..2 * d].copy_from_slice(row0);
    let labels = [0, 0, 1, 1, 2, 2];
    for loss in all_losses() {
        let out = run(&loss, &x, d, &labels);
        assert_finite(&out, &format!("duplicates, {loss:?}"));
    }
    // Only the zero-distance pairs: contrastive euclidean sees d = 0 for every pair; the positive
    // term relu(0 − 0) is inactive, the negative term relu(1 − 0) = 1 is active but its gradient
    // through d = 0 is defined as 0.
    let same = [x[..d].to_vec(), x[..d].to_vec(), x[..d].to_vec()].concat();
    for normalize in [false, true] {
        let loss = Loss::Contrastive(margin_core::ContrastiveConfig {
            metric: Metric::new(Distance::Euclidean, normalize),
            ..Default::default()
        });
        let out = evaluate(&loss, &same, 3, d, &[0, 0, 1], None).unwrap();
        assert_eq!(out.stats.loss, 1.0);
        assert_eq!(out.stats.active_terms, [0, 4]);
        assert!(out.grad.iter().all(|&g| g == 0.0), "{:?}", out.grad);
    }
}

#[test]
fn labels_are_compared_only_for_equality() {
    let d = 3;
    let x = normal(11, 7 * d);
    let small = [0, 1, 0, 2, 1, 2, 0];
    let odd = [i64::MAX, -5, i64::MAX, i64::MIN, -5, i64::MIN, i64::MAX];
    for loss in all_losses().into_iter().filter(|l| !l.needs_centers()) {
        let a = evaluate(&loss, &x, 7, d, &small, None).unwrap();
        let b = evaluate(&loss, &x, 7, d, &odd, None).unwrap();
        assert_eq!(a, b, "{loss:?}");
    }
}

#[test]
fn margin_zero_and_very_large_margins() {
    let d = 3;
    let x = normal(12, 8 * d);
    let labels = [0, 0, 1, 1, 2, 2, 0, 1];
    for margin in [0.0, 1e6] {
        let loss = Loss::Triplet(TripletConfig {
            margin,
            ..Default::default()
        });
        let out = evaluate(&loss, &x, 8, d, &labels, None).unwrap();
        assert!(out.stats.loss.is_finite() && out.grad.iter().all(|g| g.is_finite()));
        if margin > 1.0 {
            // Every valid triplet is active, and the loss is about the margin.
            let mut triplets = 0;
            for a in 0..8 {
                for p in 0..8 {
                    for n in 0..8 {
                        if a != p && labels[a] == labels[p] && labels[a] != labels[n] {
                            triplets += 1;
                        }
                    }
                }
            }
            assert_eq!(out.stats.active_terms, [triplets, 0]);
            assert!((out.stats.loss - 1e6).abs() < 3.0, "{}", out.stats.loss);
        }
    }
    for kind in LossKind::ALL {
        for value in [0.0, 1e6, -1e6] {
            let mut loss = Loss::default_for(kind);
            match &mut loss {
                Loss::Contrastive(c) => (c.pos_margin, c.neg_margin) = (value, value),
                Loss::Triplet(c) => c.margin = value,
                Loss::TripletCenter(c) => c.margin = value,
                Loss::NPair(_) => {}
                Loss::Quadruplet(c) => (c.margin, c.margin2) = (value, value),
                Loss::LiftedStructure(c) => (c.pos_margin, c.neg_margin) = (value, value),
                Loss::GeneralizedLiftedStructure(c) => {
                    (c.pos_margin, c.neg_margin) = (value, value)
                }
                Loss::MultiSimilarity(c) => c.base = value,
                Loss::Circle(c) => c.margin = value,
                Loss::NTXent(_) | Loss::SupCon(_) => {}
                Loss::ProxyAnchor(c) => c.margin = value,
                Loss::CosFace(c) => c.margin = value,
                Loss::ProxyNca(_) | Loss::NormalizedSoftmax(_) => {}
            }
            let out = run(&loss, &x, d, &labels);
            assert_finite(&out, &format!("{kind} with margins {value}"));
        }
    }
}

#[test]
fn n_pair_with_fewer_than_two_usable_labels_is_zero() {
    let d = 3;
    let x = normal(13, 5 * d);
    let loss = Loss::NPair(NPairConfig::default());
    // Only label 0 has two samples: k = 1.
    for labels in [[0, 1, 0, 2, 3], [0, 0, 0, 0, 0], [0, 1, 2, 3, 4]] {
        let out = evaluate(&loss, &x, 5, d, &labels, None).unwrap();
        assert_nothing_active(&out, &format!("n-pair {labels:?}"));
    }
    // Two usable labels: active = k = 2 even with extra samples and singletons around.
    let out = evaluate(&loss, &x, 5, d, &[5, 9, 5, 9, 5], None).unwrap();
    assert_eq!(out.stats.active_terms, [2, 0]);
    assert!(out.stats.loss > 0.0);
    // Row 4 (a third sample of label 5) is not used: no gradient reaches it.
    assert!(out.grad[4 * d..].iter().all(|&g| g == 0.0));
}

#[test]
fn reordering_the_batch_reorders_the_gradient() {
    // Losses whose definition does not depend on row order (hard mining breaks ties by index and
    // n-pair picks samples by order of appearance, so they are left out).
    let (n, d) = (9, 3);
    let x = normal(21, n * d);
    let labels = [0, 1, 2, 0, 1, 2, 0, 1, 0];
    let order = [4, 7, 0, 8, 2, 5, 1, 3, 6];
    let px: Vec<f64> = order
        .iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
        .collect();
    let pl: Vec<i64> = order.iter().map(|&i| labels[i]).collect();
    let order_free = all_losses().into_iter().filter(|l| match l {
        Loss::Triplet(c) => c.mining != Mining::Hard,
        Loss::NPair(_) => false,
        _ => true,
    });
    for loss in order_free {
        let a = run(&loss, &x, d, &labels);
        let b = run(&loss, &px, d, &pl);
        let what = format!("{loss:?}");
        assert!(
            (a.stats.loss - b.stats.loss).abs() <= 1e-12 * (1.0 + a.stats.loss.abs()),
            "{what}: {} vs {}",
            a.stats.loss,
            b.stats.loss
        );
        assert_eq!(a.stats.active_terms, b.stats.active_terms, "{what}");
        for (new_row, &old_row) in order.iter().enumerate() {
            for k in 0..d {
                let (ga, gb) = (a.grad[old_row * d + k], b.grad[new_row * d + k]);
                assert!(
                    (ga - gb).abs() <= 1e-12 * (1.0 + ga.abs()),
                    "{what}: {ga} vs {gb}"
                );
            }
        }
    }
}

#[test]
fn extreme_scales_stay_finite() {
    // Temperatures, γ, α and β far from their defaults drive the exponents to ±1e6: every
    // log-sum-exp must stay shifted, every softmax finite.
    let d = 3;
    let x = normal(14, 8 * d);
    let labels = [0, 0, 1, 1, 2, 2, 0, 1];
    for scale in [1e-4, 1e4] {
        for distance in Distance::ALL {
            for normalize in [false, true] {
                let metric = Metric::new(distance, normalize);
                let mut losses = vec![
                    Loss::MultiSimilarity(margin_core::MultiSimilarityConfig {
                        metric,
                        alpha: scale,
                        beta: scale,
                        ..Default::default()
                    }),
                    Loss::NTXent(margin_core::NTXentConfig {
                        metric,
                        temperature: scale,
                    }),
                    Loss::SupCon(margin_core::SupConConfig {
                        metric,
                        temperature: scale,
                    }),
                ];
                if distance == Distance::Cosine {
                    losses.push(Loss::Circle(margin_core::CircleConfig {
                        metric,
                        gamma: scale,
                        ..Default::default()
                    }));
                }
                for loss in losses {
                    let out = run(&loss, &x, d, &labels);
                    assert_finite(&out, &format!("{loss:?}"));
                }
            }
        }
    }
}
