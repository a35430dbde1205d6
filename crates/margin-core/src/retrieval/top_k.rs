//! Retrieval metrics from the `k` nearest neighbours only, as PML's `AccuracyCalculator(k=K)`
//! computes them, through [`crate::HostBackend::host_knn`] (on GPU backends a fused distance +
//! top-k kernel: the query x reference matrix is never written).
//!
//! With `k` neighbours per query and `R` relevant references (PML's definitions, checked against
//! PML 2.9 in `tests/fixtures/eval/knn.json`):
//! * precision@1: the first neighbour matches;
//! * R-precision: matches among the first `min(R, k)` neighbours, divided by `min(R, k)`;
//! * MAP@R: `Σ precision@i` over matching neighbours `i <= min(R, k)`, divided by `R` (so it is
//!   lower than the exact MAP@R when `k < R`, as PML warns);
//! * MRR: `1 / rank` of the first match among the `k`, 0 when none is there.
//!
//! [`RetrievalK::MaxBinCount`] (PML's `k="max_bin_count"`) is the largest `R`: R-precision and
//! MAP@R are then exact, only MRR can differ from the full ranking.

use super::{RetrievalMetrics, Sums, relevant_per_query};
use crate::backend::HostBackend;
use crate::distance::Metric;
use crate::error::{MarginError, Result};
use crate::tensor::Embeddings;

/// How many neighbours the metrics look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrievalK {
    /// Every reference (PML's default `k=None`): exact metrics from the full ranking.
    All,
    /// The largest number of references sharing a query's label (minus the query itself when
    /// the queries are the references): PML's `k="max_bin_count"`.
    MaxBinCount,
    /// A fixed `k`.
    Fixed(usize),
}

/// Like [`super::evaluate_retrieval`], with the neighbour count `k` chosen as PML's `k`
/// argument does. [`RetrievalK::All`] is [`super::evaluate_retrieval`] itself.
pub fn evaluate_retrieval_k(
    backend: &dyn HostBackend,
    metric: Metric,
    query: Embeddings<'_>,
    query_labels: &[i64],
    reference: Option<(Embeddings<'_>, &[i64])>,
    k: RetrievalK,
) -> Result<RetrievalMetrics> {
    let refs = reference.map_or(query.rows(), |(r, _)| r.rows());
    let fixed = match k {
        RetrievalK::All => {
            let block = super::default_block_rows(refs);
            return super::evaluate_retrieval(
                backend,
                metric,
                query,
                query_labels,
                reference,
                block,
            );
        }
        RetrievalK::Fixed(k) => Some(k),
        RetrievalK::MaxBinCount => None,
    };
    super::check_inputs(query, query_labels, reference, 1)?;
    let same_source = reference.is_none();
    let candidates = refs - usize::from(same_source);
    let (ref_x, ref_labels) = reference.unwrap_or((query, query_labels));
    let relevant = relevant_per_query(query_labels, ref_labels, same_source);
    let mut sums = Sums::default();
    if relevant.iter().all(|&r| r == 0) {
        // Every query is lone: NaN metrics, as PML, whatever k.
        return Ok(sums.finish());
    }
    // max-bin-count (PML): the largest reference count among the query labels, minus the query
    // itself, which is the largest R.
    let k = fixed.unwrap_or_else(|| relevant.iter().copied().max().unwrap_or(0));
    if k == 0 || k > candidates {
        return Err(MarginError::input(format!(
            "k = {k} must be in 1..={candidates} (the references each query is ranked against)"
        )));
    }
    // Blocks of queries keep the neighbour lists small; with the queries as references each
    // block asks for one more neighbour against the whole set and drops the query itself.
    let fetch = k + usize::from(same_source);
    let d = query.cols();
    let block = (super::BLOCK_VALUES / fetch).max(1);
    let mut start = 0;
    while start < query.rows() {
        let end = start.saturating_add(block).min(query.rows());
        let qb = Embeddings::new(&query.data()[start * d..end * d], end - start, d)?;
        let nb = backend.host_knn(metric, qb, Some(ref_x), fetch)?;
        if nb.indices.len() != (end - start) * fetch {
            return Err(MarginError::device(format!(
                "backend returned {} neighbours, expected {} x {fetch}",
                nb.indices.len(),
                end - start
            )));
        }
        for (offset, row) in nb.indices.chunks_exact(fetch).enumerate() {
            let i = start + offset;
            if relevant[i] == 0 {
                continue;
            }
            let mut list: Vec<u32> = row.to_vec();
            if same_source {
                match list.iter().position(|&j| j as usize == i) {
                    Some(p) => {
                        list.remove(p);
                    }
                    None => {
                        list.pop();
                    }
                }
            }
            let is_match: Vec<bool> = list
                .iter()
                .map(|&j| ref_labels[j as usize] == query_labels[i])
                .collect();
            sums.add(&score_k(&is_match, relevant[i]));
        }
        start = end;
    }
    Ok(sums.finish())
}

/// One query's metrics from whether each of its `k` neighbours matches (PML's formulas).
fn score_k(is_match: &[bool], relevant: usize) -> super::RowScore {
    let r = relevant.min(is_match.len());
    let (mut hits, mut precision_sum) = (0usize, 0f64);
    for (i, &m) in is_match[..r].iter().enumerate() {
        if m {
            hits += 1;
            precision_sum += hits as f64 / (i + 1) as f64;
        }
    }
    let first = is_match.iter().position(|&m| m);
    super::RowScore {
        precision_at_1: f64::from(u8::from(is_match.first().copied().unwrap_or(false))),
        r_precision: hits as f64 / r as f64,
        average_precision_at_r: precision_sum / relevant as f64,
        reciprocal_rank: first.map_or(0.0, |p| 1.0 / (p + 1) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_ranking_follows_pml() {
        // R = 3, k = 2: the matches at ranks 2 and 3; only rank 2 is seen.
        let s = score_k(&[false, true], 3);
        assert_eq!(s.precision_at_1, 0.0);
        assert_eq!(s.r_precision, 0.5);
        assert!((s.average_precision_at_r - 0.5 / 3.0).abs() < 1e-12);
        assert_eq!(s.reciprocal_rank, 0.5);
        // No match among the k: MRR 0.
        assert_eq!(score_k(&[false, false], 1).reciprocal_rank, 0.0);
    }
}
