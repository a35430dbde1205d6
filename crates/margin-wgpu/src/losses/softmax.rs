//! Weights of the losses built from row-wise log-sum-exps: multi-similarity, circle and
//! generalized lifted structure (split_lse.wgsl: one LSE over the row's positives, one over its
//! negatives), NT-Xent (ntxent.wgsl) and SupCon (supcon.wgsl). Each kernel writes W = dL/dE
//! without the reducer's denominator, which is passed to the chain kernel as both scales. Weights
//! ([`weights`]) and the reduction ([`finish`]) are apart so that they also run over slabs of rows
//! (slabs.rs).

use super::{Layout, RowTotals, Square, avg, inv};
use crate::kernels::Kernel;
use margin_core::{Loss, LossStats, MarginError, Result};

/// split_lse.wgsl modes (`P.flags & 3`) and its add-one flag. Mode 3, proxy-anchor, runs on the
/// transposed proxy matrix (proxy_anchor.rs), not on a [`Square`].
const MODE_MULTI_SIMILARITY: u32 = 0;
const MODE_GENERALIZED_LIFTED: u32 = 1;
const MODE_CIRCLE: u32 = 2;
pub(super) const MODE_PROXY_ANCHOR: u32 = 3;
pub(super) const ADD_ONE: u32 = 4;

/// Runs one workgroup-per-row weight kernel over `e` (weights written in place), `grp`, `rstat`,
/// `rcnt`.
fn run_rows(s: &Square<'_>, kernel: &Kernel, flags: u32, f: [f32; 4]) -> Result<()> {
    let mut p = s.params();
    p.flags = flags;
    p.f[..4].copy_from_slice(&f);
    let mut b = s.gpu.batch();
    b.run(kernel, p, &[&s.e, &s.grp, &s.rstat, &s.rcnt], s.rows())?;
    b.submit();
    Ok(())
}

/// Writes the weights of a softmax-style loss over the rows of `s`, in place over E.
pub(crate) fn weights(s: &Square<'_>, loss: &Loss) -> Result<()> {
    let k = &s.gpu.kernels;
    match loss {
        Loss::MultiSimilarity(c) => {
            let base = (s.sign() * c.base) as f32;
            let f = [c.alpha as f32, c.beta as f32, base, base];
            run_rows(s, &k.split_lse, MODE_MULTI_SIMILARITY | ADD_ONE, f)
        }
        Loss::GeneralizedLiftedStructure(c) => {
            let pos = (s.sign() * c.pos_margin) as f32;
            let neg = (s.sign() * c.neg_margin) as f32;
            let f = [1.0, 1.0, pos, neg];
            run_rows(s, &k.split_lse, MODE_GENERALIZED_LIFTED, f)
        }
        Loss::Circle(c) => {
            let gamma = c.gamma as f32;
            let f = [gamma, gamma, c.margin as f32, 0.0];
            run_rows(s, &k.split_lse, MODE_CIRCLE, f)
        }
        Loss::NTXent(c) => run_rows(
            s,
            &k.ntxent,
            0,
            [(1.0 / c.temperature) as f32, 0.0, 0.0, 0.0],
        ),
        Loss::SupCon(c) => run_rows(
            s,
            &k.supcon,
            0,
            [(1.0 / c.temperature) as f32, 0.0, 0.0, 0.0],
        ),
        _ => Err(MarginError::device("internal: not a softmax-style loss")),
    }
}

/// The loss, its counts and the chain scales from the per-row totals over every row of `layout`.
/// NT-Xent and SupCon without a positive or a negative pair never get here (`nothing_to_do`).
pub(crate) fn finish(loss: &Loss, layout: &Layout, t: &RowTotals) -> Result<(LossStats, f32, f32)> {
    let n = layout.n as u64;
    Ok(match loss {
        Loss::MultiSimilarity(_) => {
            let loss = avg(t.loss[0] + t.loss[1], n);
            (LossStats::new(loss, t.count[0], t.count[1]), inv(n), inv(n))
        }
        Loss::GeneralizedLiftedStructure(_) => (
            LossStats::new(avg(t.loss[0], n), t.count[0], 0),
            inv(n),
            inv(n),
        ),
        Loss::NTXent(c) => {
            let pairs = layout.positive_pairs();
            let scale = (1.0 / (c.temperature * pairs as f64)) as f32;
            (
                LossStats::new(avg(t.loss[0], pairs), pairs, 0),
                scale,
                scale,
            )
        }
        Loss::SupCon(c) => {
            let count = t.count[0];
            let scale = if count == 0 {
                0.0
            } else {
                (1.0 / (c.temperature * count as f64)) as f32
            };
            (
                LossStats::new(avg(t.loss[0], count), count, 0),
                scale,
                scale,
            )
        }
        // The mean over the rows with a positive and a negative.
        Loss::Circle(_) => {
            let scale = inv(t.count[0]);
            (
                LossStats::new(avg(t.loss[0], t.count[0]), t.count[0], 0),
                scale,
                scale,
            )
        }
        _ => return Err(MarginError::device("internal: not a softmax-style loss")),
    })
}
