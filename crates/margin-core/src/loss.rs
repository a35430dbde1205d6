//! One config type per loss, with the SPEC's defaults (PML's defaults where PML has the loss),
//! the [`Loss`] enum that backends dispatch on, and [`LossOverrides`] for command-line flags.

use crate::distance::{Distance, Metric};
use crate::error::{MarginError, Result};
use crate::tensor::LossInput;
use std::fmt;
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
}

impl Default for QuadrupletConfig {
    fn default() -> Self {
        Self {
            metric: Metric::new(Distance::SquaredEuclidean, true),
            margin: 1.0,
            margin2: 0.5,
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

/// The name of a loss, without its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// `contrastive`
    Contrastive,
    /// `triplet`
    Triplet,
    /// `triplet-center`
    TripletCenter,
    /// `n-pair`
    NPair,
    /// `quadruplet`
    Quadruplet,
    /// `lifted-structure`
    LiftedStructure,
}

impl LossKind {
    /// Every loss, in SPEC order.
    pub const ALL: [LossKind; 6] = [
        LossKind::Contrastive,
        LossKind::Triplet,
        LossKind::TripletCenter,
        LossKind::NPair,
        LossKind::Quadruplet,
        LossKind::LiftedStructure,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Contrastive => "contrastive",
            LossKind::Triplet => "triplet",
            LossKind::TripletCenter => "triplet-center",
            LossKind::NPair => "n-pair",
            LossKind::Quadruplet => "quadruplet",
            LossKind::LiftedStructure => "lifted-structure",
        }
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LossKind {
    type Err = MarginError;
    fn from_str(s: &str) -> Result<Self> {
        LossKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = LossKind::ALL.iter().map(|k| k.name()).collect();
                MarginError::config(format!(
                    "unknown loss '{s}' (expected one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// A loss with its parameters: what a backend is asked to compute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// See [`ContrastiveConfig`].
    Contrastive(ContrastiveConfig),
    /// See [`TripletConfig`].
    Triplet(TripletConfig),
    /// See [`TripletCenterConfig`].
    TripletCenter(TripletCenterConfig),
    /// See [`NPairConfig`].
    NPair(NPairConfig),
    /// See [`QuadrupletConfig`].
    Quadruplet(QuadrupletConfig),
    /// See [`LiftedStructureConfig`].
    LiftedStructure(LiftedStructureConfig),
}

impl Loss {
    /// The loss `kind` with the SPEC's defaults.
    pub fn default_for(kind: LossKind) -> Self {
        match kind {
            LossKind::Contrastive => Loss::Contrastive(Default::default()),
            LossKind::Triplet => Loss::Triplet(Default::default()),
            LossKind::TripletCenter => Loss::TripletCenter(Default::default()),
            LossKind::NPair => Loss::NPair(Default::default()),
            LossKind::Quadruplet => Loss::Quadruplet(Default::default()),
            LossKind::LiftedStructure => Loss::LiftedStructure(Default::default()),
        }
    }

    /// Which loss this is.
    pub fn kind(&self) -> LossKind {
        match self {
            Loss::Contrastive(_) => LossKind::Contrastive,
            Loss::Triplet(_) => LossKind::Triplet,
            Loss::TripletCenter(_) => LossKind::TripletCenter,
            Loss::NPair(_) => LossKind::NPair,
            Loss::Quadruplet(_) => LossKind::Quadruplet,
            Loss::LiftedStructure(_) => LossKind::LiftedStructure,
        }
    }

    /// The distance and normalization this loss uses.
    pub fn metric(&self) -> Metric {
        *self.metric_ref()
    }

    fn metric_ref(&self) -> &Metric {
        match self {
            Loss::Contrastive(c) => &c.metric,
            Loss::Triplet(c) => &c.metric,
            Loss::TripletCenter(c) => &c.metric,
            Loss::NPair(c) => &c.metric,
            Loss::Quadruplet(c) => &c.metric,
            Loss::LiftedStructure(c) => &c.metric,
        }
    }

    /// Mutable access to the distance and normalization.
    pub fn metric_mut(&mut self) -> &mut Metric {
        match self {
            Loss::Contrastive(c) => &mut c.metric,
            Loss::Triplet(c) => &mut c.metric,
            Loss::TripletCenter(c) => &mut c.metric,
            Loss::NPair(c) => &mut c.metric,
            Loss::Quadruplet(c) => &mut c.metric,
            Loss::LiftedStructure(c) => &mut c.metric,
        }
    }

    /// True for losses that read centers (triplet-center).
    pub fn needs_centers(&self) -> bool {
        matches!(self, Loss::TripletCenter(_))
    }

    /// The margins of this loss, by flag name, for validation and reporting.
    pub fn margins(&self) -> Vec<(&'static str, f64)> {
        match self {
            Loss::Contrastive(c) => {
                vec![("pos-margin", c.pos_margin), ("neg-margin", c.neg_margin)]
            }
            Loss::Triplet(c) => vec![("margin", c.margin)],
            Loss::TripletCenter(c) => vec![("margin", c.margin)],
            Loss::NPair(_) => vec![],
            Loss::Quadruplet(c) => vec![("margin", c.margin), ("margin2", c.margin2)],
            Loss::LiftedStructure(c) => {
                vec![("pos-margin", c.pos_margin), ("neg-margin", c.neg_margin)]
            }
        }
    }

    /// Checks the parameters: every margin finite.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in self.margins() {
            if !value.is_finite() {
                return Err(MarginError::config(format!(
                    "{name} must be finite, got {value}"
                )));
            }
        }
        Ok(())
    }

    /// Checks the parameters and that `input` suits this loss: triplet-center needs `K >= 2`
    /// centers and every label in `0..K`; other losses take no centers.
    pub fn validate_input(&self, input: &LossInput<'_>) -> Result<()> {
        self.validate()?;
        match (self.needs_centers(), input.centers) {
            (true, None) => Err(MarginError::input(
                "triplet-center needs centers (K x D); none were given",
            )),
            (true, Some(c)) => {
                let k = c.rows();
                if k < 2 {
                    return Err(MarginError::input(format!(
                        "triplet-center needs at least 2 centers, got {k}"
                    )));
                }
                if let Some((i, &l)) = input
                    .labels
                    .iter()
                    .enumerate()
                    .find(|&(_, &l)| l < 0 || l as u64 >= k as u64)
                {
                    return Err(MarginError::input(format!(
                        "label {l} at row {i} is outside 0..{k} (the number of centers)"
                    )));
                }
                Ok(())
            }
            (false, Some(_)) => Err(MarginError::input(format!(
                "{} takes no centers",
                self.kind()
            ))),
            (false, None) => Ok(()),
        }
    }
}

/// Optional parameter overrides, as given on the command line. [`LossOverrides::apply`] rejects a
/// parameter that the chosen loss does not have, so a typo never silently does nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossOverrides {
    /// `--distance`
    pub distance: Option<Distance>,
    /// `--normalize` / `--no-normalize`
    pub normalize: Option<bool>,
    /// `--margin`
    pub margin: Option<f64>,
    /// `--margin2`
    pub margin2: Option<f64>,
    /// `--pos-margin`
    pub pos_margin: Option<f64>,
    /// `--neg-margin`
    pub neg_margin: Option<f64>,
    /// `--smooth`
    pub smooth: Option<bool>,
    /// `--mining`
    pub mining: Option<Mining>,
}

impl LossOverrides {
    /// Applies the overrides to `loss` and validates the result.
    pub fn apply(&self, mut loss: Loss) -> Result<Loss> {
        if let Some(d) = self.distance {
            loss.metric_mut().distance = d;
        }
        if let Some(n) = self.normalize {
            loss.metric_mut().normalize = n;
        }
        let kind = loss.kind();
        let reject = |flag: &str| {
            Err(MarginError::config(format!(
                "--{flag} does not apply to the {kind} loss"
            )))
        };
        match &mut loss {
            Loss::Contrastive(c) => {
                set(&mut c.pos_margin, self.pos_margin);
                set(&mut c.neg_margin, self.neg_margin);
            }
            Loss::LiftedStructure(c) => {
                set(&mut c.pos_margin, self.pos_margin);
                set(&mut c.neg_margin, self.neg_margin);
            }
            Loss::Triplet(c) => {
                set(&mut c.margin, self.margin);
                set(&mut c.smooth, self.smooth);
                set(&mut c.mining, self.mining);
            }
            Loss::TripletCenter(c) => set(&mut c.margin, self.margin),
            Loss::Quadruplet(c) => {
                set(&mut c.margin, self.margin);
                set(&mut c.margin2, self.margin2);
            }
            Loss::NPair(_) => {}
        }
        let has = |k: &[LossKind]| k.contains(&kind);
        use LossKind::*;
        if self.margin.is_some() && !has(&[Triplet, TripletCenter, Quadruplet]) {
            return reject("margin");
        }
        if self.margin2.is_some() && !has(&[Quadruplet]) {
            return reject("margin2");
        }
        if (self.pos_margin.is_some() || self.neg_margin.is_some())
            && !has(&[Contrastive, LiftedStructure])
        {
            let flag = if self.pos_margin.is_some() {
                "pos-margin"
            } else {
                "neg-margin"
            };
            return reject(flag);
        }
        if self.smooth == Some(true) && !has(&[Triplet]) {
            return reject("smooth");
        }
        if self.mining.is_some() && !has(&[Triplet]) {
            return reject("mining");
        }
        loss.validate()?;
        Ok(loss)
    }
}

fn set<T: Copy>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}
