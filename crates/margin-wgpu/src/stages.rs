//! Recording helpers for the stages every loss shares: normalization (1 and 5), the pairwise
//! matrix (2), the chain through the distance and the gradient products (4), plus row gathers
//! and the global bitonic sort.

use crate::context::{Batch, Gpu, Groups, Params};
use margin_core::{Distance, Metric, Result};
use wgpu::Buffer;

/// Pairwise-kernel output modes (`P.flags` of pairwise.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairMode {
    Euclidean = 0,
    Squared = 1,
    Dot = 2,
    /// Minus the dot product: a similarity as a "distance-like" value (smaller is closer).
    NegDot = 3,
}

impl PairMode {
    /// The mode for the user-facing matrix.
    pub fn public(metric: Metric) -> Self {
        match metric.distance {
            Distance::Euclidean => PairMode::Euclidean,
            Distance::SquaredEuclidean => PairMode::Squared,
            Distance::Cosine | Distance::Dot => PairMode::Dot,
        }
    }

    /// The mode the loss kernels read (E = distance, or minus similarity).
    pub fn for_loss(metric: Metric) -> Self {
        match Self::public(metric) {
            PairMode::Dot => PairMode::NegDot,
            m => m,
        }
    }
}

/// chain.wgsl modes. `in_place`: the weights overwrote E and are already divided by the euclidean
/// distance there (`weight_out` in common.wgsl), so the euclidean mode is 3, which reads no E.
pub fn chain_mode(metric: Metric, in_place: bool) -> u32 {
    match metric.distance {
        Distance::Euclidean if in_place => 3,
        Distance::Euclidean => 0,
        Distance::SquaredEuclidean => 1,
        Distance::Cosine | Distance::Dot => 2,
    }
}

fn tiles(rows: usize, cols: usize) -> Groups {
    let t = |v: usize| u32::try_from(v.div_ceil(16)).unwrap_or(u32::MAX);
    Groups::Grid(t(cols), t(rows))
}

fn per_thread(count: usize) -> Groups {
    Groups::Linear((count as u64).div_ceil(256))
}

/// Converts a size to the u32 the kernels index with.
pub fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        margin_core::MarginError::OutOfMemory(format!("{what} ({v}) exceeds 32-bit indexing"))
    })
}

