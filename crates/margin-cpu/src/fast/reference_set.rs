//! Every supported loss with a reference set (docs/REFERENCE_SETS.md): anchors from the batch
//! X (N x D), positives and negatives from the reference R (M x D), the gradient for X only.
//! Stage 1 normalizes both (R without backward), [`Rect`] streams the `N x M` rectangle through
//! the square case's row kernels (the layout of [`Classes::rect`] tells them each row's class,
//! the columns' classes and the excluded self column), then stage 5 for X.
//!
//! Lifted structure keeps PML's index aliasing (section 3.6): a positive pair `(i, j)` with
//! `j < N`, `j != i` also takes batch row j's negatives into its log-sum-exp, and its gradient
//! reaches row j's negative columns. Quadruplet is in `rect_quadruplet`.

use super::classes::Classes;
use super::engine::{Acc, RowKernel, inv};
use super::geometry::{Rows, sign};
use super::pairs::{self, log_add_exp};
use super::rect::Rect;
use super::rect_quadruplet;
use super::{avg, empty, finish, quadruplet_semihard, row_losses, vexp};
use margin_core::{Loss, LossStats, Mining, Result};
use rayon::prelude::*;

/// A batch against a reference set, as the backend received them.
pub(crate) struct Input<'a> {
    pub x: &'a [f32],
    pub n: usize,
    pub d: usize,
    pub labels: &'a [i64],
    pub r: &'a [f32],
    pub m: usize,
    pub ref_labels: &'a [i64],
    pub self_index: Option<&'a [u32]>,
}

/// Computes `loss` of the batch against the reference set; writes dL/dX into `grad`.
pub(crate) fn loss(
    loss: &Loss,
    input: &Input<'_>,
    budget: usize,
    grad: &mut [f32],
) -> Result<LossStats> {
    let (n, d, m) = (input.n, input.d, input.m);
    let metric = loss.metric();
    let s = f64::from(sign(metric));
    let classes = Classes::rect(input.labels, &input.ref_labels[..m], input.self_index);
    // Rule 2.3: the seven pair losses give 0 when both pair sets are tiny.
    let (npos, nneg) = (classes.ordered_positive_pairs(), classes.negative_pairs());
    if loss.is_pair_loss() && npos <= 1 && nneg <= 1 {
        return Ok(empty(n, d, grad));
    }
    let x = Rows::new(input.x, n, d, metric);
    let r = Rows::new(&input.r[..m * d], m, d, metric);
    let rect = Rect {
        x: &x,
        r: &r,
        self_index: input.self_index,
        metric,
        budget,
    };
    let (stats, grad_e) = match *loss {
        Loss::Quadruplet(c) => {
            let (a, g) = match c.mining {
                Mining::All => rect_quadruplet::all(&rect, &classes, c.margin, c.margin2)?,
                Mining::Hard => rect_quadruplet::hard(&rect, &classes, c.margin, c.margin2)?,
                Mining::SemiHard => return Err(quadruplet_semihard()),
            };
            (row_losses::two_groups(a), g)
        }
        Loss::LiftedStructure(_) | Loss::NTXent(_) | Loss::SupCon(_) if npos == 0 || nneg == 0 => {
            return Ok(empty(n, d, grad));
        }
        Loss::LiftedStructure(c) => {
            let (a, g) = lifted(&rect, &classes, s * c.pos_margin, s * c.neg_margin, npos)?;
            (LossStats::new(avg(a.loss[0], npos), a.count[0], 0), g)
        }
        Loss::NPair(_)
        | Loss::TripletCenter(_)
        | Loss::ProxyAnchor(_)
        | Loss::ProxyNca(_)
        | Loss::NormalizedSoftmax(_)
        | Loss::CosFace(_) => {
            return Err(loss.reference_unsupported());
        }
        _ => row_losses::run(loss, &classes, n, npos, &rect)?,
    };
    finish(&x, metric, &grad_e, grad);
    Ok(stats)
}

/// What the first lifted-structure pass keeps of row i: `Λ_i` (the log-sum-exp of
/// `nm − e_il` over its negatives, `-inf` for none) and its positive columns with their `e`.
struct LiftedRow {
    lam: f64,
    pos: Vec<(u32, f32)>,
}

/// The log-sum-exp of pair `(i, j)`'s negative set: `logaddexp(Λ_i, Λ_j)` with the aliased
/// `Λ_j` only for `j < N`, `j != i`; `-inf` when both are empty.
fn pair_lse(rows: &[LiftedRow], i: usize, j: usize) -> (f64, f64) {
    let lj = if j < rows.len() && j != i {
        rows[j].lam
    } else {
        f64::NEG_INFINITY
    };
    (lj, log_add_exp(rows[i].lam, lj))
}

