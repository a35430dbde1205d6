//! Triplet weights: hinge over all / semihard triplets by per-anchor sorting and counting,
//! softplus by an O(N^2)-per-anchor loop, batch-hard by per-row arg-max / arg-min. All in place
//! over E (the quadruplet runs the hinge kernel over a copy).

use super::{Square, avg, inv};
use crate::context::{Groups, Params};
use crate::kernels::Kernel;
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
        (mining, true) => smooth(s, margin, mining == Mining::SemiHard)?,
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

/// Runs `kernel` over all anchors in chunks: every anchor of a chunk gets a scratch slot of
/// `slot` floats (the chunk starts at row `P.off`), and one chunk's slots fit [`SORT_BUDGET`] and
/// one binding. `p` carries the kernel's own parameters (flags, margin, `P.k`).
fn in_slot_chunks(
    s: &Square<'_>,
    kernel: &Kernel,
    m: &wgpu::Buffer,
    slot: usize,
    mut p: Params,
) -> Result<()> {
    let n = s.n;
    let bytes = slot as u64 * 4;
    let budget = SORT_BUDGET.min(s.gpu.max_binding());
    s.gpu.check_size("one anchor's scratch slot", bytes)?;
    let chunk = ((budget / bytes) as usize).clamp(1, n);
    let scratch = s.gpu.scratch("sort", chunk * slot)?;
    let mut b = s.gpu.batch();
    let mut off = 0;
    while off < n {
        let rows = chunk.min(n - off);
        p.off = off as u32;
        b.run(
            kernel,
            p,
            &[m, &s.grp, &scratch, &s.rstat, &s.rcnt],
            Groups::Linear(rows as u64),
        )?;
        off += rows;
    }
    b.submit();
    Ok(())
}

/// Runs triplet_smooth.wgsl over all anchors, in place over E: each workgroup first copies its row
/// to its scratch slot (every entry reads the whole row; slots padded to a power of two).
fn smooth(s: &Square<'_>, margin: f32, semihard: bool) -> Result<()> {
    let mut p = s.params();
    p.flags = u32::from(semihard);
    p.f[0] = margin;
    let slot = s.m.next_power_of_two();
    p.k = slot as u32;
    in_slot_chunks(s, &s.gpu.kernels.triplet_smooth, &s.e, slot, p)
}

/// Runs triplet_sorted.wgsl over all anchors, in place over `m` (E, or a copy of it): raw count
/// weights (divided by the distance when `s.params()` says so), per-row sums and counts.
pub(crate) fn sorted_counts(
    s: &Square<'_>,
    m: &wgpu::Buffer,
    margin: f32,
    semihard: bool,
) -> Result<()> {
    let p2 = s.m.next_power_of_two();
    let mut p = s.params();
    p.flags = u32::from(semihard);
    p.f[0] = margin;
    p.k = p2 as u32;
    if let Some(local) = &s.gpu.kernels.triplet_sorted_local
        && p2 <= LOCAL_SORT_LEN
    {
        let mut b = s.gpu.batch();
        b.run(local, p, &[m, &s.grp, &s.rstat, &s.rcnt], s.rows())?;
        b.submit();
        return Ok(());
    }
    // Negatives in the first half of a slot, positives in the second (triplet_sorted.wgsl).
    in_slot_chunks(s, &s.gpu.kernels.triplet_sorted, m, 2 * p2, p)
}
