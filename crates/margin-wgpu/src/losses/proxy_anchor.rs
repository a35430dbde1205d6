//! Proxy-anchor (PML `ProxyAnchorLoss`, Kim et al. 2020): the batch against K proxies, given as
//! the centers. With `e = sign · D` (smaller is closer) and `m' = sign · margin`, per proxy c:
//! `A_c = log(1 + Σ_{y_i = c} e^{α (e_ci − m')})`, `B_c = log(1 + Σ_{y_i ≠ c} e^{α (−m' − e_ci)})`,
//! and `L = Σ_c A_c / |C+| + Σ_c B_c / K` with `C+` the proxies with a positive.
//!
//! Both sums run per proxy over the samples, so the matrix is computed transposed, K x N (proxies
//! as rows, samples as columns): each proxy's two add-one log-sum-exps are then row-local, and
//! split_lse.wgsl computes them as it does multi-similarity's (its mode 3: one workgroup per
//! proxy, max-shifted, the weights written in place over E). Past one storage binding the proxies
//! run in slabs of rows, each complete by itself (one pass, no cross-slab reduction). The scales
//! `1/|C+|` and `1/K` follow from the host labels before any launch, so the kernel writes final
//! weights; it returns each proxy's unscaled `[A_c, B_c]`, divided and added on the host in f64.
//!
//! Stage 4 is triplet-center's with the roles swapped (slabs.rs `SlabProducts`): the rows'
//! product gives the proxies' gradient, the columns' the embeddings'. The rows' product is
//! skipped when the caller asks for no center gradient.

use super::slabs::{SlabProducts, SlabRows, rows_per_slab};
use super::softmax::{ADD_ONE, MODE_PROXY_ANCHOR};
use super::{NONE, RowTotals, divides_in_place};
use crate::context::{Gpu, Groups, Params};
use crate::stages::{self, PairMode};
use margin_core::{Loss, LossStats, MarginError, ProxyAnchorConfig, Result};
use wgpu::Buffer;

/// Proxy-anchor: stages 1-5 against K proxies; gradients for X and, when asked, the proxies.
#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_anchor_loss(
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
    let Loss::ProxyAnchor(cfg) = loss else {
        return Err(MarginError::device("internal: not a proxy-anchor loss"));
    };
    let metric = cfg.metric;
    let (c, k) = centers;
    // Labels are in 0..K (checked by check_device_input).
    let lab: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let scales = Scales::new(&lab, k);
    let rows = rows_per_slab(gpu, k, n, "one row of the K x N proxy matrix")?;
    stages::u32_of(2 * rows + n, "the label count")?;
    let e = gpu.scratch("e", rows * n)?;
    let rstat = gpu.scratch("rstat", 2 * rows)?;
    let rcnt = gpu.scratch("rcnt", 4 * rows)?;
    let unread = gpu.scratch("unread", 1)?;

    let mut b = gpu.batch();
    let on = metric.normalizes();
    let xs = stages::normalize(gpu, &mut b, (x, n, d), on, stages::BATCH)?;
    let cs = stages::normalize(gpu, &mut b, (c, k, d), on, stages::OTHER)?;
    b.clear(grad);
    if let Some(cg) = center_grad {
        b.clear(cg);
    }
    b.submit();
    let slab = SlabRows::new(gpu, (&cs.h, &cs.sq), k, rows, d)?;
    let mut total = RowTotals::default();
    for r0 in (0..k).step_by(rows) {
        let len = rows.min(k - r0);
        let grp = gpu.upload("groups", &packed_groups(r0, len, &lab))?;
        let mut b = gpu.batch();
        let mode = PairMode::for_loss(metric);
        slab.distances(gpu, &mut b, (r0, len), (&xs.h, &xs.sq, n), mode, &e)?;
        let p = params(cfg, len, n, &scales);
        b.run(
            &gpu.kernels.split_lse,
            p,
            &[&e, &grp, &rstat, &rcnt],
            Groups::Linear(len as u64),
        )?;
        // The weights are in place (already divided by the euclidean distance there): the chain
        // reads no distance.
        let chain = stages::chain_mode(metric, true);
        stages::chain_cross(gpu, &mut b, &e, &unread, len, n, chain, 1.0, 1.0)?;
        let products = SlabProducts {
            c: &e,
            len,
            m: n,
            d,
            r0,
            rows: &cs.h,
            slab_rows: slab.rows(),
            cols: &xs.h,
            g_rows: center_grad,
            g_cols: Some(grad),
        };
        products.record(gpu, &mut b, metric)?;
        b.submit();
        // rstat / rcnt hold this slab's rows only: read before the next slab overwrites them.
        total += RowTotals::read(gpu, &rstat, &rcnt, len)?;
    }
    let mut b = gpu.batch();
    if on {
        stages::normalize_backward(gpu, &mut b, &xs.h, &xs.norms, grad, n, d)?;
        if let Some(cg) = center_grad {
            stages::normalize_backward(gpu, &mut b, &cs.h, &cs.norms, cg, k, d)?;
        }
    }
    b.submit();
    let value = total.loss[0] / scales.pos_div + total.loss[1] / scales.neg_div;
    Ok(LossStats::new(value, total.count[0], total.count[1]))
}

/// The reducer's divisors: the proxies with a positive (`|C+|`, at least 1 since labels lie in
/// `0..K` and N >= 1) and all K proxies.
struct Scales {
    pos_div: f64,
    neg_div: f64,
}

impl Scales {
    fn new(labels: &[u32], k: usize) -> Self {
        let mut with_pos = vec![false; k];
        for &y in labels {
            if let Some(slot) = with_pos.get_mut(y as usize) {
                *slot = true;
            }
        }
        let cpos = with_pos.iter().filter(|&&p| p).count();
        Self {
            pos_div: cpos.max(1) as f64,
            neg_div: k.max(1) as f64,
        }
    }
}

/// split_lse.wgsl's labels for proxies `r0..r0 + len` against every sample: each proxy's group is
/// its class (its index), the columns' the sample labels, and no column is excluded.
fn packed_groups(r0: usize, len: usize, labels: &[u32]) -> Vec<u32> {
    let mut v = Vec::with_capacity(2 * len + labels.len());
    v.extend((r0..r0 + len).map(|c| c as u32));
    v.extend_from_slice(labels);
    v.extend(std::iter::repeat_n(NONE, len));
    v
}

/// The parameter block of split_lse.wgsl's mode 3 for `len` proxy rows of `n` samples.
fn params(cfg: &ProxyAnchorConfig, len: usize, n: usize, scales: &Scales) -> Params {
    let metric = cfg.metric;
    let sign = if metric.is_similarity() { -1.0 } else { 1.0 };
    let m = sign * cfg.margin;
    let mut p = Params {
        n: len as u32,
        cols: n as u32,
        u6: u32::from(divides_in_place(metric)),
        flags: MODE_PROXY_ANCHOR | ADD_ONE,
        ..Default::default()
    };
    p.f[..6].copy_from_slice(&[
        cfg.alpha as f32,
        cfg.alpha as f32,
        m as f32,
        -m as f32,
        (1.0 / scales.pos_div) as f32,
        (1.0 / scales.neg_div) as f32,
    ]);
    p
}
