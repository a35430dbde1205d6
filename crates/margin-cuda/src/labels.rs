//! Host-side label encodings. Labels stay on the host (they are small); the kernels get compact
//! `int` ids and the index tables that the loss algorithms need, computed here in O(N).

use std::collections::HashMap;

/// Labels as compact ids `0..classes`, numbered in order of first appearance.
#[derive(Debug, Clone)]
pub(crate) struct LabelInfo {
    /// Compact id per row.
    pub ids: Vec<i32>,
    /// Rows per compact id.
    pub counts: Vec<usize>,
}

impl LabelInfo {
    pub fn new(labels: &[i64]) -> Self {
        let mut map: HashMap<i64, i32> = HashMap::new();
        let mut counts = Vec::new();
        let ids = labels
            .iter()
            .map(|l| {
                let next = counts.len() as i32;
                let id = *map.entry(*l).or_insert(next);
                if id == next {
                    counts.push(0);
                }
                counts[id as usize] += 1;
                id
            })
            .collect();
        Self { ids, counts }
    }

    /// Number of ordered positive pairs, sum of n_c (n_c - 1).
    pub fn positive_pairs(&self) -> u64 {
        self.counts
            .iter()
            .map(|&c| (c as u64) * (c as u64).saturating_sub(1))
            .sum()
    }

    /// Number of ordered negative pairs.
    pub fn negative_pairs(&self) -> u64 {
        let n = self.ids.len() as u64;
        let same: u64 = self.counts.iter().map(|&c| (c as u64) * (c as u64)).sum();
        n * n - same
    }

    /// N-pair's pairs: for each label with at least two rows, in order of first appearance,
    /// its first row (anchor) and second row (positive).
    pub fn npair_pairs(&self) -> (Vec<i32>, Vec<i32>) {
        let mut first: Vec<Option<usize>> = vec![None; self.counts.len()];
        let mut second: Vec<Option<usize>> = vec![None; self.counts.len()];
        for (row, &id) in self.ids.iter().enumerate() {
            let id = id as usize;
            if first[id].is_none() {
                first[id] = Some(row);
            } else if second[id].is_none() {
                second[id] = Some(row);
            }
        }
        first
            .iter()
            .zip(&second)
            .filter_map(|(a, p)| Some((a.map(|v| v as i32)?, p.map(|v| v as i32)?)))
            .unzip()
    }

    /// The quadruplet layout: rows grouped by label (`members`, with `mstart` offsets, C + 1
    /// entries), each row's position within its label, and the offsets of each label's block of
    /// ordered positive pairs (`pstart`, C + 1 entries, block size n_c (n_c - 1)).
    pub fn quad_layout(&self) -> QuadLayout {
        let classes = self.counts.len();
        let mut mstart = vec![0i32; classes + 1];
        let mut pstart = vec![0i64; classes + 1];
        for (c, &cnt) in self.counts.iter().enumerate() {
            mstart[c + 1] = mstart[c] + cnt as i32;
            pstart[c + 1] = pstart[c] + (cnt as i64) * (cnt as i64 - 1);
        }
        let mut fill: Vec<i32> = mstart[..classes].to_vec();
        let mut members = vec![0i32; self.ids.len()];
        let mut pos_in_label = vec![0i32; self.ids.len()];
        for (row, &id) in self.ids.iter().enumerate() {
            let c = id as usize;
            pos_in_label[row] = fill[c] - mstart[c];
            members[fill[c] as usize] = row as i32;
            fill[c] += 1;
        }
        QuadLayout {
            members,
            mstart,
            pstart,
            pos_in_label,
        }
    }
}

/// See [`LabelInfo::quad_layout`].
#[derive(Debug, Clone)]
pub(crate) struct QuadLayout {
    pub members: Vec<i32>,
    pub mstart: Vec<i32>,
    pub pstart: Vec<i64>,
    pub pos_in_label: Vec<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_ids_and_pairs() {
        let info = LabelInfo::new(&[7, 3, 7, 9, 3, 7]);
        assert_eq!(info.ids, vec![0, 1, 0, 2, 1, 0]);
        assert_eq!(info.counts, vec![3, 2, 1]);
        assert_eq!(info.positive_pairs(), 6 + 2);
        assert_eq!(info.negative_pairs(), 36 - 9 - 4 - 1);
        assert_eq!(info.npair_pairs(), (vec![0, 1], vec![2, 4]));
        let q = info.quad_layout();
        assert_eq!(q.mstart, vec![0, 3, 5, 6]);
        assert_eq!(q.members, vec![0, 2, 5, 1, 4, 3]);
        assert_eq!(q.pstart, vec![0, 6, 8, 8]);
        assert_eq!(q.pos_in_label, vec![0, 0, 1, 0, 1, 2]);
    }
}
