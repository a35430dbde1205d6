//! The fused k-nearest-neighbour kernels (shaders/cuda/knn.cu, `CudaBackend::fused_knn`):
//! * NVRTC compiles knn.cu for sm_90 and sm_80 with no warning (needs only libnvrtc; skipped
//!   without it unless MARGIN_REQUIRE_NVRTC=1);
//! * on a GPU, every metric, self and second-set references, sizes off the tile grid, small / all /
//!   128 / fallback `k` against the float64 reference + `top_k_row` and against this backend's own
//!   pairwise values, exact ties, bad inputs, and 100k x 100k at D = 128. Without a usable GPU the
//!   runtime tests print "skipping: <reason>" and pass.

mod cuda_common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use cuda_common::cuda_or_skip;
use margin_core::{Backend, Distance, Embeddings, MarginError, Metric, Neighbours, knn_blocked};
use margin_cpu::ReferenceBackend;
use margin_cuda::{CudaBackend, kernels};
use rand::SeedableRng;
use rand::rngs::StdRng;
use support::knn::{check, normal, select};

const KNN_CU: &str = include_str!("../../../shaders/cuda/knn.cu");

#[test]
fn knn_cu_compiles_cleanly() {
    if !kernels::nvrtc_present() {
        if std::env::var("MARGIN_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("libnvrtc not found and MARGIN_REQUIRE_NVRTC=1");
        }
        println!("skipping: libnvrtc not found");
        return;
    }
    for arch in ["sm_90", "sm_80"] {
        let compiled = kernels::compile(&kernels::source_for(KNN_CU), "knn.cu", arch, true)
            .unwrap_or_else(|e| panic!("{e}"));
        println!("== knn.cu for {arch} ==\n{}", compiled.log.trim_end());
        let bad = kernels::diagnostic_lines(&compiled.log);
        assert!(bad.is_empty(), "knn.cu {arch}: {}", bad.join("\n"));
        assert!(compiled.cubin.is_some(), "no CUBIN for {arch}");
        for name in ["knn_small_f32", "knn_large_f32"] {
            assert!(
                compiled.ptx.contains(&format!(".entry {name}(")),
                "{name} missing"
            );
        }
    }
}

#[test]
fn fused_knn_matches_reference() {
    let Some(b) = cuda_or_skip() else { return };
    support::knn::second_set_cases(&b, &CudaBackend::fused_knn);
    support::knn::self_cases(&b, &CudaBackend::fused_knn);
}

#[test]
fn exact_ties_and_fallback() {
    let Some(b) = cuda_or_skip() else { return };
    let (nq, nr, d) = (70, 300, 3);
    let vals = |n: usize, seed: usize| -> Vec<f32> {
        (0..n * d)
            .map(|i| ((i * 7 + seed * 13) % 5) as f32 - 2.0)
            .collect()
    };
    let (q, r) = (vals(nq, 1), vals(nr, 2));
    let (qb, rb) = (b.upload(&q).unwrap(), b.upload(&r).unwrap());
    for distance in [
        Distance::SquaredEuclidean,
        Distance::Dot,
        Distance::Euclidean,
    ] {
        let metric = Metric::new(distance, false);
        let qe = Embeddings::new(&q, nq, d).unwrap();
        let mat = ReferenceBackend
            .pairwise(metric, qe, Some(Embeddings::new(&r, nr, d).unwrap()))
            .unwrap();
        for k in [1, 5, 40, 128] {
            let got = b.fused_knn(metric, &qb, nq, Some((&rb, nr)), d, k).unwrap();
            let want = select(&mat, nr, false, metric.is_similarity(), k);
            assert_eq!(got.indices, want.indices, "{metric:?} k {k}");
        }
        let got = b
            .fused_knn(metric, &qb, nq, Some((&rb, nr)), d, 200)
            .unwrap();
        let want = knn_blocked(&b, metric, &qb, nq, Some((&rb, nr)), d, 200).unwrap();
        assert_eq!(got, want, "{metric:?} fallback");
    }
    let bad = |res: margin_core::Result<Neighbours>, what: &str| match res {
        Err(MarginError::InvalidInput(_)) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    };
    let m = Metric::new(Distance::Euclidean, false);
    bad(b.fused_knn(m, &qb, nq, Some((&rb, nr)), d, 0), "k = 0");
    bad(
        b.fused_knn(m, &qb, nq, Some((&rb, nr)), d, nr + 1),
        "k > nr",
    );
    bad(b.fused_knn(m, &qb, nq, None, d, nq), "k > nq - 1");
    bad(
        b.fused_knn(m, &qb, nq, Some((&rb, nr + 1)), d, 1),
        "reference too short",
    );
}

/// The size: 100k x 100k at D = 128, k = 10, without the 40 GB matrix. Checks a sample of
/// query rows against the reference backend and prints the time.
#[test]
fn hundred_thousand_without_the_matrix() {
    let Some(b) = cuda_or_skip() else { return };
    let (n, d, k) = (100_000, 128, 10);
    let mut rng = StdRng::seed_from_u64(5);
    let x = normal(&mut rng, n * d);
    let xb = b.upload(&x).unwrap();
    let m = Metric::new(Distance::Euclidean, false);
    b.fused_knn(m, &xb, 256, None, d, k).unwrap();
    let t = std::time::Instant::now();
    let got = b.fused_knn(m, &xb, n, None, d, k).unwrap();
    println!(
        "fused knn {n} x {n} x {d}, k = {k}: {:.3} s",
        t.elapsed().as_secs_f64()
    );
    for row in [0usize, 1, 4_999, 77_777, n - 1] {
        let qe = Embeddings::new(&x[row * d..(row + 1) * d], 1, d).unwrap();
        let mut mat = ReferenceBackend
            .pairwise(m, qe, Some(Embeddings::new(&x, n, d).unwrap()))
            .unwrap();
        mat[row] = f32::INFINITY; // its own row is excluded
        let sub = Neighbours {
            k,
            indices: got.indices[row * k..(row + 1) * k].to_vec(),
            scores: got.scores[row * k..(row + 1) * k].to_vec(),
        };
        let scale = mat
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |a, v| a.max(v.abs()));
        check(&sub, &mat, n, false, m, 1e-5 * scale, "100k");
    }
}
