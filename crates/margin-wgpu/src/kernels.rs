//! The compiled compute pipelines. Every kernel file is `common.wgsl` + the kernel's own file;
//! its bind group layout is derived from the parsed module (binding 0 the uniform parameter block,
//! then storage buffers, read-only or read-write as the WGSL declares them), so the explicit
//! layouts cannot drift from the shaders.

use margin_core::{MarginError, Result};

/// The shared WGSL prelude.
pub const COMMON: &str = include_str!("../../../shaders/wgsl/common.wgsl");

/// Every kernel file, by name (without the prelude), for the naga validation tests.
pub const SOURCES: &[(&str, &str)] = &[
    (
        "normalize",
        include_str!("../../../shaders/wgsl/normalize.wgsl"),
    ),
    (
        "normalize_backward",
        include_str!("../../../shaders/wgsl/normalize_backward.wgsl"),
    ),
    ("gather", include_str!("../../../shaders/wgsl/gather.wgsl")),
    (
        "pairwise",
        include_str!("../../../shaders/wgsl/pairwise.wgsl"),
    ),
    ("chain", include_str!("../../../shaders/wgsl/chain.wgsl")),
    ("reduce", include_str!("../../../shaders/wgsl/reduce.wgsl")),
    ("matmul", include_str!("../../../shaders/wgsl/matmul.wgsl")),
    ("sort", include_str!("../../../shaders/wgsl/sort.wgsl")),
    ("scan", include_str!("../../../shaders/wgsl/scan.wgsl")),
    (
        "contrastive",
        include_str!("../../../shaders/wgsl/contrastive.wgsl"),
    ),
    (
        "triplet_sorted",
        include_str!("../../../shaders/wgsl/triplet_sorted.wgsl"),
    ),
    (
        "triplet_sorted_local",
        include_str!("../../../shaders/wgsl/triplet_sorted_local.wgsl"),
    ),
    (
        "triplet_smooth",
        include_str!("../../../shaders/wgsl/triplet_smooth.wgsl"),
    ),
    (
        "triplet_hard",
        include_str!("../../../shaders/wgsl/triplet_hard.wgsl"),
    ),
    (
        "triplet_center",
        include_str!("../../../shaders/wgsl/triplet_center.wgsl"),
    ),
    (
        "proxy_softmax",
        include_str!("../../../shaders/wgsl/proxy_softmax.wgsl"),
    ),
    ("npair", include_str!("../../../shaders/wgsl/npair.wgsl")),
    (
        "lifted_lse",
        include_str!("../../../shaders/wgsl/lifted_lse.wgsl"),
    ),
    ("lifted", include_str!("../../../shaders/wgsl/lifted.wgsl")),
    (
        "quad_keys",
        include_str!("../../../shaders/wgsl/quad_keys.wgsl"),
    ),
    (
        "quad_pairs",
        include_str!("../../../shaders/wgsl/quad_pairs.wgsl"),
    ),
    (
        "split_lse",
        include_str!("../../../shaders/wgsl/split_lse.wgsl"),
    ),
    ("ntxent", include_str!("../../../shaders/wgsl/ntxent.wgsl")),
    ("supcon", include_str!("../../../shaders/wgsl/supcon.wgsl")),
    (
        "quad_hard",
        include_str!("../../../shaders/wgsl/quad_hard.wgsl"),
    ),
    (
        "scatter",
        include_str!("../../../shaders/wgsl/scatter.wgsl"),
    ),
    ("knn", include_str!("../../../shaders/wgsl/knn.wgsl")),
];

/// The full source of kernel `name`: the prelude followed by the kernel file.
pub fn full_source(name: &str) -> Option<String> {
    SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, src)| format!("{COMMON}\n{src}"))
}

/// One compute pipeline with its bind group layout.
#[derive(Debug)]
pub struct Kernel {
    pub(crate) name: &'static str,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    /// Number of storage bindings (1..=storage, after the uniform at 0).
    pub(crate) storage: usize,
}

/// Longest padded row triplet_sorted_local.wgsl sorts in workgroup memory (`LOCAL_LEN` there).
pub const LOCAL_SORT_LEN: usize = 1024;

/// Which variant of the matrix-product and sort kernels to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tiling {
    /// Tiles through workgroup memory (GPUs).
    Workgroup,
    /// Direct reads, no barriers (CPU adapters such as lavapipe, where barriers are costly).
    Direct,
}

