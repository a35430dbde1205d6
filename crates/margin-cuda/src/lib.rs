//! margin-cuda: the CUDA backend of margin.
//!
//! Kernels are CUDA C++ in `shaders/cuda/*.cu` (with `common.cuh` prepended as text), embedded
//! with `include_str!` and compiled at run time by NVRTC for the device's own architecture, once
//! per architecture per process, the CUBIN kept in an on-disk cache for later processes
//! (`cache.rs`); the module is loaded once per device. cudarc drives the device
//! with dynamic loading, so this crate builds and its tests run on machines without CUDA:
//! [`CudaBackend::new`] then returns [`margin_core::MarginError::Unavailable`] naming what is
//! missing (libcuda, libnvrtc, a device), never panicking.
//!
//! A loss runs the five stages of docs/ALGORITHMS.md on the backend's stream: normalize, the
//! tiled FP32 distance matrix, per-loss weights (exact sorted counting for batch-all triplets and
//! quadruplets, log-sum-exp for lifted structure, n-pair, multi-similarity, circle, NT-Xent,
//! SupCon and generalized lifted structure, arg-min/max for hard mining, per-row top-2 negatives
//! and per-class best pairs for hard-mined quadruplets; against K centers, per-sample arg-min
//! for triplet-center, per-proxy log-sum-exps for proxy-anchor and per-sample softmaxes over the
//! K centers for proxy-nca, normalized-softmax and cosface), the gradient product `M X̂`
//! as a tiled GEMM, normalization backward. Sums accumulate in f64 on the device; the only host
//! synchronization is reading the final few f64 stats.
//!
//! With a reference set (docs/REFERENCE_SETS.md) the same stages run on the N x M rectangle
//! between the batch and the reference rows: the `*_ref_*` kernels are the per-row kernels
//! generalized to column labels and one excluded self column per row, the chain is `W R̂` to the
//! batch only (no `W + Wᵀ`), and lifted structure reproduces PML's index aliasing.
//!
//! Memory: one N x N f32 matrix (16 GiB at N = 65536), as the SPEC's Cost section allows: the
//! weight kernels overwrite the distances with `dL/dD` row by row, in place (each block reads its
//! row before writing it; the euclidean `1/d` of the chain is applied there, while the distance
//! is at hand). The batch-all quadruplet reads distances again after its first weights: while a
//! second N x N matrix fits the stream budget ([`CudaBackend::with_stream_budget`], 1 GiB) its
//! weights go there (one pass); beyond it the last pass runs in chunks of rows in place (one
//! more triplet pass). Its term 2 also sorts all ordered positive pairs. Hard-mined quadruplets
//! rewrite each row in place after the last pass that reads other rows. Reference sets do the
//! same on their N x M matrix (lifted structure first sums the column its aliased pairs read).

mod backend;
mod cache;
mod centers;
mod copy;
mod device;
pub mod kernels;
mod knn;
mod labels;
mod launch;
mod losses;
mod pipeline;
mod pml_losses;
mod quad_chunks;
mod quad_hard;
mod quadruplet;
mod ref_labels;
mod ref_losses;
mod ref_quadruplet;
mod reference;

pub use device::{CudaBackend, availability, driver_present};
