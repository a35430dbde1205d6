//! Stages 1, 2 and 5 of docs/ALGORITHMS.md: normalization, the distance matrix in expanded form
//! (a block of rows at a time, through the GEMM) and the normalization backward pass.
//!
//! Losses work on `e = sign * d`: the distance itself (`sign = 1`) or the negated similarity
//! (`sign = -1`), so that "smaller is closer" everywhere and one code path serves all four
//! metrics; the weights `∂L/∂e` are turned into `∂L/∂d` by the same sign at the end.

use super::linalg::{View, dot, matmul_serial, strip_rows};
use margin_core::{Distance, Metric, NORM_EPS, Result};
use rayon::prelude::*;

/// Rows after stage 1 plus what stages 2 and 5 need.
pub(crate) struct Rows {
    /// The rows as the distance sees them (normalized when the metric normalizes), `n x d`.
    pub xh: Vec<f32>,
    /// `‖xh_i‖²`, for the expanded form.
    pub sq: Vec<f32>,
    /// `max(‖x_i‖, 1e-12)` of the raw rows, when normalized (for stage 5).
    pub norms: Option<Vec<f64>>,
    pub n: usize,
    pub d: usize,
}

impl Rows {
    /// Stage 1 on `n x d` raw rows.
    pub fn new(x: &[f32], n: usize, d: usize, metric: Metric) -> Self {
        let x = &x[..n * d];
        let (xh, norms) = if metric.normalizes() {
            let mut xh = x.to_vec();
            let norms: Vec<f64> = xh
                .par_chunks_mut(d)
                .map(|row| {
                    let nrm = row
                        .iter()
                        .map(|&v| f64::from(v) * f64::from(v))
                        .sum::<f64>()
                        .sqrt()
                        .max(NORM_EPS);
                    for v in row.iter_mut() {
                        *v = (f64::from(*v) / nrm) as f32;
                    }
                    nrm
                })
                .collect();
            (xh, Some(norms))
        } else {
            (x.to_vec(), None)
        };
        let sq = xh.par_chunks(d).map(|r| dot(r, r)).collect();
        Self {
            xh,
            sq,
            norms,
            n,
            d,
        }
    }

    /// Row `i` of `xh`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.xh[i * self.d..(i + 1) * self.d]
    }

    /// Stage 5 in place: turns a gradient with respect to `xh` into one for the raw rows.
    ///
    /// Below the 1e-12 floor the normalization is a plain division by the constant floor
    /// (torch's `F.normalize`), so the gradient is `g / 1e-12` with no projection.
    pub fn backward(&self, g: &mut [f32]) {
        let Some(norms) = &self.norms else { return };
        let d = self.d;
        g[..self.n * d]
            .par_chunks_mut(d)
            .zip(self.xh.par_chunks(d))
            .zip(norms.par_iter())
            .for_each(|((g, xh), &nrm)| {
                let proj = if nrm > NORM_EPS {
                    g.iter()
                        .zip(xh)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum::<f64>()
                } else {
                    0.0
                };
                for (gv, &xv) in g.iter_mut().zip(xh) {
                    *gv = ((f64::from(*gv) - f64::from(xv) * proj) / nrm) as f32;
                }
            });
    }
}

/// `+1` for a distance, `-1` for a similarity.
pub(crate) fn sign(metric: Metric) -> f32 {
    if metric.is_similarity() { -1.0 } else { 1.0 }
}

/// The metric value from a dot product and two squared norms (expanded form, clamped at 0).
#[inline]
pub(crate) fn value(distance: Distance, dot: f32, sqa: f32, sqb: f32) -> f32 {
    match distance {
        Distance::Euclidean => (sqa + sqb - 2.0 * dot).max(0.0).sqrt(),
        Distance::SquaredEuclidean => (sqa + sqb - 2.0 * dot).max(0.0),
        Distance::Cosine | Distance::Dot => dot,
    }
}

/// Up to this width, (squared) euclidean distances are summed directly over `(a − b)²`: the
/// expanded form loses too much to cancellation for close points in very few dimensions (a
/// 1-D batch has many), and the direct sum is as cheap as the GEMM there.
pub(crate) const DIRECT_MAX_D: usize = 16;

/// `‖a − b‖²` summed directly (sqrt for euclidean).
#[inline]
fn direct(distance: Distance, a: &[f32], b: &[f32]) -> f32 {
    let s: f32 = a.iter().zip(b).map(|(&x, &y)| (x - y) * (x - y)).sum();
    if distance == Distance::Euclidean {
        s.sqrt()
    } else {
        s
    }
}

