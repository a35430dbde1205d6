//! Pair-based row kernels (stage 3) on `e = sign * d`: contrastive and lifted structure.
//! Margins are multiplied by `sign` so that the similarity forms of the SPEC come out of the
//! distance forms (`relu(e − pm')`, `relu(nm' − e)`, `LSE(nm' − e) + e − pm'`).

use super::classes::Classes;
use super::engine::{Acc, RowKernel, inv};
use super::vexp;

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
    const SYMMETRIC: bool = true;
    fn scratch(&self) {}
    fn row(&self, _: &mut (), i: usize, e: &[f32], w0: &mut [f32], w1: &mut [f32]) -> Acc {
        let ids = &self.classes.id[..e.len()];
        let c = self.classes.row(i);
        // The excluded column (the diagonal, or the self index) is skipped by running the
        // branch-free pass on both sides of it.
        let s = self.classes.skip(i).min(e.len());
        let mut acc = self.span(c, &e[..s], &ids[..s], &mut w0[..s], &mut w1[..s]);
        if s < e.len() {
            acc += self.span(
                c,
                &e[s + 1..],
                &ids[s + 1..],
                &mut w0[s + 1..],
                &mut w1[s + 1..],
            );
        }
        acc
    }
    fn scales(&self, acc: &Acc) -> [f64; 2] {
        [inv(acc.count[0]), inv(acc.count[1])]
    }
}

impl Contrastive<'_> {
    /// One stretch of a row of class `c`: masks instead of branches, sums in f32 lanes (at most
    /// N terms of size O(margin + d) each), so that the loop vectorizes.
    fn span(&self, c: u32, e: &[f32], ids: &[u32], w0: &mut [f32], w1: &mut [f32]) -> Acc {
        const L: usize = 8;
        let (pm, nm) = (self.pm as f32, self.nm as f32);
        let mut lanes = [[0.0f32; L]; 4]; // loss+, count+, loss-, count-
        let n8 = e.len() / L * L;
        let step =
            |lanes: &mut [[f32; L]; 4], l: usize, v: f32, id: u32, a: &mut f32, b: &mut f32| {
                let same = id == c;
                let (lp, ln) = (v - pm, nm - v);
                let ap = if same && lp > 0.0 { 1.0f32 } else { 0.0 };
                let an = if !same && ln > 0.0 { 1.0f32 } else { 0.0 };
                *a += ap;
                *b -= an;
                lanes[0][l] += ap * lp;
                lanes[1][l] += ap;
                lanes[2][l] += an * ln;
                lanes[3][l] += an;
            };
        let chunks = e[..n8]
            .chunks_exact(L)
            .zip(ids[..n8].chunks_exact(L))
            .zip(w0[..n8].chunks_exact_mut(L))
            .zip(w1[..n8].chunks_exact_mut(L));
        for (((ec, ic), w0c), w1c) in chunks {
            for l in 0..L {
                step(&mut lanes, l, ec[l], ic[l], &mut w0c[l], &mut w1c[l]);
            }
        }
        for k in n8..e.len() {
            let (a, b) = (&mut w0[k], &mut w1[k]);
            step(&mut lanes, 0, e[k], ids[k], a, b);
        }
        let total = |v: &[f32; L]| v.iter().map(|&x| f64::from(x)).sum::<f64>();
        Acc {
            loss: [total(&lanes[0]), total(&lanes[2])],
            count: [total(&lanes[1]) as u64, total(&lanes[3]) as u64],
        }
    }
}

/// `log(Σ exp(nm − e_ik))` over row `i`'s negatives; `-inf` when it has none. The exponentials
/// go through the vectorized f32 `exp` (relative error < 2e-7), summed in f64.
pub(crate) fn row_lse(classes: &Classes, nm: f64, i: usize, e: &[f32]) -> f64 {
    let c = classes.row(i);
    let mx = vexp::masked_max(e, &classes.id, c, nm as f32);
    if mx == f32::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let s = vexp::masked_exp_sum(e, &classes.id, c, nm as f32 - mx);
    f64::from(mx) + s.ln()
}

/// `log(exp(a) + exp(b))`, stable, with `-inf` for empty sides.
pub(crate) fn log_add_exp(a: f64, b: f64) -> f64 {
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
            let (shift, scale) = ((self.nm - li) as f32, (-2.0 * a) as f32);
            vexp::masked_exp_axpy(w0, e, &self.classes.id, c, shift, scale);
        }
        acc
    }
    fn scales(&self, _: &Acc) -> [f64; 2] {
        [inv(self.npos), 0.0]
    }
}
