//! The float64 reference: the SPEC's formulas evaluated literally, the oracle every other backend
//! is tested against.
//!
//! Everything is f64 from the inputs, in plain loops, one file per concern:
//!
//! 1. `normalize.rs`: `x̂ = x / max(‖x‖, 1e-12)` when the metric normalizes (cosine always does).
//! 2. `distance.rs`: the matrix `D` (N x N, or N x K against centers) in the SPEC's expanded form.
//! 3. One file per loss (`contrastive.rs`, `triplet.rs`, `triplet_center.rs`, `n_pair.rs`,
//!    `quadruplet.rs` and `quadruplet_hard.rs`, `lifted_structure.rs`, `multi_similarity.rs`,
//!    `circle.rs`, `nt_xent.rs`, `supcon.rs`, `generalized_lifted_structure.rs`,
//!    `proxy_anchor.rs`, `proxy_softmax.rs`): the loss, its
//!    active counts and `W = ∂L/∂D`, by visiting every pair, triplet or quadruplet the definition
//!    names (none is ever stored).
//! 4. `distance.rs` again: the chain rule from `W` to the (normalized) rows.
//! 5. `normalize.rs` again: from the normalized rows to the raw rows.
//!
//! Input checks are in `validate.rs`, the [`Backend`](margin_core::Backend) face in `backend.rs`.
//!
//! With a reference set (`docs/REFERENCE_SETS.md`) the same stages run on the N x M rectangle
//! between the batch and the reference rows, in `rect/`; the entry point is
//! [`evaluate_with_reference`].
//!
//! Cost: O(N²) memory; O(N³) time for triplet, lifted-structure and hard quadruplet, O(N⁴) for
//! quadruplet (mining all), O(N²) for the row-wise losses. Meant for N up to a few hundred
//! (quadruplet: a few dozen).

mod backend;
mod circle;
mod contrastive;
mod distance;
mod generalized_lifted_structure;
mod lifted_structure;
mod math;
mod multi_similarity;
mod n_pair;
mod normalize;
mod nt_xent;
mod proxy_anchor;
mod proxy_softmax;
mod quadruplet;
mod quadruplet_hard;
mod rect;
mod supcon;
mod triplet;
mod triplet_center;
mod validate;

pub use backend::ReferenceBackend;
pub use rect::{RefSet, evaluate_with_reference};

use margin_core::{Loss, LossStats, Metric, Result};
use normalize::Normalized;

/// A loss evaluated in f64, with f64 gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct RefOutput {
    /// Loss and active counts.
    pub stats: LossStats,
    /// dL/dX, N x D.
    pub grad: Vec<f64>,
    /// dL/dC, K x D, for the losses with centers (triplet-center, proxy-anchor).
    pub center_grad: Option<Vec<f64>>,
}

/// What each loss file computes from a distance matrix: the loss with its active counts, and
/// `W = ∂L/∂D` with the shape of the matrix.
pub(crate) struct Weights {
    pub stats: LossStats,
    pub w: Vec<f64>,
}

