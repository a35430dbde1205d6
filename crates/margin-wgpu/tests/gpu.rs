//! The wgpu backend against the float64 reference on the adapter the environment gives
//! (lavapipe in CI): every loss x distance x normalization x mining, edge shapes, and one N > 2048.

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use common::{backend, labels, loss_close, normal, rel_norm, rng};
use margin_core::{
    Backend, Distance, Embeddings, Loss, LossInput, LossKind, Metric, Mining, QuadrupletConfig,
};
use margin_cpu::reference;
use margin_wgpu::WgpuBackend;
use support::losses::mining_variants;

fn check_pairwise(
    b: &WgpuBackend,
    metric: Metric,
    nq: usize,
    nr: Option<usize>,
    d: usize,
    seed: u64,
) {
    let mut r = rng(seed);
    let q = normal(&mut r, nq, d);
    let refr = nr.map(|nr| normal(&mut r, nr, d));
    let got = b
        .pairwise(
            metric,
            Embeddings::new(&q, nq, d).unwrap(),
            refr.as_ref()
                .map(|x| Embeddings::new(x, nr.unwrap(), d).unwrap()),
        )
        .unwrap();
    let q64: Vec<f64> = q.iter().map(|&v| f64::from(v)).collect();
    let r64: Vec<f64> = refr
        .as_ref()
        .unwrap_or(&q)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let rows = nr.unwrap_or(nq);
    let want = reference::pairwise(metric, &q64, nq, &r64, rows, d);
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        // The expanded form loses absolute accuracy near 0 (diagonal, euclidean sqrt).
        let tol = match metric.distance {
            Distance::Euclidean => 2e-3 * scale.sqrt(),
            _ => 1e-4 * scale * (d as f64).sqrt(),
        };
        assert!(
            (f64::from(*g) - w).abs() <= tol,
            "{metric:?} {nq}x{rows}x{d}: entry {i}: got {g}, want {w}"
        );
    }
}

/// The workgroup-memory product and sort kernels GPUs use (CPU adapters default to others).
#[test]
fn workgroup_tiled_products_match_reference() {
    let Some(b) = common::tiled_backend() else {
        return;
    };
    for distance in Distance::ALL {
        let m = Metric::new(distance, false);
        check_pairwise(&b, m, 37, None, 19, 11);
        check_pairwise(&b, m, 20, Some(7), 33, 12);
    }
    let shapes = &[(67, 21, 5), (1, 4, 1), (9, 5, 9)];
    for kind in [
        LossKind::Contrastive,
        LossKind::TripletCenter,
        LossKind::ProxyAnchor,
        LossKind::ProxyNca,
        LossKind::NormalizedSoftmax,
        LossKind::CosFace,
        LossKind::NPair,
        LossKind::Triplet,
        LossKind::Quadruplet,
    ] {
        run_kind_on(&b, kind, shapes);
    }
}

#[test]
fn pairwise_matches_reference() {
    let Some(b) = backend() else { return };
    let t = std::time::Instant::now();
    for distance in Distance::ALL {
        for normalize in [false, true] {
            let m = Metric::new(distance, normalize);
            check_pairwise(&b, m, 37, None, 19, 1);
            check_pairwise(&b, m, 1, None, 1, 2);
            check_pairwise(&b, m, 20, Some(7), 33, 3);
            check_pairwise(&b, m, 5, Some(300), 1, 4);
        }
    }
    println!("pairwise cases: {:?}", t.elapsed());
}

