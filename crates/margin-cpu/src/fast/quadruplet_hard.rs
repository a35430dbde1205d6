//! Quadruplet loss with hard mining (new_losses.md §6), in `O(N²)` for the one read-only pass
//! over `e` and `O(N log N + N D)` for everything else. Per anchor a (class c):
//! `t1 = relu(e_ap* − e_an* + m1)` with its farthest positive p* and nearest negative n*, and
//! `t2 = relu(e_ap* − e_k*l* + m2)` with `(k*, l*)` the closest pair whose two classes differ
//! from each other and from c (ties: lowest k, then lowest l).
//!
//! The pair depends on the anchor's class only. One pass over the rows keeps, per row k, its
//! nearest negative (value v1 at l1, class c1) and its nearest entry among the classes other than
//! `y_k` and `c1` (v2 at l2). For class c, row k (`y_k ≠ c`) offers `(v1, l1)` when `c1 ≠ c`,
//! else `(v2, l2)`. The second kind is bucketed by `c1`; the first is found by scanning the rows
//! sorted by `(v1, k)` until one with `y_k ≠ c` and `c1 ≠ c`: each row is skipped for at most
//! two classes, so all the scans together are `O(N + C)`.
//!
//! The weights are a handful per anchor, so the chain is applied pair by pair
//! (`chain::pair`), not through a dense `N x N` matrix.

use super::chain;
use super::classes::Classes;
use super::engine::{Acc, inv, map_rows};
use super::geometry::Rows;
use margin_core::{Metric, Result};

/// An entry of `e`: value and column.
pub(crate) type Entry = (f32, u32);

/// What the pass over `e` keeps of one row.
#[derive(Clone, Copy, Default)]
pub(crate) struct RowInfo {
    /// Farthest positive (largest `e`, lowest column on ties).
    pub far_pos: Option<Entry>,
    /// Nearest negative (smallest `e`, lowest column on ties): `(v1, l1)`.
    pub near_neg: Option<Entry>,
    /// Nearest entry whose class is neither the row's nor `l1`'s: `(v2, l2)`.
    pub second: Option<Entry>,
}

/// One sweep over row `k`. The second candidate is kept in the same sweep: when the nearest
/// negative changes class, the old one becomes the nearest of a class other than the new one.
/// With a reference set the self column is a candidate for the farthest positive (the caller
/// drops the anchor when it wins, docs/REFERENCE_SETS.md 3.10).
pub(crate) fn scan_row(classes: &Classes, k: usize, e: &[f32]) -> RowInfo {
    let ck = classes.row(k);
    let skip = if classes.is_rect() {
        usize::MAX
    } else {
        classes.skip(k)
    };
    let mut r = RowInfo::default();
    // `+ 0.0` turns −0 into +0 so that comparisons and ties match the f64 reference.
    for (j, (&v, &cj)) in e.iter().zip(&classes.id).enumerate() {
        let v = v + 0.0;
        let j32 = j as u32;
        if cj == ck {
            if j != skip && r.far_pos.is_none_or(|(b, _)| v > b) {
                r.far_pos = Some((v, j32));
            }
            continue;
        }
        match r.near_neg {
            None => r.near_neg = Some((v, j32)),
            Some((b, l1)) => {
                let c1 = classes.id[l1 as usize];
                if v < b {
                    if cj != c1 {
                        r.second = Some((b, l1));
                    }
                    r.near_neg = Some((v, j32));
                } else if cj != c1 && r.second.is_none_or(|(b2, _)| v < b2) {
                    r.second = Some((v, j32));
                }
            }
        }
    }
    r
}

/// A negative pair `(value, k, l)`.
pub(crate) type Pair = (f32, u32, u32);

/// `a` before `b`: smaller value, then lower k, then lower l.
fn before(a: Pair, b: Pair) -> bool {
    a.0 < b.0 || (a.0 == b.0 && (a.1, a.2) < (b.1, b.2))
}

/// Keeps the better of `slot` and `cand`.
fn keep_min(slot: &mut Option<Pair>, cand: Pair) {
    if slot.is_none_or(|s| before(cand, s)) {
        *slot = Some(cand);
    }
}

