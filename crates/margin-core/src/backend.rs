//! The backend trait. A backend owns its device context; [`Backend::Buffer`] is its storage
//! (`Vec<f32>` on the CPU, `wgpu::Buffer`, `cudarc::driver::CudaSlice<f32>`), so a trainer that
//! already holds embeddings on the device passes them in and gets gradients back in buffers it owns,
//! with no host round trip. The host-slice methods are conveniences built on the device ones.

use crate::distance::Metric;
use crate::error::{MarginError, Result};
use crate::loss::Loss;
use crate::output::{LossOutput, LossStats};
use crate::tensor::{Embeddings, LossInput};

/// Embeddings, labels and centers already on the device.
#[derive(Debug)]
pub struct DeviceLossInput<'a, B> {
    /// N x D embeddings, row-major.
    pub embeddings: &'a B,
    /// N.
    pub n: usize,
    /// D.
    pub d: usize,
    /// N labels. Labels stay on the host: they are small and backends re-encode them.
    pub labels: &'a [i64],
    /// `(buffer, K)`: K x D centers, for triplet-center.
    pub centers: Option<(&'a B, usize)>,
}

impl<B> Clone for DeviceLossInput<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for DeviceLossInput<'_, B> {}

/// A compute backend: CPU reference, fast CPU, wgpu, CUDA.
pub trait Backend {
    /// Device storage of f32 values.
    type Buffer;

    /// A short human-readable name, including the adapter or device where there is one.
    fn name(&self) -> String;

    /// Copies host values into a new device buffer.
    fn upload(&self, data: &[f32]) -> Result<Self::Buffer>;

    /// A new device buffer of `len` zeros.
    fn alloc_zeros(&self, len: usize) -> Result<Self::Buffer>;

    /// Copies a device buffer back to the host (waits for pending work).
    fn download(&self, buffer: &Self::Buffer) -> Result<Vec<f32>>;

    /// Number of f32 values a buffer holds.
    fn buffer_len(&self, buffer: &Self::Buffer) -> usize;

    /// Waits until all submitted work is done (for benchmarks).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    /// Computes `loss` on device-resident inputs. Writes dL/dX (N x D) into `grad` and, when given,
    /// dL/dC (K x D) into `center_grad`, overwriting their contents. Returns the loss and counts.
    ///
    /// The device path checks shapes and labels but cannot cheaply check finiteness of device data.
    fn loss_on_device(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, Self::Buffer>,
        grad: &mut Self::Buffer,
        center_grad: Option<&mut Self::Buffer>,
    ) -> Result<LossStats>;

    /// Writes the `nq x nr` distance / similarity matrix between query rows and reference rows
    /// (`reference = None` means the queries themselves) into `out`.
    fn pairwise_on_device(
        &self,
        metric: Metric,
        query: &Self::Buffer,
        nq: usize,
        reference: Option<(&Self::Buffer, usize)>,
        d: usize,
        out: &mut Self::Buffer,
    ) -> Result<()>;

    /// Host convenience: validates `input`, computes the loss and returns the gradients.
    fn loss(&self, loss: &Loss, input: &LossInput<'_>) -> Result<LossOutput> {
        loss.validate_input(input)?;
        let x = self.upload(input.embeddings.data())?;
        let centers = input
            .centers
            .map(|c| self.upload(c.data()).map(|b| (b, c.rows())))
            .transpose()?;
        let mut grad = self.alloc_zeros(input.n() * input.d())?;
        let mut center_grad = centers
            .as_ref()
            .map(|(_, k)| self.alloc_zeros(k * input.d()))
            .transpose()?;
        let device_input = DeviceLossInput {
            embeddings: &x,
            n: input.n(),
            d: input.d(),
            labels: input.labels,
            centers: centers.as_ref().map(|(b, k)| (b, *k)),
        };
        let stats = self.loss_on_device(loss, device_input, &mut grad, center_grad.as_mut())?;
        Ok(LossOutput {
            stats,
            grad: self.download(&grad)?,
            center_grad: center_grad.map(|g| self.download(&g)).transpose()?,
        })
    }

