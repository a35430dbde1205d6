//! Quadruplet weights. Term 1 is the hinge triplet of [`super::triplet::sorted_counts`]. Term 2
//! pairs every positive pair with every negative pair whose labels both differ from the anchor's:
//! all off-diagonal values are sorted twice on the GPU (by kind, and by kind then row label; with
//! a reference set the negative pairs also by column label), so each pair's count is a few binary
//! searches (see quad_pairs.wgsl). With a reference set the pairs are those of the N x M matrix
//! (docs/REFERENCE_SETS.md 3.10).

use super::{Square, avg, inv};
use crate::context::Groups;
use crate::stages::{self, u32_of};
use margin_core::{LossStats, QuadrupletConfig, Result};

pub(crate) fn quadruplet(s: &Square<'_>, c: &QuadrupletConfig) -> Result<(LossStats, f32, f32)> {
    let (n, m) = (s.n, s.m);
    let lay = &s.layout;
    // Term 1 in place over a copy of E, which term 2 still reads.
    let w = s.apart()?;
    let mut b = s.gpu.batch();
    b.copy(&s.e, w, n * m);
    b.submit();
    super::triplet::sorted_counts(s, w, c.margin as f32, false)?;
    let t1 = s.totals()?;

    let g = lay.classes;
    let pos_total = lay.positive_pairs();
    let neg_total = lay.negative_pairs();
    // Offsets of each label's positive values, negative values by row label and (with a reference
    // set) negative values by column label in list B.
    let mut offs = Vec::with_capacity(6 * g);
    let (mut po, mut no, mut co) = (0u64, pos_total, pos_total + neg_total);
    for label in 0..g {
        let pl = lay.positive_pairs_of(label);
        let nl = lay.negative_rows_of(label);
        let cl = if lay.rect {
            lay.negative_cols_of(label)
        } else {
            0
        };
        offs.extend([po, pl, no, nl, co, cl].map(|v| v as u32));
        po += pl;
        no += nl;
        co += cl;
    }
    let term1 = || {
        let scale = inv(t1.count[0]);
        Ok((
            LossStats::new(avg(t1.loss[0], t1.count[0]), t1.count[0], 0),
            scale,
            scale,
        ))
    };
    if pos_total == 0 || neg_total == 0 {
        return term1();
    }
    let len = (n * m).next_power_of_two();
    // With a reference set list B holds the negative pairs twice (by row and by column label).
    let len_b = if lay.rect { 2 * len } else { len };
    u32_of(len_b, "the quadruplet sort length")?;
    s.gpu
        .check_size("the quadruplet pair sort", len_b as u64 * 4)?;
    let ka = s.gpu.scratch("quad_ka", len)?;
    let va = s.gpu.scratch("quad_va", len)?;
    let kb = s.gpu.scratch("quad_kb", len_b)?;
    let vb = s.gpu.scratch("quad_vb", len_b)?;
    let offs_buf = s.gpu.upload("quad_offsets", &offs)?;
    let mut p = s.params();
    p.m = pos_total as u32;
    p.k = neg_total as u32;
    p.flags = if lay.rect { 2 } else { 0 };
    p.f[0] = c.margin2 as f32;
    let mut b = s.gpu.batch();
    let mut keys = s.params();
    keys.m = len as u32;
    keys.k = g as u32;
    keys.flags = u32::from(lay.rect);
    b.run(
        &s.gpu.kernels.quad_keys,
        keys,
        &[&s.e, &s.grp, &ka, &va, &kb, &vb],
        Groups::Linear((len as u64).div_ceil(256)),
    )?;
    stages::bitonic_sort(s.gpu, &mut b, &ka, &va, len)?;
    stages::bitonic_sort(s.gpu, &mut b, &kb, &vb, len_b)?;
    let bufs = [&s.e, w, &s.grp, &va, &vb, &offs_buf, &s.rstat, &s.rcnt];
    b.run(&s.gpu.kernels.quad_pairs, p, &bufs, s.rows())?;
    b.submit();
    let t2 = s.totals()?;
    // Scale term 1 and add term 2 into W now that both denominators are known.
    p.flags |= 1;
    p.f[1] = inv(t1.count[0]);
    p.f[2] = inv(t2.count[0]);
    let mut b = s.gpu.batch();
    b.run(&s.gpu.kernels.quad_pairs, p, &bufs, s.rows())?;
    b.submit();
    let loss = avg(t1.loss[0], t1.count[0]) + avg(t2.loss[0], t2.count[0]);
    Ok((LossStats::new(loss, t1.count[0], t2.count[0]), 1.0, 1.0))
}
