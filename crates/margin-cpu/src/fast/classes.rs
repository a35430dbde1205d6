//! Labels re-encoded as dense class ids `0..C` in order of first appearance, and the layout of a
//! loss's pair matrix: which class each anchor row has, which class each column has, and which
//! single column of a row is excluded. The square case (batch against itself) excludes the
//! diagonal; with a reference set (docs/REFERENCE_SETS.md) the columns are the reference rows and
//! the excluded column is the row's self index σ(i), if any. Row kernels ask [`Classes::row`] and
//! [`Classes::skip`] instead of assuming `i` is both.

use margin_core::NO_SELF;
use std::collections::HashMap;

/// Dense class ids and the members of each class.
pub(crate) struct Classes {
    /// `id[j]`: the class of column `j` (of row `j` in the square case).
    pub id: Vec<u32>,
    /// `members[c]`: the columns of class `c`, ascending (empty for a class only anchors have).
    pub members: Vec<Vec<u32>>,
    /// With a reference set: the class of each anchor row (None: `id`, the square case).
    anchor: Option<Vec<u32>>,
    /// With a reference set: the excluded column of each row, `usize::MAX` for none.
    skip: Option<Vec<usize>>,
}

impl Classes {
    /// Encodes `labels` for the square case: rows and columns are the same, the diagonal is
    /// excluded.
    pub fn new(labels: &[i64]) -> Self {
        let mut map = HashMap::new();
        let mut members = Vec::new();
        let id = encode(labels, &mut map, &mut members, true);
        Self {
            id,
            members,
            anchor: None,
            skip: None,
        }
    }

    /// The layout of a batch (`labels`, N rows) against a reference set (`ref_labels`, M
    /// columns): one class space for both, column members only, and the self index (entries
    /// `NO_SELF` or `>= M` exclude nothing).
    pub fn rect(labels: &[i64], ref_labels: &[i64], self_index: Option<&[u32]>) -> Self {
        let mut map = HashMap::new();
        let mut members = Vec::new();
        let id = encode(ref_labels, &mut map, &mut members, true);
        let anchor = encode(labels, &mut map, &mut members, false);
        let m = ref_labels.len();
        let skip = (0..labels.len())
            .map(|i| match self_index.map(|s| s[i]) {
                Some(s) if s != NO_SELF && (s as usize) < m => s as usize,
                _ => usize::MAX,
            })
            .collect();
        Self {
            id,
            members,
            anchor: Some(anchor),
            skip: Some(skip),
        }
    }

    /// True with a reference set (the columns are not the rows).
    pub fn is_rect(&self) -> bool {
        self.anchor.is_some()
    }

    /// The class of anchor row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> u32 {
        match &self.anchor {
            Some(a) => a[i],
            None => self.id[i],
        }
    }

    /// The excluded column of row `i` (`i` in the square case, `usize::MAX` for none).
    #[inline]
    pub fn skip(&self, i: usize) -> usize {
        match &self.skip {
            Some(s) => s[i],
            None => i,
        }
    }

    /// Number of anchor rows (N).
    pub fn rows(&self) -> usize {
        self.anchor.as_ref().map_or(self.id.len(), Vec::len)
    }

    /// Number of columns (N, or M with a reference set).
    pub fn cols(&self) -> usize {
        self.id.len()
    }

    /// `|P(i)|`: the columns of row `i`'s class, less the excluded one.
    #[inline]
    pub fn positives(&self, i: usize) -> usize {
        let c = self.row(i) as usize;
        self.members[c].len() - usize::from(self.skip(i) < self.cols())
    }

    /// `|Neg(i)|`: the columns of other classes.
    #[inline]
    pub fn negatives(&self, i: usize) -> usize {
        self.cols() - self.members[self.row(i) as usize].len()
    }

    /// Number of ordered positive pairs `(i, j)`, `j ∈ P(i)`.
    pub fn ordered_positive_pairs(&self) -> u64 {
        if !self.is_rect() {
            return self
                .members
                .iter()
                .map(|m| (m.len() as u64) * (m.len() as u64).saturating_sub(1))
                .sum();
        }
        (0..self.rows()).map(|i| self.positives(i) as u64).sum()
    }

    /// Number of ordered negative pairs `(i, j)`, `j ∈ Neg(i)`.
    pub fn negative_pairs(&self) -> u64 {
        (0..self.rows()).map(|i| self.negatives(i) as u64).sum()
    }
}

/// Ids of `labels` in the shared `map`; new labels get new classes, with the rows as members
/// when `member` (columns) and no members otherwise (anchor-only classes).
fn encode(
    labels: &[i64],
    map: &mut HashMap<i64, usize>,
    members: &mut Vec<Vec<u32>>,
    member: bool,
) -> Vec<u32> {
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let c = *map.entry(*l).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            if member {
                members[c].push(i as u32);
            }
            c as u32
        })
        .collect()
}
