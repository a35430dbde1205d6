//! Pair-based row kernels (stage 3) on `e = sign * d`: contrastive and lifted structure.
//! Margins are multiplied by `sign` so that the similarity forms of the SPEC come out of the
//! distance forms (`relu(e − pm')`, `relu(nm' − e)`, `LSE(nm' − e) + e − pm'`).

use super::classes::Classes;
use super::engine::{Acc, RowKernel, inv};

/// Contrastive: group 0 positive pairs `relu(e − pm)`, group 1 negative pairs `relu(nm − e)`.
pub(crate) struct Contrastive<'a> {
    pub classes: &'a Classes,
    /// `sign * pos_margin`.
    pub pm: f64,
    /// `sign * neg_margin`.
    pub nm: f64,
}

impl RowKernel for Contrastive<'_> {
    type Scratch = ();
    const GROUPS: usize = 2;
    fn scratch(&self) {}
    fn row(&self, _: &mut (), i: usize, e: &[f32], w0: &mut [f32], w1: &mut [f32]) -> Acc {
        let c = self.classes.id[i];
        let mut acc = Acc::default();
        for (j, &v) in e.iter().enumerate() {
            if j == i {
                continue;
            }
            let v = f64::from(v);
            if self.classes.id[j] == c {
                let l = v - self.pm;
                if l > 0.0 {
                    acc.loss[0] += l;
                    acc.count[0] += 1;
                    w0[j] += 1.0;
                }
            } else {
                let l = self.nm - v;
                if l > 0.0 {
                    acc.loss[1] += l;
                    acc.count[1] += 1;
                    w1[j] -= 1.0;
                }
            }
        }
        acc
    }
    fn scales(&self, acc: &Acc) -> [f64; 2] {
        [inv(acc.count[0]), inv(acc.count[1])]
    }
}

/// `log(Σ exp(nm − e_ik))` over row `i`'s negatives; `-inf` when it has none.
pub(crate) fn row_lse(classes: &Classes, nm: f64, i: usize, e: &[f32]) -> f64 {
    let c = classes.id[i];
    let mut mx = f64::NEG_INFINITY;
    for (k, &v) in e.iter().enumerate() {
        if classes.id[k] != c {
            mx = mx.max(nm - f64::from(v));
        }
    }
    if mx == f64::NEG_INFINITY {
        return mx;
    }
    let s: f64 = e
        .iter()
        .enumerate()
        .filter(|&(k, _)| classes.id[k] != c)
        .map(|(_, &v)| (nm - f64::from(v) - mx).exp())
        .sum();
    mx + s.ln()
}

/// `log(exp(a) + exp(b))`, stable, with `-inf` for empty sides.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if hi == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// Lifted structure, given every row's negative log-sum-exp `lse` (a first pass).
/// Per ordered positive pair `(i, j)`: `J = log(e^{L_i} + e^{L_j}) + e_ij − pm`, loss
/// `relu(J)²/2`. Weights (unnormalized, divided by the number of positive pairs at the end):
/// `W[i,j] += J`; row i's negative k gets `−exp(nm − e_ik − L_i) Σ_j J_ij e^{L_i − LSE_ij}`,
/// counted twice since `(j, i)`'s negative set also holds row i's negatives (d symmetric).
pub(crate) struct Lifted<'a> {
    pub classes: &'a Classes,
    pub lse: &'a [f64],
    pub pm: f64,
    pub nm: f64,
    /// Number of ordered positive pairs (the Mean's denominator).
    pub npos: u64,
}

impl RowKernel for Lifted<'_> {
    type Scratch = ();
    const GROUPS: usize = 1;
    fn scratch(&self) {}
    fn row(&self, _: &mut (), i: usize, e: &[f32], w0: &mut [f32], _w1: &mut [f32]) -> Acc {
        let c = self.classes.id[i];
        let li = self.lse[i];
        let mut acc = Acc::default();
        if li == f64::NEG_INFINITY {
            return acc;
        }
        let mut a = 0.0f64;
        for &j in &self.classes.members[c as usize] {
            let j = j as usize;
            if j == i {
                continue;
            }
            let lse = log_add_exp(li, self.lse[j]);
            let jv = lse + f64::from(e[j]) - self.pm;
            if jv > 0.0 {
                acc.loss[0] += jv * jv / 2.0;
                acc.count[0] += 1;
                w0[j] += jv as f32;
                a += jv * (li - lse).exp();
            }
        }
        if a > 0.0 {
            for (k, &v) in e.iter().enumerate() {
                if self.classes.id[k] != c {
                    w0[k] -= (2.0 * a * (self.nm - f64::from(v) - li).exp()) as f32;
                }
            }
        }
        acc
    }
    fn scales(&self, _: &Acc) -> [f64; 2] {
        [inv(self.npos), 0.0]
    }
}
