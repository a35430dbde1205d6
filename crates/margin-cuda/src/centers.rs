//! The losses against K centers (triplet-center, proxy-anchor with its proxies, and the
//! proxy-softmax family: proxy-nca, normalized-softmax, cosface): one pipeline for all, with the
//! N x K matrix between the batch and the centers in place of the N x N one. Stages 1, 2, 4 and 5
//! are shared (normalize both sides, distances, `chain_centers` to both X̂ and Ĉ, normalization
//! backward for both); only stage 3, the weights `W = dL/dD` (N x K, final) and the stats, is per
//! loss ([`CudaBackend::center_weights`]).

use crate::backend::sign;
use crate::device::{CudaBackend, THREADS, as_i32, dev_err, elems_cfg, grid_u32, rows_cfg};
use crate::launch::launch;
use crate::losses::Finish;
use crate::pipeline::kind_code;
use cudarc::driver::{CudaSlice, LaunchConfig};
use margin_core::{
    DeviceLossInput, Loss, LossStats, MarginError, ProxyAnchorConfig, ProxySoftmax, Result,
    TripletCenterConfig,
};

/// Stage 3 of a center loss: the final weights (N x K), the device stats and how to finish.
struct CenterWeights {
    w: CudaSlice<f32>,
    stats: CudaSlice<f64>,
    finish: Finish,
}

/// What the stage-3 kernels read: the N x K distances and the labels (indices of centers).
struct CenterInput<'a> {
    dxc: &'a CudaSlice<f32>,
    lab: &'a CudaSlice<i32>,
    labels: &'a [i64],
    n: usize,
    k: usize,
    /// +1 for a distance, −1 for a similarity.
    sg: f32,
}

/// Proxy-anchor's divisors, known from the labels alone: the proxies with a positive (the
/// distinct labels, as labels lie in `0..k`) and those with a negative (all `k` unless every
/// sample has the one label, whose proxy then has none).
pub(crate) fn proxy_counts(labels: &[i64], k: usize) -> (u64, u64) {
    let mut seen = vec![false; k];
    for &l in labels {
        if let Some(s) = usize::try_from(l).ok().and_then(|l| seen.get_mut(l)) {
            *s = true;
        }
    }
    let with_pos = seen.iter().filter(|&&s| s).count() as u64;
    let with_neg = match with_pos {
        0 => 0,
        1 => k as u64 - 1,
        _ => k as u64,
    };
    (with_pos, with_neg)
}

/// Launch shape of `proxy_anchor_cols_f32`: `cols` consecutive proxies per block (a power of
/// two up to 32, so a warp reads 32 consecutive values of a row once K is large) and
/// `THREADS / cols` threads down the rows of each; with few proxies the rows get the threads.
fn proxy_cols_cfg(k: usize) -> Result<LaunchConfig> {
    let cols = k.clamp(1, 32).next_power_of_two();
    let per_block = THREADS as usize / cols;
    Ok(LaunchConfig {
        grid_dim: (grid_u32(k.div_ceil(cols))?, 1, 1),
        block_dim: (grid_u32(cols)?, grid_u32(per_block)?, 1),
        shared_mem_bytes: 0,
    })
}

