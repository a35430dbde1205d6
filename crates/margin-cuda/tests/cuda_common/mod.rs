//! What every CUDA runtime suite starts with: the backend, or a skip message where no usable GPU
//! is present (the suites pass there; CI machines have none), and the comparisons with the
//! float64 reference under the SPEC's tolerances.

#![allow(dead_code)]

use margin_core::{Backend, HostBackend, Loss, LossInput, LossOutput, MarginError};
use margin_cuda::CudaBackend;

/// The CUDA backend on device 0, or `None` after printing "skipping: <reason>" when CUDA is
/// unavailable. Any other failure to start is a bug and panics.
pub fn cuda_or_skip() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(b) => {
            println!("running on {}", b.name());
            Some(b)
        }
        Err(MarginError::Unavailable(why)) => {
            println!("skipping: {why}");
            None
        }
        Err(e) => panic!("CUDA backend failed to start: {e}"),
    }
}

/// `‖a − b‖ / ‖b‖`, or `‖a − b‖` when `b` is all zeros; infinite when either holds a NaN, so
/// that every `err > tol` check fails on it (a NaN compares false).
pub fn rel_norm_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    let err = if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    };
    if err.is_nan() { f64::INFINITY } else { err }
}

/// The SPEC's loss bound: within 1e-4 relative of the reference, or 1e-6 absolute near 0.
pub fn loss_ok(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-4 * want.abs() || (got - want).abs() <= 1e-6
}

/// CUDA's output next to the oracle's for one input, and how far apart they are.
pub struct Compared {
    pub got: LossOutput,
    pub want: LossOutput,
    /// The losses agree within [`loss_ok`].
    pub value_ok: bool,
    /// [`rel_norm_err`] of the gradients.
    pub grad_err: f64,
}

impl Compared {
    /// `loss <got> vs <want>, grad err <e>`, for failure messages.
    pub fn summary(&self) -> String {
        format!(
            "loss {} vs {}, grad err {:e}",
            self.got.stats.loss, self.want.stats.loss, self.grad_err
        )
    }
}

/// Runs `loss` on `cuda` and on `oracle` (the f64 reference, or the fast CPU backend for sizes
/// the reference cannot afford); `Err` when either fails.
pub fn against_oracle(
    cuda: &CudaBackend,
    oracle: &dyn HostBackend,
    loss: &Loss,
    input: &LossInput<'_>,
) -> Result<Compared, String> {
    let want = oracle
        .host_loss(loss, input)
        .map_err(|e| format!("oracle: {e}"))?;
    let got = cuda.loss(loss, input).map_err(|e| format!("cuda: {e}"))?;
    let value_ok = loss_ok(got.stats.loss, want.stats.loss);
    let grad_err = rel_norm_err(&got.grad, &want.grad);
    Ok(Compared {
        got,
        want,
        value_ok,
        grad_err,
    })
}
