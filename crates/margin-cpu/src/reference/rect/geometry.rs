//! The N x M rectangle between batch rows and reference rows, with the label masks of
//! `docs/REFERENCE_SETS.md` section 1:
//!
//! * `P(i) = { j : r_j = y_i, j != σ(i) }` (the only excluded pair is the self index),
//! * `Neg(i) = { j : r_j != y_i }`,
//! * no diagonal is ever excluded: `j = i` is an ordinary column.
//!
//! Every loss file reads the matrix and the masks through [`Rect`] so that the exclusion rule is
//! written once.

use super::super::Weights;
use margin_core::{LossStats, NO_SELF};

/// The distance matrix `D` (N x M, row-major) and what the masks need.
pub(crate) struct Rect<'a> {
    /// N, the batch rows (anchors).
    pub n: usize,
    /// M, the reference rows (positives and negatives).
    pub m: usize,
    /// `y`, N batch labels.
    pub labels: &'a [i64],
    /// `r`, M reference labels.
    pub ref_labels: &'a [i64],
    /// `σ`: per batch row its own copy's reference row, or [`NO_SELF`].
    pub self_index: Option<&'a [u32]>,
    /// `+1` for a distance, `−1` for a similarity: `e = sign · D` is smaller when closer.
    pub sign: f64,
    /// `D`, N x M.
    pub dist: &'a [f64],
}

impl Rect<'_> {
    /// The flat index of `(i, j)` in `D` and in `W`.
    pub fn at(&self, i: usize, j: usize) -> usize {
        i * self.m + j
    }

    /// `D_ij` as the metric gives it.
    pub fn d(&self, i: usize, j: usize) -> f64 {
        self.dist[self.at(i, j)]
    }

    /// `e_ij = sign · D_ij` (smaller = closer).
    pub fn e(&self, i: usize, j: usize) -> f64 {
        self.sign * self.d(i, j)
    }

    /// `σ(i)`, the reference row holding batch row i's own copy, if any.
    pub fn self_col(&self, i: usize) -> Option<usize> {
        self.self_index
            .map(|s| s[i])
            .filter(|&s| s != NO_SELF)
            .map(|s| s as usize)
    }

    /// `j ∈ P(i)`.
    pub fn is_pos(&self, i: usize, j: usize) -> bool {
        self.labels[i] == self.ref_labels[j] && self.self_col(i) != Some(j)
    }

    /// `j ∈ Neg(i)`.
    pub fn is_neg(&self, i: usize, j: usize) -> bool {
        self.labels[i] != self.ref_labels[j]
    }

    /// `P(i)`, ascending.
    pub fn positives(&self, i: usize) -> impl Iterator<Item = usize> + Clone + '_ {
        (0..self.m).filter(move |&j| self.is_pos(i, j))
    }

    /// `Neg(i)`, ascending.
    pub fn negatives(&self, i: usize) -> impl Iterator<Item = usize> + Clone + '_ {
        (0..self.m).filter(move |&j| self.is_neg(i, j))
    }

    /// `(Σ_i |P(i)|, Σ_i |Neg(i)|)`: the positive and negative pairs of the rectangle.
    pub fn pair_counts(&self) -> (u64, u64) {
        (0..self.n).fold((0, 0), |(p, q), i| {
            (
                p + self.positives(i).count() as u64,
                q + self.negatives(i).count() as u64,
            )
        })
    }

    /// Rule 2.3 of the contract (PML's `GenericPairLoss`): with at most one positive pair and at
    /// most one negative pair the seven pair losses are 0 with nothing active.
    pub fn tiny(&self) -> bool {
        let (pos, neg) = self.pair_counts();
        pos <= 1 && neg <= 1
    }

    /// The batch-hard positive of anchor `a` (contract 3.2): `p* = argmax e_aj` over
    /// `C(a) = P(a) ∪ {σ(a)}`, lowest index on ties. PML mines before it removes the self
    /// comparison, so when the self column wins the anchor is dropped: `None`, as when `C(a)` is
    /// empty.
    pub fn hardest_positive(&self, a: usize) -> Option<usize> {
        let own = self.self_col(a);
        let candidates = (0..self.m).filter(|&j| self.is_pos(a, j) || own == Some(j));
        // argmax of e = argmin of −e, the first on ties.
        let best = argmin(candidates, |j| -self.e(a, j))?;
        (own != Some(best)).then_some(best)
    }

    /// The batch-hard negative of anchor `a`: `argmin_{j ∈ Neg(a)} e_aj`, lowest index on ties.
    pub fn nearest_negative(&self, a: usize) -> Option<usize> {
        argmin(self.negatives(a), |j| self.e(a, j))
    }

    /// A zero gradient and nothing active.
    pub fn empty(&self) -> Weights {
        Weights {
            stats: LossStats::empty(),
            w: vec![0.0; self.n * self.m],
        }
    }
}

/// The candidate whose `key` is smallest; the first one on ties.
pub(crate) fn argmin(
    candidates: impl Iterator<Item = usize>,
    key: impl Fn(usize) -> f64,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for c in candidates {
        let k = key(c);
        if best.is_none_or(|(_, b)| k < b) {
            best = Some((c, k));
        }
    }
    best.map(|(c, _)| c)
}

/// `logsumexp` over `values`, but 0 for an empty set (PML's masked `lmu.logsumexp`, rule 2.4).
pub(crate) fn lse_or_zero(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        super::super::math::logsumexp(values.iter().copied())
    }
}
