//! The fused k-nearest-neighbour kernel (`WgpuBackend::fused_knn`) against the float64 reference
//! pairwise matrix with `top_k_row` selection, and against this backend's own pairwise values:
//! every metric, self and second-set references, sizes off the tile grid, small / all / 128 /
//! fallback `k`, exact ties, bad inputs.

mod common;

use common::{backend, normal, rng};
use margin_core::retrieval::top_k_row;
use margin_core::{Backend, Distance, Embeddings, MarginError, Metric, Neighbours, knn_blocked};
use margin_cpu::ReferenceBackend;
use margin_wgpu::WgpuBackend;

/// Every metric: four distances x normalization (cosine normalized only).
fn metrics() -> Vec<Metric> {
    let mut out = Vec::new();
    for distance in Distance::ALL {
        for normalize in [false, true] {
            if distance == Distance::Cosine && !normalize {
                continue;
            }
            out.push(Metric::new(distance, normalize));
        }
    }
    out
}

/// `top_k_row` over every row of `mat` (nq x nr).
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

/// Checks `got` against the oracle matrix `mat` (nq x nr): scores within `tol` of the oracle's
/// at each rank, and each returned index's oracle value within `tol` of that rank's score (so
/// indices may differ only among near ties); indices distinct, in range, never the own row.
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
    assert_eq!(got.indices.len(), want.indices.len(), "{what}: index count");
    assert_eq!(got.scores.len(), want.scores.len(), "{what}: score count");
    for (row, (gi, gs)) in got
        .indices
        .chunks_exact(k)
        .zip(got.scores.chunks_exact(k))
        .enumerate()
    {
        let mut seen = std::collections::HashSet::new();
        for rank in 0..k {
            let (j, s) = (gi[rank] as usize, gs[rank]);
            let (wj, ws) = (want.indices[row * k + rank], want.scores[row * k + rank]);
            assert!(j < nr, "{what}: row {row} rank {rank}: index {j} >= {nr}");
            assert!(!(own && j == row), "{what}: row {row} returned itself");
            assert!(seen.insert(j), "{what}: row {row}: index {j} twice");
            assert!(
                (s - ws).abs() <= tol,
                "{what}: row {row} rank {rank}: score {s} (index {j}), want {ws} (index {wj})"
            );
            let at = mat[row * nr + j];
            assert!(
                j == wj as usize || (at - ws).abs() <= tol,
                "{what}: row {row} rank {rank}: index {j} (oracle {at}), want {wj} ({ws})"
            );
        }
    }
}

/// The tolerance: 1e-5 relative to the largest magnitude of the oracle matrix.
fn tolerance(mat: &[f32]) -> f32 {
    1e-5 * mat.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30)
}

/// One case: random normal inputs, every `k` of `ks` that fits, checked against the reference
/// backend and against this backend's own pairwise values (same kernel arithmetic).
#[allow(clippy::too_many_arguments)]
fn run_case(
    b: &WgpuBackend,
    metric: Metric,
    nq: usize,
    nr: Option<usize>,
    d: usize,
    ks: &[usize],
    seed: u64,
) {
    let mut r = rng(seed);
    let q = normal(&mut r, nq, d);
    let refr = nr.map(|nr| normal(&mut r, nr, d));
    let rows = nr.unwrap_or(nq);
    let qe = Embeddings::new(&q, nq, d).unwrap();
    let re = refr.as_ref().map(|x| Embeddings::new(x, rows, d).unwrap());
    let oracle = ReferenceBackend.pairwise(metric, qe, re).unwrap();
    let own_mat = b.pairwise(metric, qe, re).unwrap();
    let tol = tolerance(&oracle);
    let qb = b.upload(&q).unwrap();
    let rb = refr.as_ref().map(|x| b.upload(x).unwrap());
    let candidates = if nr.is_some() { rows } else { nq - 1 };
    for &k in ks {
        let k = if k == usize::MAX { candidates } else { k };
        if k == 0 || k > candidates {
            continue;
        }
        let what = format!("{metric:?} nq {nq} nr {nr:?} d {d} k {k}");
        let got = b
            .fused_knn(metric, &qb, nq, rb.as_ref().map(|x| (x, rows)), d, k)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        check(&got, &oracle, rows, nr.is_none(), metric, tol, &what);
        // Against the backend's own matrix the values agree to rounding (the kernels share
        // their arithmetic; a compiler may still contract differently), indices up to ties.
        let own_tol = 1e-6 * own_mat.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        check(
            &got,
            &own_mat,
            rows,
            nr.is_none(),
            metric,
            own_tol,
            &format!("{what} (own)"),
        );
    }
}

