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

/// In [`ReferenceSet::self_index`]: this batch row has no copy in the reference set.
pub const NO_SELF: u32 = u32::MAX;

/// A second set of embeddings (PML's `ref_emb` / `ref_labels`): anchors come from the batch,
/// positives and negatives from this set, and the gradient is for the batch only. It is the
/// building block of cross-batch memory. The contract is `docs/REFERENCE_SETS.md`.
///
/// Guaranteed by [`LossInput::with_reference`]: `labels.len() == embeddings.rows()` (M >= 1), the
/// batch's width, and a `self_index` of N entries, each `< M` or [`NO_SELF`], pointing at a row
/// with the batch row's own label.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceSet<'a> {
    /// M x D reference embeddings (a constant: no gradient flows into them).
    pub embeddings: Embeddings<'a>,
    /// M labels.
    pub labels: &'a [i64],
    /// Per batch row, the reference row that is its own copy (it is not one of the row's
    /// positives), or [`NO_SELF`]. `None`: no row has a copy. Nothing else is ever excluded: a
    /// reference row equal to a batch row is an ordinary positive unless named here.
    pub self_index: Option<&'a [u32]>,
}

/// Checks a reference set's labels and self index against a batch of `n` rows with `labels`
/// and width `d` (shared by the host and the device paths).
pub fn check_reference(
    batch_labels: &[i64],
    d: usize,
    m: usize,
    ref_width: usize,
    ref_labels: &[i64],
    self_index: Option<&[u32]>,
) -> Result<()> {
    let n = batch_labels.len();
    if m == 0 {
        return Err(MarginError::input("the reference set has no rows (M = 0)"));
    }
    if ref_width != d {
        return Err(MarginError::input(format!(
            "reference embeddings have width {ref_width} but the batch has width {d}"
        )));
    }
    if ref_labels.len() != m {
        return Err(MarginError::input(format!(
            "reference label count {} does not match the {m} reference rows",
            ref_labels.len()
        )));
    }
    let Some(sigma) = self_index else {
        return Ok(());
    };
    if sigma.len() != n {
        return Err(MarginError::input(format!(
            "self index has {} entries, expected one per batch row ({n})",
            sigma.len()
        )));
    }
    for (i, &s) in sigma.iter().enumerate() {
        if s == NO_SELF {
            continue;
        }
        if s as usize >= m {
            return Err(MarginError::input(format!(
                "self index {s} of batch row {i} is outside the {m} reference rows"
            )));
        }
        if ref_labels[s as usize] != batch_labels[i] {
            return Err(MarginError::input(format!(
                "self index of batch row {i} points at reference row {s}, whose label {} is not \
                 the row's label {}",
                ref_labels[s as usize], batch_labels[i]
            )));
        }
    }
    Ok(())
}

/// Everything a loss reads: embeddings, one label per row and, for triplet-center, the centers;
/// optionally a reference set.
///
/// Guaranteed: `labels.len() == embeddings.rows()`; centers, when present, have the embeddings'
/// width; a reference set is checked as [`ReferenceSet`] says. Loss-specific checks (labels in
/// `0..K` for triplet-center, losses that take no reference set) are in
/// [`crate::Loss::validate_input`].
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a> {
    /// N x D embeddings.
    pub embeddings: Embeddings<'a>,
    /// N labels, compared only for equality.
    pub labels: &'a [i64],
    /// K x D centers (triplet-center only).
    pub centers: Option<Embeddings<'a>>,
    /// Where positives and negatives come from instead of the batch (see [`ReferenceSet`]).
    pub reference: Option<ReferenceSet<'a>>,
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
            reference: None,
        })
    }

    /// Adds a reference set after checking it against the batch (width, label count, self index).
    pub fn with_reference(mut self, reference: ReferenceSet<'a>) -> Result<Self> {
        check_reference(
            self.labels,
            self.d(),
            reference.embeddings.rows(),
            reference.embeddings.cols(),
            reference.labels,
            reference.self_index,
        )?;
        self.reference = Some(reference);
        Ok(self)
    }

    /// The number of columns of the loss's pair matrix: M with a reference set, else N.
    pub fn columns(&self) -> usize {
        self.reference.map_or(self.n(), |r| r.embeddings.rows())
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
