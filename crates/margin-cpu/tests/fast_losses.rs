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
        for (m, loss) in metrics(loss).into_iter().enumerate() {
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
    let backends = [CpuBackend::new(), CpuBackend::with_memory_budget(1)];
    let kinds = [
        LossKind::ProxyNca,
        LossKind::NormalizedSoftmax,
        LossKind::CosFace,
    ];
    // Every metric each accepts (cosface: cosine only, as PML's).
    let losses = kinds
        .into_iter()
        .flat_map(|k| metrics(margin_core::Loss::default_for(k)))
        .filter(|l| l.validate().is_ok());
    for (m, loss) in losses.enumerate() {
        for (s, &(n, d, c)) in shapes.iter().enumerate() {
            for b in &backends {
                check(b, &loss, n, d, c, (m * 10 + s) as u64);
            }
        }
    }
}
