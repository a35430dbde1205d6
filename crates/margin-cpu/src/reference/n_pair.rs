//! N-pair loss (PML `NPairsLoss`; Sohn, NIPS 2016).
//!
//! For every label with at least two samples, in order of first appearance, the anchor is its
//! first sample and the positive its second (all other samples are unused). With `k` such labels,
//! `S[i, j] = d(anchor_i, positive_j)` (negated for a distance) and
//! `L = Mean_i (logsumexp_j S[i, j] − S[i, i])`; `k < 2` gives loss 0. O(k²).

use super::Weights;
use super::distance::farther_sign;
use super::math::logsumexp;
use margin_core::{LossStats, NPairConfig};

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(cfg: &NPairConfig, dist: &[f64], n: usize, labels: &[i64]) -> Weights {
    let mut w = vec![0.0; n * n];
    let (anchors, positives) = anchor_positive_pairs(labels);
    let k = anchors.len();
    if k < 2 {
        return Weights {
            stats: LossStats::empty(),
            w,
        };
    }
    // S = −sign · D: a similarity stays, a distance is negated.
    let sign = farther_sign(cfg.metric.distance);
    let s = |i: usize, j: usize| -sign * dist[anchors[i] * n + positives[j]];
    let mut loss = 0.0;
    for i in 0..k {
        let lse = logsumexp((0..k).map(|j| s(i, j)));
        loss += lse - s(i, i);
        // ∂/∂S[i,j] = (softmax_j − [j = i]) / k, and ∂S/∂D = −sign.
        for j in 0..k {
            let softmax = (s(i, j) - lse).exp();
            let target = if i == j { 1.0 } else { 0.0 };
            w[anchors[i] * n + positives[j]] += -sign * (softmax - target) / k as f64;
        }
    }
    Weights {
        stats: LossStats::new(loss / k as f64, k as u64, 0),
        w,
    }
}

/// The first and second sample of every label that has two, in order of first appearance.
fn anchor_positive_pairs(labels: &[i64]) -> (Vec<usize>, Vec<usize>) {
    let (mut anchors, mut positives) = (Vec::new(), Vec::new());
    for (i, &label) in labels.iter().enumerate() {
        let first = labels.iter().position(|&l| l == label);
        if first != Some(i) {
            continue;
        }
        if let Some(second) = (i + 1..labels.len()).find(|&j| labels[j] == label) {
            anchors.push(i);
            positives.push(second);
        }
    }
    (anchors, positives)
}
