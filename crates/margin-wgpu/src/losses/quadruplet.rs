//! Quadruplet weights. Term 1 is the hinge triplet of [`super::triplet::sorted_counts`]. Term 2
//! pairs every positive pair with every negative pair whose labels both differ from the anchor's.
//! Only the positive-pair values are sorted on the GPU (globally and grouped by label), so the
//! scratch grows with the positive pairs, not with N x M: each negative pair finds its count with
//! three binary searches and drops its lower bounds into histograms, whose prefix sums give each
//! positive pair its count (quad_pairs.wgsl, docs/ALGORITHMS.md). With a reference set the pairs
//! are those of the N x M matrix (docs/REFERENCE_SETS.md 3.10).
//!
//! Both terms reduce with AvgNonZero, so no weight is final before both counts are known, while
//! term 2 reads the distances to the end. When an N x M matrix fits the stream budget, term 1
//! writes its weights into a copy of E (one pass) and the last term-2 pass combines them into E.
//! Beyond it E is the only N x M matrix (SPEC, Cost): term 1 counts first without writing, and
//! the last pass runs in chunks of rows, term 2's weights of a chunk into a chunk buffer and then
//! the triplet kernel once more over the chunk, adding them as it rewrites E. Beyond one storage
//! binding the same steps run over slabs of rows ([`in_slabs`]), term 2's kernels told the first
//! row E holds (`P.row0`) and keeping their per-row sums for every row of the call.

use super::slabs::Slabs;
use super::triplet::{QUAD_FINAL, STATS_ONLY, Sorted, sorted_counts};
use super::{Layout, NONE, RowTotals, Square, avg, inv};
use crate::context::{Batch, Gpu, Groups, Params};
use crate::stages::{self, u32_of};
use margin_core::{LossStats, QuadrupletConfig, Result};
use wgpu::Buffer;

/// `quad_pairs.wgsl` flags.
const WRITE: u32 = 1;
const BUILD: u32 = 2;
const POS_STATS: u32 = 4;
const COMBINE: u32 = 8;

pub(crate) fn quadruplet(s: &Square<'_>, c: &QuadrupletConfig) -> Result<(LossStats, f32, f32)> {
    let margin = c.margin as f32;
    let tables = PositiveTables::new(&s.layout);
    if tables.total == 0 || s.layout.negative_pairs() == 0 {
        // No term 2: the triplet's own in-place pass.
        sorted_counts(s, &s.e, margin, false, 0)?;
        return Ok(term_one_only(&s.totals()?));
    }
    let matrix = (s.n as u64) * (s.m as u64) * 4;
    let whole = matrix <= s.gpu.stream_budget();
    let (t1, add) = if whole {
        // Term 1's weights (divided like in-place ones) in a copy of E.
        let add = s.gpu.scratch("quad_add", s.n * s.m)?;
        let mut b = s.gpu.batch();
        b.copy(&s.e, &add, s.n * s.m);
        b.submit();
        sorted_counts(s, &add, margin, false, 0)?;
        (s.totals()?, add)
    } else {
        sorted_counts(s, &s.e, margin, false, STATS_ONLY)?;
        (s.totals()?, chunk_buffer(s, margin)?)
    };
    let rows = (s.rstat.clone(), s.rcnt.clone());
    let (gpu, lay, m2) = (s.gpu, &s.layout, c.margin2 as f32);
    let mut term2 = TermTwo::new(gpu, s.params(), lay, &tables, m2, add, rows)?;
    let mut b = s.gpu.batch();
    term2.keys(&mut b, &s.e, 0, s.n)?;
    term2.sort(&mut b)?;
    term2.run(&mut b, BUILD, &s.e, 0, 0, s.n)?;
    term2.scan(&mut b)?;
    term2.run(&mut b, POS_STATS, &s.e, 0, 0, s.n)?;
    b.submit();
    let (sum2, count2) = term2.totals()?;
    term2.p.f[1] = inv(t1.count[0]);
    term2.p.f[2] = inv(count2);
    if whole {
        let mut b = s.gpu.batch();
        term2.run(&mut b, COMBINE, &s.e, 0, 0, s.n)?;
        b.submit();
    } else {
        term2.in_chunks(s, 0, margin)?;
    }
    let loss = avg(t1.loss[0], t1.count[0]) + avg(sum2, count2);
    Ok((LossStats::new(loss, t1.count[0], count2), 1.0, 1.0))
}

