//! `margin eval`: retrieval metrics of query embeddings against a reference set (or against the
//! queries themselves), as pytorch-metric-learning's `AccuracyCalculator()` reports them.

use crate::args::EvalCmd;
use crate::backends;
use crate::error::CliError;
use crate::npy_io::{read_labels, read_matrix};
use margin_core::{Embeddings, RetrievalK, evaluate_retrieval_k};
use serde_json::json;

/// Runs the command and returns the JSON line to print. Metrics are `null` when every query label
/// is lone (PML reports NaN); a warning line on stderr says so.
pub fn run(cmd: &EvalCmd) -> Result<serde_json::Value, CliError> {
    let metric = cmd.metric.metric()?;
    let k = match cmd.k.as_str() {
        "all" => RetrievalK::All,
        "max-bin-count" => RetrievalK::MaxBinCount,
        text => RetrievalK::Fixed(text.parse().map_err(|_| {
            CliError::input(format!(
                "--k must be a positive integer, max-bin-count or all, got '{text}'"
            ))
        })?),
    };
    let q = read_matrix(&cmd.query, "query embeddings")?;
    let q_labels = read_labels(&cmd.query_labels, "query labels")?;
    let reference = match (&cmd.reference, &cmd.reference_labels) {
        (Some(x), Some(l)) => Some((
            read_matrix(x, "reference embeddings")?,
            read_labels(l, "reference labels")?,
        )),
        (None, None) => None,
        _ => {
            return Err(CliError::input(
                "--reference and --reference-labels must be given together",
            ));
        }
    };
    let query = Embeddings::named(&q.data, q.rows, q.cols, "query embeddings")?;
    let reference_view = reference
        .as_ref()
        .map(|(r, l)| {
            Embeddings::named(&r.data, r.rows, r.cols, "reference embeddings").map(|e| (e, &l[..]))
        })
        .transpose()?;
    let references = reference_view.map_or(q.rows, |(r, _)| r.rows());
    let backend = backends::select(cmd.backend)?;
    let m = evaluate_retrieval_k(
        backend.as_ref(),
        metric,
        query,
        &q_labels,
        reference_view,
        k,
    )?;
    if m.queries_evaluated == 0 {
        eprintln!(
            "warning: every query label is lone (no matching reference besides itself); metrics are null"
        );
    }
    Ok(json!({
        "precision_at_1": m.precision_at_1,
        "r_precision": m.r_precision,
        "mean_average_precision_at_r": m.mean_average_precision_at_r,
        "mean_reciprocal_rank": m.mean_reciprocal_rank,
        "backend": backend.backend_name(),
        "queries": q.rows,
        "queries_evaluated": m.queries_evaluated,
        "references": references,
        "distance": metric.distance.name(),
        "normalize": metric.normalizes(),
        "k": cmd.k,
    }))
}
