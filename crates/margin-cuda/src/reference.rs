//! Losses with a reference set (docs/REFERENCE_SETS.md, section 6): anchors are the N batch
//! rows, positives and negatives the M reference rows. The five stages on the N x M rectangle:
//! normalize X (norms kept) and R (no backward), the N x M distance matrix, per-row weights with
//! column labels and one excluded self column per row (written over the distances in place, as
//! in the square case, so a loss holds one N x M matrix; the batch-all quadruplet keeps its
//! weights apart), the chain to X only (`W R̂`, no `W + Wᵀ`), normalization backward for X.
//! Everything stays on the stream; the only synchronization is the final read of a few f64
//! stats.

use crate::device::{CudaBackend, as_i32, dev_err, elems_cfg, rows_cfg};
use crate::launch::launch;
use crate::losses::StageThree;
use crate::pipeline::kind_code;
use crate::ref_labels::RefLabels;
use cudarc::driver::CudaSlice;
use margin_core::{
    DeviceLossInput, DeviceReference, Distance, Loss, LossStats, MarginError, Result,
};

/// What the rectangular loss kernels read beside the N x M distance matrix.
#[derive(Clone, Copy)]
pub(crate) struct RectInput<'a> {
    /// Batch label ids (N).
    pub lab: &'a CudaSlice<i32>,
    /// Reference label ids (M).
    pub rlab: &'a CudaSlice<i32>,
    /// Self column per batch row, `0xFFFFFFFF` for none (N).
    pub excl: &'a CudaSlice<u32>,
    pub labels: &'a RefLabels,
    pub n: usize,
    pub m: usize,
    /// +1 for a distance, −1 for a similarity.
    pub sg: f32,
    /// 1 for the euclidean distance: in-place weights come out divided by the distance they
    /// replace.
    pub euclid: i32,
}

/// The batch-all quadruplet's input: the distances beside the labels (its term 2 reads them
/// again after term 1's weights are known).
pub(crate) struct RectQuad<'a> {
    pub dmat: &'a CudaSlice<f32>,
    pub rect: &'a RectInput<'a>,
}

impl<'a> std::ops::Deref for RectQuad<'a> {
    type Target = RectInput<'a>;

    fn deref(&self) -> &RectInput<'a> {
        self.rect
    }
}

impl RectInput<'_> {
    /// `(N, M)` as kernel ints.
    pub fn dims(&self) -> Result<(i32, i32)> {
        Ok((as_i32(self.n, "N")?, as_i32(self.m, "M")?))
    }
}

impl CudaBackend {
    /// A loss with a reference set; `grad` (N x D) receives dL/dX.
    pub(crate) fn loss_reference(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, CudaSlice<f32>>,
        reference: DeviceReference<'_, CudaSlice<f32>>,
        grad: &mut CudaSlice<f32>,
    ) -> Result<LossStats> {
        let metric = loss.metric();
        let (n, d, m) = (input.n, input.d, reference.m);
        let nm = n
            .checked_mul(m)
            .ok_or_else(|| MarginError::input("N x M overflows"))?;
        let normed = if metric.normalizes() {
            Some(self.normalize(input.embeddings, n, d)?)
        } else {
            None
        };
        let rnormed = if metric.normalizes() {
            Some(self.normalize(reference.embeddings, m, d)?.0)
        } else {
            None
        };
        let xhat = normed.as_ref().map_or(input.embeddings, |(x, _)| x);
        let rhat = rnormed.as_ref().unwrap_or(reference.embeddings);
        let mut dw = self.zeros::<f32>(nm)?;
        let kind = kind_code(metric.distance);
        self.distances(xhat, n, Some((rhat, m)), d, kind, &mut dw)?;
        let labels = RefLabels::new(input.labels, reference.labels, reference.self_index);
        let lab = self.stream.clone_htod(&labels.ids).map_err(dev_err)?;
        let rlab = self.stream.clone_htod(&labels.rids).map_err(dev_err)?;
        let excl = self.stream.clone_htod(&labels.excl).map_err(dev_err)?;
        let rect = RectInput {
            lab: &lab,
            rlab: &rlab,
            excl: &excl,
            labels: &labels,
            n,
            m,
            sg: if metric.is_similarity() { -1.0 } else { 1.0 },
            euclid: i32::from(metric.distance == Distance::Euclidean),
        };
        let (three, apart) = self.weights_rect(loss, &rect, &mut dw)?;
        // The weights, and the distances when they are a separate matrix (the chain divides).
        let (mut w, dmat) = match apart {
            Some(w) => (w, Some(dw)),
            None => (dw, None),
        };
        let chain = RectChain {
            rect: &rect,
            dmat: dmat.as_ref(),
            three: &three,
            xhat,
            rhat,
            d,
            distance: metric.distance,
        };
        match &normed {
            Some((xh, norms)) => {
                let mut g = self.zeros::<f32>(n * d)?;
                self.chain_rect(&mut w, &chain, &mut g)?;
                self.normalize_backward(&g, xh, norms, (n, d), grad)?;
            }
            None => self.chain_rect(&mut w, &chain, grad)?,
        }
        let stats = self.stream.clone_dtoh(&three.stats).map_err(dev_err)?;
        self.stream.synchronize().map_err(dev_err)?;
        Ok(three.finish.apply(&stats))
    }

