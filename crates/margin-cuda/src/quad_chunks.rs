//! The batch-all quadruplet's last pass without a second matrix, for the square case and
//! reference sets alike: per chunk of rows that fits the stream budget, term 2's weights of the
//! rows go to a zeroed chunk buffer, then the triplet kernel runs over the same rows in place,
//! adding them as it rewrites the rows (both scaled by their AvgNonZero factors, stats 5 and 6).
//! The square case is the rectangle with `rlab = lab`, `m = n` and each row's own column
//! excluded (`excl[i] = i`, what the square kernels skip).

use crate::device::{CudaBackend, as_i32, dev_err, rows_cfg};
use crate::launch::launch;
use cudarc::driver::CudaSlice;
use margin_core::Result;

/// Device tables of term 2 that survive from its stats pass to the weights pass: the sorted
/// positive-pair values (globally and grouped by label, with each label's start) and the
/// scanned histograms of the negative pairs.
pub(crate) struct TermTwo {
    pub xs_g: CudaSlice<f32>,
    pub xs_s: CudaSlice<f32>,
    pub pstart: CudaSlice<i64>,
    pub hist_g: CudaSlice<u64>,
    pub hist_s: CudaSlice<u64>,
    pub npos: u64,
}

/// The rows the chunked pass rewrites and what its kernels read beside them.
pub(crate) struct ChunkRows<'a> {
    /// Row label ids (N).
    pub lab: &'a CudaSlice<i32>,
    /// Column label ids (M).
    pub rlab: &'a CudaSlice<i32>,
    /// The excluded column of each row (N; `0xFFFFFFFF` for none).
    pub excl: &'a CudaSlice<u32>,
    pub n: usize,
    pub m: usize,
    pub sg: f32,
    pub euclid: i32,
}

impl CudaBackend {
    /// Rewrites the N x M distances `dw` with the final quadruplet weights, chunk by chunk.
    pub(crate) fn quad_in_chunks(
        &self,
        rows: &ChunkRows<'_>,
        dw: &mut CudaSlice<f32>,
        (margin, margin2): (f64, f64),
        term2: Option<&TermTwo>,
        stats: &CudaSlice<f64>,
    ) -> Result<()> {
        let (n, m) = (rows.n, rows.m);
        let (ni, mi) = (as_i32(n, "N")?, as_i32(m, "M")?);
        let chunk = (self.stream_bytes / (4 * m.max(1))).clamp(1, n.max(1));
        let mut add = self.zeros::<f32>(chunk * m)?;
        // Sized for a full chunk; the last, shorter one leaves blocks idle.
        let mut tl = self.triplet_launch(chunk, m)?;
        let (s1, s2) = (5i32, 6i32);
        let (lab, rlab, excl) = (rows.lab, rows.rlab, rows.excl);
        for a0 in (0..n).step_by(chunk) {
            let len = chunk.min(n - a0);
            let (k0, a1) = (as_i32(a0, "row")?, as_i32(a0 + len, "row")?);
            self.stream.memset_zeros(&mut add).map_err(dev_err)?;
            if let Some(t) = term2 {
                launch!(
                    self,
                    "quad_neg_rows_f32",
                    rows_cfg(len)?,
                    [
                        &*dw, lab, rlab, &ni, &mi, &rows.sg, &margin2, &t.xs_g, &t.xs_s, &t.pstart,
                        &t.npos, &k0, &mut add, stats, &s2
                    ]
                )?;
                launch!(
                    self,
                    "quad_pos_rows_f32",
                    rows_cfg(len)?,
                    [
                        &*dw, lab, rlab, &ni, &mi, excl, &rows.sg, &margin2, &t.xs_g, &t.xs_s,
                        &t.pstart, &t.npos, &t.hist_g, &t.hist_s, &k0, &mut add, stats, &s2
                    ]
                )?;
            }
            launch!(
                self,
                "triplet_rows_add_f32",
                tl.cfg,
                [
                    &mut *dw,
                    lab,
                    rlab,
                    &k0,
                    &a1,
                    &mi,
                    excl,
                    &rows.sg,
                    &margin,
                    &rows.euclid,
                    stats,
                    &s1,
                    &add,
                    &mut tl.scratch,
                    &mut tl.diff,
                    &tl.cap
                ]
            )?;
        }
        Ok(())
    }

    /// `excl[i] = i` for the square case's chunked pass (the diagonal, as the square kernels
    /// skip it).
    pub(crate) fn diagonal_excl(&self, n: usize) -> Result<CudaSlice<u32>> {
        let iota: Vec<u32> = (0..n)
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        self.stream.clone_htod(&iota).map_err(dev_err)
    }
}
