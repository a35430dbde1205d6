//! Every backend against the float64 reference: one generic body per property, instantiated for
//! each backend by `equivalence_suite!`. Sizes are deliberately not multiples of any tile or
//! workgroup size; N = 1, one class, all-distinct labels and D = 1 are included.

/// The wgpu backend beyond one storage binding (its name holds "wgpu", so the GPU check's wgpu
/// filter runs it too).
#[path = "equivalence/wgpu_slabs.rs"]
mod wgpu_slabs;

use margin_core::{Distance, HostBackend, Loss, LossKind, Metric};
use margin_tests::{
    Labels, all_loss_configs, assert_all, check_loss, check_loss_affine, check_pairwise,
};

fn metrics() -> Vec<Metric> {
    Distance::ALL
        .into_iter()
        .flat_map(|d| [Metric::new(d, true), Metric::new(d, false)])
        .filter(|m| m.distance != Distance::Cosine || m.normalize)
        .collect()
}

fn is_semihard(loss: &Loss) -> bool {
    matches!(loss, Loss::Triplet(c) if c.mining == margin_core::Mining::SemiHard)
}

/// Quadruplet's reference is O(N^4): keep its batches smaller.
fn batch_for(loss: &Loss, n: usize) -> usize {
    if loss.kind() == LossKind::Quadruplet {
        n.min(23)
    } else {
        n
    }
}

pub fn pairwise_every_metric(b: &dyn HostBackend) {
    let shapes = [
        (1, None, 1),
        (37, None, 5),
        (130, None, 64),
        (67, Some(45), 17),
        (300, None, 3),
    ];
    assert_all(metrics().into_iter().flat_map(|m| {
        shapes.map(|(nq, nr, d)| check_pairwise(b, m, nq, nr, d, 7 + nq as u64, 0.0))
    }));
}

pub fn every_loss_every_metric(b: &dyn HostBackend) {
    assert_all(all_loss_configs().iter().enumerate().map(|(i, loss)| {
        check_loss(
            b,
            loss,
            batch_for(loss, 37),
            8,
            Labels::Classes(4),
            100 + i as u64,
        )
    }));
}

pub fn batch_of_one(b: &dyn HostBackend) {
    assert_all(
        all_loss_configs()
            .iter()
            .map(|loss| check_loss(b, loss, 1, 6, Labels::Classes(1), 3)),
    );
}

pub fn one_class_and_all_distinct(b: &dyn HostBackend) {
    assert_all(all_loss_configs().iter().flat_map(|loss| {
        let n = batch_for(loss, 23);
        [
            check_loss(b, loss, n, 5, Labels::OneClass, 11),
            check_loss(b, loss, n, 5, Labels::AllDistinct, 12),
        ]
    }));
}

pub fn width_of_one(b: &dyn HostBackend) {
    assert_all(
        all_loss_configs()
            .iter()
            .map(|loss| check_loss(b, loss, batch_for(loss, 29), 1, Labels::Classes(3), 21)),
    );
}

pub fn odd_sizes_default_losses(b: &dyn HostBackend) {
    assert_all(LossKind::ALL.into_iter().flat_map(|kind| {
        let loss = Loss::default_for(kind);
        [(2, 3, 2), (65, 17, 5), (130, 33, 13)].map(|(n, d, k)| {
            check_loss(
                b,
                &loss,
                batch_for(&loss, n),
                d,
                Labels::Classes(k),
                n as u64,
            )
        })
    }));
}

/// One case beyond 2048 rows (one dispatch / one tile row on GPUs).
pub fn large_batch(b: &dyn HostBackend) {
    let n = 2100;
    assert_all([
        check_pairwise(
            b,
            Metric::new(Distance::Euclidean, true),
            n,
            None,
            16,
            5,
            0.0,
        ),
        check_loss(
            b,
            &Loss::default_for(LossKind::Contrastive),
            n,
            16,
            Labels::Classes(37),
            6,
        ),
        check_loss(
            b,
            &Loss::default_for(LossKind::NPair),
            n,
            16,
            Labels::Classes(300),
            7,
        ),
    ]);
}

