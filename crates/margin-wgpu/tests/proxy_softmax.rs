//! Proxy-nca, normalized-softmax and cosface on the wgpu backend (src/losses/proxy_softmax.rs,
//! proxy_softmax.wgsl) against the f64 reference: loss, active counts, the embeddings' and the
//! centers' gradients, for every distance each accepts with and without normalization, on label
//! patterns with one class, all-distinct and unused classes, with rows longer than one workgroup
//! (K > 256), other parameters, proxy-nca's dropped samples, in slabs of samples past the binding
//! limit, and without a center gradient.

mod common;

use common::centers::{Labels, assert_matches, draw_labels, inputs, want};
use common::{adapter_of, backend, normal, rng};
use margin_core::{
    Backend, CosFaceConfig, DeviceLossInput, DeviceReference, Distance, Loss, LossInput, LossKind,
    LossStats, MarginError, Metric, NormalizedSoftmaxConfig, ProxyNcaConfig,
};
use margin_wgpu::{Tiling, WgpuBackend};

/// `(n, d, k, labels)`: N in {1, 10, 37, 300}, K in {1, 3, 10, 300, 1000} (past 256 the row's
/// reductions loop over the workgroup).
const CASES: &[(usize, usize, usize, Labels)] = &[
    (1, 4, 1, Labels::Random),
    (1, 4, 3, Labels::Random),
    (10, 5, 10, Labels::AllDistinct),
    (37, 13, 3, Labels::Random),
    (37, 7, 10, Labels::FirstOf(4)),
    (40, 6, 1, Labels::OneClass),
    (29, 3, 3, Labels::OneClass),
    (300, 16, 10, Labels::Random),
    (37, 8, 300, Labels::Random),
    (300, 6, 300, Labels::AllDistinct),
    (10, 5, 1000, Labels::FirstOf(700)),
];

/// The three losses with their defaults on every distance each accepts, normalized and not
/// (cosine normalizes regardless; cosface takes cosine only, normalized-softmax normalized or
/// cosine only): 8 + 5 + 2.
fn configs() -> Vec<Loss> {
    let mut out = Vec::new();
    for kind in [
        LossKind::ProxyNca,
        LossKind::NormalizedSoftmax,
        LossKind::CosFace,
    ] {
        for distance in Distance::ALL {
            for on in [false, true] {
                let mut loss = Loss::default_for(kind);
                *loss.metric_mut() = Metric::new(distance, on);
                if loss.validate().is_ok() {
                    out.push(loss);
                }
            }
        }
    }
    out
}

/// Runs `loss` on `(x, c, y)` through the host API (which asks for the center gradient) and
/// checks it; returns the stats.
fn check_on(
    b: &WgpuBackend,
    loss: &Loss,
    (x, c, y): (&[f32], &[f32], &[i64]),
    d: usize,
) -> LossStats {
    let (n, k) = (x.len() / d, c.len() / d);
    let input = LossInput::from_slices(x, n, d, y, Some((c, k, d)))
        .unwrap_or_else(|e| panic!("input: {e}"));
    let got = b
        .loss(loss, &input)
        .unwrap_or_else(|e| panic!("{loss:?}: {e}"));
    let ctx = format!("{loss:?} n={n} d={d} k={k}");
    let cg = got.center_grad.as_deref();
    assert!(cg.is_some(), "{ctx}: no center gradient");
    assert_matches(&ctx, &got.stats, &got.grad, cg, &want(loss, x, c, y, d));
    got.stats
}

/// One random case of [`CASES`] shape.
fn check(b: &WgpuBackend, loss: &Loss, seed: u64, (n, d, k, kind): (usize, usize, usize, Labels)) {
    let (x, c, y) = inputs(seed, n, d, k, kind);
    let stats = check_on(b, loss, (&x, &c, &y), d);
    if loss.proxy_softmax().is_some_and(|f| !f.drop_underflow) {
        assert_eq!(
            stats.active_terms,
            [n as u64, 0],
            "{loss:?}: every sample counts"
        );
    }
}

#[test]
fn proxy_softmax_every_metric_and_label_pattern() {
    let Some(b) = backend() else { return };
    let losses = configs();
    assert_eq!(losses.len(), 15, "{losses:?}");
    for (i, loss) in losses.iter().enumerate() {
        for (j, &case) in CASES.iter().enumerate() {
            check(&b, loss, 100 * i as u64 + j as u64, case);
        }
    }
}

