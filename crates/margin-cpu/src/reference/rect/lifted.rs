//! Lifted-structure loss on the N x M rectangle, with PML's index aliasing (contract 3.6).
//!
//! PML collects, for a positive pair `(i, j)`, the negative pairs `(a2, n)` with `a2 == i` or
//! `a2 == j`, comparing the reference index `j` with batch indices. So, with
//! `ne_kl = sign·neg_margin − e_kl`:
//!
//! ```text
//! Neg(i, j) = { ne_il : l ∈ Neg(i) } ∪ ( { ne_jl : l ∈ Neg(j) } if j < N and j != i )
//! J_ij = LSE(Neg(i, j)) + e_ij − sign·pos_margin        (LSE of an empty set = 0)
//! L = Mean over ordered positive pairs of relu(J_ij)² / 2
//! ```
//!
//! `Neg(j)` is batch row j's negative set, and those terms' gradient reaches `x_j`. Zero (with
//! nothing active) when there is no positive pair or no negative pair, and under rule 2.3. The
//! multiset is visited literally per pair: O(N·M·M).

use super::super::Weights;
use super::geometry::{Rect, lse_or_zero};
use margin_core::{LiftedStructureConfig, LossStats};

/// Lifted-structure loss and `W` (N x M).
pub(crate) fn lifted_structure(cfg: &LiftedStructureConfig, g: &Rect) -> Weights {
    let (pos_pairs, neg_pairs) = g.pair_counts();
    if g.tiny() || pos_pairs == 0 || neg_pairs == 0 {
        return g.empty();
    }
    let sign = g.sign;
    // `ne_kl` written on D: sign · (neg_margin − D_kl).
    let exponent = |k: usize, l: usize| sign * (cfg.neg_margin - g.d(k, l));
    let mut w = g.empty().w;
    let (mut sum, mut active) = (0.0, 0u64);
    for i in 0..g.n {
        for j in g.positives(i) {
            // The batch rows whose negative pairs enter Neg(i, j): i, and j when it aliases a
            // batch row other than i.
            let aliased = (j < g.n && j != i).then_some(j);
            let negatives: Vec<(usize, usize)> = std::iter::once(i)
                .chain(aliased)
                .flat_map(|row| g.negatives(row).map(move |col| (row, col)))
                .collect();
            let exps: Vec<f64> = negatives.iter().map(|&(k, l)| exponent(k, l)).collect();
            let lse = lse_or_zero(&exps);
            let big_j = lse + sign * (g.d(i, j) - cfg.pos_margin);
            if big_j <= 0.0 {
                continue;
            }
            active += 1;
            sum += big_j * big_j / 2.0;
            // ∂(J²/2)/∂J = J; ∂J/∂D_ij = sign; ∂J/∂D_kl = softmax_kl · (−sign).
            w[g.at(i, j)] += big_j * sign;
            for (&(k, l), &x) in negatives.iter().zip(&exps) {
                w[g.at(k, l)] -= big_j * (x - lse).exp() * sign;
            }
        }
    }
    let inv = 1.0 / pos_pairs as f64;
    w.iter_mut().for_each(|v| *v *= inv);
    Weights {
        stats: LossStats::new(sum * inv, active, 0),
        w,
    }
}
