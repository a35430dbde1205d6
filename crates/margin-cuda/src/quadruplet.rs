//! Stage 3 of the quadruplet loss: term 1 is the batch-all triplet kernel with margin α1; term 2
//! sorts all ordered positive-pair values on the device (globally and per label) and counts the
//! active negative pairs of each by binary search and scanned histograms (see quadruplet.cu).
//! Both terms reduce with AvgNonZero, so the weights are written in a second pass once the two
//! counts are known on the device, and term 2 reads the distances until then. While an N x N
//! matrix fits the stream budget ([`CudaBackend::with_stream_budget`]) the weights go to a copy
//! of the distances (returned apart: the chain divides). Beyond it the distances are the only
//! N x N matrix (SPEC, Cost): the last pass runs per chunk of rows, term 2's weights of the chunk
//! into a chunk buffer, then the triplet kernel over the same rows adding them as it rewrites the
//! rows in place (quad_chunks.rs, shared with reference sets).

use crate::device::{CudaBackend, as_i32, dev_err, elems_cfg, rows_cfg};
use crate::launch::launch;
use crate::losses::{Finish, QuadInput, SquareInput, StageThree, TripletPass};
use crate::quad_chunks::{ChunkRows, TermTwo};
use cudarc::driver::CudaSlice;
use margin_core::Result;

