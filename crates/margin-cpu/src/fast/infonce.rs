//! Temperature-softmax losses (stage 3) on `x = v / τ`, `v = −e` (the similarity; a distance is
//! negated): NT-Xent and SupCon. Both need only row-local log-sum-exps; the caller checks first
//! that the batch has a positive pair and a negative pair (else loss 0, nothing active).

use super::classes::Classes;
use super::engine::{Acc, RowKernel, inv};

/// `log(exp(a) + exp(b))`, stable, with `-inf` for empty sides.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if hi == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// NT-Xent: per ordered positive pair `(a, p)`, `l = log(e^{x_ap} + S_a) − x_ap` with
/// `S_a = Σ_n e^{x_an}`; Mean over the `P` ordered positive pairs (group 0, scale `1/P`).
/// `∂l/∂x_ap = q − 1`, `∂l/∂x_an = e^{x_an} / Z_ap`, with `Z_ap = e^{x_ap} + S_a`, `q = e^{x_ap}/Z_ap`.
pub(crate) struct NTXent<'a> {
    pub classes: &'a Classes,
    pub tau: f64,
    /// Number of ordered positive pairs (> 0).
    pub npos: u64,
}

impl RowKernel for NTXent<'_> {
    type Scratch = ();
    const GROUPS: usize = 1;
    fn scratch(&self) {}
    fn row(&self, _: &mut (), a: usize, e: &[f32], w0: &mut [f32], _w1: &mut [f32]) -> Acc {
        let c = self.classes.row(a);
        let skip = self.classes.skip(a);
        let members = &self.classes.members[c as usize];
        let np = self.classes.positives(a);
        if np == 0 {
            return Acc::default();
        }
        let k = -1.0 / self.tau;
        // Negatives: max, then e^{x − max} kept in the weight row, and their sum.
        let mut mn = f64::NEG_INFINITY;
        for (&v, &cj) in e.iter().zip(&self.classes.id) {
            if cj != c {
                mn = mn.max(k * f64::from(v));
            }
        }
        let mut sn = 0.0f64;
        if mn > f64::NEG_INFINITY {
            for ((&v, &cj), wj) in e.iter().zip(&self.classes.id).zip(w0.iter_mut()) {
                if cj != c {
                    let t = (k * f64::from(v) - mn).exp();
                    sn += t;
                    *wj = t as f32;
                }
            }
        }
        let log_s = if sn > 0.0 {
            mn + sn.ln()
        } else {
            f64::NEG_INFINITY
        };
        // Positives: W = −∂l/∂v = (1 − q)/τ = e^{log S − log Z}/τ; r = Σ_p e^{mn − log Z}.
        let (mut loss, mut r) = (0.0f64, 0.0f64);
        for &p in members {
            let p = p as usize;
            if p == skip {
                continue;
            }
            let x = k * f64::from(e[p]);
            let log_z = log_add_exp(x, log_s);
            loss += log_z - x;
            w0[p] = ((log_s - log_z).exp() / self.tau) as f32;
            if log_s > f64::NEG_INFINITY {
                r += (mn - log_z).exp();
            }
        }
        // Negatives: W = −∂L/∂v = −e^{x_an} Σ_p 1/Z_ap / τ.
        let f = (-r / self.tau) as f32;
        for (wj, &cj) in w0.iter_mut().zip(&self.classes.id) {
            if cj != c {
                *wj *= f;
            }
        }
        Acc {
            loss: [loss, 0.0],
            count: [np as u64, 0],
        }
    }
    fn scales(&self, _: &Acc) -> [f64; 2] {
        [inv(self.npos), 0.0]
    }
}

/// SupCon: per anchor i with positives, `L_i = LSE_{j≠i}(x_ij) − mean_{p ∈ P(i)} x_ip`;
/// AvgNonZero over anchors (group 0, scale `1/c`). `∂L_i/∂x_ij = softmax_j − [j ∈ P(i)]/|P(i)|`.
pub(crate) struct SupCon<'a> {
    pub classes: &'a Classes,
    pub tau: f64,
}

impl RowKernel for SupCon<'_> {
    type Scratch = ();
    const GROUPS: usize = 1;
    fn scratch(&self) {}
    fn row(&self, _: &mut (), i: usize, e: &[f32], w0: &mut [f32], _w1: &mut [f32]) -> Acc {
        let c = self.classes.row(i);
        let skip = self.classes.skip(i);
        let members = &self.classes.members[c as usize];
        let npos = self.classes.positives(i);
        // One positive and no negative: L_i is exactly 0 (an LSE of one term) and does not
        // count (docs/REFERENCE_SETS.md 3.8; only reachable with a reference set).
        if npos == 0 || (npos == 1 && self.classes.negatives(i) == 0) {
            return Acc::default();
        }
        let k = -1.0 / self.tau;
        let mut mx = f64::NEG_INFINITY;
        for (j, &v) in e.iter().enumerate() {
            if j != skip {
                mx = mx.max(k * f64::from(v));
            }
        }
        let mut s = 0.0f64;
        for (j, (&v, wj)) in e.iter().zip(w0.iter_mut()).enumerate() {
            if j != skip {
                let t = (k * f64::from(v) - mx).exp();
                s += t;
                *wj = t as f32;
            }
        }
        let np = npos as f64;
        let mean_pos = members
            .iter()
            .filter(|&&p| p as usize != skip)
            .map(|&p| k * f64::from(e[p as usize]))
            .sum::<f64>()
            / np;
        // Every anchor with a positive counts (its L_i > 0 exactly; see the reference).
        let loss = mx + s.ln() - mean_pos;
        // W = −∂L_i/∂v = (target − softmax)/τ.
        let f = (-1.0 / (s * self.tau)) as f32;
        for wj in w0.iter_mut() {
            *wj *= f;
        }
        if skip < w0.len() {
            w0[skip] = 0.0;
        }
        let t = (1.0 / (np * self.tau)) as f32;
        for &p in members {
            if p as usize != skip {
                w0[p as usize] += t;
            }
        }
        Acc {
            loss: [loss, 0.0],
            count: [1, 0],
        }
    }
    fn scales(&self, acc: &Acc) -> [f64; 2] {
        [inv(acc.count[0]), 0.0]
    }
}
