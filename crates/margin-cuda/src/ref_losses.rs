//! Stage 3 (weights) with a reference set, per loss, on the N x M matrix: the `*_ref_*` kernels
//! (the square kernels generalized to column labels, M columns and one excluded column per row),
//! then the per-row partials reduced on the device. As in the square case, the kernels overwrite
//! the distances with the weights in place (shaders/cuda/common.cuh `RowOut`), so a loss holds
//! one N x M matrix; only the batch-all quadruplet keeps its weights apart, within the stream
//! budget (ref_quadruplet.rs). Batch-level rules are decided here from the
//! host labels (docs/REFERENCE_SETS.md 2.3, and "zero if there is no positive or no negative
//! pair" for lifted structure, NT-Xent and SupCon).

use crate::device::{CudaBackend, rows_cfg};
use crate::launch::launch;
use crate::losses::{Finish, StageThree};
use crate::reference::RectInput;
use cudarc::driver::CudaSlice;
use margin_core::{Loss, MarginError, Mining, Result};

/// Flags and outputs of one `triplet_ref_rows_f32` launch (as `TripletPass` in losses.rs).
pub(crate) struct RectTripletPass<'a> {
    pub margin: f64,
    pub semihard: bool,
    pub smooth: bool,
    pub part: &'a mut CudaSlice<f64>,
    pub stride: i32,
    pub write_stats: bool,
    pub write_w: bool,
    pub stats: &'a CudaSlice<f64>,
    pub scale_idx: i32,
}

impl CudaBackend {
    /// Stage 3 for every loss that takes a reference set. `dw` (N x M) holds the distances and
    /// receives dL/dD in place (divided by the distance for the euclidean chain), except for the
    /// batch-all quadruplet within the stream budget, which reads the distances again after its
    /// first weights and returns its raw weights apart (the chain divides), leaving `dw` as is.
    pub(crate) fn weights_rect(
        &self,
        loss: &Loss,
        inp: &RectInput<'_>,
        dw: &mut CudaSlice<f32>,
    ) -> Result<(StageThree, Option<CudaSlice<f32>>)> {
        if let Loss::Quadruplet(c) = loss
            && c.mining == Mining::All
        {
            return self.quadruplet_rect(inp, dw, c.margin, c.margin2);
        }
        Ok((self.weights_rect_in_place(loss, inp, dw)?, None))
    }

