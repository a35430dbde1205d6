//! Host-side label encodings for reference sets (docs/REFERENCE_SETS.md): batch and reference
//! labels as compact ids of one shared numbering, the per-row self column, the pair counts that
//! decide the batch-level rules (2.3 and "zero if no positive or no negative pair"), and the
//! quadruplet's positive-pair layout. All O(N + M) on the host: labels never live on the device
//! as anything but these ids.

use margin_core::NO_SELF;
use std::collections::HashMap;

/// Batch labels (`ids`, N) and reference labels (`rids`, M) as ids `0..classes`.
#[derive(Debug, Clone)]
pub(crate) struct RefLabels {
    pub ids: Vec<i32>,
    pub rids: Vec<i32>,
    pub classes: usize,
    /// Per batch row its self column, or `NO_SELF` (the kernels read `0xFFFFFFFF` as none).
    pub excl: Vec<u32>,
    /// Reference rows per class.
    rcount: Vec<usize>,
}

impl RefLabels {
    /// `self_index` was validated by `check_device_input` (length N, `< M` or `NO_SELF`, same
    /// label as its batch row).
    pub fn new(labels: &[i64], ref_labels: &[i64], self_index: Option<&[u32]>) -> Self {
        let mut map: HashMap<i64, i32> = HashMap::new();
        let mut id = |l: i64| {
            let next = map.len() as i32;
            *map.entry(l).or_insert(next)
        };
        let ids: Vec<i32> = labels.iter().map(|&l| id(l)).collect();
        let rids: Vec<i32> = ref_labels.iter().map(|&l| id(l)).collect();
        let classes = map.len();
        let mut rcount = vec![0usize; classes];
        for &r in &rids {
            rcount[r as usize] += 1;
        }
        let excl = match self_index {
            Some(s) => s.to_vec(),
            None => vec![NO_SELF; ids.len()],
        };
        Self {
            ids,
            rids,
            classes,
            excl,
            rcount,
        }
    }

    fn has_self(&self, i: usize) -> bool {
        self.excl.get(i).is_some_and(|&s| s != NO_SELF)
    }

    /// |P(i)|: reference rows with row i's label, its self column excluded.
    fn positives_of(&self, i: usize) -> u64 {
        let same = self.rcount[self.ids[i] as usize] as u64;
        same - u64::from(self.has_self(i))
    }

    /// Number of (batch row, reference row) positive pairs, self columns excluded.
    pub fn positive_pairs(&self) -> u64 {
        (0..self.ids.len()).map(|i| self.positives_of(i)).sum()
    }

    /// Number of (batch row, reference row) pairs with different labels.
    pub fn negative_pairs(&self) -> u64 {
        let m = self.rids.len() as u64;
        self.ids
            .iter()
            .map(|&c| m - self.rcount[c as usize] as u64)
            .sum()
    }

    /// Rule 2.3 of the contract: at most one positive and at most one negative pair.
    pub fn tiny(&self) -> bool {
        self.positive_pairs() <= 1 && self.negative_pairs() <= 1
    }

    /// The quadruplet's term-2 layout: reference rows grouped by class (`rmembers`, offsets
    /// `rmstart`, C + 1), the blocks of positive pairs per anchor class (`pstart`, C + 1), each
    /// anchor's first slot in its class block (`poff`) and the position of its self column in its
    /// class's member list (`srank`, -1 for none).
    pub fn quad_layout(&self) -> RefQuadLayout {
        let c = self.classes;
        let mut rmstart = vec![0i32; c + 1];
        for k in 0..c {
            rmstart[k + 1] = rmstart[k] + self.rcount[k] as i32;
        }
        let mut fill: Vec<i32> = rmstart[..c].to_vec();
        let mut rmembers = vec![0i32; self.rids.len()];
        let mut rpos = vec![0i32; self.rids.len()];
        for (j, &r) in self.rids.iter().enumerate() {
            let r = r as usize;
            rpos[j] = fill[r] - rmstart[r];
            rmembers[fill[r] as usize] = j as i32;
            fill[r] += 1;
        }
        let mut per_class = vec![0i64; c];
        for i in 0..self.ids.len() {
            per_class[self.ids[i] as usize] += self.positives_of(i) as i64;
        }
        let mut pstart = vec![0i64; c + 1];
        for k in 0..c {
            pstart[k + 1] = pstart[k] + per_class[k];
        }
        let mut next: Vec<i64> = pstart[..c].to_vec();
        let mut poff = vec![0i64; self.ids.len()];
        let mut srank = vec![-1i32; self.ids.len()];
        for i in 0..self.ids.len() {
            let k = self.ids[i] as usize;
            poff[i] = next[k];
            next[k] += self.positives_of(i) as i64;
            if self.has_self(i) {
                srank[i] = rpos[self.excl[i] as usize];
            }
        }
        RefQuadLayout {
            rmembers,
            rmstart,
            pstart,
            poff,
            srank,
        }
    }
}

/// See [`RefLabels::quad_layout`].
#[derive(Debug, Clone)]
pub(crate) struct RefQuadLayout {
    pub rmembers: Vec<i32>,
    pub rmstart: Vec<i32>,
    pub pstart: Vec<i64>,
    pub poff: Vec<i64>,
    pub srank: Vec<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_ids_counts_and_layout() {
        // Batch [5, 7, 5], reference [7, 5, 9, 5]; row 2's own copy is reference row 3.
        let sigma = [NO_SELF, NO_SELF, 3];
        let l = RefLabels::new(&[5, 7, 5], &[7, 5, 9, 5], Some(&sigma));
        assert_eq!(l.ids, vec![0, 1, 0]);
        assert_eq!(l.rids, vec![1, 0, 2, 0]);
        assert_eq!(l.classes, 3);
        // |P| = 2, 1, 1; |Neg| = 2, 3, 2.
        assert_eq!(l.positive_pairs(), 4);
        assert_eq!(l.negative_pairs(), 7);
        assert!(!l.tiny());
        let q = l.quad_layout();
        assert_eq!(q.rmstart, vec![0, 2, 3, 4]);
        assert_eq!(q.rmembers, vec![1, 3, 0, 2]);
        assert_eq!(q.pstart, vec![0, 3, 4, 4]);
        assert_eq!(q.poff, vec![0, 3, 2]);
        assert_eq!(q.srank, vec![-1, -1, 1]);
        let t = RefLabels::new(&[1], &[1, 2], None);
        assert!(t.tiny());
    }
}
