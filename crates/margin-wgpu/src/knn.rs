//! Exact k-nearest neighbours with a fused distance + top-k kernel (shaders/wgsl/knn.wgsl): the
//! `nq x nr` matrix is never written, only `nq x k` indices and scores, so 100k x 100k fits.
//!
//! Two variants of the kernel: one keeps up to [`SMALL_K`] neighbours per query row in workgroup
//! memory (128-entry buffers), the other up to [`MAX_K`] (256-entry buffers). Query rows per
//! workgroup (16, 8 or 4) are chosen from the adapter's workgroup-memory limit. Like the product
//! kernels, GPUs run the entry point `main` (reference tiles staged in workgroup memory) and CPU
//! adapters `direct` (rows read directly, no staging barriers). A larger `k` falls back to
//! [`margin_core::knn_blocked`] (blocked pairwise + host selection).

use crate::WgpuBackend;
use crate::context::{Gpu, Groups, Params};
use crate::kernels::{COMMON, Kernel};
use crate::stages::{self, u32_of};
use margin_core::{Backend, MarginError, Metric, Neighbours, Result, check_knn, knn_blocked};
use std::cell::OnceCell;

/// The kernel source (without the prelude), with its default constants.
pub const SOURCE: &str = include_str!("../../../shaders/wgsl/knn.wgsl");

/// Largest `k` of the small variant.
pub const SMALL_K: usize = 32;

/// Largest `k` the fused kernel handles; a larger `k` goes through `knn_blocked`.
pub const MAX_K: usize = 128;

/// Reference rows per tile (`TR` in knn.wgsl).
const TR: usize = 64;

/// Distance evaluations per dispatch: bounds the time one dispatch runs (watchdogs).
const PER_DISPATCH: usize = 1 << 30;

/// One kernel variant: its pipeline and query rows per workgroup.
#[derive(Debug)]
struct Variant {
    kernel: Kernel,
    tq: usize,
}

/// The two variants, built on first use and kept by the backend.
#[derive(Debug)]
pub(crate) struct KnnPipelines {
    small: Variant,
    large: Variant,
}

/// The lazily built pipelines (the backend's one knn field).
#[derive(Debug, Default)]
pub(crate) struct KnnCache(OnceCell<KnnPipelines>);

impl KnnCache {
    fn get(&self, gpu: &Gpu) -> Result<&KnnPipelines> {
        if let Some(p) = self.0.get() {
            return Ok(p);
        }
        let built = gpu.scoped(|| KnnPipelines::build(gpu))?;
        Ok(self.0.get_or_init(|| built))
    }
}

/// The kernel source of a variant: the prelude, then knn.wgsl with TQ / KP / PB replaced.
pub fn variant_source(tq: usize, kp: usize, pb: usize) -> String {
    let body = SOURCE
        .replace("const TQ: u32 = 16u;", &format!("const TQ: u32 = {tq}u;"))
        .replace("const KP: u32 = 32u;", &format!("const KP: u32 = {kp}u;"))
        .replace("const PB: u32 = 128u;", &format!("const PB: u32 = {pb}u;"));
    format!("{COMMON}\n{body}")
}

/// Workgroup bytes of a variant, counting the prelude's reduction arrays (3 KiB) to be safe.
pub fn workgroup_bytes(tq: usize, pb: usize) -> usize {
    tq * pb * 8 + (tq + TR) * 17 * 4 + tq * 12 + 4 + 3072
}

/// The largest rows-per-workgroup in {16, 8, 4} whose buffers fit `limit` bytes.
fn rows_for(limit: usize, pb: usize) -> usize {
    [16, 8, 4]
        .into_iter()
        .find(|&tq| workgroup_bytes(tq, pb) <= limit)
        .unwrap_or(4)
}

impl KnnPipelines {
    fn build(gpu: &Gpu) -> Result<Self> {
        let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
        // The same choice as the product kernels: workgroup-memory tiles on GPUs, direct reads
        // on CPU adapters (the local sort kernel exists exactly for the tiled variant).
        let entry = if gpu.kernels.triplet_sorted_local.is_some() {
            "main"
        } else {
            "direct"
        };
        let variant = |kp: usize, pb: usize| -> Result<Variant> {
            let tq = rows_for(limit, pb);
            let kernel = build_kernel(&gpu.device, &variant_source(tq, kp, pb), entry)?;
            Ok(Variant { kernel, tq })
        };
        Ok(Self {
            small: variant(SMALL_K, 128)?,
            large: variant(MAX_K, 256)?,
        })
    }
}

