//! Quadruplet weights. Term 1 is the hinge triplet of [`super::triplet::sorted_counts`]. Term 2
//! pairs every positive pair with every negative pair whose labels both differ from the anchor's:
//! all off-diagonal values are sorted twice on the GPU (by kind, and by kind then row label), so
//! each pair's count is a few binary searches (see quad_pairs.wgsl).

use super::{Square, avg, inv};
use crate::context::{Groups, Params};
use crate::stages::{self, u32_of};
use margin_core::{LossStats, QuadrupletConfig, Result};

pub(crate) fn quadruplet(s: &Square<'_>, c: &QuadrupletConfig) -> Result<(LossStats, f32, f32)> {
    let n = s.n;
    super::triplet::sorted_counts(s, c.margin as f32, false)?;
    let t1 = s.totals()?;

    let g = s.groups.sizes.len();
    let pos_total = s.groups.positive_pairs();
    let neg_total = (n as u64) * (n as u64 - 1) - pos_total;
    // Offsets of each label's positive and negative values in list B.
    let mut offs = Vec::with_capacity(4 * g);
    let (mut po, mut no) = (0u64, pos_total);
    for &size in &s.groups.sizes {
        let pl = size * size.saturating_sub(1);
        let nl = size * (n as u64 - size);
        offs.extend([po, pl, no, nl].map(|v| v as u32));
        po += pl;
        no += nl;
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
    let len = (n * n).next_power_of_two();
    u32_of(len, "the quadruplet sort length")?;
    s.gpu
        .check_size("the quadruplet pair sort", len as u64 * 4)?;
    let ka = s.gpu.scratch("quad_ka", len)?;
    let va = s.gpu.scratch("quad_va", len)?;
    let kb = s.gpu.scratch("quad_kb", len)?;
    let vb = s.gpu.scratch("quad_vb", len)?;
    let offs_buf = s.gpu.upload("quad_offsets", &offs)?;
    let mut p = Params {
        n: n as u32,
        m: pos_total as u32,
        k: neg_total as u32,
        ..Default::default()
    };
    p.f[0] = c.margin2 as f32;
    let mut b = s.gpu.batch();
    let keys = Params {
        n: n as u32,
        m: len as u32,
        k: g as u32,
        ..Default::default()
    };
    b.run(
        &s.gpu.kernels.quad_keys,
        keys,
        &[&s.e, &s.grp, &ka, &va, &kb, &vb],
        Groups::Linear((len as u64).div_ceil(256)),
    )?;
    stages::bitonic_sort(s.gpu, &mut b, &ka, &va, len)?;
    stages::bitonic_sort(s.gpu, &mut b, &kb, &vb, len)?;
    let bufs = [&s.e, &s.w, &s.grp, &va, &vb, &offs_buf, &s.rstat, &s.rcnt];
    b.run(&s.gpu.kernels.quad_pairs, p, &bufs, s.rows())?;
    b.submit();
    let t2 = s.totals()?;
    // Scale term 1 and add term 2 into W now that both denominators are known.
    p.flags = 1;
    p.f[1] = inv(t1.count[0]);
    p.f[2] = inv(t2.count[0]);
    let mut b = s.gpu.batch();
    b.run(&s.gpu.kernels.quad_pairs, p, &bufs, s.rows())?;
    b.submit();
    let loss = avg(t1.loss[0], t1.count[0]) + avg(t2.loss[0], t2.count[0]);
    Ok((LossStats::new(loss, t1.count[0], t2.count[0]), 1.0, 1.0))
}
