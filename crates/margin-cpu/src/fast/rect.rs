//! Stages 2 to 4 for a batch against a reference set (docs/REFERENCE_SETS.md section 6): the
//! `N x M` matrix `e = sign * m(X̂, R̂)` a block of batch rows at a time (one GEMM per block,
//! expanded form with both row norms), the square case's row kernels over the M columns of each
//! row, and the chain to X only, with no `W + Wᵀ` (R is a constant):
//! `G = f (diag(W' 1) X̂ − W' R̂)` for distances (`f = 2` squared-euclidean, `1` euclidean with
//! `W' = W ⊘ D`), `G = W R̂` for similarities (the caller applies the sign and stage 5).
//!
//! Memory: blocks of batch rows sized from the budget, so extra memory is `O(block × M)` plus the
//! `O(N D)` gradients; `e` is never resident as a whole.

use super::chain::{factor, prepare};
use super::engine::{Pass, RowKernel, stream};
use super::geometry::{Rows, cross_block, sign};
use super::linalg::{View, matmul};
use super::scratch;
use margin_core::{Metric, NO_SELF, Result};
use rayon::prelude::*;

/// Entries per block beyond which taller blocks gain nothing (see [`Rect::block`]).
const BLOCK_ENTRIES: usize = 1 << 20;

/// The cap on block rows never goes below this (the square engine's block height).
const MIN_CAP_ROWS: usize = 1024;

/// A weight block with fewer than one nonzero in this many entries is chained row by row
/// (`O(nnz D)`) instead of through the GEMM (`O(b M D)`).
const SPARSE_RATIO: usize = 16;

/// The two row sets of a reference-set loss and how to stream over their rectangle.
pub(crate) struct Rect<'a> {
    /// The batch after stage 1 (its norms are kept for stage 5).
    pub x: &'a Rows,
    /// The reference set after stage 1 (no gradient).
    pub r: &'a Rows,
    /// The reference row that is each batch row's own copy (`NO_SELF`: none), if any.
    pub self_index: Option<&'a [u32]>,
    pub metric: Metric,
    pub budget: usize,
}

impl Rect<'_> {
    /// Batch rows per block when `mats` matrices of `block x M` floats are held at once.
    fn block(&self, mats: usize) -> usize {
        let m = self.r.n.max(1);
        let per_row = m.saturating_mul(4 * mats);
        // At least 1024 rows (the square engine's block), more for a short M so that a block
        // still holds about 2^20 entries; never more than the budget allows or N.
        let cap = (BLOCK_ENTRIES / m).max(MIN_CAP_ROWS);
        (self.budget / per_row).clamp(1, cap).min(self.x.n.max(1))
    }

    /// `out (b x M) = e` of batch rows `r0..r0 + b`.
    fn e_block(&self, r0: usize, b: usize, out: &mut [f32]) {
        let d = self.x.d;
        cross_block(
            self.metric.distance,
            sign(self.metric),
            &self.x.xh[r0 * d..(r0 + b) * d],
            &self.x.sq[r0..r0 + b],
            &self.r.xh,
            &self.r.sq,
            d,
            out,
            &|i| {
                self.self_index
                    .and_then(|s| s.get(r0 + i))
                    .filter(|&&j| j != NO_SELF)
                    .map(|&j| j as usize)
            },
        );
    }

    /// A read-only pass: `f(i, e_row)` for every batch row, block by block.
    pub fn map<T, F>(&self, f: F) -> Result<Vec<T>>
    where
        T: Send,
        F: Fn(usize, &[f32]) -> T + Sync,
    {
        let (n, m) = (self.x.n, self.r.n);
        let bmax = self.block(1);
        let mut e = scratch::take(bmax * m, "a distance block")?;
        let mut out = Vec::with_capacity(n);
        let mut r0 = 0;
        while r0 < n {
            let b = bmax.min(n - r0);
            self.e_block(r0, b, &mut e[..b * m]);
            let part: Vec<T> = e[..b * m]
                .par_chunks(m)
                .enumerate()
                .map(|(k, er)| f(r0 + k, er))
                .collect();
            out.extend(part);
            r0 += b;
        }
        Ok(out)
    }

    /// Runs `kernel` over every batch row (its M columns) and chains each group's weights to X
    /// block by block; the groups' gradients are scaled by the kernel's factors at the end.
    /// Returns the sums and the gradient w.r.t. `x.xh` (before the sign and stage 5).
    pub fn run<K: RowKernel>(&self, kernel: &K) -> Result<Pass> {
        let (n, m, d) = (self.x.n, self.r.n, self.x.d);
        let bmax = self.block(1 + K::GROUPS);
        stream(
            kernel,
            (n, m, d),
            bmax,
            |r0, b, e| self.e_block(r0, b, e),
            |r0, b, w, e, g| {
                self.chain_block(r0, b, w, e, g);
                Ok(())
            },
        )
    }

    /// Adds to rows `r0..r0 + b` of `g` the chain of the block's weights `w` (`b x M`,
    /// overwritten) through the distance: one GEMM against R̂ plus the row sums times X̂.
    fn chain_block(&self, r0: usize, b: usize, w: &mut [f32], e: &[f32], g: &mut [f32]) {
        let (m, d) = (self.r.n, self.x.d);
        let distance = self.metric.distance;
        prepare(distance, w, e);
        let f = factor(distance);
        let beta = f.map_or(1.0, |f| -f);
        let gb = &mut g[r0 * d..(r0 + b) * d];
        let xb = &self.x.xh[r0 * d..(r0 + b) * d];
        let nnz = w.par_iter().filter(|&&v| v != 0.0).count();
        if nnz.saturating_mul(SPARSE_RATIO) < w.len() {
            // Hard mining, or one group's few positive columns: row by row beats the GEMM.
            gb.par_chunks_mut(d)
                .zip(w.par_chunks(m))
                .zip(xb.par_chunks(d))
                .for_each(|((gr, wr), xr)| {
                    let mut rs = 0.0f64;
                    for (j, &wv) in wr.iter().enumerate() {
                        if wv != 0.0 {
                            rs += f64::from(wv);
                            let c = beta * wv;
                            for (gv, &rv) in gr.iter_mut().zip(self.r.row(j)) {
                                *gv += c * rv;
                            }
                        }
                    }
                    if let Some(f) = f {
                        let c = f * rs as f32;
                        for (gv, &xv) in gr.iter_mut().zip(xr) {
                            *gv += c * xv;
                        }
                    }
                });
            return;
        }
        matmul(
            b,
            d,
            m,
            gb,
            d,
            true,
            beta,
            View::rows(w, m),
            View::rows(&self.r.xh, d),
        );
        if let Some(f) = f {
            gb.par_chunks_mut(d)
                .zip(w.par_chunks(m))
                .zip(xb.par_chunks(d))
                .for_each(|((gr, wr), xr)| {
                    let rs = f * wr.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
                    for (gv, &xv) in gr.iter_mut().zip(xr) {
                        *gv += rs * xv;
                    }
                });
        }
    }
}
