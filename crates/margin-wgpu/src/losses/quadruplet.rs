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
//! the triplet kernel once more over the chunk, adding them as it rewrites E.

use super::triplet::{QUAD_FINAL, STATS_ONLY, Sorted, sorted_counts};
use super::{Layout, NONE, RowTotals, Square, avg, inv};
use crate::context::{Batch, Groups, Params};
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
        let t1 = s.totals()?;
        let scale = inv(t1.count[0]);
        let stats = LossStats::new(avg(t1.loss[0], t1.count[0]), t1.count[0], 0);
        return Ok((stats, scale, scale));
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
        let t1 = s.totals()?;
        let chunk = Sorted::new(s, margin, false, QUAD_FINAL).chunk(s, s.m)?;
        (t1, s.gpu.scratch("quad_add", chunk * s.m)?)
    };
    let mut term2 = TermTwo::new(s, &tables, c.margin2 as f32, add)?;
    let (sum2, count2) = term2.stats()?;
    term2.p.f[1] = inv(t1.count[0]);
    term2.p.f[2] = inv(count2);
    if whole {
        term2.combine()?;
    } else {
        term2.in_chunks(margin)?;
    }
    let loss = avg(t1.loss[0], t1.count[0]) + avg(sum2, count2);
    Ok((LossStats::new(loss, t1.count[0], count2), 1.0, 1.0))
}

/// The buffers of term 2 (quad_keys.wgsl, quad_pairs.wgsl) and their parameter block.
struct TermTwo<'s, 'g> {
    s: &'s Square<'g>,
    p: Params,
    /// Sorted positive values: all of them, and grouped by label.
    vals_g: Buffer,
    vals_s: Buffer,
    /// Global then per-label histograms of the negative pairs' lower bounds, 2 (npos + 1) long.
    hist: Buffer,
    aux: Buffer,
    /// Term 1's weights (whole) or the chunk buffer of term 2's weights (in chunks).
    add: Buffer,
}

impl<'s, 'g> TermTwo<'s, 'g> {
    /// Writes and sorts the positive-pair lists.
    fn new(s: &'s Square<'g>, tables: &PositiveTables, margin2: f32, add: Buffer) -> Result<Self> {
        let npos = usize::try_from(tables.total).unwrap_or(usize::MAX);
        let len = npos.next_power_of_two();
        u32_of(len, "the quadruplet's positive-pair sort")?;
        u32_of(2 * npos + 2, "the quadruplet's histograms")?;
        let kg = s.gpu.scratch("quad_keys_g", len)?;
        let vals_g = s.gpu.scratch("quad_vals_g", len)?;
        let ks = s.gpu.scratch("quad_keys_s", len)?;
        let vals_s = s.gpu.scratch("quad_vals_s", len)?;
        let hist = s.gpu.scratch("quad_hist", 2 * npos + 2)?;
        let aux = s.gpu.upload("quad_aux", &tables.aux(&s.layout))?;
        let mut p = s.params();
        p.k = s.layout.classes as u32;
        p.m = npos as u32;
        p.d = len as u32;
        p.f[0] = margin2;
        let mut b = s.gpu.batch();
        let pad_groups = ((len - npos) as u64).div_ceil(256);
        b.run(
            &s.gpu.kernels.quad_keys,
            p,
            &[&s.e, &aux, &kg, &vals_g, &ks, &vals_s],
            Groups::Linear(s.n as u64 + pad_groups),
        )?;
        stages::bitonic_sort(s.gpu, &mut b, &kg, &vals_g, len)?;
        stages::bitonic_sort(s.gpu, &mut b, &ks, &vals_s, len)?;
        b.submit();
        Ok(Self {
            s,
            p,
            vals_g,
            vals_s,
            hist,
            aux,
            add,
        })
    }

    fn run(&self, b: &mut Batch<'_>, flags: u32, off: usize, rows: usize) -> Result<()> {
        let s = self.s;
        let mut p = self.p;
        p.flags = flags;
        p.off = off as u32;
        let bufs = [
            &s.e,
            &self.add,
            &self.aux,
            &self.vals_g,
            &self.vals_s,
            &self.hist,
            &s.rstat,
            &s.rcnt,
        ];
        b.run(
            &s.gpu.kernels.quad_pairs,
            p,
            &bufs,
            Groups::Linear(rows as u64),
        )
    }

    /// Histograms, their prefix sums and both sides' sums: (loss sum, active quadruplets).
    fn stats(&mut self) -> Result<(f64, u64)> {
        let s = self.s;
        let mut b = s.gpu.batch();
        b.clear(&self.hist);
        self.run(&mut b, BUILD, 0, s.n)?;
        stages::exclusive_scan_u32(s.gpu, &mut b, &self.hist, 2 * self.p.m as usize + 2)?;
        self.run(&mut b, POS_STATS, 0, s.n)?;
        b.submit();
        // Slot 0: the negative-pair side (-sum q z, sum q); slot 1: the positive-pair side
        // (sum cnt (x + m2), sum cnt). Both count every active quadruplet once.
        let t: RowTotals = s.totals()?;
        debug_assert_eq!(t.count[0], t.count[1], "quadruplet term-2 counts disagree");
        Ok((t.loss[0] + t.loss[1], t.count[0]))
    }

    /// E = P.f1 * term 1 (in `add`) + P.f2 * term 2, in place.
    fn combine(&self) -> Result<()> {
        let mut b = self.s.gpu.batch();
        self.run(&mut b, COMBINE, 0, self.s.n)?;
        b.submit();
        Ok(())
    }

    /// Per chunk of rows: term 2's weights into `add`, then the triplet kernel rewrites the rows
    /// of E with P.f1 * its counts plus them.
    fn in_chunks(&self, margin: f32) -> Result<()> {
        let s = self.s;
        let last = Sorted::new(s, margin, false, QUAD_FINAL).with_scale(self.p.f[1]);
        let chunk = last.chunk(s, s.m)?;
        let scratch = last.scratch(s, chunk)?;
        let mut b = s.gpu.batch();
        for off in (0..s.n).step_by(chunk) {
            let rows = chunk.min(s.n - off);
            self.run(&mut b, WRITE, off, rows)?;
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