impl CudaBackend {
    /// Both terms over the N x N distances `dw`. Returns the weights in a separate matrix, or
    /// `None` when they overwrote `dw` in place (already divided for the euclidean chain).
    pub(crate) fn quadruplet(
        &self,
        inp: &SquareInput<'_>,
        dw: &mut CudaSlice<f32>,
        margin: f64,
        margin2: f64,
    ) -> Result<(StageThree, Option<CudaSlice<f32>>)> {
        let n = inp.n;
        let mut part = self.zeros::<f64>(n * 5)?;
        let none = self.zeros::<f64>(1)?;
        // Statistics only: nothing is written to the distances.
        self.quad_term_one(inp, dw, margin, &mut part, false, &none)?;
        let npos = inp.info.positive_pairs();
        let mut term2 = if npos > 0 && inp.info.negative_pairs() > 0 {
            let quad = QuadInput {
                dmat: dw,
                square: inp,
            };
            Some(self.quad_term_two_stats(&quad, margin2, &mut part, npos)?)
        } else {
            None
        };
        let mut stats = self.reduce_stats(&part, n, 5, 2)?;
        self.safe_inverse(&mut stats, 1, 5)?;
        self.safe_inverse(&mut stats, 3, 6)?;
        let whole = n.saturating_mul(n).saturating_mul(4) <= self.stream_bytes;
        let separate = if whole {
            // Term 1 in place over a copy of the distances (raw weights), term 2 added to it.
            let mut w = self.stream.clone_dtod(&*dw).map_err(dev_err)?;
            self.quad_term_one(inp, &mut w, margin, &mut part, true, &stats)?;
            if let Some(t) = &mut term2 {
                let quad = QuadInput {
                    dmat: dw,
                    square: inp,
                };
                self.quad_term_two_pass(&quad, margin2, &mut part, t, &mut w, &stats)?;
            }
            Some(w)
        } else {
            let excl = self.diagonal_excl(n)?;
            let rows = ChunkRows {
                lab: inp.lab,
                rlab: inp.lab,
                excl: &excl,
                n,
                m: n,
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

    fn quad_term_one(
        &self,
        inp: &SquareInput<'_>,
        w: &mut CudaSlice<f32>,
        margin: f64,
        part: &mut CudaSlice<f64>,
        weights: bool,
        stats: &CudaSlice<f64>,
    ) -> Result<()> {
        let pass = TripletPass {
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
        let raw = SquareInput { euclid: 0, ..*inp };
        self.triplet_rows(&raw, w, pass)
    }

    fn quad_term_two_stats(
        &self,
        inp: &QuadInput<'_>,
        margin2: f64,
        part: &mut CudaSlice<f64>,
        npos: u64,
    ) -> Result<TermTwo> {
        let n = inp.n;
        let ni = as_i32(n, "N")?;
        let layout = inp.info.quad_layout();
        let up_i32 = |v: &Vec<i32>| self.stream.clone_htod(v).map_err(dev_err);
        let members = up_i32(&layout.members)?;
        let mstart = up_i32(&layout.mstart)?;
        let pos_in_label = up_i32(&layout.pos_in_label)?;
        let pstart = self.stream.clone_htod(&layout.pstart).map_err(dev_err)?;
        let npos_us = usize::try_from(npos)
            .map_err(|_| margin_core::MarginError::OutOfMemory("too many positive pairs".into()))?;
        let len = npos_us.next_power_of_two();
        let mut keys_g = self.zeros::<u64>(len)?;
        let mut keys_s = self.zeros::<u64>(len)?;
        let (from, to, max) = (npos, len as u64, u64::MAX);
        if len > npos_us {
            launch!(
                self,
                "fill_u64",
                elems_cfg(len - npos_us)?,
                [&mut keys_g, &from, &to, &max]
            )?;
            launch!(
                self,
                "fill_u64",
                elems_cfg(len - npos_us)?,
                [&mut keys_s, &from, &to, &max]
            )?;
        }
        launch!(
            self,
            "quad_pair_keys_f32",
            rows_cfg(n)?,
            [
                inp.dmat,
                inp.lab,
                &ni,
                &inp.sg,
                &members,
                &mstart,
                &pstart,
                &pos_in_label,
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
        self.quad_neg(inp, margin2, &mut t, true, part, &mut no_w, &none)?;
        self.exclusive_scan_u64(&mut t.hist_g, npos_us + 1)?;
        self.exclusive_scan_u64(&mut t.hist_s, npos_us + 1)?;
        self.quad_pos(inp, margin2, &t, true, part, &mut no_w, &none)?;
        Ok(t)
    }

    fn quad_term_two_pass(
        &self,
        inp: &QuadInput<'_>,
        margin2: f64,
        part: &mut CudaSlice<f64>,
        t: &mut TermTwo,
        w: &mut CudaSlice<f32>,
        stats: &CudaSlice<f64>,
    ) -> Result<()> {
        self.quad_neg(inp, margin2, t, false, part, w, stats)?;
        self.quad_pos(inp, margin2, t, false, part, w, stats)
    }

    /// Negative-pair side: `stats_pass` builds histograms and partials, else writes weights.
    #[allow(clippy::too_many_arguments)]
    fn quad_neg(
        &self,
        inp: &QuadInput<'_>,
        margin2: f64,
        t: &mut TermTwo,
        stats_pass: bool,
        part: &mut CudaSlice<f64>,
        w: &mut CudaSlice<f32>,
        stats: &CudaSlice<f64>,
    ) -> Result<()> {
        let ni = as_i32(inp.n, "N")?;
        let (build, write_w) = (i32::from(stats_pass), i32::from(!stats_pass));
        let (stride, scale_idx) = (5i32, if stats_pass { -1i32 } else { 6 });
        launch!(
            self,
            "quad_neg_pairs_f32",
            rows_cfg(inp.n)?,
            [
                inp.dmat,
                inp.lab,
                &ni,
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
    fn quad_pos(
        &self,
        inp: &QuadInput<'_>,
        margin2: f64,
        t: &TermTwo,
        stats_pass: bool,
        part: &mut CudaSlice<f64>,
        w: &mut CudaSlice<f32>,
        stats: &CudaSlice<f64>,
    ) -> Result<()> {
        let ni = as_i32(inp.n, "N")?;
        let (write_stats, write_w) = (i32::from(stats_pass), i32::from(!stats_pass));
        let (stride, scale_idx) = (5i32, if stats_pass { -1i32 } else { 6 });
        launch!(
            self,
            "quad_pos_pairs_f32",
            rows_cfg(inp.n)?,
            [
                inp.dmat,
                inp.lab,
                &ni,
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
}
