//! The skeleton every loss against K centers shares (triplet-center, proxy-anchor and the
//! proxy-softmax family): the labels uploaded, both sides normalized, the gradients cleared; then
//! the embedding-center matrix in slabs of rows that each fit one storage binding, where the
//! loss only records its weight kernel and the skeleton the distances before it and the chain
//! and both gradient products after it; last, an optional late scale and normalization backward
//! for both sides. Which side is the matrix's rows is the loss's choice ([`Side`]): the samples
//! when its reductions run per sample (N x K), the centers when they run per center over the
//! samples (proxy-anchor's K x N).

use super::slabs::{SlabProducts, SlabRows, rows_per_slab};
use crate::context::{Batch, Gpu};
use crate::stages::{self, Normalized, PairMode};
use margin_core::{Metric, Result};
use wgpu::Buffer;

/// Which row set is the rows of the slabbed matrix (the other one is its columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// N x K: one row per sample.
    Samples,
    /// K x N: one row per center.
    Centers,
}

/// One slab as the weight kernel sees it: rows `r0..r0 + len` of the matrix against all `cols`
/// columns, their values (distance, or minus similarity) in `e` (`len x cols`), the distances
/// recorded in the batch before the kernel.
pub(super) struct Slab<'b> {
    pub r0: usize,
    pub len: usize,
    pub cols: usize,
    pub e: &'b Buffer,
}

/// Where a weight kernel left `W = dL/dE` for the slab.
pub(super) enum Placed {
    /// Over E, already divided by the euclidean distance there (`weight_out` in common.wgsl).
    InPlace,
    /// In this other `len x cols` buffer; E still holds the values, which the chain reads.
    Apart(Buffer),
}

/// One call of a loss against centers: both normalized row sets and the gradients to fill.
pub(super) struct CenterRun<'a> {
    pub gpu: &'a Gpu,
    pub metric: Metric,
    pub n: usize,
    pub d: usize,
    pub k: usize,
    /// The labels (in `0..K`, checked by `check_device_input`) on the host and on the device.
    pub labels: Vec<u32>,
    pub lab: Buffer,
    xs: Normalized,
    cs: Normalized,
    grad: &'a Buffer,
    center_grad: Option<&'a Buffer>,
}

impl<'a> CenterRun<'a> {
    /// The prologue: uploads the labels, records stage 1 for the `n x d` embeddings `x` and the
    /// `k x d` centers, and clears `grad` and `center_grad` (the slabs add into them).
    pub fn begin(
        gpu: &'a Gpu,
        metric: Metric,
        (x, n, d): (&Buffer, usize, usize),
        labels: &[i64],
        (c, k): (&Buffer, usize),
        grad: &'a Buffer,
        center_grad: Option<&'a Buffer>,
    ) -> Result<Self> {
        let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let lab = gpu.upload("labels", &labels)?;
        let mut b = gpu.batch();
        let on = metric.normalizes();
        let xs = stages::normalize(gpu, &mut b, (x, n, d), on, stages::BATCH)?;
        let cs = stages::normalize(gpu, &mut b, (c, k, d), on, stages::OTHER)?;
        b.clear(grad);
        if let Some(cg) = center_grad {
            b.clear(cg);
        }
        b.submit();
        Ok(Self {
            gpu,
            metric,
            n,
            d,
            k,
            labels,
            lab,
            xs,
            cs,
            grad,
            center_grad,
        })
    }

    /// Runs the matrix with `side` as its rows in slabs that each fit one binding (`what`: one
    /// row of it, for the error when even that does not). Per slab: its values into E, the
    /// loss's `weights` kernel, the chain and both gradient products (the centers' skipped when
    /// no center gradient was asked for), one submission, then `after` (e.g. reading back
    /// per-slab results before the next slab overwrites them).
    pub fn slabs(
        &self,
        side: Side,
        what: &str,
        mut weights: impl FnMut(&mut Batch<'_>, &Slab<'_>) -> Result<Placed>,
        mut after: impl FnMut(&Slab<'_>) -> Result<()>,
    ) -> Result<()> {
        let gpu = self.gpu;
        let (rows_set, cols_set, n_rows, n_cols, g_rows, g_cols) = match side {
            Side::Samples => (
                &self.xs,
                &self.cs,
                self.n,
                self.k,
                Some(self.grad),
                self.center_grad,
            ),
            Side::Centers => (
                &self.cs,
                &self.xs,
                self.k,
                self.n,
                self.center_grad,
                Some(self.grad),
            ),
        };
        let rows = rows_per_slab(gpu, n_rows, n_cols, what)?;
        let e = gpu.scratch("e", rows * n_cols)?;
        let slab_rows = SlabRows::new(gpu, (&rows_set.h, &rows_set.sq), n_rows, rows, self.d)?;
        let mode = PairMode::for_loss(self.metric);
        for r0 in (0..n_rows).step_by(rows) {
            let len = rows.min(n_rows - r0);
            let slab = Slab {
                r0,
                len,
                cols: n_cols,
                e: &e,
            };
            let mut b = gpu.batch();
            let cols = (&cols_set.h, &cols_set.sq, n_cols);
            slab_rows.distances(gpu, &mut b, (r0, len), cols, mode, &e)?;
            let (w, read, in_place) = match weights(&mut b, &slab)? {
                // The chain reads no distance then: a stand-in.
                Placed::InPlace => (e.clone(), gpu.scratch("unread", 1)?, true),
                Placed::Apart(w) => (w, e.clone(), false),
            };
            let chain = stages::chain_mode(self.metric, in_place);
            stages::chain_cross(gpu, &mut b, &w, &read, len, n_cols, chain, 1.0, 1.0)?;
            let products = SlabProducts {
                c: &w,
                len,
                m: n_cols,
                d: self.d,
                r0,
                rows: &rows_set.h,
                slab_rows: slab_rows.rows(),
                cols: &cols_set.h,
                g_rows,
                g_cols,
            };
            products.record(gpu, &mut b, self.metric)?;
            b.submit();
            after(&slab)?;
        }
        Ok(())
    }

    /// The epilogue: both gradients multiplied by `scale` (a reducer's scale known only after
    /// the last slab; 1 skips it), then normalization backward for both sides.
    pub fn finish(self, scale: f32) -> Result<()> {
        let gpu = self.gpu;
        let mut b = gpu.batch();
        let mut sides = vec![(self.grad, &self.xs, self.n)];
        if let Some(cg) = self.center_grad {
            sides.push((cg, &self.cs, self.k));
        }
        for (g, set, rows) in sides {
            if scale != 1.0 {
                // The chain kernel's elementwise mode 3 with both scales `scale`: g *= scale.
                let unread = gpu.scratch("unread", 1)?;
                stages::chain_cross(gpu, &mut b, g, &unread, rows, self.d, 3, scale, scale)?;
            }
            if self.metric.normalizes() {
                stages::normalize_backward(gpu, &mut b, &set.h, &set.norms, g, rows, self.d)?;
            }
        }
        b.submit();
        Ok(())
    }
}
