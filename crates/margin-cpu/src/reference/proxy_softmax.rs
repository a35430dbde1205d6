//! The proxy-softmax losses: proxy-nca (PML `ProxyNCALoss`), normalized-softmax
//! (`NormalizedSoftmaxLoss`) and cosface (`CosFaceLoss`), the batch against K centers.
//!
//! With `D` the `n x k` matrix between embeddings and centers, `e = sign · D` (smaller = closer)
//! and the loss's [`ProxySoftmax`] form, per sample i the logits are
//! `z_ic = scale · (−e_ic − target_margin · [c = y_i])` and the term is the cross-entropy
//! `−log p_{i,y_i} = LSE_c z_ic − z_{i,y_i}`. `L = Mean` over the counted samples: all of them,
//! but for proxy-nca those whose `log p_{i,y_i}` is below `ln 2^−1075` (PML's float64 softmax gives
//! them exactly 0 and drops them). Active counts: `[counted samples, 0]`. O(NK).
//!
//! Labels are already checked to lie in `0..k`.

use super::Weights;
use super::distance::farther_sign;
use super::math::logsumexp;
use margin_core::{Distance, LossStats, ProxySoftmax};

/// Loss and `W = ∂L/∂D` (`n x k`) for the embedding-to-center matrix `dist`.
pub(crate) fn weights(
    form: ProxySoftmax,
    distance: Distance,
    dist: &[f64],
    (n, k): (usize, usize),
    labels: &[i64],
) -> Weights {
    let sign = farther_sign(distance);
    let mut w = vec![0.0; n * k];
    let mut terms = Vec::with_capacity(n);
    for i in 0..n {
        let y = labels[i] as usize;
        let z: Vec<f64> = (0..k)
            .map(|c| {
                let target = if c == y { form.target_margin } else { 0.0 };
                form.scale * (-sign * dist[i * k + c] - target)
            })
            .collect();
        let lse = logsumexp(z.iter().copied());
        let log_p = z[y] - lse;
        if !form.drop_underflow || log_p >= ProxySoftmax::UNDERFLOW {
            terms.push((i, z, lse, -log_p));
        }
    }
    let count = terms.len();
    let inv = 1.0 / count.max(1) as f64;
    let mut sum = 0.0;
    for (i, z, lse, loss) in terms {
        sum += loss;
        // ∂L/∂z_ic = (p_ic − [c = y_i]) / count; ∂z/∂D = −scale · sign.
        for (c, zc) in z.iter().enumerate() {
            let target = if c == labels[i] as usize { 1.0 } else { 0.0 };
            w[i * k + c] = ((zc - lse).exp() - target) * inv * -form.scale * sign;
        }
    }
    Weights {
        stats: LossStats::new(sum * inv, count as u64, 0),
        w,
    }
}
