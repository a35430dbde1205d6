//! Quadruplet with hard mining. Per anchor a (with a positive and a negative): its farthest
//! positive p*, nearest negative n*, and the nearest ordered negative pair (k*, l*) whose labels
//! both differ from y_a; `t1 = relu(e_ap* − e_an* + α1)`, `t2 = relu(e_ap* − e_k*l* + α2)`,
//! `L = AvgNonZero(t1) + AvgNonZero(t2)`; ties go to the lowest index (k before l).
//!
//! quad_hard.wgsl finds, per row, the O(N^2) part: p*, the nearest negative l1 (= n*) and the
//! nearest l whose label is neither the row's nor y_l1 (l2). Everything after that is O(N) on the
//! host: the per-class best pair, the terms in f64, and the at most 3N non-zero weights, which
//! scatter.wgsl writes into E once it is cleared (in place: already divided by the AvgNonZero
//! counts, and for the euclidean chain by the distance at the entry).
//!
//! With a reference set everything is read from the N x M matrix: k is a batch row, l a reference
//! column, and an anchor whose own copy wins p* has no term (docs/REFERENCE_SETS.md 3.10).
//!
//! In slabs of rows (slabs.rs) the candidates of every slab are read back first; the weights,
//! planned once for the whole call, are then scattered slab by slab.

use super::{Layout, Square};
use crate::context::{Groups, Params};
use margin_core::{LossStats, QuadrupletConfig, Result};
use std::collections::BTreeMap;

const NONE: u32 = u32::MAX;

/// One row's candidates as read back from quad_hard.wgsl.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    /// Farthest positive and its value.
    p: Option<(u32, f32)>,
    /// Nearest negative.
    l1: Option<(u32, f32)>,
    /// Nearest entry whose label is neither the row's nor that of l1.
    l2: Option<(u32, f32)>,
}

fn rows(idx: &[u32], val: &[f32], n: usize) -> Vec<Row> {
    let at = |k: usize, t: usize| {
        let i = idx[4 * k + t];
        (i != NONE).then_some((i, val[4 * k + t]))
    };
    (0..n)
        .map(|k| Row {
            p: at(k, 0),
            l1: at(k, 1),
            l2: at(k, 2),
        })
        .collect()
}

/// `a` is better than `b`: smaller value, then lower row.
fn better(a: (f32, usize), b: Option<(f32, usize, u32)>) -> bool {
    match b {
        None => true,
        Some((v, k, _)) => a.0 < v || (a.0 == v && a.1 < k),
    }
}

/// Per class c: the nearest ordered pair (k, l) with `y_k != y_l` and both labels `!= c`, as
/// (value, k, l). Row k (label != c) offers (e_kl1, l1) when `y_l1 != c`, else (e_kl2, l2).
/// `ids` are the rows' group ids, `col_ids` the columns'.
fn best_pairs(
    rows: &[Row],
    ids: &[u32],
    col_ids: &[u32],
    classes: usize,
) -> Vec<Option<(f32, usize, u32)>> {
    let mut best: Vec<Option<(f32, usize, u32)>> = vec![None; classes];
    // Offers of (v2, l2), grouped by the class they serve (y_l1).
    for (k, r) in rows.iter().enumerate() {
        if let (Some((l1, _)), Some((l2, v2))) = (r.l1, r.l2) {
            let c = col_ids[l1 as usize] as usize;
            if better((v2, k), best[c]) {
                best[c] = Some((v2, k, l2));
            }
        }
    }
    // Offers of (v1, l1): walk the rows by (v1, k); a row is skipped only by the classes of k and
    // of l1, so the walks together take O(N + classes).
    let mut order: Vec<(f32, usize, u32)> = rows
        .iter()
        .enumerate()
        .filter_map(|(k, r)| r.l1.map(|(l1, v1)| (v1, k, l1)))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (c, slot) in best.iter_mut().enumerate() {
        let first = order
            .iter()
            .find(|&&(_, k, l1)| ids[k] as usize != c && col_ids[l1 as usize] as usize != c);
        if let Some(&(v1, k, l1)) = first
            && better((v1, k), *slot)
        {
            *slot = Some((v1, k, l1));
        }
    }
    best
}

/// The whole matrix at once (`s` holds every row).
pub(crate) fn quad_hard(s: &Square<'_>, c: &QuadrupletConfig) -> Result<(LossStats, f32, f32)> {
    let rows = candidates(s)?;
    let (stats, weights) = plan(&rows, &s.layout, c)?;
    scatter(s, 0, &weights)?;
    Ok((stats, 1.0, 1.0))
}

