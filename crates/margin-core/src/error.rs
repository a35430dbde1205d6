//! The one error type of margin. Variants are grouped by who must act: the caller (bad input or
//! config), the environment (a backend that is not there), or the device (a failure while running).

/// Every fallible margin call returns this.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MarginError {
    /// The data handed in is malformed: empty, wrong shape, non-finite, labels out of range.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A loss or distance configuration that the SPEC does not allow (non-finite margin, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The backend cannot run here (no adapter, no libcuda, no device); the text says what is missing.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The device ran out of memory, or a size exceeds what the device can address.
    #[error("out of device memory: {0}")]
    OutOfMemory(String),
    /// Any other failure reported by the device, driver or shader compiler.
    #[error("device error: {0}")]
    Device(String),
}

/// Shorthand used across the workspace.
pub type Result<T> = std::result::Result<T, MarginError>;

impl MarginError {
    /// Builds an [`MarginError::InvalidInput`] from anything printable.
    pub fn input(msg: impl Into<String>) -> Self {
        Self::InvalidInput(msg.into())
    }
    /// Builds an [`MarginError::InvalidConfig`] from anything printable.
    pub fn config(msg: impl Into<String>) -> Self {
        Self::InvalidConfig(msg.into())
    }
    /// Builds an [`MarginError::Unavailable`] from anything printable.
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::Unavailable(msg.into())
    }
    /// Builds an [`MarginError::Device`] from anything printable.
    pub fn device(msg: impl Into<String>) -> Self {
        Self::Device(msg.into())
    }
}
