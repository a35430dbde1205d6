//! Finite-difference checks of the reference's analytic gradients, for every loss × distance ×
//! normalization (× mining × smooth for triplet), for the embeddings and (triplet-center) the
//! centers. One generic check, driven by a table, so that a failure names its configuration.
//!
//! Central differences in f64 with a relative step of 1e-6; the analytic and numeric gradients
//! must agree within 1e-5 in relative norm. Hinge losses have kinks: a coordinate whose step
//! crosses one is skipped (detected by a change of the active counts, or by the two-step and
//! one-step differences disagreeing), never compensated by a looser tolerance.
//!
//! Circle is the exception to "the gradient is the derivative of the loss": PML (and so margin)
//! holds its relu factors constant, so its check differentiates a surrogate in which those factors
//! are frozen at the base point (`circle_frozen`); its value there must equal the loss.

mod gradcheck_common;
mod ref_rectangles;

use gradcheck_common::{
    Checked, Columns, SEEDS, Variant, accepts, central_differences, check_surrogate, circle_frozen,
    describe, fit_loss, variants,
};
use margin_core::{Distance, Loss, Metric, NPairConfig};
use margin_cpu::reference::{RefOutput, evaluate, pairwise};
use rand::SeedableRng;
use rand::rngs::StdRng;
use ref_rectangles::{labels, metrics, normal};

fn off_diagonal(m: &[f64], n: usize) -> Vec<f64> {
    (0..n * n)
        .filter(|i| i / n != i % n)
        .map(|i| m[i])
        .collect()
}

/// The loss of `variant` with margins fitted to this batch's distances (and, for
/// triplet-center, to its distances to the centers `c`).
fn fit(variant: Variant, metric: Metric, x: &[f64], n: usize, d: usize, c: &[f64]) -> Loss {
    let dist = off_diagonal(&pairwise(metric, x, n, x, n, d), n);
    let to_centers = variant
        .has_centers()
        .then(|| pairwise(metric, x, n, c, c.len() / d, d));
    fit_loss(variant, metric, &dist, to_centers.as_deref())
}

/// Which input a check perturbs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wrt {
    Embeddings,
    Centers,
}

/// Compares the analytic gradient of `loss` with central differences, for one input.
fn check(
    loss: &Loss,
    x: &[f64],
    n: usize,
    d: usize,
    y: &[i64],
    centers: Option<(&[f64], usize)>,
    wrt: Wrt,
) -> Result<Checked, String> {
    let base = evaluate(loss, x, n, d, y, centers).unwrap();
    let frozen = pairwise(loss.metric(), x, n, x, n, d);
    let diagonal = |i: usize| Some(i);
    let cols = Columns {
        labels: y,
        own: &diagonal,
    };
    let eval = |x: &[f64], c: Option<&[f64]>| -> RefOutput {
        let centers = c.zip(centers.map(|(_, k)| k));
        let mut out = evaluate(loss, x, n, d, y, centers).unwrap();
        if let Loss::Circle(cfg) = loss {
            let s = pairwise(cfg.metric, x, n, x, n, d);
            let count = base.stats.active_terms[0];
            out.stats.loss = circle_frozen(cfg, &s, y, &cols, &frozen, count);
        }
        out
    };
    check_surrogate(eval(x, centers.map(|(c, _)| c)).stats.loss, base.stats.loss)?;
    let analytic = match wrt {
        Wrt::Embeddings => base.grad.clone(),
        Wrt::Centers => base.center_grad.clone().ok_or("no center gradient")?,
    };
    let point: Vec<f64> = match wrt {
        Wrt::Embeddings => x.to_vec(),
        Wrt::Centers => centers.ok_or("no centers")?.0.to_vec(),
    };
    // The loss and active counts with coordinate `i` moved by `t`.
    let at = |i: usize, t: f64| {
        let mut p = point.clone();
        p[i] += t;
        let out = match wrt {
            Wrt::Embeddings => eval(&p, centers.map(|(c, _)| c)),
            Wrt::Centers => eval(x, Some(&p)),
        };
        (out.stats.loss, out.stats.active_terms)
    };
    let probe = (base.stats.loss, base.stats.active_terms);
    central_differences(&point, &analytic, probe, at)
}

#[test]
fn analytic_gradients_match_finite_differences() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for (vi, variant) in variants().into_iter().enumerate() {
        for ((mi, metric), seed) in metrics()
            .into_iter()
            .enumerate()
            .filter(|(_, m)| accepts(variant, *m))
            .flat_map(|m| (0..SEEDS).map(move |s| (m, s)))
        {
            let mut rng = StdRng::seed_from_u64(10_000 * vi as u64 + 100 * mi as u64 + seed);
            let n = match variant {
                Variant::Quadruplet { .. } => 8,
                _ => 11,
            };
            let (d, classes, k) = (4, 3, 4);
            let x = normal(&mut rng, n * d);
            let y = labels(&mut rng, n, classes);
            let c = normal(&mut rng, k * d);
            let loss = fit(variant, metric, &x, n, d, &c);
            let centers = loss.needs_centers().then_some((c.as_slice(), k));
            let mut wrts = vec![Wrt::Embeddings];
            if centers.is_some() {
                wrts.push(Wrt::Centers);
            }
            let base = evaluate(&loss, &x, n, d, &y, centers).unwrap();
            let name = format!("{} / seed {seed}", describe(variant, metric));
            if base.stats.active == 0 {
                failures.push(format!("{name}: nothing active, the check has no teeth"));
            }
            for wrt in wrts {
                cases += 1;
                match check(&loss, &x, n, d, &y, centers, wrt) {
                    Ok(c) => println!(
                        "{name} wrt {wrt:?}: error {:.2e}, skipped {}/{}, active {:?}",
                        c.error, c.skipped, c.total, base.stats.active_terms
                    ),
                    Err(e) => failures.push(format!("{name} wrt {wrt:?}: {e}")),
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

/// Rows with a norm below 1e-12 go through the clamped branch of the normalization (`x / 1e-12`),
/// whose gradient is `g / 1e-12`. Checked on a tiny row with a step scaled to it.
#[test]
fn gradient_through_a_clamped_normalization() {
    let mut rng = StdRng::seed_from_u64(7);
    let (n, d) = (6, 3);
    let mut x = normal(&mut rng, n * d);
    // Row 0 below the clamp; dot distance so that the loss stays smooth in it.
    x[..d].iter_mut().for_each(|v| *v *= 1e-14);
    let y = [0, 0, 1, 1, 2, 2];
    let loss = Loss::NPair(NPairConfig {
        metric: Metric::new(Distance::Dot, true),
    });
    let out = evaluate(&loss, &x, n, d, &y, None).unwrap();
    for j in 0..d {
        let h = 1e-20;
        let mut p = x.clone();
        p[j] += h;
        let up = evaluate(&loss, &p, n, d, &y, None).unwrap().stats.loss;
        p[j] -= 2.0 * h;
        let down = evaluate(&loss, &p, n, d, &y, None).unwrap().stats.loss;
        let fd = (up - down) / (2.0 * h);
        let g = out.grad[j];
        assert!(
            (fd - g).abs() <= 1e-5 * g.abs().max(1.0),
            "coordinate {j}: analytic {g:e}, numeric {fd:e}"
        );
    }
}