/// Below this fraction of `‖a‖² + ‖b‖²`, the expanded form's squared distance has lost most of
/// its digits to cancellation (its error is about 1e-7 (‖a‖² + ‖b‖²), which the euclidean
/// gradient's 1/d then amplifies): rows far from the origin relative to their spread (features
/// with a large common offset, near-duplicates) are summed directly instead. The GPU kernels'
/// `refine` uses the same rule.
const CANCELLED: f32 = 1e-2;

/// Whether the expanded form of `‖a − b‖²` from `a · b = dot` is mostly rounding.
#[inline]
fn cancelled(dot: f32, sqa: f32, sqb: f32) -> bool {
    sqa + sqb - 2.0 * dot < CANCELLED * (sqa + sqb)
}

/// Turns one row of dot products (`row[j] = a · b_j`, `b` the rows behind `sqb`) into
/// `sgn * metric(a, b_j)` in place. Pairs the expanded form cannot resolve ([`cancelled`]) are
/// summed directly; `own` is the column of `a`'s own copy, whose distance is always such a pair
/// but is left to the vectorized path (losses exclude it) unless the row needs the scalar path.
#[allow(clippy::too_many_arguments)]
fn finish_row(
    distance: Distance,
    sgn: f32,
    row: &mut [f32],
    a: &[f32],
    sqa: f32,
    b: &[f32],
    sqb: &[f32],
    own: Option<usize>,
) {
    let d = a.len();
    if distance.is_similarity() {
        row.iter_mut().for_each(|v| *v *= sgn);
        return;
    }
    // One vectorized pass counts the pairs to refine; almost always only `own` (or none).
    let count = row
        .iter()
        .zip(sqb)
        .fold(0u32, |c, (&v, &qb)| c + u32::from(cancelled(v, sqa, qb)));
    let own_count = own.map_or(0, |j| u32::from(cancelled(row[j], sqa, sqb[j])));
    if count > own_count {
        for (j, (v, &qb)) in row.iter_mut().zip(sqb).enumerate() {
            *v = sgn
                * if cancelled(*v, sqa, qb) {
                    direct(distance, a, &b[j * d..(j + 1) * d])
                } else {
                    value(distance, *v, sqa, qb)
                };
        }
        return;
    }
    // One loop per distance, so that each vectorizes.
    let it = row.iter_mut().zip(sqb);
    match distance {
        Distance::Euclidean => {
            it.for_each(|(v, &qb)| *v = sgn * (sqa + qb - 2.0 * *v).max(0.0).sqrt())
        }
        Distance::SquaredEuclidean => {
            it.for_each(|(v, &qb)| *v = sgn * (sqa + qb - 2.0 * *v).max(0.0))
        }
        Distance::Cosine | Distance::Dot => {}
    }
}

/// `out (rows(a) x rows(b)) = sign * metric(a_i, b_j)`; `a`, `b` row-major with width `d`.
/// `own(i)`: the column of row i's own copy among the rows of `b`, if it is there.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cross_block(
    distance: Distance,
    sgn: f32,
    a: &[f32],
    sqa: &[f32],
    b: &[f32],
    sqb: &[f32],
    d: usize,
    out: &mut [f32],
    own: &(dyn Fn(usize) -> Option<usize> + Sync),
) {
    let (na, nb) = (sqa.len(), sqb.len());
    if d <= DIRECT_MAX_D && !distance.is_similarity() {
        out[..na * nb]
            .par_chunks_mut(nb)
            .zip(a.par_chunks(d))
            .for_each(|(row, ar)| {
                for (v, br) in row.iter_mut().zip(b.chunks(d)) {
                    *v = sgn * direct(distance, ar, br);
                }
            });
        return;
    }
    // Row strips: each thread multiplies its strip and transforms it while it is in cache.
    let strip = strip_rows(na);
    out[..na * nb]
        .par_chunks_mut(strip * nb)
        .enumerate()
        .for_each(|(s, o)| {
            let r0 = s * strip;
            let rows = o.len() / nb;
            matmul_serial(
                rows,
                nb,
                d,
                o,
                nb,
                false,
                1.0,
                View::rows(&a[r0 * d..], d),
                View::transposed(b, d),
            );
            for (k, (row, &qa)) in o.chunks_mut(nb).zip(&sqa[r0..r0 + rows]).enumerate() {
                let i = r0 + k;
                let ar = &a[i * d..(i + 1) * d];
                finish_row(distance, sgn, row, ar, qa, b, sqb, own(i));
            }
        });
}

