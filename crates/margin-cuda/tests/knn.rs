//! The fused k-nearest-neighbour kernels (shaders/cuda/knn.cu, `CudaBackend::fused_knn`):
//! * NVRTC compiles knn.cu for sm_90 and sm_80 with no warning (needs only libnvrtc; skipped
//!   without it unless MARGIN_REQUIRE_NVRTC=1);
//! * on a GPU, every metric, self and second-set references, sizes off the tile grid, small / all /
//!   128 / fallback `k` against the float64 reference + `top_k_row` and against this backend's own
//!   pairwise values, exact ties, bad inputs, and 100k x 100k at D = 128. Without a usable GPU the
//!   runtime tests print "skipping: <reason>" and pass.

use margin_core::retrieval::top_k_row;
use margin_core::{Backend, Distance, Embeddings, MarginError, Metric, Neighbours, knn_blocked};
use margin_cpu::ReferenceBackend;
use margin_cuda::{CudaBackend, kernels};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

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

fn cuda_or_skip() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(b) => {
            println!("running on {}", b.name());
            Some(b)
        }
        Err(MarginError::Unavailable(why)) => {
            println!("skipping: {why}");
            None
        }
        Err(e) => panic!("CUDA backend failed to start: {e}"),
    }
}

fn normal(len: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..len).map(|_| StandardNormal.sample(&mut *rng)).collect()
}

fn metrics() -> Vec<Metric> {
    let mut out = Vec::new();
    for distance in Distance::ALL {
        for normalize in [false, true] {
            if distance != Distance::Cosine || normalize {
                out.push(Metric::new(distance, normalize));
            }
        }
    }
    out
}

fn select(mat: &[f32], nr: usize, own: bool, similarity: bool, k: usize) -> Neighbours {
    let mut out = Neighbours {
        k,
        indices: Vec::new(),
        scores: Vec::new(),
    };
    for (i, row) in mat.chunks_exact(nr).enumerate() {
        top_k_row(row, own.then_some(i), similarity, k, &mut out);
    }
    out
}

/// Scores within `tol` of the oracle's at each rank; a returned index may differ from the
/// oracle's only when its oracle value is within `tol` (a near tie); indices valid and distinct.
fn check(
    got: &Neighbours,
    mat: &[f32],
    nr: usize,
    own: bool,
    metric: Metric,
    tol: f32,
    what: &str,
) {
    let k = got.k;
    let want = select(mat, nr, own, metric.is_similarity(), k);
    assert_eq!(got.indices.len(), want.indices.len(), "{what}");
    assert_eq!(got.scores.len(), want.scores.len(), "{what}");
    for row in 0..got.indices.len() / k {
        let mut seen = std::collections::HashSet::new();
        for rank in 0..k {
            let at = row * k + rank;
            let (j, s) = (got.indices[at] as usize, got.scores[at]);
            let (wj, ws) = (want.indices[at] as usize, want.scores[at]);
            assert!(
                j < nr && !(own && j == row) && seen.insert(j),
                "{what}: row {row}: {j}"
            );
            assert!(
                (s - ws).abs() <= tol,
                "{what}: row {row} rank {rank}: {s} vs {ws}"
            );
            let v = mat[row * nr + j];
            assert!(
                j == wj || (v - ws).abs() <= tol,
                "{what}: row {row} rank {rank}: {j} vs {wj}"
            );
        }
    }
}

fn max_abs(mat: &[f32]) -> f32 {
    mat.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30)
}

fn run_case(b: &CudaBackend, metric: Metric, nq: usize, nr: Option<usize>, d: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let q = normal(nq * d, &mut rng);
    let refr = nr.map(|nr| normal(nr * d, &mut rng));
    let rows = nr.unwrap_or(nq);
    let qe = Embeddings::new(&q, nq, d).unwrap();
    let re = refr.as_ref().map(|x| Embeddings::new(x, rows, d).unwrap());
    let oracle = ReferenceBackend.pairwise(metric, qe, re).unwrap();
    let own_mat = b.pairwise(metric, qe, re).unwrap();
    let qb = b.upload(&q).unwrap();
    let rb = refr.as_ref().map(|x| b.upload(x).unwrap());
    let candidates = if nr.is_some() { rows } else { nq - 1 };
    for k in [1, 7, candidates, 33, 128, 129] {
        if k == 0 || k > candidates {
            continue;
        }
        let what = format!("{metric:?} nq {nq} nr {nr:?} d {d} k {k}");
        let got = b
            .fused_knn(metric, &qb, nq, rb.as_ref().map(|x| (x, rows)), d, k)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        check(
            &got,
            &oracle,
            rows,
            nr.is_none(),
            metric,
            1e-5 * max_abs(&oracle),
            &what,
        );
        let own_tol = 1e-6 * max_abs(&own_mat);
        check(&got, &own_mat, rows, nr.is_none(), metric, own_tol, &what);
    }
}

#[test]
fn fused_knn_matches_reference() {
    let Some(b) = cuda_or_skip() else { return };
    let second = [
        (1, 1, 3),
        (1, 45, 19),
        (37, 45, 33),
        (37, 1000, 128),
        (300, 1000, 17),
    ];
    let own = [(2, 5), (37, 19), (300, 64), (130, 128)];
    for (mi, metric) in metrics().into_iter().enumerate() {
        for (si, &(nq, nr, d)) in second.iter().enumerate() {
            run_case(&b, metric, nq, Some(nr), d, (mi * 10 + si) as u64);
        }
        for (si, &(n, d)) in own.iter().enumerate() {
            run_case(&b, metric, n, None, d, 100 + (mi * 10 + si) as u64);
        }
    }
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
    let x = normal(n * d, &mut rng);
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
