//! Quadruplet loss (stage 3). Term 1 is the batch-all triplet kernel. Term 2 pairs every
//! positive pair `(a, p)` with every negative pair `(k, l)` whose labels both differ from `y_a`,
//! `relu(e_ap − e_kl + m2)`, and is counted without enumerating anything:
//!
//! * The positive pairs are few (`≈ N²/C`): their values, unordered, are sorted globally and per
//!   class ([`Sorted`]). A negative pair `(k, l)` is inactive for the positive pairs with
//!   `e_ap <= e_kl − m2`, a prefix; so the active positive pairs of allowed classes number
//!   `(G − j) − (Q_{y_k} − j_k) − (Q_{y_l} − j_l)` (three look-ups): that is `W[k,l]`.
//! * The same look-up positions go into histograms (global, and per class to subtract); their
//!   prefix sums give, after the pass, each positive pair's count of active negative pairs:
//!   `W[a,p]`, applied as a sparse chain (`chain::pair`).
//! * `d` is symmetric, so only `l > k` is visited, with weights doubled into `W[k,l]` alone
//!   (only `W + Wᵀ` matters). Positive-pair values come from a fixed-order dot product
//!   (`Rows::pair_e`), identical for `(a, p)` and `(p, a)` and between the two passes.
//!
//! Extra memory: `O(N²/C)` for the lists and one histogram per worker, plus the engine's blocks.

use super::chain;
use super::classes::Classes;
use super::engine::{Acc, RowKernel, inv};
use super::geometry::Rows;
use super::search::Sorted;
use super::triplet::{self, Triplet};
use margin_core::{Metric, Mining, Result};
use rayon::prelude::*;
use std::sync::Mutex;

/// Sorted unordered positive-pair values, global and per class, with histogram offsets.
pub(crate) struct PosLists {
    global: Sorted,
    class: Vec<Sorted>,
    /// Offset of class `c`'s histogram; the global one is at 0 with `G + 1` slots.
    offset: Vec<usize>,
    hist_len: usize,
}

impl PosLists {
    /// The square case: every unordered positive pair of each class, from `Rows::pair_e`.
    pub fn new(rows: &Rows, metric: Metric, classes: &Classes) -> Self {
        let class: Vec<Sorted> = classes
            .members
            .par_iter()
            .map(|m| {
                let mut v = Vec::with_capacity(m.len() * m.len().saturating_sub(1) / 2);
                for (t, &a) in m.iter().enumerate() {
                    for &p in &m[t + 1..] {
                        v.push(rows.pair_e(metric, a as usize, p as usize));
                    }
                }
                Sorted::new(v)
            })
            .collect();
        Self::from_classes(class)
    }

    /// From each class's sorted positive-pair values: the global list and the histogram layout.
    pub fn from_classes(class: Vec<Sorted>) -> Self {
        let total: usize = class.iter().map(Sorted::len).sum();
        let mut all = Vec::with_capacity(total);
        for c in &class {
            all.extend_from_slice(c.values());
        }
        let global = Sorted::new(all);
        let mut offset = Vec::with_capacity(class.len());
        let mut at = global.len() + 1;
        for c in &class {
            offset.push(at);
            at += c.len() + 1;
        }
        Self {
            global,
            class,
            offset,
            hist_len: at,
        }
    }

    /// The workers' histograms summed, then prefix-summed separately for the global list and
    /// each class list.
    pub fn prefix_counts(&self, hists: Vec<Vec<u32>>) -> Vec<u64> {
        let mut pre = vec![0u64; self.hist_len];
        for h in &hists {
            for (p, &v) in pre.iter_mut().zip(h) {
                *p += u64::from(v);
            }
        }
        drop(hists);
        let mut starts = vec![0usize];
        starts.extend(self.offset.iter().copied());
        starts.push(self.hist_len);
        for w in starts.windows(2) {
            for t in w[0] + 1..w[1] {
                pre[t] += pre[t - 1];
            }
        }
        pre
    }

    /// The active negative pairs of a positive pair of class `c` with value `x`, from the
    /// prefix counts: those counted at a global position below it, less those of class `c`.
    pub fn active_negatives(&self, pre: &[u64], c: usize, x: f64) -> u64 {
        let rg = self.global.count_le(x).saturating_sub(1);
        let rc = self.class[c].count_le(x).saturating_sub(1);
        pre[rg].saturating_sub(pre[self.offset[c] + rc])
    }
}

/// Per-worker scratch: the triplet scratch and a histogram borrowed from the pool.
pub(crate) struct QScratch<'a> {
    pub tri: triplet::Scratch,
    pub hist: Vec<u32>,
    pool: &'a Mutex<Vec<Vec<u32>>>,
}

impl<'a> QScratch<'a> {
    /// A histogram of `hist_len` counters from `pool` (a fresh zeroed one when it is empty).
    pub fn take(pool: &'a Mutex<Vec<Vec<u32>>>, hist_len: usize) -> Self {
        let hist = pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| vec![0; hist_len]);
        Self {
            tri: triplet::Scratch::default(),
            hist,
            pool,
        }
    }
}

impl Drop for QScratch<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(std::mem::take(&mut self.hist));
        }
    }
}

