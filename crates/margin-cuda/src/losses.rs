//! Stage 3 (weights) per loss on an N x N distance matrix: launches the loss kernels, reduces
//! their per-row partials into a small f64 stats buffer on the device, and says how stage 4 must
//! scale the weights and how the host turns the stats into a [`LossStats`] at the very end.

use crate::device::{CudaBackend, as_i32, grid_u32, rows_cfg};
use crate::labels::LabelInfo;
use crate::launch::launch;
use cudarc::driver::{CudaSlice, LaunchConfig};
use margin_core::{Loss, LossStats, Mining, Result};

/// How the final stats read from the device become the loss.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finish {
    /// `[pos sum, pos count, neg sum, neg count, ...]`: two AvgNonZero terms added (also the
    /// hard-mined quadruplet: `[t1 sum, t1 count, t2 sum, t2 count, ...]`).
    Contrastive,
    /// `[sum, count, ...]`, AvgNonZero (also circle, SupCon, and the proxy-softmax losses: the
    /// mean over the counted samples, 0 when none counts).
    Triplet,
    /// `[sum of J²/2, count]`, mean over `pairs` ordered positive pairs.
    Lifted { pairs: u64 },
    /// `[sum of per-anchor losses]`, mean over `k`.
    NPair { k: usize },
    /// `[sum1, count1, −Σ cnt z, count2, Σ cnt (x + m2), ...]`.
    Quadruplet,
    /// `[sum, count]`, mean over `n` samples.
    TripletCenter { n: usize },
    /// `[sum of the per-proxy terms, already divided]`; the active counts (proxies with a
    /// positive, with a negative) come from the labels on the host.
    ProxyAnchor { with_pos: u64, with_neg: u64 },
    /// `[sum, first count, second count]`, mean over all `n` anchors (multi-similarity,
    /// generalized lifted structure).
    Mean { n: usize },
    /// `[sum]`, mean over `pairs` ordered positive pairs, `[pairs, 0]` active (NT-Xent).
    PairMean { pairs: u64 },
}

fn avg(sum: f64, count: f64) -> f64 {
    if count > 0.0 { sum / count } else { 0.0 }
}

fn count(c: f64) -> u64 {
    c.max(0.0).round() as u64
}

impl Finish {
    /// The loss and active counts from the downloaded stats.
    pub(crate) fn apply(self, s: &[f64]) -> LossStats {
        let at = |i: usize| s.get(i).copied().unwrap_or(0.0);
        match self {
            Finish::Contrastive => LossStats::new(
                avg(at(0), at(1)) + avg(at(2), at(3)),
                count(at(1)),
                count(at(3)),
            ),
            Finish::Triplet => LossStats::new(avg(at(0), at(1)), count(at(1)), 0),
            Finish::Lifted { pairs } => {
                let loss = if pairs > 0 { at(0) / pairs as f64 } else { 0.0 };
                LossStats::new(loss, count(at(1)), 0)
            }
            Finish::NPair { k } if k < 2 => LossStats::empty(),
            Finish::NPair { k } => LossStats::new(at(0) / k as f64, k as u64, 0),
            Finish::Quadruplet => LossStats::new(
                avg(at(0), at(1)) + avg(at(2) + at(4), at(3)),
                count(at(1)),
                count(at(3)),
            ),
            Finish::TripletCenter { n } => LossStats::new(at(0) / n.max(1) as f64, count(at(1)), 0),
            Finish::ProxyAnchor { with_pos, with_neg } => LossStats::new(at(0), with_pos, with_neg),
            Finish::Mean { n } => {
                LossStats::new(at(0) / n.max(1) as f64, count(at(1)), count(at(2)))
            }
            Finish::PairMean { pairs: 0 } => LossStats::empty(),
            Finish::PairMean { pairs } => LossStats::new(at(0) / pairs as f64, pairs, 0),
        }
    }
}

/// The result of stage 3: device stats, the stats slots that scale positive / negative pair
/// weights in stage 4 (-1: already scaled), and how to finish.
pub(crate) struct StageThree {
    pub stats: CudaSlice<f64>,
    pub scales: (i32, i32),
    pub finish: Finish,
}

/// What the loss kernels read beside the N x N distance matrix.
#[derive(Clone, Copy)]
pub(crate) struct SquareInput<'a> {
    pub lab: &'a CudaSlice<i32>,
    pub info: &'a LabelInfo,
    pub n: usize,
    /// +1 for a distance, −1 for a similarity.
    pub sg: f32,
    /// 1 for the euclidean distance: in-place weights come out divided by the distance they
    /// replace (the chain's `dD/dx` factor), since the distance is gone afterwards.
    pub euclid: i32,
}

