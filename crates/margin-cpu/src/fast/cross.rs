//! Losses between two row sets: triplet-center (embeddings against centers) and n-pair (anchors
//! against positives), and the pieces the proxy losses (proxies.rs) share with them. All are
//! `O(N K)` after the distances.

use super::chain;
use super::classes::Classes;
use super::geometry::{Rows, cross_block, sign};
use super::linalg::zeros;
use margin_core::{LossStats, Metric, Result};

/// Gradients w.r.t. the raw rows of both sets.
pub(crate) struct CrossGrad {
    pub ga: Vec<f32>,
    pub gb: Vec<f32>,
}

pub(super) fn e_matrix(a: &Rows, b: &Rows, metric: Metric) -> Result<Vec<f32>> {
    let mut e = zeros(a.n * b.n, "the center distance matrix")?;
    cross_block(
        metric.distance,
        sign(metric),
        &a.xh,
        &a.sq,
        &b.xh,
        &b.sq,
        a.d,
        &mut e,
        &|_| None,
    );
    Ok(e)
}

/// Chains `W = ∂L/∂e` (overwritten) back to both raw row sets.
pub(super) fn backward(
    a: &Rows,
    b: &Rows,
    metric: Metric,
    w: &mut [f32],
    e: &[f32],
) -> Result<CrossGrad> {
    let s = sign(metric);
    for v in w.iter_mut() {
        *v *= s;
    }
    let (mut ga, mut gb) = chain::cross(a, b, metric.distance, w, e)?;
    a.backward(&mut ga);
    b.backward(&mut gb);
    Ok(CrossGrad { ga, gb })
}

/// Triplet-center: `Mean_i relu(e_{i,y_i} − min_{c≠y_i} e_ic + m)`; labels are in `0..K`.
pub(crate) fn triplet_center(
    x: &Rows,
    c: &Rows,
    labels: &[i64],
    metric: Metric,
    margin: f64,
) -> Result<(LossStats, CrossGrad)> {
    let (n, k) = (x.n, c.n);
    let e = e_matrix(x, c, metric)?;
    let mut w = zeros(n * k, "the center weights")?;
    let (mut loss, mut active) = (0.0f64, 0u64);
    let inv = 1.0 / n as f64;
    for i in 0..n {
        let row = &e[i * k..(i + 1) * k];
        let y = labels[i] as usize;
        let mut best: Option<(f32, usize)> = None;
        for (cc, &v) in row.iter().enumerate() {
            if cc != y && best.is_none_or(|(b, _)| v < b) {
                best = Some((v, cc));
            }
        }
        let Some((emin, cmin)) = best else { continue };
        let v = f64::from(row[y]) - f64::from(emin) + margin;
        if v > 0.0 {
            loss += v;
            active += 1;
            w[i * k + y] += inv as f32;
            w[i * k + cmin] -= inv as f32;
        }
    }
    let g = backward(x, c, metric, &mut w, &e)?;
    Ok((LossStats::new(loss * inv, active, 0), g))
}

/// N-pair: anchors and positives are the first two samples of every label with at least two,
/// in order of first appearance. Returns the stats, the gradient for all `n` rows, or `None`
/// when fewer than two labels qualify (loss 0, nothing active).
pub(crate) fn n_pair(
    x: &[f32],
    n: usize,
    d: usize,
    labels: &[i64],
    metric: Metric,
) -> Result<Option<(LossStats, Vec<f32>)>> {
    let classes = Classes::new(labels);
    let pairs: Vec<(usize, usize)> = classes
        .members
        .iter()
        .filter(|m| m.len() >= 2)
        .map(|m| (m[0] as usize, m[1] as usize))
        .collect();
    let k = pairs.len();
    if k < 2 {
        return Ok(None);
    }
    let gather = |pick: &dyn Fn(&(usize, usize)) -> usize| {
        let mut out = Vec::with_capacity(k * d);
        for p in &pairs {
            let r = pick(p);
            out.extend_from_slice(&x[r * d..(r + 1) * d]);
        }
        out
    };
    let a = Rows::new(&gather(&|p| p.0), k, d, metric);
    let b = Rows::new(&gather(&|p| p.1), k, d, metric);
    let e = e_matrix(&a, &b, metric)?;
    // S = −e; L = Mean_t (LSE_j S_tj − S_tt); ∂L/∂S = (softmax − I) / k, ∂L/∂e = −∂L/∂S.
    let mut w = zeros(k * k, "the n-pair weights")?;
    let mut loss = 0.0f64;
    for t in 0..k {
        let row = &e[t * k..(t + 1) * k];
        let mx = row
            .iter()
            .map(|&v| -f64::from(v))
            .fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|&v| (-f64::from(v) - mx).exp()).sum();
        let lse = mx + z.ln();
        loss += lse + f64::from(row[t]);
        for (j, &v) in row.iter().enumerate() {
            let p = (-f64::from(v) - lse).exp();
            let gs = (p - if j == t { 1.0 } else { 0.0 }) / k as f64;
            w[t * k + j] = -gs as f32;
        }
    }
    let g = backward(&a, &b, metric, &mut w, &e)?;
    let mut grad = zeros(n * d, "the gradient")?;
    for (t, &(ia, ip)) in pairs.iter().enumerate() {
        grad[ia * d..(ia + 1) * d].copy_from_slice(&g.ga[t * d..(t + 1) * d]);
        grad[ip * d..(ip + 1) * d].copy_from_slice(&g.gb[t * d..(t + 1) * d]);
    }
    Ok(Some((LossStats::new(loss / k as f64, k as u64, 0), grad)))
}
