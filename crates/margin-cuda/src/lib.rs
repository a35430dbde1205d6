//! margin-cuda (stub)
