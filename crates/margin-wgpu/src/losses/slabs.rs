//! Losses whose N x M matrix exceeds one storage binding (beyond N ≈ 23k on GPUs that bind
//! 2 GiB, N ≈ 5.8k on lavapipe's 128 MiB): the rows run in slabs that each fit one binding. A
//! slab of rows is the same problem as a reference set: its rows against all M columns, each row
//! excluding its own column (the diagonal in the square case), so stages 2 and 3 run unchanged
//! on it. Stage 4 splits as `W + Wᵀ` does: the slab's rows get `C X̂` (`out_row` of the product),
//! and without a reference set every row gets `Cᵀ X̂_slab` (added). The matrix is never held
//! whole: one slab of E, one slab of normalized rows.
//!
//! Every loss of the square path: the row-local ones (row_local.rs); lifted structure, after a
//! first pass over the slabs fills every row's log-sum-exp (and against a reference set a second
//! one its sums of aliased pairs, lifted.rs);
//! the hard quadruplet, whose per-row candidates are read back slab by slab and whose few
//! weights are planned on the host for the whole call (quad_hard.rs); the batch-all quadruplet,
//! its steps as passes over the slabs (quadruplet.rs `in_slabs`).
//!
//! The reducer's scales (AvgNonZero counts) are known only after the last slab, so the gradient
//! is built with unit scales and multiplied by the scale at the end, which is exact when the
//! positive and negative weights share one scale (every row-local loss but contrastive, whose
//! first pass only counts; a second pass recomputes its slabs with the final scales).

use super::lifted::{self, Lifted};
use super::{Layout, RowTotals, Square, quad_hard, quadruplet, row_local};
use crate::context::{Batch, Gpu};
use crate::stages::{self, PairMode, Product};
use margin_core::{DeviceReference, Loss, LossStats, Metric, Mining, QuadrupletConfig, Result};
use wgpu::Buffer;

/// What every slab of one call shares: the normalized rows and columns and the slab buffers.
pub(crate) struct Slabs<'a> {
    gpu: &'a Gpu,
    loss: &'a Loss,
    layout: &'a Layout,
    /// Rows per slab.
    rows: usize,
    d: usize,
    /// Normalized batch rows (N x D), and the slab of them each pass reads.
    xh: &'a Buffer,
    slab_rows: SlabRows<'a>,
    /// Normalized columns: the batch again, or the reference rows; their squared norms.
    ch: &'a Buffer,
    csq: &'a Buffer,
    e: Buffer,
}

/// Rows per slab of a matrix of `n` rows by `m` columns: all of them while it fits one storage
/// binding, else as many as fit (one row of `what` must).
pub(super) fn rows_per_slab(gpu: &Gpu, n: usize, m: usize, what: &str) -> Result<usize> {
    gpu.check_size(what, m as u64 * 4)?;
    Ok(((gpu.max_binding() / (m as u64 * 4)) as usize).clamp(1, n.max(1)))
}

/// A slab of rows of a normalized row set as the distance and product stages read it: the set
/// itself when one slab holds every row, else the slab's rows copied out.
pub(super) struct SlabRows<'a> {
    /// The whole set: rows and squared norms.
    all: (&'a Buffer, &'a Buffer),
    h: Buffer,
    sq: Buffer,
    whole: bool,
    d: usize,
}

impl<'a> SlabRows<'a> {
    /// For `n` rows of width `d` (`all`: rows and squared norms) in slabs of `rows`.
    pub fn new(
        gpu: &Gpu,
        all: (&'a Buffer, &'a Buffer),
        n: usize,
        rows: usize,
        d: usize,
    ) -> Result<Self> {
        let whole = rows >= n;
        let (h, sq) = if whole {
            (all.0.clone(), all.1.clone())
        } else {
            (
                gpu.scratch("slab_xh", rows * d)?,
                gpu.scratch("slab_sq", rows)?,
            )
        };
        Ok(Self {
            all,
            h,
            sq,
            whole,
            d,
        })
    }

    /// Records the copy of rows `r0..r0 + len` into the slab (nothing when whole).
    pub fn load(&self, b: &mut Batch<'_>, r0: usize, len: usize) {
        if !self.whole {
            b.copy_from(self.all.0, r0 * self.d, &self.h, len * self.d);
            b.copy_from(self.all.1, r0, &self.sq, len);
        }
    }

