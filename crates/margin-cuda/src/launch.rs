//! The kernel launch macro shared by the stage modules.

/// `launch!(backend, "kernel", cfg, [args...])` enqueues one kernel on the backend's stream.
/// Arguments are references: `&CudaSlice` / `&mut CudaSlice` for pointers, `&i32` / `&f32` /
/// `&f64` / `&u64` for `int` / `float` / `double` / `size_t` / `u64` scalars.
macro_rules! launch {
    ($backend:expr, $name:literal, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        use cudarc::driver::PushKernelArg as _;
        let cfg = $cfg;
        let func = $backend.func($name)?;
        let mut builder = $backend.stream.launch_builder(func);
        $( builder.arg($arg); )*
        // SAFETY: every call site passes the arguments in the order and with the types that the
        // kernel of that name declares in shaders/cuda, and sizes every buffer for the counts it
        // passes (callers check caller-provided buffers against n, d, k first).
        unsafe { builder.launch(cfg) }
            .map(|_| ())
            .map_err($crate::device::dev_err)
    }};
}

pub(crate) use launch;
