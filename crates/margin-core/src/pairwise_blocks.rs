//! The host pairwise matrix of [`Backend::pairwise`], computed in blocks of query rows so that no
//! device buffer holds more than [`Backend::max_buffer_values`] values: a backend whose buffers
//! are bounded (wgpu binds at most 2 GiB, lavapipe 128 MiB) still returns any N x M that fits on
//! the host. Backends without a bound get one block, as a plain call.

use crate::backend::Backend;
use crate::distance::Metric;
use crate::error::{MarginError, Result};
use crate::tensor::Embeddings;

/// The `nq x nr` matrix between `query` and `reference` (or `query` itself), block by block.
/// The inputs are checked by the caller ([`crate::check_query_rows`]).
pub(crate) fn pairwise_in_blocks<B: Backend + ?Sized>(
    backend: &B,
    metric: Metric,
    query: Embeddings<'_>,
    reference: Option<Embeddings<'_>>,
) -> Result<Vec<f32>> {
    let (nq, d) = (query.rows(), query.cols());
    let nr = reference.map_or(nq, |r| r.rows());
    let total = nq
        .checked_mul(nr)
        .ok_or_else(|| MarginError::OutOfMemory(format!("a {nq} x {nr} matrix overflows usize")))?;
    let max = backend.max_buffer_values();
    if nr > max {
        return Err(MarginError::OutOfMemory(format!(
            "one row of {nr} values exceeds the largest buffer {} holds ({max} values)",
            backend.name()
        )));
    }
    let block = (max / nr).min(nq);
    let r = backend.upload(reference.unwrap_or(query).data())?;
    let one_block = |start: usize, rows: usize| -> Result<Vec<f32>> {
        let mut out = backend.alloc_zeros(rows * nr)?;
        if rows == nq && reference.is_none() {
            // The whole square matrix at once: the kernels' own diagonal handling applies.
            backend.pairwise_on_device(metric, &r, nq, None, d, &mut out)?;
        } else {
            let q = backend.upload(&query.data()[start * d..(start + rows) * d])?;
            backend.pairwise_on_device(metric, &q, rows, Some((&r, nr)), d, &mut out)?;
        }
        backend.download(&out)
    };
    if block == nq {
        return one_block(0, nq);
    }
    let mut out = Vec::new();
    out.try_reserve_exact(total).map_err(|_| {
        MarginError::OutOfMemory(format!("cannot allocate {total} floats for the matrix"))
    })?;
    for start in (0..nq).step_by(block) {
        out.extend(one_block(start, block.min(nq - start))?);
    }
    Ok(out)
}