/// The batch-all quadruplet over slabs of rows (slabs.rs): four passes over the slabs, each
/// recomputing the slab's distances, in the order the whole-matrix path takes its steps: term 1's
/// counts and the positive-pair lists; the negative pairs' histograms; the positive pairs'
/// counts; then the weights (term 2's of a chunk, then the triplet kernel adding them) and the
/// slab's share of the gradient.
pub(crate) fn in_slabs(sl: &Slabs<'_>, c: &QuadrupletConfig, grad: &Buffer) -> Result<LossStats> {
    let (gpu, lay) = (sl.gpu(), sl.layout());
    let margin = c.margin as f32;
    let tables = PositiveTables::new(lay);
    if tables.total == 0 || lay.negative_pairs() == 0 {
        // No term 2: term 1 alone, in place.
        let mut t = RowTotals::default();
        for r0 in sl.starts() {
            let s = sl.distances(r0)?;
            sorted_counts(&s, &s.e, margin, false, 0)?;
            t += s.totals()?;
            sl.gradient(&s, r0, (1.0, 1.0), grad)?;
        }
        let (stats, scale, _) = term_one_only(&t);
        sl.scale_gradient(grad, scale)?;
        return Ok(stats);
    }
    // The first slab (the largest) gives the chunk buffer and the parameter block; the lists are
    // checked against the binding before the first pass.
    let first = sl.square(0)?;
    let add = chunk_buffer(&first, margin)?;
    let rows = (
        gpu.scratch("quad_rstat", 2 * lay.n)?,
        gpu.scratch("quad_rcnt", 4 * lay.n)?,
    );
    let m2 = c.margin2 as f32;
    let mut term2 = TermTwo::new(gpu, first.params(), lay, &tables, m2, add, rows)?;
    let mut t1 = RowTotals::default();
    for r0 in sl.starts() {
        let s = sl.distances(r0)?;
        sorted_counts(&s, &s.e, margin, false, STATS_ONLY)?;
        t1 += s.totals()?;
        let mut b = gpu.batch();
        term2.keys(&mut b, &s.e, r0, s.n)?;
        b.submit();
    }
    let mut b = gpu.batch();
    term2.sort(&mut b)?;
    b.submit();
    for flags in [BUILD, POS_STATS] {
        for r0 in sl.starts() {
            let s = sl.distances(r0)?;
            let mut b = gpu.batch();
            term2.run(&mut b, flags, &s.e, r0, r0, s.n)?;
            b.submit();
        }
        if flags == BUILD {
            let mut b = gpu.batch();
            term2.scan(&mut b)?;
            b.submit();
        }
    }
    let (sum2, count2) = term2.totals()?;
    term2.p.f[1] = inv(t1.count[0]);
    term2.p.f[2] = inv(count2);
    for r0 in sl.starts() {
        let s = sl.distances(r0)?;
        term2.in_chunks(&s, r0, margin)?;
        sl.gradient(&s, r0, (1.0, 1.0), grad)?;
    }
    let loss = avg(t1.loss[0], t1.count[0]) + avg(sum2, count2);
    Ok(LossStats::new(loss, t1.count[0], count2))
}

/// The loss and scale when there is no term 2 (no positive or no negative pair): term 1 alone.
fn term_one_only(t1: &RowTotals) -> (LossStats, f32, f32) {
    let scale = inv(t1.count[0]);
    let stats = LossStats::new(avg(t1.loss[0], t1.count[0]), t1.count[0], 0);
    (stats, scale, scale)
}

/// The number of positive pairs and the padded length of their sorted lists, once these and the
/// histograms are known to fit one binding each and 32-bit indexing.
fn check_lists(gpu: &Gpu, tables: &PositiveTables) -> Result<(usize, usize)> {
    let npos = usize::try_from(tables.total).unwrap_or(usize::MAX);
    let len = npos.checked_next_power_of_two().unwrap_or(usize::MAX);
    u32_of(len, "the quadruplet's positive-pair sort")?;
    u32_of(2 * npos + 2, "the quadruplet's histograms")?;
    gpu.check_size("the quadruplet's positive-pair lists", len as u64 * 4)?;
    gpu.check_size("the quadruplet's histograms", (2 * npos as u64 + 2) * 4)?;
    Ok((npos, len))
}

