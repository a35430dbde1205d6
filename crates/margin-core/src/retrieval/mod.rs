//! Retrieval evaluation: exact k-nearest neighbours and the metrics pytorch-metric-learning's
//! `AccuracyCalculator()` (version 2.9, default arguments) reports, with its definitions.
//!
//! * k = every reference (minus the query itself when the query set is the reference set), so
//!   every metric sees the full ranking, as PML's `k=None` does.
//! * A query whose label has no matching reference other than itself is "lone" and left out of
//!   every average; when every query is lone each metric is NaN (PML's `nan_accuracy`).
//! * Averages are over the evaluated queries (`avg_of_avgs = false`).
//! * Labels are compared exactly as i64 (PML casts them to float32 first, which merges labels
//!   above 2^24 that differ only in low bits; that is the one deliberate difference).
//!
//! The distance matrix is never held whole: blocks of query rows are compared against all
//! references through [`HostBackend::host_pairwise`], so extra memory is `O(block x M)` and any
//! backend can do the arithmetic. Per query only three things are needed: `R` (the number of
//! relevant references), the top `R` neighbours in order (a partial sort) and the rank of the
//! first relevant neighbour, so the work per row is `O(M + R log R)`.

mod top_k;

pub use top_k::{RetrievalK, evaluate_retrieval_k};

use crate::backend::HostBackend;
use crate::distance::Metric;
use crate::error::{MarginError, Result};
use crate::tensor::Embeddings;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Upper bound on the f32 values one block of the distance matrix holds (64 MiB), used by
/// [`default_block_rows`].
pub const BLOCK_VALUES: usize = 1 << 24;

/// The metrics of PML's `AccuracyCalculator`, averaged over the evaluated (non-lone) queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrievalMetrics {
    /// Fraction of queries whose nearest neighbour has the query's label.
    pub precision_at_1: f64,
    /// Mean over queries of (relevant among the first R neighbours) / R.
    pub r_precision: f64,
    /// Mean over queries of MAP@R: `(1/R) Σ_{k<=R, k-th relevant} precision@k`.
    pub mean_average_precision_at_r: f64,
    /// Mean over queries of 1 / (rank of the first relevant neighbour).
    pub mean_reciprocal_rank: f64,
    /// Queries that entered the averages (those that are not lone). Zero means every metric is NaN.
    pub queries_evaluated: usize,
}

/// A block size (query rows per pairwise call) that keeps one block under [`BLOCK_VALUES`]
/// values for `references` reference rows; at least 1.
pub fn default_block_rows(references: usize) -> usize {
    (BLOCK_VALUES / references.max(1)).max(1)
}

/// Evaluates retrieval of `query` rows against `reference` rows (or against the other query rows
/// when `reference` is `None`, each query's own row excluded, as PML's `ref_includes_query`).
///
/// `metric` picks the ranking: smaller is closer for a distance, larger for a similarity. Ties are
/// broken by reference index. `block_rows` query rows are compared per backend call (>= 1).
pub fn evaluate_retrieval(
    backend: &dyn HostBackend,
    metric: Metric,
    query: Embeddings<'_>,
    query_labels: &[i64],
    reference: Option<(Embeddings<'_>, &[i64])>,
    block_rows: usize,
) -> Result<RetrievalMetrics> {
    check_inputs(query, query_labels, reference, block_rows)?;
    let same_source = reference.is_none();
    let (ref_x, ref_labels) = reference.unwrap_or((query, query_labels));
    let relevant = relevant_per_query(query_labels, ref_labels, same_source);

    let mut sums = Sums::default();
    let d = query.cols();
    let mut start = 0;
    while start < query.rows() {
        let end = start.saturating_add(block_rows).min(query.rows());
        // Skip blocks made only of lone queries: they need no distances.
        if relevant[start..end].iter().any(|&r| r > 0) {
            let block = Embeddings::new(&query.data()[start * d..end * d], end - start, d)?;
            let mat = backend.host_pairwise(metric, block, Some(ref_x))?;
            if mat.len() != (end - start) * ref_x.rows() {
                return Err(MarginError::device(format!(
                    "backend returned {} pairwise values, expected {} x {}",
                    mat.len(),
                    end - start,
                    ref_x.rows()
                )));
            }
            let rows = BlockRows {
                start,
                relevant: &relevant,
                query_labels,
                ref_labels,
                same_source,
                similarity: metric.is_similarity(),
            };
            // Scores land in row order whatever the thread count, so the sums are deterministic.
            for score in rows.score(&mat, ref_x.rows()).iter().flatten() {
                sums.add(score);
            }
        }
        start = end;
    }
    Ok(sums.finish())
}

/// What scoring the rows of one block needs besides the block's distances.
struct BlockRows<'a> {
    start: usize,
    relevant: &'a [usize],
    query_labels: &'a [i64],
    ref_labels: &'a [i64],
    same_source: bool,
    similarity: bool,
}