/// Rows far from the origin relative to their spread (`shift + N(0, 1)`, as features after a
/// ReLU with a large mean): the expanded distance form `‖a‖² + ‖b‖² − 2 a·b` cancels there, so
/// the backends must sum such pairs directly. Distances only: similarities of such rows are all
/// nearly equal, and their differences are beyond f32 for every implementation.
pub fn shifted_rows(b: &dyn HostBackend) {
    let metrics = [Distance::Euclidean, Distance::SquaredEuclidean].map(|d| Metric::new(d, false));
    let pairwise = metrics.into_iter().flat_map(|m| {
        [(40, None, 130), (33, Some(70), 24)]
            .map(|(nq, nr, d)| check_pairwise(b, m, nq, nr, d, 31 + nq as u64, 1000.0))
    });
    let losses = all_loss_configs()
        .into_iter()
        .filter(|l| !l.metric().normalizes() && metrics.contains(&l.metric()));
    let losses: Vec<_> = losses.collect();
    let checks = losses.iter().enumerate().map(|(i, loss)| {
        check_loss_affine(
            b,
            loss,
            batch_for(loss, 41),
            70,
            Labels::Classes(5),
            300 + i as u64,
            (1.0, 100.0),
        )
    });
    assert_all(pairwise.chain(checks));
}

/// Wide unnormalized rows: squared distances and dot products in the hundreds, where every
/// exponential of a log-sum-exp loss under- or overflows f32 unless it is stabilized.
/// Semihard mining is left out: its terms are `d_ap − d_an + m` with both distances inside a
/// margin of 0.05 of each other, while f32's spacing at 600 is 6e-5, so no f32 backend can
/// hold such a loss to 1e-4 relative (it stays within 2e-3).
pub fn wide_rows(b: &dyn HostBackend) {
    let losses: Vec<Loss> = all_loss_configs()
        .into_iter()
        .filter(|l| !l.metric().normalizes() && !is_semihard(l))
        .collect();
    assert_all(losses.iter().enumerate().map(|(i, loss)| {
        check_loss(
            b,
            loss,
            batch_for(loss, 37),
            300,
            Labels::Classes(6),
            500 + i as u64,
        )
    }));
}

/// Rows of extreme magnitude (1e20 and 1e-20 times N(0, 1)): with normalization every backend
/// matches the reference (a plain f32 sum of squares would overflow or underflow); without it,
/// the f32 backends refuse 1e20 rows with an input error instead of returning a wrong loss.
pub fn extreme_magnitudes(b: &dyn HostBackend) {
    let normalized: Vec<Loss> = LossKind::ALL
        .into_iter()
        .filter_map(|kind| {
            margin_core::LossOverrides {
                normalize: Some(true),
                ..Default::default()
            }
            .apply(Loss::default_for(kind))
            .ok()
        })
        .collect();
    let checks = normalized.iter().enumerate().flat_map(|(i, loss)| {
        [1e20f32, 1e-20].map(|scale| {
            check_loss_affine(
                b,
                loss,
                batch_for(loss, 29),
                7,
                Labels::Classes(4),
                700 + i as u64,
                (scale, 0.0),
            )
        })
    });
    let mut results: Vec<Result<(), String>> = checks.collect();
    let raw = Loss::default_for(LossKind::Contrastive);
    let raw = margin_core::LossOverrides {
        normalize: Some(false),
        ..Default::default()
    }
    .apply(raw)
    .unwrap();
    let x = margin_tests::random_affine(8 * 3, 9, 1e20, 0.0);
    let y = [0i64, 0, 1, 1, 2, 2, 3, 3];
    let input = margin_core::LossInput::from_slices(&x, 8, 3, &y, None).unwrap();
    results.push(match b.host_loss(&raw, &input) {
        Err(margin_core::MarginError::InvalidInput(m)) if m.contains("squared norm") => Ok(()),
        Err(e) if b.backend_name() == "reference" => Err(format!("reference refused: {e}")),
        Ok(_) if b.backend_name() == "reference" => Ok(()),
        other => Err(format!(
            "{}: 1e20 rows without normalization gave {other:?}, not an input error",
            b.backend_name()
        )),
    });
    assert_all(results);
}