/// The pipeline of one variant: binding 0 the parameter block, 1-4 read-only inputs, 5-6 outputs.
fn build_kernel(device: &wgpu::Device, source: &str, entry: &'static str) -> Result<Kernel> {
    naga::front::wgsl::parse_str(source).map_err(|e| {
        MarginError::device(format!(
            "shader knn does not parse: {}",
            e.emit_to_string(source)
        ))
    })?;
    let slot = |binding: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let read = wgpu::BufferBindingType::Storage { read_only: true };
    let write = wgpu::BufferBindingType::Storage { read_only: false };
    let mut entries = vec![slot(0, wgpu::BufferBindingType::Uniform)];
    entries.extend((1..=4).map(|b| slot(b, read)));
    entries.extend((5..=6).map(|b| slot(b, write)));
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("knn"),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("knn"),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("knn"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("knn"),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    Ok(Kernel {
        name: "knn",
        pipeline,
        layout,
        storage: 6,
    })
}

/// knn.wgsl's `P.flags`.
fn mode(metric: Metric) -> u32 {
    match metric.distance {
        margin_core::Distance::Euclidean => 0,
        margin_core::Distance::SquaredEuclidean => 1,
        margin_core::Distance::Cosine | margin_core::Distance::Dot => 2,
    }
}

impl WgpuBackend {
    /// The `k` nearest `reference` rows of every query row (`None`: the queries themselves, each
    /// query's own row excluded), closest first, ties to the lower index, by the fused kernel.
    /// Scores are the values [`Backend::pairwise_on_device`] computes. A `k` above 128 (the
    /// on-chip list's size, `MAX_K`) falls back to [`knn_blocked`].
    pub fn fused_knn(
        &self,
        metric: Metric,
        query: &wgpu::Buffer,
        nq: usize,
        reference: Option<(&wgpu::Buffer, usize)>,
        d: usize,
        k: usize,
    ) -> Result<Neighbours> {
        check_knn(nq, reference.map(|r| r.1), d, k)?;
        check_len(self.buffer_len(query), nq, d, "query")?;
        if let Some((r, nr)) = reference {
            check_len(self.buffer_len(r), nr, d, "reference")?;
        }
        if k > MAX_K {
            return knn_blocked(self, metric, query, nq, reference, d, k);
        }
        let gpu = &self.gpu;
        let pipelines = self.knn.get(gpu)?;
        let variant = if k <= SMALL_K {
            &pipelines.small
        } else {
            &pipelines.large
        };
        let nr = reference.map_or(nq, |r| r.1);
        u32_of(nq * k, "queries x k")?;
        u32_of(nq.max(nr), "rows")?;
        gpu.scoped(|| {
            let on = metric.normalizes();
            let idx = gpu.scratch("knn_idx", nq * k)?;
            let val = gpu.scratch("knn_val", nq * k)?;
            let mut b = gpu.batch();
            let q = stages::normalize(
                gpu,
                &mut b,
                (query, nq, d),
                on,
                ["knn_qh", "knn_qn", "knn_qs"],
            )?;
            let refs = match reference {
                Some((r, rows)) => {
                    let names = ["knn_rh", "knn_rn", "knn_rs"];
                    Some(stages::normalize(gpu, &mut b, (r, rows, d), on, names)?)
                }
                None => None,
            };
            let (qh, qs) = (&q.h, &q.sq);
            let (rh, rs) = refs.as_ref().map_or((qh, qs), |r| (&r.h, &r.sq));
            let mut p = Params {
                n: u32_of(nq, "rows")?,
                m: u32_of(nr, "rows")?,
                d: u32_of(d, "width")?,
                k: u32_of(k, "k")?,
                flags: mode(metric),
                u6: u32::from(reference.is_none()),
                ..Default::default()
            };
            p.f[0] = f32::INFINITY;
            // Query rows per dispatch: a multiple of the workgroup's rows.
            let tq = variant.tq;
            let chunk = (PER_DISPATCH / nr.max(1) / tq).max(1) * tq;
            let mut start = 0;
            while start < nq {
                let rows = chunk.min(nq - start);
                p.off = u32_of(start, "rows")?;
                // Rows at or past P.n belong to the next dispatch.
                p.n = u32_of(start + rows, "rows")?;
                let groups = Groups::Linear(rows.div_ceil(tq) as u64);
                b.run(&variant.kernel, p, &[qh, rh, qs, rs, &idx, &val], groups)?;
                b.submit();
                b = gpu.batch();
                start += rows;
            }
            drop(b);
            let indices = gpu.read_u32(&idx, nq * k)?;
            let scores = gpu.read_f32(&val, nq * k)?;
            Ok(Neighbours { k, indices, scores })
        })
    }
}

fn check_len(len: usize, rows: usize, d: usize, what: &str) -> Result<()> {
    let need = rows
        .checked_mul(d)
        .ok_or_else(|| MarginError::input(format!("{what}: {rows} x {d} overflows")))?;
    if len < need {
        return Err(MarginError::input(format!(
            "{what} buffer holds {len} values, expected {rows} x {d}"
        )));
    }
    Ok(())
}
