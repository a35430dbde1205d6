//! Rough stage timings on the test adapter (ignored by default: `cargo test -- --ignored`).

mod common;

use common::{backend, labels, normal, rng};
use margin_core::{Backend, DeviceLossInput, Distance, Loss, LossKind, Metric};
use std::time::Instant;

#[test]
#[ignore]
fn stage_timings() {
    let Some(b) = backend() else { return };
    let (n, d) = (2100, 16);
    let mut r = rng(1);
    let x = b.upload(&normal(&mut r, n, d)).unwrap();
    let y = labels(&mut r, n, 30);
    let mut out = b.alloc_zeros(n * n).unwrap();
    let mut g = b.alloc_zeros(n * d).unwrap();
    for _ in 0..2 {
        let t = Instant::now();
        b.pairwise_on_device(
            Metric::new(Distance::Euclidean, true),
            &x,
            n,
            None,
            d,
            &mut out,
        )
        .unwrap();
        b.synchronize().unwrap();
        println!("pairwise {n}x{n}x{d}: {:?}", t.elapsed());
    }
    for kind in [
        LossKind::Contrastive,
        LossKind::LiftedStructure,
        LossKind::NPair,
    ] {
        let t = Instant::now();
        let input = DeviceLossInput {
            embeddings: &x,
            n,
            d,
            labels: &y,
            centers: None,
            reference: None,
        };
        b.loss_on_device(&Loss::default_for(kind), input, &mut g, None)
            .unwrap();
        b.synchronize().unwrap();
        println!("{kind} n={n}: {:?}", t.elapsed());
    }
}

/// The cost of slabs (src/losses/slabs.rs): losses at N = 1200, D = 32 in one piece,
/// then with the binding capped so that its matrix takes 4 slabs of rows.
#[test]
#[ignore]
fn slab_timings() {
    let Some(b) = backend() else { return };
    let (n, d) = (1200, 32);
    let mut r = rng(2);
    let xs = normal(&mut r, n, d);
    let y = labels(&mut r, n, 30);
    let capped = common::backend()
        .unwrap()
        .with_binding_cap((n * n) as u64 + 64);
    for kind in [
        LossKind::Contrastive,
        LossKind::Triplet,
        LossKind::LiftedStructure,
        LossKind::MultiSimilarity,
        LossKind::SupCon,
        LossKind::Quadruplet,
    ] {
        let mut times = Vec::new();
        for backend in [&b, &capped] {
            let x = backend.upload(&xs).unwrap();
            let mut g = backend.alloc_zeros(n * d).unwrap();
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let input = DeviceLossInput {
                    embeddings: &x,
                    n,
                    d,
                    labels: &y,
                    centers: None,
                    reference: None,
                };
                let t = Instant::now();
                backend
                    .loss_on_device(&Loss::default_for(kind), input, &mut g, None)
                    .unwrap();
                backend.synchronize().unwrap();
                best = best.min(t.elapsed().as_secs_f64());
            }
            times.push(best);
        }
        println!(
            "{kind} n={n} d={d}: one piece {:.3} s, 4 slabs {:.3} s ({:.2}x)",
            times[0],
            times[1],
            times[1] / times[0]
        );
    }
}
