//! Triplet loss row kernels (stage 3), on `e = sign * d` ("smaller is closer"):
//! `v = e_ap − e_an + margin`.
//!
//! * all / semihard with relu: exact in `O(N log P)` per anchor, never enumerating triplets.
//!   The anchor's positives are sorted; each negative finds by binary search the contiguous
//!   range of sorted positives it forms an active triplet with (all: `e_ap > e_an − m`;
//!   semihard: `e_an − m < e_ap < e_an`), which is its weight (a count); a difference array over
//!   those ranges gives each positive's count. The loss is `Σ W e + m · count` (hinge terms are
//!   linear in `e`), summed in f64.
//! * smooth (softplus): `O(P · N)` arithmetic per anchor, streamed, nothing stored.
//! * hard: per anchor, farthest positive and nearest negative.

use super::classes::Classes;
use super::engine::{Acc, RowKernel, inv};
use margin_core::Mining;

/// Sorted positives of one anchor (value, column), their values in f64, a difference array.
#[derive(Default)]
pub(crate) struct Scratch {
    pos: Vec<(f32, u32)>,
    vals: Vec<f64>,
    diff: Vec<i64>,
}

/// Up to this many positives a vectorized linear count beats the binary search.
const LINEAR_MAX: usize = 64;

/// Up to this many positives per anchor, one pass over the row per positive beats counting per
/// negative (measured at N = 2048 with 8 samples per class: 3x faster hinge rows).
const BY_POSITIVE_MAX: usize = 24;

/// f32 lanes of the per-positive pass.
const LANES: usize = 8;

/// `#{v in sorted : v <= x}` (`strict`: `v < x`), branch-free: the hot loop of batch-all.
#[inline]
fn count_below(sorted: &[f64], x: f64, strict: bool) -> usize {
    if sorted.len() <= LINEAR_MAX {
        return if strict {
            sorted.iter().map(|&v| usize::from(v < x)).sum()
        } else {
            sorted.iter().map(|&v| usize::from(v <= x)).sum()
        };
    }
    let mut size = sorted.len();
    if size == 0 {
        return 0;
    }
    let below = |v: f64| if strict { v < x } else { v <= x };
    let mut base = 0usize;
    while size > 1 {
        let half = size / 2;
        let mid = base + half;
        base = if below(sorted[mid]) { mid } else { base };
        size -= half;
    }
    base + usize::from(below(sorted[base]))
}

/// The triplet kernel (also the first term of the quadruplet loss).
pub(crate) struct Triplet<'a> {
    pub classes: &'a Classes,
    pub margin: f64,
    pub smooth: bool,
    pub mining: Mining,
}

/// `softplus(v)` and `sigmoid(v)` in f64, stable for any `v`.
#[inline]
fn softplus_sigmoid(v: f64) -> (f64, f64) {
    let t = (-v.abs()).exp();
    let sp = v.max(0.0) + t.ln_1p();
    let sg = if v >= 0.0 {
        1.0 / (1.0 + t)
    } else {
        t / (1.0 + t)
    };
    (sp, sg)
}

