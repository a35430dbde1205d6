//! Stage 3 driver: streams over blocks of anchor rows within the memory budget. For each block
//! it computes the block's `e` rows (GEMM), lets a per-row kernel fill the weight rows of up to
//! two groups (each group has its own AvgNonZero denominator, known only at the end), and chains
//! every group's weights into its own unnormalized gradient accumulator. The gradient is linear
//! in `W`, so each accumulator is scaled by its group's factor once the pass is over.

use super::chain;
use super::geometry::Rows;
use super::linalg::zeros;
use super::scratch::{self, Scratch};
use margin_core::{Metric, Result};
use rayon::prelude::*;
use std::ops::AddAssign;

/// Per-group sums of one pass: loss numerators and active counts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Acc {
    pub loss: [f64; 2],
    pub count: [u64; 2],
}

impl AddAssign for Acc {
    fn add_assign(&mut self, o: Self) {
        for g in 0..2 {
            self.loss[g] += o.loss[g];
            self.count[g] += o.count[g];
        }
    }
}

/// A per-anchor-row computation of the weights `∂L/∂e` (unnormalized).
pub(crate) trait RowKernel: Sync {
    /// Per-task scratch space (sorted positives, histograms ...).
    type Scratch: Send;
    /// Number of weight groups (1 or 2).
    const GROUPS: usize;
    /// True when `W[i,j]` depends only on `e_ij` and the two labels (contrastive), so that
    /// `W + Wᵀ = 2W` and the resident finish needs no transpose.
    const SYMMETRIC: bool = false;
    /// A fresh scratch.
    fn scratch(&self) -> Self::Scratch;
    /// Row `i` with its `e` row; `w0`, `w1` are zeroed weight rows (`w1` empty for one group).
    fn row(
        &self,
        s: &mut Self::Scratch,
        i: usize,
        e: &[f32],
        w0: &mut [f32],
        w1: &mut [f32],
    ) -> Acc;
    /// The factor of each group's weights once the pass is over (1 / its AvgNonZero count...).
    fn scales(&self, acc: &Acc) -> [f64; 2];
}

/// `1 / count`, 0 for an empty group.
pub(crate) fn inv(count: u64) -> f64 {
    if count == 0 { 0.0 } else { 1.0 / count as f64 }
}

/// Up to this many bytes of `e` and weights, the whole matrix stays resident: the weights of
/// both groups are merged once their counts are known and `M = W + Wᵀ` needs one GEMM.
const RESIDENT_MAX_BYTES: usize = 512 << 20;

/// Blocks taller than this gain nothing in GEMM speed but cost page faults and resident memory.
const MAX_BLOCK_ROWS: usize = 1024;

/// Anchor rows per block: the block's `e` plus one weight block per group fit the budget.
pub(crate) fn block_rows(n: usize, mats: usize, budget: usize) -> usize {
    let per_row = n.saturating_mul(4 * mats).max(1);
    (budget / per_row).clamp(1, n.clamp(1, MAX_BLOCK_ROWS))
}

/// The result of a pass: the sums and the gradient w.r.t. `xh` of `Σ_g scale_g W_g e` (the
/// caller applies the metric's sign and stage 5).
pub(crate) struct Pass {
    pub acc: Acc,
    pub grad: Vec<f32>,
}

/// Runs `kernel` on the rows `r0..` of a block (`e`, `w0`, `w1` hold whole rows of length n,
/// the number of columns: N, or M with a reference set).
pub(crate) fn kernel_rows<K: RowKernel>(
    kernel: &K,
    r0: usize,
    n: usize,
    e: &[f32],
    w0: &mut [f32],
    w1: &mut [f32],
) -> Acc {
    let b = e.len() / n;
    let w1_chunks: Vec<&mut [f32]> = if w1.is_empty() {
        (0..b).map(|_| Default::default()).collect()
    } else {
        w1.chunks_mut(n).collect()
    };
    e.par_chunks(n)
        .zip(w0.par_chunks_mut(n))
        .zip(w1_chunks.into_par_iter())
        .enumerate()
        .map_init(
            || kernel.scratch(),
            |s, (k, ((er, w0r), w1r))| {
                // Scratch buffers arrive with stale values: the kernel expects zeroed rows.
                w0r.fill(0.0);
                w1r.fill(0.0);
                kernel.row(s, r0 + k, er, w0r, w1r)
            },
        )
        .reduce(Acc::default, |mut a, b| {
            a += b;
            a
        })
}

