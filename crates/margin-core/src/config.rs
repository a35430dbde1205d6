//! One config type per loss, with the SPEC's defaults (PML's defaults where PML has the loss).

use crate::distance::{Distance, Metric};
use crate::error::{MarginError, Result};
use std::str::FromStr;

/// Which triplets the triplet loss reduces over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mining {
    /// Every valid triplet (PML's default, no miner).
    #[default]
    All,
    /// Per anchor: farthest positive and nearest negative (PML `BatchHardMiner`).
    Hard,
    /// `0 < d_an − d_ap <= margin` (PML `TripletMarginMiner(type_of_triplets="semihard")`).
    SemiHard,
}

impl Mining {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mining::All => "all",
            Mining::Hard => "hard",
            Mining::SemiHard => "semihard",
        }
    }
}

impl FromStr for Mining {
    type Err = MarginError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "all" => Ok(Mining::All),
            "hard" => Ok(Mining::Hard),
            "semihard" => Ok(Mining::SemiHard),
            _ => Err(MarginError::config(format!(
                "unknown mining '{s}' (expected all, hard or semihard)"
            ))),
        }
    }
}

/// PML `ContrastiveLoss`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContrastiveConfig {
    /// Default: euclidean, normalized.
    pub metric: Metric,
    /// Default 0.
    pub pos_margin: f64,
    /// Default 1.
    pub neg_margin: f64,
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Euclidean, true),
            pos_margin: 0.0,
            neg_margin: 1.0,
        }
    }
}

/// PML `TripletMarginLoss`, with an optional miner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TripletConfig {
    /// Default: euclidean, normalized.
    pub metric: Metric,
    /// Default 0.05.
    pub margin: f64,
    /// Softplus instead of relu. Default false.
    pub smooth: bool,
    /// Default [`Mining::All`].
    pub mining: Mining,
}

impl Default for TripletConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Euclidean, true),
            margin: 0.05,
            smooth: false,
            mining: Mining::All,
        }
    }
}

/// Triplet-center loss (He et al. 2018): embeddings against K learned centers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TripletCenterConfig {
    /// Default: euclidean, not normalized.
    pub metric: Metric,
    /// Default 1.
    pub margin: f64,
}

impl Default for TripletCenterConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Euclidean, false),
            margin: 1.0,
        }
    }
}

/// PML `NPairsLoss`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NPairConfig {
    /// Default: dot, normalized (so effectively cosine).
    pub metric: Metric,
}

impl Default for NPairConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Dot, true),
        }
    }
}

/// Quadruplet loss (Chen et al. 2017).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuadrupletConfig {
    /// Default: squared-euclidean, normalized.
    pub metric: Metric,
    /// α1, the triplet term's margin. Default 1.
    pub margin: f64,
    /// α2, the negative-pair term's margin. Default 0.5.
    pub margin2: f64,
    /// [`Mining::All`] (every triplet and quadruplet, the default) or [`Mining::Hard`] (per anchor:
    /// its farthest positive, nearest negative and nearest negative pair; see the README).
    pub mining: Mining,
}

impl Default for QuadrupletConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::SquaredEuclidean, true),
            margin: 1.0,
            margin2: 0.5,
            mining: Mining::All,
        }
    }
}

/// PML `LiftedStructureLoss`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiftedStructureConfig {
    /// Default: euclidean, normalized.
    pub metric: Metric,
    /// Default 1.
    pub neg_margin: f64,
    /// Default 0.
    pub pos_margin: f64,
}

impl Default for LiftedStructureConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Euclidean, true),
            neg_margin: 1.0,
            pos_margin: 0.0,
        }
    }
}

/// PML `MultiSimilarityLoss` (Wang et al., CVPR 2019), without its miner. Per anchor i:
/// `(1/α) log(1 + Σ_p exp(−α (s_ip − base))) + (1/β) log(1 + Σ_n exp(β (s_in − base)))`
/// (for a distance, `s − base` becomes `base − d`); `L = Mean(over anchors)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultiSimilarityConfig {
    /// Default: cosine.
    pub metric: Metric,
    /// Weight of positive pairs. Default 2.
    pub alpha: f64,
    /// Weight of negative pairs. Default 50.
    pub beta: f64,
    /// The shift of both exponents. Default 0.5.
    pub base: f64,
}

impl Default for MultiSimilarityConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Cosine, true),
            alpha: 2.0,
            beta: 50.0,
            base: 0.5,
        }
    }
}

/// PML `CircleLoss` (Sun et al., CVPR 2020); cosine only, as in PML. Per anchor i with both a
/// positive and a negative: `softplus(LSE_p(−γ [1+m−s_ip]₊ (s_ip − 1 + m)) + LSE_n(γ [s_in+m]₊
/// (s_in − m)))`, the `[·]₊` factors held constant in the gradient (PML detaches them);
/// `L = AvgNonZero(over anchors)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircleConfig {
    /// Cosine (the only distance PML's circle loss accepts).
    pub metric: Metric,
    /// The relaxation m. Default 0.4.
    pub margin: f64,
    /// The scale γ. Default 80.
    pub gamma: f64,
}

impl Default for CircleConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Cosine, true),
            margin: 0.4,
            gamma: 80.0,
        }
    }
}

/// PML `NTXentLoss` (InfoNCE with labels). Per ordered positive pair (a, p):
/// `−log(e^{s_ap/τ} / (e^{s_ap/τ} + Σ_n e^{s_an/τ}))` over a's negatives n (a distance is negated);
/// `L = Mean(over positive pairs)`, 0 when the batch has no positive or no negative pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NTXentConfig {
    /// Default: cosine.
    pub metric: Metric,
    /// τ. Default 0.07.
    pub temperature: f64,
}

