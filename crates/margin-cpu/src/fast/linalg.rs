//! Small dense linear-algebra helpers: the matrix product, fallible allocation, and a
//! deterministic dot product.
//!
//! Why `matrixmultiply` (single-threaded, row strips spread over rayon) and not `gemm`: measured
//! on the 2-core development machine (`cargo run --release -p margin-benches --bin measure --
//! gemm`, f32 4096x4096x512, the product of pairwise at N = 4096, D = 512), 4 runs each:
//! matrixmultiply 0.3 in rayon row strips 111-121 ms, gemm 0.19 with `Parallelism::Rayon`
//! 120-176 ms, matrixmultiply single-threaded 204-244 ms; single-threaded (`RAYON_NUM_THREADS=1`)
//! matrixmultiply 230 ms against gemm 280-340 ms. Splitting rows over rayon also keeps
//! RAYON_NUM_THREADS in charge of all threading. (The machine is shared: expect ±30% noise.)

use margin_core::{MarginError, Result};
use rayon::prelude::*;

/// A read-only strided matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: cols,
        }
    }
}

fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// `dst = (accumulate ? dst : 0) + beta * a * b` with `a: m x k`, `b: k x n`, `dst: m x n`
/// row-major with row stride `dst_rs`. Multi-threaded through rayon.
///
/// Panics only if the views do not fit their slices (an internal invariant).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    beta: f32,
    a: View<'_>,
    b: View<'_>,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(fits(dst.len(), m, n, dst_rs, 1), "gemm dst out of bounds");
    assert!(
        fits(a.data.len(), m, k, a.rs, a.cs),
        "gemm lhs out of bounds"
    );
    assert!(
        fits(b.data.len(), k, n, b.rs, b.cs),
        "gemm rhs out of bounds"
    );
    // Row strips of the output, one single-threaded product each, spread over rayon's threads.
    let strip = strip_rows(m);
    dst[..(m - 1) * dst_rs + n]
        .par_chunks_mut(strip * dst_rs)
        .enumerate()
        .for_each(|(s, out)| {
            let r0 = s * strip;
            let rows = strip.min(m - r0);
            let lhs = View {
                data: &a.data[r0 * a.rs..],
                ..a
            };
            matmul_serial(rows, n, k, out, dst_rs, accumulate, beta, lhs, b);
        });
}

/// Rows per strip when an `m`-row product is split over rayon's threads.
pub(crate) fn strip_rows(m: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    m.div_ceil(threads * 2).max(32)
}

/// [`matmul`] on the calling thread only.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_serial(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    beta: f32,
    a: View<'_>,
    b: View<'_>,
) {
    if m == 0 || n == 0 || k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(fits(dst.len(), m, n, dst_rs, 1), "gemm dst out of bounds");
    assert!(
        fits(a.data.len(), m, k, a.rs, a.cs),
        "gemm lhs out of bounds"
    );
    assert!(
        fits(b.data.len(), k, n, b.rs, b.cs),
        "gemm rhs out of bounds"
    );
    // SAFETY: the three asserts guarantee that every element matrixmultiply reads or writes,
    // `(r, c)` with `r < rows` and `c < cols` at `r * rs + c * cs`, lies inside its slice; `dst`
    // is a unique borrow, disjoint from the shared `a` and `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            beta,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            if accumulate { 1.0 } else { 0.0 },
            dst.as_mut_ptr(),
            dst_rs as isize,
            1,
        );
    }
}

/// A zeroed f32 vector, or `OutOfMemory` instead of an abort when `len` cannot be allocated.
/// The zeros are written here, so that later read-modify-writes (`w[j] += ...`) fault each page
/// once instead of mapping the shared zero page and then copying it on write (a TLB shootdown
/// per page across all threads, measured at 30% of a contrastive call).
pub(crate) fn zeros(len: usize, what: &str) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        MarginError::OutOfMemory(format!("cannot allocate {len} floats for {what}"))
    })?;
    v.resize(len, 0.0);
    Ok(v)
}

/// Like [`zeros`], but allocated zeroed (calloc-like): no page is touched until written. For
/// outputs that are written before they are read (the pairwise matrix, returned buffers).
pub(crate) fn zeros_lazy(len: usize, what: &str) -> Result<Vec<f32>> {
    let oom = || MarginError::OutOfMemory(format!("cannot allocate {len} floats for {what}"));
    if len == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<f32>(len).map_err(|_| oom())?;
    // SAFETY: `layout` has a non-zero size (len > 0). A non-null result is a block from the
    // global allocator with exactly this layout, every byte zero, and all-zero bits are a valid
    // f32 (0.0); `Vec::from_raw_parts` with length = capacity = `len` takes ownership of a block
    // allocated with `Layout::array::<f32>(len)`, which is what Vec requires to free it.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<f32>();
        if p.is_null() {
            return Err(oom());
        }
        Ok(Vec::from_raw_parts(p, len, len))
    }
}

/// A dot product with a fixed summation order, so that `dot(a, b) == dot(b, a)` bit for bit.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for t in 0..8 {
            acc[t] += x[t] * y[t];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}
