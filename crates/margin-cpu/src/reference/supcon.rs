//! Supervised contrastive loss (PML `SupConLoss`; Khosla et al., NeurIPS 2020).
//!
//! With `v = −sign · D` (the similarity; a distance is negated) and temperature τ, for an anchor
//! i with positives `P(i)`:
//! `L_i = LSE_{j ≠ i}(v_ij/τ) − (1/|P(i)|) Σ_{p ∈ P(i)} v_ip/τ`; anchors without positives give 0.
//! `L = AvgNonZero` over anchors; a batch with no positive pair or no negative pair gives 0 with
//! nothing active. Active counts: `[anchors with a positive, 0]` (exactly the anchors with `L_i > 0`). O(N²).

use super::Weights;
use super::distance::farther_sign;
use super::math::logsumexp;
use margin_core::{LossStats, SupConConfig};

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(cfg: &SupConConfig, dist: &[f64], n: usize, labels: &[i64]) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let tau = cfg.temperature;
    let mut w = vec![0.0; n * n];
    let is_pos = |i: usize, j: usize| i != j && labels[i] == labels[j];
    let any_pos = (0..n).any(|i| (0..n).any(|j| is_pos(i, j)));
    let any_neg = (0..n).any(|i| (0..n).any(|j| labels[i] != labels[j]));
    if !any_pos || !any_neg {
        return Weights {
            stats: LossStats::empty(),
            w,
        };
    }
    let logit = |i: usize, j: usize| -sign * dist[i * n + j] / tau;
    let (mut sum, mut count) = (0.0, 0u64);
    for i in 0..n {
        let pos_count = (0..n).filter(|&j| is_pos(i, j)).count();
        if pos_count == 0 {
            continue;
        }
        let others = (0..n).filter(move |&j| j != i);
        let lse = logsumexp(others.clone().map(|j| logit(i, j)));
        let mean_pos: f64 = (0..n)
            .filter(|&j| is_pos(i, j))
            .map(|j| logit(i, j))
            .sum::<f64>()
            / pos_count as f64;
        // With a negative in the batch N >= 3, so the LSE runs over at least two entries and
        // exceeds their maximum: every anchor with a positive has L_i > 0. It is counted as such
        // even where rounding cancels the difference, so that no backend's count depends on it.
        let loss = lse - mean_pos;
        sum += loss;
        count += 1;
        // ∂L_i/∂v_ij = (softmax_j − [j ∈ P(i)]/|P(i)|)/τ; ∂v/∂D = −sign.
        for j in others {
            let target = if is_pos(i, j) {
                1.0 / pos_count as f64
            } else {
                0.0
            };
            w[i * n + j] += -sign * ((logit(i, j) - lse).exp() - target) / tau;
        }
    }
    if count == 0 {
        return Weights {
            stats: LossStats::empty(),
            w: vec![0.0; n * n],
        };
    }
    w.iter_mut().for_each(|v| *v /= count as f64);
    Weights {
        stats: LossStats::new(sum / count as f64, count, 0),
        w,
    }
}
