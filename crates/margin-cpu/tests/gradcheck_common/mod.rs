//! The finite-difference gradient check of the f64 reference, shared by the square suite
//! (`reference_gradcheck.rs`) and the reference-set suite (`reference_sets_gradcheck.rs`): the
//! loss variants, margins fitted to the data, circle's frozen surrogate and the central
//! differences with kink detection, so that both suites hold the gradients to the same rule.
//!
//! Central differences in f64 with a relative step of 1e-6; the analytic and numeric gradients
//! must agree within 1e-5 in relative norm. A coordinate whose step crosses a kink (a change of
//! the active counts, or two-step and one-step differences that disagree) is skipped, never
//! compensated by a looser tolerance; more than a fifth of them skipped is a failure.

#![allow(dead_code)]

use margin_core::{
    CircleConfig, ContrastiveConfig, CosFaceConfig, Distance, GeneralizedLiftedStructureConfig,
    LiftedStructureConfig, Loss, Metric, Mining, MultiSimilarityConfig, NPairConfig, NTXentConfig,
    NormalizedSoftmaxConfig, ProxyAnchorConfig, ProxyNcaConfig, QuadrupletConfig, SupConConfig,
    TripletCenterConfig, TripletConfig,
};

pub const REL_STEP: f64 = 1e-6;
pub const TOLERANCE: f64 = 1e-5;
/// Random batches per configuration.
pub const SEEDS: u64 = 3;

/// Which loss, before its margins are fitted to the data.
#[derive(Debug, Clone, Copy)]
pub enum Variant {
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
    ProxyAnchor,
    ProxyNca,
    NormalizedSoftmax,
    CosFace,
}

impl Variant {
    /// False for the losses that reject a reference set (n-pair, triplet-center, proxy-anchor).
    pub fn supports_reference(self) -> bool {
        !matches!(self, Variant::NPair) && !self.has_centers()
    }

    /// True for the losses against centers (triplet-center, proxy-anchor).
    pub fn has_centers(self) -> bool {
        matches!(
            self,
            Variant::TripletCenter
                | Variant::ProxyAnchor
                | Variant::ProxyNca
                | Variant::NormalizedSoftmax
                | Variant::CosFace
        )
    }
}

/// Every variant: triplet × mining × smooth, quadruplet × mining, the others once.
pub fn variants() -> Vec<Variant> {
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
        Variant::ProxyAnchor,
        Variant::ProxyNca,
        Variant::NormalizedSoftmax,
        Variant::CosFace,
    ]);
    out
}

/// The metrics a variant accepts: circle and cosface are cosine only (as PML's), normalized-softmax
/// normalizes.
pub fn accepts(variant: Variant, metric: Metric) -> bool {
    match variant {
        Variant::Circle | Variant::CosFace => metric.distance == Distance::Cosine,
        Variant::NormalizedSoftmax => metric.normalizes(),
        _ => true,
    }
}

/// `variant / distance / normalized|raw`, for failure messages.
pub fn describe(variant: Variant, metric: Metric) -> String {
    let norm = if metric.normalizes() {
        "normalized"
    } else {
        "raw"
    };
    format!("{variant:?} / {} / {norm}", metric.distance)
}

/// About the `q` quantile of `values`: the midpoint of two neighbouring sorted values, so that a
/// margin built from it does not coincide with a data value (which would put a term on its kink).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 2) as f64 * q).round() as usize;
    (v[i] + v[i + 1]) / 2.0
}

