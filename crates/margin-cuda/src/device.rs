//! The CUDA device: presence checks, context and stream, the compiled kernel table and launch
//! helpers. cudarc panics when a library it needs cannot be loaded, so every entry point checks
//! `libcuda` and `libnvrtc` first and turns their absence into [`MarginError::Unavailable`].

use crate::{cache, kernels};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, DriverError,
    LaunchConfig, ValidAsZeroBits, sys as driver_sys,
};
use margin_core::{MarginError, Result};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};

/// Threads per block of the row kernels (`MARGIN_THREADS` in common.cuh).
pub(crate) const THREADS: u32 = 256;

/// True when `libcuda` (the driver) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names; no symbol is called.
    unsafe { driver_sys::is_culib_present() }
}

/// Maps a driver error to the margin error kind (out of memory is its own kind).
pub(crate) fn dev_err(e: DriverError) -> MarginError {
    if e.0 == driver_sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        MarginError::OutOfMemory(format!("CUDA: {e:?}"))
    } else {
        MarginError::device(format!("CUDA: {e:?}"))
    }
}

/// Runs a cudarc call that could panic on a missing driver symbol (an old libcuda) and turns a
/// panic into an `Unavailable` error. The libraries were checked first; this is the last resort.
fn guarded<T>(what: &str, f: impl FnOnce() -> std::result::Result<T, DriverError>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(MarginError::unavailable(format!("{what}: {e:?}"))),
        Err(_) => Err(MarginError::unavailable(format!(
            "{what}: the CUDA driver library lacks a required function"
        ))),
    }
}

fn check_libraries() -> Result<()> {
    if !driver_present() {
        return Err(MarginError::unavailable(
            "libcuda not found (no NVIDIA driver installed)",
        ));
    }
    if !kernels::nvrtc_present() {
        return Err(MarginError::unavailable(
            "libnvrtc not found (install the CUDA toolkit or the nvidia-cuda-nvrtc wheel and add \
             its lib directory to LD_LIBRARY_PATH)",
        ));
    }
    Ok(())
}

/// Describes CUDA device 0 for `margin devices`, or says what is missing.
pub fn availability() -> Result<String> {
    check_libraries()?;
    let count = guarded(
        "CUDA driver initialization failed",
        CudaContext::device_count,
    )?;
    if count <= 0 {
        return Err(MarginError::unavailable("no CUDA device found"));
    }
    let ctx = guarded("creating a CUDA context on device 0", || {
        CudaContext::new(0)
    })?;
    let info = DeviceInfo::query(&ctx)?;
    let nvrtc = kernels::nvrtc_version()
        .map(|(a, b)| format!(", NVRTC {a}.{b}"))
        .unwrap_or_default();
    Ok(format!(
        "{} ({}, {:.0} GiB, {count} device(s){nvrtc})",
        info.name,
        info.arch,
        info.total_mem as f64 / (1u64 << 30) as f64
    ))
}

/// What the backend needs to know about its device.
#[derive(Debug, Clone)]
pub(crate) struct DeviceInfo {
    pub name: String,
    pub arch: String,
    pub total_mem: usize,
}

impl DeviceInfo {
    fn query(ctx: &Arc<CudaContext>) -> Result<Self> {
        let name = ctx.name().map_err(dev_err)?;
        let (major, minor) = ctx.compute_capability().map_err(dev_err)?;
        let total_mem = ctx.total_mem().map_err(dev_err)?;
        Ok(Self {
            name,
            arch: format!("sm_{major}{minor}"),
            total_mem,
        })
    }
}

/// The loaded kernels of one device, by name.
pub(crate) type KernelTable = HashMap<&'static str, CudaFunction>;

/// Loaded kernel tables by CUDA context (a module belongs to one context; the primary context of a
/// device is shared, so each device loads its module once per process).
fn kernels_for(ctx: &Arc<CudaContext>, arch: &str) -> Result<Arc<KernelTable>> {
    static TABLES: OnceLock<Mutex<HashMap<usize, Arc<KernelTable>>>> = OnceLock::new();
    let tables = TABLES.get_or_init(Default::default);
    // The context handle's address identifies it; the table keeps the context alive.
    let ordinal = ctx.cu_ctx() as usize;
    if let Some(t) = tables.lock().ok().and_then(|m| m.get(&ordinal).cloned()) {
        return Ok(t);
    }
    // NVRTC runs at most once per architecture per process (and not at all on a disk-cache hit).
    static COMPILED: OnceLock<cache::Memo> = OnceLock::new();
    let memo = COMPILED.get_or_init(Default::default);
    let module: Arc<CudaModule> =
        cache::load_program(ctx, memo, &kernels::full_source(), "margin.cu", arch)?;
    let mut table = KernelTable::new();
    for name in kernels::KERNEL_NAMES {
        table.insert(*name, module.load_function(name).map_err(dev_err)?);
    }
    let table = Arc::new(table);
    if let Ok(mut m) = tables.lock() {
        m.insert(ordinal, table.clone());
    }
    Ok(table)
}

