//! Stage 4 of docs/ALGORITHMS.md: chaining `W = ∂L/∂d` through the distance with matrix
//! products, for a block of rows against all rows (`M = W + Wᵀ` accumulated block by block)
//! and for two different row sets (centers, n-pair anchors against positives).

use super::geometry::Rows;
use super::linalg::{View, matmul, zeros};
use margin_core::{Distance, Result};
use rayon::prelude::*;

/// Turns `W` (w.r.t. `d`) into the weight the linear part of the chain uses: `W / d` for
/// euclidean (0 where `d = 0`, the SPEC's gradient at 0). `e` holds `sign * d`; for euclidean
/// `sign = 1`, so `e = d`.
pub(crate) fn prepare(distance: Distance, w: &mut [f32], e: &[f32]) {
    if distance == Distance::Euclidean {
        w.par_iter_mut().zip(e.par_iter()).for_each(|(w, &d)| {
            *w = if d > 0.0 { *w / d } else { 0.0 };
        });
    }
}

/// The constant in front of `diag(rowsum) X − W X`: 2 for squared euclidean, 1 for euclidean,
/// `None` for similarities (plain `W X`).
pub(crate) fn factor(distance: Distance) -> Option<f32> {
    match distance {
        Distance::Euclidean => Some(1.0),
        Distance::SquaredEuclidean => Some(2.0),
        Distance::Cosine | Distance::Dot => None,
    }
}

/// The resident finish in one pass over the matrix: `e` (`n x n`, holding `sign * d`) is
/// overwritten with `M' = (s0 (W0 + W0ᵀ) + s1 (W1 + W1ᵀ)) / d` (the division for euclidean only,
/// 0 where `d = 0`), and the row sums of `M'` are returned. `w1` may be empty (one group).
/// Fusing the group merge, [`prepare`] and the transpose saves two passes over `N²`.
pub(crate) fn merge_symmetric(
    distance: Distance,
    w0: &[f32],
    w1: &[f32],
    [s0, s1]: [f32; 2],
    e: &mut [f32],
    n: usize,
) -> Vec<f64> {
    // Row tiles of `e` in parallel; within one, column tiles of T: the transposed tile of the
    // weights is gathered into a small buffer first (contiguous reads of the source rows), so
    // that the arithmetic runs over contiguous slices and vectorizes.
    const T: usize = 64;
    let euclid = distance == Distance::Euclidean;
    let two = !w1.is_empty();
    e[..n * n]
        .par_chunks_mut(T * n)
        .enumerate()
        .flat_map_iter(|(t, rows)| {
            let i0 = t * T;
            let ti = rows.len() / n;
            let mut sums = vec![0.0f64; ti];
            let mut bt = vec![0.0f32; T * T];
            for j0 in (0..n).step_by(T) {
                let tj = T.min(n - j0);
                // bt[di][dj] = s0 w0[j0+dj][i0+di] + s1 w1[j0+dj][i0+di]
                for dj in 0..tj {
                    let src = (j0 + dj) * n + i0;
                    let col0 = &w0[src..src + ti];
                    for (di, &v) in col0.iter().enumerate() {
                        bt[di * T + dj] = s0 * v;
                    }
                    if two {
                        let col1 = &w1[src..src + ti];
                        for (di, &v) in col1.iter().enumerate() {
                            bt[di * T + dj] += s1 * v;
                        }
                    }
                }
                for (di, sum) in sums.iter_mut().enumerate() {
                    let at = (i0 + di) * n + j0;
                    let a0 = &w0[at..at + tj];
                    let b = &bt[di * T..di * T + tj];
                    let o = &mut rows[di * n + j0..di * n + j0 + tj];
                    if two {
                        let a1 = &w1[at..at + tj];
                        for (((v, &x0), &x1), &y) in o.iter_mut().zip(a0).zip(a1).zip(b) {
                            let m = s0 * x0 + s1 * x1 + y;
                            *v = finish(euclid, m, *v);
                        }
                    } else {
                        for ((v, &x0), &y) in o.iter_mut().zip(a0).zip(b) {
                            *v = finish(euclid, s0 * x0 + y, *v);
                        }
                    }
                    *sum += lane_sum(o);
                }
            }
            sums
        })
        .collect()
}

