//! The float64 reference. (Being written: see the foundation issue.)

use margin_core::{Backend, DeviceLossInput, Loss, LossStats, MarginError, Metric, Result};

/// A loss evaluated in f64, with f64 gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct RefOutput {
    /// Loss and active counts.
    pub stats: LossStats,
    /// dL/dX, N x D.
    pub grad: Vec<f64>,
    /// dL/dC, K x D, for triplet-center.
    pub center_grad: Option<Vec<f64>>,
}

/// Evaluates `loss` in f64 on f64 inputs. `centers` is `(data, K)`.
pub fn evaluate(
    _loss: &Loss,
    _x: &[f64],
    _n: usize,
    _d: usize,
    _labels: &[i64],
    _centers: Option<(&[f64], usize)>,
) -> Result<RefOutput> {
    Err(MarginError::unavailable("reference not written yet"))
}

/// The `nq x nr` matrix of `metric` between query rows and reference rows, in f64.
pub fn pairwise(
    _metric: Metric,
    _q: &[f64],
    _nq: usize,
    _r: &[f64],
    _nr: usize,
    _d: usize,
) -> Vec<f64> {
    Vec::new()
}

/// The reference as a [`Backend`]: f32 in, f64 inside, f32 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceBackend;

impl Backend for ReferenceBackend {
    type Buffer = Vec<f32>;
    fn name(&self) -> String {
        "reference".into()
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
        Err(MarginError::unavailable("reference not written yet"))
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
        Err(MarginError::unavailable("reference not written yet"))
    }
}