    /// Stage 4 on the rectangle: `w` (N x M, dL/dD, possibly raw counts) is scaled per pair class
    /// and, when it is apart from the distances, divided by them (euclidean) in place (weights
    /// written over the distances are divided already), then `out` (N x D) =
    /// `alpha (diag(rowsum W') X̂ − W' R̂)` for a distance, `W' R̂` for a similarity.
    fn chain_rect(
        &self,
        w: &mut CudaSlice<f32>,
        c: &RectChain<'_>,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let r = c.rect;
        let (ni, mi) = r.dims()?;
        let di = as_i32(c.d, "D")?;
        let (pos_idx, neg_idx) = c.three.scales;
        // chain_prep_rect_f32 reads D only for the euclidean division: a stand-in otherwise.
        let unread;
        let (dmat, euclid) = match c.dmat {
            Some(d) => (d, i32::from(c.distance == Distance::Euclidean)),
            None => {
                unread = self.zeros::<f32>(1)?;
                (&unread, 0)
            }
        };
        if euclid != 0 || (pos_idx, neg_idx) != (-1, -1) {
            launch!(
                self,
                "chain_prep_rect_f32",
                elems_cfg(r.n * r.m)?,
                [
                    &mut *w,
                    dmat,
                    r.lab,
                    r.rlab,
                    &c.three.stats,
                    &pos_idx,
                    &neg_idx,
                    &ni,
                    &mi,
                    &euclid
                ]
            )?;
        }
        let similarity = c.distance.is_similarity();
        let mut rs = self.zeros::<f32>(r.n)?;
        if !similarity {
            launch!(
                self,
                "row_sums_f32",
                rows_cfg(r.n)?,
                [&*w, &mut rs, &ni, &mi]
            )?;
        }
        let alpha: f32 = if c.distance == Distance::SquaredEuclidean {
            2.0
        } else {
            1.0
        };
        let (trans, diag) = (0i32, i32::from(!similarity));
        launch!(
            self,
            "grad_gemm_f32",
            crate::pipeline::gemm_cfg(r.n, c.d)?,
            [
                &*w, c.rhat, c.xhat, &rs, out, &ni, &mi, &di, &trans, &diag, &alpha
            ]
        )
    }
}

/// What stage 4 reads besides the weights.
struct RectChain<'a> {
    rect: &'a RectInput<'a>,
    /// The distances when the weights are a separate matrix (the batch-all quadruplet).
    dmat: Option<&'a CudaSlice<f32>>,
    three: &'a StageThree,
    xhat: &'a CudaSlice<f32>,
    rhat: &'a CudaSlice<f32>,
    d: usize,
    distance: Distance,
}
