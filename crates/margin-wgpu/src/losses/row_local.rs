//! The row-local losses: those whose weights in row i of the loss matrix read only row i of E and
//! the labels (contrastive, triplet in every mining mode, and the softmax-style losses). Their
//! stage 3 is split into [`weights`] (per rows, in place over E) and [`finish`] (the reduction of
//! the per-row totals over all rows), so that they run unchanged over slabs of rows when the whole
//! matrix exceeds one storage binding (slabs.rs). Lifted structure (other rows' log-sum-exps,
//! lifted.rs) and the quadruplet (a sort of every negative pair) are not row-local.

use super::{Layout, RowTotals, Square, avg, inv, softmax, triplet};
use margin_core::{Loss, LossStats, MarginError, Result};

/// True for the losses [`weights`] and [`finish`] handle.
pub(crate) fn is_row_local(loss: &Loss) -> bool {
    matches!(
        loss,
        Loss::Contrastive(_)
            | Loss::Triplet(_)
            | Loss::MultiSimilarity(_)
            | Loss::Circle(_)
            | Loss::NTXent(_)
            | Loss::SupCon(_)
            | Loss::GeneralizedLiftedStructure(_)
    )
}

/// Writes the weights W = dL/dE of the rows of `s` over E (before the reducer's scales), with
/// each row's loss sums and counts in `s.rstat` / `s.rcnt`.
pub(crate) fn weights(s: &Square<'_>, loss: &Loss) -> Result<()> {
    match loss {
        Loss::Contrastive(c) => contrastive(s, c.pos_margin, c.neg_margin),
        Loss::Triplet(c) => triplet::weights(s, c),
        _ => softmax::weights(s, loss),
    }
}

/// The loss, its active counts and the chain's scales for positive and negative weights, from the
/// totals of every row of `layout`.
pub(crate) fn finish(loss: &Loss, layout: &Layout, t: &RowTotals) -> Result<(LossStats, f32, f32)> {
    match loss {
        Loss::Contrastive(_) => {
            let value = avg(t.loss[0], t.count[0]) + avg(t.loss[1], t.count[1]);
            Ok((
                LossStats::new(value, t.count[0], t.count[1]),
                inv(t.count[0]),
                inv(t.count[1]),
            ))
        }
        Loss::Triplet(_) => Ok(triplet::finish(t)),
        _ if is_row_local(loss) => softmax::finish(loss, layout, t),
        _ => Err(MarginError::device("internal: not a row-local loss")),
    }
}

fn contrastive(s: &Square<'_>, pos: f64, neg: f64) -> Result<()> {
    let mut p = s.params();
    p.f[0] = (s.sign() * pos) as f32;
    p.f[1] = (s.sign() * neg) as f32;
    let mut b = s.gpu.batch();
    b.run(
        &s.gpu.kernels.contrastive,
        p,
        &[&s.e, &s.grp, &s.rstat, &s.rcnt],
        s.rows(),
    )?;
    b.submit();
    Ok(())
}
