//! Stages 1, 2, 4 and 5 of docs/ALGORITHMS.md on the device (normalize, distances, chain through
//! the distance, normalization backward), plus the device-wide helpers the losses share: stats
//! reduction, exclusive scan and bitonic sort.

use crate::device::{CudaBackend, GRID_Y_MAX, as_i32, elems_cfg, grid_u32, grid_y, rows_cfg};
use crate::launch::launch;
use cudarc::driver::{CudaSlice, LaunchConfig};
use margin_core::{Distance, Result};

/// Kernel code of a distance: 0 euclidean, 1 squared euclidean, 2 dot (cosine is dot on
/// normalized rows).
pub(crate) fn kind_code(distance: Distance) -> i32 {
    match distance {
        Distance::Euclidean => 0,
        Distance::SquaredEuclidean => 1,
        Distance::Cosine | Distance::Dot => 2,
    }
}

/// Elements per block of `scan_blocks_u64` (SCAN_CHUNK in reduce.cu).
const SCAN_CHUNK: usize = 2048;

/// Output rows per tile of the tiled products (GEMM_TM in distance.cu).
const GEMM_ROWS: usize = 64;

/// Most query rows one `pairwise_f32` launch covers: its row tiles go on `gridDim.y`.
const PAIRWISE_ROWS: usize = GRID_Y_MAX * GEMM_ROWS;

