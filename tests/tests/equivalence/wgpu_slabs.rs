//! The wgpu backend's losses beyond one storage binding (crates/margin-wgpu/src/losses/slabs.rs):
//! with the binding capped at 4 KiB (1024 floats), a 67-row loss matrix takes five slabs of rows
//! (15, 15, 15, 15, 7) and a 40-row one two. Every configuration of every loss of the square path
//! must then match the f64 reference as it does in one piece, square and against a reference set:
//! the row-local losses and lifted structure at 4 KiB, the quadruplet (batch-all and hard) at
//! 2 KiB, since its f64 reference is quartic in N. N-pair's anchors and triplet-center's samples
//! run in slabs the same way.

use margin_core::{Backend, HostBackend, Loss, LossKind};
use margin_tests::ref_random::{RefLayout, check_loss_with_reference, reference_loss_configs};
use margin_tests::{Labels, all_loss_configs, assert_all, check_loss, concrete_or_skip};
use margin_wgpu::{Tiling, WgpuBackend};

/// The binding cap: far below every case's N x M matrix, above its N x D rows.
const CAP: u64 = 4 << 10;
/// The same for the quadruplet's smaller cases (its positive-pair lists, O(positive pairs),
/// must still fit: many classes).
const QUAD_CAP: u64 = 2 << 10;

/// The losses whose weights in a row read only that row (src/losses/row_local.rs).
const ROW_LOCAL: [LossKind; 7] = [
    LossKind::Contrastive,
    LossKind::Triplet,
    LossKind::MultiSimilarity,
    LossKind::Circle,
    LossKind::NTXent,
    LossKind::SupCon,
    LossKind::GeneralizedLiftedStructure,
];

/// The test adapter with its binding capped, once per matrix-product variant (the GPU one, with
/// workgroup memory, and the direct one CPU adapters get), or none when skipping.
fn capped(cap: u64) -> Vec<WgpuBackend> {
    let Some(b) = concrete_or_skip(margin_tests::wgpu_concrete(), "MARGIN_REQUIRE_WGPU") else {
        return Vec::new();
    };
    // name() is "wgpu (<adapter name>, <backend>)".
    let name = b.name();
    let adapter = name
        .strip_prefix("wgpu (")
        .and_then(|s| s.rsplit_once(", "))
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| panic!("unexpected backend name {name}"));
    [Tiling::Direct, Tiling::Workgroup]
        .map(|t| {
            WgpuBackend::with_adapter_tiling(&adapter, t)
                .unwrap_or_else(|e| panic!("{adapter}: {e}"))
                .with_binding_cap(cap)
        })
        .into()
}

fn row_local(configs: Vec<Loss>) -> Vec<Loss> {
    configs
        .into_iter()
        .filter(|l| ROW_LOCAL.contains(&l.kind()))
        .collect()
}

#[test]
fn row_local_losses_and_lifted_in_slabs_match_the_reference() {
    for b in capped(CAP) {
        row_local_square_cases(&b);
    }
}

fn row_local_square_cases(b: &WgpuBackend) {
    let mut configs = row_local(all_loss_configs());
    let lifted = all_loss_configs().into_iter();
    configs.extend(lifted.filter(|l| l.kind() == LossKind::LiftedStructure));
    assert!(configs.len() > 30, "{} configurations", configs.len());
    let shapes = [
        (67, 5, Labels::Classes(5)),
        (40, 3, Labels::OneClass),
        (37, 4, Labels::AllDistinct),
    ];
    assert_all(configs.iter().enumerate().flat_map(|(i, loss)| {
        let b = b as &dyn HostBackend;
        shapes.map(|(n, d, labels)| check_loss(b, loss, n, d, labels, 500 + i as u64))
    }));
    assert_slabbed(b, CAP);
}

/// The slab path ran (its slab of rows is held), and no buffer exceeds the cap.
fn assert_slabbed(b: &WgpuBackend, cap: u64) {
    let held = b.scratch_buffers();
    assert!(held.iter().any(|&(name, _)| name == "slab_xh"), "{held:?}");
    assert!(held.iter().all(|&(_, size)| size <= cap), "{held:?}");
}

