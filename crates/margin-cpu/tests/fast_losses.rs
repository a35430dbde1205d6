//! The fast CPU backend against the f64 reference: every loss x distance x normalize x
//! mining / smooth, on sizes that are multiples of nothing, odd label layouts, and a memory
//! budget so small that every anchor row is its own block.

mod fast_common;

use fast_common::{check, metrics, variants};
use margin_core::LossKind;
use margin_cpu::CpuBackend;

/// (n, d, classes) for the O(N³) losses.
const SHAPES: [(usize, usize, usize); 7] = [
    (1, 3, 1),
    (2, 1, 1),
    (2, 4, 2),
    (37, 5, 6),
    (37, 1, 4),
    (130, 17, 9),
    (41, 8, 41),
];

fn run_kind(kind: LossKind, shapes: &[(usize, usize, usize)]) {
    let backends = [CpuBackend::new(), CpuBackend::with_memory_budget(1)];
    for (v, loss) in variants(kind).into_iter().enumerate() {
        // Every metric the loss accepts (cosface: cosine only; normalized-softmax normalizes).
        let valid = metrics(loss).into_iter().filter(|l| l.validate().is_ok());
        for (m, loss) in valid.enumerate() {
            for (s, &(n, d, c)) in shapes.iter().enumerate() {
                let seed = (v * 100 + m * 10 + s) as u64;
                for b in &backends {
                    check(b, &loss, n, d, c, seed);
                }
            }
        }
    }
}

#[test]
fn contrastive_matches_reference() {
    run_kind(LossKind::Contrastive, &SHAPES);
}

#[test]
fn triplet_matches_reference() {
    run_kind(LossKind::Triplet, &SHAPES);
}

#[test]
fn lifted_structure_matches_reference() {
    run_kind(LossKind::LiftedStructure, &SHAPES);
}

#[test]
fn n_pair_matches_reference() {
    run_kind(LossKind::NPair, &SHAPES);
}

#[test]
fn triplet_center_matches_reference() {
    run_kind(
        LossKind::TripletCenter,
        &[(1, 3, 2), (2, 1, 2), (37, 5, 6), (130, 17, 9), (41, 8, 41)],
    );
}

#[test]
fn quadruplet_matches_reference() {
    run_kind(
        LossKind::Quadruplet,
        &[
            (1, 3, 1),
            (2, 1, 2),
            (13, 4, 3),
            (37, 5, 6),
            (29, 1, 4),
            (23, 6, 23),
        ],
    );
}

#[test]
fn larger_batch_all_triplet_and_quadruplet() {
    let b = CpuBackend::with_memory_budget(64 * 1024);
    for loss in metrics(margin_core::Loss::default_for(LossKind::Triplet)) {
        check(&b, &loss, 300, 64, 12, 7);
    }
    for loss in metrics(margin_core::Loss::default_for(LossKind::Quadruplet)) {
        check(&b, &loss, 44, 32, 5, 8);
    }
}

/// The SPEC's precision bound at the largest sizes it names (slow: the reference is O(N³)).
/// Run with `cargo test --release -p margin-cpu --test fast_losses -- --ignored`.
#[test]
#[ignore]
fn large_sizes_within_spec_bounds() {
    let b = CpuBackend::new();
    let contrastive = margin_core::Loss::default_for(LossKind::Contrastive);
    check(&b, &contrastive, 4096, 1024, 256, 11);
    for loss in metrics(margin_core::Loss::default_for(LossKind::Triplet)) {
        check(&b, &loss, 1024, 1024, 64, 12);
    }
    let lifted = margin_core::Loss::default_for(LossKind::LiftedStructure);
    check(&b, &lifted, 1024, 512, 64, 13);
    let npair = margin_core::Loss::default_for(LossKind::NPair);
    check(&b, &npair, 4096, 1024, 2048, 14);
}

#[test]
fn proxy_anchor_matches_reference() {
    run_kind(
        LossKind::ProxyAnchor,
        &[
            (1, 3, 1),
            (2, 1, 2),
            (37, 5, 6),
            (130, 17, 9),
            (41, 8, 41),
            (300, 16, 10),
        ],
    );
}

#[test]
fn proxy_softmax_losses_match_reference() {
    let shapes = [
        (1, 3, 1),
        (2, 1, 2),
        (37, 5, 6),
        (130, 17, 9),
        (41, 8, 41),
        (300, 16, 10),
    ];
    for kind in [
        LossKind::ProxyNca,
        LossKind::NormalizedSoftmax,
        LossKind::CosFace,
    ] {
        run_kind(kind, &shapes);
    }
}

/// Every sample close to its own class weight at cosface's scale 64: the target probability is
/// within about e^-20 of 1, so each weight is tiny and `p_y − 1` would round to 0 in f32; the
/// target's weight comes from `expm1(log p_y)` and keeps its relative precision.
#[test]
fn confident_proxy_softmax_rows_keep_their_gradient() {
    use margin_core::{Backend, LossInput};
    let (n, d, k) = (50, 16, 10);
    let c = fast_common::normal(k, d, 5);
    let noise = fast_common::normal(n, d, 6);
    let y: Vec<i64> = (0..n as i64).map(|i| i % k as i64).collect();
    let x: Vec<f32> = (0..n * d)
        .map(|t| c[(y[t / d] as usize) * d + t % d] + 0.05 * noise[t])
        .collect();
    for kind in [
        LossKind::CosFace,
        LossKind::NormalizedSoftmax,
        LossKind::ProxyNca,
    ] {
        let mut loss = margin_core::Loss::default_for(kind);
        if let margin_core::Loss::ProxyNca(cfg) = &mut loss {
            cfg.softmax_scale = 16.0;
        }
        let input = LossInput::from_slices(&x, n, d, &y, Some((&c[..], k, d))).unwrap();
        let got = CpuBackend::new().loss(&loss, &input).unwrap();
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let c64: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
        let want = margin_cpu::reference::evaluate(&loss, &x64, n, d, &y, Some((&c64, k))).unwrap();
        let rel = |a: &[f32], b: &[f64]| {
            let num: f64 = a
                .iter()
                .zip(b)
                .map(|(&p, q)| (f64::from(p) - q).powi(2))
                .sum();
            let den: f64 = b.iter().map(|q| q * q).sum();
            (num / den).sqrt()
        };
        let (l, lr) = (got.stats.loss, want.stats.loss);
        assert!(
            lr > 0.0 && lr < 1e-3,
            "{kind}: reference loss {lr} is not a confident case"
        );
        assert!((l - lr).abs() <= 1e-4 * lr, "{kind}: loss {l} vs {lr}");
        let g = rel(&got.grad, &want.grad);
        assert!(g <= 1e-3, "{kind}: grad rel err {g}");
        let cg = rel(
            got.center_grad.as_deref().unwrap(),
            want.center_grad.as_deref().unwrap(),
        );
        assert!(cg <= 1e-3, "{kind}: center grad rel err {cg}");
    }
}
