//! The proxy-softmax family: proxy-nca (PML `ProxyNCALoss`), normalized-softmax
//! (`NormalizedSoftmaxLoss`) and cosface (`CosFaceLoss`), one path for the three through their
//! shared form [`ProxySoftmax`]. Per sample i, over the K centers, with `e = sign · D`:
//! `z_ic = scale · (−e_ic − target_margin · [c = y_i])`, the term `−log p_{i,y_i}` and
//! `W = ∂L/∂e_ic = −scale · (p_ic − [c = y_i]) / count` for the counted samples, 0 for the others.
//!
//! Every reduction is per sample over the centers, so the matrix is N x K with the samples as rows
//! (as triplet-center's, [`Side::Samples`]), in slabs of samples past one storage binding, and
//! proxy_softmax.wgsl runs one workgroup per sample: max-shifted log-sum-exp (K may be thousands,
//! the scales 20 or 64), weights in place over E. The mean's count is N, known before any launch,
//! except for proxy-nca, which drops the samples whose target probability underflows float64
//! (PML's softmax gives them exactly 0): its count is known only after the last slab, so its
//! kernel writes the weights without the `1/count` and the skeleton multiplies both gradients by
//! it at the end (centers.rs `finish`; exact, as every weight shares that one factor).

use super::centers::{CenterRun, Placed, Side, Slab};
use super::{RowTotals, avg, divides_in_place, inv};
use crate::context::{Batch, Gpu, Groups, Params};
use margin_core::{Loss, LossStats, MarginError, ProxySoftmax, Result};
use wgpu::Buffer;

/// proxy_softmax.wgsl's flag: leave out the rows whose `log p_y` is below `P.f3`.
const DROP_UNDERFLOW: u32 = 1;

/// Proxy-nca, normalized-softmax or cosface: stages 1-5 against K centers; gradients for X and,
/// when asked, the centers.
#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_softmax_loss(
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
    let form = loss
        .proxy_softmax()
        .ok_or_else(|| MarginError::device("internal: not a proxy-softmax loss"))?;
    let metric = loss.metric();
    let run = CenterRun::begin(gpu, metric, (x, n, d), labels, centers, grad, center_grad)?;
    // Every sample's [loss, 0] and [counted, 0], indexed by sample (the kernel adds the slab's
    // first row): read once after the last slab.
    let rstat = gpu.scratch("rstat", 2 * n)?;
    let rcnt = gpu.scratch("rcnt", 4 * n)?;
    // The weights' factor: the whole −scale / N when the count is N, else −scale and 1 / count
    // late.
    let late = form.drop_underflow;
    let factor = if late {
        -form.scale
    } else {
        -form.scale / n.max(1) as f64
    };
    let weights = |b: &mut Batch<'_>, s: &Slab<'_>| -> Result<Placed> {
        let mut p = Params {
            n: s.len as u32,
            cols: s.cols as u32,
            off: s.r0 as u32,
            u6: u32::from(divides_in_place(metric)),
            flags: if late { DROP_UNDERFLOW } else { 0 },
            ..Default::default()
        };
        p.f[..4].copy_from_slice(&[
            form.scale as f32,
            form.target_margin as f32,
            factor as f32,
            ProxySoftmax::UNDERFLOW as f32,
        ]);
        let bufs = [s.e, &run.lab, &rstat, &rcnt];
        b.run(
            &gpu.kernels.proxy_softmax,
            p,
            &bufs,
            Groups::Linear(s.len as u64),
        )?;
        Ok(Placed::InPlace)
    };
    let what = "one row of the N x K matrix";
    run.slabs(Side::Samples, what, weights, |_| Ok(()))?;
    let totals = RowTotals::read(gpu, &rstat, &rcnt, n)?;
    let count = totals.count[0];
    run.finish(if late { inv(count) } else { 1.0 })?;
    Ok(LossStats::new(avg(totals.loss[0], count), count, 0))
}
