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

use margin_core::{
    CircleConfig, ContrastiveConfig, Distance, GeneralizedLiftedStructureConfig,
    LiftedStructureConfig, Loss, Metric, Mining, MultiSimilarityConfig, NPairConfig, NTXentConfig,
    QuadrupletConfig, SupConConfig, TripletCenterConfig, TripletConfig,
};
use margin_cpu::reference::{RefOutput, evaluate, pairwise};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

const REL_STEP: f64 = 1e-6;
const TOLERANCE: f64 = 1e-5;
/// Random batches per configuration.
const SEEDS: u64 = 3;

/// Which loss, before its margins are fitted to the data.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Contrastive,
    Triplet { mining: Mining, smooth: bool },
    TripletCenter,
    NPair,
    Quadruplet { mining: Mining },
    LiftedStructure,
    MultiSimilarity,
    Circle,
    NTXent,
    SupCon,
    GeneralizedLiftedStructure,
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

fn variants() -> Vec<Variant> {
    let mut out = vec![Variant::Contrastive];
    for mining in [Mining::All, Mining::Hard, Mining::SemiHard] {
        for smooth in [false, true] {
            out.push(Variant::Triplet { mining, smooth });
        }
    }
    out.extend([
        Variant::TripletCenter,
        Variant::NPair,
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

/// The metrics a variant accepts: circle is cosine only (as PML's).
fn accepts(variant: Variant, metric: Metric) -> bool {
    !matches!(variant, Variant::Circle) || metric.distance == Distance::Cosine
}

/// About the `q` quantile of `values`: the midpoint of two neighbouring sorted values, so that a
/// margin built from it does not coincide with a data value (which would put a term on its kink).
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 2) as f64 * q).round() as usize;
    (v[i] + v[i + 1]) / 2.0
}

fn off_diagonal(m: &[f64], n: usize) -> Vec<f64> {
    (0..n * n)
        .filter(|i| i / n != i % n)
        .map(|i| m[i])
        .collect()
}

/// Builds the loss with margins placed inside the spread of this batch's distances, so that a
/// good share of the hinge terms is active and a good share is not.
fn fit_loss(variant: Variant, metric: Metric, x: &[f64], n: usize, d: usize, c: &[f64]) -> Loss {
    let dist = off_diagonal(&pairwise(metric, x, n, x, n, d), n);
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
        Variant::TripletCenter => {
            let to_centers = pairwise(metric, x, n, c, c.len() / d, d);
            Loss::TripletCenter(TripletCenterConfig {
                metric,
                margin: quantile(&to_centers, 0.75) - quantile(&to_centers, 0.25),
            })
        }
        Variant::NPair => Loss::NPair(NPairConfig { metric }),
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
        // Exponents scaled to the spread, so that no single term dominates every sum.
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

/// The circle loss with its relu factors frozen at the similarities `frozen` (N x N): a smooth
/// function of `x` whose gradient at the point `frozen` came from is the circle gradient.
/// `count` is the AvgNonZero denominator at that point.
fn circle_frozen(
    cfg: &CircleConfig,
    x: &[f64],
    n: usize,
    d: usize,
    y: &[i64],
    frozen: &[f64],
    count: u64,
) -> f64 {
    let s = pairwise(cfg.metric, x, n, x, n, d);
    let (m, gamma) = (cfg.margin, cfg.gamma);
    let lse = |v: &[f64]| {
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        max + v.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
    };
    let mut sum = 0.0;
    for i in 0..n {
        let (mut lp, mut ln) = (Vec::new(), Vec::new());
        for j in (0..n).filter(|&j| j != i) {
            let (sij, fij) = (s[i * n + j], frozen[i * n + j]);
            if y[i] == y[j] {
                lp.push(-gamma * (1.0 + m - fij).max(0.0) * (sij - (1.0 - m)));
            } else {
                ln.push(gamma * (fij + m).max(0.0) * (sij - m));
            }
        }
        if !lp.is_empty() && !ln.is_empty() {
            sum += (lse(&lp) + lse(&ln)).exp().ln_1p();
        }
    }
    if count == 0 { 0.0 } else { sum / count as f64 }
}

fn normal(rng: &mut StdRng, len: usize) -> Vec<f64> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

/// `n` labels over `classes` classes, each class at least twice (for n >= 2 classes), shuffled.
fn labels(rng: &mut StdRng, n: usize, classes: usize) -> Vec<i64> {
    let mut l: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    l.shuffle(rng);
    l
}

/// Which input a check perturbs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wrt {
    Embeddings,
    Centers,
}

/// The outcome of one check, for the summary line.
struct Checked {
    error: f64,
    skipped: usize,
    total: usize,
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
    let eval = |x: &[f64], c: Option<&[f64]>| -> RefOutput {
        let centers = c.zip(centers.map(|(_, k)| k));
        let mut out = evaluate(loss, x, n, d, y, centers).unwrap();
        if let Loss::Circle(cfg) = loss {
            out.stats.loss = circle_frozen(cfg, x, n, d, y, &frozen, base.stats.active_terms[0]);
        }
        out
    };
    let surrogate = eval(x, centers.map(|(c, _)| c)).stats.loss;
    if (surrogate - base.stats.loss).abs() > 1e-12 * (1.0 + base.stats.loss.abs()) {
        return Err(format!(
            "the surrogate {surrogate} differs from the loss {}",
            base.stats.loss
        ));
    }
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
    let (mut diff2, mut norm2, mut skipped) = (0.0, 0.0, 0);
    for i in 0..point.len() {
        let h = REL_STEP * point[i].abs().max(1.0);
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
        diff2 += (fd - analytic[i]).powi(2);
        norm2 += fd * fd;
    }
    let error = diff2.sqrt() / norm2.sqrt().max(1e-8);
    let total = point.len();
    if skipped * 5 > total {
        return Err(format!("{skipped} of {total} coordinates sit on a kink"));
    }
    if error > TOLERANCE {
        return Err(format!(
            "relative gradient error {error:.3e} > {TOLERANCE:e} (loss {}, active {:?})",
            base.stats.loss, base.stats.active_terms
        ));
    }
    Ok(Checked {
        error,
        skipped,
        total,
    })
}

fn describe(variant: Variant, metric: Metric) -> String {
    let norm = if metric.normalizes() {
        "normalized"
    } else {
        "raw"
    };
    format!("{variant:?} / {} / {norm}", metric.distance)
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
            let loss = fit_loss(variant, metric, &x, n, d, &c);
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
