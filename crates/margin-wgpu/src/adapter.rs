//! Adapter discovery and choice, in code: only the Vulkan, Metal and DX12 backends are requested
//! (wgpu would otherwise fall back to GL silently), and `WGPU_ADAPTER_NAME` is never read (wgpu
//! panics when it matches nothing).

use margin_core::{MarginError, Result};
use std::fmt;

/// One adapter, as `margin devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.7, 256 bits)".
    pub name: String,
    /// "Vulkan", "Metal" or "Dx12".
    pub backend: String,
    /// "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" or "Other".
    pub device_type: String,
    /// The largest buffer a kernel can bind on it, in bytes (the storage-binding and buffer-size
    /// limits): losses up to an N x N (or N x M) f32 matrix of this size run in one piece, beyond
    /// it in slabs of rows.
    pub max_binding: u64,
}

impl AdapterSummary {
    /// The largest N whose N x N f32 matrix fits one binding: the last square batch that runs in
    /// one piece.
    pub fn max_square_rows(&self) -> u64 {
        (self.max_binding / 4).isqrt()
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}; binds {}: one piece up to N = {}, slabs beyond)",
            self.name,
            self.backend,
            self.device_type,
            crate::context::human_bytes(self.max_binding),
            self.max_square_rows()
        )
    }
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    desc.flags = wgpu::InstanceFlags::empty();
    wgpu::Instance::new(desc)
}

fn adapters() -> Vec<wgpu::Adapter> {
    let inst = instance();
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()))
}

fn summary(a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let limits = a.limits();
    AdapterSummary {
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        max_binding: limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size),
    }
}

/// Every adapter wgpu finds on the Vulkan, Metal and DX12 backends.
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters().iter().map(summary).collect()
}

/// Preference rank of a hardware adapter (lower is better); `None` for software ones.
fn hardware_rank(t: wgpu::DeviceType) -> Option<u8> {
    match t {
        wgpu::DeviceType::DiscreteGpu => Some(0),
        wgpu::DeviceType::IntegratedGpu => Some(1),
        wgpu::DeviceType::VirtualGpu => Some(2),
        wgpu::DeviceType::Other => Some(3),
        wgpu::DeviceType::Cpu => None,
    }
}

/// The best hardware adapter; software adapters are refused.
pub(crate) fn pick_hardware() -> Result<wgpu::Adapter> {
    let all = adapters();
    let software: Vec<String> = all
        .iter()
        .filter(|a| hardware_rank(a.get_info().device_type).is_none())
        .map(|a| summary(a).to_string())
        .collect();
    all.into_iter()
        .filter_map(|a| hardware_rank(a.get_info().device_type).map(|r| (r, a)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, a)| a)
        .ok_or_else(|| {
            if software.is_empty() {
                MarginError::unavailable(
                    "no wgpu adapter found (Vulkan, Metal and DX12 backends were searched)",
                )
            } else {
                MarginError::unavailable(format!(
                    "no hardware GPU adapter; software adapters found: {}; ask for one by name",
                    software.join(", ")
                ))
            }
        })
}

/// The first adapter whose name contains `needle` (case-insensitive), software included.
pub(crate) fn pick_named(needle: &str) -> Result<wgpu::Adapter> {
    let all = adapters();
    let want = needle.to_lowercase();
    let names: Vec<String> = all.iter().map(|a| summary(a).to_string()).collect();
    all.into_iter()
        .find(|a| a.get_info().name.to_lowercase().contains(&want))
        .ok_or_else(|| {
            MarginError::unavailable(format!(
                "no wgpu adapter name contains '{needle}'; found: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })
}