/// Runs quad_hard.wgsl over the rows of `s` and reads back their candidates (column indices of
/// the whole matrix).
pub(crate) fn candidates(s: &Square<'_>) -> Result<Vec<Row>> {
    let n = s.n;
    let idx = s.gpu.scratch("quad_hard_idx", 4 * n)?;
    let val = s.gpu.scratch("quad_hard_val", 4 * n)?;
    let mut p = s.params();
    // With a reference set the self column competes for p* (REFERENCE_SETS.md 3.10).
    p.flags = if s.layout.rect { 4 } else { 0 };
    let mut b = s.gpu.batch();
    b.run(
        &s.gpu.kernels.quad_hard,
        p,
        &[&s.e, &s.grp, &idx, &val],
        s.rows(),
    )?;
    b.submit();
    Ok(rows(
        &s.gpu.read_u32(&idx, 4 * n)?,
        &s.gpu.read_f32(&val, 4 * n)?,
        n,
    ))
}

/// The non-zero weights of a call, ordered by their index `row * M + col` in the whole N x M
/// matrix, with the values written in place (divided by the distance for the euclidean chain).
pub(crate) struct Weights {
    at: Vec<u64>,
    vals: Vec<f32>,
}

/// The loss and its weights from the candidates of every row of `lay` (the whole call's layout).
pub(crate) fn plan(
    rows: &[Row],
    lay: &Layout,
    c: &QuadrupletConfig,
) -> Result<(LossStats, Weights)> {
    let m = lay.m;
    let divide = super::divides_in_place(c.metric);
    let ids = &lay.rows;
    let best = best_pairs(rows, ids, &lay.cols, lay.classes);

    // Active terms with the values at their entries: (anchor, p*, n*) for t1 and
    // (anchor, p*, k*, l*) for t2.
    let (mut sum1, mut sum2) = (0f64, 0f64);
    let mut act1 = Vec::new();
    let mut act2 = Vec::new();
    for (a, r) in rows.iter().enumerate() {
        let (Some((pi, vp)), Some((ni, vn))) = (r.p, r.l1) else {
            continue;
        };
        if lay.rect && pi == lay.sigma[a] {
            // The anchor's own copy won p*: PML drops the anchor.
            continue;
        }
        let t1 = f64::from(vp) - f64::from(vn) + c.margin;
        if t1 > 0.0 {
            sum1 += t1;
            act1.push((a, (pi, vp), (ni, vn)));
        }
        if let Some((vkl, k, l)) = best[ids[a] as usize] {
            let t2 = f64::from(vp) - f64::from(vkl) + c.margin2;
            if t2 > 0.0 {
                sum2 += t2;
                act2.push((a, (pi, vp), k, (l, vkl)));
            }
        }
    }
    let (c1, c2) = (act1.len() as u64, act2.len() as u64);
    // Weight and value of each written entry (the value divides the weight in place for the
    // euclidean chain, as weight_out does).
    let mut w: BTreeMap<u64, (f64, f32)> = BTreeMap::new();
    let mut add = |row: usize, (col, value): (u32, f32), v: f64| {
        let e = w
            .entry(row as u64 * m as u64 + u64::from(col))
            .or_insert((0.0, value));
        e.0 += v;
    };
    for &(a, p, n) in &act1 {
        add(a, p, 1.0 / c1 as f64);
        add(a, n, -1.0 / c1 as f64);
    }
    for &(a, p, k, l) in &act2 {
        add(a, p, 1.0 / c2 as f64);
        add(k, l, -1.0 / c2 as f64);
    }
    let mut at = Vec::with_capacity(w.len());
    let mut vals = Vec::with_capacity(w.len());
    for (i, (v, dist)) in w {
        at.push(i);
        vals.push(match divide {
            true if dist > 0.0 => (v / f64::from(dist)) as f32,
            true => 0.0,
            false => v as f32,
        });
    }
    let loss = super::avg(sum1, c1) + super::avg(sum2, c2);
    Ok((LossStats::new(loss, c1, c2), Weights { at, vals }))
}

/// Clears the E of `s` (rows `row0..` of the call) and writes the weights that fall in it:
/// every value this loss reads is on the host by then.
pub(crate) fn scatter(s: &Square<'_>, row0: usize, w: &Weights) -> Result<()> {
    let m = s.m as u64;
    let first = row0 as u64 * m;
    let lo = w.at.partition_point(|&i| i < first);
    let hi = w.at.partition_point(|&i| i < first + s.n as u64 * m);
    let at = w.at[lo..hi]
        .iter()
        .map(|&i| crate::stages::u32_of((i - first) as usize, "a weight index"))
        .collect::<Result<Vec<u32>>>()?;
    let mut b = s.gpu.batch();
    b.clear(&s.e);
    if !at.is_empty() {
        let at_buf = s.gpu.upload("quad_hard_at", &at)?;
        let val_buf = s.gpu.upload("quad_hard_w", &w.vals[lo..hi])?;
        let sp = Params {
            n: at.len() as u32,
            ..Default::default()
        };
        b.run(
            &s.gpu.kernels.scatter,
            sp,
            &[&s.e, &at_buf, &val_buf],
            Groups::Linear((at.len() as u64).div_ceil(256)),
        )?;
    }
    b.submit();
    Ok(())
}
