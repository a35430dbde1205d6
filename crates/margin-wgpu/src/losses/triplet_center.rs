//! Triplet-center: the N x K matrix between the embeddings and the K centers. W is not square, so
//! the chain gives two products (slabs.rs `SlabProducts`):
//! `G_x = diag(rowsum W') X - W' C` and `G_c = diag(colsum W') C - W'^T X` for distances,
//! `W' C` and `W'^T X` for similarities. Rows are independent, so past one storage binding the
//! samples run in slabs of rows that each fit (the skeleton of centers.rs; this file only
//! supplies the weight kernel, whose weights land in a second slab buffer).

use super::centers::{CenterRun, Placed, Side, Slab};
use super::{RowTotals, avg, inv};
use crate::context::{Batch, Gpu, Groups, Params};
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
    let run = CenterRun::begin(gpu, metric, (x, n, d), labels, centers, grad, center_grad)?;
    let rstat = gpu.scratch("rstat", 2 * n)?;
    let rcnt = gpu.scratch("rcnt", 4 * n)?;
    let weights = |b: &mut Batch<'_>, s: &Slab<'_>| -> Result<Placed> {
        // Apart: the kernel reads the target's distance after clearing the row.
        let w = gpu.scratch("w", s.len * s.cols)?;
        let mut p = Params {
            n: s.len as u32,
            m: s.cols as u32,
            off: s.r0 as u32,
            ..Default::default()
        };
        p.f[0] = cfg.margin as f32;
        p.f[1] = inv(n as u64);
        b.run(
            &gpu.kernels.triplet_center,
            p,
            &[s.e, &w, &run.lab, &rstat, &rcnt],
            Groups::Linear((s.len as u64).div_ceil(256)),
        )?;
        Ok(Placed::Apart(w))
    };
    let what = "one row of the N x K distance matrix";
    run.slabs(Side::Samples, what, weights, |_| Ok(()))?;
    run.finish(1.0)?;
    let r = RowTotals::read(gpu, &rstat, &rcnt, n)?;
    Ok(LossStats::new(avg(r.loss[0], n as u64), r.count[0], 0))
}