/// The CUDA backend: one device, one stream, the kernels compiled for the device's architecture.
/// All work is enqueued on the stream; a loss call synchronizes only to read its final stats.
pub struct CudaBackend {
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) kernels: Arc<KernelTable>,
    pub(crate) info: DeviceInfo,
    /// Bytes of chunk buffers a streamed pass may hold (see [`CudaBackend::with_stream_budget`]).
    pub(crate) stream_bytes: usize,
}

/// Default [`CudaBackend::with_stream_budget`]: 1 GiB.
const STREAM_BUDGET: usize = 1 << 30;

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.info.name)
            .field("arch", &self.info.arch)
            .finish()
    }
}

impl CudaBackend {
    /// Opens device `ordinal` on a new stream. `Unavailable` names what is missing: libcuda,
    /// libnvrtc, or the device.
    pub fn new(ordinal: usize) -> Result<Self> {
        check_libraries()?;
        let count = guarded(
            "CUDA driver initialization failed",
            CudaContext::device_count,
        )?;
        if count <= 0 {
            return Err(MarginError::unavailable("no CUDA device found"));
        }
        if ordinal >= count as usize {
            return Err(MarginError::unavailable(format!(
                "no CUDA device {ordinal} ({count} present)"
            )));
        }
        let ctx = guarded("creating a CUDA context", || CudaContext::new(ordinal))?;
        let stream = ctx.new_stream().map_err(dev_err)?;
        Self::with_stream(stream)
    }

    /// Runs on a caller's stream (a trainer's), so that margin's work orders with its own.
    pub fn with_stream(stream: Arc<CudaStream>) -> Result<Self> {
        check_libraries()?;
        let ctx = stream.context().clone();
        let info = DeviceInfo::query(&ctx)?;
        let kernels = kernels_for(&ctx, &info.arch)?;
        Ok(Self {
            stream,
            kernels,
            info,
            stream_bytes: STREAM_BUDGET,
        })
    }

    /// Caps the chunk buffers of the streamed passes (default 1 GiB): the size up to which the
    /// batch-all quadruplet keeps its weights in a second N x N matrix (one pass) rather than in
    /// place over the distances (its last pass in chunks of rows that fit the budget). Lower it
    /// to bound memory; the tests use it to cover the chunked path.
    pub fn with_stream_budget(mut self, bytes: usize) -> Self {
        self.stream_bytes = bytes.max(4);
        self
    }

    /// The stream all work is enqueued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub(crate) fn func(&self, name: &str) -> Result<&CudaFunction> {
        self.kernels
            .get(name)
            .ok_or_else(|| MarginError::device(format!("kernel {name} was not loaded")))
    }

    /// A zeroed device buffer of at least one element (CUDA cannot allocate zero bytes).
    pub(crate) fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(len.max(1)).map_err(dev_err)
    }
}

/// One block of `THREADS` threads per row, `rows` blocks.
pub(crate) fn rows_cfg(rows: usize) -> Result<LaunchConfig> {
    Ok(LaunchConfig {
        grid_dim: (grid_u32(rows.max(1))?, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// `THREADS`-thread blocks covering `len` elements, one per thread.
pub(crate) fn elems_cfg(len: usize) -> Result<LaunchConfig> {
    rows_cfg(len.div_ceil(THREADS as usize))
}

pub(crate) fn grid_u32(blocks: usize) -> Result<u32> {
    u32::try_from(blocks)
        .ok()
        .filter(|&b| b <= i32::MAX as u32)
        .ok_or_else(|| MarginError::OutOfMemory(format!("{blocks} blocks exceed the grid limit")))
}

/// The largest `gridDim.y` (and `.z`) a launch may have; only `gridDim.x` goes to 2^31 - 1.
pub(crate) const GRID_Y_MAX: usize = 65535;

/// A `gridDim.y`, checked against [`GRID_Y_MAX`]: a larger one fails the launch with an opaque
/// `CUDA_ERROR_INVALID_VALUE` on the device, so it is refused here with the size that caused it.
pub(crate) fn grid_y(blocks: usize) -> Result<u32> {
    if blocks > GRID_Y_MAX {
        return Err(MarginError::OutOfMemory(format!(
            "{blocks} row tiles exceed the CUDA grid's y limit of {GRID_Y_MAX}"
        )));
    }
    grid_u32(blocks)
}

/// An `int` kernel argument, checked.
pub(crate) fn as_i32(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| MarginError::input(format!("{what} = {v} exceeds the CUDA backend's limit")))
}
