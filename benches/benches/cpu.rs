//! Criterion benches: the pairwise matrix and every loss (forward + backward) for N in
//! {256, 1024, 4096} and D in {128, 512}, 16 samples per label, on every backend that
//! `margin_benches::backends()` lists (the CPU backend for now). Each sample is timed with
//! `iter_custom` and a `host_synchronize()` before the clock stops, so asynchronous GPU
//! backends are measured honestly once they are added.
//!
//! Skipped as too slow for a routine run: smooth triplet (O(N³) arithmetic) and quadruplet at
//! N = 4096.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use margin_benches::{Batch, backends, time_loss, time_pairwise};
use margin_core::{Distance, HostBackend, Loss, LossKind, Metric, Mining, TripletConfig};
use std::time::Duration;

const NS: [usize; 3] = [256, 1024, 4096];
const DS: [usize; 2] = [128, 512];

/// A loss to bench: a short name, the config, and whether to run it at a given N.
type Case = (&'static str, Loss, fn(usize) -> bool);

/// The losses to bench.
fn losses() -> Vec<Case> {
    let trip = |mining, smooth| {
        Loss::Triplet(TripletConfig {
            mining,
            smooth,
            ..Default::default()
        })
    };
    let always: fn(usize) -> bool = |_| true;
    let small: fn(usize) -> bool = |n| n < 4096;
    vec![
        (
            "contrastive",
            Loss::default_for(LossKind::Contrastive),
            always,
        ),
        ("triplet-all", trip(Mining::All, false), always),
        ("triplet-hard", trip(Mining::Hard, false), always),
        ("triplet-semihard", trip(Mining::SemiHard, false), always),
        ("triplet-smooth", trip(Mining::All, true), small),
        (
            "triplet-center",
            Loss::default_for(LossKind::TripletCenter),
            always,
        ),
        ("n-pair", Loss::default_for(LossKind::NPair), always),
        ("quadruplet", Loss::default_for(LossKind::Quadruplet), small),
        (
            "lifted-structure",
            Loss::default_for(LossKind::LiftedStructure),
            always,
        ),
    ]
}

fn bench_pairwise(c: &mut Criterion, b: &dyn HostBackend) {
    let mut g = c.benchmark_group(format!("{}/pairwise-euclidean", b.backend_name()));
    for n in NS {
        for d in DS {
            let batch = Batch::new(n, d, n / 16, 1);
            let metric = Metric::new(Distance::Euclidean, false);
            g.bench_with_input(BenchmarkId::new(format!("D{d}"), n), &batch, |bn, batch| {
                bn.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| time_pairwise(b, metric, batch).expect("pairwise failed"))
                        .sum()
                })
            });
        }
    }
    g.finish();
}

fn bench_losses(c: &mut Criterion, b: &dyn HostBackend) {
    for (name, loss, run_at) in losses() {
        let mut g = c.benchmark_group(format!("{}/{name}", b.backend_name()));
        for n in NS.into_iter().filter(|&n| run_at(n)) {
            for d in DS {
                let batch = Batch::new(n, d, n / 16, 2);
                g.bench_with_input(BenchmarkId::new(format!("D{d}"), n), &batch, |bn, batch| {
                    bn.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| time_loss(b, &loss, batch).expect("loss failed"))
                            .sum()
                    })
                });
            }
        }
        g.finish();
    }
}

fn all(c: &mut Criterion) {
    for b in backends() {
        bench_pairwise(c, b.as_ref());
        bench_losses(c, b.as_ref());
    }
}

criterion_group! {
    name = benches;
    // Few, short samples: the slowest cases take seconds each.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = all
}
criterion_main!(benches);