/// Grid of the 64 x 64-tiled products: column tiles on x, row tiles on y (at most 65535, so
/// `rows` up to 4,194,240; callers with more rows split them).
pub(crate) fn gemm_cfg(rows: usize, cols: usize) -> Result<LaunchConfig> {
    Ok(LaunchConfig {
        grid_dim: (
            grid_u32(cols.div_ceil(64))?,
            grid_y(rows.div_ceil(GEMM_ROWS))?,
            1,
        ),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

impl CudaBackend {
    /// Stage 1: `(x̂, ‖x‖)` per row.
    pub(crate) fn normalize(
        &self,
        x: &CudaSlice<f32>,
        n: usize,
        d: usize,
    ) -> Result<(CudaSlice<f32>, CudaSlice<f32>)> {
        let mut xhat = self.zeros::<f32>(n * d)?;
        let mut norms = self.zeros::<f32>(n)?;
        let (ni, di) = (as_i32(n, "N")?, as_i32(d, "D")?);
        launch!(
            self,
            "normalize_rows_f32",
            rows_cfg(n)?,
            [x, &mut xhat, &mut norms, &ni, &di]
        )?;
        Ok((xhat, norms))
    }

    fn sqnorms(&self, x: &CudaSlice<f32>, n: usize, d: usize) -> Result<CudaSlice<f32>> {
        let mut out = self.zeros::<f32>(n)?;
        let (ni, di) = (as_i32(n, "N")?, as_i32(d, "D")?);
        launch!(
            self,
            "row_sqnorms_f32",
            rows_cfg(n)?,
            [x, &mut out, &ni, &di]
        )?;
        Ok(out)
    }

    /// Stage 2: `out` (nq x nr) = distance kind `kind` between rows of `q` and of `r` (or `q`).
    pub(crate) fn distances(
        &self,
        q: &CudaSlice<f32>,
        nq: usize,
        r: Option<(&CudaSlice<f32>, usize)>,
        d: usize,
        kind: i32,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (rb, nr) = r.unwrap_or((q, nq));
        let (qn, rn) = if kind == 2 {
            (self.zeros::<f32>(1)?, None)
        } else {
            let qn = self.sqnorms(q, nq, d)?;
            let rn = match r {
                Some((rb, nr)) => Some(self.sqnorms(rb, nr, d)?),
                None => None,
            };
            (qn, rn)
        };
        let rn_ref = rn.as_ref().unwrap_or(&qn);
        let (nqi, nri, di) = (as_i32(nq, "N")?, as_i32(nr, "N")?, as_i32(d, "D")?);
        if nq <= PAIRWISE_ROWS {
            return launch!(
                self,
                "pairwise_f32",
                gemm_cfg(nq, nr)?,
                [q, rb, &qn, rn_ref, out, &nqi, &nri, &di, &kind]
            );
        }
        // More row tiles than gridDim.y takes: blocks of query rows, through views of Q, of its
        // norms and of the output (the dot kernel reads no norms: its one-value dummy is whole).
        let mut start = 0;
        while start < nq {
            let rows = PAIRWISE_ROWS.min(nq - start);
            let qv = q.slice(start * d..(start + rows) * d);
            let qnv = if kind == 2 {
                qn.slice(..)
            } else {
                qn.slice(start..start + rows)
            };
            let mut ov = out.slice_mut(start * nr..(start + rows) * nr);
            let rows_i = as_i32(rows, "N")?;
            launch!(
                self,
                "pairwise_f32",
                gemm_cfg(rows, nr)?,
                [&qv, rb, &qnv, rn_ref, &mut ov, &rows_i, &nri, &di, &kind]
            )?;
            start += rows;
        }
        Ok(())
    }

    /// Stage 4, square case: `w` (N x N, dL/dD, possibly raw counts) becomes `M'` in place and
    /// `out` (N x D) gets `alpha (diag(rowsum M') X̂ − M' X̂)` for a distance or `M' X̂` for a
    /// similarity. Scales come from `stats[pos_idx]` / `stats[neg_idx]` by pair class. `dmat`
    /// is the distance matrix when `w` is a separate matrix (the euclidean chain divides by it);
    /// `None` when `w` was written in place over the distances, already divided.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn chain_square(
        &self,
        w: &mut CudaSlice<f32>,
        dmat: Option<&CudaSlice<f32>>,
        lab: &CudaSlice<i32>,
        stats: &CudaSlice<f64>,
        (pos_idx, neg_idx): (i32, i32),
        xhat: &CudaSlice<f32>,
        (n, d): (usize, usize),
        distance: Distance,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (ni, di) = (as_i32(n, "N")?, as_i32(d, "D")?);
        // chain_prep_f32 reads D only for the euclidean division: a one-value stand-in otherwise.
        let unread;
        let (dmat, euclid) = match dmat {
            Some(d) => (d, i32::from(distance == Distance::Euclidean)),
            None => {
                unread = self.zeros::<f32>(1)?;
                (&unread, 0)
            }
        };
        let tiles = grid_y(n.div_ceil(16))?;
        let cfg = LaunchConfig {
            grid_dim: (tiles, tiles, 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        launch!(
            self,
            "chain_prep_f32",
            cfg,
            [&mut *w, dmat, lab, stats, &pos_idx, &neg_idx, &ni, &euclid]
        )?;
        let similarity = distance.is_similarity();
        let mut rs = self.zeros::<f32>(n)?;
        if !similarity {
            launch!(self, "row_sums_f32", rows_cfg(n)?, [&*w, &mut rs, &ni, &ni])?;
        }
        let alpha: f32 = if distance == Distance::SquaredEuclidean {
            2.0
        } else {
            1.0
        };
        let (trans, diag) = (0i32, i32::from(!similarity));
        launch!(
            self,
            "grad_gemm_f32",
            gemm_cfg(n, d)?,
            [
                &*w, xhat, xhat, &rs, out, &ni, &ni, &di, &trans, &diag, &alpha
            ]
        )
    }

    /// Stage 4 against centers: `w` (N x K, final dL/dD) gives `gx` (N x D) and `gc` (K x D).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn chain_centers(
        &self,
        w: &mut CudaSlice<f32>,
        dxc: &CudaSlice<f32>,
        xhat: &CudaSlice<f32>,
        chat: &CudaSlice<f32>,
        (n, k, d): (usize, usize, usize),
        distance: Distance,
        gx: &mut CudaSlice<f32>,
        gc: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (ni, ki, di) = (as_i32(n, "N")?, as_i32(k, "K")?, as_i32(d, "D")?);
        if distance == Distance::Euclidean {
            let len = (n * k) as u64;
            launch!(
                self,
                "div_by_dist_f32",
                elems_cfg(n * k)?,
                [&mut *w, dxc, &len]
            )?;
        }
        let similarity = distance.is_similarity();
        let mut rs = self.zeros::<f32>(n)?;
        let mut cs = self.zeros::<f32>(k)?;
        if !similarity {
            launch!(self, "row_sums_f32", rows_cfg(n)?, [&*w, &mut rs, &ni, &ki])?;
            launch!(
                self,
                "col_sums_f32",
                elems_cfg(k)?,
                [&*w, &mut cs, &ni, &ki]
            )?;
        }
        let alpha: f32 = if distance == Distance::SquaredEuclidean {
            2.0
        } else {
            1.0
        };
        let diag = i32::from(!similarity);
        let (no, yes) = (0i32, 1i32);
        launch!(
            self,
            "grad_gemm_f32",
            gemm_cfg(n, d)?,
            [&*w, chat, xhat, &rs, gx, &ni, &ki, &di, &no, &diag, &alpha]
        )?;
        launch!(
            self,
            "grad_gemm_f32",
            gemm_cfg(k, d)?,
            [&*w, xhat, chat, &cs, gc, &ki, &ni, &di, &yes, &diag, &alpha]
        )
    }

    /// Stage 5: `out = (g − x̂ (x̂·g)) / max(‖x‖, 1e-12)` per row.
    pub(crate) fn normalize_backward(
        &self,
        g: &CudaSlice<f32>,
        xhat: &CudaSlice<f32>,
        norms: &CudaSlice<f32>,
        (n, d): (usize, usize),
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (ni, di) = (as_i32(n, "N")?, as_i32(d, "D")?);
        launch!(
            self,
            "normalize_backward_f32",
            rows_cfg(n)?,
            [g, xhat, norms, out, &ni, &di]
        )
    }

    /// Sums the `rows x cols` per-row partials into a new stats buffer of `cols + extra` f64.
    pub(crate) fn reduce_stats(
        &self,
        part: &CudaSlice<f64>,
        rows: usize,
        cols: usize,
        extra: usize,
    ) -> Result<CudaSlice<f64>> {
        let mut stats = self.zeros::<f64>(cols + extra)?;
        let (ri, ci) = (as_i32(rows, "rows")?, as_i32(cols, "cols")?);
        launch!(
            self,
            "reduce_cols_f64",
            rows_cfg(cols)?,
            [part, &ri, &ci, &mut stats]
        )?;
        Ok(stats)
    }

    /// `stats[to] = stats[from] > 0 ? 1 / stats[from] : 0`, on the device.
    pub(crate) fn safe_inverse(
        &self,
        stats: &mut CudaSlice<f64>,
        from: i32,
        to: i32,
    ) -> Result<()> {
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(self, "safe_inverse_f64", cfg, [stats, &from, &to])
    }

    /// In-place exclusive prefix sum of `data[..len]` (u64), device-wide.
    pub(crate) fn exclusive_scan_u64(&self, data: &mut CudaSlice<u64>, len: usize) -> Result<()> {
        let blocks = len.div_ceil(SCAN_CHUNK).max(1);
        let mut sums = self.zeros::<u64>(blocks)?;
        let len64 = len as u64;
        launch!(
            self,
            "scan_blocks_u64",
            rows_cfg(blocks)?,
            [&mut *data, &len64, &mut sums]
        )?;
        if blocks > 1 {
            self.exclusive_scan_u64(&mut sums, blocks)?;
            launch!(
                self,
                "add_offsets_u64",
                elems_cfg(len)?,
                [data, &len64, &sums]
            )?;
        }
        Ok(())
    }

    /// Ascending device-wide bitonic sort of `keys[..len]`, `len` a power of two.
    pub(crate) fn bitonic_sort_u64(&self, keys: &mut CudaSlice<u64>, len: usize) -> Result<()> {
        let len64 = len as u64;
        let mut k = 2u64;
        while k <= len64 {
            let mut j = k / 2;
            while j > 0 {
                launch!(
                    self,
                    "bitonic_step_u64",
                    elems_cfg(len)?,
                    [&mut *keys, &len64, &j, &k]
                )?;
                j /= 2;
            }
            k *= 2;
        }
        Ok(())
    }
}
