//! `Backend::knn_on_device` for the fast CPU backend: blocks of query rows against every
//! reference row with the same GEMM as the pairwise matrix (stage 2), then a parallel per-row
//! selection, so only one block of distances (at most `BLOCK_VALUES` values) exists at a time and
//! no host copy of the inputs is made.

use super::geometry::{Rows, cross_block, sign};
use super::linalg::zeros;
use margin_core::retrieval::BLOCK_VALUES;
use margin_core::{MarginError, Metric, Neighbours, Result, check_knn};
use rayon::prelude::*;

/// The `k` nearest reference rows of each query row, closest first, ties to the lower index;
/// `reference = None`: the queries themselves, each query's own row excluded.
pub(crate) fn knn(
    metric: Metric,
    query: &[f32],
    nq: usize,
    reference: Option<(&[f32], usize)>,
    d: usize,
    k: usize,
) -> Result<Neighbours> {
    check_knn(nq, reference.map(|r| r.1), d, k)?;
    let (refs, nr) = reference.unwrap_or((query, nq));
    if query.len() < nq * d || refs.len() < nr * d {
        return Err(MarginError::input(format!(
            "k-NN buffers hold {} and {} values, expected {nq} x {d} and {nr} x {d}",
            query.len(),
            refs.len()
        )));
    }
    let r = Rows::new(refs, nr, d, metric);
    let sgn = sign(metric);
    let block = (BLOCK_VALUES / nr).clamp(1, nq);
    let mut keys = zeros(block * nr, "the k-NN distance block")?;
    let mut indices = vec![0u32; nq * k];
    let mut scores = vec![0f32; nq * k];
    let mut start = 0;
    while start < nq {
        let b = block.min(nq - start);
        let q = Rows::new(&query[start * d..(start + b) * d], b, d, metric);
        // Keys: smaller is closer (similarities negated), as the losses' `e`.
        cross_block(
            metric.distance,
            sgn,
            &q.xh,
            &q.sq,
            &r.xh,
            &r.sq,
            d,
            &mut keys[..b * nr],
            &|i| reference.is_none().then_some(start + i),
        );
        keys[..b * nr]
            .par_chunks(nr)
            .zip(indices[start * k..(start + b) * k].par_chunks_mut(k))
            .zip(scores[start * k..(start + b) * k].par_chunks_mut(k))
            .enumerate()
            .for_each(|(row, ((key_row, idx), sc))| {
                let own = reference.is_none().then_some(start + row);
                select(key_row, own, idx, sc);
                for s in sc.iter_mut() {
                    *s *= sgn;
                }
            });
        start += b;
    }
    Ok(Neighbours { k, indices, scores })
}

/// The `idx.len()` smallest keys of `row` (ties: lower index), leaving out column `own`.
fn select(row: &[f32], own: Option<usize>, idx: &mut [u32], keys: &mut [f32]) {
    let k = idx.len();
    if k <= 64 {
        // A sorted list with a running threshold: columns arrive in index order, so a strict
        // comparison keeps the lower index on ties.
        let mut len = 0;
        for (j, &v) in row.iter().enumerate() {
            if Some(j) == own || (len == k && v >= keys[k - 1]) {
                continue;
            }
            let mut p = len.min(k - 1);
            while p > 0 && keys[p - 1] > v {
                if p < k {
                    keys[p] = keys[p - 1];
                    idx[p] = idx[p - 1];
                }
                p -= 1;
            }
            keys[p] = v;
            idx[p] = j as u32;
            len = (len + 1).min(k);
        }
    } else {
        let mut c: Vec<(f32, u32)> = row
            .iter()
            .enumerate()
            .filter(|&(j, _)| Some(j) != own)
            .map(|(j, &v)| (v, j as u32))
            .collect();
        let cmp = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        if k < c.len() {
            c.select_nth_unstable_by(k - 1, cmp);
        }
        c[..k].sort_unstable_by(cmp);
        for (t, &(v, j)) in c[..k].iter().enumerate() {
            keys[t] = v;
            idx[t] = j;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insertion_selection_matches_sorting_with_ties() {
        let row = [3.0f32, 1.0, 2.0, 1.0, 0.5, 2.0, 1.0];
        for own in [None, Some(4)] {
            for k in 1..=6 {
                let mut idx = vec![0u32; k];
                let mut keys = vec![0f32; k];
                select(&row, own, &mut idx, &mut keys);
                let mut want: Vec<(f32, u32)> = row
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| Some(j) != own)
                    .map(|(j, &v)| (v, j as u32))
                    .collect();
                want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let got: Vec<(f32, u32)> = keys.iter().copied().zip(idx.iter().copied()).collect();
                assert_eq!(got, want[..k].to_vec(), "k = {k}, own = {own:?}");
            }
        }
    }
}
