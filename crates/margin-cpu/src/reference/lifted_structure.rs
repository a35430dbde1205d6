//! Lifted-structure loss (PML `LiftedStructureLoss`; Song et al., CVPR 2016).
//!
//! For each ordered positive pair `(i, j)`, over the multiset of negative pairs starting at i or
//! at j, `{d_ik : y_k ≠ y_i} ∪ {d_jl : y_l ≠ y_j}`:
//! `J = logsumexp(neg_margin − d) + d_ij − pos_margin`
//! (similarity: `J = logsumexp(s − neg_margin) + pos_margin − s_ij`).
//! Per pair `relu(J)² / 2`; `L = Mean` over ordered positive pairs. With no negatives at all the
//! log-sum-exp is over an empty set (−∞), so every `J` is inactive and the loss is 0. O(N³).

use super::Weights;
use super::distance::farther_sign;
use super::math::logsumexp;
use margin_core::{LiftedStructureConfig, LossStats};

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(
    cfg: &LiftedStructureConfig,
    dist: &[f64],
    n: usize,
    labels: &[i64],
) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let mut w = vec![0.0; n * n];
    // One exponent `sign · (neg_margin − D[row, col])` per negative pair of the multiset.
    let exponent = |row: usize, col: usize| sign * (cfg.neg_margin - dist[row * n + col]);
    let mut pair_count = 0u64;
    let mut active = 0u64;
    let mut sum = 0.0;
    for i in 0..n {
        for j in (0..n).filter(|&j| j != i && labels[j] == labels[i]) {
            pair_count += 1;
            // The multiset Neg(i, j): (row, col) of each negative pair.
            let negatives = [i, j].into_iter().flat_map(|row| {
                (0..n)
                    .filter(move |&col| labels[col] != labels[row])
                    .map(move |col| (row, col))
            });
            let lse = logsumexp(negatives.clone().map(|(r, c)| exponent(r, c)));
            let big_j = lse + sign * (dist[i * n + j] - cfg.pos_margin);
            if big_j <= 0.0 {
                continue;
            }
            active += 1;
            sum += big_j * big_j / 2.0;
            // ∂(J²/2)/∂J = J; ∂J/∂D_ij = sign; ∂J/∂D_rc = softmax_rc · (−sign).
            w[i * n + j] += big_j * sign;
            for (r, c) in negatives {
                let softmax = (exponent(r, c) - lse).exp();
                w[r * n + c] -= big_j * softmax * sign;
            }
        }
    }
    if pair_count == 0 {
        return Weights {
            stats: LossStats::empty(),
            w,
        };
    }
    w.iter_mut().for_each(|v| *v /= pair_count as f64);
    Weights {
        stats: LossStats::new(sum / pair_count as f64, active, 0),
        w,
    }
}
