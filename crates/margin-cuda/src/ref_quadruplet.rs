//! The quadruplet loss with a reference set (docs/REFERENCE_SETS.md 3.10), stage 3 on the N x M
//! matrix. Batch-all: term 1 is the rectangular batch-all triplet kernel; term 2 sorts every
//! (anchor, positive column) value globally and per anchor label and counts, for each
//! batch-reference negative pair (k, l), the active positive pairs whose label differs from both
//! y_k and r_l (quadruplet.cu, rectangular forms). Hard: per-row top-2 negatives, per-class best
//! pair, then one evaluation per anchor, with the self column competing for p*, then the weights
//! in place over the distances. The term-2 weights land at W[k][l]: the gradient reaches batch
//! row k through its own row of W. Batch-all reads the distances until both AvgNonZero counts
//! are known: as in the square case, its weights go to a copy of the distances while one fits the
//! stream budget, else its last pass runs in chunks of rows in place.

use crate::device::{CudaBackend, as_i32, dev_err, elems_cfg, rows_cfg};
use crate::launch::launch;
use crate::losses::{Finish, StageThree};
use crate::quad_chunks::{ChunkRows, TermTwo};
use crate::quad_hard::HardPicks;
use crate::ref_losses::RectTripletPass;
use crate::reference::{RectInput, RectQuad};
use cudarc::driver::CudaSlice;
use margin_core::{MarginError, Result};

impl CudaBackend {
    /// Batch-all quadruplet over the N x M distances `dw`, as the square case (quadruplet.rs):
    /// returns the raw weights in a copy of the distances while an N x M matrix fits the stream
    /// budget (final scale, not divided: the chain divides), else rewrites `dw` in place in
    /// chunks of rows and returns `None`.
    pub(crate) fn quadruplet_rect(
        &self,
        inp: &RectInput<'_>,
        dw: &mut CudaSlice<f32>,
        margin: f64,
        margin2: f64,
    ) -> Result<(StageThree, Option<CudaSlice<f32>>)> {
        let (n, m) = (inp.n, inp.m);
        let mut part = self.zeros::<f64>(n * 5)?;
        let none = self.zeros::<f64>(1)?;
        // Statistics only: nothing is written to the distances.
        self.quad_rect_term_one(inp, dw, margin, &mut part, false, &none)?;
        let npos = inp.labels.positive_pairs();
        let mut term2 = if npos > 0 && inp.labels.negative_pairs() > 0 {
            let quad = RectQuad {
                dmat: dw,
                rect: inp,
            };
            Some(self.quad_rect_term_two_stats(&quad, margin2, &mut part, npos)?)
        } else {
            None
        };
        let mut stats = self.reduce_stats(&part, n, 5, 2)?;
        self.safe_inverse(&mut stats, 1, 5)?;
        self.safe_inverse(&mut stats, 3, 6)?;
        let whole = n.saturating_mul(m).saturating_mul(4) <= self.stream_bytes;
        let separate = if whole {
            // Term 1 in place over a copy of the distances (raw weights), term 2 added to it.
            let mut w = self.stream.clone_dtod(&*dw).map_err(dev_err)?;
            self.quad_rect_term_one(inp, &mut w, margin, &mut part, true, &stats)?;
            if let Some(t) = term2.as_mut() {
                let quad = RectQuad {
                    dmat: dw,
                    rect: inp,
                };
                self.quad_rect_neg(&quad, margin2, t, false, &mut part, &mut w, &stats)?;
                self.quad_rect_pos(&quad, margin2, t, false, &mut part, &mut w, &stats)?;
            }
            Some(w)
        } else {
            let rows = ChunkRows {
                lab: inp.lab,
                rlab: inp.rlab,
                excl: inp.excl,
                n,
                m,
                sg: inp.sg,
                euclid: inp.euclid,
            };
            self.quad_in_chunks(&rows, dw, (margin, margin2), term2.as_ref(), &stats)?;
            None
        };
        let three = StageThree {
            stats,
            scales: (-1, -1),
            finish: Finish::Quadruplet,
        };
        Ok((three, separate))
    }

