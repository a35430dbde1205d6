//! The losses that are one row kernel plus a reduction of its sums (contrastive, triplet,
//! multi-similarity, generalized lifted structure, circle, nt-xent, supcon). The square batch and
//! the reference-set rectangle differ only in how they stream the kernel over their matrix, so
//! one dispatch serves both through [`Runner`]: [`Square`] is `engine::run` over `N x N`,
//! [`Rect`] streams blocks of the `N x M` rectangle.
//!
//! The callers keep what is theirs: the losses with extra passes (lifted structure, quadruplet),
//! the cross losses, and the "nothing to reduce" early returns, whose rules differ between the
//! square case and a reference set (docs/REFERENCE_SETS.md 2.3).

use super::classes::Classes;
use super::engine::{self, Acc, Pass, RowKernel};
use super::geometry::{Rows, sign};
use super::rect::Rect;
use super::{avg, infonce, pairs, softmax_pairs, triplet};
use margin_core::{Loss, LossStats, MarginError, Metric, Result};

/// Streams a row kernel over a matrix of distances (or negated similarities) and chains its
/// weights to the batch.
pub(crate) trait Runner {
    /// The kernel's sums and the gradient w.r.t. the normalized batch (before the sign and
    /// stage 5).
    fn run_kernel<K: RowKernel>(&self, kernel: &K) -> Result<Pass>;
}

/// The batch against itself: `N x N`, resident when it fits the budget, else blocks of rows.
pub(crate) struct Square<'a> {
    pub rows: &'a Rows,
    pub metric: Metric,
    pub budget: usize,
}

impl Runner for Square<'_> {
    fn run_kernel<K: RowKernel>(&self, kernel: &K) -> Result<Pass> {
        engine::run(self.rows, self.metric, kernel, self.budget)
    }
}

impl Runner for Rect<'_> {
    fn run_kernel<K: RowKernel>(&self, kernel: &K) -> Result<Pass> {
        self.run(kernel)
    }
}

/// Runs `loss` (one of the row-kernel losses above) through `runner`: the statistics and the
/// gradient w.r.t. the normalized batch. `n` is the batch size (multi-similarity and generalized
/// lifted structure average over anchors), `npos` the ordered positive pairs (nt-xent's mean).
pub(crate) fn run<R: Runner>(
    loss: &Loss,
    classes: &Classes,
    n: usize,
    npos: u64,
    runner: &R,
) -> Result<(LossStats, Vec<f32>)> {
    let s = f64::from(sign(loss.metric()));
    let per_anchor = |a: Acc, count1: u64| LossStats::new(a.loss[0] / n as f64, a.count[0], count1);
    Ok(match *loss {
        Loss::Contrastive(c) => {
            let k = pairs::Contrastive {
                classes,
                pm: s * c.pos_margin,
                nm: s * c.neg_margin,
            };
            let p = runner.run_kernel(&k)?;
            (two_groups(p.acc), p.grad)
        }
        Loss::Triplet(c) => {
            let k = triplet::Triplet {
                classes,
                margin: c.margin,
                smooth: c.smooth,
                mining: c.mining,
            };
            let p = runner.run_kernel(&k)?;
            (non_zero(p.acc), p.grad)
        }
        Loss::MultiSimilarity(c) => {
            let k = softmax_pairs::MultiSimilarity {
                classes,
                alpha: c.alpha,
                beta: c.beta,
                base: s * c.base,
            };
            let p = runner.run_kernel(&k)?;
            (per_anchor(p.acc, p.acc.count[1]), p.grad)
        }
        Loss::GeneralizedLiftedStructure(c) => {
            let k = softmax_pairs::GeneralizedLifted {
                classes,
                pm: s * c.pos_margin,
                nm: s * c.neg_margin,
            };
            let p = runner.run_kernel(&k)?;
            (per_anchor(p.acc, 0), p.grad)
        }
        Loss::Circle(c) => {
            let k = softmax_pairs::Circle {
                classes,
                sign: s,
                margin: c.margin,
                gamma: c.gamma,
            };
            let p = runner.run_kernel(&k)?;
            (non_zero(p.acc), p.grad)
        }
        Loss::NTXent(c) => {
            let k = infonce::NTXent {
                classes,
                tau: c.temperature,
                npos,
            };
            let p = runner.run_kernel(&k)?;
            (LossStats::new(avg(p.acc.loss[0], npos), npos, 0), p.grad)
        }
        Loss::SupCon(c) => {
            let k = infonce::SupCon {
                classes,
                tau: c.temperature,
            };
            let p = runner.run_kernel(&k)?;
            (non_zero(p.acc), p.grad)
        }
        _ => return Err(MarginError::device("internal: not a row-kernel loss")),
    })
}

/// AvgNonZero of the first group.
fn non_zero(a: Acc) -> LossStats {
    LossStats::new(avg(a.loss[0], a.count[0]), a.count[0], 0)
}

/// AvgNonZero of each group, summed (contrastive's positive and negative parts).
pub(crate) fn two_groups(a: Acc) -> LossStats {
    LossStats::new(
        avg(a.loss[0], a.count[0]) + avg(a.loss[1], a.count[1]),
        a.count[0],
        a.count[1],
    )
}
