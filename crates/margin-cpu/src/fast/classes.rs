//! Labels re-encoded as dense class ids `0..C` in order of first appearance.

use std::collections::HashMap;

/// Dense class ids and the members of each class.
pub(crate) struct Classes {
    /// `id[i]`: the class of row `i`.
    pub id: Vec<u32>,
    /// `members[c]`: the rows of class `c`, ascending.
    pub members: Vec<Vec<u32>>,
}

impl Classes {
    /// Encodes `labels`.
    pub fn new(labels: &[i64]) -> Self {
        let mut map = HashMap::new();
        let mut members: Vec<Vec<u32>> = Vec::new();
        let id = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let c = *map.entry(*l).or_insert_with(|| {
                    members.push(Vec::new());
                    members.len() - 1
                });
                members[c].push(i as u32);
                c as u32
            })
            .collect();
        Self { id, members }
    }

    /// Number of ordered positive pairs `(i, j)`, `i ≠ j`, same class.
    pub fn ordered_positive_pairs(&self) -> u64 {
        self.members
            .iter()
            .map(|m| (m.len() as u64) * (m.len() as u64).saturating_sub(1))
            .sum()
    }
}
