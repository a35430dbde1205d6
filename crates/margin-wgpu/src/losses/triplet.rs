//! Triplet weights: hinge over all / semihard triplets by per-anchor sorting and counting,
//! softplus by an O(N^2)-per-anchor loop, batch-hard by per-row arg-max / arg-min. All in place
//! over E (the quadruplet runs the hinge kernel over a copy).

use super::{RowTotals, Square, avg, inv};
use crate::context::{Batch, Groups, Params};
use crate::kernels::Kernel;
use crate::kernels::LOCAL_SORT_LEN;
use margin_core::{LossStats, Mining, Result, TripletConfig};

/// Writes the triplet weights (raw counts, scaled by [`finish`]'s AvgNonZero denominator in the
/// chain) over the rows of `s`, in place over E.
pub(crate) fn weights(s: &Square<'_>, c: &TripletConfig) -> Result<()> {
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
            Ok(())
        }
        (mining, true) => smooth(s, margin, mining == Mining::SemiHard),
        (mining, false) => sorted_counts(s, &s.e, margin, mining == Mining::SemiHard, 0),
    }
}

/// The loss (mean over active triplets), its count and the chain scales from the per-row totals.
pub(crate) fn finish(t: &RowTotals) -> (LossStats, f32, f32) {
    let scale = inv(t.count[0]);
    (
        LossStats::new(avg(t.loss[0], t.count[0]), t.count[0], 0),
        scale,
        scale,
    )
}

/// Runs `kernel` over all anchors in chunks: every anchor of a chunk gets a scratch slot of
/// `slot` floats (the chunk starts at row `P.off`), and one chunk's slots fit the stream budget and
/// one binding. `p` carries the kernel's own parameters (flags, margin, `P.k`).
fn in_slot_chunks(
    s: &Square<'_>,
    kernel: &Kernel,
    m: &wgpu::Buffer,
    slot: usize,
    mut p: Params,
) -> Result<()> {
    let n = s.n;
    let chunk = rows_per_chunk(s, slot)?;
    let scratch = s.gpu.scratch("sort", chunk * slot)?;
    let mut b = s.gpu.batch();
    for off in (0..n).step_by(chunk) {
        let rows = chunk.min(n - off);
        p.off = off as u32;
        b.run(
            kernel,
            p,
            &[m, &s.grp, &scratch, &s.rstat, &s.rcnt],
            Groups::Linear(rows as u64),
        )?;
    }
    b.submit();
    Ok(())
}

/// Anchors per chunk of a streamed pass that needs `floats` of scratch per anchor: as many as
/// fit the stream budget (and one binding), at least one, at most all.
fn rows_per_chunk(s: &Square<'_>, floats: usize) -> Result<usize> {
    let bytes = floats.max(1) as u64 * 4;
    s.gpu.check_size("one anchor's scratch slot", bytes)?;
    Ok(((s.gpu.stream_budget() / bytes) as usize).clamp(1, s.n.max(1)))
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

/// triplet_sorted(_local).wgsl flags beside semihard (1): count without writing; the quadruplet's
/// last pass (scaled counts plus term 2's weights of the chunk).
pub(crate) const STATS_ONLY: u32 = 2;
pub(crate) const QUAD_FINAL: u32 = 4;

/// Runs triplet_sorted.wgsl over all anchors, in place over `m` (E, or a copy of it): raw count
/// weights (divided by the distance when `s.params()` says so), per-row sums and counts. With
/// [`STATS_ONLY`] in `flags` only the sums and counts.
pub(crate) fn sorted_counts(
    s: &Square<'_>,
    m: &wgpu::Buffer,
    margin: f32,
    semihard: bool,
    flags: u32,
) -> Result<()> {
    let sorted = Sorted::new(s, margin, semihard, flags);
    let chunk = sorted.chunk(s, 0)?;
    let scratch = sorted.scratch(s, chunk)?;
    let unread = s.gpu.scratch("unread", 1)?;
    let mut b = s.gpu.batch();
    for off in (0..s.n).step_by(chunk) {
        let rows = chunk.min(s.n - off);
        sorted.record(s, &mut b, m, off, rows, &scratch, &unread)?;
    }
    b.submit();
    Ok(())
}

/// The sorted-count triplet kernel configured for the rows of a [`Square`]: the workgroup-memory
/// variant when a padded row fits it (GPU adapters), else the global one, whose anchors each need
/// a scratch slot of `2 p2` floats (negatives in the first half, positives in the second).
pub(crate) struct Sorted<'g> {
    kernel: &'g Kernel,
    /// Scratch floats per anchor (0 for the workgroup-memory variant).
    slot: usize,
    p: Params,
}

impl<'g> Sorted<'g> {
    pub fn new(s: &Square<'g>, margin: f32, semihard: bool, flags: u32) -> Self {
        let p2 = s.m.next_power_of_two();
        let mut p = s.params();
        p.flags = u32::from(semihard) | flags;
        p.f[0] = margin;
        p.k = p2 as u32;
        match &s.gpu.kernels.triplet_sorted_local {
            Some(local) if p2 <= LOCAL_SORT_LEN => Self {
                kernel: local,
                slot: 0,
                p,
            },
            _ => Self {
                kernel: &s.gpu.kernels.triplet_sorted,
                slot: 2 * p2,
                p,
            },
        }
    }

    /// Sets P.f1, the scale of the counts in the quadruplet's last pass.
    pub fn with_scale(mut self, scale: f32) -> Self {
        self.p.f[1] = scale;
        self
    }

    /// Anchors per dispatch: as many as fit the stream budget (and one binding) with their slots and
    /// `extra` more floats per anchor (the caller's own chunk buffer).
    pub fn chunk(&self, s: &Square<'_>, extra: usize) -> Result<usize> {
        rows_per_chunk(s, self.slot + extra)
    }

    /// The slots of `chunk` anchors (a stand-in for the workgroup-memory variant).
    pub fn scratch(&self, s: &Square<'_>, chunk: usize) -> Result<wgpu::Buffer> {
        if self.slot == 0 {
            s.gpu.scratch("unread", 1)
        } else {
            s.gpu.scratch("sort", chunk * self.slot)
        }
    }

    /// Records the kernel for anchors `[off, off + rows)` of `m`; `addend` holds term 2's
    /// weights of those rows with [`QUAD_FINAL`].
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        s: &Square<'_>,
        b: &mut Batch<'_>,
        m: &wgpu::Buffer,
        off: usize,
        rows: usize,
        scratch: &wgpu::Buffer,
        addend: &wgpu::Buffer,
    ) -> Result<()> {
        let mut p = self.p;
        p.off = off as u32;
        let groups = Groups::Linear(rows as u64);
        if self.slot == 0 {
            b.run(
                self.kernel,
                p,
                &[m, &s.grp, &s.rstat, &s.rcnt, addend],
                groups,
            )
        } else {
            let bufs = [m, &s.grp, scratch, &s.rstat, &s.rcnt, addend];
            b.run(self.kernel, p, &bufs, groups)
        }
    }
}