/// Evaluates `loss` in f64 on the `n x d` row-major embeddings `x`. `centers` is `(data, K)`,
/// required for triplet-center and rejected otherwise.
///
/// Errors ([`margin_core::MarginError::InvalidInput`] / `InvalidConfig`): empty or mis-sized
/// embeddings, a non-finite value, a label count other than `n`, a non-finite margin, and for
/// triplet-center missing centers, `K < 2`, centers of the wrong size or a label outside `0..K`.
/// A batch with nothing to reduce is not an error: loss 0, zero gradient, nothing active.
pub fn evaluate(
    loss: &Loss,
    x: &[f64],
    n: usize,
    d: usize,
    labels: &[i64],
    centers: Option<(&[f64], usize)>,
) -> Result<RefOutput> {
    validate::loss_input(loss, x, n, d, labels, centers)?;
    let metric = loss.metric();
    let xs = Normalized::new(x, n, d, metric.normalizes());

    let center_weights = |dist: &[f64], k: usize| match (loss, loss.proxy_softmax()) {
        (_, Some(form)) => Some(proxy_softmax::weights(
            form,
            metric.distance,
            dist,
            (n, k),
            labels,
        )),
        (Loss::ProxyAnchor(cfg), _) => Some(proxy_anchor::weights(cfg, dist, n, k, labels)),
        (Loss::TripletCenter(cfg), _) => Some(triplet_center::weights(cfg, dist, n, k, labels)),
        _ => None,
    };
    if let Some((c, k)) = centers {
        let cs = Normalized::new(c, k, d, metric.normalizes());
        let dist = distance::matrix(metric.distance, &xs, &cs);
        if let Some(weights) = center_weights(&dist, k) {
            let (mut grad, mut center_grad) =
                distance::backward(metric.distance, &xs, &cs, &dist, &weights.w);
            xs.backward(&mut grad);
            cs.backward(&mut center_grad);
            return Ok(RefOutput {
                stats: weights.stats,
                grad,
                center_grad: Some(center_grad),
            });
        }
    }

    let dist = distance::matrix(metric.distance, &xs, &xs);
    let weights = match loss {
        Loss::Contrastive(cfg) => contrastive::weights(cfg, &dist, n, labels),
        Loss::Triplet(cfg) => triplet::weights(cfg, &dist, n, labels),
        Loss::NPair(cfg) => n_pair::weights(cfg, &dist, n, labels),
        Loss::Quadruplet(cfg) if cfg.mining == margin_core::Mining::Hard => {
            quadruplet_hard::weights(cfg, &dist, n, labels)
        }
        // Validation rejects semihard for quadruplet.
        Loss::Quadruplet(cfg) => quadruplet::weights(cfg, &dist, n, labels),
        Loss::LiftedStructure(cfg) => lifted_structure::weights(cfg, &dist, n, labels),
        Loss::MultiSimilarity(cfg) => multi_similarity::weights(cfg, &dist, n, labels),
        Loss::Circle(cfg) => circle::weights(cfg, &dist, n, labels),
        Loss::NTXent(cfg) => nt_xent::weights(cfg, &dist, n, labels),
        Loss::SupCon(cfg) => supcon::weights(cfg, &dist, n, labels),
        Loss::GeneralizedLiftedStructure(cfg) => {
            generalized_lifted_structure::weights(cfg, &dist, n, labels)
        }
        // Validation guarantees centers for these, handled above.
        Loss::TripletCenter(_)
        | Loss::ProxyAnchor(_)
        | Loss::ProxyNca(_)
        | Loss::NormalizedSoftmax(_)
        | Loss::CosFace(_) => {
            return Err(margin_core::MarginError::input(format!(
                "{} needs centers (K x D); none were given",
                loss.kind()
            )));
        }
    };
    // D[i, j] depends on row i as its first argument and on row j as its second.
    let (mut grad, grad_second) = distance::backward(metric.distance, &xs, &xs, &dist, &weights.w);
    grad.iter_mut().zip(&grad_second).for_each(|(g, s)| *g += s);
    xs.backward(&mut grad);
    Ok(RefOutput {
        stats: weights.stats,
        grad,
        center_grad: None,
    })
}

/// The `nq x nr` matrix of `metric` between the query rows `q` and the reference rows `r` (both
/// of width `d`), in f64, normalizing first when the metric does.
///
/// Returns an empty vector when the shapes do not fit the slices (`d = 0`, or a slice shorter
/// than `rows x d`); callers that need an error validate first (the [`ReferenceBackend`] does).
pub fn pairwise(metric: Metric, q: &[f64], nq: usize, r: &[f64], nr: usize, d: usize) -> Vec<f64> {
    let fits = |len: usize, rows: usize| rows.checked_mul(d).is_some_and(|need| len >= need);
    if d == 0 || !fits(q.len(), nq) || !fits(r.len(), nr) {
        return Vec::new();
    }
    let qs = Normalized::new(q, nq, d, metric.normalizes());
    let rs = Normalized::new(r, nr, d, metric.normalizes());
    distance::matrix(metric.distance, &qs, &rs)
}
