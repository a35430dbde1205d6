//! Stage 3 of the log-sum-exp losses ported from PML 2.9 (multi-similarity, circle, NT-Xent,
//! SupCon, generalized lifted structure): one `*_rows_f32` launch each (shaders/cuda/
//! pml_losses.cu), then the per-row partials reduced on the device. Batch-level conditions are
//! decided here from the labels, which stay on the host. Every launch overwrites the distance
//! matrix `w` with the weights in place (shaders/cuda/common.cuh `RowOut`).

use crate::device::{CudaBackend, as_i32, dev_err, rows_cfg};
use crate::launch::launch;
use crate::losses::{Finish, SquareInput, StageThree};
use cudarc::driver::CudaSlice;
use margin_core::{
    CircleConfig, GeneralizedLiftedStructureConfig, MultiSimilarityConfig, NTXentConfig, Result,
    SupConConfig,
};

impl CudaBackend {
    /// [`Self::nothing`] in place: the distance matrix `w` becomes the all-zero weight matrix.
    pub(crate) fn nothing_in_place(
        &self,
        finish: Finish,
        w: &mut CudaSlice<f32>,
    ) -> Result<StageThree> {
        self.stream.memset_zeros(w).map_err(dev_err)?;
        self.nothing(finish)
    }

    /// A loss of 0 with nothing active and no weights (a batch the loss ignores).
    pub(crate) fn nothing(&self, finish: Finish) -> Result<StageThree> {
        Ok(StageThree {
            stats: self.zeros::<f64>(3)?,
            scales: (-1, -1),
            finish,
        })
    }

    /// True when the batch has an ordered positive pair and a negative pair.
    fn has_pos_and_neg(inp: &SquareInput<'_>) -> bool {
        inp.info.positive_pairs() > 0 && inp.info.negative_pairs() > 0
    }

    /// Multi-similarity: final weights, mean over all N anchors.
    pub(crate) fn multi_similarity(
        &self,
        c: &MultiSimilarityConfig,
        inp: &SquareInput<'_>,
        w: &mut CudaSlice<f32>,
    ) -> Result<StageThree> {
        let n = inp.n;
        let ni = as_i32(n, "N")?;
        let bp = f64::from(inp.sg) * c.base;
        let inv_n = 1.0 / n.max(1) as f64;
        let mut part = self.zeros::<f64>(n * 3)?;
        launch!(
            self,
            "multi_similarity_rows_f32",
            rows_cfg(n)?,
            [
                w,
                inp.lab,
                &ni,
                &inp.sg,
                &c.alpha,
                &c.beta,
                &bp,
                &inv_n,
                &inp.euclid,
                &mut part
            ]
        )?;
        Ok(StageThree {
            stats: self.reduce_stats(&part, n, 3, 0)?,
            scales: (-1, -1),
            finish: Finish::Mean { n },
        })
    }

    /// Circle (cosine only, validated in core): raw weights scaled by 1/count in stage 4.
    pub(crate) fn circle(
        &self,
        c: &CircleConfig,
        inp: &SquareInput<'_>,
        w: &mut CudaSlice<f32>,
    ) -> Result<StageThree> {
        let n = inp.n;
        let ni = as_i32(n, "N")?;
        let mut part = self.zeros::<f64>(n * 2)?;
        launch!(
            self,
            "circle_rows_f32",
            rows_cfg(n)?,
            [w, inp.lab, &ni, &c.margin, &c.gamma, &mut part]
        )?;
        self.avg_non_zero(&part, n)
    }

    /// NT-Xent: final weights, mean over the ordered positive pairs.
    pub(crate) fn ntxent(
        &self,
        c: &NTXentConfig,
        inp: &SquareInput<'_>,
        w: &mut CudaSlice<f32>,
    ) -> Result<StageThree> {
        let pairs = inp.info.positive_pairs();
        if !Self::has_pos_and_neg(inp) {
            return self.nothing_in_place(Finish::PairMean { pairs: 0 }, w);
        }
        let n = inp.n;
        let ni = as_i32(n, "N")?;
        let inv_tau = 1.0 / c.temperature;
        let inv_tp = inv_tau / pairs as f64;
        let mut part = self.zeros::<f64>(n)?;
        launch!(
            self,
            "ntxent_rows_f32",
            rows_cfg(n)?,
            [
                w,
                inp.lab,
                &ni,
                &inp.sg,
                &inv_tau,
                &inv_tp,
                &inp.euclid,
                &mut part
            ]
        )?;
        Ok(StageThree {
            stats: self.reduce_stats(&part, n, 1, 0)?,
            scales: (-1, -1),
            finish: Finish::PairMean { pairs },
        })
    }

    /// SupCon: raw weights scaled by 1/count in stage 4.
    pub(crate) fn supcon(
        &self,
        c: &SupConConfig,
        inp: &SquareInput<'_>,
        w: &mut CudaSlice<f32>,
    ) -> Result<StageThree> {
        if !Self::has_pos_and_neg(inp) {
            return self.nothing_in_place(Finish::Triplet, w);
        }
        let n = inp.n;
        let ni = as_i32(n, "N")?;
        let inv_tau = 1.0 / c.temperature;
        let mut part = self.zeros::<f64>(n * 2)?;
        launch!(
            self,
            "supcon_rows_f32",
            rows_cfg(n)?,
            [w, inp.lab, &ni, &inp.sg, &inv_tau, &inp.euclid, &mut part]
        )?;
        self.avg_non_zero(&part, n)
    }

    /// Generalized lifted structure: final weights, mean over all N anchors.
    pub(crate) fn gen_lifted(
        &self,
        c: &GeneralizedLiftedStructureConfig,
        inp: &SquareInput<'_>,
        w: &mut CudaSlice<f32>,
    ) -> Result<StageThree> {
        let n = inp.n;
        let ni = as_i32(n, "N")?;
        let sgd = f64::from(inp.sg);
        let (pm, nm) = (sgd * c.pos_margin, sgd * c.neg_margin);
        let inv_n = 1.0 / n.max(1) as f64;
        let mut part = self.zeros::<f64>(n * 2)?;
        launch!(
            self,
            "gen_lifted_rows_f32",
            rows_cfg(n)?,
            [
                w,
                inp.lab,
                &ni,
                &inp.sg,
                &pm,
                &nm,
                &inv_n,
                &inp.euclid,
                &mut part
            ]
        )?;
        Ok(StageThree {
            stats: self.reduce_stats(&part, n, 2, 0)?,
            scales: (-1, -1),
            finish: Finish::Mean { n },
        })
    }

    /// `[sum, count]` partials of an AvgNonZero loss: stats `[sum, count, 1/count]`, with the
    /// raw weights of every pair scaled by `1/count` in stage 4.
    pub(crate) fn avg_non_zero(&self, part: &CudaSlice<f64>, n: usize) -> Result<StageThree> {
        let mut stats = self.reduce_stats(part, n, 2, 1)?;
        self.safe_inverse(&mut stats, 1, 2)?;
        Ok(StageThree {
            stats,
            scales: (2, 2),
            finish: Finish::Triplet,
        })
    }
}
