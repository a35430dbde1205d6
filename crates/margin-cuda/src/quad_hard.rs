//! Stage 3 of the quadruplet loss with hard mining (shaders/cuda/quad_hard.cu): per-row top-2
//! negatives, the best pair of each class, one term-1 / term-2 evaluation per anchor, then the
//! weights once both AvgNonZero counts are known on the device. O(N^2) work, no host round trip.

use crate::device::{CudaBackend, as_i32, rows_cfg};
use crate::launch::launch;
use crate::losses::{Finish, SquareInput, StageThree};
use cudarc::driver::CudaSlice;
use margin_core::Result;

impl CudaBackend {
    /// Both terms of the hard-mined quadruplet loss, in place over the distances `dw`: weights
    /// final (`scales` -1) and already divided for the euclidean chain.
    pub(crate) fn quadruplet_hard(
        &self,
        inp: &SquareInput<'_>,
        dw: &mut CudaSlice<f32>,
        margin: f64,
        margin2: f64,
    ) -> Result<StageThree> {
        let n = inp.n;
        let ni = as_i32(n, "N")?;
        let classes = inp.info.counts.len();
        let ci = as_i32(classes, "classes")?;
        let mut v1 = self.zeros::<f32>(n)?;
        let mut l1 = self.zeros::<i32>(n)?;
        let mut v2 = self.zeros::<f32>(n)?;
        let mut l2 = self.zeros::<i32>(n)?;
        launch!(
            self,
            "quad_hard_top2_f32",
            rows_cfg(n)?,
            [
                &*dw, inp.lab, &ni, &inp.sg, &mut v1, &mut l1, &mut v2, &mut l2
            ]
        )?;
        let mut cv = self.zeros::<f32>(classes)?;
        let mut ck = self.zeros::<i32>(classes)?;
        let mut cl = self.zeros::<i32>(classes)?;
        launch!(
            self,
            "quad_hard_class_f32",
            rows_cfg(classes)?,
            [
                inp.lab, &ni, &ci, &v1, &l1, &v2, &l2, &mut cv, &mut ck, &mut cl
            ]
        )?;
        let mut sel = self.zeros::<i32>(n * 3)?;
        let mut part = self.zeros::<f64>(n * 4)?;
        let mut active2 = self.zeros::<i32>(classes)?;
        launch!(
            self,
            "quad_hard_rows_f32",
            rows_cfg(n)?,
            [
                &*dw,
                inp.lab,
                &ni,
                &inp.sg,
                &margin,
                &margin2,
                &cv,
                &ck,
                &mut sel,
                &mut part,
                &mut active2
            ]
        )?;
        let picks = HardPicks {
            sel: &sel,
            part: &part,
            active2: &active2,
            ck: &ck,
            cl: &cl,
            classes: ci,
        };
        self.quad_hard_finish(dw, (inp.lab, inp.lab), (n, n), (inp.sg, inp.euclid), &picks)
    }
}

/// What steps 4 and 5 of the hard quadruplet read beside the distances: each anchor's picks and
/// flags (`sel`), its loss and count partials (`part`: 4 per row, 2 terms), and per class the
/// number of anchors with an active term 2 and its best pair (`ck`, `cl`).
pub(crate) struct HardPicks<'a> {
    pub sel: &'a CudaSlice<i32>,
    pub part: &'a CudaSlice<f64>,
    pub active2: &'a CudaSlice<i32>,
    pub ck: &'a CudaSlice<i32>,
    pub cl: &'a CudaSlice<i32>,
    pub classes: i32,
}

impl CudaBackend {
    /// The last steps, shared by the square and the reference-set cases: the stats with both
    /// AvgNonZero factors (slots 4 and 5), then the weights in place over the `n x m` distances
    /// `dw` (`quad_hard_inplace_f32`; the square case passes `lab` twice and `m = n`), final
    /// (`scales` -1) and divided for the euclidean chain. Each block moves the row it rewrites
    /// to its slice of `keep`: at most 256 blocks (about two per SM of an H100 / H200), and no
    /// more rows of `keep` than the stream budget holds (with a reference set of N <= 256 rows,
    /// 256 rows would be the whole N x M matrix again).
    pub(crate) fn quad_hard_finish(
        &self,
        dw: &mut CudaSlice<f32>,
        (lab, rlab): (&CudaSlice<i32>, &CudaSlice<i32>),
        (n, m): (usize, usize),
        (sg, euclid): (f32, i32),
        p: &HardPicks<'_>,
    ) -> Result<StageThree> {
        let (s1, s2) = (4i32, 5i32);
        let mut stats = self.reduce_stats(p.part, n, 4, 2)?;
        self.safe_inverse(&mut stats, 1, s1)?;
        self.safe_inverse(&mut stats, 3, s2)?;
        let fit = (self.stream_bytes / (4 * m.max(1))).max(1);
        let blocks = n.clamp(1, 256).min(fit);
        let mut keep = self.zeros::<f32>(blocks * m)?;
        let (ni, mi) = (as_i32(n, "N")?, as_i32(m, "M")?);
        launch!(
            self,
            "quad_hard_inplace_f32",
            rows_cfg(blocks)?,
            [
                dw, lab, rlab, &ni, &mi, &sg, &euclid, p.sel, &stats, &s1, &s2, p.active2, p.ck,
                p.cl, &p.classes, &mut keep
            ]
        )?;
        Ok(StageThree {
            stats,
            scales: (-1, -1),
            finish: Finish::Contrastive,
        })
    }
}
