//! Device-to-device copies of f32 ranges (`Backend::copy_values`), used by `CrossBatchMemory`
//! to enqueue batch rows without a host round trip.

use crate::context::Gpu;
use margin_core::{Result, check_copy};

/// Records and submits one `copy_buffer_to_buffer` of `len` f32 values. wgpu forbids a buffer
/// copied onto itself; such a copy goes through a scratch buffer.
pub fn copy_values(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    src_offset: usize,
    dst: &wgpu::Buffer,
    dst_offset: usize,
    len: usize,
) -> Result<()> {
    let values = |b: &wgpu::Buffer| (b.size() / 4) as usize;
    check_copy(values(src), src_offset, values(dst), dst_offset, len)?;
    if len == 0 {
        return Ok(());
    }
    let bytes = |v: usize| v as u64 * 4;
    gpu.scoped(|| {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("margin copy"),
            });
        if src == dst {
            let tmp = gpu.scratch("copy", len)?;
            encoder.copy_buffer_to_buffer(src, bytes(src_offset), &tmp, 0, bytes(len));
            encoder.copy_buffer_to_buffer(&tmp, 0, dst, bytes(dst_offset), bytes(len));
        } else {
            encoder.copy_buffer_to_buffer(
                src,
                bytes(src_offset),
                dst,
                bytes(dst_offset),
                bytes(len),
            );
        }
        gpu.queue.submit([encoder.finish()]);
        Ok(())
    })
}
