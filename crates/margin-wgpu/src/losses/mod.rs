//! Stage 3 and the orchestration of a whole loss call. Losses over the N x N matrix, or the N x M
//! matrix against a reference set, share [`square_loss`] (in slabs of rows past one storage
//! binding: [`slabs`]). The losses against centers share the skeleton of [`centers`]:
//! triplet-center (N x K, [`triplet_center`]), proxy-anchor (K x N, the proxies as rows,
//! [`proxy_anchor`]) and proxy-nca, normalized-softmax and cosface (N x K, [`proxy_softmax`]).
//! N-pair (k x k between anchors and positives, [`npair`]) has its own path. All run in slabs of
//! rows the same way.

mod centers;
mod lifted;
mod npair;
mod proxy_anchor;
mod proxy_softmax;
mod quad_hard;
mod quadruplet;
mod row_local;
mod slabs;
mod softmax;
mod triplet;
mod triplet_center;

use crate::context::{Gpu, Groups, Params};
use crate::stages::{self, PairMode, Product};
use margin_core::{DeviceReference, Distance, Loss, LossStats, Metric, Result};
use std::collections::HashMap;
use wgpu::Buffer;

pub(crate) use npair::npair_loss;
pub(crate) use proxy_anchor::proxy_anchor_loss;
pub(crate) use proxy_softmax::proxy_softmax_loss;
pub(crate) use triplet_center::triplet_center_loss;

/// The labels of the N x M loss matrix as dense group ids (in order of first appearance over the
/// rows, then the columns), with the one column each row excludes from its positives: the diagonal
/// in the square case, the row's own copy (or none) with a reference set.
#[derive(Debug)]
pub(crate) struct Layout {
    pub n: usize,
    pub m: usize,
    /// True with a reference set (columns are not the rows).
    pub rect: bool,
    /// Group id of each row.
    pub rows: Vec<u32>,
    /// Group id of each column.
    pub cols: Vec<u32>,
    /// Excluded column of each row ([`NONE`] = none).
    pub sigma: Vec<u32>,
    /// Number of distinct labels.
    pub classes: usize,
    /// Per group: rows, columns, and rows with an excluded column.
    pub row_count: Vec<u64>,
    pub col_count: Vec<u64>,
    pub self_count: Vec<u64>,
}

/// No excluded column (`NO_COL` in the shaders, `margin_core::NO_SELF`).
pub(crate) const NONE: u32 = u32::MAX;

impl Layout {
    /// The N x N case: columns are the rows, row i excludes column i.
    pub fn square(labels: &[i64]) -> Self {
        let n = labels.len();
        let sigma = (0..n as u32).collect();
        Self::build(labels, labels, sigma, false)
    }

    /// A batch against a reference set with `ref_labels`, excluding `self_index`.
    pub fn rect(labels: &[i64], ref_labels: &[i64], self_index: Option<&[u32]>) -> Self {
        let sigma = match self_index {
            Some(s) => s.to_vec(),
            None => vec![NONE; labels.len()],
        };
        Self::build(labels, ref_labels, sigma, true)
    }

    fn build(labels: &[i64], ref_labels: &[i64], sigma: Vec<u32>, rect: bool) -> Self {
        let mut map = HashMap::new();
        let mut id = |l: i64| {
            let next = map.len() as u32;
            *map.entry(l).or_insert(next)
        };
        let rows: Vec<u32> = labels.iter().map(|&l| id(l)).collect();
        let cols: Vec<u32> = ref_labels.iter().map(|&l| id(l)).collect();
        let classes = map.len();
        Self::from_ids(rows, cols, sigma, classes, rect)
    }

    /// Rows `range` of this layout against all its columns, with the same group ids and
    /// semantics (a slab of rows, slabs.rs).
    pub fn slab(&self, range: std::ops::Range<usize>) -> Self {
        let rows = self.rows[range.clone()].to_vec();
        let sigma = self.sigma[range].to_vec();
        Self::from_ids(rows, self.cols.clone(), sigma, self.classes, self.rect)
    }

    fn from_ids(
        rows: Vec<u32>,
        cols: Vec<u32>,
        sigma: Vec<u32>,
        classes: usize,
        rect: bool,
    ) -> Self {
        let mut row_count = vec![0u64; classes];
        let mut col_count = vec![0u64; classes];
        let mut self_count = vec![0u64; classes];
        for (i, &g) in rows.iter().enumerate() {
            row_count[g as usize] += 1;
            if sigma.get(i).is_some_and(|&s| s != NONE) {
                self_count[g as usize] += 1;
            }
        }
        for &g in &cols {
            col_count[g as usize] += 1;
        }
        Self {
            n: rows.len(),
            m: cols.len(),
            rect,
            rows,
            cols,
            sigma,
            classes,
            row_count,
            col_count,
            self_count,
        }
    }

    /// Ordered positive pairs of group g (rows of label g x their positive columns).
    pub fn positive_pairs_of(&self, g: usize) -> u64 {
        (self.row_count[g] * self.col_count[g]).saturating_sub(self.self_count[g])
    }

