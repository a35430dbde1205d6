//! Contrastive and triplet losses on the N x M rectangle (contract 3.1 and 3.2).
//!
//! Written on `e = sign · D` (smaller = closer); `W = ∂L/∂D = sign · ∂L/∂e`.
//!
//! * contrastive: `relu(e_ij − sign·pos_margin)` for `j ∈ P(i)`, `relu(sign·neg_margin − e_ij)`
//!   for `j ∈ Neg(i)`, `L = AvgNonZero(pos) + AvgNonZero(neg)`; rule 2.3 first.
//! * triplet: `v = e_ap − e_an + margin`, `relu(v)` (or `softplus(v)`), `L = AvgNonZero` over the
//!   mined triplets: all `(i, p ∈ P(i), n ∈ Neg(i))`; semihard those with
//!   `0 < e_an − e_ap <= margin`; hard one per anchor, `p*` over `P(i) ∪ {σ(i)}` and the anchor
//!   dropped when `p* = σ(i)` ([`Rect::hardest_positive`]). No rule 2.3.

use super::super::Weights;
use super::super::math::{sigmoid, softplus};
use super::geometry::Rect;
use margin_core::{ContrastiveConfig, LossStats, Mining, TripletConfig};

/// Contrastive loss and `W` (N x M).
pub(crate) fn contrastive(cfg: &ContrastiveConfig, g: &Rect) -> Weights {
    if g.tiny() {
        return g.empty();
    }
    let sign = g.sign;
    // ∂term/∂D of each active term (before the 1/count of its group), and which group it is in.
    let mut w = g.empty().w;
    let mut positive = vec![false; g.n * g.m];
    let (mut pos_sum, mut pos_count) = (0.0, 0u64);
    let (mut neg_sum, mut neg_count) = (0.0, 0u64);
    for i in 0..g.n {
        for j in g.positives(i) {
            positive[g.at(i, j)] = true;
            let v = sign * (g.d(i, j) - cfg.pos_margin);
            if v > 0.0 {
                pos_sum += v;
                pos_count += 1;
                w[g.at(i, j)] = sign;
            }
        }
        for j in g.negatives(i) {
            let v = sign * (cfg.neg_margin - g.d(i, j));
            if v > 0.0 {
                neg_sum += v;
                neg_count += 1;
                w[g.at(i, j)] = -sign;
            }
        }
    }
    for (wij, &is_pos) in w.iter_mut().zip(&positive) {
        let count = if is_pos { pos_count } else { neg_count };
        if count > 0 {
            *wij /= count as f64;
        }
    }
    let avg = |sum: f64, count: u64| if count > 0 { sum / count as f64 } else { 0.0 };
    Weights {
        stats: LossStats::new(
            avg(pos_sum, pos_count) + avg(neg_sum, neg_count),
            pos_count,
            neg_count,
        ),
        w,
    }
}

/// Triplet loss (any mining, relu or softplus) and `W` (N x M).
pub(crate) fn triplet(cfg: &TripletConfig, g: &Rect) -> Weights {
    let sign = g.sign;
    let mut w = g.empty().w;
    let (mut sum, mut count) = (0.0, 0u64);
    visit_triplets(cfg, g, |a, p, neg| {
        let v = g.e(a, p) - g.e(a, neg) + cfg.margin;
        // (term value, ∂term/∂v) of an active term.
        let active = if cfg.smooth {
            Some((softplus(v), sigmoid(v)))
        } else if v > 0.0 {
            Some((v, 1.0))
        } else {
            None
        };
        if let Some((value, slope)) = active {
            sum += value;
            count += 1;
            w[g.at(a, p)] += slope * sign;
            w[g.at(a, neg)] -= slope * sign;
        }
    });
    if count == 0 {
        return g.empty();
    }
    w.iter_mut().for_each(|v| *v /= count as f64);
    Weights {
        stats: LossStats::new(sum / count as f64, count, 0),
        w,
    }
}

/// Calls `f(a, p, n)` for every triplet the mining selects, one at a time (none is stored).
fn visit_triplets(cfg: &TripletConfig, g: &Rect, mut f: impl FnMut(usize, usize, usize)) {
    for a in 0..g.n {
        match cfg.mining {
            Mining::All => {
                for p in g.positives(a) {
                    for neg in g.negatives(a) {
                        f(a, p, neg);
                    }
                }
            }
            Mining::SemiHard => {
                for p in g.positives(a) {
                    for neg in g.negatives(a) {
                        let gap = g.e(a, neg) - g.e(a, p);
                        if gap > 0.0 && gap <= cfg.margin {
                            f(a, p, neg);
                        }
                    }
                }
            }
            Mining::Hard => {
                if let (Some(p), Some(neg)) = (g.hardest_positive(a), g.nearest_negative(a)) {
                    f(a, p, neg);
                }
            }
        }
    }
}
