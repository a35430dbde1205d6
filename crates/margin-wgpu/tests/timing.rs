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
