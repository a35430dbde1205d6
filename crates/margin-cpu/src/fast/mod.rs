//! The fast CPU backend. (Being written: see the performance issue.)

use margin_core::{Backend, DeviceLossInput, Loss, LossStats, MarginError, Metric, Result};

/// Multi-threaded f32 CPU backend.
#[derive(Debug, Clone)]
pub struct CpuBackend {
    memory_budget_bytes: usize,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// A backend with a 1 GiB working-memory budget.
    pub fn new() -> Self {
        Self::with_memory_budget(1 << 30)
    }
    /// A backend whose extra memory per call stays near `bytes` (it picks its anchor block from it).
    pub fn with_memory_budget(bytes: usize) -> Self {
        Self {
            memory_budget_bytes: bytes,
        }
    }
    /// The working-memory budget in bytes.
    pub fn memory_budget(&self) -> usize {
        self.memory_budget_bytes
    }
}

impl Backend for CpuBackend {
    type Buffer = Vec<f32>;
    fn name(&self) -> String {
        "cpu".into()
    }
    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }
    fn alloc_zeros(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }
    fn download(&self, buffer: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(buffer.clone())
    }
    fn buffer_len(&self, buffer: &Vec<f32>) -> usize {
        buffer.len()
    }
    fn loss_on_device(
        &self,
        _loss: &Loss,
        _input: DeviceLossInput<'_, Vec<f32>>,
        _grad: &mut Vec<f32>,
        _center_grad: Option<&mut Vec<f32>>,
    ) -> Result<LossStats> {
        Err(MarginError::unavailable("fast cpu backend not written yet"))
    }
    fn pairwise_on_device(
        &self,
        _metric: Metric,
        _query: &Vec<f32>,
        _nq: usize,
        _reference: Option<(&Vec<f32>, usize)>,
        _d: usize,
        _out: &mut Vec<f32>,
    ) -> Result<()> {
        Err(MarginError::unavailable("fast cpu backend not written yet"))
    }
}
