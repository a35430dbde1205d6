//! Weights of the losses built from row-wise log-sum-exps: multi-similarity, circle and
//! generalized lifted structure (split_lse.wgsl: one LSE over the row's positives, one over its
//! negatives), NT-Xent (ntxent.wgsl) and SupCon (supcon.wgsl). Each kernel writes W = dL/dE
//! without the reducer's denominator, which is passed to the chain kernel as both scales.

use super::{Square, avg, inv};
use crate::kernels::Kernel;
use margin_core::{
    CircleConfig, GeneralizedLiftedStructureConfig, LossStats, MultiSimilarityConfig, NTXentConfig,
    Result, SupConConfig,
};

/// split_lse.wgsl modes (`P.flags & 3`) and its add-one flag.
const MODE_MULTI_SIMILARITY: u32 = 0;
const MODE_GENERALIZED_LIFTED: u32 = 1;
const MODE_CIRCLE: u32 = 2;
const ADD_ONE: u32 = 4;

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

/// True when the batch has an ordered positive pair and a negative pair (NT-Xent, SupCon).
fn has_both_pairs(s: &Square<'_>) -> bool {
    s.layout.positive_pairs() > 0 && s.layout.negative_pairs() > 0
}

pub(crate) fn multi_similarity(
    s: &Square<'_>,
    c: &MultiSimilarityConfig,
) -> Result<(LossStats, f32, f32)> {
    let base = (s.sign() * c.base) as f32;
    run_rows(
        s,
        &s.gpu.kernels.split_lse,
        MODE_MULTI_SIMILARITY | ADD_ONE,
        [c.alpha as f32, c.beta as f32, base, base],
    )?;
    let t = s.totals()?;
    let n = s.n as u64;
    let loss = avg(t.loss[0] + t.loss[1], n);
    Ok((LossStats::new(loss, t.count[0], t.count[1]), inv(n), inv(n)))
}

pub(crate) fn generalized_lifted(
    s: &Square<'_>,
    c: &GeneralizedLiftedStructureConfig,
) -> Result<(LossStats, f32, f32)> {
    let pos = (s.sign() * c.pos_margin) as f32;
    let neg = (s.sign() * c.neg_margin) as f32;
    run_rows(
        s,
        &s.gpu.kernels.split_lse,
        MODE_GENERALIZED_LIFTED,
        [1.0, 1.0, pos, neg],
    )?;
    let t = s.totals()?;
    let n = s.n as u64;
    let loss = avg(t.loss[0], n);
    Ok((LossStats::new(loss, t.count[0], 0), inv(n), inv(n)))
}

pub(crate) fn circle(s: &Square<'_>, c: &CircleConfig) -> Result<(LossStats, f32, f32)> {
    let gamma = c.gamma as f32;
    run_rows(
        s,
        &s.gpu.kernels.split_lse,
        MODE_CIRCLE,
        [gamma, gamma, c.margin as f32, 0.0],
    )?;
    let t = s.totals()?;
    let scale = inv(t.count[0]);
    Ok((
        LossStats::new(avg(t.loss[0], t.count[0]), t.count[0], 0),
        scale,
        scale,
    ))
}

pub(crate) fn ntxent(s: &Square<'_>, c: &NTXentConfig) -> Result<(LossStats, f32, f32)> {
    if !has_both_pairs(s) {
        return s.nothing();
    }
    run_rows(
        s,
        &s.gpu.kernels.ntxent,
        0,
        [(1.0 / c.temperature) as f32, 0.0, 0.0, 0.0],
    )?;
    let t = s.totals()?;
    let pairs = s.layout.positive_pairs();
    let scale = (1.0 / (c.temperature * pairs as f64)) as f32;
    Ok((
        LossStats::new(avg(t.loss[0], pairs), pairs, 0),
        scale,
        scale,
    ))
}

pub(crate) fn supcon(s: &Square<'_>, c: &SupConConfig) -> Result<(LossStats, f32, f32)> {
    if !has_both_pairs(s) {
        return s.nothing();
    }
    run_rows(
        s,
        &s.gpu.kernels.supcon,
        0,
        [(1.0 / c.temperature) as f32, 0.0, 0.0, 0.0],
    )?;
    let t = s.totals()?;
    let count = t.count[0];
    let scale = if count == 0 {
        0.0
    } else {
        (1.0 / (c.temperature * count as f64)) as f32
    };
    Ok((
        LossStats::new(avg(t.loss[0], count), count, 0),
        scale,
        scale,
    ))
}
