//! [`WgpuBackend`]: the [`Backend`] implementation over one wgpu device.

use crate::adapter;
use crate::context::{Gpu, STORAGE};
use crate::kernels::Tiling;
use crate::losses;
use crate::stages::{self, PairMode};
use margin_core::{
    Backend, DeviceLossInput, Loss, LossStats, MarginError, Metric, Result, check_device_input,
};

/// The WGSL compute-shader backend. Holds one device context (pipelines, scratch buffers) that is
/// reused across calls. Buffers are f32 storage buffers (`STORAGE | COPY_SRC | COPY_DST`).
#[derive(Debug)]
pub struct WgpuBackend {
    pub(crate) gpu: Gpu,
    /// The fused k-nearest-neighbour pipelines, built on first use (crate::knn).
    pub(crate) knn: crate::knn::KnnCache,
    name: String,
}

impl WgpuBackend {
    /// The best hardware adapter (discrete, then integrated, then virtual). Software adapters are
    /// refused with [`MarginError::Unavailable`]; ask for one with [`WgpuBackend::with_adapter`].
    pub fn new() -> Result<Self> {
        Self::from_adapter(adapter::pick_hardware()?, None)
    }

    /// The first adapter whose name contains `name_substring` (case-insensitive), software
    /// adapters included (e.g. "llvmpipe").
    pub fn with_adapter(name_substring: &str) -> Result<Self> {
        Self::from_adapter(adapter::pick_named(name_substring)?, None)
    }

    /// Like [`WgpuBackend::with_adapter`], forcing the matrix-product variant (by default CPU
    /// adapters get [`Tiling::Direct`] and GPUs [`Tiling::Workgroup`]); lets tests on lavapipe
    /// cover the GPU variant.
    pub fn with_adapter_tiling(name_substring: &str, tiling: Tiling) -> Result<Self> {
        Self::from_adapter(adapter::pick_named(name_substring)?, Some(tiling))
    }

    fn from_adapter(a: wgpu::Adapter, tiling: Option<Tiling>) -> Result<Self> {
        let info = a.get_info();
        let gpu = Gpu::new(&a, tiling)?;
        Ok(Self {
            gpu,
            knn: Default::default(),
            name: format!("wgpu ({}, {:?})", info.name, info.backend),
        })
    }

    /// Caps the largest buffer this backend binds at `bytes` (never above the adapter's own
    /// limit). Work beyond it is split into blocks where the backend can (the host
    /// [`Backend::pairwise`] matrix) and refused with `OutOfMemory` elsewhere: a way to bound
    /// memory, and to test the blocked paths on an adapter with a large limit.
    pub fn with_binding_cap(mut self, bytes: u64) -> Self {
        let limits = &mut self.gpu.limits;
        limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(bytes);
        self
    }

    /// Caps the chunk buffers of the streamed passes (default 256 MiB): the rows per chunk of
    /// the triplet sorts, and the size up to which the batch-all quadruplet keeps its weights in
    /// a second matrix (one pass) rather than in place over the distances (chunks of rows, one
    /// more pass). Lower it to bound memory; the tests use it to cover the chunked paths.
    pub fn with_stream_budget(mut self, bytes: u64) -> Self {
        self.gpu.stream_bytes = bytes.max(4);
        self
    }

    /// The device buffers this backend keeps between calls for reuse (scratch matrices and
    /// vectors), by name, with their sizes in bytes: what a loss call leaves allocated. A loss
    /// over N rows keeps one N x N matrix, "e" (the SPEC's Cost section), with the exceptions
    /// the crate documentation lists.
    pub fn scratch_buffers(&self) -> Vec<(&'static str, u64)> {
        self.gpu.scratch_sizes()
    }

    /// The adapter's device type, e.g. "Cpu" for llvmpipe.
    pub fn device_type(&self) -> String {
        format!("{:?}", self.gpu.device.adapter_info().device_type)
    }

    fn len_of(&self, b: &wgpu::Buffer) -> usize {
        (b.size() / 4) as usize
    }
}

