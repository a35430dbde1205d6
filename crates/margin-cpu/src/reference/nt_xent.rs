//! NT-Xent loss (PML `NTXentLoss`, InfoNCE with labels).
//!
//! With `v = −sign · D` (the similarity; a distance is negated) and temperature τ, for every
//! ordered positive pair `(a, p)`:
//! `l_ap = log(e^{v_ap/τ} + S_a) − v_ap/τ`, `S_a = Σ_{n ∈ N(a)} e^{v_an/τ}`
//! (an anchor without negatives gives `l_ap = 0`, still counted). `L = Mean` over the P ordered
//! positive pairs; a batch with no positive pair or no negative pair gives 0 with nothing active.
//! Active counts: `[P, 0]`. O(N²) in all.

use super::Weights;
use super::distance::farther_sign;
use super::math::logsumexp;
use margin_core::{LossStats, NTXentConfig};

/// `log(e^a + e^b)` without overflow; `a` when `b = −∞`.
fn logaddexp(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    a.max(b) + (-(a - b).abs()).exp().ln_1p()
}

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(cfg: &NTXentConfig, dist: &[f64], n: usize, labels: &[i64]) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let tau = cfg.temperature;
    let mut w = vec![0.0; n * n];
    let is_pos = |i: usize, j: usize| i != j && labels[i] == labels[j];
    let is_neg = |i: usize, j: usize| labels[i] != labels[j];
    let pairs = (0..n).flat_map(|i| (0..n).map(move |j| (i, j)));
    let pos_count = pairs.clone().filter(|&(i, j)| is_pos(i, j)).count();
    if pos_count == 0 || !pairs.clone().any(|(i, j)| is_neg(i, j)) {
        return Weights {
            stats: LossStats::empty(),
            w,
        };
    }
    let scale = 1.0 / (tau * pos_count as f64);
    // Logits v / τ.
    let logit = |i: usize, j: usize| -sign * dist[i * n + j] / tau;
    let mut sum = 0.0;
    for a in 0..n {
        let pos: Vec<usize> = (0..n).filter(|&j| is_pos(a, j)).collect();
        if pos.is_empty() {
            continue;
        }
        let neg: Vec<usize> = (0..n).filter(|&j| is_neg(a, j)).collect();
        // log S_a; −∞ for an anchor without negatives (then every l_ap = 0).
        let lse_neg = logsumexp(neg.iter().map(|&j| logit(a, j)));
        // Σ_p S_a / Z_ap = Σ_p e^{log S_a − log Z_ap}: the negatives' common factor, each term
        // <= 1, so nothing overflows or underflows to a 0 denominator.
        let mut neg_factor = 0.0;
        for &p in &pos {
            let v = logit(a, p);
            let log_z = logaddexp(v, lse_neg);
            sum += log_z - v;
            neg_factor += (lse_neg - log_z).exp();
            // ∂L/∂v_ap = (q − 1)/(τP) with q = e^v / Z; ∂v/∂D = −sign.
            w[a * n + p] += -sign * ((v - log_z).exp() - 1.0) * scale;
        }
        if lse_neg == f64::NEG_INFINITY {
            continue;
        }
        // ∂L/∂v_an = Σ_p e^{v_an} / Z_ap / (τP) = softmax_N(v_a)_n · Σ_p S_a / Z_ap / (τP).
        for &j in &neg {
            w[a * n + j] += -sign * (logit(a, j) - lse_neg).exp() * neg_factor * scale;
        }
    }
    Weights {
        stats: LossStats::new(sum / pos_count as f64, pos_count as u64, 0),
        w,
    }
}
