//! The device context: device, queue, pipelines and reused scratch buffers, built once per
//! backend. Work is recorded into a [`Batch`] (one command encoder) and submitted at once; small
//! per-row results are read back with [`Gpu::read_f32`] / [`Gpu::read_u32`].

use crate::kernels::{Kernel, Kernels, Tiling};
use margin_core::{MarginError, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// The uniform parameter block of every kernel (`Params` in common.wgsl).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n: u32,
    pub m: u32,
    pub d: u32,
    pub k: u32,
    pub flags: u32,
    pub off: u32,
    pub u6: u32,
    /// Columns of the loss matrix (M with a reference set, else N) for the per-row weight kernels.
    pub cols: u32,
    pub f: [f32; 8],
    /// First row of the call held in E when E is a slab of rows (the quadruplet's term-2
    /// kernels, which index their tables by the call's rows), else 0.
    pub row0: u32,
    /// Pads the block to a multiple of 16 bytes (uniform layout).
    pub pad: [u32; 3],
}

/// How many workgroups a dispatch launches.
#[derive(Debug, Clone, Copy)]
pub enum Groups {
    /// A flat count, folded into two dimensions so none exceeds the per-dimension limit; kernels
    /// recover the flat index with `wg_index` and bound-check it.
    Linear(u64),
    /// An explicit 2-D grid (tiled kernels).
    Grid(u32, u32),
}

/// Usage of every buffer margin hands out or keeps.
pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Default [`Gpu::stream_budget`]: 256 MiB.
const STREAM_BUDGET: u64 = 256 << 20;

/// Device, queue, pipelines, scratch buffers.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub kernels: Kernels,
    pub limits: wgpu::Limits,
    /// Bytes of chunk buffers one streamed dispatch may use (see [`Gpu::stream_budget`]).
    pub stream_bytes: u64,
    scratch: RefCell<HashMap<&'static str, wgpu::Buffer>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("limits", &self.limits).finish()
    }
}

impl Gpu {
    /// Opens a device on `adapter` with the adapter's own limits (so large N fits) and compiles
    /// every kernel.
    pub fn new(adapter: &wgpu::Adapter, tiling: Option<Tiling>) -> Result<Self> {
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("margin"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| MarginError::unavailable(format!("cannot open the device: {e}")))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let scope = ErrorScopes::push(&device);
        let tiling = tiling.unwrap_or(if adapter.get_info().device_type == wgpu::DeviceType::Cpu {
            Tiling::Direct
        } else {
            Tiling::Workgroup
        });
        let kernels = Kernels::build(&device, tiling);
        scope.pop()?;
        let kernels = kernels?;
        Ok(Self {
            device,
            queue,
            kernels,
            limits,
            stream_bytes: STREAM_BUDGET,
            scratch: RefCell::new(HashMap::new()),
            uncaptured,
        })
    }

    /// The largest buffer a kernel can bind, in bytes.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Bytes of chunk buffers (per-anchor sort slots, rows of weights) a streamed pass may hold:
    /// the kernels that need O(rows x N) scratch process rows in chunks that fit it.
    pub fn stream_budget(&self) -> u64 {
        self.stream_bytes.min(self.max_binding())
    }

    /// Fails with `OutOfMemory` when `bytes` cannot be one bound buffer.
    pub fn check_size(&self, what: &str, bytes: u64) -> Result<()> {
        if bytes > self.max_binding() {
            return Err(MarginError::OutOfMemory(format!(
                "{what} needs {} in one buffer, but this adapter binds at most {}",
                human_bytes(bytes),
                human_bytes(self.max_binding())
            )));
        }
        Ok(())
    }

    /// A reused scratch buffer `name` of at least `len` f32 values (contents undefined).
    pub fn scratch(&self, name: &'static str, len: usize) -> Result<wgpu::Buffer> {
        let bytes = (len.max(4) as u64) * 4;
        self.check_size(name, bytes)?;
        let mut cache = self.scratch.borrow_mut();
        if let Some(b) = cache.get(name)
            && b.size() >= bytes
        {
            return Ok(b.clone());
        }
        cache.remove(name);
        let b = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes,
            usage: STORAGE,
            mapped_at_creation: false,
        });
        cache.insert(name, b.clone());
        Ok(b)
    }

    /// The reused scratch buffers held now, by name, with their sizes in bytes.
    pub fn scratch_sizes(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self
            .scratch
            .borrow()
            .iter()
            .map(|(&name, b)| (name, b.size()))
            .collect();
        v.sort_unstable();
        v
    }

    /// A new storage buffer holding `data` (any plain values).
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        self.check_size(label, bytes.len() as u64)?;
        if bytes.is_empty() {
            return Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 16,
                usage: STORAGE,
                mapped_at_creation: false,
            }));
        }
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: STORAGE,
            }))
    }

    /// Starts recording.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            gpu: self,
            encoder: self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }),
        }
    }

    /// Copies the first `len` values of `buffer` to the host (waits for all submitted work).
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| MarginError::device(format!("waiting for the device failed: {e}")))?;
        rx.recv()
            .map_err(|_| MarginError::device("buffer mapping was dropped"))?
            .map_err(|e| MarginError::device(format!("buffer mapping failed: {e}")))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| MarginError::device(format!("buffer mapping failed: {e}")))?;
        let out = view.to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// The first `len` f32 values of `buffer`.
    pub fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(buffer, len as u64 * 4)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The first `len` u32 values of `buffer`.
    pub fn read_u32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<u32>> {
        let bytes = self.read_bytes(buffer, len as u64 * 4)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Waits for all submitted work.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| MarginError::device(format!("waiting for the device failed: {e}")))
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns what they catch (and
    /// anything the uncaptured-error handler saw meanwhile) into a `MarginError`.
    pub fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let scope = ErrorScopes::push(&self.device);
        let out = f();
        let caught = scope.pop();
        let uncaptured = self
            .uncaptured
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let value = out?;
        caught?;
        if let Some(first) = uncaptured.into_iter().next() {
            return Err(MarginError::device(first));
        }
        Ok(value)
    }
}

