//! Quadruplet loss with a reference set (docs/REFERENCE_SETS.md 3.10): everything from the
//! `N x M` rectangle, anchors a and k batch rows, p, n, l reference rows.
//!
//! * all: term 1 is the batch-all triplet kernel over the rectangle. Term 2 pairs every
//!   positive pair `(a, p)` with every negative pair `(k, l)` (`y_k != r_l`) whose labels both
//!   differ from `y_a`: as in the square case (`quadruplet`), the positive-pair values are sorted
//!   globally and per anchor class, each negative pair counts its active positive pairs with
//!   three look-ups (`W[k, l]`), and histograms of the look-up positions give every positive
//!   pair its count of active negative pairs (`W[a, p]`, a sparse chain). The rectangle is not
//!   symmetric, so every ordered pair is visited once, with weight 1 (no doubling).
//! * hard: the square case's per-row scan (`quadruplet_hard`), where the self column competes
//!   for `p*` and drops the anchor when it wins; the weights are a handful per anchor, chained
//!   pair by pair to the batch row only.

use super::chain;
use super::classes::Classes;
use super::engine::{Acc, RowKernel, inv};
use super::linalg::zeros;
use super::quadruplet::QScratch;
use super::quadruplet_hard::{best_pairs, scan_row};
use super::rect::Rect;
use super::search::Sorted;
use super::triplet::Triplet;
use margin_core::{Mining, Result};
use rayon::prelude::*;
use std::sync::Mutex;

/// Sorted positive-pair values, global and per anchor class, with histogram offsets.
struct Lists {
    global: Sorted,
    class: Vec<Sorted>,
    /// Offset of class `c`'s histogram; the global one is at 0 with `G + 1` slots.
    offset: Vec<usize>,
    hist_len: usize,
}