    /// Records the slab's load and the `len x m` values between its rows and `cols` (rows,
    /// squared norms, m) into `e`.
    pub fn distances(
        &self,
        gpu: &Gpu,
        b: &mut Batch<'_>,
        (r0, len): (usize, usize),
        cols: (&Buffer, &Buffer, usize),
        mode: PairMode,
        e: &Buffer,
    ) -> Result<()> {
        self.load(b, r0, len);
        stages::pairwise(gpu, b, (&self.h, &self.sq, len), cols, self.d, mode, e)
    }

    /// The slab's rows (`len x d` from the start).
    pub fn rows(&self) -> &Buffer {
        &self.h
    }
}

/// Runs `loss` (any loss of the square path) in slabs of rows; `layout` is the whole call's.
#[allow(clippy::too_many_arguments)]
pub(crate) fn slab_loss(
    gpu: &Gpu,
    loss: &Loss,
    x: &Buffer,
    n: usize,
    d: usize,
    layout: Layout,
    reference: Option<DeviceReference<'_, Buffer>>,
    grad: &Buffer,
) -> Result<LossStats> {
    let metric = loss.metric();
    let m = layout.m;
    let rows = rows_per_slab(gpu, n, m, "one row of the distance matrix")?;
    let on = metric.normalizes();
    let mut b = gpu.batch();
    let xs = stages::normalize(gpu, &mut b, (x, n, d), on, stages::BATCH)?;
    let columns = match &reference {
        None => None,
        Some(r) => Some(stages::normalize(
            gpu,
            &mut b,
            (r.embeddings, m, d),
            on,
            stages::OTHER,
        )?),
    };
    b.clear(grad);
    b.submit();
    let (xh, sq) = (&xs.h, &xs.sq);
    let (ch, csq) = columns.as_ref().map_or((xh, sq), |c| (&c.h, &c.sq));
    let slabs = Slabs {
        gpu,
        loss,
        layout: &layout,
        rows,
        d,
        xh,
        slab_rows: SlabRows::new(gpu, (xh, sq), n, rows, d)?,
        ch,
        csq,
        e: gpu.scratch("e", rows * m)?,
    };
    let stats = match loss {
        Loss::Quadruplet(c) if c.mining == Mining::Hard => slabs.hard_quadruplet(c, grad)?,
        Loss::Quadruplet(c) => quadruplet::in_slabs(&slabs, c, grad)?,
        _ => slabs.reduced(grad)?,
    };
    if on {
        let mut b = gpu.batch();
        stages::normalize_backward(gpu, &mut b, xh, &xs.norms, grad, n, d)?;
        b.submit();
    }
    Ok(stats)
}

