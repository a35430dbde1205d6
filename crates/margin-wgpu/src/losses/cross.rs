//! Losses over a matrix between two different row sets: triplet-center (N embeddings x K centers)
//! here, n-pair (k anchors x k positives) in npair.rs. W is not square, so the chain gives two
//! products:
//! `G_q = diag(rowsum W') Q - W' R` and `G_r = diag(colsum W') R - W'^T Q` for distances,
//! `W' R` and `W'^T Q` for similarities.

use super::{avg, inv};
use crate::context::{Batch, Gpu, Groups, Params};
use crate::stages::{self, PairMode, Product};
use margin_core::{Loss, LossStats, Metric, Result};
use wgpu::Buffer;

/// Rows of one side: normalized values and squared norms.
pub(super) struct Side<'a> {
    pub xh: &'a Buffer,
    pub sq: &'a Buffer,
    pub rows: usize,
}

/// Records `G_q` into `gq` and, when given, `G_r` into `gr`, from the chained W' (nq x nr). A loss
/// against a reference set passes no `gr` (the reference is a constant).
#[allow(clippy::too_many_arguments)]
pub(super) fn cross_products(
    gpu: &Gpu,
    b: &mut Batch<'_>,
    metric: Metric,
    w: &Buffer,
    q: &Side<'_>,
    r: &Side<'_>,
    d: usize,
    gq: &Buffer,
    gr: Option<&Buffer>,
) -> Result<()> {
    let distance = !metric.is_similarity();
    let (alpha, beta) = if distance { (-1.0, 1.0) } else { (1.0, 0.0) };
    let rs = gpu.scratch("rs", q.rows)?;
    let cs = gpu.scratch("cs", r.rows)?;
    if distance {
        stages::row_sums(gpu, b, w, q.rows, r.rows, &rs)?;
        if gr.is_some() {
            stages::col_sums(gpu, b, w, q.rows, r.rows, &cs)?;
        }
    }
    stages::matmul(
        gpu,
        b,
        &Product {
            a: w,
            transposed: false,
            b: r.xh,
            rs: &rs,
            x: q.xh,
            out: gq,
            rows: q.rows,
            cols: d,
            inner: r.rows,
            alpha,
            beta,
            out_row: 0,
            accumulate: false,
        },
    )?;
    if let Some(gr) = gr {
        stages::matmul(
            gpu,
            b,
            &Product {
                a: w,
                transposed: true,
                b: q.xh,
                rs: &cs,
                x: r.xh,
                out: gr,
                rows: r.rows,
                cols: d,
                inner: q.rows,
                alpha,
                beta,
                out_row: 0,
                accumulate: false,
            },
        )?;
    }
    Ok(())
}

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
    gpu.check_size("the N x K distance matrix", (n * k) as u64 * 4)?;
    let e = gpu.scratch("e", n * k)?;
    let w = gpu.scratch("w", n * k)?;
    let rstat = gpu.scratch("rstat", 2 * n)?;
    let rcnt = gpu.scratch("rcnt", 4 * n)?;
    // Labels are in 0..K (checked by check_device_input).
    let lab: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let lab = gpu.upload("labels", &lab)?;

    let mut b = gpu.batch();
    let on = metric.normalizes();
    let xs = stages::normalize(gpu, &mut b, (x, n, d), on, stages::BATCH)?;
    let cs = stages::normalize(gpu, &mut b, (c, k, d), on, stages::OTHER)?;
    let q = Side {
        xh: &xs.h,
        sq: &xs.sq,
        rows: n,
    };
    let r = Side {
        xh: &cs.h,
        sq: &cs.sq,
        rows: k,
    };
    stages::pairwise(
        gpu,
        &mut b,
        (q.xh, q.sq, n),
        (r.xh, r.sq, k),
        d,
        PairMode::for_loss(metric),
        &e,
    )?;
    let mut p = Params {
        n: n as u32,
        m: k as u32,
        ..Default::default()
    };
    p.f[0] = cfg.margin as f32;
    p.f[1] = inv(n as u64);
    b.run(
        &gpu.kernels.triplet_center,
        p,
        &[&e, &w, &lab, &rstat, &rcnt],
        Groups::Linear((n as u64).div_ceil(256)),
    )?;
    b.submit();
    let s = gpu.read_f32(&rstat, 2 * n)?;
    let cnt = gpu.read_u32(&rcnt, 4 * n)?;
    let total: f64 = (0..n).map(|i| f64::from(s[2 * i])).sum();
    let active: u64 = (0..n).map(|i| u64::from(cnt[4 * i])).sum();

    let mut b = gpu.batch();
    stages::chain_cross(
        gpu,
        &mut b,
        &w,
        &e,
        n,
        k,
        stages::chain_mode(metric, false),
        1.0,
        1.0,
    )?;
    cross_products(gpu, &mut b, metric, &w, &q, &r, d, grad, center_grad)?;
    if on {
        stages::normalize_backward(gpu, &mut b, &xs.h, &xs.norms, grad, n, d)?;
        if let Some(cg) = center_grad {
            stages::normalize_backward(gpu, &mut b, &cs.h, &cs.norms, cg, k, d)?;
        }
    }
    b.submit();
    Ok(LossStats::new(avg(total, n as u64), active, 0))
}
