//! Recall@1 on a held-out split: for every query, is its nearest other sample of the same class?

use margin_core::{Embeddings, HostBackend, Metric, Result};

/// Fraction of rows whose nearest neighbour (by `metric`, self excluded) shares its label.
pub fn recall_at_1(
    backend: &dyn HostBackend,
    metric: Metric,
    x: &[f32],
    n: usize,
    d: usize,
    labels: &[i64],
) -> Result<f64> {
    let m = backend.host_pairwise(metric, Embeddings::new(x, n, d)?, None)?;
    let better = |a: f32, b: f32| {
        if metric.is_similarity() { a > b } else { a < b }
    };
    let hits = (0..n)
        .filter(|&i| {
            let row = &m[i * n..(i + 1) * n];
            let best = (0..n)
                .filter(|&j| j != i)
                .reduce(|b, j| if better(row[j], row[b]) { j } else { b });
            best.is_some_and(|j| labels[j] == labels[i])
        })
        .count();
    Ok(hits as f64 / n as f64)
}
