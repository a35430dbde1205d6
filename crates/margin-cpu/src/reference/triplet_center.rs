//! Triplet-center loss (He et al., CVPR 2018), embeddings against K centers.
//!
//! With `D` the `n x k` matrix between embeddings and centers, per sample i:
//! `relu(D[i, y_i] − min_{c ≠ y_i} D[i, c] + margin)` (similarity:
//! `relu(max_{c ≠ y_i} s[i, c] − s[i, y_i] + margin)`); ties in the min / max go to the lowest
//! center index. `L = Mean` over all N samples (inactive samples count in the denominator). O(NK).
//!
//! Labels are already checked to lie in `0..k` and `k >= 2`.

use super::Weights;
use super::distance::farther_sign;
use margin_core::{LossStats, TripletCenterConfig};

/// Loss and `W = ∂L/∂D` (`n x k`) for the embedding-to-center matrix `dist`.
pub(crate) fn weights(
    cfg: &TripletCenterConfig,
    dist: &[f64],
    n: usize,
    k: usize,
    labels: &[i64],
) -> Weights {
    let sign = farther_sign(cfg.metric.distance);
    let far = |i: usize, c: usize| sign * dist[i * k + c];
    let mut w = vec![0.0; n * k];
    let (mut sum, mut count) = (0.0, 0u64);
    for i in 0..n {
        // Validated: 0 <= label < k.
        let own = labels[i] as usize;
        let mut nearest_other: Option<usize> = None;
        for c in (0..k).filter(|&c| c != own) {
            if nearest_other.is_none_or(|h| far(i, c) < far(i, h)) {
                nearest_other = Some(c);
            }
        }
        let Some(other) = nearest_other else {
            continue;
        };
        let v = far(i, own) - far(i, other) + cfg.margin;
        if v > 0.0 {
            sum += v;
            count += 1;
            w[i * k + own] += sign / n as f64;
            w[i * k + other] -= sign / n as f64;
        }
    }
    Weights {
        stats: LossStats::new(sum / n as f64, count, 0),
        w,
    }
}