/// The chunk buffer of the last pass in chunks: term 2's weights of one chunk of rows of `s`.
fn chunk_buffer(s: &Square<'_>, margin: f32) -> Result<Buffer> {
    let chunk = Sorted::new(s, margin, false, QUAD_FINAL).chunk(s, s.m)?;
    s.gpu.scratch("quad_add", chunk * s.m)
}

/// The buffers of term 2 (quad_keys.wgsl, quad_pairs.wgsl) and their parameter block, for every
/// row of the call; E is passed to each step with its first row (a slab, or all rows from 0).
struct TermTwo<'g> {
    gpu: &'g Gpu,
    p: Params,
    /// Sorted positive values: all of them, and grouped by label, with their sort keys.
    keys_g: Buffer,
    vals_g: Buffer,
    keys_s: Buffer,
    vals_s: Buffer,
    /// Global then per-label histograms of the negative pairs' lower bounds, 2 (npos + 1) long.
    hist: Buffer,
    aux: Buffer,
    /// Term 1's weights (whole) or the chunk buffer of term 2's weights (in chunks).
    add: Buffer,
    /// Per-row sums and counts of every row of the call.
    rstat: Buffer,
    rcnt: Buffer,
}

impl<'g> TermTwo<'g> {
    /// The lists, histograms (cleared) and tables for the call's layout `lay`; `base` is the
    /// parameter block of any of its slabs (`Square::params`: the columns, the in-place divide).
    #[allow(clippy::too_many_arguments)]
    fn new(
        gpu: &'g Gpu,
        base: Params,
        lay: &Layout,
        tables: &PositiveTables,
        margin2: f32,
        add: Buffer,
        (rstat, rcnt): (Buffer, Buffer),
    ) -> Result<Self> {
        let (npos, len) = check_lists(gpu, tables)?;
        let hist = gpu.scratch("quad_hist", 2 * npos + 2)?;
        let p = Params {
            n: lay.n as u32,
            k: lay.classes as u32,
            m: npos as u32,
            d: len as u32,
            ..base
        };
        let mut b = gpu.batch();
        b.clear(&hist);
        b.submit();
        let mut t = Self {
            gpu,
            p,
            keys_g: gpu.scratch("quad_keys_g", len)?,
            vals_g: gpu.scratch("quad_vals_g", len)?,
            keys_s: gpu.scratch("quad_keys_s", len)?,
            vals_s: gpu.scratch("quad_vals_s", len)?,
            hist,
            aux: gpu.upload("quad_aux", &tables.aux(lay))?,
            add,
            rstat,
            rcnt,
        };
        t.p.f[0] = margin2;
        Ok(t)
    }

    /// Writes the positive pairs of the `rows` rows of `e`, the call's rows from `row0`.
    fn keys(&self, b: &mut Batch<'_>, e: &Buffer, row0: usize, rows: usize) -> Result<()> {
        let mut p = self.p;
        p.off = row0 as u32;
        p.row0 = row0 as u32;
        self.run_keys(b, e, p, rows as u64)
    }

    /// Pads both lists, then sorts them.
    fn sort(&self, b: &mut Batch<'_>) -> Result<()> {
        let (npos, len) = (self.p.m as usize, self.p.d as usize);
        let mut p = self.p;
        p.off = p.n;
        let unread = self.gpu.scratch("unread", 1)?;
        self.run_keys(b, &unread, p, ((len - npos) as u64).div_ceil(256))?;
        stages::bitonic_sort(self.gpu, b, &self.keys_g, &self.vals_g, len)?;
        stages::bitonic_sort(self.gpu, b, &self.keys_s, &self.vals_s, len)
    }

    fn run_keys(&self, b: &mut Batch<'_>, e: &Buffer, p: Params, groups: u64) -> Result<()> {
        let bufs = [
            e,
            &self.aux,
            &self.keys_g,
            &self.vals_g,
            &self.keys_s,
            &self.vals_s,
        ];
        b.run(
            &self.gpu.kernels.quad_keys,
            p,
            &bufs,
            Groups::Linear(groups),
        )
    }

    /// quad_pairs.wgsl with `flags` over the call's rows `[off, off + rows)`, E holding the
    /// call's rows from `row0`.
    fn run(
        &self,
        b: &mut Batch<'_>,
        flags: u32,
        e: &Buffer,
        row0: usize,
        off: usize,
        rows: usize,
    ) -> Result<()> {
        let mut p = self.p;
        p.flags = flags;
        p.off = off as u32;
        p.row0 = row0 as u32;
        let bufs = [
            e,
            &self.add,
            &self.aux,
            &self.vals_g,
            &self.vals_s,
            &self.hist,
            &self.rstat,
            &self.rcnt,
        ];
        b.run(
            &self.gpu.kernels.quad_pairs,
            p,
            &bufs,
            Groups::Linear(rows as u64),
        )
    }

