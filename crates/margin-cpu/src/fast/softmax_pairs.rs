//! Row-wise log-sum-exp losses (stage 3) on `e = sign * d`: multi-similarity, generalized lifted
//! structure and circle. Each anchor row needs only its own positives' and negatives' log-sum-exp,
//! so one kernel call does everything in three sweeps of the row (maxima; shifted exponentials,
//! kept in the weight row, and their f64 sums; the final factors). The Mean / AvgNonZero
//! denominators are the engine's group scales.
//!
//! Weights are `W = ∂L/∂e`; margins given on the metric's own scale are multiplied by `sign`
//! beforehand by the caller (see each kernel's fields), as in `pairs`.

use super::classes::Classes;
use super::engine::{Acc, RowKernel, inv};

/// The maxima of a row's positive and negative logits (`-inf` for an empty side).
struct Maxima {
    pos: f64,
    neg: f64,
}

/// One sweep over row `i`: `lp(e)` for positives and `ln(e)` for negatives, maxima only.
fn maxima(
    classes: &Classes,
    i: usize,
    e: &[f32],
    lp: impl Fn(f64) -> f64,
    ln: impl Fn(f64) -> f64,
) -> Maxima {
    let c = classes.row(i);
    let skip = classes.skip(i);
    let mut m = Maxima {
        pos: f64::NEG_INFINITY,
        neg: f64::NEG_INFINITY,
    };
    for (j, (&v, &cj)) in e.iter().zip(&classes.id).enumerate() {
        let v = f64::from(v);
        if cj != c {
            m.neg = m.neg.max(ln(v));
        } else if j != skip {
            m.pos = m.pos.max(lp(v));
        }
    }
    m
}

/// Second sweep: `w_j = f(e_j) exp(l(e_j) − max)` per side (`f` a detached factor, 1 when none),
/// returning the f64 sums of the exponentials `(positives, negatives)`.
fn exp_sweep(
    classes: &Classes,
    i: usize,
    e: &[f32],
    w: &mut [f32],
    mx: &Maxima,
    pos: impl Fn(f64) -> (f64, f64),
    neg: impl Fn(f64) -> (f64, f64),
) -> (f64, f64) {
    let c = classes.row(i);
    let skip = classes.skip(i);
    let (mut sp, mut sn) = (0.0f64, 0.0f64);
    for (j, ((&v, &cj), wj)) in e.iter().zip(&classes.id).zip(w.iter_mut()).enumerate() {
        let v = f64::from(v);
        if cj != c {
            let (l, f) = neg(v);
            let t = (l - mx.neg).exp();
            sn += t;
            *wj = (t * f) as f32;
        } else if j != skip {
            let (l, f) = pos(v);
            let t = (l - mx.pos).exp();
            sp += t;
            *wj = (t * f) as f32;
        }
    }
    (sp, sn)
}

/// Third sweep: positives times `fp`, negatives times `fn_`.
fn scale_sides(classes: &Classes, i: usize, w: &mut [f32], fp: f64, fn_: f64) {
    let c = classes.row(i);
    let skip = classes.skip(i);
    let (fp, fn_) = (fp as f32, fn_ as f32);
    for (j, (wj, &cj)) in w.iter_mut().zip(&classes.id).enumerate() {
        if cj != c {
            *wj *= fn_;
        } else if j != skip {
            *wj *= fp;
        }
    }
}

/// Multi-similarity: `(1/α) log(1 + Σ_p exp(α (e − b'))) + (1/β) log(1 + Σ_n exp(β (b' − e)))`
/// per anchor, Mean over all N anchors (group 0, scale `1/N`). Active counts: anchors with a
/// positive, anchors with a negative.
pub(crate) struct MultiSimilarity<'a> {
    pub classes: &'a Classes,
    pub alpha: f64,
    pub beta: f64,
    /// `sign * base`.
    pub base: f64,
}

impl RowKernel for MultiSimilarity<'_> {
    type Scratch = ();
    const GROUPS: usize = 1;
    fn scratch(&self) {}
    fn row(&self, _: &mut (), i: usize, e: &[f32], w0: &mut [f32], _w1: &mut [f32]) -> Acc {
        let (a, b, base) = (self.alpha, self.beta, self.base);
        let lp = |v: f64| a * (v - base);
        let ln = |v: f64| b * (base - v);
        let mut mx = maxima(self.classes, i, e, lp, ln);
        let (hp, hn) = (mx.pos > f64::NEG_INFINITY, mx.neg > f64::NEG_INFINITY);
        // log(1 + Σ exp x) = M + log(exp(−M) + Σ exp(x − M)), M = max(0, max x).
        mx.pos = mx.pos.max(0.0);
        mx.neg = mx.neg.max(0.0);
        let (sp, sn) = exp_sweep(
            self.classes,
            i,
            e,
            w0,
            &mx,
            |v| (lp(v), 1.0),
            |v| (ln(v), 1.0),
        );
        let (zp, zn) = ((-mx.pos).exp() + sp, (-mx.neg).exp() + sn);
        let loss = (mx.pos + zp.ln()) / a + (mx.neg + zn.ln()) / b;
        scale_sides(self.classes, i, w0, 1.0 / zp, -1.0 / zn);
        Acc {
            loss: [loss, 0.0],
            count: [u64::from(hp), u64::from(hn)],
        }
    }
    fn scales(&self, _: &Acc) -> [f64; 2] {
        [inv(self.classes.rows() as u64), 0.0]
    }
}