/// The closest allowed negative pair of every class (None when the class has none).
pub(crate) fn best_pairs(classes: &Classes, info: &[RowInfo]) -> Vec<Option<Pair>> {
    let nc = classes.members.len();
    let mut best: Vec<Option<Pair>> = vec![None; nc];
    let mut sorted: Vec<(f32, u32)> = Vec::with_capacity(info.len());
    for (k, r) in info.iter().enumerate() {
        let Some((v1, l1)) = r.near_neg else { continue };
        sorted.push((v1, k as u32));
        if let Some((v2, l2)) = r.second {
            let c1 = classes.id[l1 as usize] as usize;
            keep_min(&mut best[c1], (v2, k as u32, l2));
        }
    }
    sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (c, slot) in best.iter_mut().enumerate() {
        let c = c as u32;
        let hit = sorted.iter().find(|&&(_, k)| {
            let k = k as usize;
            let l1 = info[k].near_neg.map_or(0, |(_, l)| l as usize);
            classes.row(k) != c && classes.id[l1] != c
        });
        if let Some(&(v1, k)) = hit {
            let l1 = info[k as usize].near_neg.map_or(0, |(_, l)| l);
            keep_min(slot, (v1, k, l1));
        }
    }
    best
}

/// A weight `w` on `e_ij` (value `v`) of one group.
struct Term {
    i: u32,
    j: u32,
    v: f32,
    w: f64,
    group: usize,
}

/// Runs the loss; returns the sums (group 0: term 1, group 1: term 2) and the gradient w.r.t.
/// `xh` (before the sign).
pub(crate) fn run(
    rows: &Rows,
    metric: Metric,
    classes: &Classes,
    m1: f64,
    m2: f64,
    budget: usize,
) -> Result<(Acc, Vec<f32>)> {
    let info = map_rows(rows, metric, budget, |k, e| scan_row(classes, k, e))?;
    let best = best_pairs(classes, &info);
    let mut acc = Acc::default();
    let mut terms: Vec<Term> = Vec::new();
    // Per class: how many anchors' term 2 is active (the weight of its pair).
    let mut pair_count = vec![0u64; best.len()];
    for (a, r) in info.iter().enumerate() {
        let (Some((ep, p)), Some((en, nn))) = (r.far_pos, r.near_neg) else {
            continue;
        };
        let t1 = f64::from(ep) - f64::from(en) + m1;
        if t1 > 0.0 {
            acc.loss[0] += t1;
            acc.count[0] += 1;
            terms.push(Term {
                i: a as u32,
                j: p,
                v: ep,
                w: 1.0,
                group: 0,
            });
            terms.push(Term {
                i: a as u32,
                j: nn,
                v: en,
                w: -1.0,
                group: 0,
            });
        }
        let c = classes.row(a) as usize;
        if let Some((ekl, _, _)) = best[c] {
            let t2 = f64::from(ep) - f64::from(ekl) + m2;
            if t2 > 0.0 {
                acc.loss[1] += t2;
                acc.count[1] += 1;
                pair_count[c] += 1;
                terms.push(Term {
                    i: a as u32,
                    j: p,
                    v: ep,
                    w: 1.0,
                    group: 1,
                });
            }
        }
    }
    for (b, &cnt) in best.iter().zip(&pair_count) {
        if let (Some((v, k, l)), true) = (*b, cnt > 0) {
            terms.push(Term {
                i: k,
                j: l,
                v,
                w: -(cnt as f64),
                group: 1,
            });
        }
    }
    let scales = [inv(acc.count[0]), inv(acc.count[1])];
    let d = rows.d;
    let mut grad = super::linalg::zeros(rows.n * d, "a gradient")?;
    for t in &terms {
        let (i, j) = (t.i as usize, t.j as usize);
        let m = (t.w * scales[t.group]) as f32;
        let (xi, xj, dist) = (rows.row(i), rows.row(j), metric.distance);
        chain::pair(dist, m, t.v, xi, xj, &mut grad[i * d..(i + 1) * d]);
        chain::pair(dist, m, t.v, xj, xi, &mut grad[j * d..(j + 1) * d]);
    }
    Ok((acc, grad))
}
