//! Shared helpers of the fast-backend tests: random inputs and comparison with the f64
//! reference under the SPEC's precision bounds. (Included with `mod`; not a test on its own.)

#![allow(dead_code)]

use margin_core::{Backend, Distance, Loss, LossInput, LossKind, Metric, Mining};
use margin_cpu::CpuBackend;
use margin_cpu::reference;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

/// Random normal `n x d` values.
pub fn normal(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dist = Normal::new(0.0f32, 1.0).unwrap();
    (0..n * d).map(|_| dist.sample(&mut rng)).collect()
}

/// Labels `i % classes`, shuffled deterministically by a multiplicative hash.
pub fn labels(n: usize, classes: usize) -> Vec<i64> {
    (0..n)
        .map(|i| ((i * 7 + i / 3) % classes.max(1)) as i64 * 3 - 5)
        .collect()
}

/// Every loss variant: each loss with its default config, plus the triplet mining/smooth
/// combinations.
pub fn variants(kind: LossKind) -> Vec<Loss> {
    let base = Loss::default_for(kind);
    match base {
        Loss::Triplet(c) => {
            let mut v = Vec::new();
            for mining in [Mining::All, Mining::Hard, Mining::SemiHard] {
                for smooth in [false, true] {
                    let mut c = c;
                    c.mining = mining;
                    c.smooth = smooth;
                    // A margin wide enough for semihard to select something on random data.
                    c.margin = if mining == Mining::SemiHard {
                        0.3
                    } else {
                        0.05
                    };
                    v.push(Loss::Triplet(c));
                }
            }
            v
        }
        other => vec![other],
    }
}

/// `loss` with the metric replaced.
pub fn with_metric(mut loss: Loss, distance: Distance, normalize: bool) -> Loss {
    *loss.metric_mut() = Metric::new(distance, normalize);
    loss
}

fn rel_norm(a: &[f32], b: &[f64]) -> (f64, f64) {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    (diff, nb)
}

/// Runs `loss` on the fast backend and on the reference and checks the SPEC's bounds.
pub fn check(backend: &CpuBackend, loss: &Loss, n: usize, d: usize, classes: usize, seed: u64) {
    let x = normal(n, d, seed);
    let y = labels(n, classes);
    let k = classes.max(2);
    let centers = normal(k, d, seed + 1000);
    let y_tc: Vec<i64> = (0..n)
        .map(|i| ((i * 7 + i / 3) % classes.max(1)) as i64)
        .collect();
    let tc = loss.needs_centers();
    let y = if tc { y_tc } else { y };
    let input = LossInput::from_slices(&x, n, d, &y, tc.then_some((&centers[..], k, d))).unwrap();
    let got = backend.loss(loss, &input).unwrap();
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let c64: Vec<f64> = centers.iter().map(|&v| f64::from(v)).collect();
    let want = reference::evaluate(loss, &x64, n, d, &y, tc.then_some((&c64[..], k))).unwrap();
    let ctx = format!("{loss:?} n={n} d={d} classes={classes} seed={seed}");
    let (l, lr) = (got.stats.loss, want.stats.loss);
    // f32 distances may put a term whose value is within rounding of a selection boundary on
    // the other side (semihard's `0 < gap`, hard mining's arg-max, a hinge at exactly 0 with
    // smooth=false is continuous and harmless). Such a discrete flip moves the loss by about one
    // term over the count: then only a looser check is meaningful.
    let flipped = got.stats.active_terms != want.stats.active_terms;
    let tol = if flipped { 1e-2 } else { 1e-4 };
    assert!(
        (l - lr).abs() <= tol * lr.abs() + 1e-6,
        "loss {l} vs reference {lr} (active {:?} vs {:?}): {ctx}",
        got.stats.active_terms,
        want.stats.active_terms
    );
    for t in 0..2 {
        let (a, b) = (got.stats.active_terms[t], want.stats.active_terms[t]);
        assert!(
            a.abs_diff(b) <= 1 + b / 500,
            "active[{t}] {a} vs reference {b}: {ctx}"
        );
    }
    let (diff, nb) = rel_norm(&got.grad, &want.grad);
    let gtol = if flipped { 5e-2 } else { 1e-3 };
    assert!(
        diff <= gtol * nb + 1e-6,
        "grad diff {diff} vs reference norm {nb}: {ctx}"
    );
    if let (Some(cg), Some(cw)) = (&got.center_grad, &want.center_grad) {
        let (diff, nb) = rel_norm(cg, cw);
        assert!(
            diff <= 1e-3 * nb + 1e-6,
            "center grad diff {diff} vs reference norm {nb}: {ctx}"
        );
    }
}

/// Every distance x normalize combination of `loss`.
pub fn metrics(loss: Loss) -> Vec<Loss> {
    let mut v = Vec::new();
    for distance in Distance::ALL {
        for normalize in [true, false] {
            if distance == Distance::Cosine && !normalize {
                continue;
            }
            v.push(with_metric(loss, distance, normalize));
        }
    }
    v
}
