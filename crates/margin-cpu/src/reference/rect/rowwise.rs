//! The per-anchor losses on the N x M rectangle (contract 3.5 and 3.7): multi-similarity, circle
//! and generalized-lifted-structure. Each is NEW_LOSSES.md's formula with `P(i)` and `Neg(i)`
//! taken over the M reference columns; rule 2.3 first. O(N·M).

use super::super::Weights;
use super::super::math::{logsumexp, sigmoid, softplus};
use super::geometry::{Rect, lse_or_zero};
use margin_core::{
    CircleConfig, GeneralizedLiftedStructureConfig, LossStats, MultiSimilarityConfig,
};

/// `log(1 + Σ e^x)` over `xs`, shifted by `max(0, max x)`; 0 for an empty set.
fn log1p_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(0.0, f64::max);
    m + ((-m).exp() + xs.iter().map(|x| (x - m).exp()).sum::<f64>()).ln()
}

/// Multi-similarity: per anchor
/// `(1/α) log(1 + Σ_P e^{α (e_ip − b')}) + (1/β) log(1 + Σ_Neg e^{β (b' − e_in)})`,
/// `b' = sign · base`; `L = Mean` over the N batch rows; active `[rows with a positive, rows with
/// a negative]`.
pub(crate) fn multi_similarity(cfg: &MultiSimilarityConfig, g: &Rect) -> Weights {
    if g.tiny() {
        return g.empty();
    }
    let sign = g.sign;
    let inv_n = 1.0 / g.n as f64;
    let mut w = g.empty().w;
    let (mut sum, mut with_pos, mut with_neg) = (0.0, 0u64, 0u64);
    for i in 0..g.n {
        let pos: Vec<usize> = g.positives(i).collect();
        let neg: Vec<usize> = g.negatives(i).collect();
        let xp: Vec<f64> = pos
            .iter()
            .map(|&j| cfg.alpha * sign * (g.d(i, j) - cfg.base))
            .collect();
        let xn: Vec<f64> = neg
            .iter()
            .map(|&j| cfg.beta * sign * (cfg.base - g.d(i, j)))
            .collect();
        let (lp, ln) = (log1p_sum_exp(&xp), log1p_sum_exp(&xn));
        sum += lp / cfg.alpha + ln / cfg.beta;
        with_pos += u64::from(!pos.is_empty());
        with_neg += u64::from(!neg.is_empty());
        // ∂[(1/α) log(1 + Σ e^x)]/∂x_p = softmax_p / α, and ∂x_p/∂D = α · sign.
        for (&j, &x) in pos.iter().zip(&xp) {
            w[g.at(i, j)] += (x - lp).exp() * sign * inv_n;
        }
        for (&j, &x) in neg.iter().zip(&xn) {
            w[g.at(i, j)] -= (x - ln).exp() * sign * inv_n;
        }
    }
    Weights {
        stats: LossStats::new(sum * inv_n, with_pos, with_neg),
        w,
    }
}

/// Circle (cosine, `s = D`): for a row with a positive and a negative,
/// `softplus(LSE_P(−γ [1+m−s]₊ (s − 1 + m)) + LSE_Neg(γ [s+m]₊ (s − m)))`, the `[·]₊` factors
/// constant in the gradient (PML detaches them); `L = Σ / c`, c = those rows; active `[c, 0]`.
pub(crate) fn circle(cfg: &CircleConfig, g: &Rect) -> Weights {
    if g.tiny() {
        return g.empty();
    }
    let (m, gamma) = (cfg.margin, cfg.gamma);
    let mut w = g.empty().w;
    let (mut sum, mut count) = (0.0, 0u64);
    for i in 0..g.n {
        // (column, logit, ∂logit/∂s with the relu factor held constant).
        let pos: Vec<(usize, f64, f64)> = g
            .positives(i)
            .map(|j| {
                let scale = -gamma * (1.0 + m - g.d(i, j)).max(0.0);
                (j, scale * (g.d(i, j) - (1.0 - m)), scale)
            })
            .collect();
        let neg: Vec<(usize, f64, f64)> = g
            .negatives(i)
            .map(|j| {
                let scale = gamma * (g.d(i, j) + m).max(0.0);
                (j, scale * (g.d(i, j) - m), scale)
            })
            .collect();
        if pos.is_empty() || neg.is_empty() {
            continue;
        }
        let lse_p = logsumexp(pos.iter().map(|t| t.1));
        let lse_n = logsumexp(neg.iter().map(|t| t.1));
        let z = lse_p + lse_n;
        // softplus > 0: counted structurally, whatever the rounding.
        sum += softplus(z);
        count += 1;
        let outer = sigmoid(z);
        for &(j, logit, scale) in &pos {
            w[g.at(i, j)] += outer * (logit - lse_p).exp() * scale;
        }
        for &(j, logit, scale) in &neg {
            w[g.at(i, j)] += outer * (logit - lse_n).exp() * scale;
        }
    }
    if count == 0 {
        return g.empty();
    }
    w.iter_mut().for_each(|v| *v /= count as f64);
    Weights {
        stats: LossStats::new(sum / count as f64, count, 0),
        w,
    }
}

/// Generalized lifted-structure: per anchor
/// `relu(LSE_P(e_ip − sign·pos_margin) + LSE_Neg(sign·neg_margin − e_in))`, an empty LSE 0;
/// `L = Mean` over the N batch rows; active `[rows whose relu argument is > 0, 0]`.
pub(crate) fn generalized_lifted_structure(
    cfg: &GeneralizedLiftedStructureConfig,
    g: &Rect,
) -> Weights {
    if g.tiny() {
        return g.empty();
    }
    let sign = g.sign;
    let inv_n = 1.0 / g.n as f64;
    let mut w = g.empty().w;
    let (mut sum, mut active) = (0.0, 0u64);
    for i in 0..g.n {
        let pos: Vec<usize> = g.positives(i).collect();
        let neg: Vec<usize> = g.negatives(i).collect();
        let xp: Vec<f64> = pos
            .iter()
            .map(|&j| sign * (g.d(i, j) - cfg.pos_margin))
            .collect();
        let xn: Vec<f64> = neg
            .iter()
            .map(|&j| sign * (cfg.neg_margin - g.d(i, j)))
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
            w[g.at(i, j)] += (x - lp).exp() * sign * inv_n;
        }
        for (&j, &x) in neg.iter().zip(&xn) {
            w[g.at(i, j)] -= (x - ln).exp() * sign * inv_n;
        }
    }
    Weights {
        stats: LossStats::new(sum * inv_n, active, 0),
        w,
    }
}