/// Other scales, temperatures and margins than PML's defaults (a zero and a negative cosface
/// margin).
#[test]
fn proxy_softmax_other_parameters() {
    let Some(b) = backend() else { return };
    let cosine = Metric::new(Distance::Cosine, true);
    let mut losses = Vec::new();
    for (margin, scale) in [(0.0, 64.0), (-0.2, 64.0), (0.35, 16.0), (0.5, 1.0)] {
        losses.push(Loss::CosFace(CosFaceConfig {
            metric: cosine,
            margin,
            scale,
        }));
    }
    for (temperature, metric) in [
        (0.5, cosine),
        (1.0, Metric::new(Distance::Dot, true)),
        (0.01, Metric::new(Distance::SquaredEuclidean, true)),
    ] {
        losses.push(Loss::NormalizedSoftmax(NormalizedSoftmaxConfig {
            metric,
            temperature,
        }));
    }
    for (softmax_scale, metric) in [
        (3.0, Metric::new(Distance::SquaredEuclidean, true)),
        (0.1, Metric::new(Distance::Euclidean, false)),
        (32.0, cosine),
    ] {
        losses.push(Loss::ProxyNca(ProxyNcaConfig {
            metric,
            softmax_scale,
        }));
    }
    for (i, loss) in losses.iter().enumerate() {
        check(&b, loss, 40 + i as u64, (45, 6, 4, Labels::Random));
        check(&b, loss, 60 + i as u64, (37, 5, 300, Labels::FirstOf(20)));
    }
}

/// Proxy-nca with a huge scale on raw distances: the samples whose target log-probability is
/// below ln 2^-1075 are left out of the mean (PML's float64 softmax gives them 0), so some
/// samples count and others not; the count must be the reference's. With every sample placed on
/// another class's center, none counts: loss 0 and zero gradients.
#[test]
fn proxy_nca_drops_underflowing_samples() {
    let Some(b) = backend() else { return };
    for (i, (distance, softmax_scale)) in [
        (Distance::Euclidean, 1e3),
        (Distance::SquaredEuclidean, 100.0),
        (Distance::Euclidean, 1e4),
        (Distance::Dot, 300.0),
    ]
    .into_iter()
    .enumerate()
    {
        let loss = Loss::ProxyNca(ProxyNcaConfig {
            metric: Metric::new(distance, false),
            softmax_scale,
        });
        for (j, case) in [
            (37, 4, 10, Labels::Random),
            (300, 4, 3, Labels::Random),
            (40, 4, 300, Labels::FirstOf(30)),
        ]
        .into_iter()
        .enumerate()
        {
            let (n, d, k, kind) = case;
            let (x, c, y) = inputs(800 + 10 * i as u64 + j as u64, n, d, k, kind);
            let stats = check_on(&b, &loss, (&x, &c, &y), d);
            let counted = stats.active_terms[0];
            println!("{loss:?} {case:?}: {counted} of {n} counted");
            assert!(
                0 < counted && counted < n as u64,
                "{loss:?} {case:?}: want some samples dropped and some not"
            );
        }
    }

    // Every sample next to the center after its own: all dropped.
    let (n, d, k) = (20, 4, 3);
    let mut r = rng(900);
    let c = normal(&mut r, k, d);
    let y = draw_labels(&mut r, n, k, Labels::Random);
    let noise = normal(&mut r, n, d);
    let x: Vec<f32> = (0..n * d)
        .map(|t| {
            let other = (y[t / d] as usize + 1) % k;
            c[other * d + t % d] + 0.01 * noise[t]
        })
        .collect();
    let loss = Loss::ProxyNca(ProxyNcaConfig {
        metric: Metric::new(Distance::Euclidean, false),
        softmax_scale: 1e3,
    });
    let stats = check_on(&b, &loss, (&x, &c, &y), d);
    assert_eq!(stats.active_terms, [0, 0]);
    assert_eq!(stats.loss, 0.0);
}

/// Every sample close to its own center at a large scale: its target probability is within
/// about e^-20 of 1, so the losses and every weight are tiny. The gradient must keep its relative
/// precision there: the kernel takes `log p_y` from a log1p of the other terms and the target's
/// weight as `expm1(log p_y)`, where `log(sum)` and `p_y - 1` would round to 0 against 1.
#[test]
fn confident_samples_keep_relative_precision() {
    let Some(b) = backend() else { return };
    let (n, d, k) = (10, 8, 5);
    let mut r = rng(950);
    let c = normal(&mut r, k, d);
    let y = draw_labels(&mut r, n, k, Labels::Random);
    let noise = normal(&mut r, n, d);
    let x: Vec<f32> = (0..n * d)
        .map(|t| 3.0 * c[y[t / d] as usize * d + t % d] + 0.3 * noise[t])
        .collect();
    let losses = [
        Loss::default_for(LossKind::CosFace),
        Loss::default_for(LossKind::NormalizedSoftmax),
        Loss::ProxyNca(ProxyNcaConfig {
            metric: Metric::new(Distance::SquaredEuclidean, true),
            softmax_scale: 16.0,
        }),
    ];
    for loss in &losses {
        let want = want(loss, &x, &c, &y, d);
        let per_sample = want.stats.loss;
        assert!(per_sample < 1e-5, "{loss:?}: not confident ({per_sample})");
        check_on(&b, loss, (&x, &c, &y), d);
    }
}

