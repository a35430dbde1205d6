//! Exact k-nearest neighbours with a fused distance + top-k kernel (shaders/cuda/knn.cu): the
//! `nq x nr` matrix is never written, only `nq x k` indices and scores.
//!
//! knn.cu is its own NVRTC program (common.cuh + knn.cu), compiled once per architecture per
//! process (or read from the CUBIN cache, `cache.rs`) and loaded once per CUDA context, like the
//! main module. Two variants: `k <=`
//! [`SMALL_K`] with 32 query rows per block, `k <=` [`MAX_K`] with 16; a larger `k` falls back to
//! [`margin_core::knn_blocked`].

use crate::device::{CudaBackend, as_i32, dev_err, grid_u32, rows_cfg};
use crate::launch::launch;
use crate::{cache, kernels};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, LaunchConfig};
use margin_core::{Distance, MarginError, Metric, Neighbours, Result, check_knn, knn_blocked};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The kernel file (without common.cuh).
pub const SOURCE: &str = include_str!("../../../shaders/cuda/knn.cu");

/// Largest `k` of `knn_small_f32`.
pub const SMALL_K: usize = 32;

/// Largest `k` the fused kernels handle; a larger `k` goes through `knn_blocked`.
pub const MAX_K: usize = 128;

/// Distance evaluations per launch: bounds the time one launch runs (display watchdogs).
const PER_LAUNCH: usize = 1 << 31;

/// The two loaded kernels of one context.
struct KnnFunctions {
    small: CudaFunction,
    large: CudaFunction,
}

/// The knn kernels of a context, loaded once per context (keyed by the context handle).
fn functions_for(ctx: &Arc<CudaContext>, arch: &str) -> Result<Arc<KnnFunctions>> {
    static TABLES: OnceLock<Mutex<HashMap<usize, Arc<KnnFunctions>>>> = OnceLock::new();
    let tables = TABLES.get_or_init(Default::default);
    let key = ctx.cu_ctx() as usize;
    if let Some(t) = tables.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(t);
    }
    static COMPILED: OnceLock<cache::Memo> = OnceLock::new();
    let memo = COMPILED.get_or_init(Default::default);
    let module: Arc<CudaModule> =
        cache::load_program(ctx, memo, &kernels::source_for(SOURCE), "knn.cu", arch)?;
    let functions = Arc::new(KnnFunctions {
        small: module.load_function("knn_small_f32").map_err(dev_err)?,
        large: module.load_function("knn_large_f32").map_err(dev_err)?,
    });
    if let Ok(mut m) = tables.lock() {
        m.insert(key, functions.clone());
    }
    Ok(functions)
}

/// knn.cu's `kind`.
fn kind(metric: Metric) -> i32 {
    match metric.distance {
        Distance::Euclidean => 0,
        Distance::SquaredEuclidean => 1,
        Distance::Cosine | Distance::Dot => 2,
    }
}

fn check_len(len: usize, rows: usize, d: usize, what: &str) -> Result<()> {
    let need = rows
        .checked_mul(d)
        .ok_or_else(|| MarginError::input(format!("{what}: {rows} x {d} overflows")))?;
    if len < need {
        return Err(MarginError::input(format!(
            "{what} buffer holds {len} values, expected {rows} x {d}"
        )));
    }
    Ok(())
}

impl CudaBackend {
    /// The `k` nearest `reference` rows of every query row (`None`: the queries themselves, each
    /// query's own row excluded), closest first, ties to the lower index, by the fused kernel.
    /// Scores are the values [`margin_core::Backend::pairwise_on_device`] computes. A `k` above
    /// 128 (the on-chip list's size, `MAX_K`) falls back to [`knn_blocked`].
    pub fn fused_knn(
        &self,
        metric: Metric,
        query: &CudaSlice<f32>,
        nq: usize,
        reference: Option<(&CudaSlice<f32>, usize)>,
        d: usize,
        k: usize,
    ) -> Result<Neighbours> {
        check_knn(nq, reference.map(|r| r.1), d, k)?;
        check_len(query.len(), nq, d, "query")?;
        if let Some((r, nr)) = reference {
            check_len(r.len(), nr, d, "reference")?;
        }
        if k > MAX_K {
            return knn_blocked(self, metric, query, nq, reference, d, k);
        }
        let nr = reference.map_or(nq, |r| r.1);
        as_i32(nq, "queries")?;
        let (nri, di, ki) = (as_i32(nr, "references")?, as_i32(d, "D")?, as_i32(k, "k")?);
        let functions = functions_for(self.stream.context(), &self.info.arch)?;
        let normed_q = if metric.normalizes() {
            Some(self.normalize(query, nq, d)?.0)
        } else {
            None
        };
        let normed_r = match reference {
            Some((r, rows)) if metric.normalizes() => Some(self.normalize(r, rows, d)?.0),
            _ => None,
        };
        let q = normed_q.as_ref().unwrap_or(query);
        let r = match reference {
            Some((raw, _)) => normed_r.as_ref().unwrap_or(raw),
            None => q,
        };
        let kind = kind(metric);
        let qn = self.sq_norms(q, nq, d, kind)?;
        let rn_own = match reference {
            Some(_) => Some(self.sq_norms(r, nr, d, kind)?),
            None => None,
        };
        let rn = rn_own.as_ref().unwrap_or(&qn);
        let mut out_idx = self.zeros::<u32>(nq * k)?;
        let mut out_val = self.zeros::<f32>(nq * k)?;
        let (func, tq) = if k <= SMALL_K {
            (&functions.small, 32)
        } else {
            (&functions.large, 16)
        };
        let self_ex = i32::from(reference.is_none());
        let chunk = (PER_LAUNCH / nr.max(1) / tq).max(1) * tq;
        let mut start = 0;
        while start < nq {
            let rows = chunk.min(nq - start);
            let (q_end, q_off) = (as_i32(start + rows, "queries")?, as_i32(start, "queries")?);
            let cfg = LaunchConfig {
                grid_dim: (grid_u32(rows.div_ceil(tq))?, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            use cudarc::driver::PushKernelArg as _;
            let mut builder = self.stream.launch_builder(func);
            builder
                .arg(q)
                .arg(r)
                .arg(&qn)
                .arg(rn)
                .arg(&mut out_idx)
                .arg(&mut out_val)
                .arg(&q_end)
                .arg(&nri)
                .arg(&di)
                .arg(&ki)
                .arg(&kind)
                .arg(&self_ex)
                .arg(&q_off);
            // SAFETY: the arguments match knn_small_f32 / knn_large_f32 in order and type; q and r
            // hold at least nq x d and nr x d values (checked above or allocated so), qn / rn nq
            // and nr values (or one, unread, for dot), out_idx / out_val nq x k; k <= the variant's
            // capacity.
            unsafe { builder.launch(cfg) }.map_err(dev_err)?;
            start += rows;
        }
        let indices = self.stream.clone_dtoh(&out_idx).map_err(dev_err)?;
        let scores = self.stream.clone_dtoh(&out_val).map_err(dev_err)?;
        self.stream.synchronize().map_err(dev_err)?;
        Ok(Neighbours { k, indices, scores })
    }

    /// Squared row norms as pairwise_f32 reads them (one unread value for dot products).
    fn sq_norms(
        &self,
        x: &CudaSlice<f32>,
        n: usize,
        d: usize,
        kind: i32,
    ) -> Result<CudaSlice<f32>> {
        if kind == 2 {
            return self.zeros::<f32>(1);
        }
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
}
