//! Distances and similarities between embedding rows, as the SPEC defines them.

use crate::error::{MarginError, Result};
use std::fmt;
use std::str::FromStr;

/// Rows are divided by `max(‖x‖₂, NORM_EPS)` when normalization is on (torch's `F.normalize`).
pub const NORM_EPS: f64 = 1e-12;

/// The four pairwise functions of the SPEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distance {
    /// `sqrt(max(‖a‖² + ‖b‖² − 2a·b, 0))`; its gradient at 0 is 0.
    Euclidean,
    /// `max(‖a‖² + ‖b‖² − 2a·b, 0)`.
    SquaredEuclidean,
    /// `a·b` on normalized rows: a similarity, normalization always on.
    Cosine,
    /// `a·b`: a similarity.
    Dot,
}

impl Distance {
    /// Every distance, in SPEC order.
    pub const ALL: [Distance; 4] = [
        Distance::Euclidean,
        Distance::SquaredEuclidean,
        Distance::Cosine,
        Distance::Dot,
    ];

    /// True for `cosine` and `dot`, where larger means closer.
    pub fn is_similarity(self) -> bool {
        matches!(self, Distance::Cosine | Distance::Dot)
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Distance::Euclidean => "euclidean",
            Distance::SquaredEuclidean => "squared-euclidean",
            Distance::Cosine => "cosine",
            Distance::Dot => "dot",
        }
    }
}

impl fmt::Display for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Distance {
    type Err = MarginError;
    fn from_str(s: &str) -> Result<Self> {
        Distance::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                MarginError::config(format!(
                    "unknown distance '{s}' (expected euclidean, squared-euclidean, cosine or dot)"
                ))
            })
    }
}

/// A distance together with whether rows are normalized first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Metric {
    /// Which pairwise function.
    pub distance: Distance,
    /// Whether rows are L2-normalized first. Ignored (always on) for [`Distance::Cosine`].
    pub normalize: bool,
}

impl Metric {
    /// A metric with the given distance and normalization flag.
    pub fn new(distance: Distance, normalize: bool) -> Self {
        Self {
            distance,
            normalize,
        }
    }

    /// Whether rows really are normalized: cosine always normalizes.
    pub fn normalizes(self) -> bool {
        self.normalize || self.distance == Distance::Cosine
    }

    /// True when larger values mean closer.
    pub fn is_similarity(self) -> bool {
        self.distance.is_similarity()
    }
}
