//! The backend trait. A backend owns its device context; [`Backend::Buffer`] is its storage
//! (`Vec<f32>` on the CPU, `wgpu::Buffer`, `cudarc::driver::CudaSlice<f32>`), so a trainer that
//! already holds embeddings on the device passes them in and gets gradients back in buffers it owns,
//! with no host round trip. The host-slice methods are conveniences built on the device ones.

use crate::device_run::{DeviceOp, UploadedInput, time_on_device};
use crate::distance::Metric;
use crate::error::{MarginError, Result};
use crate::loss::Loss;
use crate::output::{LossOutput, LossStats};
use crate::range::{F32_MAX_SQUARED_NORM, check_loss_range, check_query_rows};
use crate::tensor::{Embeddings, LossInput, check_reference};

/// A reference set already on the device (see [`crate::ReferenceSet`]).
#[derive(Debug)]
pub struct DeviceReference<'a, B> {
    /// M x D reference embeddings (the batch's D), row-major. Never written.
    pub embeddings: &'a B,
    /// M.
    pub m: usize,
    /// M labels, on the host like the batch's.
    pub labels: &'a [i64],
    /// Per batch row, its own copy's reference row or [`crate::NO_SELF`]; `None`: no copies.
    pub self_index: Option<&'a [u32]>,
}

impl<B> Clone for DeviceReference<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for DeviceReference<'_, B> {}

/// The `k` nearest reference rows of each query row, closest first (smallest distance, or
/// largest similarity); ties go to the lower reference index.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// Neighbours per query row.
    pub k: usize,
    /// `nq x k` reference row indices, row-major.
    pub indices: Vec<u32>,
    /// `nq x k` distances (or similarities) of those neighbours, as the backend computed them.
    pub scores: Vec<f32>,
}

/// Embeddings, labels and centers already on the device.
#[derive(Debug)]
pub struct DeviceLossInput<'a, B> {
    /// N x D embeddings, row-major.
    pub embeddings: &'a B,
    /// N.
    pub n: usize,
    /// D.
    pub d: usize,
    /// N labels. Labels stay on the host: they are small and backends re-encode them.
    pub labels: &'a [i64],
    /// `(buffer, K)`: K x D centers, for triplet-center and proxy-anchor (its proxies).
    pub centers: Option<(&'a B, usize)>,
    /// Positives and negatives from this set instead of the batch.
    pub reference: Option<DeviceReference<'a, B>>,
}

impl<B> Clone for DeviceLossInput<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for DeviceLossInput<'_, B> {}

/// A compute backend: CPU reference, fast CPU, wgpu, CUDA.
pub trait Backend {
    /// Device storage of f32 values.
    type Buffer;

    /// A short human-readable name, including the adapter or device where there is one.
    fn name(&self) -> String;

    /// Copies host values into a new device buffer.
    fn upload(&self, data: &[f32]) -> Result<Self::Buffer>;

    /// A new device buffer of `len` zeros.
    fn alloc_zeros(&self, len: usize) -> Result<Self::Buffer>;

    /// Copies a device buffer back to the host (waits for pending work).
    fn download(&self, buffer: &Self::Buffer) -> Result<Vec<f32>>;

    /// Number of f32 values a buffer holds.
    fn buffer_len(&self, buffer: &Self::Buffer) -> usize;

    /// Waits until all submitted work is done (for benchmarks).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    /// The largest squared row norm this backend takes for a metric without normalization
    /// (`None`: no limit). The f32 backends compute distances in f32, so rows beyond
    /// [`F32_MAX_SQUARED_NORM`] would give infinite distances and silently wrong losses; the
    /// host paths ([`Backend::loss`], [`Backend::pairwise`], [`Backend::knn`]) refuse them
    /// (see [`crate::check_rows_range`]). The device paths cannot read their data cheaply and
    /// do not check.
    fn max_squared_norm(&self) -> Option<f64> {
        Some(F32_MAX_SQUARED_NORM)
    }