const KS: &[usize] = &[1, 7, usize::MAX, 33, 128, 129];

#[test]
fn second_set_matches_reference() {
    let Some(b) = backend() else { return };
    let shapes = [
        (1, 1, 3),
        (1, 45, 19),
        (37, 45, 33),
        (37, 1000, 128),
        (300, 1000, 17),
    ];
    for (mi, metric) in metrics().into_iter().enumerate() {
        for (si, &(nq, nr, d)) in shapes.iter().enumerate() {
            run_case(&b, metric, nq, Some(nr), d, KS, (mi * 10 + si) as u64);
        }
    }
}

#[test]
fn self_reference_matches_reference() {
    let Some(b) = backend() else { return };
    let shapes = [(2, 5), (37, 19), (300, 64), (130, 128)];
    for (mi, metric) in metrics().into_iter().enumerate() {
        for (si, &(n, d)) in shapes.iter().enumerate() {
            run_case(&b, metric, n, None, d, KS, 100 + (mi * 10 + si) as u64);
        }
    }
}

/// The workgroup-memory (GPU) entry point, forced on the test adapter (a CPU adapter runs the
/// direct one by default).
#[test]
fn workgroup_variant_matches_reference() {
    let Some(b) = common::tiled_backend() else {
        return;
    };
    for (mi, metric) in metrics().into_iter().enumerate() {
        run_case(&b, metric, 37, Some(45), 33, KS, 200 + mi as u64);
        run_case(&b, metric, 130, Some(300), 128, KS, 210 + mi as u64);
        run_case(&b, metric, 70, None, 19, KS, 220 + mi as u64);
    }
}

/// Small integer inputs: distances are exact in f32 and full of exact ties, which must go to the
/// lower index exactly as the oracle orders them.
#[test]
fn exact_ties_go_to_the_lower_index() {
    let Some(b) = backend() else { return };
    let (nq, nr, d) = (70, 300, 3);
    let vals = |n: usize, seed: usize| -> Vec<f32> {
        (0..n * d)
            .map(|i| ((i * 7 + seed * 13) % 5) as f32 - 2.0)
            .collect()
    };
    let q = vals(nq, 1);
    let r = vals(nr, 2);
    let qb = b.upload(&q).unwrap();
    let rb = b.upload(&r).unwrap();
    for distance in [
        Distance::SquaredEuclidean,
        Distance::Dot,
        Distance::Euclidean,
    ] {
        let metric = Metric::new(distance, false);
        for (refs, rows, reference) in [(Some(&r), nr, Some((&rb, nr))), (None, nq, None)] {
            let qe = Embeddings::new(&q, nq, d).unwrap();
            let re = refs.map(|x| Embeddings::new(x, rows, d).unwrap());
            let mat = ReferenceBackend.pairwise(metric, qe, re).unwrap();
            let candidates = if reference.is_some() { rows } else { rows - 1 };
            for k in [1, 5, 40, 128].map(|k: usize| k.min(candidates)) {
                let got = b.fused_knn(metric, &qb, nq, reference, d, k).unwrap();
                let want = select(&mat, rows, reference.is_none(), metric.is_similarity(), k);
                assert_eq!(
                    got.indices,
                    want.indices,
                    "{metric:?} k {k} self {}",
                    refs.is_none()
                );
                assert_eq!(got.scores, want.scores, "{metric:?} k {k}");
            }
        }
    }
}

/// A k above the fused kernel's maximum gives the blocked path's answer.
#[test]
fn large_k_falls_back_to_blocked() {
    let Some(b) = backend() else { return };
    let (nq, nr, d) = (9, 400, 8);
    let mut r = rng(7);
    let q = b.upload(&normal(&mut r, nq, d)).unwrap();
    let x = b.upload(&normal(&mut r, nr, d)).unwrap();
    let m = Metric::new(Distance::Euclidean, false);
    let got = b.fused_knn(m, &q, nq, Some((&x, nr)), d, 300).unwrap();
    let want = knn_blocked(&b, m, &q, nq, Some((&x, nr)), d, 300).unwrap();
    assert_eq!(got, want);
}