/// The samples run in slabs of rows of the N x K matrix: with the binding capped at 1 KiB (256
/// floats), K = 30 gives slabs of 8 samples (N = 37: five slabs, the last of 5), and with 2 KiB
/// K = 100 slabs of 5 (N = 67: fourteen); every loss and distance, both matrix-product variants,
/// and triplet-center, which shares the skeleton (centers.rs). The slab path must have run (its
/// rows are held) and no buffer may exceed the cap.
#[test]
fn proxy_softmax_in_slabs_of_samples() {
    let Some(b) = backend() else { return };
    let adapter = adapter_of(&b);
    let mut losses = configs();
    losses.push(Loss::default_for(LossKind::TripletCenter));
    for (cap, case) in [
        (1u64 << 10, (37, 3, 30, Labels::Random)),
        (2 << 10, (67, 3, 100, Labels::FirstOf(70))),
    ] {
        for tiling in [Tiling::Direct, Tiling::Workgroup] {
            let b = WgpuBackend::with_adapter_tiling(&adapter, tiling)
                .unwrap_or_else(|e| panic!("{adapter}: {e}"))
                .with_binding_cap(cap);
            for (i, loss) in losses.iter().enumerate() {
                check(&b, loss, 300 + i as u64, case);
            }
            let held = b.scratch_buffers();
            assert!(held.iter().any(|&(name, _)| name == "slab_xh"), "{held:?}");
            assert!(held.iter().all(|&(_, size)| size <= cap), "{held:?}");
        }
    }
}

/// On the device without a center gradient (the centers' product is skipped): the embeddings'
/// gradient and the stats are the same as with one, in one piece and in slabs, proxy-nca's late
/// scale included.
#[test]
fn proxy_softmax_without_center_gradient() {
    let Some(whole) = backend() else { return };
    let capped = WgpuBackend::with_adapter(&adapter_of(&whole))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_binding_cap(1 << 10);
    let mut losses = configs();
    losses.push(Loss::ProxyNca(ProxyNcaConfig {
        metric: Metric::new(Distance::Euclidean, false),
        softmax_scale: 1e3,
    }));
    for (b, case) in [
        (&whole, (37, 5, 10, Labels::Random)),
        (&capped, (37, 3, 30, Labels::FirstOf(6))),
    ] {
        for (i, loss) in losses.iter().enumerate() {
            let (n, d, k, kind) = case;
            let (x, c, y) = inputs(600 + i as u64, n, d, k, kind);
            let xb = b.upload(&x).unwrap();
            let cb = b.upload(&c).unwrap();
            let mut g = b.alloc_zeros(n * d).unwrap();
            let input = DeviceLossInput {
                embeddings: &xb,
                n,
                d,
                labels: &y,
                centers: Some((&cb, k)),
                reference: None,
            };
            let stats = b.loss_on_device(loss, input, &mut g, None).unwrap();
            let grad = b.download(&g).unwrap();
            let ctx = format!("{loss:?} {case:?}, no center gradient");
            assert_matches(&ctx, &stats, &grad, None, &want(loss, &x, &c, &y, d));
        }
    }
}

/// The centers are these losses' reference: a reference set is refused, not ignored; labels
/// outside `0..K` and missing centers are input errors.
#[test]
fn proxy_softmax_bad_inputs_are_errors() {
    let Some(b) = backend() else { return };
    let (n, d, k) = (6, 3, 3);
    let mut r = rng(9);
    let x = b.upload(&normal(&mut r, n, d)).unwrap();
    let c = b.upload(&normal(&mut r, k, d)).unwrap();
    let mut g = b.alloc_zeros(n * d).unwrap();
    let good = [0i64, 1, 2, 0, 1, 2];
    for kind in [
        LossKind::ProxyNca,
        LossKind::NormalizedSoftmax,
        LossKind::CosFace,
    ] {
        let loss = Loss::default_for(kind);
        let run = |labels: &[i64], centers, reference, g: &mut wgpu::Buffer| {
            let input = DeviceLossInput {
                embeddings: &x,
                n,
                d,
                labels,
                centers,
                reference,
            };
            b.loss_on_device(&loss, input, g, None)
        };
        let err = run(&[0, 1, 2, 0, 1, 3], Some((&c, k)), None, &mut g).unwrap_err();
        assert!(matches!(err, MarginError::InvalidInput(_)), "{err}");
        let err = run(&[0, 1, -1, 0, 1, 2], Some((&c, k)), None, &mut g).unwrap_err();
        assert!(matches!(err, MarginError::InvalidInput(_)), "{err}");
        let err = run(&good, None, None, &mut g).unwrap_err();
        assert!(matches!(err, MarginError::InvalidInput(_)), "{err}");
        let reference = DeviceReference {
            embeddings: &x,
            m: n,
            labels: &good,
            self_index: None,
        };
        let err = run(&good, Some((&c, k)), Some(reference), &mut g).unwrap_err();
        assert!(err.to_string().contains("reference"), "{err}");
        // And the same buffers with good labels run.
        run(&good, Some((&c, k)), None, &mut g).unwrap();
    }
}
