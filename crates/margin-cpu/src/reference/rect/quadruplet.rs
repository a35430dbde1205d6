//! Quadruplet loss on the N x M rectangle (contract 3.10; not in PML).
//!
//! Anchors `a` and `k` are batch rows, `p`, `n`, `l` reference rows, all from the one matrix:
//! * term 1, every triplet `(a, p ∈ P(a), n ∈ Neg(a))`: `relu(e_ap − e_an + margin)`;
//! * term 2, every `(a, p ∈ P(a))` and every batch-reference negative pair `(k, l)` with
//!   `y_k != r_l`, `y_k != y_a`, `r_l != y_a`: `relu(e_ap − e_kl + margin2)`, whose gradient
//!   reaches `x_k` through `W[k, l]`;
//! * `L = AvgNonZero(t1) + AvgNonZero(t2)`, active `[t1 > 0, t2 > 0]`.
//!
//! Hard mining: per anchor `p*` as triplet hard ([`Rect::hardest_positive`], the anchor has no
//! term when the self column wins), `n*` its nearest negative, and `(k*, l*) = argmin e_kl` over
//! the pairs above, lowest k then lowest l. Mining all is O(N·M·N·M): for small rectangles only.

use super::super::Weights;
use super::geometry::{Rect, argmin};
use margin_core::{LossStats, Mining, QuadrupletConfig};
use std::collections::HashMap;

/// Quadruplet loss (mining all or hard) and `W` (N x M).
pub(crate) fn quadruplet(cfg: &QuadrupletConfig, g: &Rect) -> Weights {
    let mut terms = Terms::new(g);
    if cfg.mining == Mining::Hard {
        hard_terms(cfg, g, &mut terms);
    } else {
        all_terms(cfg, g, &mut terms);
    }
    terms.into_weights()
}

/// Running sums of the active terms of each kind: value, count, and `∂(Σ terms)/∂D` (N x M), so
/// that nothing is stored per term.
struct Terms {
    sums: [f64; 2],
    counts: [u64; 2],
    w: [Vec<f64>; 2],
    m: usize,
    sign: f64,
}

impl Terms {
    fn new(g: &Rect) -> Self {
        Self {
            sums: [0.0; 2],
            counts: [0; 2],
            w: [g.empty().w, g.empty().w],
            m: g.m,
            sign: g.sign,
        }
    }

    /// Records the hinge `t = relu(e_closer − e_farther + margin)` of `kind` (0: term 1, 1: term
    /// 2) if it is active. Pairs are `(batch row, reference row)`.
    fn push(&mut self, kind: usize, closer: (usize, usize), farther: (usize, usize), v: f64) {
        if v <= 0.0 {
            return;
        }
        self.sums[kind] += v;
        self.counts[kind] += 1;
        self.w[kind][closer.0 * self.m + closer.1] += self.sign;
        self.w[kind][farther.0 * self.m + farther.1] -= self.sign;
    }

    /// `AvgNonZero(t1) + AvgNonZero(t2)` and its `W`.
    fn into_weights(self) -> Weights {
        let scale = |count: u64| if count > 0 { 1.0 / count as f64 } else { 0.0 };
        let (s1, s2) = (scale(self.counts[0]), scale(self.counts[1]));
        let [w1, w2] = self.w;
        let w = w1.iter().zip(&w2).map(|(a, b)| a * s1 + b * s2).collect();
        Weights {
            stats: LossStats::new(
                self.sums[0] * s1 + self.sums[1] * s2,
                self.counts[0],
                self.counts[1],
            ),
            w,
        }
    }
}

/// The batch-reference negative pairs `(k, l)` usable as term 2 of an anchor of class `ya`,
/// row-major (so the first minimum is the lowest k, then the lowest l).
fn negative_pairs<'a>(g: &'a Rect, ya: i64) -> impl Iterator<Item = (usize, usize)> + 'a {
    (0..g.n)
        .filter(move |&k| g.labels[k] != ya)
        .flat_map(move |k| {
            (0..g.m)
                .filter(move |&l| g.ref_labels[l] != ya && g.ref_labels[l] != g.labels[k])
                .map(move |l| (k, l))
        })
}

/// Every triplet and every quadruplet.
fn all_terms(cfg: &QuadrupletConfig, g: &Rect, terms: &mut Terms) {
    for a in 0..g.n {
        for p in g.positives(a) {
            for neg in g.negatives(a) {
                let v = g.e(a, p) - g.e(a, neg) + cfg.margin;
                terms.push(0, (a, p), (a, neg), v);
            }
            for (k, l) in negative_pairs(g, g.labels[a]) {
                let v = g.e(a, p) - g.e(k, l) + cfg.margin2;
                terms.push(1, (a, p), (k, l), v);
            }
        }
    }
}

/// One term of each kind per anchor, as mined.
fn hard_terms(cfg: &QuadrupletConfig, g: &Rect, terms: &mut Terms) {
    // The nearest negative pair depends only on the anchor's class.
    let mut nearest_pair: HashMap<i64, Option<(usize, usize)>> = HashMap::new();
    for a in 0..g.n {
        let (Some(p), Some(neg)) = (g.hardest_positive(a), g.nearest_negative(a)) else {
            continue;
        };
        terms.push(0, (a, p), (a, neg), g.e(a, p) - g.e(a, neg) + cfg.margin);
        let ya = g.labels[a];
        let pair = *nearest_pair.entry(ya).or_insert_with(|| {
            let pairs: Vec<(usize, usize)> = negative_pairs(g, ya).collect();
            argmin(0..pairs.len(), |t| g.e(pairs[t].0, pairs[t].1)).map(|t| pairs[t])
        });
        if let Some((k, l)) = pair {
            terms.push(1, (a, p), (k, l), g.e(a, p) - g.e(k, l) + cfg.margin2);
        }
    }
}