/// Scratch names of a row set after stage 1: its rows, raw norms and squared output norms.
pub type Names = [&'static str; 3];
/// The batch's.
pub const BATCH: Names = ["xh", "norms", "sq"];
/// The other side's: reference rows or centers.
pub const OTHER: Names = ["ch", "cnorms", "csq"];

/// A row set after stage 1: its rows normalized (or copied), raw norms, squared output norms.
#[derive(Debug)]
pub struct Normalized {
    pub h: Buffer,
    pub norms: Buffer,
    pub sq: Buffer,
}

/// Records stage 1 for `rows` rows of `x` (normalization, or a copy when `on` is false) into the
/// scratch buffers `names`.
pub fn normalize(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    (x, rows, d): (&Buffer, usize, usize),
    on: bool,
    names: Names,
) -> Result<Normalized> {
    let out = Normalized {
        h: gpu.scratch(names[0], rows * d)?,
        norms: gpu.scratch(names[1], rows)?,
        sq: gpu.scratch(names[2], rows)?,
    };
    let p = Params {
        n: u32_of(rows, "rows")?,
        d: u32_of(d, "width")?,
        flags: u32::from(on),
        ..Default::default()
    };
    let bufs = [x, &out.h, &out.norms, &out.sq];
    b.run(&gpu.kernels.normalize, p, &bufs, per_thread(rows))?;
    Ok(out)
}

/// In-place normalization backward of `g` (rows x d).
pub fn normalize_backward(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    xh: &Buffer,
    norms: &Buffer,
    g: &Buffer,
    rows: usize,
    d: usize,
) -> Result<()> {
    let p = Params {
        n: u32_of(rows, "rows")?,
        d: u32_of(d, "width")?,
        ..Default::default()
    };
    b.run(
        &gpu.kernels.normalize_backward,
        p,
        &[xh, norms, g],
        per_thread(rows),
    )
}

/// `out` (na x nb) = pairwise values between rows of `a` and rows of `bm`.
#[allow(clippy::too_many_arguments)]
pub fn pairwise(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    a: (&Buffer, &Buffer, usize),
    bm: (&Buffer, &Buffer, usize),
    d: usize,
    mode: PairMode,
    out: &Buffer,
) -> Result<()> {
    let p = Params {
        n: u32_of(a.2, "rows")?,
        m: u32_of(bm.2, "rows")?,
        d: u32_of(d, "width")?,
        flags: mode as u32,
        off: u32::from(a.0 == bm.0),
        ..Default::default()
    };
    u32_of(a.2 * bm.2, "matrix size")?;
    b.run(
        &gpu.kernels.pairwise,
        p,
        &[a.0, bm.0, a.1, bm.1, out],
        tiles(a.2, bm.2),
    )
}

/// In place: W (n x n) -> M' = chain(scale(W) + scale(W)^T).
#[allow(clippy::too_many_arguments)]
pub fn chain_square(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    w: &Buffer,
    e: &Buffer,
    n: usize,
    mode: u32,
    s_pos: f32,
    s_neg: f32,
) -> Result<()> {
    let mut p = Params {
        n: u32_of(n, "rows")?,
        flags: mode,
        ..Default::default()
    };
    p.f[0] = s_pos;
    p.f[1] = s_neg;
    b.run(&gpu.kernels.chain_square, p, &[w, e], tiles(n, n))
}

/// In place, elementwise: W (nq x nr) -> chain(scale(W)), positive entries scaled by `s_pos` and
/// negative ones by `s_neg` (no transpose: the columns are another row set).
#[allow(clippy::too_many_arguments)]
pub fn chain_cross(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    w: &Buffer,
    e: &Buffer,
    nq: usize,
    nr: usize,
    mode: u32,
    s_pos: f32,
    s_neg: f32,
) -> Result<()> {
    let mut p = Params {
        n: u32_of(nq, "rows")?,
        m: u32_of(nr, "rows")?,
        flags: mode,
        ..Default::default()
    };
    p.f[0] = s_pos;
    p.f[1] = s_neg;
    b.run(&gpu.kernels.chain_cross, p, &[w, e], per_thread(nq * nr))
}

/// `out[i]` = sum of row i of `a` (rows x cols).
pub fn row_sums(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    a: &Buffer,
    rows: usize,
    cols: usize,
    out: &Buffer,
) -> Result<()> {
    let p = Params {
        n: u32_of(rows, "rows")?,
        m: u32_of(cols, "cols")?,
        ..Default::default()
    };
    b.run(
        &gpu.kernels.row_sums,
        p,
        &[a, out],
        Groups::Linear(rows as u64),
    )
}

/// `out[j]` = sum of column j of `a` (rows x cols).
pub fn col_sums(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    a: &Buffer,
    rows: usize,
    cols: usize,
    out: &Buffer,
) -> Result<()> {
    let p = Params {
        n: u32_of(rows, "rows")?,
        m: u32_of(cols, "cols")?,
        ..Default::default()
    };
    b.run(&gpu.kernels.col_sums, p, &[a, out], per_thread(cols))
}

/// One gradient product `G = alpha A B + beta diag(rs) X`, into rows `out_row..` of `out` (and
/// reading those rows of `x`), added to what `out` holds when `accumulate`.
#[derive(Debug)]
pub struct Product<'a> {
    /// `rows x inner`, or `inner x rows` stored when `transposed`.
    pub a: &'a Buffer,
    pub transposed: bool,
    /// `inner x cols`.
    pub b: &'a Buffer,
    /// `rows` values (read only when `beta != 0`).
    pub rs: &'a Buffer,
    /// `rows x cols` (read only when `beta != 0`).
    pub x: &'a Buffer,
    pub out: &'a Buffer,
    pub rows: usize,
    pub cols: usize,
    pub inner: usize,
    pub alpha: f32,
    pub beta: f32,
    /// First row of `out` and `x` the product's rows map to (0 but for slabs of rows).
    pub out_row: usize,
    pub accumulate: bool,
}