/// [`merge_symmetric`] for symmetric weights (`W = Wᵀ`): `e ← 2 (s0 W0 + s1 W1) / d`, one
/// contiguous, vectorized pass with no transpose.
pub(crate) fn merge_doubled(
    distance: Distance,
    w0: &[f32],
    w1: &[f32],
    [s0, s1]: [f32; 2],
    e: &mut [f32],
    n: usize,
) -> Vec<f64> {
    let euclid = distance == Distance::Euclidean;
    let two = !w1.is_empty();
    let (t0, t1) = (2.0 * s0, 2.0 * s1);
    e[..n * n]
        .par_chunks_mut(n)
        .enumerate()
        .map(|(i, o)| {
            let a0 = &w0[i * n..(i + 1) * n];
            if two {
                let a1 = &w1[i * n..(i + 1) * n];
                for ((v, &x0), &x1) in o.iter_mut().zip(a0).zip(a1) {
                    *v = finish(euclid, t0 * x0 + t1 * x1, *v);
                }
            } else {
                for (v, &x0) in o.iter_mut().zip(a0) {
                    *v = finish(euclid, t0 * x0, *v);
                }
            }
            lane_sum(o)
        })
        .collect()
}

/// `Σ v` of a short row segment: f32 in 8 lanes (the form that vectorizes), then f64.
#[inline]
fn lane_sum(o: &[f32]) -> f64 {
    const L: usize = 8;
    let mut lanes = [0.0f32; L];
    let mut it = o.chunks_exact(L);
    for c in &mut it {
        for l in 0..L {
            lanes[l] += c[l];
        }
    }
    let tail: f32 = it.remainder().iter().sum();
    lanes.iter().map(|&v| f64::from(v)).sum::<f64>() + f64::from(tail)
}

/// `m / d` for euclidean (0 where `d = 0`), `m` otherwise; `d` is the old value of the entry.
#[inline(always)]
fn finish(euclid: bool, m: f32, d: f32) -> f32 {
    if !euclid {
        m
    } else if d > 0.0 {
        m / d
    } else {
        0.0
    }
}

/// The gradient w.r.t. `xh` of `Σ_ij W_ij d_ij` from the whole symmetric `M'` of
/// [`merge_symmetric`] and its row sums: one GEMM, `f (diag(rowsum) X − M' X)` for distances
/// and `M' X` for similarities.
pub(crate) fn square(
    rows: &Rows,
    distance: Distance,
    m: &[f32],
    rowsum: &[f64],
) -> Result<Vec<f32>> {
    let (n, d) = (rows.n, rows.d);
    let f = factor(distance);
    let beta = f.map_or(1.0, |f| -f);
    let mut g = zeros(n * d, "a gradient")?;
    matmul(
        n,
        d,
        n,
        &mut g,
        d,
        false,
        beta,
        View::rows(m, n),
        View::rows(&rows.xh, d),
    );
    if let Some(f) = f {
        g.par_chunks_mut(d)
            .zip(rows.xh.par_chunks(d))
            .zip(rowsum.par_iter())
            .for_each(|((gr, xr), &rs)| {
                let c = f * rs as f32;
                for (gv, &xv) in gr.iter_mut().zip(xr) {
                    *gv += c * xv;
                }
            });
    }
    Ok(g)
}

