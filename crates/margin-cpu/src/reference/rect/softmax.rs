//! The softmax losses on the N x M rectangle: nt-xent (contract 3.7) and supcon (3.8).
//!
//! Both use `v = −e / τ` (the similarity over the temperature; a distance is negated) and are 0
//! with nothing active when the rectangle has no positive pair or no negative pair, or under
//! rule 2.3. `W = ∂L/∂D = −sign · ∂L/∂(e/…)`, written per term below. O(N·M).

use super::super::Weights;
use super::super::math::logsumexp;
use super::geometry::Rect;
use margin_core::{LossStats, NTXentConfig, SupConConfig};

/// `log(e^a + e^b)` without overflow; `a` when `b = −∞`.
fn logaddexp(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    a.max(b) + (-(a - b).abs()).exp().ln_1p()
}

/// True when the rectangle has nothing to reduce for nt-xent and supcon.
fn degenerate(g: &Rect) -> bool {
    let (pos, neg) = g.pair_counts();
    g.tiny() || pos == 0 || neg == 0
}

/// NT-Xent: per ordered positive pair `(a, p)`, `l_ap = log(e^{v_ap} + S_a) − v_ap` with
/// `S_a = Σ_{n ∈ Neg(a)} e^{v_an}`; an anchor without negatives gives `l_ap = 0`, still counted.
/// `L = Mean` over the P positive pairs; active `[P, 0]`.
pub(crate) fn nt_xent(cfg: &NTXentConfig, g: &Rect) -> Weights {
    if degenerate(g) {
        return g.empty();
    }
    let (pos_count, _) = g.pair_counts();
    let (sign, tau) = (g.sign, cfg.temperature);
    let scale = 1.0 / (tau * pos_count as f64);
    let logit = |i: usize, j: usize| -sign * g.d(i, j) / tau;
    let mut w = g.empty().w;
    let mut sum = 0.0;
    for a in 0..g.n {
        let pos: Vec<usize> = g.positives(a).collect();
        if pos.is_empty() {
            continue;
        }
        let neg: Vec<usize> = g.negatives(a).collect();
        // log S_a; −∞ without negatives (then every l_ap = 0).
        let lse_neg = logsumexp(neg.iter().map(|&j| logit(a, j)));
        // Σ_p S_a / Z_ap, each term <= 1: the negatives' common factor.
        let mut neg_factor = 0.0;
        for &p in &pos {
            let v = logit(a, p);
            let log_z = logaddexp(v, lse_neg);
            sum += log_z - v;
            neg_factor += (lse_neg - log_z).exp();
            // ∂L/∂v_ap = (q − 1)/(τP), q = e^v / Z; ∂v/∂D = −sign (τ is in `scale`).
            w[g.at(a, p)] += -sign * ((v - log_z).exp() - 1.0) * scale;
        }
        if lse_neg == f64::NEG_INFINITY {
            continue;
        }
        // ∂L/∂v_an = softmax_Neg(v_a)_n · Σ_p S_a / Z_ap / (τP).
        for &j in &neg {
            w[g.at(a, j)] += -sign * (logit(a, j) - lse_neg).exp() * neg_factor * scale;
        }
    }
    Weights {
        stats: LossStats::new(sum / pos_count as f64, pos_count, 0),
        w,
    }
}

/// SupCon: for a row with `P(i) ≠ ∅`,
/// `L_i = LSE_{j ∈ P(i) ∪ Neg(i)}(v_ij) − mean_{p ∈ P(i)} v_ip` (the self column is in neither).
/// `L = Σ L_i / c` with `c = #{ i : |P(i)| >= 1 and (|Neg(i)| >= 1 or |P(i)| >= 2) }`: exactly the
/// rows with `L_i > 0`, counted structurally (a row with one positive and no negative has
/// `L_i = 0` exactly and no gradient). Active `[c, 0]`.
pub(crate) fn supcon(cfg: &SupConConfig, g: &Rect) -> Weights {
    if degenerate(g) {
        return g.empty();
    }
    let (sign, tau) = (g.sign, cfg.temperature);
    let logit = |i: usize, j: usize| -sign * g.d(i, j) / tau;
    let mut w = g.empty().w;
    let (mut sum, mut count) = (0.0, 0u64);
    for i in 0..g.n {
        let pos: Vec<usize> = g.positives(i).collect();
        let neg: Vec<usize> = g.negatives(i).collect();
        if pos.is_empty() || (neg.is_empty() && pos.len() < 2) {
            continue;
        }
        let cols = pos.iter().chain(&neg);
        let lse = logsumexp(cols.clone().map(|&j| logit(i, j)));
        let inv_p = 1.0 / pos.len() as f64;
        let mean_pos = pos.iter().map(|&j| logit(i, j)).sum::<f64>() * inv_p;
        sum += lse - mean_pos;
        count += 1;
        // ∂L_i/∂v_ij = softmax_j − [j ∈ P(i)]/|P(i)|; ∂v/∂D = −sign/τ.
        for &j in cols {
            let target = if g.is_pos(i, j) { inv_p } else { 0.0 };
            w[g.at(i, j)] += -sign * ((logit(i, j) - lse).exp() - target) / tau;
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