/// Every pipeline margin-wgpu dispatches, built once per device.
#[derive(Debug)]
pub struct Kernels {
    pub normalize: Kernel,
    pub normalize_backward: Kernel,
    pub gather: Kernel,
    pub pairwise: Kernel,
    pub chain_square: Kernel,
    pub chain_cross: Kernel,
    pub row_sums: Kernel,
    pub col_sums: Kernel,
    pub matmul: Kernel,
    pub sort: Kernel,
    pub contrastive: Kernel,
    pub triplet_sorted: Kernel,
    /// The workgroup-memory variant, for rows of at most [`LOCAL_SORT_LEN`] (GPU adapters only).
    pub triplet_sorted_local: Option<Kernel>,
    pub triplet_smooth: Kernel,
    pub triplet_hard: Kernel,
    pub triplet_center: Kernel,
    /// Proxy-nca, normalized-softmax and cosface (one log-sum-exp per sample over the centers).
    pub proxy_softmax: Kernel,
    pub npair: Kernel,
    pub lifted_lse: Kernel,
    pub lifted: Kernel,
    /// lifted.wgsl's pass over column k of a reference set, before the in-place `lifted`.
    pub lifted_alias: Kernel,
    pub quad_keys: Kernel,
    pub quad_pairs: Kernel,
    /// Exclusive prefix sums of u32 (the quadruplet's histograms).
    pub scan: Kernel,
    /// Multi-similarity, generalized lifted structure and circle (two row log-sum-exps).
    pub split_lse: Kernel,
    pub ntxent: Kernel,
    pub supcon: Kernel,
    pub quad_hard: Kernel,
    pub scatter: Kernel,
}

impl Kernels {
    /// Compiles every kernel on `device`.
    pub fn build(device: &wgpu::Device, tiling: Tiling) -> Result<Self> {
        let k = |file: &'static str, entry: &'static str| build(device, file, entry);
        let product = match tiling {
            Tiling::Workgroup => "main",
            Tiling::Direct => "direct",
        };
        Ok(Self {
            normalize: k("normalize", "main")?,
            normalize_backward: k("normalize_backward", "main")?,
            gather: k("gather", "main")?,
            pairwise: k("pairwise", product)?,
            chain_square: k("chain", "square")?,
            chain_cross: k("chain", "cross")?,
            row_sums: k("reduce", "row_sums")?,
            col_sums: k("reduce", "col_sums")?,
            matmul: k("matmul", product)?,
            sort: k("sort", "main")?,
            contrastive: k("contrastive", "main")?,
            triplet_sorted: k("triplet_sorted", "main")?,
            triplet_sorted_local: match tiling {
                Tiling::Workgroup => Some(k("triplet_sorted_local", "main")?),
                Tiling::Direct => None,
            },
            triplet_smooth: k("triplet_smooth", "main")?,
            triplet_hard: k("triplet_hard", "main")?,
            triplet_center: k("triplet_center", "main")?,
            proxy_softmax: k("proxy_softmax", "main")?,
            npair: k("npair", "main")?,
            lifted_lse: k("lifted_lse", "main")?,
            lifted: k("lifted", "main")?,
            lifted_alias: k("lifted", "alias_sums")?,
            quad_keys: k("quad_keys", "main")?,
            quad_pairs: k("quad_pairs", "main")?,
            scan: k("scan", "main")?,
            split_lse: k("split_lse", "main")?,
            ntxent: k("ntxent", "main")?,
            supcon: k("supcon", "main")?,
            quad_hard: k("quad_hard", "main")?,
            scatter: k("scatter", "main")?,
        })
    }
}

/// The bind group layout entries of a WGSL module, read from its global variables.
fn layout_entries(name: &str, source: &str) -> Result<(Vec<wgpu::BindGroupLayoutEntry>, usize)> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| {
        MarginError::device(format!(
            "shader {name} does not parse: {}",
            e.emit_to_string(source)
        ))
    })?;
    let mut entries = Vec::new();
    let mut storage = 0;
    for (_, var) in module.global_variables.iter() {
        let Some(rb) = &var.binding else { continue };
        let ty = match var.space {
            naga::AddressSpace::Uniform => wgpu::BufferBindingType::Uniform,
            naga::AddressSpace::Storage { access } => {
                storage += 1;
                wgpu::BufferBindingType::Storage {
                    read_only: !access.contains(naga::StorageAccess::STORE),
                }
            }
            _ => continue,
        };
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: rb.binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    entries.sort_by_key(|e| e.binding);
    Ok((entries, storage))
}

fn build(device: &wgpu::Device, file: &'static str, entry: &'static str) -> Result<Kernel> {
    let source =
        full_source(file).ok_or_else(|| MarginError::device(format!("no shader named {file}")))?;
    let (entries, storage) = layout_entries(file, &source)?;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(file),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(file),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(file),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    Ok(Kernel {
        name: file,
        pipeline,
        layout,
        storage,
    })
}