impl Backend for WgpuBackend {
    type Buffer = wgpu::Buffer;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn upload(&self, data: &[f32]) -> Result<wgpu::Buffer> {
        self.gpu.scoped(|| {
            if data.is_empty() {
                return Ok(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("margin"),
                    size: 0,
                    usage: STORAGE,
                    mapped_at_creation: false,
                }));
            }
            self.gpu.upload("margin", data)
        })
    }

    fn alloc_zeros(&self, len: usize) -> Result<wgpu::Buffer> {
        let bytes = len as u64 * 4;
        self.gpu.check_size("the buffer", bytes)?;
        self.gpu.scoped(|| {
            Ok(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("margin"),
                size: bytes,
                usage: STORAGE,
                mapped_at_creation: false,
            }))
        })
    }

    fn download(&self, buffer: &wgpu::Buffer) -> Result<Vec<f32>> {
        self.gpu
            .scoped(|| self.gpu.read_f32(buffer, self.len_of(buffer)))
    }

    fn buffer_len(&self, buffer: &wgpu::Buffer) -> usize {
        self.len_of(buffer)
    }

    fn synchronize(&self) -> Result<()> {
        self.gpu.wait()
    }

    fn loss_on_device(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, wgpu::Buffer>,
        grad: &mut wgpu::Buffer,
        center_grad: Option<&mut wgpu::Buffer>,
    ) -> Result<LossStats> {
        check_device_input(self, loss, &input, grad, center_grad.as_deref())?;
        let (n, d) = (input.n, input.d);
        let gpu = &self.gpu;
        gpu.scoped(|| match loss {
            // Triplet-center, proxy-anchor and the proxy-softmax family (proxy-nca,
            // normalized-softmax, cosface).
            _ if loss.needs_centers() => {
                let centers = input
                    .centers
                    .ok_or_else(|| MarginError::input(format!("{} needs centers", loss.kind())))?;
                // The centers are these losses' reference (check_device_input refuses a reference
                // set for them); refused here as well, so that one is never silently ignored.
                if input.reference.is_some() {
                    return Err(loss.reference_unsupported());
                }
                let run = match loss {
                    Loss::TripletCenter(_) => losses::triplet_center_loss,
                    Loss::ProxyAnchor(_) => losses::proxy_anchor_loss,
                    _ => losses::proxy_softmax_loss,
                };
                run(
                    gpu,
                    loss,
                    input.embeddings,
                    n,
                    d,
                    input.labels,
                    centers,
                    grad,
                    center_grad.as_deref(),
                )
            }
            Loss::NPair(_) => {
                losses::npair_loss(gpu, loss, input.embeddings, n, d, input.labels, grad)
            }
            _ => losses::square_loss(
                gpu,
                loss,
                input.embeddings,
                n,
                d,
                input.labels,
                input.reference,
                grad,
            ),
        })
    }

    /// The fused distance + top-k kernel (`crate::knn`); `k` above its limit falls back to
    /// [`margin_core::knn_blocked`].
    fn knn_on_device(
        &self,
        metric: Metric,
        query: &wgpu::Buffer,
        nq: usize,
        reference: Option<(&wgpu::Buffer, usize)>,
        d: usize,
        k: usize,
    ) -> Result<margin_core::Neighbours> {
        self.fused_knn(metric, query, nq, reference, d, k)
    }

    /// A device-to-device copy (`crate::copy`).
    fn copy_values(
        &self,
        src: &wgpu::Buffer,
        src_offset: usize,
        dst: &mut wgpu::Buffer,
        dst_offset: usize,
        len: usize,
    ) -> Result<()> {
        crate::copy::copy_values(&self.gpu, src, src_offset, dst, dst_offset, len)
    }

    /// One binding: the host [`Backend::pairwise`] matrix beyond it (2 GiB on GPUs, 128 MiB on
    /// lavapipe) is computed in blocks of query rows that each fit.
    fn max_buffer_values(&self) -> usize {
        usize::try_from(self.gpu.max_binding() / 4).unwrap_or(usize::MAX)
    }

    fn pairwise_on_device(
        &self,
        metric: Metric,
        query: &wgpu::Buffer,
        nq: usize,
        reference: Option<(&wgpu::Buffer, usize)>,
        d: usize,
        out: &mut wgpu::Buffer,
    ) -> Result<()> {
        if nq == 0 || d == 0 {
            return Err(MarginError::input(format!(
                "query must be at least 1 x 1, got {nq} x {d}"
            )));
        }
        if self.len_of(query) < nq * d {
            return Err(MarginError::input(format!(
                "query buffer holds {} values, expected {nq} x {d}",
                self.len_of(query)
            )));
        }
        let nr = reference.map_or(nq, |(_, r)| r);
        if let Some((r, rows)) = reference {
            if rows == 0 {
                return Err(MarginError::input("reference has no rows"));
            }
            if self.len_of(r) < rows * d {
                return Err(MarginError::input(format!(
                    "reference buffer holds {} values, expected {rows} x {d}",
                    self.len_of(r)
                )));
            }
        }
        if self.len_of(out) < nq * nr {
            return Err(MarginError::input(format!(
                "output buffer holds {} values, expected {nq} x {nr}",
                self.len_of(out)
            )));
        }
        let gpu = &self.gpu;
        gpu.check_size("the distance matrix", (nq * nr) as u64 * 4)?;
        gpu.scoped(|| {
            let on = metric.normalizes();
            let mut b = gpu.batch();
            let q = stages::normalize(gpu, &mut b, (query, nq, d), on, stages::BATCH)?;
            let mode = PairMode::public(metric);
            let rows = (&q.h, &q.sq, nq);
            match reference {
                None => stages::pairwise(gpu, &mut b, rows, rows, d, mode, out)?,
                Some((r, m)) => {
                    let c = stages::normalize(gpu, &mut b, (r, m, d), on, stages::OTHER)?;
                    stages::pairwise(gpu, &mut b, rows, (&c.h, &c.sq, m), d, mode, out)?;
                }
            }
            b.submit();
            Ok(())
        })
    }
}
