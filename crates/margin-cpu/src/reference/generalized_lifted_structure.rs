//! Generalized lifted-structure loss (PML `GeneralizedLiftedStructureLoss`; Hermans et al. 2017,
//! p. 4).
//!
//! With `e = sign · D` (smaller = closer), per anchor i:
//! `L_i = relu(LSE_{p ∈ P(i)}(e_ip − sign·pos_margin) + LSE_{n ∈ N(i)}(sign·neg_margin − e_in))`,
//! each LSE counting 0 when its set is empty (PML's masked `logsumexp`). So a one-class batch
//! still has a loss from its positives. `L = Mean` over all N anchors. Active counts:
//! `[anchors whose relu argument is > 0, 0]`. O(N²).

use super::Weights;
use super::distance::farther_sign;
use super::math::logsumexp;
use margin_core::{GeneralizedLiftedStructureConfig, LossStats};

/// `logsumexp`, but 0 for an empty set (as PML masks it).
fn lse_or_zero(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        logsumexp(values.iter().copied())
    }
}

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(
    cfg: &GeneralizedLiftedStructureConfig,
    dist: &[f64],
    n: usize,
    labels: &[i64],
) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let mut w = vec![0.0; n * n];
    let (mut sum, mut active) = (0.0, 0u64);
    let inv_n = 1.0 / n as f64;
    for i in 0..n {
        let pos: Vec<usize> = (0..n)
            .filter(|&j| j != i && labels[j] == labels[i])
            .collect();
        let neg: Vec<usize> = (0..n).filter(|&j| labels[j] != labels[i]).collect();
        let xp: Vec<f64> = pos
            .iter()
            .map(|&j| sign * (dist[i * n + j] - cfg.pos_margin))
            .collect();
        let xn: Vec<f64> = neg
            .iter()
            .map(|&j| sign * (cfg.neg_margin - dist[i * n + j]))
            .collect();
        let (lp, ln) = (lse_or_zero(&xp), lse_or_zero(&xn));
        let arg = lp + ln;
        if arg <= 0.0 {
            continue;
        }
        sum += arg;
        active += 1;
        // ∂LSE/∂x = softmax; ∂x_p/∂D = sign, ∂x_n/∂D = −sign.
        for (&j, &x) in pos.iter().zip(&xp) {
            w[i * n + j] += (x - lp).exp() * sign * inv_n;
        }
        for (&j, &x) in neg.iter().zip(&xn) {
            w[i * n + j] -= (x - ln).exp() * sign * inv_n;
        }
    }
    Weights {
        stats: LossStats::new(sum * inv_n, active, 0),
        w,
    }
}
