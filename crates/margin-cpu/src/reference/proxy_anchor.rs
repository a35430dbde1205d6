//! Proxy-anchor loss (PML `ProxyAnchorLoss`; Kim et al., CVPR 2020), the batch against K proxies.
//!
//! With `D` the `n x k` matrix between embeddings and proxies, `e = sign · D` (smaller = closer)
//! and `m' = sign · margin`, per proxy c, `P(c)` the samples of label c and `N(c)` the others:
//! `lp_c = log(1 + Σ_{i ∈ P(c)} e^{α (e_ic − m')})`, `ln_c = log(1 + Σ_{i ∈ N(c)} e^{α (−m' − e_ic)})`
//! (for cosine: `e^{α (m − s)}` and `e^{α (s + m)}`; for a distance PML's `d − m` and `−m − d`),
//! an empty sum giving 0. `L = Σ_c lp_c / |C+| + Σ_c ln_c / K` with `C+` the proxies with a
//! positive (PML's `DivisorReducer`). Active counts: `[|C+|, proxies with a negative]`. O(NK).
//!
//! Labels are already checked to lie in `0..k`, so `|C+| >= 1`.

use super::Weights;
use super::distance::farther_sign;
use super::math::log1p_sum_exp;
use margin_core::{LossStats, ProxyAnchorConfig};

/// Loss and `W = ∂L/∂D` (`n x k`) for the embedding-to-proxy matrix `dist`.
pub(crate) fn weights(
    cfg: &ProxyAnchorConfig,
    dist: &[f64],
    n: usize,
    k: usize,
    labels: &[i64],
) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let (alpha, m) = (cfg.alpha, sign * cfg.margin);
    let mut w = vec![0.0; n * k];
    let mut terms = Vec::with_capacity(k);
    let (mut with_pos, mut with_neg) = (0u64, 0u64);
    for c in 0..k {
        let pos: Vec<usize> = (0..n).filter(|&i| labels[i] == c as i64).collect();
        let neg: Vec<usize> = (0..n).filter(|&i| labels[i] != c as i64).collect();
        let xp: Vec<f64> = pos
            .iter()
            .map(|&i| alpha * (sign * dist[i * k + c] - m))
            .collect();
        let xn: Vec<f64> = neg
            .iter()
            .map(|&i| alpha * (-m - sign * dist[i * k + c]))
            .collect();
        with_pos += u64::from(!pos.is_empty());
        with_neg += u64::from(!neg.is_empty());
        terms.push((pos, xp, neg, xn));
    }
    let (pos_div, neg_div) = (with_pos.max(1) as f64, k as f64);
    let mut sum = 0.0;
    for (c, (pos, xp, neg, xn)) in terms.iter().enumerate() {
        let (lp, ln) = (log1p_sum_exp(xp), log1p_sum_exp(xn));
        sum += lp / pos_div + ln / neg_div;
        // ∂ log(1 + Σ e^x) / ∂x_i = e^{x_i − lp}; ∂x_p/∂D = α · sign, ∂x_n/∂D = −α · sign.
        for (&i, &x) in pos.iter().zip(xp) {
            w[i * k + c] += (x - lp).exp() * alpha * sign / pos_div;
        }
        for (&i, &x) in neg.iter().zip(xn) {
            w[i * k + c] -= (x - ln).exp() * alpha * sign / neg_div;
        }
    }
    Weights {
        stats: LossStats::new(sum, with_pos, with_neg),
        w,
    }
}
