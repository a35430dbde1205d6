//! Host inputs uploaded once and run on the device many times: what [`Backend::loss`] does for
//! one call, and what [`time_on_device`] repeats to measure the device's share of a training
//! step. A trainer keeps its embeddings on the device, so the honest figure for a GPU is the
//! on-device call ended by a synchronize, without the host copies around it (for the pairwise
//! matrix at N = 65536 the download alone is 16 GiB).

use crate::backend::{Backend, DeviceLossInput, DeviceReference};
use crate::distance::Metric;
use crate::error::{MarginError, Result};
use crate::loss::Loss;
use crate::output::LossStats;
use crate::tensor::{Embeddings, LossInput};
use std::time::Instant;

/// A [`LossInput`]'s embeddings, centers and reference set as device buffers, with the
/// gradient buffers a loss call writes.
pub(crate) struct UploadedInput<B> {
    x: B,
    centers: Option<(B, usize)>,
    reference: Option<B>,
    grad: B,
    center_grad: Option<B>,
}

impl<B> UploadedInput<B> {
    /// Uploads what `input` holds on the host and allocates the gradients.
    pub fn new<K: Backend<Buffer = B> + ?Sized>(
        backend: &K,
        input: &LossInput<'_>,
    ) -> Result<Self> {
        let centers = input
            .centers
            .map(|c| backend.upload(c.data()).map(|b| (b, c.rows())))
            .transpose()?;
        let center_grad = centers
            .as_ref()
            .map(|(_, k)| backend.alloc_zeros(k * input.d()))
            .transpose()?;
        Ok(Self {
            x: backend.upload(input.embeddings.data())?,
            centers,
            reference: input
                .reference
                .map(|r| backend.upload(r.embeddings.data()))
                .transpose()?,
            grad: backend.alloc_zeros(input.n() * input.d())?,
            center_grad,
        })
    }

    /// [`Backend::loss_on_device`] on the uploaded buffers; labels and indices stay `input`'s.
    pub fn run<K: Backend<Buffer = B> + ?Sized>(
        &mut self,
        backend: &K,
        loss: &Loss,
        input: &LossInput<'_>,
    ) -> Result<LossStats> {
        let Self {
            x,
            centers,
            reference,
            grad,
            center_grad,
        } = self;
        let view = DeviceLossInput {
            embeddings: &*x,
            n: input.n(),
            d: input.d(),
            labels: input.labels,
            centers: centers.as_ref().map(|(b, k)| (b, *k)),
            reference: reference
                .as_ref()
                .zip(input.reference)
                .map(|(b, r)| DeviceReference {
                    embeddings: b,
                    m: r.embeddings.rows(),
                    labels: r.labels,
                    self_index: r.self_index,
                }),
        };
        backend.loss_on_device(loss, view, grad, center_grad.as_mut())
    }

    /// The gradients of the last [`UploadedInput::run`], on the host.
    pub fn download_grads<K: Backend<Buffer = B> + ?Sized>(
        &self,
        backend: &K,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        Ok((
            backend.download(&self.grad)?,
            self.center_grad
                .as_ref()
                .map(|g| backend.download(g))
                .transpose()?,
        ))
    }
}

/// An operation [`time_on_device`] repeats.
#[derive(Debug, Clone, Copy)]
pub enum DeviceOp<'a> {
    /// A loss and its gradients ([`Backend::loss_on_device`]); the gradients stay on the device.
    Loss(&'a Loss, &'a LossInput<'a>),
    /// The N x N matrix of the rows against themselves ([`Backend::pairwise_on_device`]).
    Pairwise(Metric, Embeddings<'a>),
    /// The `k` nearest other rows of every row ([`Backend::knn_on_device`]; the `N x k` result
    /// comes back to the host, as it does for every caller).
    Knn(Metric, Embeddings<'a>, usize),
}

/// Uploads the op's inputs and allocates its outputs once, runs it `warmup` times untimed, then
/// `reps` times, each call ended by [`Backend::synchronize`]; returns the `reps` wall times in
/// milliseconds. Nothing is copied to the host inside the timed calls except what the op
/// returns there by its nature (a loss's statistics, the neighbours).
pub fn time_on_device<B: Backend + ?Sized>(
    backend: &B,
    op: DeviceOp<'_>,
    warmup: usize,
    reps: usize,
) -> Result<Vec<f64>> {
    if reps == 0 {
        return Err(MarginError::input(
            "time_on_device needs at least one timed run",
        ));
    }
    let mut run = prepare(backend, op)?;
    for _ in 0..warmup {
        run()?;
        backend.synchronize()?;
    }
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            run()?;
            backend.synchronize()?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// The op with its device buffers in place, as a closure of one call.
fn prepare<'a, B: Backend + ?Sized>(
    backend: &'a B,
    op: DeviceOp<'a>,
) -> Result<Box<dyn FnMut() -> Result<()> + 'a>> {
    Ok(match op {
        DeviceOp::Loss(loss, input) => {
            loss.validate_input(input)?;
            let mut up = UploadedInput::new(backend, input)?;
            Box::new(move || up.run(backend, loss, input).map(drop))
        }
        DeviceOp::Pairwise(metric, x) => {
            let buf = backend.upload(x.data())?;
            let len = x.rows().checked_mul(x.rows()).ok_or_else(|| {
                MarginError::OutOfMemory("the pairwise matrix overflows usize".into())
            })?;
            let mut out = backend.alloc_zeros(len)?;
            Box::new(move || {
                backend.pairwise_on_device(metric, &buf, x.rows(), None, x.cols(), &mut out)
            })
        }
        DeviceOp::Knn(metric, x, k) => {
            let buf = backend.upload(x.data())?;
            Box::new(move || {
                backend
                    .knn_on_device(metric, &buf, x.rows(), None, x.cols(), k)
                    .map(drop)
            })
        }
    })
}
