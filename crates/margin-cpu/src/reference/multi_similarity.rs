//! Multi-similarity loss (PML `MultiSimilarityLoss`; Wang et al., CVPR 2019), without its miner.
//!
//! With `e = sign · D` (smaller = closer) and `b' = sign · base`, per anchor i:
//! `L_i = (1/α) log(1 + Σ_{p ∈ P(i)} e^{α (e_ip − b')}) + (1/β) log(1 + Σ_{n ∈ N(i)} e^{β (b' − e_in)})`
//! (for cosine: `(1/α) log(1 + Σ e^{−α (s − base)}) + (1/β) log(1 + Σ e^{β (s − base)})`), an empty
//! sum giving `log 1 = 0`. `L = Mean` over all N anchors (PML's `MeanReducer`). Active counts:
//! `[anchors with a positive, anchors with a negative]`. O(N²).

use super::Weights;
use super::distance::farther_sign;
use super::math::log1p_sum_exp;
use margin_core::{LossStats, MultiSimilarityConfig};

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(
    cfg: &MultiSimilarityConfig,
    dist: &[f64],
    n: usize,
    labels: &[i64],
) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let mut w = vec![0.0; n * n];
    let (mut sum, mut with_pos, mut with_neg) = (0.0, 0u64, 0u64);
    let inv_n = 1.0 / n as f64;
    for i in 0..n {
        let pos: Vec<usize> = (0..n)
            .filter(|&j| j != i && labels[j] == labels[i])
            .collect();
        let neg: Vec<usize> = (0..n).filter(|&j| labels[j] != labels[i]).collect();
        // Exponents α (e_ip − b') and β (b' − e_in), written on D.
        let xp: Vec<f64> = pos
            .iter()
            .map(|&j| cfg.alpha * sign * (dist[i * n + j] - cfg.base))
            .collect();
        let xn: Vec<f64> = neg
            .iter()
            .map(|&j| cfg.beta * sign * (cfg.base - dist[i * n + j]))
            .collect();
        let (lp, ln) = (log1p_sum_exp(&xp), log1p_sum_exp(&xn));
        sum += lp / cfg.alpha + ln / cfg.beta;
        with_pos += u64::from(!pos.is_empty());
        with_neg += u64::from(!neg.is_empty());
        // ∂[(1/α) log(1 + Σ e^x)]/∂x_p = softmax_p / α, and ∂x_p/∂D = α · sign.
        for (&j, &x) in pos.iter().zip(&xp) {
            w[i * n + j] += (x - lp).exp() * sign * inv_n;
        }
        // Likewise for negatives, with ∂x_n/∂D = −β · sign.
        for (&j, &x) in neg.iter().zip(&xn) {
            w[i * n + j] -= (x - ln).exp() * sign * inv_n;
        }
    }
    Weights {
        stats: LossStats::new(sum * inv_n, with_pos, with_neg),
        w,
    }
}