    /// The most f32 values one buffer of this backend may hold (unbounded by default). The host
    /// [`Backend::pairwise`] matrix is computed in blocks of query rows that each fit.
    fn max_buffer_values(&self) -> usize {
        usize::MAX
    }

    /// Computes `loss` on device-resident inputs. Writes dL/dX (N x D) into `grad` and, when given,
    /// dL/dC (K x D) into `center_grad`, overwriting their contents. Returns the loss and counts.
    ///
    /// The device path checks shapes and labels but cannot cheaply check finiteness of device data.
    fn loss_on_device(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, Self::Buffer>,
        grad: &mut Self::Buffer,
        center_grad: Option<&mut Self::Buffer>,
    ) -> Result<LossStats>;

    /// Writes the `nq x nr` distance / similarity matrix between query rows and reference rows
    /// (`reference = None` means the queries themselves) into `out`.
    fn pairwise_on_device(
        &self,
        metric: Metric,
        query: &Self::Buffer,
        nq: usize,
        reference: Option<(&Self::Buffer, usize)>,
        d: usize,
        out: &mut Self::Buffer,
    ) -> Result<()>;

    /// The `k` nearest `reference` rows of every query row (`reference = None`: the queries
    /// themselves, each query's own row excluded). `1 <= k <=` the number of candidates.
    ///
    /// The default compares blocks of query rows through [`Backend::pairwise_on_device`] and
    /// selects on the host, so it never holds more than one block of the distance matrix; GPU
    /// backends override it with a fused distance + top-k kernel that never writes the matrix.
    fn knn_on_device(
        &self,
        metric: Metric,
        query: &Self::Buffer,
        nq: usize,
        reference: Option<(&Self::Buffer, usize)>,
        d: usize,
        k: usize,
    ) -> Result<Neighbours> {
        knn_blocked(self, metric, query, nq, reference, d, k)
    }

    /// Copies `len` values from `src[src_offset..]` to `dst[dst_offset..]` (for example batch
    /// rows into a cross-batch memory). The default goes through the host; backends override it
    /// with a device copy.
    fn copy_values(
        &self,
        src: &Self::Buffer,
        src_offset: usize,
        dst: &mut Self::Buffer,
        dst_offset: usize,
        len: usize,
    ) -> Result<()> {
        check_copy(
            self.buffer_len(src),
            src_offset,
            self.buffer_len(dst),
            dst_offset,
            len,
        )?;
        let s = self.download(src)?;
        let mut t = self.download(dst)?;
        t[dst_offset..dst_offset + len].copy_from_slice(&s[src_offset..src_offset + len]);
        *dst = self.upload(&t)?;
        Ok(())
    }

    /// Host convenience: validates `input`, computes the loss and returns the gradients.
    fn loss(&self, loss: &Loss, input: &LossInput<'_>) -> Result<LossOutput> {
        loss.validate_input(input)?;
        check_loss_range(self.max_squared_norm(), loss.metric(), input)?;
        let mut up = UploadedInput::new(self, input)?;
        let stats = up.run(self, loss, input)?;
        let (grad, center_grad) = up.download_grads(self)?;
        Ok(LossOutput {
            stats,
            grad,
            center_grad,
        })
    }

    /// Host convenience: the `k` nearest reference rows of each query row (see
    /// [`Backend::knn_on_device`]).
    fn knn(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
        k: usize,
    ) -> Result<Neighbours> {
        check_query_rows(self.max_squared_norm(), metric, query, reference)?;
        let q = self.upload(query.data())?;
        let r = reference.map(|r| self.upload(r.data())).transpose()?;
        let nr = reference.map(|r| r.rows());
        self.knn_on_device(
            metric,
            &q,
            query.rows(),
            r.as_ref().zip(nr),
            query.cols(),
            k,
        )
    }

    /// Host convenience: the `nq x nr` matrix between `query` and `reference` (or `query` itself),
    /// in blocks of query rows when it exceeds [`Backend::max_buffer_values`].
    fn pairwise(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
    ) -> Result<Vec<f32>> {
        check_query_rows(self.max_squared_norm(), metric, query, reference)?;
        crate::pairwise_blocks::pairwise_in_blocks(self, metric, query, reference)
    }
}

