//! Finite-difference checks of the f64 reference's gradients with a reference set
//! ([`evaluate_with_reference`]), for every loss that takes one × distance × normalization
//! (× mining × smooth for triplet, × mining for quadruplet), on random rectangles with and
//! without a self index. The edge cases of the contract and the square case as a special
//! rectangle are in `reference_sets_edges.rs`; both share `ref_rectangles`.
//!
//! As in `reference_gradcheck.rs`: central differences in f64 with a relative step of 1e-6, the
//! analytic and numeric gradients within 1e-5 in relative norm; a coordinate whose step crosses a
//! kink (a change of the active counts, or two-step and one-step differences that disagree) is
//! skipped, never compensated by a looser tolerance. Circle holds its relu factors constant (as
//! PML), so its check differentiates a surrogate with those factors frozen at the base point.
//!
//! The reference set is a constant: only the batch is perturbed. With a self index, the
//! reference holds near copies of the batch rows at their self columns (as in a cross-batch
//! memory, see `ref_rectangles::rectangle`), and one row has no copy.

use margin_core::{
    CircleConfig, ContrastiveConfig, Distance, GeneralizedLiftedStructureConfig,
    LiftedStructureConfig, Loss, Metric, Mining, MultiSimilarityConfig, NTXentConfig,
    QuadrupletConfig, SupConConfig, TripletConfig,
};
use margin_cpu::reference::{RefOutput, evaluate_with_reference, pairwise};
use rand::SeedableRng;
use rand::rngs::StdRng;

mod ref_rectangles;

use ref_rectangles::{D, Rectangle, metrics, rectangle};

const REL_STEP: f64 = 1e-6;
const TOLERANCE: f64 = 1e-5;
/// Random rectangles per configuration and self-index mode.
const SEEDS: u64 = 3;

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