impl Slabs<'_> {
    /// The device context.
    pub fn gpu(&self) -> &Gpu {
        self.gpu
    }

    /// The whole call's layout.
    pub fn layout(&self) -> &Layout {
        self.layout
    }

    /// The slab of rows from `r0`, E not written.
    pub fn square(&self, r0: usize) -> Result<Square<'_>> {
        let gpu = self.gpu;
        let len = self.rows.min(self.layout.n - r0);
        let layout = self.layout.slab(r0..r0 + len);
        let s = Square {
            gpu,
            n: len,
            m: layout.m,
            metric: self.loss.metric(),
            e: self.e.clone(),
            grp: gpu.upload("groups", &layout.packed())?,
            rstat: gpu.scratch("rstat", 2 * len)?,
            rcnt: gpu.scratch("rcnt", 4 * len)?,
            layout,
        };
        Ok(s)
    }

    /// The slab of rows from `r0` with its rows of the normalized batch loaded, E not written.
    fn slab(&self, r0: usize) -> Result<Square<'_>> {
        let s = self.square(r0)?;
        let mut b = self.gpu.batch();
        self.slab_rows.load(&mut b, r0, s.n);
        b.submit();
        Ok(s)
    }

    /// Stage 2 for the slab of rows from `r0`: its distances to every column.
    pub fn distances(&self, r0: usize) -> Result<Square<'_>> {
        let s = self.square(r0)?;
        let mut b = self.gpu.batch();
        let mode = PairMode::for_loss(s.metric);
        let cols = (self.ch, self.csq, s.m);
        self.slab_rows
            .distances(self.gpu, &mut b, (r0, s.n), cols, mode, &s.e)?;
        b.submit();
        Ok(s)
    }

    /// The first rows of the slabs.
    pub fn starts(&self) -> std::iter::StepBy<std::ops::Range<usize>> {
        (0..self.layout.n).step_by(self.rows)
    }

    /// A loss reduced from per-row totals (row-local, lifted structure): weights and gradient per
    /// slab, the reducer's scale applied at the end (or a second pass for contrastive).
    fn reduced(&self, grad: &Buffer) -> Result<LossStats> {
        let (gpu, loss, layout) = (self.gpu, self.loss, self.layout);
        // Lifted structure: every row's log-sum-exp and, against a reference set, its sums of
        // aliased pairs, each one more pass over the slabs.
        let sums = match loss {
            Loss::LiftedStructure(c) => {
                let lse = gpu.scratch("lse", layout.n)?;
                let acoef = gpu.scratch("lifted_alias", layout.n)?;
                for r0 in self.starts() {
                    let s = self.distances(r0)?;
                    Lifted::new(&s, c, layout).lse(&s, r0, &lse)?;
                }
                if layout.rect {
                    for r0 in self.starts() {
                        let s = self.distances(r0)?;
                        Lifted::new(&s, c, layout).alias(&s, r0, &lse, &acoef)?;
                    }
                }
                Some((lse, acoef))
            }
            _ => None,
        };
        let weights = |r0: usize| -> Result<Square<'_>> {
            let s = self.distances(r0)?;
            match (loss, &sums) {
                (Loss::LiftedStructure(c), Some((lse, acoef))) => {
                    Lifted::new(&s, c, layout).weights(&s, r0, lse, acoef)?
                }
                _ => row_local::weights(&s, loss)?,
            }
            Ok(s)
        };
        // Contrastive scales its positive and negative weights by their own counts: its first
        // pass only counts. The others' one scale multiplies the gradient at the end.
        let split_scales = matches!(loss, Loss::Contrastive(_));
        let mut total = RowTotals::default();
        for r0 in self.starts() {
            let s = weights(r0)?;
            total += s.totals()?;
            if !split_scales {
                self.gradient(&s, r0, (1.0, 1.0), grad)?;
            }
        }
        let (stats, s_pos, s_neg) = match loss {
            Loss::LiftedStructure(_) => lifted::finish(layout, &total),
            _ => row_local::finish(loss, layout, &total)?,
        };
        if !split_scales && s_pos == s_neg {
            self.scale_gradient(grad, s_pos)?;
        } else {
            let mut b = gpu.batch();
            b.clear(grad);
            b.submit();
            for r0 in self.starts() {
                let s = weights(r0)?;
                self.gradient(&s, r0, (s_pos, s_neg), grad)?;
            }
        }
        Ok(stats)
    }

    /// `grad *= scale` (the chain kernel's elementwise mode 3 with both scales `scale`).
    pub fn scale_gradient(&self, grad: &Buffer, scale: f32) -> Result<()> {
        if scale != 1.0 {
            let mut b = self.gpu.batch();
            let unread = self.gpu.scratch("unread", 1)?;
            let (n, d) = (self.layout.n, self.d);
            stages::chain_cross(self.gpu, &mut b, grad, &unread, n, d, 3, scale, scale)?;
            b.submit();
        }
        Ok(())
    }

    /// The hard-mined quadruplet: every slab's candidates, the weights planned on the host for
    /// the whole call (quad_hard.rs), then scattered and chained slab by slab (E not recomputed:
    /// in-place weights read no distance).
    fn hard_quadruplet(&self, c: &QuadrupletConfig, grad: &Buffer) -> Result<LossStats> {
        let mut rows = Vec::with_capacity(self.layout.n);
        for r0 in self.starts() {
            rows.extend(quad_hard::candidates(&self.distances(r0)?)?);
        }
        let (stats, weights) = quad_hard::plan(&rows, self.layout, c)?;
        for r0 in self.starts() {
            let s = self.slab(r0)?;
            quad_hard::scatter(&s, r0, &weights)?;
            self.gradient(&s, r0, (1.0, 1.0), grad)?;
        }
        Ok(stats)
    }

    /// Stage 4 for the slab `s` from row `r0`: the chain with `(positive, negative)` scales, then
    /// the slab's terms of the gradient added into `grad`.
    pub fn gradient(
        &self,
        s: &Square<'_>,
        r0: usize,
        scales: (f32, f32),
        grad: &Buffer,
    ) -> Result<()> {
        let (gpu, len, m, d) = (self.gpu, s.n, s.m, self.d);
        let mut b = gpu.batch();
        let unread = gpu.scratch("unread", 1)?;
        let mode = stages::chain_mode(s.metric, true);
        stages::chain_cross(gpu, &mut b, &s.e, &unread, len, m, mode, scales.0, scales.1)?;
        let products = SlabProducts {
            c: &s.e,
            len,
            m,
            d,
            r0,
            rows: self.xh,
            slab_rows: self.slab_rows.rows(),
            cols: self.ch,
            g_rows: Some(grad),
            // Without a reference set the columns are the rows: they get the transposed half.
            g_cols: (!self.layout.rect).then_some(grad),
        };
        products.record(gpu, &mut b, s.metric)?;
        b.submit();
        Ok(())
    }
}

