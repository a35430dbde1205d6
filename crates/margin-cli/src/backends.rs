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
    match choice {
        BackendChoice::Cpu => Ok(Box::new(CpuBackend::new())),
        BackendChoice::Reference => Ok(Box::new(ReferenceBackend)),
        BackendChoice::Wgpu => wgpu_backend().map_err(CliError::from),
        BackendChoice::Cuda => cuda_backend().map_err(CliError::from),
        BackendChoice::Auto => Ok(cuda_backend()
            .or_else(|_| wgpu_hardware_backend())
            .unwrap_or_else(|_| Box::new(CpuBackend::new()))),
    }
}

/// `--backend wgpu`: the adapter named by `MARGIN_WGPU_ADAPTER`, else the best hardware adapter,
/// else lavapipe (a software adapter is used only when wgpu is asked for explicitly).
fn wgpu_backend() -> margin_core::Result<Box<dyn HostBackend>> {
    wgpu_hardware_backend().or_else(|hw_err| {
        match margin_wgpu::WgpuBackend::with_adapter("llvmpipe") {
            Ok(b) => Ok(Box::new(b) as Box<dyn HostBackend>),
            Err(_) => Err(hw_err),
        }
    })
}

/// `MARGIN_WGPU_ADAPTER` when set (any adapter, by name), else the best hardware adapter.
fn wgpu_hardware_backend() -> margin_core::Result<Box<dyn HostBackend>> {
    if let Ok(name) = std::env::var("MARGIN_WGPU_ADAPTER") {
        return margin_wgpu::WgpuBackend::with_adapter(&name).map(|b| Box::new(b) as _);
    }
    margin_wgpu::WgpuBackend::new().map(|b| Box::new(b) as _)
}

fn cuda_backend() -> margin_core::Result<Box<dyn HostBackend>> {
    margin_cuda::CudaBackend::new(0).map(|b| Box::new(b) as _)
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
