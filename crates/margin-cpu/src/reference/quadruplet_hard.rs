//! Quadruplet loss with hard mining (ours; see `new_losses.md` §6 and the README).
//!
//! With `e = sign · D` (smaller = closer; the margins are not multiplied by sign, as for
//! triplet), for each anchor a with at least one positive and one negative:
//! * `p* = argmax_{p ∈ P(a)} e_ap`, `n* = argmin_{n ∈ N(a)} e_an` (ties: lowest index);
//! * `t1_a = relu(e_ap* − e_an* + margin)`;
//! * `(k*, l*) = argmin e_kl` over ordered pairs with `y_k ≠ y_l`, `y_k ≠ y_a`, `y_l ≠ y_a`
//!   (ties: lowest k, then lowest l); without such a pair, a has no term 2;
//! * `t2_a = relu(e_ap* − e_k*l* + margin2)`.
//!
//! `L = AvgNonZero(t1) + AvgNonZero(t2)`; active counts `[#{t1 > 0}, #{t2 > 0}]`. Brute force:
//! the pair search is O(N²) per class, so O(N³) at worst.

use super::Weights;
use super::distance::farther_sign;
use margin_core::{LossStats, QuadrupletConfig};
use std::collections::HashMap;

/// One active hinge term: the pair it pulls closer, the pair it pushes apart, and its value.
type Term = ((usize, usize), (usize, usize), f64);

/// The index among `candidates` whose `key` is smallest; the first one on ties.
fn argmin(candidates: impl Iterator<Item = usize>, key: impl Fn(usize) -> f64) -> Option<usize> {
    let mut best: Option<usize> = None;
    for c in candidates {
        if best.is_none_or(|b| key(c) < key(b)) {
            best = Some(c);
        }
    }
    best
}

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(cfg: &QuadrupletConfig, dist: &[f64], n: usize, labels: &[i64]) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let e = |i: usize, j: usize| sign * dist[i * n + j];
    // Active terms as (closer pair, farther pair): each adds ∂t/∂e = +1 and −1.
    let mut term1: Vec<Term> = Vec::new();
    let mut term2: Vec<Term> = Vec::new();
    let mut nearest_pair: HashMap<i64, Option<usize>> = HashMap::new();
    for a in 0..n {
        let ya = labels[a];
        // argmax e_ap = argmin of −e_ap (first on ties).
        let p = argmin((0..n).filter(|&p| p != a && labels[p] == ya), |p| -e(a, p));
        let neg = argmin((0..n).filter(|&k| labels[k] != ya), |k| e(a, k));
        let (Some(p), Some(neg)) = (p, neg) else {
            continue;
        };
        let t1 = e(a, p) - e(a, neg) + cfg.margin;
        if t1 > 0.0 {
            term1.push(((a, p), (a, neg), t1));
        }
        // Ordered pairs (k, l) in row-major order, so ties go to the lowest k, then l. The
        // search depends only on the anchor's class: done once per class.
        let pair = *nearest_pair.entry(ya).or_insert_with(|| {
            argmin(
                (0..n * n).filter(|&kl| {
                    let (k, l) = (kl / n, kl % n);
                    labels[k] != labels[l] && labels[k] != ya && labels[l] != ya
                }),
                |kl| e(kl / n, kl % n),
            )
        });
        if let Some(kl) = pair {
            let (k, l) = (kl / n, kl % n);
            let t2 = e(a, p) - e(k, l) + cfg.margin2;
            if t2 > 0.0 {
                term2.push(((a, p), (k, l), t2));
            }
        }
    }
    let mut w = vec![0.0; n * n];
    let mut loss = 0.0;
    for terms in [&term1, &term2] {
        if terms.is_empty() {
            continue;
        }
        let inv = 1.0 / terms.len() as f64;
        for &((a, p), (k, l), t) in terms {
            loss += t * inv;
            // ∂t/∂D = sign · ∂t/∂e.
            w[a * n + p] += sign * inv;
            w[k * n + l] -= sign * inv;
        }
    }
    Weights {
        stats: LossStats::new(loss, term1.len() as u64, term2.len() as u64),
        w,
    }
}
