//! Contrastive loss (PML `ContrastiveLoss`).
//!
//! Over ordered pairs `i ≠ j`:
//! positive pair `relu(d − pos_margin)` (similarity: `relu(pos_margin − s)`),
//! negative pair `relu(neg_margin − d)` (similarity: `relu(s − neg_margin)`),
//! `L = AvgNonZero(positive) + AvgNonZero(negative)`: each active term has weight `1 / count` of
//! its own group. O(N²).

use super::Weights;
use super::distance::farther_sign;
use margin_core::{ContrastiveConfig, LossStats};

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(cfg: &ContrastiveConfig, dist: &[f64], n: usize, labels: &[i64]) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    // Unnormalized: W holds ∂(term)/∂D for active terms; divided by the group's count below.
    let mut w = vec![0.0; n * n];
    let (mut pos_sum, mut pos_count) = (0.0, 0u64);
    let (mut neg_sum, mut neg_count) = (0.0, 0u64);
    let mut is_positive_pair = vec![false; n * n];
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let dij = dist[i * n + j];
            if labels[i] == labels[j] {
                is_positive_pair[i * n + j] = true;
                let v = sign * (dij - cfg.pos_margin);
                if v > 0.0 {
                    pos_sum += v;
                    pos_count += 1;
                    w[i * n + j] = sign;
                }
            } else {
                let v = sign * (cfg.neg_margin - dij);
                if v > 0.0 {
                    neg_sum += v;
                    neg_count += 1;
                    w[i * n + j] = -sign;
                }
            }
        }
    }
    for (wij, &positive) in w.iter_mut().zip(&is_positive_pair) {
        let count = if positive { pos_count } else { neg_count };
        if count > 0 {
            *wij /= count as f64;
        }
    }
    let avg = |sum: f64, count: u64| if count > 0 { sum / count as f64 } else { 0.0 };
    let loss = avg(pos_sum, pos_count) + avg(neg_sum, neg_count);
    Weights {
        stats: LossStats::new(loss, pos_count, neg_count),
        w,
    }
}
