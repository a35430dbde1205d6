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
use super::engine::{Acc, inv};
use super::linalg::zeros;
use super::quadruplet::{PosLists, Quad};
use super::quadruplet_hard::{best_pairs, scan_row};
use super::rect::Rect;
use super::search::Sorted;
use margin_core::Result;
use rayon::prelude::*;
use std::sync::Mutex;

/// The sorted positive-pair values (global and per anchor class) of the kept rows.
fn lists(classes: &Classes, pos: &[Vec<(u32, f32)>]) -> PosLists {
    let mut per: Vec<Vec<f32>> = vec![Vec::new(); classes.members.len()];
    for (a, row) in pos.iter().enumerate() {
        per[classes.row(a) as usize].extend(row.iter().map(|&(_, v)| v));
    }
    PosLists::from_classes(per.into_par_iter().map(Sorted::new).collect())
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
    let lists = lists(classes, &pos);
    let pool = Mutex::new(Vec::new());
    let kernel = Quad::new(classes, &lists, margin, m2, &pool);
    let mut pass = rect.run(&kernel)?;
    let pre = lists.prefix_counts(pool.into_inner().unwrap_or_default());
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
                let cnt = lists.active_negatives(&pre, c, x);
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