impl BlockRows<'_> {
    /// Scores every row of `mat` (`rows x m`), `None` for lone queries, spreading rows over the
    /// available cores with scoped threads (each with its own candidate buffer).
    fn score(&self, mat: &[f32], m: usize) -> Vec<Option<RowScore>> {
        let rows = mat.len() / m;
        let mut out = vec![None; rows];
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        // Below about a million values per thread, thread start-up costs more than it saves.
        let per_thread = rows.div_ceil(threads).max((1 << 20) / m.max(1)).max(1);
        let spawned = std::thread::scope(|scope| {
            let mut all = true;
            for (chunk, (mat_part, out_part)) in mat
                .chunks(per_thread * m)
                .zip(out.chunks_mut(per_thread))
                .enumerate()
            {
                let first = chunk * per_thread;
                let job = move || self.score_rows(mat_part, m, first, out_part);
                all &= std::thread::Builder::new().spawn_scoped(scope, job).is_ok();
            }
            all
        });
        if !spawned {
            // The OS refused a thread: score everything here instead.
            self.score_rows(mat, m, 0, &mut out);
        }
        out
    }

    /// Scores rows `first..` of the block from their distances `mat` into `out`.
    fn score_rows(&self, mat: &[f32], m: usize, first: usize, out: &mut [Option<RowScore>]) {
        let mut candidates = Vec::with_capacity(m);
        for (offset, (row, slot)) in mat.chunks_exact(m).zip(out).enumerate() {
            let i = self.start + first + offset;
            if self.relevant[i] == 0 {
                continue;
            }
            let own = self.same_source.then_some(i);
            fill_candidates(&mut candidates, row, own, self.similarity);
            *slot = Some(score_row(
                &mut candidates,
                self.ref_labels,
                self.query_labels[i],
                self.relevant[i],
            ));
        }
    }
}

