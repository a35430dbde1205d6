//! margin-core: the vocabulary every margin backend shares.
//!
//! * [`Embeddings`] and [`LossInput`]: validated views of host data (N x D f32, labels, centers).
//! * [`Distance`] and [`Metric`]: the four distances / similarities of the SPEC, with normalization.
//! * [`Loss`]: one config type per loss with the SPEC's defaults (which are PML's defaults).
//! * [`LossOutput`] / [`LossStats`]: the scalar loss, gradients and how many terms were active.
//! * [`Backend`]: the trait every backend implements, with a device-buffer path and a host path;
//!   [`time_on_device`] times its device path alone.
//! * [`MarginError`]: one error type, grouped by kind.
//! * [`evaluate_retrieval`]: exact k-NN retrieval metrics (PML's `AccuracyCalculator`) on any backend.

mod backend;
mod config;
mod device_run;
mod distance;
mod error;
mod loss;
mod memory;
mod output;
mod overrides;
mod pairwise_blocks;
mod range;
pub mod retrieval;
mod tensor;

pub use backend::{
    Backend, DeviceLossInput, DeviceReference, HostBackend, Neighbours, check_copy,
    check_device_input, check_knn, knn_blocked,
};
pub use config::{
    CircleConfig, ContrastiveConfig, CosFaceConfig, GeneralizedLiftedStructureConfig,
    LiftedStructureConfig, Mining, MultiSimilarityConfig, NPairConfig, NTXentConfig,
    NormalizedSoftmaxConfig, ProxyAnchorConfig, ProxyNcaConfig, ProxySoftmax, QuadrupletConfig,
    SupConConfig, TripletCenterConfig, TripletConfig,
};
pub use device_run::{DeviceOp, time_on_device};
pub use distance::{Distance, Metric, NORM_EPS};
pub use error::{MarginError, Result};
pub use loss::{Loss, LossKind};
pub use memory::CrossBatchMemory;
pub use output::{LossOutput, LossStats};
pub use overrides::LossOverrides;
pub use range::{F32_MAX_SQUARED_NORM, check_loss_range, check_query_rows, check_rows_range};
pub use retrieval::{
    RetrievalK, RetrievalMetrics, default_block_rows, evaluate_retrieval, evaluate_retrieval_k,
};
pub use tensor::{Embeddings, LossInput, NO_SELF, ReferenceSet, check_reference};
