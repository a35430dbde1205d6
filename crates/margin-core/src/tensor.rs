//! Validated, borrowed views of host data. Construction checks everything the SPEC requires of
//! inputs, so that backends can assume well-formed data and never panic on user input.

use crate::error::{MarginError, Result};

/// A row-major `rows x cols` f32 matrix: embeddings (N x D) or centers (K x D).
///
/// Guaranteed: `rows >= 1`, `cols >= 1`, `data.len() == rows * cols`, every value finite.
#[derive(Debug, Clone, Copy)]
pub struct Embeddings<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> Embeddings<'a> {
    /// Validates and wraps `data` as a `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::named(data, rows, cols, "embeddings")
    }

    /// Like [`Embeddings::new`], naming the matrix (`"centers"`, ...) in error messages.
    pub fn named(data: &'a [f32], rows: usize, cols: usize, what: &str) -> Result<Self> {
        if rows == 0 {
            return Err(MarginError::input(format!("{what} have no rows (N = 0)")));
        }
        if cols == 0 {
            return Err(MarginError::input(format!(
                "{what} have no columns (D = 0)"
            )));
        }
        let expected = rows.checked_mul(cols).ok_or_else(|| {
            MarginError::input(format!("{what} shape {rows} x {cols} overflows usize"))
        })?;
        if data.len() != expected {
            return Err(MarginError::input(format!(
                "{what} hold {} values, expected {rows} x {cols} = {expected}",
                data.len()
            )));
        }
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Err(MarginError::input(format!(
                "{what} contain a non-finite value ({}) at row {}, column {}",
                data[pos],
                pos / cols,
                pos % cols
            )));
        }
        Ok(Self { data, rows, cols })
    }

    /// Number of rows (N, or K for centers).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (D).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The row-major values.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Row `i`. Panics if `i >= rows` (an internal invariant, not user input).
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Everything a loss reads: embeddings, one label per row and, for triplet-center, the centers.
///
/// Guaranteed: `labels.len() == embeddings.rows()`; centers, when present, have the embeddings'
/// width. Loss-specific checks (labels in `0..K` for triplet-center) are in
/// [`crate::Loss::validate_input`].
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a> {
    /// N x D embeddings.
    pub embeddings: Embeddings<'a>,
    /// N labels, compared only for equality.
    pub labels: &'a [i64],
    /// K x D centers (triplet-center only).
    pub centers: Option<Embeddings<'a>>,
}

impl<'a> LossInput<'a> {
    /// Checks that labels and centers fit the embeddings.
    pub fn new(
        embeddings: Embeddings<'a>,
        labels: &'a [i64],
        centers: Option<Embeddings<'a>>,
    ) -> Result<Self> {
        if labels.len() != embeddings.rows() {
            return Err(MarginError::input(format!(
                "label count {} does not match the {} embedding rows",
                labels.len(),
                embeddings.rows()
            )));
        }
        if let Some(c) = centers
            && c.cols() != embeddings.cols()
        {
            return Err(MarginError::input(format!(
                "centers have width {} but embeddings have width {}",
                c.cols(),
                embeddings.cols()
            )));
        }
        Ok(Self {
            embeddings,
            labels,
            centers,
        })
    }

    /// Shorthand: validates raw slices in one call; centers are `(data, K, width)`.
    pub fn from_slices(
        embeddings: &'a [f32],
        n: usize,
        d: usize,
        labels: &'a [i64],
        centers: Option<(&'a [f32], usize, usize)>,
    ) -> Result<Self> {
        let x = Embeddings::new(embeddings, n, d)?;
        let c = centers
            .map(|(data, k, width)| Embeddings::named(data, k, width, "centers"))
            .transpose()?;
        Self::new(x, labels, c)
    }

    /// N.
    pub fn n(&self) -> usize {
        self.embeddings.rows()
    }

    /// D.
    pub fn d(&self) -> usize {
        self.embeddings.cols()
    }
}
