//! The losses against learned proxies or class weights (the centers): proxy-anchor, and the
//! proxy-softmax losses (proxy-nca, normalized-softmax, cosface). `O(N K)` after the N x K
//! matrix; the exponentials dominate that part, so every entry takes one (the vectorizing
//! [`exp_f32`]) and the rows run in parallel. The math is the reference's
//! (reference/proxy_anchor.rs, reference/proxy_softmax.rs).

use super::cross::{CrossGrad, backward, e_matrix};
use super::geometry::{Rows, sign};
use super::linalg::zeros;
use super::vexp::exp_f32;
use margin_core::{LossStats, Metric, ProxySoftmax, Result};
use rayon::prelude::*;

/// Per proxy and side (0: its positives, 1: its negatives), two f64s.
type Sides = Vec<[f64; 2]>;

/// Proxy-anchor: per proxy c, `log(1 + Σ_{y_i = c} e^{α (e_ic − m')})` over the proxies with a
/// positive, divided by their number, plus `log(1 + Σ_{y_i ≠ c} e^{α (−m' − e_ic)})` over all K,
/// divided by K, with `m' = sign · margin`; labels are in `0..K`. Its sums run down the columns:
/// each pass folds rows in parallel into per-proxy accumulators.
pub(crate) fn proxy_anchor(
    x: &Rows,
    c: &Rows,
    labels: &[i64],
    metric: Metric,
    (margin, alpha): (f64, f64),
) -> Result<(LossStats, CrossGrad)> {
    let (n, k) = (x.n, c.n);
    let e = e_matrix(x, c, metric)?;
    let m = f64::from(sign(metric)) * margin;
    let mut with_pos = vec![false; k];
    for &y in labels {
        with_pos[y as usize] = true;
    }
    let cpos = with_pos.iter().filter(|&&p| p).count();
    let with_neg = (0..k)
        .filter(|&cc| labels.iter().any(|&y| y as usize != cc))
        .count();
    let (pos_div, neg_div) = (cpos.max(1) as f64, k as f64);
    // The exponent of entry (i, c), and its side.
    let exponent = |y: usize, cc: usize, v: f32| {
        let v = f64::from(v);
        if y == cc {
            (0, alpha * (v - m))
        } else {
            (1, alpha * (-m - v))
        }
    };
    let merge = |f: fn(f64, f64) -> f64| {
        move |mut a: Sides, b: Sides| {
            for (x, y) in a.iter_mut().zip(&b) {
                *x = [f(x[0], y[0]), f(x[1], y[1])];
            }
            a
        }
    };
    // Pass 1: max(0, max x) per proxy and side (the 0 is the "1 +").
    let top = e
        .par_chunks(k)
        .zip(labels.par_iter())
        .fold(
            || vec![[0.0f64; 2]; k],
            |mut acc, (row, &y)| {
                for (cc, (t, &v)) in acc.iter_mut().zip(row).enumerate() {
                    let (s, x) = exponent(y as usize, cc, v);
                    t[s] = t[s].max(x);
                }
                acc
            },
        )
        .reduce(|| vec![[0.0f64; 2]; k], merge(f64::max));
    // Pass 2: e^{x − max} into W (one exponential per entry) and its sums.
    let mut w = zeros(n * k, "the proxy weights")?;
    let sums = w
        .par_chunks_mut(k)
        .zip(e.par_chunks(k))
        .zip(labels.par_iter())
        .fold(
            || vec![[0.0f64; 2]; k],
            |mut acc, ((wrow, row), &y)| {
                for (cc, ((wv, &v), (a, t))) in wrow
                    .iter_mut()
                    .zip(row)
                    .zip(acc.iter_mut().zip(&top))
                    .enumerate()
                {
                    let (s, x) = exponent(y as usize, cc, v);
                    let p = exp_f32((x - t[s]) as f32);
                    *wv = p;
                    a[s] += f64::from(p);
                }
                acc
            },
        )
        .reduce(|| vec![[0.0f64; 2]; k], merge(|a, b| a + b));
    // Per proxy and side: the LSE (with the "1 +", e^{−max}), and the factor that turns each
    // stored e^{x − max} into its weight α e^{x − LSE} / divisor (negatives negated).
    let mut loss = 0.0;
    let mut factor = vec![[0.0f32; 2]; k];
    for ((t, s), f) in top.iter().zip(&sums).zip(factor.iter_mut()) {
        let total = [(-t[0]).exp() + s[0], (-t[1]).exp() + s[1]];
        loss += (t[0] + total[0].ln()) / pos_div + (t[1] + total[1].ln()) / neg_div;
        *f = [
            (alpha / (total[0] * pos_div)) as f32,
            (-alpha / (total[1] * neg_div)) as f32,
        ];
    }
    w.par_chunks_mut(k)
        .zip(labels.par_iter())
        .for_each(|(wrow, &y)| {
            for (cc, (wv, f)) in wrow.iter_mut().zip(&factor).enumerate() {
                *wv *= f[usize::from(y as usize != cc)];
            }
        });
    let g = backward(x, c, metric, &mut w, &e)?;
    Ok((LossStats::new(loss, cpos as u64, with_neg as u64), g))
}

