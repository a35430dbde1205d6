//! [`Backend`] for [`CudaBackend`]: buffers, the pairwise matrix and the loss pipeline
//! (normalize, distances, weights, chain, normalization backward), all on the backend's stream.

use crate::device::{CudaBackend, dev_err};
use crate::labels::LabelInfo;
use crate::losses::SquareInput;
use crate::pipeline::kind_code;
use cudarc::driver::CudaSlice;
use margin_core::{
    Backend, DeviceLossInput, Loss, LossStats, MarginError, Metric, Result, check_device_input,
};

/// +1 for a distance, −1 for a similarity: the kernels work on `sign · D`, smaller = closer.
pub(crate) fn sign(metric: Metric) -> f32 {
    if metric.is_similarity() { -1.0 } else { 1.0 }
}

impl Backend for CudaBackend {
    type Buffer = CudaSlice<f32>;

    fn name(&self) -> String {
        format!("cuda ({}, {})", self.info.name, self.info.arch)
    }

    fn upload(&self, data: &[f32]) -> Result<CudaSlice<f32>> {
        if data.is_empty() {
            return self.stream.alloc_zeros::<f32>(0).map_err(dev_err);
        }
        self.stream.clone_htod(data).map_err(dev_err)
    }

    fn alloc_zeros(&self, len: usize) -> Result<CudaSlice<f32>> {
        self.stream.alloc_zeros::<f32>(len).map_err(dev_err)
    }

    fn download(&self, buffer: &CudaSlice<f32>) -> Result<Vec<f32>> {
        if buffer.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.stream.clone_dtoh(buffer).map_err(dev_err)?;
        self.stream.synchronize().map_err(dev_err)?;
        Ok(out)
    }

    fn buffer_len(&self, buffer: &CudaSlice<f32>) -> usize {
        buffer.len()
    }

    fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(dev_err)
    }

    fn loss_on_device(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, CudaSlice<f32>>,
        grad: &mut CudaSlice<f32>,
        center_grad: Option<&mut CudaSlice<f32>>,
    ) -> Result<LossStats> {
        check_device_input(self, loss, &input, grad, center_grad.as_deref())?;
        if let Some(reference) = input.reference {
            // check_device_input rejected n-pair and the center losses with a reference set
            // (and loss_reference rejects them too).
            return self.loss_reference(loss, input, reference, grad);
        }
        if loss.needs_centers() {
            self.center_loss(loss, input, grad, center_grad)
        } else {
            self.loss_square(loss, input, grad)
        }
    }

    /// The fused distance + top-k kernel (`crate::knn`); `k` above its limit falls back to
    /// [`margin_core::knn_blocked`].
    fn knn_on_device(
        &self,
        metric: Metric,
        query: &CudaSlice<f32>,
        nq: usize,
        reference: Option<(&CudaSlice<f32>, usize)>,
        d: usize,
        k: usize,
    ) -> Result<margin_core::Neighbours> {
        self.fused_knn(metric, query, nq, reference, d, k)
    }

    /// A device-to-device copy (`crate::copy`).
    fn copy_values(
        &self,
        src: &CudaSlice<f32>,
        src_offset: usize,
        dst: &mut CudaSlice<f32>,
        dst_offset: usize,
        len: usize,
    ) -> Result<()> {
        self.copy_device(src, src_offset, dst, dst_offset, len)
    }

    fn pairwise_on_device(
        &self,
        metric: Metric,
        query: &CudaSlice<f32>,
        nq: usize,
        reference: Option<(&CudaSlice<f32>, usize)>,
        d: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        if nq == 0 || d == 0 || reference.is_some_and(|(_, nr)| nr == 0) {
            return Err(MarginError::input(
                "pairwise needs at least one row and one column",
            ));
        }
        if query.len() < nq * d {
            return Err(MarginError::input(format!(
                "query buffer holds {} values, expected {nq} x {d}",
                query.len()
            )));
        }
        if let Some((r, nr)) = reference
            && r.len() < nr * d
        {
            return Err(MarginError::input(format!(
                "reference buffer holds {} values, expected {nr} x {d}",
                r.len()
            )));
        }
        let nr = reference.map_or(nq, |(_, nr)| nr);
        if out.len() < nq * nr {
            return Err(MarginError::input(format!(
                "output buffer holds {} values, expected {nq} x {nr}",
                out.len()
            )));
        }
        let kind = kind_code(metric.distance);
        if !metric.normalizes() {
            return self.distances(query, nq, reference, d, kind, out);
        }
        let (qh, _) = self.normalize(query, nq, d)?;
        match reference {
            Some((r, nr)) => {
                let (rh, _) = self.normalize(r, nr, d)?;
                self.distances(&qh, nq, Some((&rh, nr)), d, kind, out)
            }
            None => self.distances(&qh, nq, None, d, kind, out),
        }
    }
}

impl CudaBackend {
    /// Every loss without centers: N x N distances, weights, chain, normalization backward.
    fn loss_square(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, CudaSlice<f32>>,
        grad: &mut CudaSlice<f32>,
    ) -> Result<LossStats> {
        let metric = loss.metric();
        let (n, d) = (input.n, input.d);
        let normed = if metric.normalizes() {
            Some(self.normalize(input.embeddings, n, d)?)
        } else {
            None
        };
        let xhat = normed.as_ref().map_or(input.embeddings, |(x, _)| x);
        let nn = n
            .checked_mul(n)
            .ok_or_else(|| MarginError::input("N x N overflows"))?;
        let mut dmat = self.zeros::<f32>(nn)?;
        self.distances(xhat, n, None, d, kind_code(metric.distance), &mut dmat)?;
        let info = LabelInfo::new(input.labels);
        let lab = self.stream.clone_htod(&info.ids).map_err(dev_err)?;
        let square = SquareInput {
            lab: &lab,
            info: &info,
            n,
            sg: sign(metric),
            euclid: i32::from(metric.distance == margin_core::Distance::Euclidean),
        };
        // Most losses overwrite the distances with their weights (one N x N matrix in all).
        let (three, separate) = self.weights_square(loss, &square, &mut dmat)?;
        let (mut w, dist) = match separate {
            Some(w) => (w, Some(dmat)),
            None => (dmat, None),
        };
        let chain = |rows: &CudaSlice<f32>, out: &mut CudaSlice<f32>, w: &mut CudaSlice<f32>| {
            self.chain_square(
                w,
                dist.as_ref(),
                &lab,
                &three.stats,
                three.scales,
                rows,
                (n, d),
                metric.distance,
                out,
            )
        };
        match &normed {
            Some((xh, norms)) => {
                let mut g = self.zeros::<f32>(n * d)?;
                chain(xh, &mut g, &mut w)?;
                self.normalize_backward(&g, xh, norms, (n, d), grad)?;
            }
            None => chain(xhat, grad, &mut w)?,
        }
        let stats = self.stream.clone_dtoh(&three.stats).map_err(dev_err)?;
        self.stream.synchronize().map_err(dev_err)?;
        Ok(three.finish.apply(&stats))
    }
}