impl Default for NTXentConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Cosine, true),
            temperature: 0.07,
        }
    }
}

/// PML `SupConLoss` (Khosla et al., NeurIPS 2020). Per anchor i with positives P(i):
/// `−(1/|P(i)|) Σ_p (s_ip/τ − LSE_{j≠i}(s_ij/τ))` (a distance is negated);
/// `L = AvgNonZero(over anchors)`, 0 when the batch has no positive or no negative pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SupConConfig {
    /// Default: cosine.
    pub metric: Metric,
    /// τ. Default 0.1.
    pub temperature: f64,
}

impl Default for SupConConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Cosine, true),
            temperature: 0.1,
        }
    }
}

/// PML `GeneralizedLiftedStructureLoss` (Hermans et al. 2017, p. 4). Per anchor i:
/// `relu(LSE_p(d_ip − pos_margin) + LSE_n(neg_margin − d_in))`, an empty LSE counting 0
/// (similarities flip signs); `L = Mean(over anchors)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneralizedLiftedStructureConfig {
    /// Default: euclidean, normalized.
    pub metric: Metric,
    /// Default 1.
    pub neg_margin: f64,
    /// Default 0.
    pub pos_margin: f64,
}

impl Default for GeneralizedLiftedStructureConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Euclidean, true),
            neg_margin: 1.0,
            pos_margin: 0.0,
        }
    }
}

/// PML `ProxyAnchorLoss` (Kim et al., CVPR 2020): the batch against K learned proxies (given as
/// the centers, `K x D`, labels in `0..K`). Per proxy c, with `P(c)` the samples of label c and
/// `N(c)` the others: `log(1 + Σ_{P(c)} e^{α(m − s_ic)})` summed over the proxies with a positive
/// and divided by their number, plus `log(1 + Σ_{N(c)} e^{α(s_ic + m)})` summed over all proxies
/// and divided by K (for a distance PML's signs: `d − m` and `−m − d`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxyAnchorConfig {
    /// Default: cosine (embeddings and proxies normalized).
    pub metric: Metric,
    /// The margin δ. Default 0.1.
    pub margin: f64,
    /// The scale α. Default 32.
    pub alpha: f64,
}

impl Default for ProxyAnchorConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Cosine, true),
            margin: 0.1,
            alpha: 32.0,
        }
    }
}

/// PML `ProxyNCALoss` (Movshovitz-Attias et al., ICCV 2017): per sample, the cross-entropy of a
/// softmax over the K proxies (given as the centers, labels in `0..K`) with logits
/// `−softmax_scale · d(x_i, p_c)`; `L = Mean` over the samples. As PML, a sample whose target
/// probability is 0 in float64 (below 2^−1075) is left out of the mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxyNcaConfig {
    /// Default: squared-euclidean, normalized (PML's `LpDistance(power=2)`).
    pub metric: Metric,
    /// The softmax scale (PML `softmax_scale`). Default 1.
    pub softmax_scale: f64,
}

impl Default for ProxyNcaConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::SquaredEuclidean, true),
            softmax_scale: 1.0,
        }
    }
}

/// PML `NormalizedSoftmaxLoss` (Zhai & Wu, BMVC 2019): per sample, the cross-entropy of a softmax
/// over the K class weights (given as the centers, `K x D`: PML's `W` transposed) with logits
/// `s(x_i, w_c) / temperature`; `L = Mean` over the samples. PML normalizes the class weights
/// whatever its distance says, so the metric must normalize (`Loss::validate` refuses a raw one
/// rather than give other numbers than PML's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalizedSoftmaxConfig {
    /// Default: dot, normalized (so cosine). Must normalize.
    pub metric: Metric,
    /// Default 0.05.
    pub temperature: f64,
}

impl Default for NormalizedSoftmaxConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Dot, true),
            temperature: 0.05,
        }
    }
}

/// PML `CosFaceLoss` (Wang et al., CVPR 2018; large margin cosine loss): per sample, the
/// cross-entropy of a softmax over the K class weights (the centers, `K x D`: PML's `W`
/// transposed) with logits `scale · (cos(x_i, w_c) − margin · [c = y_i])`; `L = Mean` over the
/// samples. Cosine only, as PML's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosFaceConfig {
    /// Cosine (the only distance PML's CosFace accepts).
    pub metric: Metric,
    /// The additive cosine margin. Default 0.35.
    pub margin: f64,
    /// The logit scale. Default 64.
    pub scale: f64,
}

impl Default for CosFaceConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::Cosine, true),
            margin: 0.35,
            scale: 64.0,
        }
    }
}

/// What the proxy-softmax losses (proxy-nca, normalized-softmax, cosface) share: per sample i, a
/// cross-entropy over the K centers with logits `z_ic = scale · (−e_ic − target_margin · [c = y_i])`,
/// `e = sign · D` (smaller is closer), reduced with a Mean over the counted samples. One kernel
/// per backend serves all three ([`crate::Loss::proxy_softmax`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxySoftmax {
    /// Multiplies every logit (proxy-nca's softmax scale, 1 / temperature, cosface's scale).
    pub scale: f64,
    /// Subtracted from the target similarity before scaling (cosface's margin; else 0).
    pub target_margin: f64,
    /// Leave out a sample whose target log-probability is below [`ProxySoftmax::UNDERFLOW`]
    /// (proxy-nca: PML drops the samples whose float64 softmax gives the target exactly 0).
    pub drop_underflow: bool,
}

impl ProxySoftmax {
    /// `ln 2^−1075`: a probability below `2^−1075` rounds to 0 in float64.
    pub const UNDERFLOW: f64 = -745.133_219_101_941_2;
}