    fn quad_rect_term_one(
        &self,
        inp: &RectInput<'_>,
        w: &mut CudaSlice<f32>,
        margin: f64,
        part: &mut CudaSlice<f64>,
        weights: bool,
        stats: &CudaSlice<f64>,
    ) -> Result<()> {
        let pass = RectTripletPass {
            margin,
            semihard: false,
            smooth: false,
            part,
            stride: 5,
            write_stats: !weights,
            write_w: weights,
            stats,
            scale_idx: if weights { 5 } else { -1 },
        };
        // `w` is the distances (statistics only) or a copy of them; the weights stay raw (the
        // chain divides).
        let raw = RectInput { euclid: 0, ..*inp };
        self.triplet_rect_rows(&raw, w, pass)
    }

    fn quad_rect_term_two_stats(
        &self,
        inp: &RectQuad<'_>,
        margin2: f64,
        part: &mut CudaSlice<f64>,
        npos: u64,
    ) -> Result<TermTwo> {
        let (ni, mi) = inp.dims()?;
        let layout = inp.labels.quad_layout();
        let up_i32 = |v: &Vec<i32>| self.stream.clone_htod(v).map_err(dev_err);
        let up_i64 = |v: &Vec<i64>| self.stream.clone_htod(v).map_err(dev_err);
        let rmembers = up_i32(&layout.rmembers)?;
        let rmstart = up_i32(&layout.rmstart)?;
        let srank = up_i32(&layout.srank)?;
        let poff = up_i64(&layout.poff)?;
        let pstart = up_i64(&layout.pstart)?;
        let npos_us = usize::try_from(npos)
            .map_err(|_| MarginError::OutOfMemory("too many positive pairs".into()))?;
        let len = npos_us.next_power_of_two();
        let mut keys_g = self.zeros::<u64>(len)?;
        let mut keys_s = self.zeros::<u64>(len)?;
        let (from, to, max) = (npos, len as u64, u64::MAX);
        if len > npos_us {
            for keys in [&mut keys_g, &mut keys_s] {
                launch!(
                    self,
                    "fill_u64",
                    elems_cfg(len - npos_us)?,
                    [keys, &from, &to, &max]
                )?;
            }
        }
        launch!(
            self,
            "quad_pair_keys_ref_f32",
            rows_cfg(inp.n)?,
            [
                inp.dmat,
                inp.lab,
                &ni,
                &mi,
                &inp.sg,
                &rmembers,
                &rmstart,
                &poff,
                &srank,
                &mut keys_g,
                &mut keys_s
            ]
        )?;
        self.bitonic_sort_u64(&mut keys_g, len)?;
        self.bitonic_sort_u64(&mut keys_s, len)?;
        let mut xs_g = self.zeros::<f32>(npos_us)?;
        let mut xs_s = self.zeros::<f32>(npos_us)?;
        launch!(
            self,
            "decode_keys_f32",
            elems_cfg(npos_us)?,
            [&keys_g, &mut xs_g, &npos]
        )?;
        launch!(
            self,
            "decode_keys_f32",
            elems_cfg(npos_us)?,
            [&keys_s, &mut xs_s, &npos]
        )?;
        drop((keys_g, keys_s));
        let mut t = TermTwo {
            xs_g,
            xs_s,
            pstart,
            hist_g: self.zeros::<u64>(npos_us + 1)?,
            hist_s: self.zeros::<u64>(npos_us + 1)?,
            npos,
        };
        let none = self.zeros::<f64>(1)?;
        let mut no_w = self.zeros::<f32>(1)?;
        self.quad_rect_neg(inp, margin2, &mut t, true, part, &mut no_w, &none)?;
        self.exclusive_scan_u64(&mut t.hist_g, npos_us + 1)?;
        self.exclusive_scan_u64(&mut t.hist_s, npos_us + 1)?;
        self.quad_rect_pos(inp, margin2, &t, true, part, &mut no_w, &none)?;
        Ok(t)
    }

