//! Edge cases of the reference-set contract in the f64 reference (M = 1, N = 1, no positives,
//! no negatives, a self index on every row, rule 2.3), the square case as a special rectangle,
//! and bad reference inputs. Split from `reference_sets_gradcheck.rs`, which shares the random
//! rectangles in `ref_rectangles`.

mod ref_rectangles;
#[path = "../../../tests/support/mod.rs"]
mod support;

use margin_core::{
    Backend, Distance, Embeddings, Loss, LossInput, LossKind, MarginError, Metric, Mining, NO_SELF,
    QuadrupletConfig, ReferenceSet, TripletConfig,
};
use margin_cpu::reference::{
    RefOutput, RefSet, ReferenceBackend, evaluate, evaluate_with_reference,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use ref_rectangles::{CLASSES, D, Rectangle, labels, metrics, normal};
use support::losses::mining_variants;

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
        out.extend(mining_variants(loss));
    }
    out
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
                        loss.is_pair_loss()
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
                if b.loss.is_nan()
                    || (a.loss - b.loss).abs() > 1e-12 * (1.0 + a.loss.abs())
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
