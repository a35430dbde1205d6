//! Proxy-anchor on the wgpu backend (src/losses/proxy_anchor.rs, split_lse.wgsl mode 3) against
//! the f64 reference: loss, active counts, the embeddings' and the proxies' gradients, for every
//! distance with and without normalization, on the label patterns where its per-proxy sums are
//! empty or degenerate, in slabs of proxies past the binding limit, and without a center gradient.

mod common;

use common::centers::{Labels, assert_matches, inputs, want};
use common::{adapter_of, backend, normal, rng};
use margin_core::{
    Backend, DeviceLossInput, DeviceReference, Distance, Loss, LossInput, LossKind, MarginError,
    Metric, ProxyAnchorConfig,
};
use margin_wgpu::{Tiling, WgpuBackend};

/// `(n, d, k, labels)`: N not a multiple of the workgroup size, K in {1, 3, 10}.
const CASES: &[(usize, usize, usize, Labels)] = &[
    (1, 4, 1, Labels::Random),
    (1, 4, 3, Labels::Random),
    (37, 13, 3, Labels::Random),
    (37, 5, 10, Labels::Random),
    (300, 16, 10, Labels::Random),
    (40, 6, 3, Labels::OneClass),
    (29, 3, 1, Labels::OneClass),
    (10, 5, 10, Labels::AllDistinct),
    (37, 7, 10, Labels::FirstOf(4)),
];

/// Proxy-anchor with PML's defaults (alpha 32, margin 0.1) on `metric`.
fn proxy_anchor(metric: Metric) -> Loss {
    Loss::ProxyAnchor(ProxyAnchorConfig {
        metric,
        ..Default::default()
    })
}

/// Every distance, normalized and not (cosine normalizes regardless).
fn metrics() -> Vec<Metric> {
    Distance::ALL
        .into_iter()
        .flat_map(|d| [false, true].map(|on| Metric::new(d, on)))
        .collect()
}

/// Runs one case through the host API (which asks for the center gradient) and checks it.
fn check(
    b: &WgpuBackend,
    metric: Metric,
    seed: u64,
    (n, d, k, kind): (usize, usize, usize, Labels),
) {
    let loss = proxy_anchor(metric);
    let (x, c, y) = inputs(seed, n, d, k, kind);
    let input = LossInput::from_slices(&x, n, d, &y, Some((&c, k, d)))
        .unwrap_or_else(|e| panic!("input: {e}"));
    let got = b
        .loss(&loss, &input)
        .unwrap_or_else(|e| panic!("{loss:?}: {e}"));
    let ctx = format!("{metric:?} n={n} d={d} k={k} {kind:?}");
    let cg = got.center_grad.as_deref();
    assert!(cg.is_some(), "{ctx}: no center gradient");
    assert_matches(&ctx, &got.stats, &got.grad, cg, &want(&loss, &x, &c, &y, d));
}

#[test]
fn proxy_anchor_every_metric_and_label_pattern() {
    let Some(b) = backend() else { return };
    for (i, metric) in metrics().into_iter().enumerate() {
        for (j, &case) in CASES.iter().enumerate() {
            check(&b, metric, 100 * i as u64 + j as u64, case);
        }
    }
}

/// Other scales and margins than PML's defaults, including a negative margin.
#[test]
fn proxy_anchor_other_parameters() {
    let Some(b) = backend() else { return };
    for (alpha, margin) in [(1.0, 0.0), (8.0, 0.5), (64.0, -0.2)] {
        for metric in [
            Metric::new(Distance::Cosine, true),
            Metric::new(Distance::SquaredEuclidean, false),
        ] {
            let loss = Loss::ProxyAnchor(ProxyAnchorConfig {
                metric,
                alpha,
                margin,
            });
            let (n, d, k) = (45, 6, 4);
            let (x, c, y) = inputs(7, n, d, k, Labels::Random);
            let input = LossInput::from_slices(&x, n, d, &y, Some((&c, k, d))).unwrap();
            let got = b.loss(&loss, &input).unwrap();
            let ctx = format!("{loss:?}");
            let w = want(&loss, &x, &c, &y, d);
            assert_matches(&ctx, &got.stats, &got.grad, got.center_grad.as_deref(), &w);
        }
    }
}

/// The proxies run in slabs of rows of the K x N matrix: with the binding capped at 512 B (128
/// floats), 37 samples take slabs of 3 proxies (K = 10: four slabs, the last of one) and with
/// 1 KiB 67 samples the same; every distance, both matrix-product variants. The slab path must
/// have run (its rows are held) and no buffer may exceed the cap.
#[test]
fn proxy_anchor_in_slabs_of_proxies() {
    let Some(b) = backend() else { return };
    let adapter = adapter_of(&b);
    for (cap, case) in [
        (512u64, (37, 3, 10, Labels::Random)),
        (1 << 10, (67, 3, 10, Labels::FirstOf(7))),
    ] {
        for tiling in [Tiling::Direct, Tiling::Workgroup] {
            let b = WgpuBackend::with_adapter_tiling(&adapter, tiling)
                .unwrap_or_else(|e| panic!("{adapter}: {e}"))
                .with_binding_cap(cap);
            for (i, metric) in metrics().into_iter().enumerate() {
                check(&b, metric, 300 + i as u64, case);
            }
            let held = b.scratch_buffers();
            assert!(held.iter().any(|&(name, _)| name == "slab_xh"), "{held:?}");
            assert!(held.iter().all(|&(_, size)| size <= cap), "{held:?}");
        }
    }
}

/// On the device without a center gradient (the proxies' product is skipped): the embeddings'
/// gradient and the stats are the same as with one, in one piece and in slabs.
#[test]
fn proxy_anchor_without_center_gradient() {
    let Some(whole) = backend() else { return };
    let capped = WgpuBackend::with_adapter(&adapter_of(&whole))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_binding_cap(512);
    for (b, case) in [
        (&whole, (37, 5, 10, Labels::Random)),
        (&capped, (37, 3, 10, Labels::FirstOf(6))),
    ] {
        for (i, metric) in metrics().into_iter().enumerate() {
            let loss = proxy_anchor(metric);
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
            let stats = b.loss_on_device(&loss, input, &mut g, None).unwrap();
            let grad = b.download(&g).unwrap();
            let ctx = format!("{metric:?} {case:?}, no center gradient");
            assert_matches(&ctx, &stats, &grad, None, &want(&loss, &x, &c, &y, d));
        }
    }
}

/// Proxy-anchor's proxies are its reference: a reference set is refused, not ignored; labels
/// outside `0..K` and missing centers are input errors.
#[test]
fn proxy_anchor_bad_inputs_are_errors() {
    let Some(b) = backend() else { return };
    let (n, d, k) = (6, 3, 3);
    let mut r = rng(9);
    let x = b.upload(&normal(&mut r, n, d)).unwrap();
    let c = b.upload(&normal(&mut r, k, d)).unwrap();
    let mut g = b.alloc_zeros(n * d).unwrap();
    let loss = Loss::default_for(LossKind::ProxyAnchor);
    let good = [0i64, 1, 2, 0, 1, 2];
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
