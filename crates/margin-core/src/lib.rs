//! margin-core: the vocabulary every margin backend shares.
//!
//! * [`Embeddings`] and [`LossInput`]: validated views of host data (N x D f32, labels, centers).
//! * [`Distance`] and [`Metric`]: the four distances / similarities of the SPEC, with normalization.
//! * [`Loss`]: one config type per loss with the SPEC's defaults (which are PML's defaults).
//! * [`LossOutput`] / [`LossStats`]: the scalar loss, gradients and how many terms were active.
//! * [`Backend`]: the trait every backend implements, with a device-buffer path and a host path.
//! * [`MarginError`]: one error type, grouped by kind.
//! * [`evaluate_retrieval`]: exact k-NN retrieval metrics (PML's `AccuracyCalculator`) on any backend.

mod backend;
mod distance;
mod error;
mod loss;
mod output;
pub mod retrieval;
mod tensor;

pub use backend::{Backend, DeviceLossInput, HostBackend, check_device_input};
pub use distance::{Distance, Metric, NORM_EPS};
pub use error::{MarginError, Result};
pub use loss::{
    ContrastiveConfig, LiftedStructureConfig, Loss, LossKind, LossOverrides, Mining, NPairConfig,
    QuadrupletConfig, TripletCenterConfig, TripletConfig,
};
pub use output::{LossOutput, LossStats};
pub use retrieval::{RetrievalMetrics, default_block_rows, evaluate_retrieval};
pub use tensor::{Embeddings, LossInput};
