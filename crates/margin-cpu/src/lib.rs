//! margin-cpu: the float64 reference (the oracle every backend is tested against) and a fast
//! multi-threaded f32 CPU backend.
//!
//! * [`reference`](mod@reference): [`ReferenceBackend`] and [`reference::evaluate`], plain f64 loops written to be
//!   read, O(N^3) / O(N^4) where the definition is; meant for N up to a few hundred.
//! * [`fast`]: [`CpuBackend`], f32 storage, f64 accumulation, GEMM and rayon, streaming over anchor
//!   blocks within a memory budget; the same exact algorithms as the GPU backends.

pub mod fast;
pub mod reference;

pub use fast::CpuBackend;
pub use reference::ReferenceBackend;