/// The host matrix beyond one binding: with the binding capped at 16 KiB (4096 floats), a 67 x 67
/// matrix takes blocks of 61 and 6 rows and a 53 x 200 one three blocks of 20 or fewer; blocks
/// must tile the result exactly, and a distance diagonal stays exactly 0.
#[test]
fn pairwise_beyond_one_binding_is_blocked() {
    let Some(b) = backend() else { return };
    let b = b.with_binding_cap(16 << 10);
    for distance in Distance::ALL {
        for normalize in [false, true] {
            let m = Metric::new(distance, normalize);
            check_pairwise(&b, m, 67, None, 9, 21);
            check_pairwise(&b, m, 53, Some(200), 6, 22);
        }
    }
    let mut r = rng(23);
    let q = normal(&mut r, 90, 5);
    let x = Embeddings::new(&q, 90, 5).unwrap();
    for normalize in [false, true] {
        let got = b
            .pairwise(Metric::new(Distance::Euclidean, normalize), x, None)
            .unwrap();
        assert!((0..90).all(|i| got[i * 90 + i] == 0.0), "diagonal not 0");
    }
}

/// Runs `loss` on both backends and checks loss, counts and gradients.
fn check_loss(
    b: &WgpuBackend,
    loss: Loss,
    x: &[f32],
    n: usize,
    d: usize,
    y: &[i64],
    centers: Option<(&[f32], usize)>,
) {
    let input = LossInput::from_slices(x, n, d, y, centers.map(|(c, k)| (c, k, d))).unwrap();
    let t = std::time::Instant::now();
    let got = b
        .loss(&loss, &input)
        .unwrap_or_else(|e| panic!("{loss:?}: {e}"));
    if n > 1000 {
        println!("{} n={n} d={d}: gpu {:?}", loss.kind(), t.elapsed());
    }
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let c64: Option<Vec<f64>> = centers.map(|(c, _)| c.iter().map(|&v| f64::from(v)).collect());
    let want = reference::evaluate(
        &loss,
        &x64,
        n,
        d,
        y,
        c64.as_deref().zip(centers.map(|c| c.1)),
    )
    .unwrap();
    let ctx = format!("{loss:?} n={n} d={d}");
    // Semihard mining is discontinuous at d_an = d_ap: f32 distances may move one triplet across
    // that edge, which changes the AvgNonZero denominator. Allow one such flip per 1000 triplets.
    let flips = got.stats.active.abs_diff(want.stats.active);
    if flips > 0 && matches!(loss, Loss::Triplet(c) if c.mining == Mining::SemiHard) {
        let allowed = 1 + want.stats.active / 1000;
        assert!(flips <= allowed, "{ctx}: {flips} semihard triplets flipped");
        let rel = (got.stats.loss - want.stats.loss).abs() / want.stats.loss.abs().max(1e-6);
        assert!(
            rel <= 4.0 * flips as f64 / want.stats.active as f64,
            "{ctx}: loss {rel}"
        );
        return;
    }
    assert!(
        loss_close(got.stats.loss, want.stats.loss),
        "{ctx}: loss {} vs reference {} (active {:?} vs {:?})",
        got.stats.loss,
        want.stats.loss,
        got.stats.active_terms,
        want.stats.active_terms
    );
    let gerr = rel_norm(&got.grad, &want.grad);
    assert!(gerr <= 1e-3, "{ctx}: gradient rel err {gerr}");
    if let (Some(g), Some(w)) = (&got.center_grad, &want.center_grad) {
        let cerr = rel_norm(g, w);
        assert!(cerr <= 1e-3, "{ctx}: center gradient rel err {cerr}");
    }
    // Counts may differ only where f32 distances move a term across the hinge: never in small
    // random batches, a handful among the ~1e8 triplets of the large case.
    for (g, w) in got.stats.active_terms.iter().zip(want.stats.active_terms) {
        assert!(
            g.abs_diff(w) <= w / 100_000,
            "{ctx}: active counts {g} vs {w}"
        );
    }
}

fn configs(kind: LossKind) -> Vec<Loss> {
    let mut out = Vec::new();
    for distance in Distance::ALL {
        for normalize in [false, true] {
            let mut base = Loss::default_for(kind);
            *base.metric_mut() = Metric::new(distance, normalize);
            // Unnormalized distances are large; a triplet margin that makes hinges active.
            if let Loss::Triplet(c) = &mut base
                && !normalize
                && distance != Distance::Cosine
            {
                c.margin = 0.5;
            }
            // Circle accepts cosine only.
            out.extend(
                mining_variants(base)
                    .into_iter()
                    .filter(|l| l.validate().is_ok()),
            );
        }
    }
    out
}