/// The object-safe, host-only face of a [`Backend`], for code that picks a backend at run time
/// (the CLI, the equivalence tests). Every [`Backend`] is one.
pub trait HostBackend {
    /// See [`Backend::name`].
    fn backend_name(&self) -> String;
    /// See [`Backend::loss`].
    fn host_loss(&self, loss: &Loss, input: &LossInput<'_>) -> Result<LossOutput>;
    /// See [`Backend::pairwise`].
    fn host_pairwise(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
    ) -> Result<Vec<f32>>;
    /// See [`Backend::knn`].
    fn host_knn(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
        k: usize,
    ) -> Result<Neighbours>;
    /// See [`Backend::synchronize`].
    fn host_synchronize(&self) -> Result<()>;
    /// See [`time_on_device`]. Every [`Backend`] has it; other implementors report
    /// `Unavailable`.
    fn host_time_on_device(
        &self,
        op: DeviceOp<'_>,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>> {
        let _ = (op, warmup, reps);
        Err(MarginError::unavailable(format!(
            "{} has no device path to time",
            self.backend_name()
        )))
    }
}

impl<T: Backend> HostBackend for T {
    fn backend_name(&self) -> String {
        self.name()
    }
    fn host_loss(&self, loss: &Loss, input: &LossInput<'_>) -> Result<LossOutput> {
        self.loss(loss, input)
    }
    fn host_pairwise(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
    ) -> Result<Vec<f32>> {
        self.pairwise(metric, query, reference)
    }
    fn host_knn(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
        k: usize,
    ) -> Result<Neighbours> {
        self.knn(metric, query, reference, k)
    }
    fn host_synchronize(&self) -> Result<()> {
        self.synchronize()
    }
    fn host_time_on_device(
        &self,
        op: DeviceOp<'_>,
        warmup: usize,
        reps: usize,
    ) -> Result<Vec<f64>> {
        time_on_device(self, op, warmup, reps)
    }
}

/// The default [`Backend::knn_on_device`]: blocks of query rows through
/// [`Backend::pairwise_on_device`] (at most [`crate::retrieval::BLOCK_VALUES`] values at a time),
/// selection on the host. Fused kernels fall back to it for a `k` they do not handle.
pub fn knn_blocked<B: Backend + ?Sized>(
    backend: &B,
    metric: Metric,
    query: &B::Buffer,
    nq: usize,
    reference: Option<(&B::Buffer, usize)>,
    d: usize,
    k: usize,
) -> Result<Neighbours> {
    check_knn(nq, reference.map(|r| r.1), d, k)?;
    let q = backend.download(query)?;
    let refs = reference.unwrap_or((query, nq));
    let nr = refs.1;
    let block = crate::retrieval::default_block_rows(nr);
    let mut out = Neighbours {
        k,
        indices: Vec::with_capacity(nq * k),
        scores: Vec::with_capacity(nq * k),
    };
    let mut start = 0;
    while start < nq {
        let end = start.saturating_add(block).min(nq);
        let qb = backend.upload(&q[start * d..end * d])?;
        let mut mat = backend.alloc_zeros((end - start) * nr)?;
        backend.pairwise_on_device(metric, &qb, end - start, Some(refs), d, &mut mat)?;
        let mat = backend.download(&mat)?;
        for (offset, row) in mat.chunks_exact(nr).enumerate() {
            let own = reference.is_none().then_some(start + offset);
            crate::retrieval::top_k_row(row, own, metric.is_similarity(), k, &mut out);
        }
        start = end;
    }
    Ok(out)
}

/// Checks the shapes of a k-nearest-neighbour request: `1 <= k <=` candidates per query
/// (`nr`, or `nq - 1` when the queries are their own references).
pub fn check_knn(nq: usize, nr: Option<usize>, d: usize, k: usize) -> Result<()> {
    if nq == 0 || d == 0 || nr == Some(0) {
        return Err(MarginError::input(format!(
            "k-nearest neighbours need non-empty inputs, got {nq} queries, {} references, width {d}",
            nr.unwrap_or(nq)
        )));
    }
    let candidates = nr.unwrap_or(nq - 1);
    if candidates == 0 {
        return Err(MarginError::input(
            "k-nearest neighbours of the rows among themselves need at least 2 rows, got 1",
        ));
    }
    if k == 0 || k > candidates {
        return Err(MarginError::input(format!(
            "k = {k} must be in 1..={candidates} (the candidates per query)"
        )));
    }
    Ok(())
}

/// Checks that a copy of `len` values stays inside both buffers.
pub fn check_copy(
    src_len: usize,
    src_offset: usize,
    dst_len: usize,
    dst_offset: usize,
    len: usize,
) -> Result<()> {
    let fits = |off: usize, total: usize| off.checked_add(len).is_some_and(|end| end <= total);
    if !fits(src_offset, src_len) || !fits(dst_offset, dst_len) {
        return Err(MarginError::input(format!(
            "copy of {len} values from offset {src_offset} of {src_len} to offset {dst_offset} \
             of {dst_len} leaves a buffer"
        )));
    }
    Ok(())
}

/// Checks a device input's shapes against its buffers; backends call this first in
/// [`Backend::loss_on_device`].
pub fn check_device_input<B: Backend + ?Sized>(
    backend: &B,
    loss: &Loss,
    input: &DeviceLossInput<'_, B::Buffer>,
    grad: &B::Buffer,
    center_grad: Option<&B::Buffer>,
) -> Result<()> {
    loss.validate()?;
    let (n, d) = (input.n, input.d);
    if n == 0 || d == 0 {
        return Err(MarginError::input(format!(
            "embeddings must be at least 1 x 1, got {n} x {d}"
        )));
    }
    let need = n * d;
    if backend.buffer_len(input.embeddings) < need {
        return Err(MarginError::input(format!(
            "embedding buffer holds {} values, expected {n} x {d}",
            backend.buffer_len(input.embeddings)
        )));
    }
    if backend.buffer_len(grad) < need {
        return Err(MarginError::input(format!(
            "gradient buffer holds {} values, expected {n} x {d}",
            backend.buffer_len(grad)
        )));
    }
    if input.labels.len() != n {
        return Err(MarginError::input(format!(
            "label count {} does not match the {n} embedding rows",
            input.labels.len()
        )));
    }
    if let Some(r) = input.reference {
        if !loss.supports_reference() {
            return Err(loss.reference_unsupported());
        }
        check_reference(input.labels, d, r.m, d, r.labels, r.self_index)?;
        if backend.buffer_len(r.embeddings) < r.m * d {
            return Err(MarginError::input(format!(
                "reference buffer holds {} values, expected {} x {d}",
                backend.buffer_len(r.embeddings),
                r.m
            )));
        }
    }
    match (loss.needs_centers(), input.centers) {
        (true, None) => Err(MarginError::input(format!(
            "{} needs centers; none were given",
            loss.kind()
        ))),
        (false, Some(_)) => Err(MarginError::input(format!(
            "{} takes no centers",
            loss.kind()
        ))),
        (false, None) => Ok(()),
        (true, Some((c, k))) => {
            if k < loss.min_centers() {
                return Err(MarginError::input(format!(
                    "{} needs at least {} centers, got {k}",
                    loss.kind(),
                    loss.min_centers()
                )));
            }
            if backend.buffer_len(c) < k * d {
                return Err(MarginError::input(format!(
                    "center buffer holds {} values, expected {k} x {d}",
                    backend.buffer_len(c)
                )));
            }
            if let Some(g) = center_grad
                && backend.buffer_len(g) < k * d
            {
                return Err(MarginError::input(format!(
                    "center gradient buffer holds {} values, expected {k} x {d}",
                    backend.buffer_len(g)
                )));
            }
            match input
                .labels
                .iter()
                .position(|&l| l < 0 || l as u64 >= k as u64)
            {
                Some(i) => Err(MarginError::input(format!(
                    "label {} at row {i} is outside 0..{k} (the number of centers)",
                    input.labels[i]
                ))),
                None => Ok(()),
            }
        }
    }
}
