//! [`ReferenceBackend`]: the reference behind the [`Backend`] trait, so that it can be run and
//! compared exactly like the other backends. Buffers are host `Vec<f32>`; inside, everything is
//! f64 ([`super::evaluate`], or [`super::evaluate_with_reference`] with a reference set); the
//! results are rounded to f32 once at the end.

use super::validate;
use margin_core::{
    Backend, DeviceLossInput, Loss, LossStats, MarginError, Metric, Result, check_device_input,
};

/// The reference as a [`Backend`]: f32 in, f64 inside, f32 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceBackend;

/// The first `rows x cols` values of `buffer` as f64, checked to be finite.
fn widen(buffer: &[f32], rows: usize, cols: usize, what: &str) -> Result<Vec<f64>> {
    let len = rows
        .checked_mul(cols)
        .ok_or_else(|| MarginError::input(format!("{what} shape {rows} x {cols} overflows")))?;
    let values: Vec<f64> = buffer
        .get(..len)
        .ok_or_else(|| {
            MarginError::input(format!(
                "{what} buffer holds {} values, expected {rows} x {cols}",
                buffer.len()
            ))
        })?
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    validate::matrix(&values, rows, cols, what)?;
    Ok(values)
}

/// Overwrites the first `values.len()` entries of `out` (growing it if it is shorter).
fn write_f32(out: &mut Vec<f32>, values: &[f64]) {
    if out.len() < values.len() {
        out.resize(values.len(), 0.0);
    }
    for (o, &v) in out.iter_mut().zip(values) {
        *o = v as f32;
    }
}

impl Backend for ReferenceBackend {
    type Buffer = Vec<f32>;
    fn name(&self) -> String {
        "reference".into()
    }
    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }
    /// Fallible: a buffer too large for this machine is an `OutOfMemory` error, not an abort.
    fn alloc_zeros(&self, len: usize) -> Result<Vec<f32>> {
        let mut v = Vec::new();
        v.try_reserve_exact(len).map_err(|_| {
            margin_core::MarginError::OutOfMemory(format!("cannot allocate {len} floats"))
        })?;
        v.resize(len, 0.0);
        Ok(v)
    }
    fn download(&self, buffer: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(buffer.clone())
    }
    fn buffer_len(&self, buffer: &Vec<f32>) -> usize {
        buffer.len()
    }
    /// f64 throughout: no limit beyond finiteness.
    fn max_squared_norm(&self) -> Option<f64> {
        None
    }

    /// Checks shapes with [`check_device_input`] and, since host buffers are cheap to read, also
    /// finiteness; then evaluates in f64 and writes the gradients rounded to f32.
    fn loss_on_device(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, Vec<f32>>,
        grad: &mut Vec<f32>,
        center_grad: Option<&mut Vec<f32>>,
    ) -> Result<LossStats> {
        check_device_input(self, loss, &input, grad, center_grad.as_deref())?;
        let (n, d) = (input.n, input.d);
        let x = widen(input.embeddings, n, d, "embeddings")?;
        if let Some(r) = input.reference {
            let values = widen(r.embeddings, r.m, d, "reference embeddings")?;
            let reference = super::RefSet {
                embeddings: &values,
                m: r.m,
                labels: r.labels,
                self_index: r.self_index,
            };
            let out = super::evaluate_with_reference(loss, &x, n, d, input.labels, reference)?;
            write_f32(grad, &out.grad);
            return Ok(out.stats);
        }
        let centers = input
            .centers
            .map(|(c, k)| widen(c, k, d, "centers").map(|c| (c, k)))
            .transpose()?;
        let out = super::evaluate(
            loss,
            &x,
            n,
            d,
            input.labels,
            centers.as_ref().map(|(c, k)| (c.as_slice(), *k)),
        )?;
        write_f32(grad, &out.grad);
        if let (Some(cg), Some(values)) = (center_grad, &out.center_grad) {
            write_f32(cg, values);
        }
        Ok(out.stats)
    }

    fn pairwise_on_device(
        &self,
        metric: Metric,
        query: &Vec<f32>,
        nq: usize,
        reference: Option<(&Vec<f32>, usize)>,
        d: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let q = widen(query, nq, d, "query")?;
        let (r, nr) = match reference {
            Some((buffer, nr)) => (widen(buffer, nr, d, "reference")?, nr),
            None => (q.clone(), nq),
        };
        let matrix = super::pairwise(metric, &q, nq, &r, nr, d);
        write_f32(out, &matrix);
        Ok(())
    }
}