impl Rows {
    /// `e = sign * d` for every row against every row (`out` is `n x n`): only the upper
    /// triangle is computed, in row strips, and mirrored, so that the GEMM does about half the
    /// work of [`Rows::e_block`] over the whole matrix; `e` also comes out exactly symmetric.
    pub fn e_square(&self, metric: Metric, out: &mut [f32]) {
        let (n, d) = (self.n, self.d);
        let distance = metric.distance;
        let sgn = sign(metric);
        // Many strips: the triangle makes their costs unequal, and work stealing evens them out.
        let strip = n.div_ceil(16).max(64);
        let direct_sum = d <= DIRECT_MAX_D && !distance.is_similarity();
        out[..n * n]
            .par_chunks_mut(strip * n)
            .enumerate()
            .for_each(|(s, o)| {
                let r0 = s * strip;
                let rows = o.len() / n;
                let cols = n - r0;
                let a = &self.xh[r0 * d..(r0 + rows) * d];
                let b = &self.xh[r0 * d..];
                if direct_sum {
                    for (k, ar) in a.chunks(d).enumerate() {
                        let row = &mut o[k * n + r0..(k + 1) * n];
                        for (v, br) in row.iter_mut().zip(b.chunks(d)) {
                            *v = sgn * direct(distance, ar, br);
                        }
                    }
                    return;
                }
                matmul_serial(
                    rows,
                    cols,
                    d,
                    &mut o[r0..],
                    n,
                    false,
                    1.0,
                    View::rows(a, d),
                    View::transposed(b, d),
                );
                for (k, &qa) in self.sq[r0..r0 + rows].iter().enumerate() {
                    let row = &mut o[k * n + r0..(k + 1) * n];
                    let ar = &a[k * d..(k + 1) * d];
                    finish_row(distance, sgn, row, ar, qa, b, &self.sq[r0..], Some(k));
                }
            });
        // The lower triangle of each strip from the rows above it, 16 rows at a time so that
        // each read of the upper part is one cache line.
        for r0 in (strip..n).step_by(strip) {
            let (upper, rest) = out.split_at_mut(r0 * n);
            let rows = strip.min(n - r0);
            rest[..rows * n]
                .par_chunks_mut(16 * n)
                .enumerate()
                .for_each(|(t, tile)| {
                    let i0 = r0 + 16 * t;
                    let th = tile.len() / n;
                    for j in 0..r0 {
                        let src = &upper[j * n + i0..j * n + i0 + th];
                        for (k, &v) in src.iter().enumerate() {
                            tile[k * n + j] = v;
                        }
                    }
                });
        }
    }

    /// Stage 2 for rows `r0..r0 + b` against all rows: `out (b x n) = e`.
    pub fn e_block(&self, metric: Metric, r0: usize, b: usize, out: &mut [f32]) {
        let d = self.d;
        cross_block(
            metric.distance,
            sign(metric),
            &self.xh[r0 * d..(r0 + b) * d],
            &self.sq[r0..r0 + b],
            &self.xh,
            &self.sq,
            d,
            out,
            &|i| Some(r0 + i),
        );
    }

    /// `e` of one pair from a fixed-order dot product: symmetric bit for bit.
    pub fn pair_e(&self, metric: Metric, i: usize, j: usize) -> f32 {
        if self.d <= DIRECT_MAX_D && !metric.is_similarity() {
            return direct(metric.distance, self.row(i), self.row(j));
        }
        let v = dot(self.row(i), self.row(j));
        if !metric.is_similarity() && cancelled(v, self.sq[i], self.sq[j]) {
            return direct(metric.distance, self.row(i), self.row(j));
        }
        sign(metric) * value(metric.distance, v, self.sq[i], self.sq[j])
    }
}

/// The `nq x nr` matrix for `Backend::pairwise_on_device`.
pub(crate) fn pairwise(
    metric: Metric,
    q: &[f32],
    nq: usize,
    r: Option<(&[f32], usize)>,
    d: usize,
    out: &mut [f32],
) -> Result<()> {
    let qrows = Rows::new(q, nq, d, metric);
    let other;
    let rrows = match r {
        Some((data, nr)) => {
            other = Rows::new(data, nr, d, metric);
            &other
        }
        None => &qrows,
    };
    cross_block(
        metric.distance,
        1.0,
        &qrows.xh,
        &qrows.sq,
        &rrows.xh,
        &rrows.sq,
        d,
        out,
        &|i| r.is_none().then_some(i),
    );
    if r.is_none() && !metric.is_similarity() {
        // The expanded form leaves rounding noise on the diagonal; a point's distance to itself
        // is exactly 0.
        for i in 0..nq {
            out[i * nq + i] = 0.0;
        }
    }
    Ok(())
}
