//! Quadruplet weights. Term 1 is the hinge triplet of [`super::triplet::sorted_counts`]. Term 2
//! pairs every positive pair with every negative pair whose labels both differ from the anchor's.
//! Only the positive-pair values are sorted on the GPU (globally and grouped by label), so the
//! scratch grows with the positive pairs, not with N x M: each negative pair finds its count with
//! three binary searches and drops its lower bounds into histograms, whose prefix sums give each
//! positive pair its count (quad_pairs.wgsl, docs/ALGORITHMS.md). With a reference set the pairs
//! are those of the N x M matrix (docs/REFERENCE_SETS.md 3.10).

use super::{Layout, NONE, Square, avg, inv};
use crate::context::Groups;
use crate::stages::{self, u32_of};
use margin_core::{LossStats, QuadrupletConfig, Result};

/// `quad_pairs.wgsl` flags.
const WRITE: u32 = 1;
const BUILD: u32 = 2;
const POS_STATS: u32 = 4;

pub(crate) fn quadruplet(s: &Square<'_>, c: &QuadrupletConfig) -> Result<(LossStats, f32, f32)> {
    let (n, m) = (s.n, s.m);
    // Term 1 in place over a copy of E, which term 2 still reads.
    let w = s.apart()?;
    let mut b = s.gpu.batch();
    b.copy(&s.e, w, n * m);
    b.submit();
    super::triplet::sorted_counts(s, w, c.margin as f32, false)?;
    let t1 = s.totals()?;
    let lay = &s.layout;
    let tables = PositiveTables::new(lay);
    let npos = tables.total;
    if npos == 0 || lay.negative_pairs() == 0 {
        let scale = inv(t1.count[0]);
        let stats = LossStats::new(avg(t1.loss[0], t1.count[0]), t1.count[0], 0);
        return Ok((stats, scale, scale));
    }
    let npos_us = usize::try_from(npos).unwrap_or(usize::MAX);
    let len = npos_us.next_power_of_two();
    u32_of(len, "the quadruplet's positive-pair sort")?;
    // Global histogram [0, npos] then the label histograms [npos + 1, 2 npos + 1].
    let hist_len = 2 * npos_us + 2;
    u32_of(hist_len, "the quadruplet's histograms")?;
    let kg = s.gpu.scratch("quad_keys_g", len)?;
    let vg = s.gpu.scratch("quad_vals_g", len)?;
    let ks = s.gpu.scratch("quad_keys_s", len)?;
    let vs = s.gpu.scratch("quad_vals_s", len)?;
    let hist = s.gpu.scratch("quad_hist", hist_len)?;
    let aux = s.gpu.upload("quad_aux", &tables.aux(lay))?;

    let mut p = s.params();
    p.k = lay.classes as u32;
    p.m = npos as u32;
    p.d = len as u32;
    p.f[0] = c.margin2 as f32;
    let mut b = s.gpu.batch();
    let pad_groups = ((len - npos_us) as u64).div_ceil(256);
    b.run(
        &s.gpu.kernels.quad_keys,
        p,
        &[&s.e, &aux, &kg, &vg, &ks, &vs],
        Groups::Linear(n as u64 + pad_groups),
    )?;
    stages::bitonic_sort(s.gpu, &mut b, &kg, &vg, len)?;
    stages::bitonic_sort(s.gpu, &mut b, &ks, &vs, len)?;
    b.clear(&hist);
    let bufs = [&s.e, w, &aux, &vg, &vs, &hist, &s.rstat, &s.rcnt];
    p.flags = BUILD;
    b.run(&s.gpu.kernels.quad_pairs, p, &bufs, s.rows())?;
    stages::exclusive_scan_u32(s.gpu, &mut b, &hist, hist_len)?;
    p.flags = POS_STATS;
    b.run(&s.gpu.kernels.quad_pairs, p, &bufs, s.rows())?;
    b.submit();
    // Slot 0: the negative-pair side (-sum q z, sum q); slot 1: the positive-pair side
    // (sum cnt (x + m2), sum cnt). Both count every active quadruplet once.
    let t2 = s.totals()?;
    debug_assert_eq!(
        t2.count[0], t2.count[1],
        "quadruplet term-2 counts disagree"
    );
    let (sum2, count2) = (t2.loss[0] + t2.loss[1], t2.count[0]);
    // Scale term 1 and add term 2 into W now that both denominators are known.
    p.flags = WRITE;
    p.f[1] = inv(t1.count[0]);
    p.f[2] = inv(count2);
    let mut b = s.gpu.batch();
    b.run(&s.gpu.kernels.quad_pairs, p, &bufs, s.rows())?;
    b.submit();
    let loss = avg(t1.loss[0], t1.count[0]) + avg(sum2, count2);
    Ok((LossStats::new(loss, t1.count[0], count2), 1.0, 1.0))
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