/// The gradient products of a slab: the chained multiplier C (`len x m`) between rows `r0..` of a
/// row set and `m` columns. The slab's rows, when they take a gradient, get `C cols` (and
/// `rowsum(C) rows` for a distance), the columns, when they take one, `Cᵀ slab_rows` (and
/// `colsum(C) cols`); both are added to what the gradients hold. (Proxy-anchor's rows are the
/// proxies, whose gradient the caller may not want: that product is then skipped.)
pub(super) struct SlabProducts<'a> {
    pub c: &'a Buffer,
    pub len: usize,
    pub m: usize,
    pub d: usize,
    pub r0: usize,
    /// The whole row set (normalized) and its slab rows, copied out.
    pub rows: &'a Buffer,
    pub slab_rows: &'a Buffer,
    /// The columns' rows (normalized, `m x d`).
    pub cols: &'a Buffer,
    /// The row set's gradient and the columns', each when it takes one (may be the same buffer).
    pub g_rows: Option<&'a Buffer>,
    pub g_cols: Option<&'a Buffer>,
}

impl SlabProducts<'_> {
    /// Records both products (for `metric`: distances add the row and column sums' terms).
    pub fn record(&self, gpu: &Gpu, b: &mut Batch<'_>, metric: Metric) -> Result<()> {
        let (len, m, d) = (self.len, self.m, self.d);
        let distance = !metric.is_similarity();
        let (alpha, beta) = if distance { (-1.0, 1.0) } else { (1.0, 0.0) };
        if let Some(g_rows) = self.g_rows {
            let rsum = gpu.scratch("rs", len)?;
            if distance {
                stages::row_sums(gpu, b, self.c, len, m, &rsum)?;
            }
            let rows_part = Product {
                a: self.c,
                transposed: false,
                b: self.cols,
                rs: &rsum,
                x: self.rows,
                out: g_rows,
                rows: len,
                cols: d,
                inner: m,
                alpha,
                beta,
                out_row: self.r0,
                accumulate: true,
            };
            stages::matmul(gpu, b, &rows_part)?;
        }
        if let Some(g_cols) = self.g_cols {
            // The transposed half: every column j gets the slab's column j of the multiplier.
            let csum = gpu.scratch("cs", m)?;
            if distance {
                stages::col_sums(gpu, b, self.c, len, m, &csum)?;
            }
            let cols_part = Product {
                a: self.c,
                transposed: true,
                b: self.slab_rows,
                rs: &csum,
                x: self.cols,
                out: g_cols,
                rows: m,
                cols: d,
                inner: len,
                alpha,
                beta,
                out_row: 0,
                accumulate: true,
            };
            stages::matmul(gpu, b, &cols_part)?;
        }
        Ok(())
    }
}
