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
