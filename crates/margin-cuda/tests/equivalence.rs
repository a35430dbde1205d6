//! CUDA against the float64 reference for every loss x distance x normalize x mining, on odd
//! sizes and edge cases (N = 1, one class, all distinct, D = 1), the losses with centers on
//! their own K (one proxy, proxies without samples), plus large-N cases against the fast CPU
//! backend (every loss, including the log-sum-exp family and hard-mined quadruplets, on rows
//! longer than a block). Without a usable GPU each test prints "skipping: <reason>" and passes.

mod cuda_common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use cuda_common::{against_oracle, cuda_or_skip, rel_norm_err};
use margin_core::{
    Backend, Distance, Embeddings, HostBackend, Loss, LossInput, LossKind, MarginError, Metric,
    Mining, ProxyNcaConfig,
};
use margin_cpu::{CpuBackend, ReferenceBackend};
use margin_cuda::CudaBackend;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use support::compare::compare_outputs;
use support::losses::every_config;

fn normal(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// `(n, d, classes)`: odd sizes and the edge cases of the brief.
const SHAPES: &[(usize, usize, usize)] = &[
    (37, 5, 4),   // odd sizes
    (1, 3, 1),    // N = 1
    (9, 4, 1),    // one class
    (11, 6, 11),  // all distinct
    (19, 1, 3),   // D = 1
    (70, 33, 2),  // two classes, tile edges
    (130, 70, 7), // several tiles
];

/// Every loss x distance x normalize x mining the SPEC allows.
fn losses() -> Vec<Loss> {
    every_config()
}

fn compare(
    cuda: &CudaBackend,
    oracle: &dyn HostBackend,
    loss: &Loss,
    (n, d, classes): (usize, usize, usize),
    seed: u64,
) -> Result<(), String> {
    let x = normal(n * d, seed);
    let labels: Vec<i64> = (0..n)
        .map(|i| ((i * 7 + 3) % classes) as i64 * 10 - 5)
        .collect();
    let k = classes.max(2);
    let centers = normal(k * d, seed + 1);
    let tc_labels: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    let (labels, c) = if loss.needs_centers() {
        (
            tc_labels,
            Some(Embeddings::named(&centers, k, d, "centers").map_err(|e| e.to_string())?),
        )
    } else {
        (labels, None)
    };
    let emb = Embeddings::new(&x, n, d).map_err(|e| e.to_string())?;
    let input = LossInput::new(emb, &labels, c).map_err(|e| e.to_string())?;
    check(
        cuda,
        oracle,
        loss,
        &input,
        &format!("n={n} d={d} classes={classes}"),
    )
}

/// CUDA against `oracle` on one input under the SPEC's bounds, with the shared allowance for a
/// term that f32 moved across a selection boundary (tests/support/compare.rs), as every
/// backend's suite applies them; the center gradient too when there are centers.
fn check(
    cuda: &CudaBackend,
    oracle: &dyn HostBackend,
    loss: &Loss,
    input: &LossInput<'_>,
    case: &str,
) -> Result<(), String> {
    let c = against_oracle(cuda, oracle, loss, input)?;
    if input.centers.is_some() && c.got.center_grad.is_none() {
        return Err(format!("{loss:?} {case}: no center gradient"));
    }
    compare_outputs(
        &c.got,
        &c.want,
        &format!(
            "{loss:?} {case}: {}, stats {:?} vs {:?}",
            c.summary(),
            c.got.stats,
            c.want.stats
        ),
    )
}

#[test]
fn every_loss_matches_the_reference() {
    let Some(cuda) = cuda_or_skip() else { return };
    let mut failures = Vec::new();
    let mut cases = 0;
    for (si, shape) in SHAPES.iter().enumerate() {
        for (li, loss) in losses().iter().enumerate() {
            cases += 1;
            if let Err(e) = compare(
                &cuda,
                &ReferenceBackend,
                loss,
                *shape,
                (si * 1000 + li) as u64,
            ) {
                failures.push(e);
            }
        }
    }
    println!("{} of {cases} cases failed", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The losses with centers (triplet-center, proxy-anchor, and the proxy-softmax family:
/// proxy-nca, normalized-softmax, cosface) with K apart from the classes: one proxy, one class
/// among several proxies, all distinct, proxies that no sample has, and more rows than a block's
/// 256 threads (proxy-anchor's kernel strides down its columns) with K past one block's 32
/// proxies. Every distance x normalize that the loss validates; the center gradient too.
#[test]
fn center_losses_match_the_reference() {
    let Some(cuda) = cuda_or_skip() else { return };
    type Labels = fn(usize) -> i64;
    let shapes: [(usize, usize, usize, Labels); 8] = [
        (37, 5, 1, |_| 0),                   // one proxy
        (37, 5, 3, |i| (i % 3) as i64),      // N not a multiple of anything
        (9, 4, 3, |_| 2),                    // one class: its proxy has no negative
        (10, 6, 10, |i| i as i64),           // all distinct
        (19, 4, 10, |i| 2 * (i % 5) as i64), // odd proxies without positives
        (23, 3, 10, |i| (i * 3 % 10) as i64),
        (300, 8, 3, |i| (i % 2) as i64), // proxy 2 without positives, 300 rows
        (45, 7, 40, |i| (i * 7 % 40) as i64), // two blocks of 32 proxies
    ];
    let mut failures = Vec::new();
    let mut cases = 0;
    let center_losses: Vec<Loss> = losses().into_iter().filter(Loss::needs_centers).collect();
    for (si, &(n, d, k, label)) in shapes.iter().enumerate() {
        let x = normal(n * d, 900 + si as u64);
        let c = normal(k * d, 950 + si as u64);
        let labels: Vec<i64> = (0..n).map(label).collect();
        for loss in center_losses.iter().filter(|l| k >= l.min_centers()) {
            cases += 1;
            let result = Embeddings::new(&x, n, d)
                .and_then(|emb| {
                    let centers = Embeddings::named(&c, k, d, "centers")?;
                    LossInput::new(emb, &labels, Some(centers))
                })
                .map_err(|e| e.to_string())
                .and_then(|input| {
                    check(
                        &cuda,
                        &ReferenceBackend,
                        loss,
                        &input,
                        &format!("n={n} d={d} k={k}"),
                    )
                });
            if let Err(e) = result {
                failures.push(e);
            }
        }
    }
    println!("{} of {cases} cases failed", failures.len());
    let of_kind = |kind: LossKind| center_losses.iter().filter(|l| l.kind() == kind).count();
    let proxy = of_kind(LossKind::ProxyAnchor);
    assert!(
        proxy >= 8 && cases >= 8 * proxy,
        "{cases} cases, {proxy} proxy-anchor configurations"
    );
    // The proxy-softmax family, with as many configurations as margin-core validates (cosface
    // is cosine only, normalized-softmax always normalizes): each must be swept.
    for kind in [
        LossKind::ProxyNca,
        LossKind::NormalizedSoftmax,
        LossKind::CosFace,
    ] {
        assert!(
            of_kind(kind) >= 1,
            "no {kind} configuration among {cases} cases"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Proxy-nca leaves out a sample whose target probability underflows f64 (`log p < ln 2^−1075`,
/// as PML): with a large softmax scale on raw distances some rows drop and others count, so the
/// mean's divisor is only known on the device after every row (centers.rs scales the weights
/// by it there). Squared euclidean at scale 100 (gaps of a few units: logits hundreds apart)
/// and euclidean at 1e4 (only rows whose own proxy is nearest, or nearly, count), plus a batch
/// where every row drops (loss 0, zero gradients). Each case must drop some rows but not all,
/// with the same count as the reference.
#[test]
fn center_losses_proxy_nca_drops_underflowed_rows() {
    let Some(cuda) = cuda_or_skip() else { return };
    let mut failures = Vec::new();
    let cases = [
        (Distance::SquaredEuclidean, 100.0, 40, 4, 5, false),
        (Distance::Euclidean, 1e4, 37, 3, 4, false),
        (Distance::SquaredEuclidean, 100.0, 300, 6, 12, false),
        (Distance::Euclidean, 1e4, 9, 3, 3, true),
    ];
    for (si, &(distance, scale, n, d, k, all_drop)) in cases.iter().enumerate() {
        let loss = Loss::ProxyNca(ProxyNcaConfig {
            metric: Metric::new(distance, false),
            softmax_scale: scale,
        });
        let mut x = normal(n * d, 1200 + si as u64);
        let c = normal(k * d, 1250 + si as u64);
        let labels: Vec<i64> = (0..n).map(|i| (i % k) as i64).collect();
        if all_drop {
            // Each sample sits on a proxy other than its own: its own is at least as far as
            // that one plus the gap, far past 745 / 1e4.
            for (i, row) in x.chunks_exact_mut(d).enumerate() {
                let other = (i + 1) % k;
                row.copy_from_slice(&c[other * d..(other + 1) * d]);
            }
        }
        let case = format!("{distance:?} scale {scale} n={n} d={d} k={k}");
        let result = Embeddings::new(&x, n, d)
            .and_then(|emb| {
                let centers = Embeddings::named(&c, k, d, "centers")?;
                LossInput::new(emb, &labels, Some(centers))
            })
            .map_err(|e| e.to_string())
            .and_then(|input| {
                let want = ReferenceBackend
                    .host_loss(&loss, &input)
                    .map_err(|e| e.to_string())?;
                let counted = want.stats.active;
                let mixed = if all_drop {
                    counted == 0
                } else {
                    counted > 0 && counted < n as u64
                };
                if !mixed {
                    return Err(format!(
                        "{case}: the reference counts {counted} of {n} rows"
                    ));
                }
                check(&cuda, &ReferenceBackend, &loss, &input, &case)?;
                let got = cuda.loss(&loss, &input).map_err(|e| e.to_string())?;
                if got.stats.active != counted {
                    return Err(format!(
                        "{case}: {} counted rows vs {counted}",
                        got.stats.active
                    ));
                }
                println!(
                    "{case}: {counted} of {n} rows counted, loss {}",
                    got.stats.loss
                );
                Ok(())
            });
        if let Err(e) = result {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Past the stream budget the batch-all quadruplet keeps no second N x N matrix: its last pass
/// runs per chunk of rows (term 2's weights into a chunk buffer, then the triplet kernel over the
/// rows in place, adding them). A 4 KiB budget makes chunks of 27 rows at N = 37 and of 14 at
/// N = 70; it also leaves the hard quadruplet's in-place pass that many blocks, each striding
/// over several rows with its one kept row.
#[test]
fn quadruplet_row_chunks_match_the_reference() {
    let Some(cuda) = cuda_or_skip() else { return };
    let cuda = cuda.with_stream_budget(4 << 10);
    let mut failures = Vec::new();
    let mut cases = 0;
    let quads = losses()
        .into_iter()
        .filter(|l| matches!(l, Loss::Quadruplet(_)));
    for (li, loss) in quads.enumerate() {
        for (si, shape) in [(37, 5, 4), (70, 9, 5), (19, 1, 3)].into_iter().enumerate() {
            cases += 1;
            let seed = (500 + si * 100 + li) as u64;
            if let Err(e) = compare(&cuda, &ReferenceBackend, &loss, shape, seed) {
                failures.push(e);
            }
        }
    }
    println!("{} of {cases} cases failed", failures.len());
    assert!(cases >= 8 && failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn large_batches_match_the_cpu_backend() {
    let Some(cuda) = cuda_or_skip() else { return };
    let cpu = CpuBackend::new();
    let mut failures = Vec::new();
    // N > 2048 with two classes: the per-anchor sort leaves shared memory for global memory.
    let big = [(4500usize, 32usize, 2usize), (2100, 64, 16)];
    for shape in big {
        for kind in [
            LossKind::Triplet,
            LossKind::Contrastive,
            LossKind::LiftedStructure,
        ] {
            let loss = Loss::default_for(kind);
            if let Err(e) = compare(&cuda, &cpu, &loss, shape, 7) {
                failures.push(e);
            }
        }
        let mut semihard = Loss::default_for(LossKind::Triplet);
        if let Loss::Triplet(c) = &mut semihard {
            c.mining = Mining::SemiHard;
        }
        if let Err(e) = compare(&cuda, &cpu, &semihard, shape, 8) {
            failures.push(e);
        }
    }
    if let Err(e) = compare(
        &cuda,
        &cpu,
        &Loss::default_for(LossKind::Quadruplet),
        (600, 16, 3),
        9,
    ) {
        failures.push(e);
    }
    // The log-sum-exp losses and hard-mined quadruplets: rows longer than a block (N > 256).
    let mut hard = Loss::default_for(LossKind::Quadruplet);
    if let Loss::Quadruplet(c) = &mut hard {
        c.mining = Mining::Hard;
    }
    let mut pml: Vec<Loss> = [
        LossKind::MultiSimilarity,
        LossKind::Circle,
        LossKind::NTXent,
        LossKind::SupCon,
        LossKind::GeneralizedLiftedStructure,
    ]
    .map(Loss::default_for)
    .to_vec();
    pml.push(hard);
    // Proxy-anchor: K = 16 proxies, then 300 (ten blocks of 32), with N past a block's rows;
    // the proxy-softmax losses on the same shapes (rows of K = 300 longer than a block).
    pml.extend(
        [
            LossKind::ProxyAnchor,
            LossKind::ProxyNca,
            LossKind::NormalizedSoftmax,
            LossKind::CosFace,
        ]
        .map(Loss::default_for),
    );
    for loss in &pml {
        for shape in [(2100usize, 64usize, 16usize), (1500, 24, 300)] {
            if let Err(e) = compare(&cuda, &cpu, loss, shape, 10) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn pairwise_matches_the_reference() {
    let Some(cuda) = cuda_or_skip() else { return };
    for distance in Distance::ALL {
        for normalize in [true, false] {
            let metric = Metric::new(distance, normalize);
            for (nq, nr, d) in [(1, 1, 1), (67, 67, 9), (70, 13, 130)] {
                let q = normal(nq * d, 1);
                let r = normal(nr * d, 2);
                let qe = Embeddings::new(&q, nq, d).unwrap();
                let re = Embeddings::new(&r, nr, d).unwrap();
                let reference = (nq != nr).then_some(re);
                let want = ReferenceBackend.pairwise(metric, qe, reference).unwrap();
                let got = cuda.pairwise(metric, qe, reference).unwrap();
                let err = rel_norm_err(&got, &want);
                assert!(err < 1e-5, "{metric:?} {nq}x{nr}x{d}: rel err {err:e}");
            }
        }
    }
}

#[test]
fn device_buffers_are_checked() {
    let Some(cuda) = cuda_or_skip() else { return };
    let x = cuda.upload(&normal(12, 3)).unwrap();
    let mut grad = cuda.alloc_zeros(5).unwrap();
    let input = margin_core::DeviceLossInput {
        embeddings: &x,
        n: 4,
        d: 3,
        labels: &[0, 1, 0, 1],
        centers: None,
        reference: None,
    };
    let err = cuda
        .loss_on_device(
            &Loss::default_for(LossKind::Contrastive),
            input,
            &mut grad,
            None,
        )
        .unwrap_err();
    assert!(matches!(err, MarginError::InvalidInput(_)), "{err}");
}

#[test]
fn unavailable_is_an_error_not_a_panic() {
    // On a machine without CUDA this is the whole point; with CUDA it must describe the device.
    match margin_cuda::availability() {
        Ok(detail) => assert!(!detail.is_empty()),
        Err(e) => {
            assert!(matches!(e, MarginError::Unavailable(_)), "{e}");
            println!("skipping: {e}");
        }
    }
}