/// Exact duplicate rows, within a class and across classes: their distance is exactly 0 (the
/// expanded form alone leaves rounding noise there, whose square root the euclidean gradient
/// would turn into an arbitrary unit vector), and the SPEC's gradient of a distance at 0 is 0.
/// Distances only: a duplicate's similarity is 1 up to rounding, exactly on the contrastive
/// margin, so which side it falls on is rounding in the reference too; semihard mining is left
/// out as in [`wide_rows`].
pub fn duplicate_rows(b: &dyn HostBackend) {
    let (n, d) = (31, 24);
    let mut x = margin_tests::random_normal(n * d, 77);
    // Labels i % 5: rows 0 and 5 share a class, rows 1 and 2 do not.
    for (from, to) in [(0, 5), (0, 10), (1, 2), (7, 30)] {
        let row: Vec<f32> = x[from * d..(from + 1) * d].to_vec();
        x[to * d..(to + 1) * d].copy_from_slice(&row);
    }
    let (y, _) = Labels::Classes(5).make(n);
    assert_all(
        all_loss_configs()
            .iter()
            .filter(|l| {
                !l.needs_centers()
                    && l.kind() != LossKind::Quadruplet
                    && !l.metric().is_similarity()
                    && !is_semihard(l)
            })
            .map(|loss| {
                let input = margin_core::LossInput::from_slices(&x, n, d, &y, None)
                    .map_err(|e| e.to_string())?;
                let case = format!("{loss:?} with duplicate rows");
                let (got, want) = margin_tests::run_with_reference(b, loss, &input, &case)?;
                margin_tests::compare_outputs(&got, &want, &case)
            }),
    );
}

macro_rules! equivalence_suite {
    ($name:ident, $require:literal, $make:expr) => {
        mod $name {
            use super::*;
            fn backend() -> Option<Box<dyn HostBackend>> {
                margin_tests::backend_or_skip($make, $require)
            }
            #[test]
            fn pairwise_every_metric() {
                if let Some(b) = backend() {
                    super::pairwise_every_metric(b.as_ref())
                }
            }
            #[test]
            fn every_loss_every_metric() {
                if let Some(b) = backend() {
                    super::every_loss_every_metric(b.as_ref())
                }
            }
            #[test]
            fn batch_of_one() {
                if let Some(b) = backend() {
                    super::batch_of_one(b.as_ref())
                }
            }
            #[test]
            fn one_class_and_all_distinct() {
                if let Some(b) = backend() {
                    super::one_class_and_all_distinct(b.as_ref())
                }
            }
            #[test]
            fn width_of_one() {
                if let Some(b) = backend() {
                    super::width_of_one(b.as_ref())
                }
            }
            #[test]
            fn odd_sizes_default_losses() {
                if let Some(b) = backend() {
                    super::odd_sizes_default_losses(b.as_ref())
                }
            }
            #[test]
            fn shifted_rows() {
                if let Some(b) = backend() {
                    super::shifted_rows(b.as_ref())
                }
            }
            #[test]
            fn wide_rows() {
                if let Some(b) = backend() {
                    super::wide_rows(b.as_ref())
                }
            }
            #[test]
            fn extreme_magnitudes() {
                if let Some(b) = backend() {
                    super::extreme_magnitudes(b.as_ref())
                }
            }
            #[test]
            fn duplicate_rows() {
                if let Some(b) = backend() {
                    super::duplicate_rows(b.as_ref())
                }
            }
            #[test]
            fn large_batch() {
                if let Some(b) = backend() {
                    super::large_batch(b.as_ref())
                }
            }
        }
    };
}

equivalence_suite!(
    cpu,
    "MARGIN_REQUIRE_CPU",
    Ok(Box::new(margin_cpu::CpuBackend::new()))
);
equivalence_suite!(wgpu, "MARGIN_REQUIRE_WGPU", margin_tests::wgpu_for_tests());
equivalence_suite!(
    cuda,
    "MARGIN_REQUIRE_CUDA",
    margin_cuda::CudaBackend::new(0).map(|b| Box::new(b) as Box<dyn HostBackend>)
);