impl CudaBackend {
    /// Every loss with centers: N x K distances to the centers, gradients for both X and C (the
    /// latter only written when `center_grad` is given).
    pub(crate) fn center_loss(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, CudaSlice<f32>>,
        grad: &mut CudaSlice<f32>,
        center_grad: Option<&mut CudaSlice<f32>>,
    ) -> Result<LossStats> {
        let Some((centers, k)) = input.centers else {
            return Err(MarginError::input(format!("{} needs centers", loss.kind())));
        };
        let metric = loss.metric();
        let (n, d) = (input.n, input.d);
        let normed_x = if metric.normalizes() {
            Some(self.normalize(input.embeddings, n, d)?)
        } else {
            None
        };
        let normed_c = if metric.normalizes() {
            Some(self.normalize(centers, k, d)?)
        } else {
            None
        };
        let xhat = normed_x.as_ref().map_or(input.embeddings, |(x, _)| x);
        let chat = normed_c.as_ref().map_or(centers, |(c, _)| c);
        let nk = n
            .checked_mul(k)
            .ok_or_else(|| MarginError::input("N x K overflows"))?;
        let mut dxc = self.zeros::<f32>(nk)?;
        self.distances(
            xhat,
            n,
            Some((chat, k)),
            d,
            kind_code(metric.distance),
            &mut dxc,
        )?;
        // Labels were checked to lie in 0..K, so they fit an i32 index.
        let labels: Vec<i32> = input.labels.iter().map(|&l| l as i32).collect();
        let lab = self.stream.clone_htod(&labels).map_err(dev_err)?;
        let inp = CenterInput {
            dxc: &dxc,
            lab: &lab,
            labels: input.labels,
            n,
            k,
            sg: sign(metric),
        };
        let CenterWeights {
            mut w,
            stats,
            finish,
        } = self.center_weights(loss, &inp)?;
        let mut gx = self.zeros::<f32>(n * d)?;
        let mut gc = self.zeros::<f32>(k * d)?;
        self.chain_centers(
            &mut w,
            &dxc,
            xhat,
            chat,
            (n, k, d),
            metric.distance,
            &mut gx,
            &mut gc,
        )?;
        match &normed_x {
            Some((xh, norms)) => self.normalize_backward(&gx, xh, norms, (n, d), grad)?,
            None => self.stream.memcpy_dtod(&gx, grad).map_err(dev_err)?,
        }
        if let Some(cg) = center_grad {
            match &normed_c {
                Some((ch, norms)) => self.normalize_backward(&gc, ch, norms, (k, d), cg)?,
                None => self.stream.memcpy_dtod(&gc, cg).map_err(dev_err)?,
            }
        }
        let stats = self.stream.clone_dtoh(&stats).map_err(dev_err)?;
        self.stream.synchronize().map_err(dev_err)?;
        Ok(finish.apply(&stats))
    }

    /// Stage 3 of a center loss. The proxy-softmax losses share one arm through their common
    /// form ([`Loss::proxy_softmax`]), so a fourth member of the family needs nothing here.
    fn center_weights(&self, loss: &Loss, inp: &CenterInput<'_>) -> Result<CenterWeights> {
        if let Some(form) = loss.proxy_softmax() {
            return self.proxy_softmax_weights(form, inp);
        }
        match loss {
            Loss::TripletCenter(cfg) => self.triplet_center_weights(cfg, inp),
            Loss::ProxyAnchor(cfg) => self.proxy_anchor_weights(cfg, inp),
            _ => Err(MarginError::input(format!(
                "{} takes no centers",
                loss.kind()
            ))),
        }
    }

    /// Triplet-center: one block per sample, its own center against the nearest other one.
    fn triplet_center_weights(
        &self,
        cfg: &TripletCenterConfig,
        inp: &CenterInput<'_>,
    ) -> Result<CenterWeights> {
        let n = inp.n;
        let (ni, ki) = (as_i32(n, "N")?, as_i32(inp.k, "K")?);
        // The kernel writes two entries of an active row only: the rest must be 0.
        let mut w = self.zeros::<f32>(n * inp.k)?;
        let mut part = self.zeros::<f64>(n * 2)?;
        let inv_n = 1.0 / n as f64;
        launch!(
            self,
            "triplet_center_rows_f32",
            rows_cfg(n)?,
            [
                inp.dxc,
                inp.lab,
                &ni,
                &ki,
                &inp.sg,
                &cfg.margin,
                &inv_n,
                &mut w,
                &mut part
            ]
        )?;
        Ok(CenterWeights {
            w,
            stats: self.reduce_stats(&part, n, 2, 0)?,
            finish: Finish::TripletCenter { n },
        })
    }

