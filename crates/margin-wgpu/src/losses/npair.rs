//! N-pair: anchors are the first sample of each label with two or more, positives the second;
//! each anchor's row of the k x k matrix (against every positive) is a softmax whose target is its
//! own positive (npair.wgsl). The kernel reads E and writes W beside it, so a call holds two
//! k x k matrices. Rows are independent, so past one storage binding (k > 16384 on GPUs that
//! bind 2 GiB: batches of 32768 two-sample classes) the anchors run in slabs of rows that each
//! fit, like the square losses (slabs.rs): the slab's anchors get their rows of the products,
//! every positive the slab's transposed share.

use super::slabs::{SlabProducts, SlabRows, rows_per_slab};
use super::{avg, inv};
use crate::context::{Gpu, Groups, Params};
use crate::stages::{self, PairMode};
use margin_core::{Loss, LossStats, Result};
use wgpu::Buffer;

/// The anchor and positive rows of each label with two or more samples, in order of first
/// appearance.
fn pairs(labels: &[i64]) -> (Vec<u32>, Vec<u32>) {
    let mut seen: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut first: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        match seen.get(&l) {
            None => {
                seen.insert(l, first.len());
                first.push((i, None));
            }
            Some(&slot) => {
                if first[slot].1.is_none() {
                    first[slot].1 = Some(i);
                }
            }
        }
    }
    first
        .iter()
        .filter_map(|&(a, p)| p.map(|p| (a as u32, p as u32)))
        .unzip()
}

pub(crate) fn npair_loss(
    gpu: &Gpu,
    loss: &Loss,
    x: &Buffer,
    n: usize,
    d: usize,
    labels: &[i64],
    grad: &Buffer,
) -> Result<LossStats> {
    let metric = loss.metric();
    let (anchors, positives) = pairs(labels);
    let k = anchors.len();
    let mut b = gpu.batch();
    b.clear(grad);
    if k < 2 {
        b.submit();
        return Ok(LossStats::empty());
    }
    let rows = rows_per_slab(gpu, k, k, "one row of the k x k similarity matrix")?;
    let xa = gpu.scratch("npair_xa", k * d)?;
    let xp = gpu.scratch("npair_xp", k * d)?;
    let sqa = gpu.scratch("npair_sqa", k)?;
    let sqp = gpu.scratch("npair_sqp", k)?;
    let ga = gpu.scratch("npair_ga", k * d)?;
    let gp = gpu.scratch("npair_gp", k * d)?;
    let e = gpu.scratch("e", rows * k)?;
    let w = gpu.scratch("w", rows * k)?;
    let rstat = gpu.scratch("rstat", k)?;
    let ia = gpu.upload("anchors", &anchors)?;
    let ip = gpu.upload("positives", &positives)?;
    let on = metric.normalizes();
    let xs = stages::normalize(gpu, &mut b, (x, n, d), on, stages::BATCH)?;
    stages::gather(gpu, &mut b, &xs.h, &ia, &xa, k, d, false)?;
    stages::gather(gpu, &mut b, &xs.h, &ip, &xp, k, d, false)?;
    stages::gather(gpu, &mut b, &xs.sq, &ia, &sqa, k, 1, false)?;
    stages::gather(gpu, &mut b, &xs.sq, &ip, &sqp, k, 1, false)?;
    b.clear(&ga);
    b.clear(&gp);
    b.submit();
    let slab = SlabRows::new(gpu, (&xa, &sqa), k, rows, d)?;
    for r0 in (0..k).step_by(rows) {
        let len = rows.min(k - r0);
        let mut b = gpu.batch();
        let mode = PairMode::for_loss(metric);
        slab.distances(gpu, &mut b, (r0, len), (&xp, &sqp, k), mode, &e)?;
        let mut p = Params {
            n: len as u32,
            cols: k as u32,
            off: r0 as u32,
            ..Default::default()
        };
        p.f[0] = inv(k as u64);
        b.run(
            &gpu.kernels.npair,
            p,
            &[&e, &w, &rstat],
            Groups::Linear(len as u64),
        )?;
        let chain = stages::chain_mode(metric, false);
        stages::chain_cross(gpu, &mut b, &w, &e, len, k, chain, 1.0, 1.0)?;
        let products = SlabProducts {
            c: &w,
            len,
            m: k,
            d,
            r0,
            rows: &xa,
            slab_rows: slab.rows(),
            cols: &xp,
            g_rows: Some(&ga),
            g_cols: Some(&gp),
        };
        products.record(gpu, &mut b, metric)?;
        b.submit();
    }
    let mut b = gpu.batch();
    stages::gather(gpu, &mut b, &ga, &ia, grad, k, d, true)?;
    stages::gather(gpu, &mut b, &gp, &ip, grad, k, d, true)?;
    if on {
        stages::normalize_backward(gpu, &mut b, &xs.h, &xs.norms, grad, n, d)?;
    }
    b.submit();
    let s = gpu.read_f32(&rstat, k)?;
    let total: f64 = s.iter().map(|&v| f64::from(v)).sum();
    Ok(LossStats::new(avg(total, k as u64), k as u64, 0))
}