    /// Host convenience: the `nq x nr` matrix between `query` and `reference` (or `query` itself).
    fn pairwise(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
    ) -> Result<Vec<f32>> {
        if let Some(r) = reference
            && r.cols() != query.cols()
        {
            return Err(MarginError::input(format!(
                "reference width {} differs from query width {}",
                r.cols(),
                query.cols()
            )));
        }
        let q = self.upload(query.data())?;
        let r = reference.map(|r| self.upload(r.data())).transpose()?;
        let nr = reference.map_or(query.rows(), |r| r.rows());
        let mut out = self.alloc_zeros(query.rows() * nr)?;
        self.pairwise_on_device(
            metric,
            &q,
            query.rows(),
            r.as_ref().map(|b| (b, nr)),
            query.cols(),
            &mut out,
        )?;
        self.download(&out)
    }
}

/// The object-safe, host-only face of a [`Backend`], for code that picks a backend at run time
/// (the CLI, the equivalence tests). Every [`Backend`] is one.
pub trait HostBackend {
    /// See [`Backend::name`].
    fn backend_name(&self) -> String;
    /// See [`Backend::loss`].
    fn host_loss(&self, loss: &Loss, input: &LossInput<'_>) -> Result<LossOutput>;
    /// See [`Backend::pairwise`].
    fn host_pairwise(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
    ) -> Result<Vec<f32>>;
    /// See [`Backend::synchronize`].
    fn host_synchronize(&self) -> Result<()>;
}

impl<T: Backend> HostBackend for T {
    fn backend_name(&self) -> String {
        self.name()
    }
    fn host_loss(&self, loss: &Loss, input: &LossInput<'_>) -> Result<LossOutput> {
        self.loss(loss, input)
    }
    fn host_pairwise(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
    ) -> Result<Vec<f32>> {
        self.pairwise(metric, query, reference)
    }
    fn host_synchronize(&self) -> Result<()> {
        self.synchronize()
    }
}

/// Checks a device input's shapes against its buffers; backends call this first in
/// [`Backend::loss_on_device`].
pub fn check_device_input<B: Backend + ?Sized>(
    backend: &B,
    loss: &Loss,
    input: &DeviceLossInput<'_, B::Buffer>,
    grad: &B::Buffer,
    center_grad: Option<&B::Buffer>,
) -> Result<()> {
    loss.validate()?;
    let (n, d) = (input.n, input.d);
    if n == 0 || d == 0 {
        return Err(MarginError::input(format!(
            "embeddings must be at least 1 x 1, got {n} x {d}"
        )));
    }
    let need = n * d;
    if backend.buffer_len(input.embeddings) < need {
        return Err(MarginError::input(format!(
            "embedding buffer holds {} values, expected {n} x {d}",
            backend.buffer_len(input.embeddings)
        )));
    }
    if backend.buffer_len(grad) < need {
        return Err(MarginError::input(format!(
            "gradient buffer holds {} values, expected {n} x {d}",
            backend.buffer_len(grad)
        )));
    }
    if input.labels.len() != n {
        return Err(MarginError::input(format!(
            "label count {} does not match the {n} embedding rows",
            input.labels.len()
        )));
    }
    match (loss.needs_centers(), input.centers) {
        (true, None) => Err(MarginError::input(
            "triplet-center needs centers; none were given",
        )),
        (false, Some(_)) => Err(MarginError::input(format!(
            "{} takes no centers",
            loss.kind()
        ))),
        (false, None) => Ok(()),
        (true, Some((c, k))) => {
            if k < 2 {
                return Err(MarginError::input(format!(
                    "triplet-center needs at least 2 centers, got {k}"
                )));
            }
            if backend.buffer_len(c) < k * d {
                return Err(MarginError::input(format!(
                    "center buffer holds {} values, expected {k} x {d}",
                    backend.buffer_len(c)
                )));
            }
            if let Some(g) = center_grad
                && backend.buffer_len(g) < k * d
            {
                return Err(MarginError::input(format!(
                    "center gradient buffer holds {} values, expected {k} x {d}",
                    backend.buffer_len(g)
                )));
            }
            match input
                .labels
                .iter()
                .position(|&l| l < 0 || l as u64 >= k as u64)
            {
                Some(i) => Err(MarginError::input(format!(
                    "label {} at row {i} is outside 0..{k} (the number of centers)",
                    input.labels[i]
                ))),
                None => Ok(()),
            }
        }
    }
}
