//! Many small random batches for the losses added after the SPEC's six (and hard-mined
//! quadruplet) against the float64 reference: catches rare count flips and tie-breaking
//! differences. A few minutes on lavapipe, so opt-in: `cargo test -p margin-wgpu --test sweep --
//! --ignored`.

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use common::{backend, labels, loss_close, normal, rel_norm, rng};
use margin_core::{Backend, Distance, Loss, LossInput, LossKind, Metric, Mining, QuadrupletConfig};
use margin_cpu::reference;
use rand::Rng;
use support::losses::added_kinds;

fn configs() -> Vec<Loss> {
    let mut kinds = added_kinds();
    kinds.push(LossKind::Quadruplet);
    let mut out = Vec::new();
    for kind in kinds {
        for distance in Distance::ALL {
            for normalize in [false, true] {
                let mut loss = Loss::default_for(kind);
                *loss.metric_mut() = Metric::new(distance, normalize);
                if let Loss::Quadruplet(c) = loss {
                    loss = Loss::Quadruplet(QuadrupletConfig {
                        mining: Mining::Hard,
                        ..c
                    });
                }
                if loss.validate().is_ok() {
                    out.push(loss);
                }
            }
        }
    }
    out
}

#[test]
#[ignore]
fn random_small_batches() {
    sweep(0..60, 2..48, 1..9);
}

/// Rows longer than one workgroup (256 threads), so every thread handles several entries.
#[test]
#[ignore]
fn random_long_rows() {
    sweep(100..106, 257..300, 1..40);
}

/// Past 2048 rows, every configuration once (SPEC precision at a larger N).
#[test]
#[ignore]
fn random_large_batch() {
    sweep(200..201, 2050..2200, 32..96);
}

fn sweep(
    seeds: std::ops::Range<u64>,
    sizes: std::ops::Range<usize>,
    widths: std::ops::Range<usize>,
) {
    let Some(b) = backend() else { return };
    let mut failures = Vec::new();
    let mut cases = 0;
    for seed in seeds {
        let mut r = rng(7000 + seed);
        let n = r.random_range(sizes.clone());
        let d = r.random_range(widths.clone());
        let classes = r.random_range(1..=n);
        let x = normal(&mut r, n, d);
        let y = labels(&mut r, n, classes);
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        for loss in configs() {
            // The hard-quadruplet reference is O(N^4).
            if n > 300 && loss.kind() == LossKind::Quadruplet {
                continue;
            }
            cases += 1;
            let input = LossInput::from_slices(&x, n, d, &y, None).unwrap();
            let got = b.loss(&loss, &input).unwrap();
            let want = reference::evaluate(&loss, &x64, n, d, &y, None).unwrap();
            let gerr = rel_norm(&got.grad, &want.grad);
            if !loss_close(got.stats.loss, want.stats.loss)
                || gerr > 1e-3
                || got.stats.active_terms != want.stats.active_terms
            {
                failures.push(format!(
                    "{loss:?} n={n} d={d} classes={classes} seed={seed}: loss {} vs {}, active \
                     {:?} vs {:?}, grad {gerr:.2e}",
                    got.stats.loss,
                    want.stats.loss,
                    got.stats.active_terms,
                    want.stats.active_terms
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