/// The batch-all quadruplet's term-2 input: the distances beside the labels (it reads them again
/// after term 1's weights are known).
pub(crate) struct QuadInput<'a> {
    pub dmat: &'a CudaSlice<f32>,
    pub square: &'a SquareInput<'a>,
}

impl<'a> std::ops::Deref for QuadInput<'a> {
    type Target = SquareInput<'a>;

    fn deref(&self) -> &SquareInput<'a> {
        self.square
    }
}

/// Scratch bytes the per-anchor triplet kernel may take (its blocks each hold `2 cap` floats and
/// `cap + 1` ints, `cap` the power of two >= the columns).
const TRIPLET_SCRATCH_BYTES: usize = 1 << 30;

/// Blocks of the per-anchor triplet kernel for `rows` anchors: up to 1024 (a grid-stride loop
/// covers the rest), fewer when `cap` is so large (reference sets of a million rows) that 1024
/// scratch slices would outgrow [`TRIPLET_SCRATCH_BYTES`]; never fewer than 132 (an H100/H200's
/// SM count) unless there are fewer anchors.
pub(crate) fn triplet_blocks(rows: usize, cap: usize) -> usize {
    let per_block = cap.saturating_mul(12).saturating_add(4);
    let fit = (TRIPLET_SCRATCH_BYTES / per_block).max(132);
    rows.clamp(1, 1024).min(fit)
}

/// Scratch and launch shape of one per-anchor triplet launch over `rows` anchors whose rows have
/// `cols` columns ([`triplet_blocks`] blocks, each with `2 cap` floats and `cap + 1` ints).
pub(crate) struct TripletLaunch {
    pub scratch: CudaSlice<f32>,
    pub diff: CudaSlice<i32>,
    pub cfg: LaunchConfig,
    /// The power of two >= `cols`, as the kernels take it.
    pub cap: i32,
}

impl CudaBackend {
    pub(crate) fn triplet_launch(&self, rows: usize, cols: usize) -> Result<TripletLaunch> {
        let cap = cols.next_power_of_two();
        let blocks = triplet_blocks(rows, cap);
        Ok(TripletLaunch {
            scratch: self.zeros::<f32>(blocks * 2 * cap)?,
            diff: self.zeros::<i32>(blocks * (cap + 1))?,
            cfg: LaunchConfig {
                grid_dim: (grid_u32(blocks)?, 1, 1),
                block_dim: (crate::device::THREADS, 1, 1),
                shared_mem_bytes: 0,
            },
            cap: as_i32(cap, "the row length")?,
        })
    }
}

/// Flags and outputs of one per-anchor triplet launch.
pub(crate) struct TripletPass<'a> {
    pub margin: f64,
    pub semihard: bool,
    pub smooth: bool,
    pub part: &'a mut CudaSlice<f64>,
    pub stride: i32,
    pub write_stats: bool,
    pub write_w: bool,
    pub stats: &'a CudaSlice<f64>,
    pub scale_idx: i32,
}

impl CudaBackend {
    /// Stage 3 for every loss without centers (the center losses have theirs in centers.rs).
    /// `dw` holds the N x N distances; most losses overwrite it with dL/dD in place (already
    /// divided by the distance for the euclidean chain; shaders/cuda/common.cuh `RowOut`), so
    /// the loss keeps one N x N matrix as the SPEC's Cost section asks. The batch-all
    /// quadruplet reads distances again after its first weights: while a second matrix fits the
    /// stream budget it returns dL/dD apart (raw: chain_prep divides) and leaves `dw` as is (see
    /// quadruplet.rs).
    pub(crate) fn weights_square(
        &self,
        loss: &Loss,
        inp: &SquareInput<'_>,
        dw: &mut CudaSlice<f32>,
    ) -> Result<(StageThree, Option<CudaSlice<f32>>)> {
        if let Loss::Quadruplet(c) = loss {
            return match c.mining {
                Mining::All => self.quadruplet(inp, dw, c.margin, c.margin2),
                Mining::Hard => {
                    let three = self.quadruplet_hard(inp, dw, c.margin, c.margin2)?;
                    Ok((three, None))
                }
                Mining::SemiHard => Err(margin_core::MarginError::config(
                    "quadruplet mining must be all or hard",
                )),
            };
        }
        Ok((self.weights_in_place(loss, inp, dw)?, None))
    }

