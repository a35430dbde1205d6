//! Picking a backend by name at run time, and describing every backend for `margin devices`.
//! A backend that cannot run here is an error value naming why, never a panic.

use crate::args::BackendChoice;
use crate::error::CliError;
use margin_core::HostBackend;
use margin_cpu::{CpuBackend, ReferenceBackend};

/// One line of `margin devices`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceReport {
    /// Backend name as given to `--backend`.
    pub backend: &'static str,
    /// Whether it can run here.
    pub available: bool,
    /// The device it would use, or why it cannot run.
    pub detail: String,
}

/// Builds the backend the user asked for.
pub fn select(choice: BackendChoice) -> Result<Box<dyn HostBackend>, CliError> {
    select_with_budget(choice, None)
}

/// [`select`] with `--stream-budget-mib`: the chunk buffers of the GPU backends' streamed passes
/// (`with_stream_budget`), or the CPU backend's working-memory budget, in MiB. `None` keeps each
/// backend's default.
pub fn select_with_budget(
    choice: BackendChoice,
    budget_mib: Option<u64>,
) -> Result<Box<dyn HostBackend>, CliError> {
    let bytes = budget_mib.map(|mib| mib.saturating_mul(1 << 20));
    match choice {
        BackendChoice::Cpu => Ok(Box::new(cpu_backend(bytes))),
        BackendChoice::Reference => Ok(Box::new(ReferenceBackend)),
        BackendChoice::Wgpu => wgpu_backend(bytes).map_err(CliError::from),
        BackendChoice::Cuda => cuda_backend(bytes).map_err(CliError::from),
        BackendChoice::Auto => Ok(cuda_backend(bytes)
            .or_else(|_| wgpu_hardware_backend(bytes))
            .unwrap_or_else(|_| Box::new(cpu_backend(bytes)))),
    }
}

/// Bytes as `usize`, saturating on 32-bit targets.
fn usize_bytes(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

fn cpu_backend(bytes: Option<u64>) -> CpuBackend {
    bytes.map_or_else(CpuBackend::new, |b| {
        CpuBackend::with_memory_budget(usize_bytes(b))
    })
}

fn with_wgpu_budget(b: margin_wgpu::WgpuBackend, bytes: Option<u64>) -> Box<dyn HostBackend> {
    match bytes {
        Some(bytes) => Box::new(b.with_stream_budget(bytes)),
        None => Box::new(b),
    }
}

/// `--backend wgpu`: the adapter named by `MARGIN_WGPU_ADAPTER`, else the best hardware adapter,
/// else lavapipe (a software adapter is used only when wgpu is asked for explicitly).
fn wgpu_backend(bytes: Option<u64>) -> margin_core::Result<Box<dyn HostBackend>> {
    wgpu_hardware_backend(bytes).or_else(|hw_err| {
        match margin_wgpu::WgpuBackend::with_adapter("llvmpipe") {
            Ok(b) => Ok(with_wgpu_budget(b, bytes)),
            Err(_) => Err(hw_err),
        }
    })
}

/// `MARGIN_WGPU_ADAPTER` when set (any adapter, by name), else the best hardware adapter.
fn wgpu_hardware_backend(bytes: Option<u64>) -> margin_core::Result<Box<dyn HostBackend>> {
    let backend = match std::env::var("MARGIN_WGPU_ADAPTER") {
        Ok(name) => margin_wgpu::WgpuBackend::with_adapter(&name)?,
        Err(_) => margin_wgpu::WgpuBackend::new()?,
    };
    Ok(with_wgpu_budget(backend, bytes))
}

fn cuda_backend(bytes: Option<u64>) -> margin_core::Result<Box<dyn HostBackend>> {
    let backend = margin_cuda::CudaBackend::new(0)?;
    Ok(match bytes {
        Some(bytes) => Box::new(backend.with_stream_budget(usize_bytes(bytes))),
        None => Box::new(backend),
    })
}

/// Every backend, available or not, with the reason.
pub fn report() -> Vec<DeviceReport> {
    let mut out = vec![
        DeviceReport {
            backend: "cpu",
            available: true,
            detail: format!(
                "fast f32 CPU backend, {} threads",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
        },
        DeviceReport {
            backend: "reference",
            available: true,
            detail: "float64 reference (slow, the oracle)".into(),
        },
    ];
    let adapters = margin_wgpu::list_adapters();
    if adapters.is_empty() {
        out.push(DeviceReport {
            backend: "wgpu",
            available: false,
            detail: "no Vulkan, Metal or DX12 adapter found".into(),
        });
    }
    for a in adapters {
        out.push(DeviceReport {
            backend: "wgpu",
            available: true,
            detail: a.to_string(),
        });
    }
    out.push(match margin_cuda::availability() {
        Ok(detail) => DeviceReport {
            backend: "cuda",
            available: true,
            detail,
        },
        Err(e) => DeviceReport {
            backend: "cuda",
            available: false,
            detail: e.to_string(),
        },
    });
    out
}