/// Both terms: group 0 the triplets, group 1 the quadruplets (negative-pair side).
pub(crate) struct Quad<'a> {
    pub tri: Triplet<'a>,
    pub classes: &'a Classes,
    pub lists: &'a PosLists,
    pub m2: f64,
    pub pool: &'a Mutex<Vec<Vec<u32>>>,
    /// The square case: `e` is symmetric, so only `l > k` is visited, with the weight 4 (two
    /// orders of the negative pair times two of each positive pair) in `W[k, l]` alone. With a
    /// reference set every ordered negative pair is visited once, with weight 1.
    pub upper: bool,
}

impl<'a> Quad<'a> {
    /// The kernel of the batch-all quadruplet loss with margins `margin` (term 1) and `m2`.
    pub fn new(
        classes: &'a Classes,
        lists: &'a PosLists,
        margin: f64,
        m2: f64,
        pool: &'a Mutex<Vec<Vec<u32>>>,
    ) -> Self {
        Self {
            tri: Triplet {
                classes,
                margin,
                smooth: false,
                mining: Mining::All,
            },
            classes,
            lists,
            m2,
            pool,
            upper: !classes.is_rect(),
        }
    }
}

impl<'a> RowKernel for Quad<'a> {
    type Scratch = QScratch<'a>;
    const GROUPS: usize = 2;
    fn scratch(&self) -> QScratch<'a> {
        QScratch::take(self.pool, self.lists.hist_len)
    }
    fn row(
        &self,
        s: &mut QScratch<'a>,
        k: usize,
        e: &[f32],
        w0: &mut [f32],
        w1: &mut [f32],
    ) -> Acc {
        let (l0, c0) = self.tri.hinge_row(&mut s.tri, k, e, w0);
        let mut acc = Acc {
            loss: [l0, 0.0],
            count: [c0, 0],
        };
        let l = self.lists;
        let ck = self.classes.row(k) as usize;
        let (gk, qk, ok) = (l.global.len() as i64, &l.class[ck], l.offset[ck]);
        let weight: u64 = if self.upper { 4 } else { 1 };
        // Class by class, so that the other class's list stays in cache across its members.
        for (cl, members) in self.classes.members.iter().enumerate() {
            if cl == ck {
                continue;
            }
            let (ql, ol) = (&l.class[cl], l.offset[cl]);
            let start = if self.upper {
                members.partition_point(|&m| (m as usize) <= k)
            } else {
                0
            };
            for &j in &members[start..] {
                let j = j as usize;
                let v = e[j];
                let x = f64::from(v) - self.m2;
                let jg = l.global.count_le(x);
                if jg as i64 == gk {
                    continue;
                }
                let jk = qk.count_le(x);
                let jl = ql.count_le(x);
                let a = (gk - jg as i64) - (qk.len() - jk) as i64 - (ql.len() - jl) as i64;
                if a > 0 {
                    let aw = weight * a as u64;
                    w1[j] -= aw as f32;
                    acc.loss[1] -= aw as f64 * f64::from(v);
                    acc.count[1] += aw;
                    s.hist[jg] += 1;
                    s.hist[ok + jk] += 1;
                    s.hist[ol + jl] += 1;
                }
            }
        }
        acc
    }
    fn scales(&self, acc: &Acc) -> [f64; 2] {
        [inv(acc.count[0]), inv(acc.count[1])]
    }
}

/// Runs the quadruplet loss; returns the sums and the gradient w.r.t. `xh` (before the sign).
pub(crate) fn run(
    rows: &Rows,
    metric: Metric,
    classes: &Classes,
    margin: f64,
    m2: f64,
    budget: usize,
) -> Result<(Acc, Vec<f32>)> {
    let lists = PosLists::new(rows, metric, classes);
    let pool = Mutex::new(Vec::new());
    let kernel = Quad::new(classes, &lists, margin, m2, &pool);
    let mut pass = super::engine::run(rows, metric, &kernel, budget)?;
    let pre = lists.prefix_counts(pool.into_inner().unwrap_or_default());
    // Positive-pair side: each row's sparse chain, and the loss of the pairs it leads.
    let d = rows.d;
    let s1 = inv(pass.acc.count[1]) as f32;
    let loss_pos: f64 = pass
        .grad
        .par_chunks_mut(d)
        .enumerate()
        .map(|(a, ga)| {
            let c = classes.id[a] as usize;
            let mut loss = 0.0;
            for &p in &classes.members[c] {
                let p = p as usize;
                if p == a {
                    continue;
                }
                let v = rows.pair_e(metric, a, p);
                let x = f64::from(v);
                let cnt = lists.active_negatives(&pre, c, x);
                if cnt == 0 {
                    continue;
                }
                let m = 4.0 * cnt as f64;
                chain::pair(
                    metric.distance,
                    m as f32 * s1,
                    v,
                    rows.row(a),
                    rows.row(p),
                    ga,
                );
                if a < p {
                    loss += m * (x + m2);
                }
            }
            loss
        })
        .sum();
    pass.acc.loss[1] += loss_pos;
    Ok((pass.acc, pass.grad))
}
