//! Circle loss (PML `CircleLoss`; Sun et al., CVPR 2020), cosine only (validated in core).
//!
//! On the similarity `s = D`, for an anchor i with at least one positive and one negative:
//! * `lp_ij = −γ [1 + m − s_ij]₊ (s_ij − (1 − m))` for positives,
//! * `ln_ij =  γ [s_ij + m]₊ (s_ij − m)` for negatives,
//! * `z_i = LSE_P(lp) + LSE_N(ln)`, `L_i = softplus(z_i)`; other anchors give 0.
//!
//! `L = AvgNonZero` over anchors. The `[·]₊` factors are constants in the gradient, as PML
//! detaches them. Active counts: `[anchors with a positive and a negative, 0]` (exactly the anchors with `L_i > 0`). O(N²).

use super::Weights;
use super::math::{logsumexp, sigmoid, softplus};
use margin_core::{CircleConfig, LossStats};

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(cfg: &CircleConfig, dist: &[f64], n: usize, labels: &[i64]) -> Weights {
    let (m, gamma) = (cfg.margin, cfg.gamma);
    let mut w = vec![0.0; n * n];
    let (mut sum, mut count) = (0.0, 0u64);
    for i in 0..n {
        let s = |j: usize| dist[i * n + j];
        // (column, logit, ∂logit/∂s with the relu factor held constant).
        let pos: Vec<(usize, f64, f64)> = (0..n)
            .filter(|&j| j != i && labels[j] == labels[i])
            .map(|j| {
                let scale = -gamma * (1.0 + m - s(j)).max(0.0);
                (j, scale * (s(j) - (1.0 - m)), scale)
            })
            .collect();
        let neg: Vec<(usize, f64, f64)> = (0..n)
            .filter(|&j| labels[j] != labels[i])
            .map(|j| {
                let scale = gamma * (s(j) + m).max(0.0);
                (j, scale * (s(j) - m), scale)
            })
            .collect();
        if pos.is_empty() || neg.is_empty() {
            continue;
        }
        let lse_p = logsumexp(pos.iter().map(|t| t.1));
        let lse_n = logsumexp(neg.iter().map(|t| t.1));
        let z = lse_p + lse_n;
        // softplus > 0: every anchor with a positive and a negative counts, even where its loss
        // underflows, so that no backend's count depends on rounding.
        let loss = softplus(z);
        sum += loss;
        count += 1;
        let outer = sigmoid(z);
        for &(j, logit, scale) in &pos {
            w[i * n + j] += outer * (logit - lse_p).exp() * scale;
        }
        for &(j, logit, scale) in &neg {
            w[i * n + j] += outer * (logit - lse_n).exp() * scale;
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
