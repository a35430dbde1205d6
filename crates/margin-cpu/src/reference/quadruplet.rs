//! Quadruplet loss (Chen et al., CVPR 2017).
//!
//! * term 1, every triplet `(a, p, n)`: `relu(d_ap − d_an + margin)`.
//! * term 2, every ordered positive pair `(a, p)` and every ordered negative pair `(k, l)` (so
//!   `y_k ≠ y_l`) with `y_k ≠ y_a` and `y_l ≠ y_a`: `relu(d_ap − d_kl + margin2)`.
//! * `L = AvgNonZero(term 1) + AvgNonZero(term 2)`; similarities flip signs as for triplet
//!   (`s_an − s_ap + margin`, `s_kl − s_ap + margin2`).
//!
//! Term 2 is O(N⁴): this is meant for N up to a few dozen. Nothing is stored but two N x N
//! weight matrices.

use super::Weights;
use super::distance::farther_sign;
use margin_core::{LossStats, QuadrupletConfig};

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(cfg: &QuadrupletConfig, dist: &[f64], n: usize, labels: &[i64]) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let far = |i: usize, j: usize| sign * dist[i * n + j];
    // One weight matrix per term, since each term has its own AvgNonZero denominator.
    let mut w1 = vec![0.0; n * n];
    let mut w2 = vec![0.0; n * n];
    let (mut sum1, mut count1) = (0.0, 0u64);
    let (mut sum2, mut count2) = (0.0, 0u64);
    for a in 0..n {
        for p in (0..n).filter(|&p| p != a && labels[p] == labels[a]) {
            // Term 1: (a, p, neg).
            for neg in (0..n).filter(|&k| labels[k] != labels[a]) {
                let v = far(a, p) - far(a, neg) + cfg.margin;
                if v > 0.0 {
                    sum1 += v;
                    count1 += 1;
                    w1[a * n + p] += sign;
                    w1[a * n + neg] -= sign;
                }
            }
            // Term 2: (a, p) against every negative pair (k, l) not involving y_a.
            for k in (0..n).filter(|&k| labels[k] != labels[a]) {
                for l in (0..n).filter(|&l| labels[l] != labels[a] && labels[l] != labels[k]) {
                    let v = far(a, p) - far(k, l) + cfg.margin2;
                    if v > 0.0 {
                        sum2 += v;
                        count2 += 1;
                        w2[a * n + p] += sign;
                        w2[k * n + l] -= sign;
                    }
                }
            }
        }
    }
    let avg = |sum: f64, count: u64| if count > 0 { sum / count as f64 } else { 0.0 };
    let scale = |count: u64| if count > 0 { 1.0 / count as f64 } else { 0.0 };
    let w = w1
        .iter()
        .zip(&w2)
        .map(|(x, y)| x * scale(count1) + y * scale(count2))
        .collect();
    Weights {
        stats: LossStats::new(avg(sum1, count1) + avg(sum2, count2), count1, count2),
        w,
    }
}