fn check_inputs(
    query: Embeddings<'_>,
    query_labels: &[i64],
    reference: Option<(Embeddings<'_>, &[i64])>,
    block_rows: usize,
) -> Result<()> {
    if query_labels.len() != query.rows() {
        return Err(MarginError::input(format!(
            "query label count {} does not match the {} query rows",
            query_labels.len(),
            query.rows()
        )));
    }
    if let Some((r, rl)) = reference {
        if rl.len() != r.rows() {
            return Err(MarginError::input(format!(
                "reference label count {} does not match the {} reference rows",
                rl.len(),
                r.rows()
            )));
        }
        if r.cols() != query.cols() {
            return Err(MarginError::input(format!(
                "reference width {} differs from query width {}",
                r.cols(),
                query.cols()
            )));
        }
    }
    if block_rows == 0 {
        return Err(MarginError::config("block_rows must be at least 1"));
    }
    Ok(())
}

/// R per query: the references with the query's label, minus the query itself when the queries
/// are the references.
fn relevant_per_query(query_labels: &[i64], ref_labels: &[i64], same_source: bool) -> Vec<usize> {
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for &l in ref_labels {
        *counts.entry(l).or_insert(0) += 1;
    }
    query_labels
        .iter()
        .map(|l| counts.get(l).copied().unwrap_or(0) - usize::from(same_source))
        .collect()
}

/// Loads `(key, reference index)` pairs for one query row, where a smaller key is closer
/// (similarities are negated), leaving out the query's own row.
fn fill_candidates(out: &mut Vec<(f32, usize)>, row: &[f32], own: Option<usize>, similarity: bool) {
    out.clear();
    out.extend(
        row.iter()
            .enumerate()
            .filter(|&(j, _)| Some(j) != own)
            .map(|(j, &v)| (if similarity { -v } else { v }, j)),
    );
}

/// Appends the `k` closest entries of one distance row to `out` (closest first, ties by index),
/// leaving out column `own`. Used by the default [`crate::Backend::knn_on_device`] and as the
/// oracle of the fused kernels.
pub fn top_k_row(
    row: &[f32],
    own: Option<usize>,
    similarity: bool,
    k: usize,
    out: &mut crate::backend::Neighbours,
) {
    let mut candidates = Vec::with_capacity(row.len());
    fill_candidates(&mut candidates, row, own, similarity);
    let k = k.min(candidates.len());
    if k == 0 {
        return;
    }
    if k < candidates.len() {
        candidates.select_nth_unstable_by(k - 1, closer);
    }
    let top = &mut candidates[..k];
    top.sort_unstable_by(closer);
    for &(_, j) in top.iter() {
        out.indices.push(j as u32);
        out.scores.push(row[j]);
    }
}

/// Closer first; ties by reference index. `total_cmp` keeps the order total even for NaN.
fn closer(a: &(f32, usize), b: &(f32, usize)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// One query's contributions to the four metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowScore {
    precision_at_1: f64,
    r_precision: f64,
    average_precision_at_r: f64,
    reciprocal_rank: f64,
}

/// Scores one query with `relevant >= 1` matching references among `candidates` (reordered).
fn score_row(
    candidates: &mut [(f32, usize)],
    ref_labels: &[i64],
    label: i64,
    relevant: usize,
) -> RowScore {
    let is_match = |c: &(f32, usize)| ref_labels[c.1] == label;
    // The first relevant neighbour: the closest match; its rank counts everything closer.
    let first = candidates
        .iter()
        .filter(|c| is_match(c))
        .min_by(|a, b| closer(a, b))
        .copied();
    let reciprocal_rank = first.map_or(0.0, |f| {
        let ahead = candidates
            .iter()
            .filter(|c| closer(c, &f) == Ordering::Less)
            .count();
        1.0 / (ahead + 1) as f64
    });
    // The top R in order. R <= candidates.len() because the R matches are all candidates.
    let r = relevant.min(candidates.len());
    if r < candidates.len() {
        candidates.select_nth_unstable_by(r - 1, closer);
    }
    let top = &mut candidates[..r];
    top.sort_unstable_by(closer);
    let (mut hits, mut precision_sum) = (0usize, 0f64);
    for (k, c) in top.iter().enumerate() {
        if is_match(c) {
            hits += 1;
            precision_sum += hits as f64 / (k + 1) as f64;
        }
    }
    RowScore {
        precision_at_1: f64::from(u8::from(top.first().is_some_and(is_match))),
        r_precision: hits as f64 / relevant as f64,
        average_precision_at_r: precision_sum / relevant as f64,
        reciprocal_rank,
    }
}

/// Running sums over evaluated queries.
#[derive(Debug, Default)]
struct Sums {
    precision_at_1: f64,
    r_precision: f64,
    average_precision_at_r: f64,
    reciprocal_rank: f64,
    count: usize,
}

impl Sums {
    fn add(&mut self, s: &RowScore) {
        self.precision_at_1 += s.precision_at_1;
        self.r_precision += s.r_precision;
        self.average_precision_at_r += s.average_precision_at_r;
        self.reciprocal_rank += s.reciprocal_rank;
        self.count += 1;
    }

    fn finish(&self) -> RetrievalMetrics {
        // 0 / 0 = NaN when every query is lone, as PML reports.
        let n = self.count as f64;
        RetrievalMetrics {
            precision_at_1: self.precision_at_1 / n,
            r_precision: self.r_precision / n,
            mean_average_precision_at_r: self.average_precision_at_r / n,
            mean_reciprocal_rank: self.reciprocal_rank / n,
            queries_evaluated: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_score_matches_hand_computation() {
        // Ranking by key: idx 2 (0.1, match), 0 (0.2, no), 3 (0.3, match), 1 (0.4, match).
        let mut c = vec![(0.2, 0), (0.4, 1), (0.1, 2), (0.3, 3)];
        let labels = [9, 5, 5, 5];
        let s = score_row(&mut c, &labels, 5, 3);
        assert_eq!(s.precision_at_1, 1.0);
        assert!((s.r_precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.average_precision_at_r - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(s.reciprocal_rank, 1.0);
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        let mut c = vec![(0.5, 1), (0.5, 0)];
        let s = score_row(&mut c, &[1, 2], 2, 1);
        // Index 0 (label 1) wins the tie, so the match is second.
        assert_eq!(s.precision_at_1, 0.0);
        assert_eq!(s.reciprocal_rank, 0.5);
    }
}