/// Records a [`Product`].
pub fn matmul(gpu: &Gpu, b: &mut Batch<'_>, g: &Product<'_>) -> Result<()> {
    let mut p = Params {
        n: u32_of(g.rows, "rows")?,
        m: u32_of(g.cols, "cols")?,
        k: u32_of(g.inner, "inner")?,
        flags: u32::from(g.transposed) | (2 * u32::from(g.accumulate)),
        off: u32_of(g.out_row, "first row")?,
        ..Default::default()
    };
    u32_of((g.out_row + g.rows) * g.cols, "gradient size")?;
    p.f[0] = g.alpha;
    p.f[1] = g.beta;
    b.run(
        &gpu.kernels.matmul,
        p,
        &[g.a, g.b, g.rs, g.x, g.out],
        tiles(g.rows, g.cols),
    )
}

/// `dst[r] = src[idx[r]]` (scatter = false) or `dst[idx[r]] = src[r]` for `rows` rows of width d.
#[allow(clippy::too_many_arguments)]
pub fn gather(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    src: &Buffer,
    idx: &Buffer,
    dst: &Buffer,
    rows: usize,
    d: usize,
    scatter: bool,
) -> Result<()> {
    let p = Params {
        n: u32_of(rows, "rows")?,
        d: u32_of(d, "width")?,
        flags: u32::from(scatter),
        ..Default::default()
    };
    b.run(
        &gpu.kernels.gather,
        p,
        &[src, idx, dst],
        per_thread(rows * d),
    )
}

/// Global bitonic sort of `len` (a power of two) (key, value) pairs by key then value.
pub fn bitonic_sort(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    keys: &Buffer,
    vals: &Buffer,
    len: usize,
) -> Result<()> {
    let n = u32_of(len, "sort length")?;
    let mut k = 2u32;
    while k <= n {
        let mut j = k / 2;
        while j > 0 {
            let p = Params {
                n,
                k,
                m: j,
                ..Default::default()
            };
            b.run(&gpu.kernels.sort, p, &[keys, vals], per_thread(len))?;
            j /= 2;
        }
        k = k.saturating_mul(2);
        if k == 0 {
            break;
        }
    }
    Ok(())
}

/// Scratch names of the block totals at each level of [`exclusive_scan_u32`] (256^6 > u32::MAX).
const SCAN_LEVELS: [&str; 6] = [
    "scan_sums0",
    "scan_sums1",
    "scan_sums2",
    "scan_sums3",
    "scan_sums4",
    "scan_sums5",
];

/// Exclusive prefix sum, in place, of the first `len` u32 values of `data` (wrapping modulo 2^32):
/// scan blocks of 256, scan their totals the same way (recursively), add them back.
pub fn exclusive_scan_u32(gpu: &Gpu, b: &mut Batch<'_>, data: &Buffer, len: usize) -> Result<()> {
    scan_level(gpu, b, data, len, 0)
}

fn scan_level(gpu: &Gpu, b: &mut Batch<'_>, data: &Buffer, len: usize, level: usize) -> Result<()> {
    let blocks = len.div_ceil(256);
    let name = SCAN_LEVELS
        .get(level)
        .ok_or_else(|| margin_core::MarginError::device("internal: scan nests too deep"))?;
    let sums = gpu.scratch(name, blocks)?;
    let mut p = Params {
        n: u32_of(len, "scan length")?,
        ..Default::default()
    };
    b.run(&gpu.kernels.scan, p, &[data, &sums], per_thread(len))?;
    if blocks > 1 {
        scan_level(gpu, b, &sums, blocks, level + 1)?;
        p.flags = 1;
        b.run(&gpu.kernels.scan, p, &[data, &sums], per_thread(len))?;
    }
    Ok(())
}
