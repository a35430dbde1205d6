//! [`Backend`] for [`CudaBackend`]: buffers, the pairwise matrix and the loss pipeline
//! (normalize, distances, weights, chain, normalization backward), all on the backend's stream.

use crate::device::{CudaBackend, as_i32, dev_err, rows_cfg};
use crate::labels::LabelInfo;
use crate::launch::launch;
use crate::losses::{Finish, SquareInput};
use crate::pipeline::kind_code;
use cudarc::driver::CudaSlice;
use margin_core::{
    Backend, DeviceLossInput, Loss, LossStats, MarginError, Metric, Result, check_device_input,
};

fn sign(metric: Metric) -> f32 {
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
            // check_device_input rejected n-pair and triplet-center with a reference set.
            return self.loss_reference(loss, input, reference, grad);
        }
        if loss.needs_centers() {
            self.triplet_center(loss, input, grad, center_grad)
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
    /// Every loss but triplet-center: N x N distances, weights, chain, normalization backward.
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

    /// Triplet-center: N x K distances to the centers, gradients for both X and C.
    fn triplet_center(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, CudaSlice<f32>>,
        grad: &mut CudaSlice<f32>,
        center_grad: Option<&mut CudaSlice<f32>>,
    ) -> Result<LossStats> {
        let Loss::TripletCenter(cfg) = loss else {
            return Err(MarginError::input("not a triplet-center loss"));
        };
        let Some((centers, k)) = input.centers else {
            return Err(MarginError::input("triplet-center needs centers"));
        };
        let metric = cfg.metric;
        let (n, d) = (input.n, input.d);
        let (ni, ki) = (as_i32(n, "N")?, as_i32(k, "K")?);
        let normed_x = if metric.normalizes() {
            Some(self.normalize(input.embeddings, n, d)?)
        } else {
            None
        };
        let normed_c = if metric.normalizes() {
            Some(self.normalize(centers, k, d)?)
        } else {
            None
        };
        let xhat = normed_x.as_ref().map_or(input.embeddings, |(x, _)| x);
        let chat = normed_c.as_ref().map_or(centers, |(c, _)| c);
        let mut dxc = self.zeros::<f32>(n * k)?;
        let kind = kind_code(metric.distance);
        self.distances(xhat, n, Some((chat, k)), d, kind, &mut dxc)?;
        // Labels were checked to lie in 0..K, so they fit an i32 index.
        let labels: Vec<i32> = input.labels.iter().map(|&l| l as i32).collect();
        let lab = self.stream.clone_htod(&labels).map_err(dev_err)?;
        let mut w = self.zeros::<f32>(n * k)?;
        let mut part = self.zeros::<f64>(n * 2)?;
        let sg = sign(metric);
        let inv_n = 1.0 / n as f64;
        launch!(
            self,
            "triplet_center_rows_f32",
            rows_cfg(n)?,
            [
                &dxc,
                &lab,
                &ni,
                &ki,
                &sg,
                &cfg.margin,
                &inv_n,
                &mut w,
                &mut part
            ]
        )?;
        let stats_dev = self.reduce_stats(&part, n, 2, 0)?;
        let mut gx = self.zeros::<f32>(n * d)?;
        let mut gc = self.zeros::<f32>(k * d)?;
        self.chain_centers(
            &mut w,
            &dxc,
            xhat,
            chat,
            (n, k, d),
            metric.distance,
            &mut gx,
            &mut gc,
        )?;
        match &normed_x {
            Some((xh, norms)) => self.normalize_backward(&gx, xh, norms, (n, d), grad)?,
            None => self.stream.memcpy_dtod(&gx, grad).map_err(dev_err)?,
        }
        if let Some(cg) = center_grad {
            match &normed_c {
                Some((ch, norms)) => self.normalize_backward(&gc, ch, norms, (k, d), cg)?,
                None => self.stream.memcpy_dtod(&gc, cg).map_err(dev_err)?,
            }
        }
        let stats = self.stream.clone_dtoh(&stats_dev).map_err(dev_err)?;
        self.stream.synchronize().map_err(dev_err)?;
        Ok(Finish::TripletCenter { n }.apply(&stats))
    }
}