/// The proxy-softmax losses (proxy-nca, normalized-softmax, cosface): per sample a cross-entropy
/// over the K centers with logits `scale · (−e_ic − target_margin · [c = y_i])`, Mean over the
/// counted samples; labels are in `0..K`. Rows in parallel; the target's weight is taken as
/// `expm1(log p_y)` in f64, so a confident row (p_y → 1) keeps its gradient's relative precision.
pub(crate) fn proxy_softmax(
    x: &Rows,
    c: &Rows,
    labels: &[i64],
    metric: Metric,
    form: ProxySoftmax,
) -> Result<(LossStats, CrossGrad)> {
    let (n, k) = (x.n, c.n);
    let e = e_matrix(x, c, metric)?;
    let mut w = zeros(n * k, "the center weights")?;
    // Per row: its −log p_y, or None when the row is left out (weights 0); the weights are
    // written as (p − onehot) and scaled by −scale / count once the count is known.
    let rows: Vec<Option<f64>> = w
        .par_chunks_mut(k)
        .zip(e.par_chunks(k))
        .zip(labels.par_iter())
        .map(|((wrow, row), &y)| {
            let y = y as usize;
            let z = |cc: usize, v: f32| {
                let target = if cc == y { form.target_margin } else { 0.0 };
                form.scale * (-f64::from(v) - target)
            };
            let top = row
                .iter()
                .enumerate()
                .map(|(cc, &v)| z(cc, v))
                .fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0f64;
            for (cc, (wv, &v)) in wrow.iter_mut().zip(row).enumerate() {
                let p = exp_f32((z(cc, v) - top) as f32);
                *wv = p;
                sum += f64::from(p);
            }
            let log_p = z(y, row[y]) - top - sum.ln();
            if form.drop_underflow && log_p < ProxySoftmax::UNDERFLOW {
                wrow.fill(0.0);
                return None;
            }
            let inv = (1.0 / sum) as f32;
            wrow.iter_mut().for_each(|wv| *wv *= inv);
            wrow[y] = log_p.exp_m1() as f32;
            Some(-log_p)
        })
        .collect();
    let counted = rows.iter().flatten().count();
    let loss: f64 = rows.iter().flatten().sum();
    // ∂L/∂e = (p − onehot) · (−scale) / count.
    let scale = (-form.scale / counted.max(1) as f64) as f32;
    w.par_iter_mut().for_each(|v| *v *= scale);
    let g = backward(x, c, metric, &mut w, &e)?;
    let stats = LossStats::new(loss / counted.max(1) as f64, counted as u64, 0);
    Ok((stats, g))
}