fn run_kind(kind: LossKind, sizes: &[(usize, usize, usize)]) {
    let Some(b) = backend() else { return };
    run_kind_on(&b, kind, sizes);
}

fn run_kind_on(b: &WgpuBackend, kind: LossKind, sizes: &[(usize, usize, usize)]) {
    let t = std::time::Instant::now();
    for (case, &(n, d, classes)) in sizes.iter().enumerate() {
        for (i, loss) in configs(kind).into_iter().enumerate() {
            let mut r = rng(1000 * case as u64 + i as u64);
            let x = normal(&mut r, n, d);
            let y = labels(&mut r, n, classes);
            if loss.needs_centers() {
                // One center per class (triplet-center needs two).
                let k = classes.max(loss.min_centers());
                let c = normal(&mut r, k, d);
                let y: Vec<i64> = y.iter().map(|&l| l % k as i64).collect();
                check_loss(b, loss, &x, n, d, &y, Some((&c, k)));
            } else {
                check_loss(b, loss, &x, n, d, &y, None);
            }
        }
    }
    println!("{kind}: {:?}", t.elapsed());
}

/// SPEC, Cost: extra memory is at most one N x N matrix. The weight kernels overwrite the distance
/// matrix "e" in place, so after every loss over the square path the only buffers of N x N floats
/// or more the backend keeps are "e" and the streamed chunk buffers (the triplet's sort slots and
/// the quadruplet's term-2 rows, under a fixed budget, which at this small N is every row at once).
#[test]
fn losses_keep_one_square_matrix() {
    let Some(b) = backend() else { return };
    let (n, d) = (150, 6);
    let nn_bytes = (n * n * 4) as u64;
    let square = |b: &WgpuBackend| -> Vec<&'static str> {
        let big = b.scratch_buffers().into_iter();
        big.filter(|&(_, size)| size >= nn_bytes)
            .map(|(name, _)| name)
            .collect()
    };
    let mut r = rng(77);
    let x = normal(&mut r, n, d);
    let y = labels(&mut r, n, 4);
    let kinds = LossKind::ALL.into_iter();
    let losses: Vec<Loss> = kinds
        .filter(|&k| !Loss::default_for(k).needs_centers() && k != LossKind::NPair)
        .flat_map(configs)
        .collect();
    assert!(losses.len() > 40, "{} configurations", losses.len());
    for loss in losses {
        check_loss(&b, loss, &x, n, d, &y, None);
        let held = square(&b);
        // The filter sees the one matrix there is.
        assert!(held.contains(&"e"), "{:?}", b.scratch_buffers());
        assert!(
            held.iter()
                .all(|&name| matches!(name, "e" | "sort" | "quad_add")),
            "{loss:?} keeps {held:?}"
        );
    }
}

/// The triplet kernels with a scratch slot per anchor (sorted counts; smooth, which copies its
/// row there) run in chunks of anchors when the slots of all rows do not fit: with the binding
/// capped at 32 KiB, N = 67 takes chunks of 32 (sorted) and 64 (smooth) rows.
#[test]
fn triplet_anchor_chunks_match_reference() {
    let Some(b) = backend() else { return };
    let b = b.with_binding_cap(32 << 10);
    run_kind_on(&b, LossKind::Triplet, &[(67, 5, 5)]);
}

/// Past the stream budget the batch-all quadruplet keeps no second matrix: its last pass runs in
/// chunks of rows (term 2's weights of a chunk, then the triplet kernel over the same rows). With
/// the budget at 4 KiB, N = 37 (a 5.4 KiB matrix) takes chunks of 6 rows. It fails when a chunk's
/// term-2 rows are misplaced.
#[test]
fn quadruplet_row_chunks_match_reference() {
    let Some(b) = backend() else { return };
    let b = b.with_stream_budget(4 << 10);
    run_kind_on(&b, LossKind::Quadruplet, &[(37, 5, 5)]);
    let big = b.scratch_buffers().into_iter();
    let held: Vec<_> = big.filter(|&(_, size)| size >= 37 * 37 * 4).collect();
    assert!(held.iter().all(|&(name, _)| name == "e"), "{held:?}");
    // The workgroup-memory triplet kernel GPUs use: chunks of 27 rows.
    if let Some(t) = common::tiled_backend() {
        run_kind_on(
            &t.with_stream_budget(4 << 10),
            LossKind::Quadruplet,
            &[(37, 5, 5)],
        );
    }
}

