//! Launch limits that only a device enforces (docs of `pipeline.rs` / `losses.rs`): more query rows
//! than `gridDim.y` takes row tiles of the pairwise kernel, and a triplet loss whose scratch is
//! bounded by fewer blocks than anchors. Without a usable GPU every test prints
//! "skipping: <reason>" and passes.

use margin_core::{Backend, Distance, Embeddings, Loss, LossInput, MarginError, Metric};
use margin_cuda::CudaBackend;

fn cuda_or_skip() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(b) => Some(b),
        Err(MarginError::Unavailable(why)) => {
            println!("skipping: {why}");
            None
        }
        Err(e) => panic!("CUDA backend failed to start: {e}"),
    }
}

/// Deterministic values in [-1, 1) without a random generator.
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

#[test]
fn pairwise_with_more_row_tiles_than_grid_y() {
    let Some(b) = cuda_or_skip() else { return };
    // 65535 row tiles of 64 rows is the most one launch covers; go past it.
    let (nq, nr, d) = (65535 * 64 + 200, 3, 4);
    let q = values(nq * d, 1);
    let r = values(nr * d, 2);
    let qe = Embeddings::new(&q, nq, d).unwrap();
    let re = Embeddings::new(&r, nr, d).unwrap();
    for distance in [Distance::Euclidean, Distance::Dot] {
        let got = b
            .pairwise(Metric::new(distance, false), qe, Some(re))
            .unwrap_or_else(|e| panic!("{distance:?}: {e}"));
        assert_eq!(got.len(), nq * nr);
        let rows = [0, 1, 65535 * 64 - 1, 65535 * 64, 65535 * 64 + 1, nq - 1];
        for &i in &rows {
            for j in 0..nr {
                let (a, c) = (&q[i * d..(i + 1) * d], &r[j * d..(j + 1) * d]);
                let dot: f64 = a
                    .iter()
                    .zip(c)
                    .map(|(x, y)| f64::from(*x) * f64::from(*y))
                    .sum();
                let sq: f64 = a
                    .iter()
                    .zip(c)
                    .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                    .sum();
                let want = if distance == Distance::Dot {
                    dot
                } else {
                    sq.sqrt()
                };
                let err = (f64::from(got[i * nr + j]) - want).abs();
                assert!(
                    err < 1e-4,
                    "{distance:?} row {i} col {j}: {} vs {want}",
                    got[i * nr + j]
                );
            }
        }
    }
}

#[test]
fn triplet_with_a_reference_set_wider_than_the_scratch_budget() {
    let Some(b) = cuda_or_skip() else { return };
    // 2^17 + 1 reference columns: the per-block scratch is 12 x 2^18 bytes, so fewer blocks than
    // the 600 anchors run and each walks several anchors; the result must match the CPU.
    let (n, m, d) = (600, (1 << 17) + 1, 8);
    let x = values(n * d, 3);
    let rx = values(m * d, 4);
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 50).collect();
    let rlabels: Vec<i64> = (0..m as i64).map(|j| j % 50).collect();
    let input = LossInput::new(Embeddings::new(&x, n, d).unwrap(), &labels, None)
        .unwrap()
        .with_reference(margin_core::ReferenceSet {
            embeddings: Embeddings::new(&rx, m, d).unwrap(),
            labels: &rlabels,
            self_index: None,
        })
        .unwrap();
    let loss = Loss::default_for(margin_core::LossKind::Triplet);
    let got = b.loss(&loss, &input).unwrap();
    let want = margin_cpu::CpuBackend::new().loss(&loss, &input).unwrap();
    let rel = (got.loss() - want.loss()).abs() / want.loss().abs().max(1e-12);
    assert!(rel < 1e-4, "loss {} vs {}", got.loss(), want.loss());
    // Counts may differ by a few triplets at the margin (FP32 distances on both sides).
    let (ga, wa) = (got.stats.active as f64, want.stats.active as f64);
    assert!((ga - wa).abs() <= 1e-4 * wa.max(1.0), "active {ga} vs {wa}");
    let num: f64 = got
        .grad
        .iter()
        .zip(&want.grad)
        .map(|(a, c)| (f64::from(*a) - f64::from(*c)).powi(2))
        .sum();
    let den: f64 = want.grad.iter().map(|c| f64::from(*c).powi(2)).sum();
    assert!((num / den.max(1e-300)).sqrt() < 1e-3, "gradient differs");
}