    /// Negative pairs whose row has label g.
    pub fn negative_rows_of(&self, g: usize) -> u64 {
        self.row_count[g] * (self.m as u64 - self.col_count[g])
    }

    /// Number of ordered positive pairs.
    pub fn positive_pairs(&self) -> u64 {
        (0..self.classes).map(|g| self.positive_pairs_of(g)).sum()
    }

    /// Number of negative pairs.
    pub fn negative_pairs(&self) -> u64 {
        (0..self.classes).map(|g| self.negative_rows_of(g)).sum()
    }

    /// The packed label buffer of the weight kernels: rows, columns, excluded columns.
    pub fn packed(&self) -> Vec<u32> {
        let mut v = Vec::with_capacity(2 * self.n + self.m);
        v.extend_from_slice(&self.rows);
        v.extend_from_slice(&self.cols);
        v.extend_from_slice(&self.sigma);
        v
    }
}

/// Per-row results of a weight kernel, added on the host in f64 / u64.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RowTotals {
    pub loss: [f64; 2],
    pub count: [u64; 2],
}

impl RowTotals {
    /// Reads back and adds the sums (`rstat`, 2 per row) and counts (`rcnt`, 2 u64 per row) of
    /// `rows` rows.
    pub fn read(gpu: &Gpu, rstat: &Buffer, rcnt: &Buffer, rows: usize) -> Result<Self> {
        let s = gpu.read_f32(rstat, 2 * rows)?;
        let c = gpu.read_u32(rcnt, 4 * rows)?;
        let mut t = RowTotals::default();
        for i in 0..rows {
            for k in 0..2 {
                t.loss[k] += f64::from(s[2 * i + k]);
                let lo = u64::from(c[4 * i + 2 * k]);
                let hi = u64::from(c[4 * i + 2 * k + 1]);
                t.count[k] += lo | (hi << 32);
            }
        }
        Ok(t)
    }
}

impl std::ops::AddAssign for RowTotals {
    fn add_assign(&mut self, o: Self) {
        for k in 0..2 {
            self.loss[k] += o.loss[k];
            self.count[k] += o.count[k];
        }
    }
}

/// Buffers shared by the weight kernels of one call: the N x M matrix E (M = N without a
/// reference set), the packed labels and the per-row results. The weights W = dL/dE overwrite E
/// in place (SPEC, Cost: at most one N x N matrix).
pub(crate) struct Square<'a> {
    pub gpu: &'a Gpu,
    pub n: usize,
    pub m: usize,
    pub metric: Metric,
    pub e: Buffer,
    pub grp: Buffer,
    pub rstat: Buffer,
    pub rcnt: Buffer,
    pub layout: Layout,
}

impl Square<'_> {
    /// Reads back and adds the per-row sums and counts of the last weight kernel.
    pub fn totals(&self) -> Result<RowTotals> {
        RowTotals::read(self.gpu, &self.rstat, &self.rcnt, self.n)
    }

    /// Sign that turns a margin written for distances into the one for E = -similarity.
    pub fn sign(&self) -> f64 {
        if self.metric.is_similarity() {
            -1.0
        } else {
            1.0
        }
    }

    /// Workgroups for one-workgroup-per-row kernels.
    pub fn rows(&self) -> Groups {
        Groups::Linear(self.n as u64)
    }

    /// The parameter block with the matrix shape set (`n` = N, `cols` = M), and `u6` = 1 when
    /// in-place weights must come out divided by the euclidean distance (`weight_out` in
    /// common.wgsl; the chain then runs in mode 3).
    pub fn params(&self) -> Params {
        Params {
            n: self.n as u32,
            cols: self.m as u32,
            u6: u32::from(divides_in_place(self.metric)),
            ..Default::default()
        }
    }
}

/// True when in-place weights come out divided by the euclidean distance at their entry
/// (`weight_out` in common.wgsl, `P.u6`), so that the chain reads no distance (its mode 3).
pub(crate) fn divides_in_place(metric: Metric) -> bool {
    metric.distance == Distance::Euclidean
}