    /// Stage 3 of every reference-set loss but the batch-all quadruplet, in place over `w`.
    fn weights_rect_in_place(
        &self,
        loss: &Loss,
        inp: &RectInput<'_>,
        w: &mut CudaSlice<f32>,
    ) -> Result<StageThree> {
        let (n, labels) = (inp.n, inp.labels);
        let (ni, mi) = inp.dims()?;
        let (sg, sgd) = (inp.sg, f64::from(inp.sg));
        let (pairs, negs) = (labels.positive_pairs(), labels.negative_pairs());
        let tiny = labels.tiny();
        let (lab, rlab, excl, euclid) = (inp.lab, inp.rlab, inp.excl, inp.euclid);
        match loss {
            Loss::Contrastive(_) if tiny => self.nothing_in_place(Finish::Contrastive, w),
            Loss::Contrastive(c) => {
                let (pm, nm) = (sgd * c.pos_margin, sgd * c.neg_margin);
                let mut part = self.zeros::<f64>(n * 4)?;
                launch!(
                    self,
                    "contrastive_ref_rows_f32",
                    rows_cfg(n)?,
                    [
                        w, lab, rlab, &ni, &mi, excl, &sg, &pm, &nm, &euclid, &mut part
                    ]
                )?;
                let mut stats = self.reduce_stats(&part, n, 4, 2)?;
                self.safe_inverse(&mut stats, 1, 4)?;
                self.safe_inverse(&mut stats, 3, 5)?;
                Ok(StageThree {
                    stats,
                    scales: (4, 5),
                    finish: Finish::Contrastive,
                })
            }
            Loss::Triplet(c) => {
                let mut part = self.zeros::<f64>(n * 2)?;
                if c.mining == Mining::Hard {
                    let smooth = i32::from(c.smooth);
                    launch!(
                        self,
                        "triplet_hard_ref_rows_f32",
                        rows_cfg(n)?,
                        [
                            w, lab, rlab, &ni, &mi, excl, &sg, &c.margin, &smooth, &euclid,
                            &mut part
                        ]
                    )?;
                } else {
                    let none = self.zeros::<f64>(1)?;
                    let pass = RectTripletPass {
                        margin: c.margin,
                        semihard: c.mining == Mining::SemiHard,
                        smooth: c.smooth,
                        part: &mut part,
                        stride: 2,
                        write_stats: true,
                        write_w: true,
                        stats: &none,
                        scale_idx: -1,
                    };
                    self.triplet_rect_rows(inp, w, pass)?;
                }
                let mut stats = self.reduce_stats(&part, n, 2, 1)?;
                self.safe_inverse(&mut stats, 1, 2)?;
                Ok(StageThree {
                    stats,
                    scales: (2, 2),
                    finish: Finish::Triplet,
                })
            }
            Loss::LiftedStructure(_) if tiny || pairs == 0 || negs == 0 => {
                self.nothing_in_place(Finish::Lifted { pairs: 0 }, w)
            }
            Loss::LiftedStructure(c) => {
                let (pm, nm) = (sgd * c.pos_margin, sgd * c.neg_margin);
                let mut lse = self.zeros::<f64>(n)?;
                launch!(
                    self,
                    "lifted_lse_ref_f32",
                    rows_cfg(n)?,
                    [&*w, lab, rlab, &ni, &mi, &sg, &nm, &mut lse]
                )?;
                let inv = 1.0 / pairs as f64;
                // The aliased pairs read other rows' columns: summed before any row changes.
                let mut alias = self.zeros::<f64>(n)?;
                launch!(
                    self,
                    "lifted_ref_alias_f32",
                    rows_cfg(n)?,
                    [
                        &*w, lab, rlab, &ni, &mi, excl, &sg, &pm, &lse, &inv, &mut alias
                    ]
                )?;
                let mut part = self.zeros::<f64>(n * 2)?;
                launch!(
                    self,
                    "lifted_ref_rows_f32",
                    rows_cfg(n)?,
                    [
                        w, lab, rlab, &ni, &mi, excl, &sg, &nm, &pm, &lse, &alias, &inv, &euclid,
                        &mut part
                    ]
                )?;
                Ok(StageThree {
                    stats: self.reduce_stats(&part, n, 2, 0)?,
                    scales: (-1, -1),
                    finish: Finish::Lifted { pairs },
                })
            }
            Loss::MultiSimilarity(_) if tiny => self.nothing_in_place(Finish::Mean { n }, w),
            Loss::MultiSimilarity(c) => {
                let bp = sgd * c.base;
                let inv_n = 1.0 / n as f64;
                let mut part = self.zeros::<f64>(n * 3)?;
                launch!(
                    self,
                    "multi_similarity_ref_rows_f32",
                    rows_cfg(n)?,
                    [
                        w, lab, rlab, &ni, &mi, excl, &sg, &c.alpha, &c.beta, &bp, &inv_n, &euclid,
                        &mut part
                    ]
                )?;
                Ok(StageThree {
                    stats: self.reduce_stats(&part, n, 3, 0)?,
                    scales: (-1, -1),
                    finish: Finish::Mean { n },
                })
            }
            Loss::Circle(_) if tiny => self.nothing_in_place(Finish::Triplet, w),
            Loss::Circle(c) => {
                let mut part = self.zeros::<f64>(n * 2)?;
                launch!(
                    self,
                    "circle_ref_rows_f32",
                    rows_cfg(n)?,
                    [w, lab, rlab, &ni, &mi, excl, &c.margin, &c.gamma, &mut part]
                )?;
                self.avg_non_zero(&part, n)
            }
            Loss::NTXent(_) if tiny || pairs == 0 || negs == 0 => {
                self.nothing_in_place(Finish::PairMean { pairs: 0 }, w)
            }
            Loss::NTXent(c) => {
                let inv_tau = 1.0 / c.temperature;
                let inv_tp = inv_tau / pairs as f64;
                let mut part = self.zeros::<f64>(n)?;
                launch!(
                    self,
                    "ntxent_ref_rows_f32",
                    rows_cfg(n)?,
                    [
                        w, lab, rlab, &ni, &mi, excl, &sg, &inv_tau, &inv_tp, &euclid, &mut part
                    ]
                )?;
                Ok(StageThree {
                    stats: self.reduce_stats(&part, n, 1, 0)?,
                    scales: (-1, -1),
                    finish: Finish::PairMean { pairs },
                })
            }
            Loss::SupCon(_) if tiny || pairs == 0 || negs == 0 => {
                self.nothing_in_place(Finish::Triplet, w)
            }
            Loss::SupCon(c) => {
                let inv_tau = 1.0 / c.temperature;
                let mut part = self.zeros::<f64>(n * 2)?;
                launch!(
                    self,
                    "supcon_ref_rows_f32",
                    rows_cfg(n)?,
                    [
                        w, lab, rlab, &ni, &mi, excl, &sg, &inv_tau, &euclid, &mut part
                    ]
                )?;
                self.avg_non_zero(&part, n)
            }
            Loss::GeneralizedLiftedStructure(_) if tiny => {
                self.nothing_in_place(Finish::Mean { n }, w)
            }
            Loss::GeneralizedLiftedStructure(c) => {
                let (pm, nm) = (sgd * c.pos_margin, sgd * c.neg_margin);
                let inv_n = 1.0 / n as f64;
                let mut part = self.zeros::<f64>(n * 2)?;
                launch!(
                    self,
                    "gen_lifted_ref_rows_f32",
                    rows_cfg(n)?,
                    [
                        w, lab, rlab, &ni, &mi, excl, &sg, &pm, &nm, &inv_n, &euclid, &mut part
                    ]
                )?;
                Ok(StageThree {
                    stats: self.reduce_stats(&part, n, 2, 0)?,
                    scales: (-1, -1),
                    finish: Finish::Mean { n },
                })
            }
            Loss::Quadruplet(c) if c.mining == Mining::Hard => {
                self.quadruplet_hard_rect(inp, w, c.margin, c.margin2)
            }
            Loss::Quadruplet(_) => {
                Err(MarginError::config("quadruplet mining must be all or hard"))
            }
            // Rejected before any launch by check_device_input too (`supports_reference`); the
            // losses with centers already have their reference, n-pair's PML raises.
            Loss::NPair(_)
            | Loss::TripletCenter(_)
            | Loss::ProxyAnchor(_)
            | Loss::ProxyNca(_)
            | Loss::NormalizedSoftmax(_)
            | Loss::CosFace(_) => Err(loss.reference_unsupported()),
        }
    }

    /// One launch of the per-anchor triplet kernel over M columns (batch-all / semihard, relu /
    /// softplus), in place over `w` (with `write_w`); also term 1 of the quadruplet loss, over a
    /// copy of the distances with `inp.euclid` 0.
    pub(crate) fn triplet_rect_rows(
        &self,
        inp: &RectInput<'_>,
        w: &mut CudaSlice<f32>,
        p: RectTripletPass<'_>,
    ) -> Result<()> {
        let (ni, mi) = inp.dims()?;
        let mut t = self.triplet_launch(inp.n, inp.m)?;
        let (semihard, smooth) = (i32::from(p.semihard), i32::from(p.smooth));
        let (ws, ww) = (i32::from(p.write_stats), i32::from(p.write_w));
        launch!(
            self,
            "triplet_ref_rows_f32",
            t.cfg,
            [
                w,
                inp.lab,
                inp.rlab,
                &ni,
                &mi,
                inp.excl,
                &inp.sg,
                &p.margin,
                &semihard,
                &smooth,
                &inp.euclid,
                p.part,
                &p.stride,
                &ws,
                &ww,
                p.stats,
                &p.scale_idx,
                &mut t.scratch,
                &mut t.diff,
                &t.cap
            ]
        )
    }
}