/// A pair of error scopes (out-of-memory outside, validation inside).
struct ErrorScopes {
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
}

impl ErrorScopes {
    fn push(device: &wgpu::Device) -> Self {
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        Self { oom, validation }
    }

    fn pop(self) -> Result<()> {
        let validation = pollster::block_on(self.validation.pop());
        let oom = pollster::block_on(self.oom.pop());
        if let Some(e) = oom {
            return Err(MarginError::OutOfMemory(e.to_string()));
        }
        if let Some(e) = validation {
            return Err(MarginError::device(e.to_string()));
        }
        Ok(())
    }
}

/// A command encoder being recorded.
pub struct Batch<'a> {
    gpu: &'a Gpu,
    encoder: wgpu::CommandEncoder,
}

impl Batch<'_> {
    /// Records one dispatch of `kernel` with `params` and storage `buffers` (bindings 1..).
    pub fn run(
        &mut self,
        kernel: &Kernel,
        params: Params,
        buffers: &[&wgpu::Buffer],
        groups: Groups,
    ) -> Result<()> {
        if buffers.len() != kernel.storage {
            return Err(MarginError::device(format!(
                "kernel {} takes {} buffers, got {}",
                kernel.name,
                kernel.storage,
                buffers.len()
            )));
        }
        let (x, y) = match groups {
            Groups::Linear(0) | Groups::Grid(0, _) | Groups::Grid(_, 0) => return Ok(()),
            Groups::Linear(count) => {
                let max = u64::from(self.gpu.limits.max_compute_workgroups_per_dimension.max(1));
                let x = count.min(max);
                (x, count.div_ceil(x))
            }
            Groups::Grid(x, y) => (u64::from(x), u64::from(y)),
        };
        let max = u64::from(self.gpu.limits.max_compute_workgroups_per_dimension);
        if x > max || y > max {
            return Err(MarginError::OutOfMemory(format!(
                "kernel {} needs a {x} x {y} dispatch; this adapter allows {max} per dimension",
                kernel.name
            )));
        }
        let uniform = self
            .gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let bind = self
            .gpu
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.name),
                layout: &kernel.layout,
                entries: &entries,
            });
        let mut pass = self
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.name),
                timestamp_writes: None,
            });
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(x as u32, y as u32, 1);
        Ok(())
    }

    /// Records a copy of the first `len` f32 values of `src` into `dst` (distinct buffers).
    pub fn copy(&mut self, src: &wgpu::Buffer, dst: &wgpu::Buffer, len: usize) {
        self.encoder
            .copy_buffer_to_buffer(src, 0, dst, 0, len as u64 * 4);
    }

    /// Records a copy of `len` f32 values of `src` from value `from` into the start of `dst`.
    pub fn copy_from(&mut self, src: &wgpu::Buffer, from: usize, dst: &wgpu::Buffer, len: usize) {
        self.encoder
            .copy_buffer_to_buffer(src, from as u64 * 4, dst, 0, len as u64 * 4);
    }

    /// Records zero-filling of a whole buffer.
    pub fn clear(&mut self, buffer: &wgpu::Buffer) {
        self.encoder.clear_buffer(buffer, 0, None);
    }

    /// Submits everything recorded.
    pub fn submit(self) {
        self.gpu.queue.submit([self.encoder.finish()]);
    }
}

/// `bytes` as "12.5 MiB" (B, KiB, MiB or GiB), for limit messages.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(16 << 10), "16.0 KiB");
        assert_eq!(human_bytes(128 << 20), "128.0 MiB");
        assert_eq!(human_bytes((1 << 31) - 1), "2.0 GiB");
        assert_eq!(human_bytes(160_000_000_000), "149.0 GiB");
    }
}