/// The losses off the square path: n-pair's k x k matrix (anchors against positives) in slabs
/// of anchors (130 rows in 60 classes: k = 60, slabs of 17; 80 rows in 40 classes: k = 40, slabs
/// of 25), triplet-center's N x K matrix in slabs of samples, with the centers' gradient (130 x 20:
/// slabs of 51; 67 x 40: slabs of 25).
#[test]
fn npair_and_triplet_center_in_slabs_match_the_reference() {
    let cases = [
        (LossKind::NPair, [(130, 5, 60), (80, 4, 40)]),
        (LossKind::TripletCenter, [(130, 5, 20), (67, 4, 40)]),
    ];
    for b in capped(CAP) {
        let hb = &b as &dyn HostBackend;
        for (kind, shapes) in cases {
            let configs: Vec<Loss> = all_loss_configs()
                .into_iter()
                .filter(|l| l.kind() == kind)
                .collect();
            assert!(configs.len() >= 5, "{configs:?}");
            assert_all(configs.iter().enumerate().flat_map(|(i, loss)| {
                shapes.map(|(n, d, classes)| {
                    check_loss(hb, loss, n, d, Labels::Classes(classes), 800 + i as u64)
                })
            }));
        }
        assert_slabbed(&b, CAP);
    }
}

fn quadruplets(configs: Vec<Loss>) -> Vec<Loss> {
    let quadruplet = |l: &Loss| l.kind() == LossKind::Quadruplet;
    configs.into_iter().filter(quadruplet).collect()
}

/// Slabs of 12 rows (40 x 40), 14 (36 x 36), 20 (25 x 25), 18 and 17 (20 x 27, 20 x 30 against
/// reference sets), batch-all and hard.
#[test]
fn quadruplet_in_slabs_matches_the_reference() {
    for b in capped(QUAD_CAP) {
        let hb = &b as &dyn HostBackend;
        let square = quadruplets(all_loss_configs());
        assert!(square.len() >= 10, "{square:?}");
        let shapes = [
            (40, 4, Labels::Classes(8)),
            (36, 4, Labels::Classes(6)),
            (25, 3, Labels::OneClass),
            (25, 3, Labels::AllDistinct),
        ];
        assert_all(square.iter().enumerate().flat_map(|(i, loss)| {
            shapes.map(|(n, d, labels)| check_loss(hb, loss, n, d, labels, 900 + i as u64))
        }));
        let layouts = [
            RefLayout::Memory { extra: 7 },
            RefLayout::Independent { m: 30, classes: 4 },
        ];
        let against = quadruplets(reference_loss_configs());
        assert_all(against.iter().enumerate().flat_map(|(i, loss)| {
            layouts.map(|layout| {
                let labels = Labels::Classes(3);
                check_loss_with_reference(hb, loss, 20, 4, labels, layout, 950 + i as u64)
            })
        }));
        assert_slabbed(&b, QUAD_CAP);
    }
}

#[test]
fn reference_sets_in_slabs_match_the_reference() {
    for b in capped(CAP) {
        reference_set_cases(&b);
    }
}

fn reference_set_cases(b: &WgpuBackend) {
    let mut configs = row_local(reference_loss_configs());
    let lifted = reference_loss_configs().into_iter();
    configs.extend(lifted.filter(|l| l.kind() == LossKind::LiftedStructure));
    let layouts = [
        (50, RefLayout::Memory { extra: 13 }),
        (45, RefLayout::Independent { m: 70, classes: 4 }),
    ];
    assert_all(configs.iter().enumerate().flat_map(|(i, loss)| {
        let b = b as &dyn HostBackend;
        layouts.map(|(n, layout)| {
            let labels = Labels::Classes(3);
            check_loss_with_reference(b, loss, n, 4, labels, layout, 700 + i as u64)
        })
    }));
    assert_slabbed(b, CAP);
}
