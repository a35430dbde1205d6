//! Device-to-device copies of f32 ranges (`Backend::copy_values`), used by `CrossBatchMemory`
//! to enqueue batch rows without a host round trip.

use crate::device::{CudaBackend, dev_err};
use cudarc::driver::CudaSlice;
use margin_core::{Result, check_copy};

impl CudaBackend {
    /// One `cuMemcpyDtoDAsync` of `len` values on the backend's stream (no synchronization).
    pub(crate) fn copy_device(
        &self,
        src: &CudaSlice<f32>,
        src_offset: usize,
        dst: &mut CudaSlice<f32>,
        dst_offset: usize,
        len: usize,
    ) -> Result<()> {
        check_copy(src.len(), src_offset, dst.len(), dst_offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let from = src.slice(src_offset..src_offset + len);
        let mut to = dst.slice_mut(dst_offset..dst_offset + len);
        self.stream.memcpy_dtod(&from, &mut to).map_err(dev_err)
    }
}
