//! Triplet margin loss (PML `TripletMarginLoss`), with PML's miners.
//!
//! Per triplet `(a, p, n)`: `v = d_ap − d_an + margin` (similarity: `s_an − s_ap + margin`), the
//! term is `relu(v)`, or `softplus(v)` when `smooth`. `L = AvgNonZero` over the selected triplets;
//! with `smooth` every selected triplet counts (softplus is > 0 everywhere).
//!
//! Which triplets ([`Mining`]):
//! * `all`: every `(a, p, n)` with `y_a = y_p`, `a ≠ p`, `y_a ≠ y_n`. O(N³).
//! * `hard` (PML `BatchHardMiner`): per anchor having a positive and a negative, its farthest
//!   positive and its nearest negative; ties go to the lowest index. O(N²).
//! * `semihard` (PML `TripletMarginMiner(margin, "semihard")`): `0 < d_an − d_ap <= margin`
//!   (similarity: `0 < s_ap − s_an <= margin`). O(N³).
//!
//! Triplets are visited one at a time, never stored.

use super::Weights;
use super::distance::farther_sign;
use super::math::{sigmoid, softplus};
use margin_core::{LossStats, Mining, TripletConfig};

/// Loss and `W = ∂L/∂D` for the `n x n` matrix `dist`.
pub(crate) fn weights(cfg: &TripletConfig, dist: &[f64], n: usize, labels: &[i64]) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let mut w = vec![0.0; n * n];
    let (mut sum, mut count) = (0.0, 0u64);
    visit_triplets(cfg, dist, n, labels, |a, p, neg| {
        let v = sign * (dist[a * n + p] - dist[a * n + neg]) + cfg.margin;
        // (term value, ∂term/∂v), for the active terms only.
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
            w[a * n + p] += slope * sign;
            w[a * n + neg] -= slope * sign;
        }
    });
    if count == 0 {
        return Weights {
            stats: LossStats::empty(),
            w: vec![0.0; n * n],
        };
    }
    w.iter_mut().for_each(|v| *v /= count as f64);
    Weights {
        stats: LossStats::new(sum / count as f64, count, 0),
        w,
    }
}

/// Calls `f(a, p, n)` for every triplet the mining selects.
fn visit_triplets(
    cfg: &TripletConfig,
    dist: &[f64],
    n: usize,
    labels: &[i64],
    mut f: impl FnMut(usize, usize, usize),
) {
    let sign = farther_sign(cfg.metric.distance);
    // How far apart i and j are, whatever the metric: larger = farther.
    let far = |i: usize, j: usize| sign * dist[i * n + j];
    for a in 0..n {
        let positives = (0..n).filter(|&p| p != a && labels[p] == labels[a]);
        let negatives = (0..n).filter(|&k| labels[k] != labels[a]);
        match cfg.mining {
            Mining::All => {
                for p in positives {
                    for neg in negatives.clone() {
                        f(a, p, neg);
                    }
                }
            }
            Mining::SemiHard => {
                for p in positives {
                    for neg in negatives.clone() {
                        let gap = far(a, neg) - far(a, p);
                        if gap > 0.0 && gap <= cfg.margin {
                            f(a, p, neg);
                        }
                    }
                }
            }
            Mining::Hard => {
                // Strict comparisons keep the lowest index on ties.
                let mut hardest_p: Option<usize> = None;
                for p in positives {
                    if hardest_p.is_none_or(|h| far(a, p) > far(a, h)) {
                        hardest_p = Some(p);
                    }
                }
                let mut hardest_n: Option<usize> = None;
                for neg in negatives {
                    if hardest_n.is_none_or(|h| far(a, neg) < far(a, h)) {
                        hardest_n = Some(neg);
                    }
                }
                if let (Some(p), Some(neg)) = (hardest_p, hardest_n) {
                    f(a, p, neg);
                }
            }
        }
    }
}