    /// The exclusive prefix sums of the histograms (after every row's BUILD).
    fn scan(&self, b: &mut Batch<'_>) -> Result<()> {
        stages::exclusive_scan_u32(self.gpu, b, &self.hist, 2 * self.p.m as usize + 2)
    }

    /// Both sides' sums after BUILD and POS_STATS: (loss sum, active quadruplets).
    fn totals(&self) -> Result<(f64, u64)> {
        // Slot 0: the negative-pair side (-sum q z, sum q); slot 1: the positive-pair side
        // (sum cnt (x + m2), sum cnt). Both count every active quadruplet once.
        let t = RowTotals::read(self.gpu, &self.rstat, &self.rcnt, self.p.n as usize)?;
        debug_assert_eq!(t.count[0], t.count[1], "quadruplet term-2 counts disagree");
        Ok((t.loss[0] + t.loss[1], t.count[0]))
    }

    /// Per chunk of the rows of `s` (the call's rows from `row0`): term 2's weights into `add`,
    /// then the triplet kernel rewrites the rows of E with P.f1 * its counts plus them.
    fn in_chunks(&self, s: &Square<'_>, row0: usize, margin: f32) -> Result<()> {
        let last = Sorted::new(s, margin, false, QUAD_FINAL).with_scale(self.p.f[1]);
        let chunk = last.chunk(s, s.m)?;
        let scratch = last.scratch(s, chunk)?;
        let mut b = s.gpu.batch();
        for off in (0..s.n).step_by(chunk) {
            let rows = chunk.min(s.n - off);
            self.run(&mut b, WRITE, &s.e, row0, row0 + off, rows)?;
            last.record(s, &mut b, &s.e, off, rows, &scratch, &self.add)?;
        }
        b.submit();
        Ok(())
    }
}

/// Where each row's positive pairs go in the lists of quad_keys.wgsl.
struct PositiveTables {
    /// First slot of each row.
    row_start: Vec<u64>,
    /// Per label: first slot and number of positive pairs.
    label_span: Vec<(u64, u64)>,
    /// Rank of each column among the columns of its label.
    col_rank: Vec<u32>,
    total: u64,
}

impl PositiveTables {
    /// Rows are laid out label by label, so each label's pairs are one span (the order inside a
    /// list does not matter: both lists are sorted).
    fn new(lay: &Layout) -> Self {
        let mut seen = vec![0u32; lay.classes];
        let col_rank = lay
            .cols
            .iter()
            .map(|&g| {
                let r = seen[g as usize];
                seen[g as usize] += 1;
                r
            })
            .collect();
        // A row's positives: the columns of its label but the excluded one.
        let count = |i: usize| {
            let g = lay.rows[i];
            let own = lay.sigma[i] != NONE && lay.cols[lay.sigma[i] as usize] == g;
            lay.col_count[g as usize] - u64::from(own)
        };
        let mut label_len = vec![0u64; lay.classes];
        for i in 0..lay.n {
            label_len[lay.rows[i] as usize] += count(i);
        }
        let mut label_span = Vec::with_capacity(lay.classes);
        let mut next = vec![0u64; lay.classes];
        let mut at = 0;
        for (g, &l) in label_len.iter().enumerate() {
            label_span.push((at, l));
            next[g] = at;
            at += l;
        }
        let row_start = (0..lay.n)
            .map(|i| {
                let g = lay.rows[i] as usize;
                let start = next[g];
                next[g] += count(i);
                start
            })
            .collect();
        Self {
            row_start,
            label_span,
            col_rank,
            total: at,
        }
    }

    /// The `aux` buffer of the shaders: packed labels, label spans, row starts, column ranks.
    fn aux(&self, lay: &Layout) -> Vec<u32> {
        let mut v = lay.packed();
        v.extend(
            self.label_span
                .iter()
                .flat_map(|&(start, len)| [start as u32, len as u32]),
        );
        v.extend(self.row_start.iter().map(|&s| s as u32));
        v.extend_from_slice(&self.col_rank);
        v
    }
}
