//! Retrieval quality of the held-out split, with pytorch-metric-learning's `AccuracyCalculator`
//! metrics through [`margin_core::evaluate_retrieval`].
//!
//! Protocol: every held-out sample queries the other held-out samples (self excluded, PML's
//! `ref_includes_query`). Neither queries nor references were trained on, so the numbers measure
//! how well the projection generalizes, and they describe exactly the points the PNG shows.

use crate::error::CliError;
use margin_core::{
    Embeddings, HostBackend, Metric, RetrievalMetrics, default_block_rows, evaluate_retrieval,
};
use serde_json::{Value, json};

/// One sentence describing the protocol, for the JSON and the human output.
pub const PROTOCOL: &str = "each held-out sample queries the other held-out samples";

/// The metrics of the `n x d` held-out embeddings `x` ranked by `metric`.
pub fn evaluate(
    backend: &dyn HostBackend,
    metric: Metric,
    x: &[f32],
    n: usize,
    d: usize,
    labels: &[i64],
) -> Result<RetrievalMetrics, CliError> {
    let query = Embeddings::named(x, n, d, "held-out embeddings")?;
    Ok(evaluate_retrieval(
        backend,
        metric,
        query,
        labels,
        None,
        default_block_rows(n),
    )?)
}

/// The metrics as a JSON object (NaN, when every class is a singleton, becomes null).
pub fn to_json(m: &RetrievalMetrics) -> Value {
    json!({
        "precision_at_1": m.precision_at_1,
        "r_precision": m.r_precision,
        "mean_average_precision_at_r": m.mean_average_precision_at_r,
        "mean_reciprocal_rank": m.mean_reciprocal_rank,
        "queries_evaluated": m.queries_evaluated,
    })
}

/// `(label, value)` rows for a table, in the order PML lists them.
pub fn rows(m: &RetrievalMetrics) -> [(&'static str, f64); 4] {
    [
        ("precision@1", m.precision_at_1),
        ("R-precision", m.r_precision),
        ("MAP@R", m.mean_average_precision_at_r),
        ("MRR", m.mean_reciprocal_rank),
    ]
}