    /// Negative-pair side: `stats_pass` builds histograms and partials, else writes weights.
    #[allow(clippy::too_many_arguments)]
    fn quad_rect_neg(
        &self,
        inp: &RectQuad<'_>,
        margin2: f64,
        t: &mut TermTwo,
        stats_pass: bool,
        part: &mut CudaSlice<f64>,
        w: &mut CudaSlice<f32>,
        stats: &CudaSlice<f64>,
    ) -> Result<()> {
        let (ni, mi) = inp.dims()?;
        let (build, write_w) = (i32::from(stats_pass), i32::from(!stats_pass));
        let (stride, scale_idx) = (5i32, if stats_pass { -1i32 } else { 6 });
        launch!(
            self,
            "quad_neg_pairs_ref_f32",
            rows_cfg(inp.n)?,
            [
                inp.dmat,
                inp.lab,
                inp.rlab,
                &ni,
                &mi,
                &inp.sg,
                &margin2,
                &t.xs_g,
                &t.xs_s,
                &t.pstart,
                &t.npos,
                &mut t.hist_g,
                &mut t.hist_s,
                &build,
                part,
                &stride,
                &write_w,
                w,
                stats,
                &scale_idx
            ]
        )
    }

    /// Positive-pair side, after the histograms were scanned.
    #[allow(clippy::too_many_arguments)]
    fn quad_rect_pos(
        &self,
        inp: &RectQuad<'_>,
        margin2: f64,
        t: &TermTwo,
        stats_pass: bool,
        part: &mut CudaSlice<f64>,
        w: &mut CudaSlice<f32>,
        stats: &CudaSlice<f64>,
    ) -> Result<()> {
        let (ni, mi) = inp.dims()?;
        let (write_stats, write_w) = (i32::from(stats_pass), i32::from(!stats_pass));
        let (stride, scale_idx) = (5i32, if stats_pass { -1i32 } else { 6 });
        launch!(
            self,
            "quad_pos_pairs_ref_f32",
            rows_cfg(inp.n)?,
            [
                inp.dmat,
                inp.lab,
                inp.rlab,
                &ni,
                &mi,
                inp.excl,
                &inp.sg,
                &margin2,
                &t.xs_g,
                &t.xs_s,
                &t.pstart,
                &t.npos,
                &t.hist_g,
                &t.hist_s,
                &write_stats,
                part,
                &stride,
                &write_w,
                w,
                stats,
                &scale_idx
            ]
        )
    }

    /// Hard-mined quadruplet on the rectangle, in place over the distances `w`; weights final
    /// (`scales` -1).
    pub(crate) fn quadruplet_hard_rect(
        &self,
        inp: &RectInput<'_>,
        w: &mut CudaSlice<f32>,
        margin: f64,
        margin2: f64,
    ) -> Result<StageThree> {
        let n = inp.n;
        let (ni, mi) = inp.dims()?;
        let classes = inp.labels.classes;
        let ci = as_i32(classes, "classes")?;
        let (lab, rlab, sg) = (inp.lab, inp.rlab, inp.sg);
        let mut v1 = self.zeros::<f32>(n)?;
        let mut l1 = self.zeros::<i32>(n)?;
        let mut v2 = self.zeros::<f32>(n)?;
        let mut l2 = self.zeros::<i32>(n)?;
        launch!(
            self,
            "quad_hard_top2_ref_f32",
            rows_cfg(n)?,
            [
                &*w, lab, rlab, &ni, &mi, &sg, &mut v1, &mut l1, &mut v2, &mut l2
            ]
        )?;
        let mut cv = self.zeros::<f32>(classes)?;
        let mut ck = self.zeros::<i32>(classes)?;
        let mut cl = self.zeros::<i32>(classes)?;
        launch!(
            self,
            "quad_hard_class_ref_f32",
            rows_cfg(classes)?,
            [
                lab, rlab, &ni, &ci, &v1, &l1, &v2, &l2, &mut cv, &mut ck, &mut cl
            ]
        )?;
        let mut sel = self.zeros::<i32>(n * 3)?;
        let mut part = self.zeros::<f64>(n * 4)?;
        let mut active2 = self.zeros::<i32>(classes)?;
        launch!(
            self,
            "quad_hard_rows_ref_f32",
            rows_cfg(n)?,
            [
                &*w,
                lab,
                rlab,
                &ni,
                &mi,
                inp.excl,
                &sg,
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
        self.quad_hard_finish(w, (lab, rlab), (n, inp.m), (sg, inp.euclid), &picks)
    }
}