#[test]
fn bad_inputs_are_invalid_input() {
    let Some(b) = backend() else { return };
    let m = Metric::new(Distance::Euclidean, false);
    let q = b.upload(&[0.5; 12]).unwrap();
    let r = b.upload(&[0.25; 8]).unwrap();
    let bad = |res: margin_core::Result<Neighbours>, what: &str| match res {
        Err(MarginError::InvalidInput(_)) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    };
    bad(b.fused_knn(m, &q, 3, Some((&r, 2)), 4, 0), "k = 0");
    bad(b.fused_knn(m, &q, 3, Some((&r, 2)), 4, 3), "k > nr");
    bad(b.fused_knn(m, &q, 3, None, 4, 3), "k > nq - 1");
    bad(b.fused_knn(m, &q, 3, None, 4, 0), "self k = 0");
    bad(b.fused_knn(m, &q, 0, None, 4, 1), "no queries");
    bad(b.fused_knn(m, &q, 3, Some((&r, 0)), 4, 1), "no references");
    bad(b.fused_knn(m, &q, 3, Some((&r, 2)), 0, 1), "width 0");
    // Width mismatch: the reference buffer is too short for 3 rows of width 4.
    bad(
        b.fused_knn(m, &q, 3, Some((&r, 3)), 4, 1),
        "reference too short",
    );
    bad(b.fused_knn(m, &q, 4, None, 4, 1), "query too short");
    // The host convenience with different widths.
    let qh = [0.5f32; 12];
    let rh = [0.25f32; 9];
    let e = b.knn(
        m,
        Embeddings::new(&qh, 3, 4).unwrap(),
        Some(Embeddings::new(&rh, 3, 3).unwrap()),
        1,
    );
    bad(e, "width mismatch");
}

/// nq = nr = 2000, D = 128, k = 10: the fused kernel against `knn_blocked` (printed; run with
/// `--nocapture`), and the two answers agree up to near ties.
#[test]
fn timing_2000_against_blocked() {
    let Some(b) = backend() else { return };
    let (n, d, k) = (2000, 128, 10);
    let mut r = rng(3);
    let x = normal(&mut r, n, d);
    let xb = b.upload(&x).unwrap();
    let m = Metric::new(Distance::Euclidean, false);
    // Warm up (pipelines, scratch buffers).
    b.fused_knn(m, &xb, n, None, d, k).unwrap();
    knn_blocked(&b, m, &xb, n, None, d, k).unwrap();
    let t = std::time::Instant::now();
    let fused = b.fused_knn(m, &xb, n, None, d, k).unwrap();
    let tf = t.elapsed();
    let t = std::time::Instant::now();
    let blocked = knn_blocked(&b, m, &xb, n, None, d, k).unwrap();
    let tb = t.elapsed();
    println!(
        "{}: knn {n} x {n} x {d}, k = {k}: fused {:.1} ms, knn_blocked {:.1} ms",
        b.name(),
        tf.as_secs_f64() * 1e3,
        tb.as_secs_f64() * 1e3
    );
    let mat = b
        .pairwise(m, Embeddings::new(&x, n, d).unwrap(), None)
        .unwrap();
    check(
        &fused,
        &mat,
        n,
        true,
        m,
        tolerance(&mat) * 0.1,
        "fused 2000",
    );
    check(
        &blocked,
        &mat,
        n,
        true,
        m,
        tolerance(&mat) * 0.1,
        "blocked 2000",
    );
}

/// Every size variant the host can build (knn.rs replaces these three constants) validates with
/// naga; needs no adapter.
#[test]
fn every_variant_validates() {
    let src = include_str!("../../../shaders/wgsl/knn.wgsl");
    for (kp, pb) in [(32, 128), (128, 256)] {
        for tq in [16, 8, 4] {
            let body = src
                .replace("const TQ: u32 = 16u;", &format!("const TQ: u32 = {tq}u;"))
                .replace("const KP: u32 = 32u;", &format!("const KP: u32 = {kp}u;"))
                .replace("const PB: u32 = 128u;", &format!("const PB: u32 = {pb}u;"));
            assert!(body.contains(&format!("const PB: u32 = {pb}u;")));
            let full = format!("{}\n{body}", margin_wgpu::kernels::COMMON);
            let module = naga::front::wgsl::parse_str(&full)
                .unwrap_or_else(|e| panic!("{tq}/{kp}/{pb}: {}", e.emit_to_string(&full)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::default(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{tq}/{kp}/{pb}: {}", e.emit_to_string(&full)));
        }
    }
}
