//! Host-side checks of input rows: their value range for the f32 backends, and the shapes of a
//! pairwise or k-NN call. Every finite f32 is valid input, but without normalization the fast
//! backends compute distances in f32 from squared norms: rows with `‖x‖² ≈ 1e40` give infinite
//! distances, `inf − inf` comparisons drop every hinge term, and the loss comes out as a
//! plausible-looking 0. Such input is refused with a clear error instead; the float64 reference
//! has no such limit, and normalized metrics have none on any backend (normalization scales each
//! row before anything is squared).

use crate::distance::Metric;
use crate::error::{MarginError, Result};
use crate::tensor::{Embeddings, LossInput};

/// The largest squared row norm the f32 backends take without normalization. Distances stay
/// below `4e30` and sums of a million of them below `f32::MAX` (3.4e38), with room to spare.
pub const F32_MAX_SQUARED_NORM: f64 = 1e30;

/// Checks every row set of a loss input (embeddings, centers, reference rows) against `limit`
/// (see [`crate::Backend::max_squared_norm`]); nothing to check when `metric` normalizes.
pub fn check_loss_range(limit: Option<f64>, metric: Metric, input: &LossInput<'_>) -> Result<()> {
    check_rows_range(limit, metric, input.embeddings, "embeddings")?;
    if let Some(c) = input.centers {
        check_rows_range(limit, metric, c, "centers")?;
    }
    if let Some(r) = input.reference {
        check_rows_range(limit, metric, r.embeddings, "reference embeddings")?;
    }
    Ok(())
}

/// Checks one row set against `limit`; `what` names it in the error.
pub fn check_rows_range(
    limit: Option<f64>,
    metric: Metric,
    rows: Embeddings<'_>,
    what: &str,
) -> Result<()> {
    let Some(limit) = limit else { return Ok(()) };
    if metric.normalizes() {
        return Ok(());
    }
    let largest = (0..rows.rows())
        .map(|i| {
            let sq: f64 = rows.row(i).iter().map(|&v| f64::from(v).powi(2)).sum();
            (sq, i)
        })
        .fold(
            (0.0f64, 0usize),
            |best, cur| if cur.0 > best.0 { cur } else { best },
        );
    if largest.0 > limit {
        return Err(MarginError::input(format!(
            "{what} row {} has squared norm {:.3e}, beyond the {limit:.0e} that f32 distances \
             hold without normalization; normalize or rescale the rows, or use the reference \
             backend",
            largest.1, largest.0
        )));
    }
    Ok(())
}

/// The host checks of a pairwise or k-NN call: the reference rows have the queries' width, and
/// both row sets fit `limit` ([`check_rows_range`]). Backends that override [`crate::Backend::pairwise`]
/// or [`crate::Backend::knn`] call it first.
pub fn check_query_rows(
    limit: Option<f64>,
    metric: Metric,
    query: Embeddings<'_>,
    reference: Option<Embeddings<'_>>,
) -> Result<()> {
    if let Some(r) = reference
        && r.cols() != query.cols()
    {
        return Err(MarginError::input(format!(
            "reference width {} differs from query width {}",
            r.cols(),
            query.cols()
        )));
    }
    check_rows_range(limit, metric, query, "query")?;
    if let Some(r) = reference {
        check_rows_range(limit, metric, r, "reference")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Distance;

    #[test]
    fn large_rows_are_refused_only_without_normalization() {
        let data = [1.0f32, 2.0, 3e15, 1e15, -0.5, 0.25];
        let rows = Embeddings::new(&data, 3, 2).unwrap();
        let raw = Metric::new(Distance::Euclidean, false);
        let err = check_rows_range(Some(F32_MAX_SQUARED_NORM), raw, rows, "embeddings")
            .unwrap_err()
            .to_string();
        assert!(err.contains("embeddings row 1"), "{err}");
        let normalized = Metric::new(Distance::Euclidean, true);
        check_rows_range(Some(F32_MAX_SQUARED_NORM), normalized, rows, "x").unwrap();
        check_rows_range(None, raw, rows, "x").unwrap();
        let small = Embeddings::new(&data[..2], 1, 2).unwrap();
        check_rows_range(Some(F32_MAX_SQUARED_NORM), raw, small, "x").unwrap();
    }
}