/// `sum / count`, 0 when nothing is active (AvgNonZero / Mean).
pub(crate) fn avg(sum: f64, count: u64) -> f64 {
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// `1 / count` as an f32 weight scale, 0 when nothing is active.
pub(crate) fn inv(count: u64) -> f32 {
    if count == 0 {
        0.0
    } else {
        (1.0 / count as f64) as f32
    }
}

/// Rule 2.3 of docs/REFERENCE_SETS.md: the pair losses give 0 when there is at most one positive
/// and at most one negative pair (never the case in the square case, where pair counts are even).
fn tiny_pair_set(loss: &Loss, layout: &Layout) -> bool {
    loss.is_pair_loss() && layout.positive_pairs() <= 1 && layout.negative_pairs() <= 1
}

/// True when `loss` gives 0 with no active term whatever the embeddings: rule 2.3 for the pair
/// losses against a reference set; lifted structure, NT-Xent and SupCon without a positive or a
/// negative pair.
fn nothing_to_do(loss: &Loss, layout: &Layout) -> bool {
    let both = layout.positive_pairs() > 0 && layout.negative_pairs() > 0;
    let needs_both = matches!(
        loss,
        Loss::LiftedStructure(_) | Loss::NTXent(_) | Loss::SupCon(_)
    );
    (layout.rect && tiny_pair_set(loss, layout)) || (needs_both && !both)
}

/// A loss over the N x N matrix, or over the N x M matrix against a reference set (every loss but
/// triplet-center, proxy-anchor and n-pair): stages 1-5. With a reference set R is normalized
/// without a gradient, the chain has no `W + W^T` and the gradient is for the batch only
/// (docs/REFERENCE_SETS.md section 6).
#[allow(clippy::too_many_arguments)]
pub(crate) fn square_loss(
    gpu: &Gpu,
    loss: &Loss,
    x: &Buffer,
    n: usize,
    d: usize,
    labels: &[i64],
    reference: Option<DeviceReference<'_, Buffer>>,
    grad: &Buffer,
) -> Result<LossStats> {
    let metric = loss.metric();
    let layout = match &reference {
        None => Layout::square(labels),
        Some(r) => Layout::rect(labels, r.labels, r.self_index),
    };
    let m = layout.m;
    stages::u32_of(2 * n + m, "the label count")?;
    if nothing_to_do(loss, &layout) {
        let mut b = gpu.batch();
        b.clear(grad);
        b.submit();
        return Ok(LossStats::empty());
    }
    if (n as u64) * (m as u64) * 4 > gpu.max_binding() {
        return slabs::slab_loss(gpu, loss, x, n, d, layout, reference, grad);
    }
    let sq_ = Square {
        gpu,
        n,
        m,
        metric,
        e: gpu.scratch("e", n * m)?,
        grp: gpu.upload("groups", &layout.packed())?,
        rstat: gpu.scratch("rstat", 2 * n)?,
        rcnt: gpu.scratch("rcnt", 4 * n)?,
        layout,
    };
    let on = metric.normalizes();
    let mut b = gpu.batch();
    let xs = stages::normalize(gpu, &mut b, (x, n, d), on, stages::BATCH)?;
    let (xh, sq) = (&xs.h, &xs.sq);
    let mode = PairMode::for_loss(metric);
    // The reference rows, normalized (no gradient flows into them).
    let reference_rows = match &reference {
        None => {
            stages::pairwise(gpu, &mut b, (xh, sq, n), (xh, sq, n), d, mode, &sq_.e)?;
            None
        }
        Some(r) => {
            let rs = stages::normalize(gpu, &mut b, (r.embeddings, m, d), on, stages::OTHER)?;
            stages::pairwise(
                gpu,
                &mut b,
                (xh, sq, n),
                (&rs.h, &rs.sq, m),
                d,
                mode,
                &sq_.e,
            )?;
            Some(rs)
        }
    };
    b.submit();

    let (stats, s_pos, s_neg) = match loss {
        Loss::Quadruplet(c) if c.mining == margin_core::Mining::Hard => {
            quad_hard::quad_hard(&sq_, c)?
        }
        Loss::Quadruplet(c) => quadruplet::quadruplet(&sq_, c)?,
        Loss::LiftedStructure(c) => lifted::lifted(&sq_, c)?,
        _ => {
            row_local::weights(&sq_, loss)?;
            row_local::finish(loss, &sq_.layout, &sq_.totals()?)?
        }
    };

    let mut b = gpu.batch();
    // E now holds the weights: the chain kernel gets a stand-in for the distances it never reads.
    let w = &sq_.e;
    let chain = stages::chain_mode(metric, true);
    let e = gpu.scratch("unread", 1)?;
    match &reference_rows {
        None => {
            stages::chain_square(gpu, &mut b, w, &e, n, chain, s_pos, s_neg)?;
            let rs = gpu.scratch("rs", n)?;
            let distance = !metric.is_similarity();
            if distance {
                stages::row_sums(gpu, &mut b, w, n, n, &rs)?;
            }
            stages::matmul(
                gpu,
                &mut b,
                &Product {
                    a: w,
                    transposed: false,
                    b: xh,
                    rs: &rs,
                    x: xh,
                    out: grad,
                    rows: n,
                    cols: d,
                    inner: n,
                    alpha: if distance { -1.0 } else { 1.0 },
                    beta: if distance { 1.0 } else { 0.0 },
                    out_row: 0,
                    accumulate: false,
                },
            )?;
        }
        Some(rs) => {
            stages::chain_cross(gpu, &mut b, w, &e, n, m, chain, s_pos, s_neg)?;
            // The batch's share only: the reference rows are a constant.
            b.clear(grad);
            let products = slabs::SlabProducts {
                c: w,
                len: n,
                m,
                d,
                r0: 0,
                rows: xh,
                slab_rows: xh,
                cols: &rs.h,
                g_rows: Some(grad),
                g_cols: None,
            };
            products.record(gpu, &mut b, metric)?;
        }
    }
    if on {
        stages::normalize_backward(gpu, &mut b, xh, &xs.norms, grad, n, d)?;
    }
    b.submit();
    Ok(stats)
}
