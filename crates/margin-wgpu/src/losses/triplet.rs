//! Triplet weights: hinge over all / semihard triplets by per-anchor sorting and counting,
//! softplus by an O(N^2)-per-anchor loop, batch-hard by per-row arg-max / arg-min.

use super::{Square, avg, inv};
use crate::context::Groups;
use crate::kernels::LOCAL_SORT_LEN;
use margin_core::{LossStats, Mining, Result, TripletConfig};

/// Bytes of sort scratch one dispatch may use (anchors are processed in chunks that fit).
const SORT_BUDGET: u64 = 256 << 20;

pub(crate) fn triplet(s: &Square<'_>, c: &TripletConfig) -> Result<(LossStats, f32, f32)> {
    let margin = c.margin as f32;
    match (c.mining, c.smooth) {
        (Mining::Hard, smooth) => {
            let mut p = s.params();
            // With a reference set the self column competes for p* (REFERENCE_SETS.md 3.2).
            p.flags = (2 * u32::from(smooth)) | (4 * u32::from(s.layout.rect));
            p.f[0] = margin;
            let mut b = s.gpu.batch();
            b.run(
                &s.gpu.kernels.triplet_hard,
                p,
                &[&s.e, &s.grp, &s.rstat, &s.rcnt],
                s.rows(),
            )?;
            b.submit();
        }
        (mining, true) => {
            let mut p = s.params();
            p.flags = u32::from(mining == Mining::SemiHard);
            p.f[0] = margin;
            let mut b = s.gpu.batch();
            // Every entry reads its whole row: the weights go to a separate matrix.
            b.run(
                &s.gpu.kernels.triplet_smooth,
                p,
                &[&s.e, s.apart()?, &s.grp, &s.rstat, &s.rcnt],
                s.rows(),
            )?;
            b.submit();
        }
        (mining, false) => sorted_counts(s, &s.e, margin, mining == Mining::SemiHard)?,
    }
    let t = s.totals()?;
    let scale = inv(t.count[0]);
    Ok((
        LossStats::new(avg(t.loss[0], t.count[0]), t.count[0], 0),
        scale,
        scale,
    ))
}

/// Runs triplet_sorted.wgsl over all anchors, in place over `m` (E, or a copy of it): raw count
/// weights (divided by the distance when `s.params()` says so), per-row sums and counts.
pub(crate) fn sorted_counts(
    s: &Square<'_>,
    m: &wgpu::Buffer,
    margin: f32,
    semihard: bool,
) -> Result<()> {
    let n = s.n;
    let p2 = s.m.next_power_of_two();
    if let Some(local) = &s.gpu.kernels.triplet_sorted_local
        && p2 <= LOCAL_SORT_LEN
    {
        let mut p = s.params();
        p.k = p2 as u32;
        p.flags = u32::from(semihard);
        p.f[0] = margin;
        let mut b = s.gpu.batch();
        b.run(local, p, &[m, &s.grp, &s.rstat, &s.rcnt], s.rows())?;
        b.submit();
        return Ok(());
    }
    let slot = 2 * p2 as u64 * 4;
    let budget = SORT_BUDGET.min(s.gpu.max_binding());
    s.gpu.check_size("one anchor's sort slot", slot)?;
    let chunk = ((budget / slot) as usize).clamp(1, n);
    let scratch = s.gpu.scratch("sort", chunk * 2 * p2)?;
    let mut b = s.gpu.batch();
    let mut off = 0;
    while off < n {
        let rows = chunk.min(n - off);
        let mut p = s.params();
        p.k = p2 as u32;
        p.off = off as u32;
        p.flags = u32::from(semihard);
        p.f[0] = margin;
        b.run(
            &s.gpu.kernels.triplet_sorted,
            p,
            &[m, &s.grp, &scratch, &s.rstat, &s.rcnt],
            Groups::Linear(rows as u64),
        )?;
        off += rows;
    }
    b.submit();
    Ok(())
}
