//! The fused k-nearest-neighbour kernel (`WgpuBackend::fused_knn`) against the float64 reference
//! pairwise matrix with `top_k_row` selection, and against this backend's own pairwise values:
//! every metric, self and second-set references, sizes off the tile grid, small / all / 128 /
//! fallback `k`, exact ties, bad inputs.

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use common::{backend, normal, rng};
use margin_core::{Backend, Distance, Embeddings, MarginError, Metric, Neighbours, knn_blocked};
use margin_cpu::ReferenceBackend;
use margin_wgpu::WgpuBackend;
use support::knn::{Fused, KS, check, run_case, select, tolerance};

#[test]
fn second_set_matches_reference() {
    let Some(b) = backend() else { return };
    support::knn::second_set_cases(&b, &WgpuBackend::fused_knn);
}

#[test]
fn self_reference_matches_reference() {
    let Some(b) = backend() else { return };
    support::knn::self_cases(&b, &WgpuBackend::fused_knn);
}

/// The workgroup-memory (GPU) entry point, forced on the test adapter (a CPU adapter runs the
/// direct one by default).
#[test]
fn workgroup_variant_matches_reference() {
    let Some(b) = common::tiled_backend() else {
        return;
    };
    let fused: Fused<'_, WgpuBackend> = &WgpuBackend::fused_knn;
    for (mi, metric) in support::knn::metrics().into_iter().enumerate() {
        run_case(&b, fused, metric, 37, Some(45), 33, KS, 200 + mi as u64);
        run_case(&b, fused, metric, 130, Some(300), 128, KS, 210 + mi as u64);
        run_case(&b, fused, metric, 70, None, 19, KS, 220 + mi as u64);
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
