//! Reference sets in the f64 reference (`docs/REFERENCE_SETS.md`): anchors from the batch X
//! (N x D), positives and negatives from the reference R (M x D), the gradient for X only.
//!
//! The same five stages as the square case, on an N x M rectangle:
//!
//! 1. normalize X (with backward) and R (a constant: no backward) when the metric normalizes;
//! 2. `D = matrix(X̂, R̂)`, N x M (`super::distance::matrix`, the square case's code);
//! 3. one file per loss family computes the loss, its active counts and `W = ∂L/∂D` (N x M)
//!    through [`geometry::Rect`], which holds the masks `P(i)` (self index excluded) and `Neg(i)`:
//!    `hinge.rs` (contrastive, triplet), `quadruplet.rs`, `lifted.rs` (PML's index aliasing),
//!    `rowwise.rs` (multi-similarity, circle, generalized-lifted-structure), `softmax.rs`
//!    (nt-xent, supcon);
//! 4. the chain to X̂ only (`super::distance::backward`, first half; no `W + Wᵀ`);
//! 5. the normalization backward for X.
//!
//! Cost: O(N·M) memory; O(N·M²) time for triplet and lifted-structure, O(N·M·N·M) for quadruplet
//! (mining all).

mod geometry;
mod hinge;
mod lifted;
mod quadruplet;
mod rowwise;
mod softmax;

use super::normalize::Normalized;
use super::{RefOutput, distance, validate};
use geometry::Rect;
use margin_core::{Loss, Result};

/// A reference set in f64 for [`evaluate_with_reference`] (the f64 twin of
/// [`margin_core::ReferenceSet`]).
#[derive(Debug, Clone, Copy)]
pub struct RefSet<'a> {
    /// `m x d` reference embeddings, row-major (the batch's `d`).
    pub embeddings: &'a [f64],
    /// M, the number of reference rows (>= 1).
    pub m: usize,
    /// M labels.
    pub labels: &'a [i64],
    /// Per batch row its own copy's reference row or [`margin_core::NO_SELF`]; `None`: no copies.
    pub self_index: Option<&'a [u32]>,
}

/// Evaluates `loss` in f64 on the `n x d` batch `x` against `reference`: the loss, its active
/// counts and dL/dX (N x D, f64). The reference gets no gradient.
///
/// Errors ([`margin_core::MarginError::InvalidInput`] / `InvalidConfig`): a loss that takes no reference set
/// (n-pair, triplet-center), a bad parameter, empty, mis-sized or non-finite embeddings, label
/// counts other than N and M, a self index of the wrong length, out of range or pointing at a
/// row of another label. Nothing to reduce is not an error: loss 0, zero gradient.
pub fn evaluate_with_reference(
    loss: &Loss,
    x: &[f64],
    n: usize,
    d: usize,
    labels: &[i64],
    reference: RefSet<'_>,
) -> Result<RefOutput> {
    validate::reference_input(loss, x, n, d, labels, &reference)?;
    let metric = loss.metric();
    let xs = Normalized::new(x, n, d, metric.normalizes());
    let rs = Normalized::new(reference.embeddings, reference.m, d, metric.normalizes());
    let dist = distance::matrix(metric.distance, &xs, &rs);
    let g = Rect {
        n,
        m: reference.m,
        labels,
        ref_labels: reference.labels,
        self_index: reference.self_index,
        sign: distance::farther_sign(metric.distance),
        dist: &dist,
    };
    let weights = match loss {
        Loss::Contrastive(cfg) => hinge::contrastive(cfg, &g),
        Loss::Triplet(cfg) => hinge::triplet(cfg, &g),
        Loss::Quadruplet(cfg) => quadruplet::quadruplet(cfg, &g),
        Loss::LiftedStructure(cfg) => lifted::lifted_structure(cfg, &g),
        Loss::MultiSimilarity(cfg) => rowwise::multi_similarity(cfg, &g),
        Loss::Circle(cfg) => rowwise::circle(cfg, &g),
        Loss::NTXent(cfg) => softmax::nt_xent(cfg, &g),
        Loss::SupCon(cfg) => softmax::supcon(cfg, &g),
        Loss::GeneralizedLiftedStructure(cfg) => rowwise::generalized_lifted_structure(cfg, &g),
        // Validation rejects these; kept as an error rather than a panic.
        Loss::NPair(_)
        | Loss::TripletCenter(_)
        | Loss::ProxyAnchor(_)
        | Loss::ProxyNca(_)
        | Loss::NormalizedSoftmax(_)
        | Loss::CosFace(_) => {
            return Err(loss.reference_unsupported());
        }
    };
    // R is a constant: only the first half of the chain (the rows of X) is kept.
    let (mut grad, _) = distance::backward(metric.distance, &xs, &rs, &dist, &weights.w);
    xs.backward(&mut grad);
    Ok(RefOutput {
        stats: weights.stats,
        grad,
        center_grad: None,
    })
}