/// Builds the loss with margins placed inside the spread of `dist` (the batch's distances, no
/// self pairs), so that a good share of the hinge terms is active and a good share is not.
/// Triplet-center and proxy-anchor fit to `to_centers`, the distances to the centers.
pub fn fit_loss(
    variant: Variant,
    metric: Metric,
    dist: &[f64],
    to_centers: Option<&[f64]>,
) -> Loss {
    let q = |p| quantile(dist, p);
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
            let c = to_centers.expect("triplet-center needs the distances to its centers");
            Loss::TripletCenter(TripletCenterConfig {
                metric,
                margin: quantile(c, 0.75) - quantile(c, 0.25),
            })
        }
        // Smooth: the margin sits mid-spread and α keeps every exponent within a few units.
        Variant::ProxyAnchor => {
            let c = to_centers.expect("proxy-anchor needs the distances to its proxies");
            Loss::ProxyAnchor(ProxyAnchorConfig {
                metric,
                margin: quantile(c, 0.5).abs(),
                alpha: 4.0 / (quantile(c, 0.75) - quantile(c, 0.25)),
            })
        }
        // Softmax scales that keep the logits within a few units of each other.
        Variant::ProxyNca => {
            let c = to_centers.expect("proxy-nca needs the distances to its proxies");
            Loss::ProxyNca(ProxyNcaConfig {
                metric,
                softmax_scale: 2.0 / (quantile(c, 0.75) - quantile(c, 0.25)),
            })
        }
        Variant::NormalizedSoftmax => {
            let c = to_centers.expect("normalized-softmax needs the distances to its weights");
            Loss::NormalizedSoftmax(NormalizedSoftmaxConfig {
                metric,
                temperature: (quantile(c, 0.75) - quantile(c, 0.25)) / 2.0,
            })
        }
        Variant::CosFace => Loss::CosFace(CosFaceConfig {
            metric,
            margin: 0.2,
            scale: 4.0,
        }),
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

/// The columns of an N x M similarity matrix and what excludes them from a row.
pub struct Columns<'a> {
    /// M labels.
    pub labels: &'a [i64],
    /// Per row, the column that is not one of its pairs (the diagonal, or the self index).
    pub own: &'a dyn Fn(usize) -> Option<usize>,
}

/// The circle loss with its relu factors frozen at the similarities `frozen` (N x M), evaluated
/// at the similarities `s` (N x M): a smooth function of the inputs whose gradient at the point
/// `frozen` came from is the circle gradient. `count` is the AvgNonZero denominator there.
pub fn circle_frozen(
    cfg: &CircleConfig,
    s: &[f64],
    y: &[i64],
    cols: &Columns<'_>,
    frozen: &[f64],
    count: u64,
) -> f64 {
    let m = cols.labels.len();
    let (mg, gamma) = (cfg.margin, cfg.gamma);
    let lse = |v: &[f64]| {
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        max + v.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
    };
    let mut sum = 0.0;
    for (i, &yi) in y.iter().enumerate() {
        let own = (cols.own)(i);
        let (mut lp, mut ln) = (Vec::new(), Vec::new());
        for j in 0..m {
            let (sij, fij) = (s[i * m + j], frozen[i * m + j]);
            if yi != cols.labels[j] {
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

/// The loss and active counts at a point.
pub type Probe = (f64, [u64; 2]);

/// The outcome of one check, for the summary line.
pub struct Checked {
    pub error: f64,
    pub skipped: usize,
    pub total: usize,
}

/// `Err` when the surrogate that the check differentiates is not the loss at the base point.
pub fn check_surrogate(surrogate: f64, loss: f64) -> Result<(), String> {
    if (surrogate - loss).abs() > 1e-12 * (1.0 + loss.abs()) {
        return Err(format!(
            "the surrogate {surrogate} differs from the loss {loss}"
        ));
    }
    Ok(())
}

/// Compares `analytic` with central differences of `at(i, t)` (the loss and active counts with
/// coordinate `i` of `point` moved by `t`) over every coordinate; `base` is the unmoved probe.
pub fn central_differences(
    point: &[f64],
    analytic: &[f64],
    base: Probe,
    at: impl Fn(usize, f64) -> Probe,
) -> Result<Checked, String> {
    let (mut diff2, mut norm2, mut skipped) = (0.0, 0.0, 0);
    for i in 0..point.len() {
        let h = REL_STEP * point[i].abs().max(1.0);
        let (lp, ap) = at(i, h);
        let (lm, am) = at(i, -h);
        let (lp2, _) = at(i, 2.0 * h);
        let (lm2, _) = at(i, -2.0 * h);
        let fd = (lp - lm) / (2.0 * h);
        let fd2 = (lp2 - lm2) / (4.0 * h);
        let kink = ap != base.1 || am != base.1 || (fd - fd2).abs() > 1e-4 * (1.0 + fd.abs());
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
            base.0, base.1
        ));
    }
    Ok(Checked {
        error,
        skipped,
        total,
    })
}