/// N not a multiple of the workgroup size, N = 1, one class, all-distinct labels, D = 1.
const SHAPES: &[(usize, usize, usize)] =
    &[(67, 13, 5), (1, 4, 1), (12, 3, 1), (9, 5, 9), (40, 1, 4)];

/// One test per loss kind: every configuration of [`configs`] on `SHAPES` (or the given
/// shapes), so that a failure names its loss.
macro_rules! kind_tests {
    (@shapes) => { SHAPES };
    (@shapes $shapes:expr) => { $shapes };
    ($($test:ident => $kind:ident $(on $shapes:expr)?,)*) => {
        $(
            #[test]
            fn $test() {
                run_kind(LossKind::$kind, kind_tests!(@shapes $($shapes)?));
            }
        )*
    };
}

kind_tests! {
    contrastive_matches_reference => Contrastive,
    triplet_matches_reference => Triplet,
    triplet_center_matches_reference => TripletCenter,
    proxy_anchor_matches_reference => ProxyAnchor,
    proxy_nca_matches_reference => ProxyNca,
    normalized_softmax_matches_reference => NormalizedSoftmax,
    cosface_matches_reference => CosFace,
    npair_matches_reference => NPair,
    // The f64 reference enumerates quadruplets: smaller batches.
    quadruplet_matches_reference => Quadruplet
        on &[(37, 13, 5), (1, 4, 1), (12, 3, 1), (9, 5, 9), (24, 1, 4)],
    lifted_structure_matches_reference => LiftedStructure,
    multi_similarity_matches_reference => MultiSimilarity,
    circle_matches_reference => Circle,
    ntxent_matches_reference => NTXent,
    supcon_matches_reference => SupCon,
    generalized_lifted_structure_matches_reference => GeneralizedLiftedStructure,
}

/// Hard-mined quadruplet with many small classes (many per-class best pairs, shared pairs) and
/// with two classes (no negative pair avoids the anchor's class: term 2 is empty).
#[test]
fn quadruplet_hard_many_and_two_classes() {
    let Some(b) = backend() else { return };
    for (seed, (n, d, classes)) in [(70, 9, 25), (50, 4, 2), (64, 2, 64), (90, 3, 7)]
        .into_iter()
        .enumerate()
    {
        for distance in Distance::ALL {
            let mut r = rng(900 + seed as u64);
            let x = normal(&mut r, n, d);
            let y = labels(&mut r, n, classes);
            let loss = Loss::Quadruplet(QuadrupletConfig {
                metric: Metric::new(distance, true),
                mining: Mining::Hard,
                ..Default::default()
            });
            check_loss(&b, loss, &x, n, d, &y, None);
        }
    }
}