/// Generalized lifted structure: `relu(LSE_p(e − pm') + LSE_n(nm' − e))` per anchor (an empty
/// side counts 0), Mean over all N anchors. Active count: anchors with a positive argument.
pub(crate) struct GeneralizedLifted<'a> {
    pub classes: &'a Classes,
    /// `sign * pos_margin`.
    pub pm: f64,
    /// `sign * neg_margin`.
    pub nm: f64,
}

impl RowKernel for GeneralizedLifted<'_> {
    type Scratch = ();
    const GROUPS: usize = 1;
    fn scratch(&self) {}
    fn row(&self, _: &mut (), i: usize, e: &[f32], w0: &mut [f32], _w1: &mut [f32]) -> Acc {
        let (pm, nm) = (self.pm, self.nm);
        let lp = |v: f64| v - pm;
        let ln = |v: f64| nm - v;
        let mx = maxima(self.classes, i, e, lp, ln);
        let (sp, sn) = exp_sweep(
            self.classes,
            i,
            e,
            w0,
            &mx,
            |v| (lp(v), 1.0),
            |v| (ln(v), 1.0),
        );
        let lse = |m: f64, s: f64| if s > 0.0 { m + s.ln() } else { 0.0 };
        let arg = lse(mx.pos, sp) + lse(mx.neg, sn);
        if arg > 0.0 {
            let side = |s: f64| if s > 0.0 { 1.0 / s } else { 0.0 };
            scale_sides(self.classes, i, w0, side(sp), -side(sn));
            Acc {
                loss: [arg, 0.0],
                count: [1, 0],
            }
        } else {
            w0.fill(0.0);
            Acc::default()
        }
    }
    fn scales(&self, _: &Acc) -> [f64; 2] {
        [inv(self.classes.rows() as u64), 0.0]
    }
}

/// `softplus(z)` and `sigmoid(z)`, stable for any `z`.
fn softplus_sigmoid(z: f64) -> (f64, f64) {
    let t = (-z.abs()).exp();
    let sp = z.max(0.0) + t.ln_1p();
    let sg = if z >= 0.0 {
        1.0 / (1.0 + t)
    } else {
        t / (1.0 + t)
    };
    (sp, sg)
}

/// Circle loss on the similarity `s = sign * e` (cosine): per anchor with a positive and a
/// negative, `softplus(LSE_p(−γ [1+m−s]₊ (s − 1 + m)) + LSE_n(γ [s+m]₊ (s − m)))`, the `[·]₊`
/// factors detached (as PML); AvgNonZero over anchors (group 0, scale `1/c`).
pub(crate) struct Circle<'a> {
    pub classes: &'a Classes,
    /// `sign(metric)`: `s = sign * e` and `∂/∂e = sign ∂/∂s`.
    pub sign: f64,
    pub margin: f64,
    pub gamma: f64,
}

impl Circle<'_> {
    /// `(logit, ∂logit/∂s)` of a positive with similarity `s`.
    fn pos(&self, s: f64) -> (f64, f64) {
        let f = -self.gamma * (1.0 + self.margin - s).max(0.0);
        (f * (s - (1.0 - self.margin)), f)
    }
    /// `(logit, ∂logit/∂s)` of a negative with similarity `s`.
    fn neg(&self, s: f64) -> (f64, f64) {
        let f = self.gamma * (s + self.margin).max(0.0);
        (f * (s - self.margin), f)
    }
}

impl RowKernel for Circle<'_> {
    type Scratch = ();
    const GROUPS: usize = 1;
    fn scratch(&self) {}
    fn row(&self, _: &mut (), i: usize, e: &[f32], w0: &mut [f32], _w1: &mut [f32]) -> Acc {
        if self.classes.positives(i) == 0 || self.classes.negatives(i) == 0 {
            return Acc::default();
        }
        let sg = self.sign;
        let lp = |v: f64| self.pos(sg * v);
        let ln = |v: f64| self.neg(sg * v);
        let mx = maxima(self.classes, i, e, |v| lp(v).0, |v| ln(v).0);
        let (sp, sn) = exp_sweep(self.classes, i, e, w0, &mx, lp, ln);
        let z = mx.pos + sp.ln() + mx.neg + sn.ln();
        // softplus > 0: the anchor counts even where its loss underflows.
        let (loss, outer) = softplus_sigmoid(z);
        scale_sides(self.classes, i, w0, sg * outer / sp, sg * outer / sn);
        Acc {
            loss: [loss, 0.0],
            count: [1, 0],
        }
    }
    fn scales(&self, acc: &Acc) -> [f64; 2] {
        [inv(acc.count[0]), 0.0]
    }
}
