//! The [`Loss`] enum that backends dispatch on, and [`LossKind`], its name without parameters.

use crate::config::*;
use crate::distance::{Distance, Metric};
use crate::error::{MarginError, Result};
use crate::tensor::LossInput;
use std::fmt;
use std::str::FromStr;

/// Generates [`LossKind`] (with its command-line names and `ALL`), [`Loss`] and the accessors
/// that only route to the config, so that adding a loss is one line here plus its config.
macro_rules! losses {
    ($( $(#[$doc:meta])* $variant:ident($config:ident) = $name:literal, )*) => {
        /// The name of a loss, without its parameters.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum LossKind {
            $( #[doc = concat!("`", $name, "`")] $variant, )*
        }

        impl LossKind {
            /// Every loss: the SPEC's six, then the ones PML users reach for next.
            pub const ALL: [LossKind; [$(stringify!($variant)),*].len()] = [$(LossKind::$variant),*];

            /// The command-line name.
            pub fn name(self) -> &'static str {
                match self {
                    $( LossKind::$variant => $name, )*
                }
            }
        }

        /// A loss with its parameters: what a backend is asked to compute.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum Loss {
            $( $(#[$doc])* $variant($config), )*
        }

        impl Loss {
            /// The loss `kind` with its defaults.
            pub fn default_for(kind: LossKind) -> Self {
                match kind {
                    $( LossKind::$variant => Loss::$variant(Default::default()), )*
                }
            }

            /// Which loss this is.
            pub fn kind(&self) -> LossKind {
                match self {
                    $( Loss::$variant(_) => LossKind::$variant, )*
                }
            }

            fn metric_ref(&self) -> &Metric {
                match self {
                    $( Loss::$variant(c) => &c.metric, )*
                }
            }

            /// Mutable access to the distance and normalization.
            pub fn metric_mut(&mut self) -> &mut Metric {
                match self {
                    $( Loss::$variant(c) => &mut c.metric, )*
                }
            }
        }
    };
}

losses! {
    /// See [`ContrastiveConfig`].
    Contrastive(ContrastiveConfig) = "contrastive",
    /// See [`TripletConfig`].
    Triplet(TripletConfig) = "triplet",
    /// See [`TripletCenterConfig`].
    TripletCenter(TripletCenterConfig) = "triplet-center",
    /// See [`NPairConfig`].
    NPair(NPairConfig) = "n-pair",
    /// See [`QuadrupletConfig`].
    Quadruplet(QuadrupletConfig) = "quadruplet",
    /// See [`LiftedStructureConfig`].
    LiftedStructure(LiftedStructureConfig) = "lifted-structure",
    /// See [`MultiSimilarityConfig`].
    MultiSimilarity(MultiSimilarityConfig) = "multi-similarity",
    /// See [`CircleConfig`].
    Circle(CircleConfig) = "circle",
    /// See [`NTXentConfig`].
    NTXent(NTXentConfig) = "nt-xent",
    /// See [`SupConConfig`].
    SupCon(SupConConfig) = "supcon",
    /// See [`GeneralizedLiftedStructureConfig`].
    GeneralizedLiftedStructure(GeneralizedLiftedStructureConfig) = "generalized-lifted-structure",
    /// See [`ProxyAnchorConfig`].
    ProxyAnchor(ProxyAnchorConfig) = "proxy-anchor",
    /// See [`ProxyNcaConfig`].
    ProxyNca(ProxyNcaConfig) = "proxy-nca",
    /// See [`NormalizedSoftmaxConfig`].
    NormalizedSoftmax(NormalizedSoftmaxConfig) = "normalized-softmax",
    /// See [`CosFaceConfig`].
    CosFace(CosFaceConfig) = "cosface",
}

impl LossKind {
    /// The six losses of the SPEC.
    pub const SEED: [LossKind; 6] = [
        LossKind::Contrastive,
        LossKind::Triplet,
        LossKind::TripletCenter,
        LossKind::NPair,
        LossKind::Quadruplet,
        LossKind::LiftedStructure,
    ];
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

impl Loss {
    /// The distance and normalization this loss uses.
    pub fn metric(&self) -> Metric {
        *self.metric_ref()
    }

    /// True for losses that read centers: triplet-center, proxy-anchor (its proxies) and the
    /// proxy-softmax losses (proxy-nca's proxies, normalized-softmax's and cosface's class weights).
    pub fn needs_centers(&self) -> bool {
        matches!(self, Loss::TripletCenter(_) | Loss::ProxyAnchor(_))
            || self.proxy_softmax().is_some()
    }

    /// The shared form of proxy-nca, normalized-softmax and cosface (a softmax cross-entropy over
    /// the centers); `None` for every other loss.
    pub fn proxy_softmax(&self) -> Option<ProxySoftmax> {
        match *self {
            Loss::ProxyNca(c) => Some(ProxySoftmax {
                scale: c.softmax_scale,
                target_margin: 0.0,
                drop_underflow: true,
            }),
            Loss::NormalizedSoftmax(c) => Some(ProxySoftmax {
                scale: 1.0 / c.temperature,
                target_margin: 0.0,
                drop_underflow: false,
            }),
            Loss::CosFace(c) => Some(ProxySoftmax {
                scale: c.scale,
                target_margin: c.margin,
                drop_underflow: false,
            }),
            _ => None,
        }
    }

    /// The fewest centers a loss with centers takes: triplet-center needs a center other than
    /// the own one; the others run with one (proxy-anchor's negative term is then 0, a softmax
    /// over one class gives 0, as in PML).
    pub fn min_centers(&self) -> usize {
        match self {
            Loss::TripletCenter(_) => 2,
            _ => 1,
        }
    }

    /// False for the losses that reject a reference set: n-pair (PML raises) and every loss with
    /// centers (they already are its reference); see `docs/REFERENCE_SETS.md`.
    pub fn supports_reference(&self) -> bool {
        !matches!(self, Loss::NPair(_)) && !self.needs_centers()
    }

    /// True for the seven losses PML builds on `GenericPairLoss` (contrastive, lifted structure,
    /// multi-similarity, circle, nt-xent, supcon, generalized lifted structure). Against a
    /// reference set they give 0 with nothing active when there is at most one positive and at
    /// most one negative pair (rule 2.3 of docs/REFERENCE_SETS.md; a square batch always has an
    /// even number of each).
    pub fn is_pair_loss(&self) -> bool {
        matches!(
            self,
            Loss::Contrastive(_)
                | Loss::LiftedStructure(_)
                | Loss::MultiSimilarity(_)
                | Loss::Circle(_)
                | Loss::NTXent(_)
                | Loss::SupCon(_)
                | Loss::GeneralizedLiftedStructure(_)
        )
    }

    /// The error for a reference set given to a loss that does not take one.
    pub fn reference_unsupported(&self) -> MarginError {
        MarginError::config(format!(
            "{} does not take a reference set (supported: every loss but n-pair and the \
             losses with centers)",
            self.kind()
        ))
    }

    /// The numeric parameters of this loss, by flag name, for validation and reporting.
    pub fn params(&self) -> Vec<(&'static str, f64)> {
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
            Loss::MultiSimilarity(c) => {
                vec![("alpha", c.alpha), ("beta", c.beta), ("base", c.base)]
            }
            Loss::Circle(c) => vec![("margin", c.margin), ("gamma", c.gamma)],
            Loss::NTXent(c) => vec![("temperature", c.temperature)],
            Loss::SupCon(c) => vec![("temperature", c.temperature)],
            Loss::GeneralizedLiftedStructure(c) => {
                vec![("pos-margin", c.pos_margin), ("neg-margin", c.neg_margin)]
            }
            Loss::ProxyAnchor(c) => vec![("margin", c.margin), ("alpha", c.alpha)],
            Loss::ProxyNca(c) => vec![("scale", c.softmax_scale)],
            Loss::NormalizedSoftmax(c) => vec![("temperature", c.temperature)],
            Loss::CosFace(c) => vec![("margin", c.margin), ("scale", c.scale)],
        }
    }

    /// Checks the parameters: every one finite; α, β, γ and τ strictly positive; circle on
    /// cosine only (as PML); quadruplet mining `all` or `hard`.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in self.params() {
            if !value.is_finite() {
                return Err(MarginError::config(format!(
                    "{name} must be finite, got {value}"
                )));
            }
            if matches!(name, "alpha" | "beta" | "gamma" | "temperature" | "scale") && value <= 0.0
            {
                return Err(MarginError::config(format!(
                    "{name} must be > 0, got {value}"
                )));
            }
        }
        match self {
            Loss::Circle(c) if c.metric.distance != Distance::Cosine => {
                Err(MarginError::config(format!(
                    "the circle loss needs the cosine distance (as PML's), got {}",
                    c.metric.distance.name()
                )))
            }
            Loss::CosFace(c) if c.metric.distance != Distance::Cosine => {
                Err(MarginError::config(format!(
                    "the cosface loss needs the cosine distance (as PML's), got {}",
                    c.metric.distance.name()
                )))
            }
            Loss::NormalizedSoftmax(c) if !c.metric.normalizes() => Err(MarginError::config(
                "the normalized-softmax loss normalizes its class weights (as PML's, always), so it \
                 needs --normalize (or cosine)",
            )),
            Loss::Quadruplet(c) if c.mining == Mining::SemiHard => Err(MarginError::config(
                "quadruplet mining must be all or hard (semihard is triplet-only)",
            )),
            _ => Ok(()),
        }
    }

    /// Checks the parameters and that `input` suits this loss: triplet-center needs `K >= 2`
    /// centers, proxy-anchor `K >= 1`, both every label in `0..K`; other losses take no centers.
    pub fn validate_input(&self, input: &LossInput<'_>) -> Result<()> {
        self.validate()?;
        if input.reference.is_some() && !self.supports_reference() {
            return Err(self.reference_unsupported());
        }
        match (self.needs_centers(), input.centers) {
            (true, None) => Err(MarginError::input(format!(
                "{} needs centers (K x D); none were given",
                self.kind()
            ))),
            (true, Some(c)) => {
                let k = c.rows();
                if k < self.min_centers() {
                    return Err(MarginError::input(format!(
                        "{} needs at least {} centers, got {k}",
                        self.kind(),
                        self.min_centers()
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