/// Adds to `g` (`n x d`, w.r.t. `xh`) the gradient of `Σ W_ij d_ij` over the block of rows
/// `r0..r0 + b` against all rows (the streaming path: two GEMMs, for `W` and `Wᵀ`). `w`
/// (`b x n`) is overwritten; `e` is the block's `e`.
pub(crate) fn block(
    rows: &Rows,
    distance: Distance,
    r0: usize,
    b: usize,
    w: &mut [f32],
    e: &[f32],
    g: &mut [f32],
) -> Result<()> {
    let (n, d) = (rows.n, rows.d);
    let w = &mut w[..b * n];
    prepare(distance, w, &e[..b * n]);
    let xb = &rows.xh[r0 * d..(r0 + b) * d];
    let f = factor(distance);
    let beta = f.map_or(1.0, |f| -f);
    // Rows of the block: g_B += beta * W X (+ f * rowsum * x_B).
    let mut t = zeros(b * d, "a gradient block")?;
    matmul(
        b,
        d,
        n,
        &mut t,
        d,
        false,
        beta,
        View::rows(w, n),
        View::rows(&rows.xh, d),
    );
    let gb = &mut g[r0 * d..(r0 + b) * d];
    gb.par_chunks_mut(d)
        .zip(t.par_chunks(d))
        .zip(w.par_chunks(n))
        .zip(xb.par_chunks(d))
        .for_each(|(((gr, tr), wr), xr)| {
            let rs = f.map_or(0.0, |f| {
                f * wr.iter().map(|&v| f64::from(v)).sum::<f64>() as f32
            });
            for ((gv, &tv), &xv) in gr.iter_mut().zip(tr).zip(xr) {
                *gv += tv + rs * xv;
            }
        });
    // Every row j: g_j += beta * (Wᵀ X_B)_j (+ f * colsum_j * x_j).
    if let Some(f) = f {
        // Column sums, parallel over column strips (the block is row-major).
        const STRIP: usize = 1024;
        let mut colsum = vec![0.0f64; n];
        let wr: &[f32] = w;
        colsum
            .par_chunks_mut(STRIP)
            .enumerate()
            .for_each(|(s, cs)| {
                let (c0, len) = (s * STRIP, cs.len());
                for row in wr.chunks(n) {
                    for (c, &v) in cs.iter_mut().zip(&row[c0..c0 + len]) {
                        *c += f64::from(v);
                    }
                }
            });
        g[..n * d]
            .par_chunks_mut(d)
            .zip(rows.xh.par_chunks(d))
            .zip(colsum.par_iter())
            .for_each(|((gr, xr), &c)| {
                let c = f * c as f32;
                for (gv, &xv) in gr.iter_mut().zip(xr) {
                    *gv += c * xv;
                }
            });
    }
    matmul(
        n,
        d,
        b,
        g,
        d,
        true,
        beta,
        View::transposed(w, n),
        View::rows(xb, d),
    );
    Ok(())
}

/// Gradients of `Σ W_ic d(a_i, b_c)` for two row sets: returns `(g_a, g_b)` w.r.t. `a.xh`,
/// `b.xh`. `w` (`na x nb`) is overwritten; `e` holds `sign * d`.
pub(crate) fn cross(
    a: &Rows,
    b: &Rows,
    distance: Distance,
    w: &mut [f32],
    e: &[f32],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (na, nb, d) = (a.n, b.n, a.d);
    prepare(distance, w, e);
    let f = factor(distance);
    let beta = f.map_or(1.0, |f| -f);
    let mut ga = zeros(na * d, "a gradient")?;
    let mut gb = zeros(nb * d, "a center gradient")?;
    matmul(
        na,
        d,
        nb,
        &mut ga,
        d,
        false,
        beta,
        View::rows(w, nb),
        View::rows(&b.xh, d),
    );
    matmul(
        nb,
        d,
        na,
        &mut gb,
        d,
        false,
        beta,
        View::transposed(w, nb),
        View::rows(&a.xh, d),
    );
    if let Some(f) = f {
        let mut colsum = vec![0.0f64; nb];
        for (i, wr) in w.chunks(nb).enumerate() {
            let rs = f * wr.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
            for (gv, &xv) in ga[i * d..(i + 1) * d].iter_mut().zip(a.row(i)) {
                *gv += rs * xv;
            }
            for (c, &v) in colsum.iter_mut().zip(wr) {
                *c += f64::from(v);
            }
        }
        for (j, &c) in colsum.iter().enumerate() {
            let c = f * c as f32;
            for (gv, &xv) in gb[j * d..(j + 1) * d].iter_mut().zip(b.row(j)) {
                *gv += c * xv;
            }
        }
    }
    Ok((ga, gb))
}

/// Adds to `g_a` (row `a` of the gradient) the chain of `M_ap d(a, p)` for one symmetric pair
/// weight `m` (already `W_ap + W_pa`), with `e = sign * d(a, p)`.
pub(crate) fn pair(distance: Distance, m: f32, e: f32, xa: &[f32], xp: &[f32], g_a: &mut [f32]) {
    match distance {
        Distance::Cosine | Distance::Dot => {
            for (gv, &pv) in g_a.iter_mut().zip(xp) {
                *gv += m * pv;
            }
        }
        Distance::SquaredEuclidean | Distance::Euclidean => {
            let c = if distance == Distance::SquaredEuclidean {
                2.0 * m
            } else if e > 0.0 {
                m / e
            } else {
                0.0
            };
            for ((gv, &av), &pv) in g_a.iter_mut().zip(xa).zip(xp) {
                *gv += c * (av - pv);
            }
        }
    }
}