/// `J_ij = LSE(Neg(i, j)) + e_ij − pm` (an empty LSE counts 0).
fn pair_j(lse: f64, e: f32, pm: f64) -> f64 {
    let l = if lse == f64::NEG_INFINITY { 0.0 } else { lse };
    l + f64::from(e) - pm
}

/// Lifted structure over the rectangle (three steps): `Λ` and the positive values per row (one
/// pass over `e`); per row k the total softmax weight `A_k` its negatives receive, from its own
/// pairs and from the pairs `(i, k)` that alias it (arithmetic on the kept positives); then the
/// weights (a second pass over `e`, for the negatives' exponentials).
fn lifted(
    rect: &Rect<'_>,
    classes: &Classes,
    pm: f64,
    nm: f64,
    npos: u64,
) -> Result<(Acc, Vec<f32>)> {
    let rows = rect.map(|i, e| {
        let skip = classes.skip(i);
        let pos = classes.members[classes.row(i) as usize]
            .iter()
            .filter(|&&j| j as usize != skip)
            .map(|&j| (j, e[j as usize]))
            .collect();
        LiftedRow {
            lam: pairs::row_lse(classes, nm, i, e),
            pos,
        }
    })?;
    let n = rows.len();
    // A_k = Σ over the active pairs (J > 0) whose negative set holds row k's negatives of
    // J_ij exp(Λ_k − LSE_ij): row k's own pairs, and the pairs (i, k) that alias it.
    let active = |i: usize, j: usize, e: f32| {
        let (lj, lse) = pair_lse(&rows, i, j);
        let jv = pair_j(lse, e, pm);
        (jv > 0.0 && lse > f64::NEG_INFINITY).then_some((jv, lj, lse))
    };
    let own: Vec<f64> = rows
        .par_iter()
        .enumerate()
        .map(|(i, row)| {
            row.pos
                .iter()
                .filter_map(|&(j, e)| active(i, j as usize, e))
                .map(|(jv, _, lse)| jv * (row.lam - lse).exp())
                .sum()
        })
        .collect();
    let alias: Vec<f64> = rows
        .par_iter()
        .enumerate()
        // At most a few accumulators of N values per thread.
        .with_min_len((n / (4 * rayon::current_num_threads().max(1))).max(64))
        .fold(
            || vec![0.0f64; n],
            |mut acc, (i, row)| {
                for &(j, e) in &row.pos {
                    if let Some((jv, lj, lse)) = active(i, j as usize, e)
                        && lj > f64::NEG_INFINITY
                    {
                        acc[j as usize] += jv * (lj - lse).exp();
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![0.0f64; n],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        );
    let weight: Vec<f64> = own.iter().zip(&alias).map(|(&o, &a)| o + a).collect();
    let kernel = RectLifted {
        classes,
        rows: &rows,
        weight: &weight,
        pm,
        nm,
        npos,
    };
    let p = rect.run(&kernel)?;
    Ok((p.acc, p.grad))
}

/// The lifted-structure weights of row i: `J_ij` at its active positives (from the kept values,
/// so that the pass agrees with the step before), `−A_i softmax_il` at its negatives.
struct RectLifted<'a> {
    classes: &'a Classes,
    rows: &'a [LiftedRow],
    weight: &'a [f64],
    pm: f64,
    nm: f64,
    npos: u64,
}

impl RowKernel for RectLifted<'_> {
    type Scratch = ();
    const GROUPS: usize = 1;
    fn scratch(&self) {}
    fn row(&self, _: &mut (), i: usize, e: &[f32], w0: &mut [f32], _w1: &mut [f32]) -> Acc {
        let mut acc = Acc::default();
        for &(j, ev) in &self.rows[i].pos {
            let (_, lse) = pair_lse(self.rows, i, j as usize);
            let jv = pair_j(lse, ev, self.pm);
            if jv > 0.0 {
                acc.loss[0] += jv * jv / 2.0;
                acc.count[0] += 1;
                w0[j as usize] += jv as f32;
            }
        }
        let (lam, a) = (self.rows[i].lam, self.weight[i]);
        if a > 0.0 && lam > f64::NEG_INFINITY {
            let c = self.classes.row(i);
            let (shift, scale) = ((self.nm - lam) as f32, (-a) as f32);
            vexp::masked_exp_axpy(w0, e, &self.classes.id, c, shift, scale);
        }
        acc
    }
    fn scales(&self, _: &Acc) -> [f64; 2] {
        [inv(self.npos), 0.0]
    }
}
