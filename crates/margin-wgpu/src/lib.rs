//! margin-wgpu: the WGSL compute-shader backend (wgpu on Vulkan, Metal or DX12).
//!
//! Every loss follows the five stages of docs/ALGORITHMS.md entirely on the GPU: normalization,
//! the pairwise matrix as a tiled matrix product, per-row weight kernels (sorting and binary search
//! make the hinge losses over triplets and quadruplets exact without enumerating them), the chain
//! through the distance as a second tiled product, and normalization backward. Only per-row loss
//! sums and counts come back to the host, where they are added in f64 / u64. The softmax-style
//! losses (multi-similarity, circle, NT-Xent, SupCon, generalized lifted structure) are one
//! workgroup per row with its log-sum-exps; hard-mined quadruplet reads back O(N) per-row
//! candidates and forms its few non-zero weights on the host. The losses against centers take
//! their gradient too, and share one skeleton (`losses/centers.rs`: normalization of both sides,
//! the matrix in slabs, the chain and both products, normalization backward): triplet-center
//! (the N x K matrix, one thread per sample); proxy-anchor, whose log-sum-exps run per proxy over
//! the samples and so on the transposed K x N matrix, one workgroup per proxy
//! (`losses/proxy_anchor.rs`); and the proxy-softmax family, proxy-nca, normalized-softmax and
//! cosface, one kernel for the three: a softmax cross-entropy per sample over the centers, one
//! workgroup per sample of the N x K matrix (`losses/proxy_softmax.rs`; proxy-nca's mean over the
//! samples whose target probability does not underflow is scaled once its count is known).
//!
//! Reference sets (docs/REFERENCE_SETS.md; every loss but n-pair and the losses against centers,
//! whose centers are their reference): the same kernels run on the N x M matrix
//! between the batch and the reference rows, told the column labels and each row's excluded
//! column (its own copy); PML's lifted-structure index aliasing and its mine-then-remove-self
//! rule for batch-hard triplet and quadruplet are reproduced. The chain then has no `W + Wᵀ`:
//! the gradient reaches the batch only, as for triplet-center's embeddings.
//!
//! * [`WgpuBackend`]: implements [`margin_core::Backend`] with `Buffer = wgpu::Buffer`.
//! * [`list_adapters`]: what `margin devices` prints.
//!
//! Memory: a loss over N rows keeps one N x N f32 matrix (N x M with a reference set) on the
//! device, as the SPEC's Cost section asks: E, the distances, which the weight kernels overwrite
//! row by row with their weights W (`weight_out` in common.wgsl), and which then becomes the
//! gradient multiplier in place. Passes that need O(rows x N) scratch (the triplet's per-anchor
//! sorts, the batch-all quadruplet's rows of weights) run in chunks of rows under a stream
//! budget ([`WgpuBackend::with_stream_budget`], 256 MiB by default). The batch-all quadruplet,
//! whose term 2 reads E until both terms' counts are known, keeps its term-1 weights in a second
//! matrix while one fits that budget (one pass) and otherwise runs its last pass in chunks
//! (one more pass); its term 2 adds four sort buffers of `next_power_of_two(positive pairs)`
//! values and two histograms. Each buffer must fit one storage binding. When the N x M matrix
//! does not (N > 5792 on lavapipe's 128 MiB, N > 23170 on GPUs that bind 2 GiB), every loss runs
//! in slabs of rows that each fit (`losses/slabs.rs`; more passes over the slabs for
//! contrastive's two counts, lifted structure's log-sum-exps and the quadruplet's steps), and so
//! do n-pair's k x k, triplet-center's and the proxy-softmax family's N x K (slabs of samples)
//! and proxy-anchor's K x N (slabs of proxies) matrices, each slab complete in one pass. Any other buffer beyond the limit (the N x D rows, the
//! quadruplet's positive-pair lists) returns `MarginError::OutOfMemory` saying so.
//! Device allocation failures and validation errors are caught with error scopes.

mod adapter;
mod backend;
mod context;
mod copy;
pub mod kernels;
mod knn;
mod losses;
mod stages;

pub use adapter::{AdapterSummary, list_adapters};
pub use backend::WgpuBackend;
pub use kernels::Tiling;
