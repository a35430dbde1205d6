//! Input checks for [`super::evaluate`]: everything the SPEC requires of inputs, reported as
//! [`MarginError`] values so that the reference never panics on bad data.

use super::rect::RefSet;
use margin_core::{Loss, MarginError, Result, check_reference};

/// Checks that `values` is a finite `rows x cols` matrix; `what` names it in errors.
pub(crate) fn matrix(values: &[f64], rows: usize, cols: usize, what: &str) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(MarginError::input(format!(
            "{what} must be at least 1 x 1, got {rows} x {cols}"
        )));
    }
    let expected = rows
        .checked_mul(cols)
        .ok_or_else(|| MarginError::input(format!("{what} shape {rows} x {cols} overflows")))?;
    if values.len() != expected {
        return Err(MarginError::input(format!(
            "{what} hold {} values, expected {rows} x {cols} = {expected}",
            values.len()
        )));
    }
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        return Err(MarginError::input(format!(
            "{what} contain a non-finite value ({}) at row {}, column {}",
            values[pos],
            pos / cols,
            pos % cols
        )));
    }
    Ok(())
}

/// Checks the loss parameters, the embeddings, the labels and (for triplet-center) the centers.
pub(crate) fn loss_input(
    loss: &Loss,
    x: &[f64],
    n: usize,
    d: usize,
    labels: &[i64],
    centers: Option<(&[f64], usize)>,
) -> Result<()> {
    loss.validate()?;
    matrix(x, n, d, "embeddings")?;
    if labels.len() != n {
        return Err(MarginError::input(format!(
            "label count {} does not match the {n} embedding rows",
            labels.len()
        )));
    }
    match (loss.needs_centers(), centers) {
        (true, None) => Err(MarginError::input(format!(
            "{} needs centers (K x D); none were given",
            loss.kind()
        ))),
        (false, Some(_)) => Err(MarginError::input(format!(
            "{} takes no centers",
            loss.kind()
        ))),
        (false, None) => Ok(()),
        (true, Some((c, k))) => {
            if k < loss.min_centers() {
                return Err(MarginError::input(format!(
                    "{} needs at least {} centers, got {k}",
                    loss.kind(),
                    loss.min_centers()
                )));
            }
            matrix(c, k, d, "centers")?;
            match labels.iter().position(|&l| l < 0 || l as u64 >= k as u64) {
                Some(i) => Err(MarginError::input(format!(
                    "label {} at row {i} is outside 0..{k} (the number of centers)",
                    labels[i]
                ))),
                None => Ok(()),
            }
        }
    }
}

/// Checks the loss (parameters, and that it takes a reference set), the batch, and the reference
/// set against the batch (width, label count, self index), for
/// [`super::evaluate_with_reference`].
pub(crate) fn reference_input(
    loss: &Loss,
    x: &[f64],
    n: usize,
    d: usize,
    labels: &[i64],
    reference: &RefSet<'_>,
) -> Result<()> {
    loss.validate()?;
    if !loss.supports_reference() {
        return Err(loss.reference_unsupported());
    }
    matrix(x, n, d, "embeddings")?;
    if labels.len() != n {
        return Err(MarginError::input(format!(
            "label count {} does not match the {n} embedding rows",
            labels.len()
        )));
    }
    matrix(reference.embeddings, reference.m, d, "reference embeddings")?;
    check_reference(
        labels,
        d,
        reference.m,
        d,
        reference.labels,
        reference.self_index,
    )
}