impl Triplet<'_> {
    /// Collects and sorts row `i`'s positives; false when it has none.
    fn positives(&self, s: &mut Scratch, i: usize, e: &[f32]) -> bool {
        let c = self.classes.row(i);
        let skip = self.classes.skip(i);
        s.pos.clear();
        for &j in &self.classes.members[c as usize] {
            if j as usize != skip {
                s.pos.push((e[j as usize], j));
            }
        }
        s.pos.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        s.vals.clear();
        s.vals.extend(s.pos.iter().map(|q| f64::from(q.0)));
        !s.pos.is_empty()
    }

    /// Relu, all or semihard: see the module doc. Adds to `w`, returns (loss sum, count).
    /// [`Triplet::hinge_row`] for an anchor with few positives: one vectorizable pass over the
    /// row per positive (`p·N` simple operations instead of `N` searches). The hinge values are
    /// summed directly (no cancellation) in f32 lanes per positive, then in f64.
    fn hinge_row_by_positive(&self, s: &Scratch, c: u32, e: &[f32], w: &mut [f32]) -> (f64, u64) {
        if self.mining == Mining::SemiHard {
            self.by_positive::<true>(s, c, e, w)
        } else {
            self.by_positive::<false>(s, c, e, w)
        }
    }

    /// The loop of [`Triplet::hinge_row_by_positive`], monomorphized so that batch-all carries
    /// no lower bound test.
    fn by_positive<const SEMI: bool>(
        &self,
        s: &Scratch,
        c: u32,
        e: &[f32],
        w: &mut [f32],
    ) -> (f64, u64) {
        let m = self.margin as f32;
        let ids = &self.classes.id[..e.len()];
        let (mut loss, mut count) = (0.0f64, 0u64);
        let mut gains = [0.0f32; BY_POSITIVE_MAX];
        for (r, &(ep, _)) in s.pos.iter().enumerate() {
            let hi = ep + m;
            // Semihard also needs `e_an > e_ap`; batch-all takes every negative below `hi`.
            let lo = ep;
            let mut cnt = [0.0f32; LANES];
            let mut sum = [0.0f32; LANES];
            let mut it = e
                .chunks_exact(LANES)
                .zip(w.chunks_exact_mut(LANES))
                .zip(ids.chunks_exact(LANES));
            for ((ec, wc), ic) in &mut it {
                for l in 0..LANES {
                    let en = ec[l];
                    let a = if ic[l] != c && en < hi && (!SEMI || en > lo) {
                        1.0f32
                    } else {
                        0.0
                    };
                    wc[l] -= a;
                    cnt[l] += a;
                    sum[l] += a * (hi - en);
                }
            }
            let done = e.len() / LANES * LANES;
            let (mut k, mut l_tail) = (0.0f32, 0.0f64);
            for ((&en, wn), &id) in e[done..].iter().zip(&mut w[done..]).zip(&ids[done..]) {
                if id != c && en < hi && (!SEMI || en > lo) {
                    *wn -= 1.0;
                    k += 1.0;
                    l_tail += f64::from(hi - en);
                }
            }
            k += cnt.iter().sum::<f32>();
            gains[r] = k;
            loss += l_tail + sum.iter().map(|&v| f64::from(v)).sum::<f64>();
            count += k as u64;
        }
        for (&(_, j), &k) in s.pos.iter().zip(&gains) {
            w[j as usize] += k;
        }
        (loss, count)
    }

    pub(crate) fn hinge_row(
        &self,
        s: &mut Scratch,
        i: usize,
        e: &[f32],
        w: &mut [f32],
    ) -> (f64, u64) {
        if !self.positives(s, i, e) {
            return (0.0, 0);
        }
        let c = self.classes.row(i);
        let p = s.pos.len();
        if p <= BY_POSITIVE_MAX {
            return self.hinge_row_by_positive(s, c, e, w);
        }
        s.diff.clear();
        s.diff.resize(p + 1, 0);
        let m = self.margin;
        let semi = self.mining == Mining::SemiHard;
        let (mut loss, mut count) = (0.0f64, 0u64);
        for (n, (&en, wn)) in e.iter().zip(w.iter_mut()).enumerate() {
            if self.classes.id[n] == c {
                continue;
            }
            let en = f64::from(en);
            let thr = en - m;
            let lo = count_below(&s.vals, thr, false);
            let hi = if semi {
                count_below(&s.vals, en, true)
            } else {
                p
            };
            if hi > lo {
                let k = (hi - lo) as u64;
                *wn -= k as f32;
                loss -= k as f64 * en;
                count += k;
                s.diff[lo] += 1;
                s.diff[hi] -= 1;
            }
        }
        let mut run = 0i64;
        for r in 0..p {
            run += s.diff[r];
            if run > 0 {
                let (ep, j) = s.pos[r];
                w[j as usize] += run as f32;
                loss += run as f64 * (f64::from(ep) + m);
            }
        }
        (loss, count)
    }

    /// Softplus over every valid (all) or mined (semihard) triplet of anchor `i`.
    fn smooth_row(&self, s: &mut Scratch, i: usize, e: &[f32], w: &mut [f32]) -> (f64, u64) {
        if !self.positives(s, i, e) {
            return (0.0, 0);
        }
        let c = self.classes.row(i);
        let m = self.margin;
        let semi = self.mining == Mining::SemiHard;
        let p = s.pos.len();
        let mut wp = vec![0.0f64; p];
        let (mut loss, mut count) = (0.0f64, 0u64);
        for n in 0..e.len() {
            if self.classes.id[n] == c {
                continue;
            }
            let en = f64::from(e[n]);
            // semihard mined: 0 < e_an − e_ap <= m, i.e. e_an − m <= e_ap < e_an.
            let (lo, hi) = if semi {
                (
                    count_below(&s.vals, en - m, true),
                    count_below(&s.vals, en, true),
                )
            } else {
                (0, p)
            };
            let mut wn = 0.0f64;
            for (q, g) in s.pos[lo..hi].iter().zip(&mut wp[lo..hi]) {
                let v = f64::from(q.0) - en + m;
                // Softplus is positive everywhere: every selected triplet counts.
                let (sp, sg) = softplus_sigmoid(v);
                loss += sp;
                count += 1;
                *g += sg;
                wn += sg;
            }
            w[n] -= wn as f32;
        }
        for (r, &g) in wp.iter().enumerate() {
            w[s.pos[r].1 as usize] += g as f32;
        }
        (loss, count)
    }

    /// Batch-hard: the farthest positive and the nearest negative.
    fn hard_row(&self, i: usize, e: &[f32], w: &mut [f32]) -> (f64, u64) {
        let c = self.classes.row(i);
        let mut bp: Option<(f32, usize)> = None;
        let mut bn: Option<(f32, usize)> = None;
        // Square case: the diagonal is no candidate. With a reference set the self column
        // competes for the farthest positive (PML mines before it removes self pairs) and the
        // anchor is dropped when it wins (docs/REFERENCE_SETS.md 3.2).
        let skip = self.classes.skip(i);
        let competes = self.classes.is_rect();
        for (j, &v) in e.iter().enumerate() {
            if j == skip && !competes {
                continue;
            }
            if self.classes.id[j] == c {
                if bp.is_none_or(|(b, _)| v > b) {
                    bp = Some((v, j));
                }
            } else if bn.is_none_or(|(b, _)| v < b) {
                bn = Some((v, j));
            }
        }
        let (Some((ep, p)), Some((en, n))) = (bp, bn) else {
            return (0.0, 0);
        };
        if competes && p == skip {
            return (0.0, 0);
        }
        let v = f64::from(ep) - f64::from(en) + self.margin;
        let (l, g) = if self.smooth {
            softplus_sigmoid(v)
        } else if v > 0.0 {
            (v, 1.0)
        } else {
            (0.0, 0.0)
        };
        if self.smooth || v > 0.0 {
            w[p] += g as f32;
            w[n] -= g as f32;
            (l, 1)
        } else {
            (0.0, 0)
        }
    }
}

impl RowKernel for Triplet<'_> {
    type Scratch = Scratch;
    const GROUPS: usize = 1;
    fn scratch(&self) -> Scratch {
        Scratch::default()
    }
    fn row(&self, s: &mut Scratch, i: usize, e: &[f32], w0: &mut [f32], _w1: &mut [f32]) -> Acc {
        let (loss, count) = match (self.mining, self.smooth) {
            (Mining::Hard, _) => self.hard_row(i, e, w0),
            (_, true) => self.smooth_row(s, i, e, w0),
            (_, false) => self.hinge_row(s, i, e, w0),
        };
        Acc {
            loss: [loss, 0.0],
            count: [count, 0],
        }
    }
    fn scales(&self, acc: &Acc) -> [f64; 2] {
        [inv(acc.count[0]), 0.0]
    }
}