    /// Stage 3 of every loss but the quadruplet, in place over `w` (the distances).
    fn weights_in_place(
        &self,
        loss: &Loss,
        inp: &SquareInput<'_>,
        w: &mut CudaSlice<f32>,
    ) -> Result<StageThree> {
        let n = inp.n;
        let ni = as_i32(n, "N")?;
        let sg = inp.sg;
        let sgd = f64::from(sg);
        let eu = &inp.euclid;
        match loss {
            Loss::Contrastive(c) => {
                let (pm, nm) = (sgd * c.pos_margin, sgd * c.neg_margin);
                let mut part = self.zeros::<f64>(n * 4)?;
                launch!(
                    self,
                    "contrastive_rows_f32",
                    rows_cfg(n)?,
                    [w, inp.lab, &ni, &sg, &pm, &nm, eu, &mut part]
                )?;
                let mut stats = self.reduce_stats(&part, n, 4, 2)?;
                self.safe_inverse(&mut stats, 1, 4)?;
                self.safe_inverse(&mut stats, 3, 5)?;
                Ok(StageThree {
                    stats,
                    scales: (4, 5),
                    finish: Finish::Contrastive,
                })
            }
            Loss::Triplet(c) => {
                let mut part = self.zeros::<f64>(n * 2)?;
                if c.mining == Mining::Hard {
                    let smooth = i32::from(c.smooth);
                    launch!(
                        self,
                        "triplet_hard_rows_f32",
                        rows_cfg(n)?,
                        [w, inp.lab, &ni, &sg, &c.margin, &smooth, eu, &mut part]
                    )?;
                } else {
                    let none = self.zeros::<f64>(1)?;
                    let pass = TripletPass {
                        margin: c.margin,
                        semihard: c.mining == Mining::SemiHard,
                        smooth: c.smooth,
                        part: &mut part,
                        stride: 2,
                        write_stats: true,
                        write_w: true,
                        stats: &none,
                        scale_idx: -1,
                    };
                    self.triplet_rows(inp, w, pass)?;
                }
                let mut stats = self.reduce_stats(&part, n, 2, 1)?;
                self.safe_inverse(&mut stats, 1, 2)?;
                Ok(StageThree {
                    stats,
                    scales: (2, 2),
                    finish: Finish::Triplet,
                })
            }
            Loss::LiftedStructure(c) => {
                let (pm, nm) = (sgd * c.pos_margin, sgd * c.neg_margin);
                let mut lse = self.zeros::<f64>(n)?;
                launch!(
                    self,
                    "lifted_lse_f32",
                    rows_cfg(n)?,
                    [&*w, inp.lab, &ni, &sg, &nm, &mut lse]
                )?;
                let pairs = inp.info.positive_pairs();
                let inv = if pairs > 0 { 1.0 / pairs as f64 } else { 0.0 };
                let mut part = self.zeros::<f64>(n * 2)?;
                launch!(
                    self,
                    "lifted_rows_f32",
                    rows_cfg(n)?,
                    [w, inp.lab, &ni, &sg, &nm, &pm, &lse, &inv, eu, &mut part]
                )?;
                Ok(StageThree {
                    stats: self.reduce_stats(&part, n, 2, 0)?,
                    scales: (-1, -1),
                    finish: Finish::Lifted { pairs },
                })
            }
            Loss::NPair(_) => {
                let (anchors, positives) = inp.info.npair_pairs();
                let k = anchors.len();
                if k < 2 {
                    return self.nothing_in_place(Finish::NPair { k }, w);
                }
                let ki = as_i32(k, "k")?;
                // Which anchor each row is, and which positive each column (-1: none).
                let mut slot_of = vec![-1i32; n];
                let mut col_of = vec![-1i32; n];
                for (i, (&a, &p)) in anchors.iter().zip(&positives).enumerate() {
                    let i = as_i32(i, "k")?;
                    if let Some(s) = usize::try_from(a).ok().and_then(|a| slot_of.get_mut(a)) {
                        *s = i;
                    }
                    if let Some(c) = usize::try_from(p).ok().and_then(|p| col_of.get_mut(p)) {
                        *c = i;
                    }
                }
                let upload = |v: &[i32]| self.stream.clone_htod(v).map_err(crate::device::dev_err);
                let (anc, pos) = (upload(&anchors)?, upload(&positives)?);
                let (slot_dev, col_dev) = (upload(&slot_of)?, upload(&col_of)?);
                let mut part = self.zeros::<f64>(k)?;
                launch!(
                    self,
                    "npair_rows_f32",
                    rows_cfg(n)?,
                    [
                        w, &ni, &anc, &pos, &slot_dev, &col_dev, &ki, &sg, eu, &mut part
                    ]
                )?;
                Ok(StageThree {
                    stats: self.reduce_stats(&part, k, 1, 0)?,
                    scales: (-1, -1),
                    finish: Finish::NPair { k },
                })
            }
            Loss::MultiSimilarity(c) => self.multi_similarity(c, inp, w),
            Loss::Circle(c) => self.circle(c, inp, w),
            Loss::NTXent(c) => self.ntxent(c, inp, w),
            Loss::SupCon(c) => self.supcon(c, inp, w),
            Loss::GeneralizedLiftedStructure(c) => self.gen_lifted(c, inp, w),
            // Routed to centers.rs by `Loss::needs_centers` before stage 3 (backend.rs); named
            // one by one so that a new loss must pick its path here.
            Loss::TripletCenter(_)
            | Loss::ProxyAnchor(_)
            | Loss::ProxyNca(_)
            | Loss::NormalizedSoftmax(_)
            | Loss::CosFace(_) => Err(margin_core::MarginError::input(format!(
                "{} needs centers",
                loss.kind()
            ))),
            Loss::Quadruplet(_) => Err(margin_core::MarginError::config(
                "the quadruplet loss keeps a separate weight matrix",
            )),
        }
    }