    /// Proxy-anchor: per proxy (column) two log-sum-exps over the batch. Its divisors (proxies
    /// with a positive, K) are known from the labels, so the kernel writes final weights and
    /// per-proxy loss terms already divided; the active counts never leave the host.
    fn proxy_anchor_weights(
        &self,
        cfg: &ProxyAnchorConfig,
        inp: &CenterInput<'_>,
    ) -> Result<CenterWeights> {
        let (n, k) = (inp.n, inp.k);
        let (ni, ki) = (as_i32(n, "N")?, as_i32(k, "K")?);
        let (with_pos, with_neg) = proxy_counts(inp.labels, k);
        let inv_pos = 1.0 / with_pos.max(1) as f64;
        let inv_k = 1.0 / k.max(1) as f64;
        // Every entry is written by the kernel.
        let mut w = self.zeros::<f32>(n * k)?;
        let mut part = self.zeros::<f64>(k)?;
        launch!(
            self,
            "proxy_anchor_cols_f32",
            proxy_cols_cfg(k)?,
            [
                inp.dxc,
                inp.lab,
                &ni,
                &ki,
                &inp.sg,
                &cfg.margin,
                &cfg.alpha,
                &inv_pos,
                &inv_k,
                &mut w,
                &mut part
            ]
        )?;
        Ok(CenterWeights {
            w,
            stats: self.reduce_stats(&part, k, 1, 0)?,
            finish: Finish::ProxyAnchor { with_pos, with_neg },
        })
    }

    /// Proxy-nca, normalized-softmax and cosface: per sample (row) a softmax cross-entropy over
    /// the K centers, one block per row reducing over K (shaders/cuda/proxy_softmax.cu). The
    /// mean is over the counted rows: all N unless the form drops underflowed rows (proxy-nca),
    /// whose count is only known after every row. Then the kernel writes weights without the
    /// 1/count, and `scale_by_stat_f32` applies the reduced count's inverse on the device, so
    /// the host still reads the stats once, at the end of the loss.
    fn proxy_softmax_weights(
        &self,
        form: ProxySoftmax,
        inp: &CenterInput<'_>,
    ) -> Result<CenterWeights> {
        let (n, k) = (inp.n, inp.k);
        let (ni, ki) = (as_i32(n, "N")?, as_i32(k, "K")?);
        let drop = i32::from(form.drop_underflow);
        let inv_count = if form.drop_underflow {
            1.0
        } else {
            1.0 / n.max(1) as f64
        };
        // Every entry is written by the kernel (0 on a dropped row).
        let mut w = self.zeros::<f32>(n * k)?;
        let mut part = self.zeros::<f64>(n * 2)?;
        launch!(
            self,
            "proxy_softmax_rows_f32",
            rows_cfg(n)?,
            [
                inp.dxc,
                inp.lab,
                &ni,
                &ki,
                &inp.sg,
                &form.scale,
                &form.target_margin,
                &drop,
                &inv_count,
                &mut w,
                &mut part
            ]
        )?;
        // [sum of -log p, counted rows, 1 / counted] (the last slot only for the drop rule).
        let mut stats = self.reduce_stats(&part, n, 2, 1)?;
        if form.drop_underflow {
            self.safe_inverse(&mut stats, 1, 2)?;
            let (len, idx) = ((n * k) as u64, 2i32);
            launch!(
                self,
                "scale_by_stat_f32",
                elems_cfg(n * k)?,
                [&mut w, &len, &stats, &idx]
            )?;
        }
        Ok(CenterWeights {
            w,
            stats,
            finish: Finish::Triplet,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_counts_follow_the_labels() {
        // Proxy 1 has no positive; every proxy has a negative.
        assert_eq!(proxy_counts(&[0, 2, 2, 0], 3), (2, 3));
        // One class: its proxy has no negative.
        assert_eq!(proxy_counts(&[1, 1, 1], 3), (1, 2));
        assert_eq!(proxy_counts(&[0], 1), (1, 0));
        assert_eq!(proxy_counts(&[0, 1, 2, 3], 4), (4, 4));
    }

    #[test]
    fn proxy_blocks_cover_every_proxy() {
        for k in [1usize, 2, 3, 10, 31, 32, 33, 1000] {
            let cfg = proxy_cols_cfg(k).unwrap_or_else(|e| panic!("{e}"));
            let (cols, rows) = (cfg.block_dim.0 as usize, cfg.block_dim.1 as usize);
            assert_eq!(cols * rows, THREADS as usize, "k = {k}");
            assert!(
                rows.is_power_of_two() && cols <= 32 && cols >= k.min(32),
                "k = {k}"
            );
            assert!(cfg.grid_dim.0 as usize * cols >= k, "k = {k}");
        }
    }
}
