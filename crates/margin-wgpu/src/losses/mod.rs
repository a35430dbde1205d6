//! Stage 3 and the orchestration of a whole loss call. Losses over the N x N matrix share
//! [`square_loss`]; triplet-center (N x K) and n-pair (k x k between anchors and positives) have
//! their own paths in [`cross`].

mod cross;
mod quad_hard;
mod quadruplet;
mod softmax;
mod triplet;

use crate::context::{Gpu, Groups, Params};
use crate::stages::{self, PairMode, Product};
use margin_core::{Loss, LossStats, Metric, Result};
use std::collections::HashMap;
use wgpu::Buffer;

pub(crate) use cross::{npair_loss, triplet_center_loss};

/// Labels re-encoded as dense group ids (in order of first appearance) with group sizes.
#[derive(Debug)]
pub(crate) struct LabelGroups {
    pub ids: Vec<u32>,
    pub sizes: Vec<u64>,
}

impl LabelGroups {
    pub fn new(labels: &[i64]) -> Self {
        let mut map = HashMap::new();
        let mut sizes = Vec::new();
        let ids = labels
            .iter()
            .map(|l| {
                let next = map.len() as u32;
                let id = *map.entry(*l).or_insert(next);
                if id as usize == sizes.len() {
                    sizes.push(0);
                }
                sizes[id as usize] += 1;
                id
            })
            .collect();
        Self { ids, sizes }
    }

    /// Number of ordered positive pairs.
    pub fn positive_pairs(&self) -> u64 {
        self.sizes.iter().map(|s| s * s.saturating_sub(1)).sum()
    }
}

/// Per-row results of a weight kernel, added on the host in f64 / u64.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RowTotals {
    pub loss: [f64; 2],
    pub count: [u64; 2],
}

/// Buffers shared by the weight kernels of one call.
pub(crate) struct Square<'a> {
    pub gpu: &'a Gpu,
    pub n: usize,
    pub metric: Metric,
    pub e: Buffer,
    pub w: Buffer,
    pub grp: Buffer,
    pub rstat: Buffer,
    pub rcnt: Buffer,
    pub groups: LabelGroups,
}

impl Square<'_> {
    /// Reads back and adds the per-row sums and counts of the last weight kernel.
    pub fn totals(&self) -> Result<RowTotals> {
        let s = self.gpu.read_f32(&self.rstat, 2 * self.n)?;
        let c = self.gpu.read_u32(&self.rcnt, 4 * self.n)?;
        let mut t = RowTotals::default();
        for i in 0..self.n {
            for k in 0..2 {
                t.loss[k] += f64::from(s[2 * i + k]);
                let lo = u64::from(c[4 * i + 2 * k]);
                let hi = u64::from(c[4 * i + 2 * k + 1]);
                t.count[k] += lo | (hi << 32);
            }
        }
        Ok(t)
    }

    /// Sign that turns a margin written for distances into the one for E = -similarity.
    pub fn sign(&self) -> f64 {
        if self.metric.is_similarity() {
            -1.0
        } else {
            1.0
        }
    }

    /// Workgroups for one-workgroup-per-row kernels.
    pub fn rows(&self) -> Groups {
        Groups::Linear(self.n as u64)
    }
}

