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
//! Stage 4 is triplet-center's with the roles swapped (centers.rs with [`Side::Centers`]): the
//! rows' product gives the proxies' gradient, the columns' the embeddings'. The rows' product is
//! skipped when the caller asks for no center gradient.

use super::centers::{CenterRun, Placed, Side, Slab};
use super::softmax::{ADD_ONE, MODE_PROXY_ANCHOR};
use super::{NONE, RowTotals, divides_in_place};
use crate::context::{Batch, Gpu, Groups, Params};
use crate::stages;
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
    let run = CenterRun::begin(
        gpu,
        cfg.metric,
        (x, n, d),
        labels,
        centers,
        grad,
        center_grad,
    )?;
    let k = run.k;
    let scales = Scales::new(&run.labels, k);
    // rstat / rcnt hold one slab's proxies: read after each slab, before the next overwrites them.
    let rstat = |len: usize| gpu.scratch("rstat", 2 * len);
    let rcnt = |len: usize| gpu.scratch("rcnt", 4 * len);
    let weights = |b: &mut Batch<'_>, s: &Slab<'_>| -> Result<Placed> {
        stages::u32_of(2 * s.len + n, "the label count")?;
        let grp = gpu.upload("groups", &packed_groups(s.r0, s.len, &run.labels))?;
        let p = params(cfg, s.len, n, &scales);
        let bufs = [s.e, &grp, &rstat(s.len)?, &rcnt(s.len)?];
        b.run(
            &gpu.kernels.split_lse,
            p,
            &bufs,
            Groups::Linear(s.len as u64),
        )?;
        Ok(Placed::InPlace)
    };
    let mut total = RowTotals::default();
    let after = |s: &Slab<'_>| -> Result<()> {
        total += RowTotals::read(gpu, &rstat(s.len)?, &rcnt(s.len)?, s.len)?;
        Ok(())
    };
    run.slabs(
        Side::Centers,
        "one row of the K x N proxy matrix",
        weights,
        after,
    )?;
    run.finish(1.0)?;
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
