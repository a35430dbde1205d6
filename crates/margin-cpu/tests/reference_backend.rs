//! [`ReferenceBackend`] is [`evaluate`] / [`pairwise`] behind the [`Backend`] trait: f32 in, the
//! same f64 computation, f32 out.

use margin_core::{
    Backend, DeviceLossInput, Distance, Embeddings, Loss, LossInput, LossKind, Metric,
};
use margin_cpu::ReferenceBackend;
use margin_cpu::reference::{evaluate, pairwise};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

fn normal_f32(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| StandardNormal.sample(&mut rng)).collect()
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

#[test]
fn host_loss_equals_evaluate_rounded_to_f32() {
    let (n, d, k) = (9, 5, 3);
    let x = normal_f32(1, n * d);
    let c = normal_f32(2, k * d);
    let labels = [0, 1, 2, 0, 1, 2, 0, 1, 1];
    for kind in LossKind::ALL {
        let loss = Loss::default_for(kind);
        let centers = loss.needs_centers().then_some((c.as_slice(), k, d));
        let input = LossInput::from_slices(&x, n, d, &labels, centers).unwrap();
        let got = ReferenceBackend.loss(&loss, &input).unwrap();
        let wide_c = widen(&c);
        let want = evaluate(
            &loss,
            &widen(&x),
            n,
            d,
            &labels,
            loss.needs_centers().then_some((wide_c.as_slice(), k)),
        )
        .unwrap();
        assert_eq!(got.stats, want.stats, "{kind}");
        let rounded: Vec<f32> = want.grad.iter().map(|&g| g as f32).collect();
        assert_eq!(got.grad, rounded, "{kind}");
        let rounded_c = want
            .center_grad
            .map(|g| g.iter().map(|&v| v as f32).collect::<Vec<_>>());
        assert_eq!(got.center_grad, rounded_c, "{kind}");
    }
}

#[test]
fn device_path_overwrites_gradients() {
    let (n, d) = (6, 3);
    let x = normal_f32(3, n * d);
    let labels = [0, 0, 1, 1, 2, 2];
    let loss = Loss::default_for(LossKind::Triplet);
    let input = DeviceLossInput {
        embeddings: &x,
        n,
        d,
        labels: &labels,
        centers: None,
        reference: None,
    };
    let mut fresh = vec![0.0f32; n * d];
    let mut dirty = vec![123.0f32; n * d];
    let a = ReferenceBackend
        .loss_on_device(&loss, input, &mut fresh, None)
        .unwrap();
    let b = ReferenceBackend
        .loss_on_device(&loss, input, &mut dirty, None)
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(fresh, dirty);
}

#[test]
fn pairwise_through_the_backend() {
    let (nq, nr, d) = (4, 6, 3);
    let q = normal_f32(4, nq * d);
    let r = normal_f32(5, nr * d);
    for distance in Distance::ALL {
        for normalize in [false, true] {
            let metric = Metric::new(distance, normalize);
            let qe = Embeddings::new(&q, nq, d).unwrap();
            let re = Embeddings::new(&r, nr, d).unwrap();
            let got = ReferenceBackend.pairwise(metric, qe, Some(re)).unwrap();
            let want: Vec<f32> = pairwise(metric, &widen(&q), nq, &widen(&r), nr, d)
                .iter()
                .map(|&v| v as f32)
                .collect();
            assert_eq!(got, want, "{distance} {normalize}");
            let own = ReferenceBackend.pairwise(metric, qe, None).unwrap();
            assert_eq!(own.len(), nq * nq);
            if !metric.is_similarity() {
                // Self-distances are (clamped) ~0 and the matrix is symmetric.
                for i in 0..nq {
                    assert!(own[i * nq + i].abs() < 1e-6, "{metric:?}");
                    for j in 0..nq {
                        assert_eq!(own[i * nq + j], own[j * nq + i]);
                    }
                }
            }
        }
    }
}