/// `sum / count`, 0 when nothing is active (AvgNonZero / Mean).
pub(crate) fn avg(sum: f64, count: u64) -> f64 {
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// `1 / count` as an f32 weight scale, 0 when nothing is active.
pub(crate) fn inv(count: u64) -> f32 {
    if count == 0 {
        0.0
    } else {
        (1.0 / count as f64) as f32
    }
}

/// A loss over the N x N matrix (every loss but triplet-center and n-pair): stages 1-5.
pub(crate) fn square_loss(
    gpu: &Gpu,
    loss: &Loss,
    x: &Buffer,
    n: usize,
    d: usize,
    labels: &[i64],
    grad: &Buffer,
) -> Result<LossStats> {
    let metric = loss.metric();
    gpu.check_size("the N x N distance matrix", (n as u64) * (n as u64) * 4)?;
    let groups = LabelGroups::new(labels);
    let xh = gpu.scratch("xh", n * d)?;
    let norms = gpu.scratch("norms", n)?;
    let sq = gpu.scratch("sq", n)?;
    let sq_ = Square {
        gpu,
        n,
        metric,
        e: gpu.scratch("e", n * n)?,
        w: gpu.scratch("w", n * n)?,
        grp: gpu.upload("groups", &groups.ids)?,
        rstat: gpu.scratch("rstat", 2 * n)?,
        rcnt: gpu.scratch("rcnt", 4 * n)?,
        groups,
    };
    let mut b = gpu.batch();
    stages::normalize(gpu, &mut b, x, n, d, metric.normalizes(), &xh, &norms, &sq)?;
    stages::pairwise(
        gpu,
        &mut b,
        (&xh, &sq, n),
        (&xh, &sq, n),
        d,
        PairMode::for_loss(metric),
        &sq_.e,
    )?;
    b.submit();

    let (stats, s_pos, s_neg) = match loss {
        Loss::Contrastive(c) => contrastive(&sq_, c.pos_margin, c.neg_margin)?,
        Loss::Triplet(c) => triplet::triplet(&sq_, c)?,
        Loss::Quadruplet(c) if c.mining == margin_core::Mining::Hard => {
            quad_hard::quad_hard(&sq_, c)?
        }
        Loss::Quadruplet(c) => quadruplet::quadruplet(&sq_, c)?,
        Loss::LiftedStructure(c) => lifted(&sq_, c.pos_margin, c.neg_margin)?,
        Loss::MultiSimilarity(c) => softmax::multi_similarity(&sq_, c)?,
        Loss::Circle(c) => softmax::circle(&sq_, c)?,
        Loss::NTXent(c) => softmax::ntxent(&sq_, c)?,
        Loss::SupCon(c) => softmax::supcon(&sq_, c)?,
        Loss::GeneralizedLiftedStructure(c) => softmax::generalized_lifted(&sq_, c)?,
        Loss::TripletCenter(_) | Loss::NPair(_) => {
            return Err(margin_core::MarginError::device(
                "internal: this loss does not use the square path",
            ));
        }
    };

    let mut b = gpu.batch();
    let mode = stages::chain_mode(metric);
    stages::chain_square(gpu, &mut b, &sq_.w, &sq_.e, n, mode, s_pos, s_neg)?;
    let rs = gpu.scratch("rs", n)?;
    let distance = !metric.is_similarity();
    if distance {
        stages::row_sums(gpu, &mut b, &sq_.w, n, n, &rs)?;
    }
    stages::matmul(
        gpu,
        &mut b,
        &Product {
            a: &sq_.w,
            transposed: false,
            b: &xh,
            rs: &rs,
            x: &xh,
            out: grad,
            rows: n,
            cols: d,
            inner: n,
            alpha: if distance { -1.0 } else { 1.0 },
            beta: if distance { 1.0 } else { 0.0 },
        },
    )?;
    if metric.normalizes() {
        stages::normalize_backward(gpu, &mut b, &xh, &norms, grad, n, d)?;
    }
    b.submit();
    Ok(stats)
}

fn contrastive(s: &Square<'_>, pos: f64, neg: f64) -> Result<(LossStats, f32, f32)> {
    let mut p = Params {
        n: s.n as u32,
        ..Default::default()
    };
    p.f[0] = (s.sign() * pos) as f32;
    p.f[1] = (s.sign() * neg) as f32;
    let mut b = s.gpu.batch();
    b.run(
        &s.gpu.kernels.contrastive,
        p,
        &[&s.e, &s.w, &s.grp, &s.rstat, &s.rcnt],
        s.rows(),
    )?;
    b.submit();
    let t = s.totals()?;
    let loss = avg(t.loss[0], t.count[0]) + avg(t.loss[1], t.count[1]);
    Ok((
        LossStats::new(loss, t.count[0], t.count[1]),
        inv(t.count[0]),
        inv(t.count[1]),
    ))
}

fn lifted(s: &Square<'_>, pos: f64, neg: f64) -> Result<(LossStats, f32, f32)> {
    let pairs = s.groups.positive_pairs();
    let lse = s.gpu.scratch("lse", s.n)?;
    let mut p = Params {
        n: s.n as u32,
        ..Default::default()
    };
    p.f[0] = (s.sign() * neg) as f32;
    p.f[1] = (s.sign() * pos) as f32;
    p.f[2] = inv(pairs);
    let mut b = s.gpu.batch();
    b.run(
        &s.gpu.kernels.lifted_lse,
        p,
        &[&s.e, &s.grp, &lse],
        s.rows(),
    )?;
    b.run(
        &s.gpu.kernels.lifted,
        p,
        &[&s.e, &s.w, &s.grp, &lse, &s.rstat, &s.rcnt],
        s.rows(),
    )?;
    b.submit();
    let t = s.totals()?;
    Ok((
        LossStats::new(avg(t.loss[0], pairs), t.count[0], 0),
        1.0,
        1.0,
    ))
}
