//! Every backend against the float64 reference: one generic body per property, instantiated for
//! each backend by `equivalence_suite!`. Sizes are deliberately not multiples of any tile or
//! workgroup size; N = 1, one class, all-distinct labels and D = 1 are included.

use margin_core::{Distance, HostBackend, Loss, LossKind, Metric};
use margin_tests::{Labels, all_loss_configs, assert_all, check_loss, check_pairwise};

fn metrics() -> Vec<Metric> {
    Distance::ALL
        .into_iter()
        .flat_map(|d| [Metric::new(d, true), Metric::new(d, false)])
        .filter(|m| m.distance != Distance::Cosine || m.normalize)
        .collect()
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
    assert_all(
        metrics()
            .into_iter()
            .flat_map(|m| shapes.map(|(nq, nr, d)| check_pairwise(b, m, nq, nr, d, 7 + nq as u64))),
    );
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
        check_pairwise(b, Metric::new(Distance::Euclidean, true), n, None, 16, 5),
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
