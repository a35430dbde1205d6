//! Criterion benches: the pairwise matrix and every loss (forward + backward) for N in
//! {256, 1024, 4096} and D in {128, 512}, 16 samples per label, on every backend that
//! `margin_benches::backends()` lists (CPU always; CUDA and wgpu when present, where N also
//! takes 16384 and 65536). Each sample is timed with `iter_custom` on the device path
//! (`margin_core::time_on_device`: inputs uploaded once per sample, every call ended by a device
//! synchronize, no host copies), so asynchronous GPU backends are measured as a trainer whose
//! embeddings live on the GPU uses them.
//!
//! Skipped as too slow for a routine run: smooth triplet (O(N³) arithmetic) from N = 4096 and
//! quadruplet beyond N = 16384.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use margin_benches::{Batch, backends, time_loss_on_device, time_pairwise_on_device};
use margin_core::{
    Distance, HostBackend, Loss, LossKind, Metric, Mining, QuadrupletConfig, TripletConfig,
};
use std::time::Duration;

const NS: [usize; 3] = [256, 1024, 4096];
/// Extra sizes for GPU backends.
const GPU_NS: [usize; 2] = [16384, 65536];

/// The N values to run on backend `b`: GPU backends (not a software adapter) also take GPU_NS.
fn sizes(b: &dyn HostBackend) -> Vec<usize> {
    let name = b.backend_name();
    let gpu = name.starts_with("cuda") || (name.starts_with("wgpu") && !name.contains("llvmpipe"));
    NS.into_iter()
        .chain(GPU_NS.into_iter().filter(|_| gpu))
        .collect()
}
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
    let up_to_16k: fn(usize) -> bool = |n| n <= 16384;
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
        (
            "quadruplet",
            Loss::default_for(LossKind::Quadruplet),
            up_to_16k,
        ),
        (
            "lifted-structure",
            Loss::default_for(LossKind::LiftedStructure),
            always,
        ),
        (
            "quadruplet-hard",
            Loss::Quadruplet(QuadrupletConfig {
                mining: Mining::Hard,
                ..Default::default()
            }),
            always,
        ),
        (
            "multi-similarity",
            Loss::default_for(LossKind::MultiSimilarity),
            always,
        ),
        ("circle", Loss::default_for(LossKind::Circle), always),
        ("nt-xent", Loss::default_for(LossKind::NTXent), always),
        ("supcon", Loss::default_for(LossKind::SupCon), always),
        (
            "generalized-lifted-structure",
            Loss::default_for(LossKind::GeneralizedLiftedStructure),
            always,
        ),
        (
            "proxy-anchor",
            Loss::default_for(LossKind::ProxyAnchor),
            always,
        ),
        ("proxy-nca", Loss::default_for(LossKind::ProxyNca), always),
        (
            "normalized-softmax",
            Loss::default_for(LossKind::NormalizedSoftmax),
            always,
        ),
        ("cosface", Loss::default_for(LossKind::CosFace), always),
    ]
}

fn bench_pairwise(c: &mut Criterion, b: &dyn HostBackend) {
    let mut g = c.benchmark_group(format!("{}/pairwise-euclidean", b.backend_name()));
    for n in sizes(b) {
        for d in DS {
            let batch = Batch::new(n, d, n / 16, 1);
            let metric = Metric::new(Distance::Euclidean, false);
            g.bench_with_input(BenchmarkId::new(format!("D{d}"), n), &batch, |bn, batch| {
                bn.iter_custom(|iters| {
                    time_pairwise_on_device(b, metric, batch, iters).expect("pairwise failed")
                })
            });
        }
    }
    g.finish();
}

fn bench_losses(c: &mut Criterion, b: &dyn HostBackend) {
    for (name, loss, run_at) in losses() {
        let mut g = c.benchmark_group(format!("{}/{name}", b.backend_name()));
        for n in sizes(b).into_iter().filter(|&n| run_at(n)) {
            for d in DS {
                let batch = Batch::new(n, d, n / 16, 2);
                g.bench_with_input(BenchmarkId::new(format!("D{d}"), n), &batch, |bn, batch| {
                    bn.iter_custom(|iters| {
                        time_loss_on_device(b, &loss, batch, iters).expect("loss failed")
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