/// The whole matrix at once: one kernel pass, then one fused merge / divide / symmetrize pass
/// and one GEMM. The three `N x N` buffers come from the scratch pool.
fn run_resident<K: RowKernel>(
    rows: &Rows,
    metric: Metric,
    kernel: &K,
    e: Option<Scratch>,
) -> Result<Pass> {
    let n = rows.n;
    let mut e = match e {
        Some(e) => e,
        None => {
            let mut e = scratch::take(n * n, "the distance matrix")?;
            rows.e_square(metric, &mut e);
            e
        }
    };
    let mut w0 = scratch::take(n * n, "the weight matrix")?;
    let mut w1 = scratch::take(if K::GROUPS > 1 { n * n } else { 0 }, "the weight matrix")?;
    let acc = kernel_rows(kernel, 0, n, &e, &mut w0, &mut w1);
    let [s0, s1] = kernel.scales(&acc);
    let merge = if K::SYMMETRIC {
        chain::merge_doubled
    } else {
        chain::merge_symmetric
    };
    let rowsum = merge(metric.distance, &w0, &w1, [s0 as f32, s1 as f32], &mut e, n);
    drop((w0, w1));
    let grad = chain::square(rows, metric.distance, &e, &rowsum)?;
    Ok(Pass { acc, grad })
}

/// Runs `kernel` over every row and chains the weights: the whole matrix at once when it is
/// small, else block by block with one unscaled gradient per group, scaled at the end.
pub(crate) fn run<K: RowKernel>(
    rows: &Rows,
    metric: Metric,
    kernel: &K,
    budget: usize,
) -> Result<Pass> {
    run_in(rows, metric, kernel, budget, None)
}

/// True when the whole `e` plus `groups` weight matrices fit the budget (and the resident cap).
fn fits_resident(n: usize, groups: usize, budget: usize) -> bool {
    n.checked_mul(n)
        .and_then(|nn| nn.checked_mul(4 * (1 + groups)))
        .is_some_and(|bytes| bytes <= budget.min(RESIDENT_MAX_BYTES))
}

/// The whole `e` matrix, computed once, when a later [`run_in`] with `groups` weight groups will
/// be resident; `None` when it will stream. Two-pass losses (a row statistic such as a
/// log-sum-exp first, then the weights) hand it to [`map_rows_in`] and [`run_in`] so that the
/// distance GEMM runs once instead of twice.
pub(crate) fn resident_e(
    rows: &Rows,
    metric: Metric,
    groups: usize,
    budget: usize,
) -> Result<Option<Scratch>> {
    let n = rows.n;
    if !fits_resident(n, groups, budget) {
        return Ok(None);
    }
    let mut e = scratch::take(n * n, "the distance matrix")?;
    rows.e_square(metric, &mut e);
    Ok(Some(e))
}

/// [`run`], reusing `e` from [`resident_e`] when given.
pub(crate) fn run_in<K: RowKernel>(
    rows: &Rows,
    metric: Metric,
    kernel: &K,
    budget: usize,
    e: Option<Scratch>,
) -> Result<Pass> {
    let (n, d) = (rows.n, rows.d);
    let groups = K::GROUPS;
    if e.is_some() || fits_resident(n, groups, budget) {
        return run_resident(rows, metric, kernel, e);
    }
    let bmax = block_rows(n, 1 + groups, budget);
    let dist = metric.distance;
    stream(
        kernel,
        (n, n, d),
        bmax,
        |r0, b, e| rows.e_block(metric, r0, b, e),
        |r0, b, w, e, g| chain::block(rows, dist, r0, b, w, e, g),
    )
}