/// Batch-all quadruplet past the sizes the O(N^4) reference can check, against the exact fast CPU
/// backend: three classes (about 120k positive pairs, so the histogram scan runs three levels deep)
/// and fifty (the sort scratch grows with the positive pairs, under a quarter of one N x N matrix; checked
/// first, as scratch buffers are kept for reuse and never shrink).
#[test]
fn quadruplet_large_batches_match_fast_cpu() {
    let Some(b) = backend() else { return };
    let cpu = margin_cpu::CpuBackend::new();
    for (seed, (n, d, classes)) in [(700, 12, 50), (600, 8, 3)].into_iter().enumerate() {
        let mut r = rng(4242 + seed as u64);
        let x = normal(&mut r, n, d);
        let y = labels(&mut r, n, classes);
        for distance in [Distance::SquaredEuclidean, Distance::Cosine] {
            let loss = Loss::Quadruplet(QuadrupletConfig {
                metric: Metric::new(distance, true),
                ..Default::default()
            });
            let input = LossInput::from_slices(&x, n, d, &y, None).unwrap();
            let got = b.loss(&loss, &input).unwrap();
            let want = cpu.loss(&loss, &input).unwrap();
            let ctx = format!("{loss:?} n={n} classes={classes}");
            assert!(
                loss_close(got.stats.loss, want.stats.loss),
                "{ctx}: loss {} vs {}",
                got.stats.loss,
                want.stats.loss
            );
            let want_grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
            let gerr = rel_norm(&got.grad, &want_grad);
            assert!(gerr <= 1e-3, "{ctx}: gradient rel err {gerr}");
            for (g, w) in got.stats.active_terms.iter().zip(want.stats.active_terms) {
                assert!(g.abs_diff(w) <= w / 100_000, "{ctx}: counts {g} vs {w}");
            }
            if classes == 50 {
                let nn_bytes = (n * n * 4) as u64;
                let quad: u64 = b
                    .scratch_buffers()
                    .into_iter()
                    // Sort lists and histograms; "quad_add" is the streamed chunk of rows.
                    .filter(|&(name, _)| name.starts_with("quad_") && name != "quad_add")
                    .map(|(_, size)| size)
                    .sum();
                assert!(quad * 4 < nn_bytes, "{ctx}: quadruplet scratch {quad} B");
            }
        }
    }
}

/// `(n, d, x, labels)` of the batch past 2048 rows: N = 2100, D = 16, 30 classes.
fn large_batch() -> (usize, usize, Vec<f32>, Vec<i64>) {
    let (n, d) = (2100, 16);
    let mut r = rng(77);
    let x = normal(&mut r, n, d);
    let y = labels(&mut r, n, 30);
    (n, d, x, y)
}

/// One case past 2048 rows: the matrix kernels tile past one workgroup row of 2048.
#[test]
fn large_n_pairwise_and_contrastive() {
    let Some(b) = backend() else { return };
    let t = std::time::Instant::now();
    let (n, d, x, y) = large_batch();
    check_pairwise(&b, Metric::new(Distance::Euclidean, true), n, None, d, 78);
    check_loss(
        &b,
        Loss::default_for(LossKind::Contrastive),
        &x,
        n,
        d,
        &y,
        None,
    );
    println!("n={n} pairwise + contrastive: {:?}", t.elapsed());
}

/// The per-anchor sort past 2048 (padded to 4096). About a minute on lavapipe, so opt-in:
/// `cargo test -p margin-wgpu -- --ignored`.
#[test]
#[ignore]
fn large_n_triplet() {
    let Some(b) = backend() else { return };
    let t = std::time::Instant::now();
    let (n, d, x, y) = large_batch();
    check_loss(&b, Loss::default_for(LossKind::Triplet), &x, n, d, &y, None);
    println!("n={n} triplet (all): {:?}", t.elapsed());
}

/// Wider rows and more of them: the precision bounds of the SPEC (loss 1e-4 relative, gradient
/// 1e-3 relative norm) with D in the hundreds.
#[test]
fn wide_rows_match_reference() {
    let Some(b) = backend() else { return };
    let t = std::time::Instant::now();
    for (i, kind) in LossKind::ALL.into_iter().enumerate() {
        let (n, d, classes) = match kind {
            LossKind::Quadruplet => (48, 300, 6),
            _ => (300, 256, 12),
        };
        let mut r = rng(500 + i as u64);
        let x = normal(&mut r, n, d);
        let y = labels(&mut r, n, classes);
        let loss = Loss::default_for(kind);
        if loss.needs_centers() {
            let c = normal(&mut r, classes, d);
            check_loss(&b, loss, &x, n, d, &y, Some((&c, classes)));
        } else {
            check_loss(&b, loss, &x, n, d, &y, None);
        }
    }
    println!("wide rows: {:?}", t.elapsed());
}
