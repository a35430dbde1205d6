//! Lifted structure (lifted_lse.wgsl, lifted.wgsl): each positive pair (i, j) reads the
//! log-sum-exps over the negatives of both rows, so its weights are not row-local. In one piece,
//! the LSEs of every row and then the weights run over the whole matrix. In slabs of rows
//! (slabs.rs), a first pass over the slabs fills the LSE of every row, then each slab's weights
//! read them by the call's row index (`P.off`, the slab's first row). Against a reference set the
//! pairs aliased to row k are summed down column k (`alias_sums`) before any weight overwrites
//! it: in slabs, one more pass adds each slab's rows to those sums.

use super::{Layout, RowTotals, Square, avg, inv};
use crate::context::{Groups, Params};
use margin_core::{LiftedStructureConfig, LossStats, Result};
use wgpu::Buffer;

/// The kernels' parameters for one call, from the whole call's layout (P.f2 = 1 / its ordered
/// positive pairs).
pub(crate) struct Lifted {
    p: Params,
}

impl Lifted {
    pub fn new(s: &Square<'_>, c: &LiftedStructureConfig, whole: &Layout) -> Self {
        let mut p = s.params();
        p.flags = u32::from(whole.rect);
        p.f[0] = (s.sign() * c.neg_margin) as f32;
        p.f[1] = (s.sign() * c.pos_margin) as f32;
        p.f[2] = inv(whole.positive_pairs());
        p.k = whole.n as u32;
        Self { p }
    }

    /// Writes `lse[row0 + i]` for the rows i of `s` (its matrix holds rows `row0..`).
    pub fn lse(&self, s: &Square<'_>, row0: usize, lse: &Buffer) -> Result<()> {
        let p = self.at(s, row0);
        let mut b = s.gpu.batch();
        b.run(&s.gpu.kernels.lifted_lse, p, &[&s.e, &s.grp, lse], s.rows())?;
        b.submit();
        Ok(())
    }

    /// Reference set: adds the rows of `s` (rows `row0..` of the call) to every row's sums of
    /// aliased pairs in `acoef` (written by the slab at row 0), from `lse` (every row's).
    pub fn alias(&self, s: &Square<'_>, row0: usize, lse: &Buffer, acoef: &Buffer) -> Result<()> {
        let p = self.at(s, row0);
        let bufs = [&s.e, &s.grp, lse, acoef, &s.rstat, &s.rcnt];
        let mut b = s.gpu.batch();
        let rows = Groups::Linear(u64::from(p.k));
        b.run(&s.gpu.kernels.lifted_alias, p, &bufs, rows)?;
        b.submit();
        Ok(())
    }

    /// The weights of the rows of `s` (rows `row0..` of the call), in place over E, from `lse`
    /// and, with a reference set, `acoef` (every row's, [`Lifted::lse`], [`Lifted::alias`]).
    pub fn weights(&self, s: &Square<'_>, row0: usize, lse: &Buffer, acoef: &Buffer) -> Result<()> {
        let p = self.at(s, row0);
        let bufs = [&s.e, &s.grp, lse, acoef, &s.rstat, &s.rcnt];
        let mut b = s.gpu.batch();
        b.run(&s.gpu.kernels.lifted, p, &bufs, s.rows())?;
        b.submit();
        Ok(())
    }

    /// The parameters for the rows of `s` from `row0`.
    fn at(&self, s: &Square<'_>, row0: usize) -> Params {
        let mut p = self.p;
        p.n = s.n as u32;
        p.off = row0 as u32;
        p
    }
}

/// The loss (mean over ordered positive pairs) and its count; the weights carry their scale.
pub(crate) fn finish(whole: &Layout, t: &RowTotals) -> (LossStats, f32, f32) {
    let pairs = whole.positive_pairs();
    (
        LossStats::new(avg(t.loss[0], pairs), t.count[0], 0),
        1.0,
        1.0,
    )
}

/// The whole matrix at once (`s` holds every row).
pub(crate) fn lifted(s: &Square<'_>, c: &LiftedStructureConfig) -> Result<(LossStats, f32, f32)> {
    let l = Lifted::new(s, c, &s.layout);
    let lse = s.gpu.scratch("lse", s.n)?;
    let acoef = s.gpu.scratch("lifted_alias", s.n)?;
    l.lse(s, 0, &lse)?;
    if s.layout.rect {
        l.alias(s, 0, &lse, &acoef)?;
    }
    l.weights(s, 0, &lse, &acoef)?;
    Ok(finish(&s.layout, &s.totals()?))
}