    /// One launch of the per-anchor triplet kernel (batch-all / semihard, relu / softplus), in
    /// place over `dw` (the distances, or the quadruplet's copy of them).
    pub(crate) fn triplet_rows(
        &self,
        inp: &SquareInput<'_>,
        dw: &mut CudaSlice<f32>,
        p: TripletPass<'_>,
    ) -> Result<()> {
        let n = inp.n;
        let ni = as_i32(n, "N")?;
        let mut t = self.triplet_launch(n, n)?;
        let (semihard, smooth) = (i32::from(p.semihard), i32::from(p.smooth));
        let (ws, ww) = (i32::from(p.write_stats), i32::from(p.write_w));
        launch!(
            self,
            "triplet_rows_f32",
            t.cfg,
            [
                dw,
                inp.lab,
                &ni,
                &inp.sg,
                &p.margin,
                &semihard,
                &smooth,
                &inp.euclid,
                p.part,
                &p.stride,
                &ws,
                &ww,
                p.stats,
                &p.scale_idx,
                &mut t.scratch,
                &mut t.diff,
                &t.cap
            ]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reduces_like_the_spec() {
        let s = [3.0, 2.0, 1.0, 4.0, 0.5, 0.25];
        let c = Finish::Contrastive.apply(&s);
        assert_eq!((c.loss, c.active_terms), (1.5 + 0.25, [2, 4]));
        let t = Finish::Triplet.apply(&[0.0, 0.0, 0.0]);
        assert_eq!((t.loss, t.active), (0.0, 0));
        let q = Finish::Quadruplet.apply(&[2.0, 4.0, -1.0, 2.0, 3.0]);
        assert_eq!((q.loss, q.active_terms), (0.5 + 1.0, [4, 2]));
        assert_eq!(Finish::NPair { k: 1 }.apply(&[5.0]), LossStats::empty());
        assert_eq!(Finish::NPair { k: 4 }.apply(&[2.0]).loss, 0.5);
        assert_eq!(Finish::Lifted { pairs: 0 }.apply(&[0.0, 0.0]).loss, 0.0);
        assert_eq!(Finish::TripletCenter { n: 4 }.apply(&[2.0, 3.0]).active, 3);
        let pa = Finish::ProxyAnchor {
            with_pos: 2,
            with_neg: 3,
        }
        .apply(&[1.5]);
        assert_eq!((pa.loss, pa.active_terms), (1.5, [2, 3]));
        let m = Finish::Mean { n: 4 }.apply(&[2.0, 3.0, 1.0]);
        assert_eq!((m.loss, m.active_terms), (0.5, [3, 1]));
        assert_eq!(
            Finish::Mean { n: 2 }.apply(&[1.0, 1.0]).active_terms,
            [1, 0]
        );
        assert_eq!(
            Finish::PairMean { pairs: 0 }.apply(&[0.0]),
            LossStats::empty()
        );
        let p = Finish::PairMean { pairs: 4 }.apply(&[2.0]);
        assert_eq!((p.loss, p.active_terms), (0.5, [4, 0]));
    }

    #[test]
    fn triplet_scratch_stays_bounded() {
        assert_eq!(triplet_blocks(0, 1), 1);
        assert_eq!(triplet_blocks(300, 512), 300);
        assert_eq!(triplet_blocks(65536, 65536), 1024);
        // A million reference columns: 1024 slices would be 12 GiB.
        let blocks = triplet_blocks(4096, 1 << 20);
        assert!((132..1024).contains(&blocks));
        assert!(blocks * 12 * (1 << 20) <= 2 * TRIPLET_SCRATCH_BYTES);
    }
}