impl Lists {
    fn new(classes: &Classes, pos: &[Vec<(u32, f32)>]) -> Self {
        let nc = classes.members.len();
        let mut per: Vec<Vec<f32>> = vec![Vec::new(); nc];
        for (a, row) in pos.iter().enumerate() {
            per[classes.row(a) as usize].extend(row.iter().map(|&(_, v)| v));
        }
        let all: Vec<f32> = per.iter().flatten().copied().collect();
        let class: Vec<Sorted> = per.into_par_iter().map(Sorted::new).collect();
        let global = Sorted::new(all);
        let mut offset = Vec::with_capacity(nc);
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
}

/// Group 0 the triplets, group 1 the negative-pair side of the quadruplets.
struct Quad<'a> {
    tri: Triplet<'a>,
    classes: &'a Classes,
    lists: &'a Lists,
    m2: f64,
    pool: &'a Mutex<Vec<Vec<u32>>>,
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
        // Class by class, so that the other class's list stays in cache across its members.
        for (cl, members) in self.classes.members.iter().enumerate() {
            if cl == ck || members.is_empty() {
                continue;
            }
            let (ql, ol) = (&l.class[cl], l.offset[cl]);
            for &j in members {
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
                    w1[j] -= a as f32;
                    acc.loss[1] -= a as f64 * f64::from(v);
                    acc.count[1] += a as u64;
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

/// Mining all: returns the sums and the gradient w.r.t. `x.xh` (before the sign).
pub(crate) fn all(
    rect: &Rect<'_>,
    classes: &Classes,
    margin: f64,
    m2: f64,
) -> Result<(Acc, Vec<f32>)> {
    // The positive pairs' values, kept from one pass so that the lists and the positive side
    // read the very same numbers.
    let pos = rect.map(|a, e| {
        let skip = classes.skip(a);
        classes.members[classes.row(a) as usize]
            .iter()
            .filter(|&&p| p as usize != skip)
            .map(|&p| (p, e[p as usize]))
            .collect::<Vec<_>>()
    })?;
    let lists = Lists::new(classes, &pos);
    let pool = Mutex::new(Vec::new());
    let kernel = Quad {
        tri: Triplet {
            classes,
            margin,
            smooth: false,
            mining: Mining::All,
        },
        classes,
        lists: &lists,
        m2,
        pool: &pool,
    };
    let mut pass = rect.run(&kernel)?;
    let hists = pool.into_inner().unwrap_or_default();
    let mut pre = vec![0u64; lists.hist_len];
    for h in &hists {
        for (p, &v) in pre.iter_mut().zip(h) {
            *p += u64::from(v);
        }
    }
    drop(hists);
    // Prefix sums, separately for the global list and each class list.
    let mut starts = vec![0usize];
    starts.extend(lists.offset.iter().copied());
    starts.push(lists.hist_len);
    for w in starts.windows(2) {
        for t in w[0] + 1..w[1] {
            pre[t] += pre[t - 1];
        }
    }
    // Positive-pair side: W[a, p] = the active negative pairs of other classes, chained to
    // batch row a only.
    let (d, dist) = (rect.x.d, rect.metric.distance);
    let s1 = inv(pass.acc.count[1]) as f32;
    let loss_pos: f64 = pass
        .grad
        .par_chunks_mut(d)
        .zip(pos.par_iter())
        .enumerate()
        .map(|(a, (ga, row))| {
            let c = classes.row(a) as usize;
            let mut loss = 0.0;
            for &(p, v) in row {
                let x = f64::from(v);
                let rg = lists.global.count_le(x).saturating_sub(1);
                let rc = lists.class[c].count_le(x).saturating_sub(1);
                let cnt = pre[rg].saturating_sub(pre[lists.offset[c] + rc]);
                if cnt == 0 {
                    continue;
                }
                let w = cnt as f64;
                let xa = rect.x.row(a);
                chain::pair(dist, w as f32 * s1, v, xa, rect.r.row(p as usize), ga);
                loss += w * (x + m2);
            }
            loss
        })
        .sum();
    pass.acc.loss[1] += loss_pos;
    Ok((pass.acc, pass.grad))
}

/// Mining hard: returns the sums (group 0 term 1, group 1 term 2) and the gradient w.r.t.
/// `x.xh` (before the sign).
pub(crate) fn hard(
    rect: &Rect<'_>,
    classes: &Classes,
    m1: f64,
    m2: f64,
) -> Result<(Acc, Vec<f32>)> {
    let info = rect.map(|k, e| scan_row(classes, k, e))?;
    let best = best_pairs(classes, &info);
    let mut acc = Acc::default();
    // (batch row, reference row, e, weight, group)
    let mut terms: Vec<(usize, usize, f32, f64, usize)> = Vec::new();
    let mut pair_count = vec![0u64; best.len()];
    for (a, r) in info.iter().enumerate() {
        let (Some((ep, p)), Some((en, nn))) = (r.far_pos, r.near_neg) else {
            continue;
        };
        let p = p as usize;
        if p == classes.skip(a) {
            // The self copy is the hardest positive: PML drops the anchor (3.2).
            continue;
        }
        let t1 = f64::from(ep) - f64::from(en) + m1;
        if t1 > 0.0 {
            acc.loss[0] += t1;
            acc.count[0] += 1;
            terms.push((a, p, ep, 1.0, 0));
            terms.push((a, nn as usize, en, -1.0, 0));
        }
        let c = classes.row(a) as usize;
        if let Some((ekl, _, _)) = best[c] {
            let t2 = f64::from(ep) - f64::from(ekl) + m2;
            if t2 > 0.0 {
                acc.loss[1] += t2;
                acc.count[1] += 1;
                pair_count[c] += 1;
                terms.push((a, p, ep, 1.0, 1));
            }
        }
    }
    for (b, &cnt) in best.iter().zip(&pair_count) {
        if let (Some((v, k, l)), true) = (*b, cnt > 0) {
            terms.push((k as usize, l as usize, v, -(cnt as f64), 1));
        }
    }
    let scales = [inv(acc.count[0]), inv(acc.count[1])];
    let d = rect.x.d;
    let mut grad = zeros(rect.x.n * d, "a gradient")?;
    for &(i, j, v, w, group) in &terms {
        let m = (w * scales[group]) as f32;
        let g = &mut grad[i * d..(i + 1) * d];
        chain::pair(rect.metric.distance, m, v, rect.x.row(i), rect.r.row(j), g);
    }
    Ok((acc, grad))
}