/// The streaming pass shared by the square engine and the reference-set rectangle: for each
/// block of at most `bmax` of the `n` anchor rows, `e_block(r0, b, e)` fills the block's `e`
/// (`b x cols`), the kernel writes the weights of each group, and `chain(r0, b, w, e, g)` adds
/// their chain to the group's gradient (`n x d`, rows `r0..r0 + b`; `w` may be overwritten).
/// The groups' gradients are scaled by the kernel's factors and summed at the end.
pub(crate) fn stream<K, E, C>(
    kernel: &K,
    (n, cols, d): (usize, usize, usize),
    bmax: usize,
    e_block: E,
    chain: C,
) -> Result<Pass>
where
    K: RowKernel,
    E: Fn(usize, usize, &mut [f32]),
    C: Fn(usize, usize, &mut [f32], &[f32], &mut [f32]) -> Result<()>,
{
    let groups = K::GROUPS;
    let mut e = scratch::take(bmax * cols, "a distance block")?;
    let mut w0 = scratch::take(bmax * cols, "a weight block")?;
    let mut w1 = scratch::take(if groups > 1 { bmax * cols } else { 0 }, "a weight block")?;
    let mut grads = Vec::with_capacity(groups);
    for _ in 0..groups {
        grads.push(zeros(n * d, "a gradient")?);
    }
    let mut acc = Acc::default();
    let mut r0 = 0;
    while r0 < n {
        let b = bmax.min(n - r0);
        let eb = &mut e[..b * cols];
        e_block(r0, b, eb);
        let w1b: &mut [f32] = if groups > 1 {
            &mut w1[..b * cols]
        } else {
            &mut []
        };
        acc += kernel_rows(kernel, r0, cols, eb, &mut w0[..b * cols], w1b);
        chain(r0, b, &mut w0[..b * cols], eb, &mut grads[0])?;
        if groups > 1 {
            chain(r0, b, &mut w1[..b * cols], eb, &mut grads[1])?;
        }
        r0 += b;
    }
    let scales = kernel.scales(&acc);
    let mut grads = grads.into_iter();
    let mut grad = grads.next().unwrap_or_default();
    let s0 = scales[0] as f32;
    grad.par_iter_mut().for_each(|v| *v *= s0);
    if let Some(g1) = grads.next() {
        let s1 = scales[1] as f32;
        grad.par_iter_mut()
            .zip(g1.par_iter())
            .for_each(|(a, &b)| *a += s1 * b);
    }
    Ok(Pass { acc, grad })
}

/// A read-only pass: `f(i, e_row)` for every row, block by block (e.g. row log-sum-exp).
pub(crate) fn map_rows<T, F>(rows: &Rows, metric: Metric, budget: usize, f: F) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(usize, &[f32]) -> T + Sync,
{
    map_rows_in(rows, metric, budget, None, f)
}

/// [`map_rows`] over the resident `e` of [`resident_e`] when given.
pub(crate) fn map_rows_in<T, F>(
    rows: &Rows,
    metric: Metric,
    budget: usize,
    e: Option<&Scratch>,
    f: F,
) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(usize, &[f32]) -> T + Sync,
{
    let n = rows.n;
    if let Some(e) = e {
        return Ok(e
            .par_chunks(n)
            .enumerate()
            .map(|(i, er)| f(i, er))
            .collect());
    }
    let bmax = block_rows(n, 1, budget);
    let mut e = scratch::take(bmax * n, "a distance block")?;
    let mut out = Vec::with_capacity(n);
    let mut r0 = 0;
    while r0 < n {
        let b = bmax.min(n - r0);
        rows.e_block(metric, r0, b, &mut e[..b * n]);
        let part: Vec<T> = e[..b * n]
            .par_chunks(n)
            .enumerate()
            .map(|(k, er)| f(r0 + k, er))
            .collect();
        out.extend(part);
        r0 += b;
    }
    Ok(out)
}
