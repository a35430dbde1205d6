//! Finite-difference checks of the f64 reference's gradients with a reference set
//! ([`evaluate_with_reference`]), for every loss that takes one × distance × normalization
//! (× mining × smooth for triplet, × mining for quadruplet), on random rectangles with and
//! without a self index. The edge cases of the contract and the square case as a special
//! rectangle are in `reference_sets_edges.rs`; both share `ref_rectangles`.
//!
//! The check is `gradcheck_common`'s, as in `reference_gradcheck.rs`: central differences in f64 with a relative step of 1e-6, the
//! analytic and numeric gradients within 1e-5 in relative norm; a coordinate whose step crosses a
//! kink (a change of the active counts, or two-step and one-step differences that disagree) is
//! skipped, never compensated by a looser tolerance. Circle holds its relu factors constant (as
//! PML), so its check differentiates a surrogate with those factors frozen at the base point.
//!
//! The reference set is a constant: only the batch is perturbed. With a self index, the
//! reference holds near copies of the batch rows at their self columns (as in a cross-batch
//! memory, see `ref_rectangles::rectangle`), and one row has no copy.

mod gradcheck_common;
mod ref_rectangles;

use gradcheck_common::{
    Checked, Columns, SEEDS, Variant, accepts, central_differences, check_surrogate, circle_frozen,
    describe, fit_loss, variants,
};
use margin_core::{Loss, Metric};
use margin_cpu::reference::{RefOutput, evaluate_with_reference, pairwise};
use rand::SeedableRng;
use rand::rngs::StdRng;
use ref_rectangles::{D, Rectangle, metrics, rectangle};

/// Compares the analytic gradient with central differences over every batch coordinate.
fn check(loss: &Loss, rect: &Rectangle) -> Result<Checked, String> {
    let run = |x: &[f64]| evaluate_with_reference(loss, x, rect.n, D, &rect.y, rect.reference());
    let base = run(&rect.x).map_err(|e| e.to_string())?;
    let frozen = pairwise(loss.metric(), &rect.x, rect.n, &rect.r, rect.m, D);
    let self_column = |i: usize| rect.sigma.as_ref().map(|s| s[i] as usize);
    let cols = Columns {
        labels: &rect.rl,
        own: &self_column,
    };
    let eval = |x: &[f64]| -> RefOutput {
        let mut out = run(x).unwrap();
        if let Loss::Circle(cfg) = loss {
            let s = pairwise(cfg.metric, x, rect.n, &rect.r, rect.m, D);
            let count = base.stats.active_terms[0];
            out.stats.loss = circle_frozen(cfg, &s, &rect.y, &cols, &frozen, count);
        }
        out
    };
    check_surrogate(eval(&rect.x).stats.loss, base.stats.loss)?;
    let at = |i: usize, t: f64| {
        let mut p = rect.x.clone();
        p[i] += t;
        let out = eval(&p);
        (out.stats.loss, out.stats.active_terms)
    };
    let probe = (base.stats.loss, base.stats.active_terms);
    central_differences(&rect.x, &base.grad, probe, at)
}

/// [`describe`] with whether the rectangle has a self index.
fn describe_rect(variant: Variant, metric: Metric, with_self: bool) -> String {
    let own = if with_self { "self index" } else { "no self" };
    format!("{} / {own}", describe(variant, metric))
}

#[test]
fn analytic_gradients_match_finite_differences_on_rectangles() {
    let mut failures = Vec::new();
    let mut cases = 0;
    let with_reference = variants().into_iter().filter(|v| v.supports_reference());
    for (vi, variant) in with_reference.enumerate() {
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
                    let loss = fit_loss(variant, metric, &rect.entries(metric), None);
                    let name = format!(
                        "{} / seed {seed}",
                        describe_rect(variant, metric, with_self)
                    );
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
                        describe_rect(variant, metric, with_self)
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
