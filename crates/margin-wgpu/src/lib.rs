//! margin-wgpu (stub)
