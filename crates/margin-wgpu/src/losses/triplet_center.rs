//! Triplet-center: the N x K matrix between the embeddings and the K centers. W is not square, so
//! the chain gives two products (slabs.rs `SlabProducts`):
//! `G_x = diag(rowsum W') X - W' C` and `G_c = diag(colsum W') C - W'^T X` for distances,
//! `W' C` and `W'^T X` for similarities. Rows are independent, so past one storage binding the
//! samples run in slabs of rows that each fit.

use super::slabs::{SlabProducts, SlabRows, rows_per_slab};
use super::{RowTotals, avg, inv};
use crate::context::{Gpu, Groups, Params};
use crate::stages::{self, PairMode};
use margin_core::{Loss, LossStats, Result};
use wgpu::Buffer;

/// Triplet-center: stages 1-5 against K centers; gradients for X and, when asked, C.
#[allow(clippy::too_many_arguments)]
pub(crate) fn triplet_center_loss(
    gpu: &Gpu,
    loss: &Loss,
    x: &Buffer,
    n: usize,
    d: usize,
    labels: &[i64],
    centers: (&Buffer, usize),
    grad: &Buffer,
    center_grad: Option<&Buffer>,
) -> Result<LossStats> {
    let Loss::TripletCenter(cfg) = loss else {
        return Err(margin_core::MarginError::device(
            "internal: not a triplet-center loss",
        ));
    };
    let metric = cfg.metric;
    let (c, k) = centers;
    let rows = rows_per_slab(gpu, n, k, "one row of the N x K distance matrix")?;
    let e = gpu.scratch("e", rows * k)?;
    let w = gpu.scratch("w", rows * k)?;
    let rstat = gpu.scratch("rstat", 2 * n)?;
    let rcnt = gpu.scratch("rcnt", 4 * n)?;
    // Labels are in 0..K (checked by check_device_input).
    let lab: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let lab = gpu.upload("labels", &lab)?;

    let mut b = gpu.batch();
    let on = metric.normalizes();
    let xs = stages::normalize(gpu, &mut b, (x, n, d), on, stages::BATCH)?;
    let cs = stages::normalize(gpu, &mut b, (c, k, d), on, stages::OTHER)?;
    b.clear(grad);
    if let Some(cg) = center_grad {
        b.clear(cg);
    }
    b.submit();
    let slab = SlabRows::new(gpu, (&xs.h, &xs.sq), n, rows, d)?;
    for r0 in (0..n).step_by(rows) {
        let len = rows.min(n - r0);
        let mut b = gpu.batch();
        let mode = PairMode::for_loss(metric);
        slab.distances(gpu, &mut b, (r0, len), (&cs.h, &cs.sq, k), mode, &e)?;
        let mut p = Params {
            n: len as u32,
            m: k as u32,
            off: r0 as u32,
            ..Default::default()
        };
        p.f[0] = cfg.margin as f32;
        p.f[1] = inv(n as u64);
        b.run(
            &gpu.kernels.triplet_center,
            p,
            &[&e, &w, &lab, &rstat, &rcnt],
            Groups::Linear((len as u64).div_ceil(256)),
        )?;
        let chain = stages::chain_mode(metric, false);
        stages::chain_cross(gpu, &mut b, &w, &e, len, k, chain, 1.0, 1.0)?;
        let products = SlabProducts {
            c: &w,
            len,
            m: k,
            d,
            r0,
            rows: &xs.h,
            slab_rows: slab.rows(),
            cols: &cs.h,
            g_rows: Some(grad),
            g_cols: center_grad,
        };
        products.record(gpu, &mut b, metric)?;
        b.submit();
    }
    let mut b = gpu.batch();
    if on {
        stages::normalize_backward(gpu, &mut b, &xs.h, &xs.norms, grad, n, d)?;
        if let Some(cg) = center_grad {
            stages::normalize_backward(gpu, &mut b, &cs.h, &cs.norms, cg, k, d)?;
        }
    }
    b.submit();
    let r = RowTotals::read(gpu, &rstat, &rcnt, n)?;
    Ok(LossStats::new(avg(r.loss[0], n as u64), r.count[0], 0))
}
