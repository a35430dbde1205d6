//! Command-line errors and their exit codes: 2 for anything the user can fix (bad input, unknown
//! names, a backend that is not available), 1 for a failure while running.

use margin_core::MarginError;

/// An error that ends the command with one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's input or flags are wrong, or the requested backend is not available: exit 2.
    #[error("{0}")]
    Input(String),
    /// Something failed while running (device error, write error): exit 1.
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    /// An input error (exit 2).
    pub fn input(msg: impl Into<String>) -> Self {
        Self::Input(msg.into())
    }
    /// A runtime error (exit 1).
    pub fn runtime(msg: impl Into<String>) -> Self {
        Self::Runtime(msg.into())
    }
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

impl From<MarginError> for CliError {
    fn from(e: MarginError) -> Self {
        match e {
            MarginError::Device(_) => CliError::Runtime(e.to_string()),
            _ => CliError::Input(e.to_string()),
        }
    }
}
