//! The fast CPU backend's pairwise matrix against the reference, and its handling of bad input
//! on the device path (errors, never panics).

mod fast_common;

use fast_common::normal;
use margin_core::{
    Backend, DeviceLossInput, Distance, Embeddings, Loss, LossKind, MarginError, Metric,
};
use margin_cpu::{CpuBackend, ReferenceBackend};

#[test]
fn pairwise_matches_reference() {
    let (cpu, reference) = (CpuBackend::new(), ReferenceBackend);
    for (nq, nr, d) in [(1, 1, 1), (37, 5, 3), (130, 67, 40), (65, 65, 300)] {
        let q = normal(nq, d, 1);
        let r = normal(nr, d, 2);
        let (qe, re) = (
            Embeddings::new(&q, nq, d).unwrap(),
            Embeddings::new(&r, nr, d).unwrap(),
        );
        for distance in Distance::ALL {
            for normalize in [false, true] {
                let metric = Metric::new(distance, normalize);
                for reference_rows in [None, Some(re)] {
                    let got = cpu.pairwise(metric, qe, reference_rows).unwrap();
                    let want = reference.pairwise(metric, qe, reference_rows).unwrap();
                    assert_eq!(got.len(), want.len());
                    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-4 * scale,
                            "{g} vs {w} ({metric:?}, {nq}x{nr}x{d})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn device_path_rejects_bad_shapes() {
    let b = CpuBackend::new();
    let x = vec![0.5f32; 12];
    let labels = [0i64, 1, 0];
    let loss = Loss::default_for(LossKind::Triplet);
    let input = |n, d, labels| DeviceLossInput {
        embeddings: &x,
        n,
        d,
        labels,
        centers: None,
        reference: None,
    };
    let mut grad = vec![0.0f32; 12];
    let short_labels: &[i64] = &labels[..2];
    for (n, d, l) in [
        (3, 4, short_labels),
        (4, 4, &labels[..]),
        (0, 4, &[][..]),
        (3, 0, &labels[..]),
    ] {
        let r = b.loss_on_device(&loss, input(n, d, l), &mut grad, None);
        assert!(matches!(r, Err(MarginError::InvalidInput(_))), "{r:?}");
    }
    let mut small = vec![0.0f32; 3];
    let r = b.loss_on_device(&loss, input(3, 4, &labels), &mut small, None);
    assert!(matches!(r, Err(MarginError::InvalidInput(_))), "{r:?}");
    // Triplet-center without centers, and with a label outside 0..K.
    let tc = Loss::default_for(LossKind::TripletCenter);
    let r = b.loss_on_device(&tc, input(3, 4, &labels), &mut grad, None);
    assert!(matches!(r, Err(MarginError::InvalidInput(_))), "{r:?}");
    let c = vec![1.0f32; 8];
    let bad = [0i64, 2, 1];
    let r = b.loss_on_device(
        &tc,
        DeviceLossInput {
            centers: Some((&c, 2)),
            reference: None,
            ..input(3, 4, &bad)
        },
        &mut grad,
        None,
    );
    assert!(matches!(r, Err(MarginError::InvalidInput(_))), "{r:?}");
    // Non-finite margin.
    let mut nan = Loss::default_for(LossKind::Contrastive);
    if let Loss::Contrastive(c) = &mut nan {
        c.neg_margin = f64::NAN;
    }
    let r = b.loss_on_device(&nan, input(3, 4, &labels), &mut grad, None);
    assert!(matches!(r, Err(MarginError::InvalidConfig(_))), "{r:?}");
    // Pairwise with a short output buffer.
    let mut out = vec![0.0f32; 2];
    let r = b.pairwise_on_device(Metric::new(Distance::Dot, false), &x, 3, None, 4, &mut out);
    assert!(matches!(r, Err(MarginError::InvalidInput(_))), "{r:?}");
}

#[test]
fn non_finite_device_data_does_not_panic() {
    let b = CpuBackend::new();
    let mut x = normal(20, 3, 5);
    x[7] = f32::NAN;
    x[11] = f32::INFINITY;
    let labels: Vec<i64> = (0..20).map(|i| i % 4).collect();
    let mut grad = vec![0.0f32; 60];
    for kind in LossKind::ALL {
        let loss = Loss::default_for(kind);
        let c = normal(4, 3, 6);
        let input = DeviceLossInput {
            embeddings: &x,
            n: 20,
            d: 3,
            labels: &labels,
            centers: loss.needs_centers().then_some((&c, 4)),
            reference: None,
        };
        let _ = b.loss_on_device(&loss, input, &mut grad, None);
    }
}

#[test]
fn name_and_budget() {
    assert_eq!(CpuBackend::new().name(), "cpu");
    assert_eq!(CpuBackend::with_memory_budget(123).memory_budget(), 123);
}
