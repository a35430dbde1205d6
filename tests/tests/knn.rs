//! k nearest neighbours (`Backend::knn_on_device`: the fused distance + top-k kernels on wgpu
//! and CUDA, blocked GEMM + selection on the fast CPU) against the float64 reference's ranking,
//! on every backend. Scores within the pairwise tolerance; indices equal except where the
//! reference's own scores are that close (a near tie may then order either way).

use margin_core::{Distance, Embeddings, HostBackend, Metric};
use margin_cpu::ReferenceBackend;
use margin_tests::{PAIRWISE_RTOL, QueryRows, assert_all, random_normal};

fn check(
    b: &dyn HostBackend,
    metric: Metric,
    nq: usize,
    nr: Option<usize>,
    d: usize,
    k: usize,
    seed: u64,
) -> Result<(), String> {
    let rows = QueryRows::random(nq, nr, d, seed);
    let (qe, re) = rows.embeddings()?;
    let case = format!("{metric:?} nq={nq} nr={nr:?} d={d} k={k}");
    let want = ReferenceBackend
        .host_knn(metric, qe, re, k)
        .map_err(|e| format!("reference: {e} on {case}"))?;
    let got = b
        .host_knn(metric, qe, re, k)
        .map_err(|e| format!("{}: {e} on {case}", b.backend_name()))?;
    if got.indices.len() != nq * k || got.scores.len() != nq * k {
        return Err(format!("{} results on {case}", got.indices.len()));
    }
    let scale = want.scores.iter().fold(1f32, |m, v| m.max(v.abs()));
    let tol = 4.0 * PAIRWISE_RTOL as f32 * scale;
    for i in 0..nq {
        let (g, w) = (&got.scores[i * k..][..k], &want.scores[i * k..][..k]);
        for t in 0..k {
            if g[t].is_nan() || (g[t] - w[t]).abs() > tol {
                return Err(format!(
                    "row {i} rank {t}: score {} vs {} on {case}",
                    g[t], w[t]
                ));
            }
            let (gi, wi) = (got.indices[i * k + t], want.indices[i * k + t]);
            let tie = (t > 0 && (w[t] - w[t - 1]).abs() <= tol)
                || (t + 1 < k && (w[t + 1] - w[t]).abs() <= tol);
            if gi != wi && !tie {
                return Err(format!("row {i} rank {t}: index {gi} vs {wi} on {case}"));
            }
            if nr.is_none() && gi as usize == i {
                return Err(format!("row {i} returned itself on {case}"));
            }
        }
    }
    Ok(())
}

fn every_metric_and_shape(b: &dyn HostBackend) {
    let metrics = Distance::ALL
        .into_iter()
        .flat_map(|d| [Metric::new(d, true), Metric::new(d, false)])
        .filter(|m| m.distance != Distance::Cosine || m.normalize);
    let shapes = [
        (1, Some(1), 3, 1),
        (37, None, 5, 7),
        (37, None, 5, 36),
        (130, Some(45), 17, 45),
        (300, Some(1000), 24, 10),
        (200, None, 8, 128),
        (40, Some(300), 8, 129),
    ];
    assert_all(
        metrics.enumerate().flat_map(|(i, m)| {
            shapes.map(|(nq, nr, d, k)| check(b, m, nq, nr, d, k, 50 + i as u64))
        }),
    );
}

fn bad_k_is_an_error(b: &dyn HostBackend) {
    let q = random_normal(12, 1);
    let qe = Embeddings::new(&q, 4, 3).unwrap();
    let m = Metric::new(Distance::Euclidean, false);
    for k in [0, 4] {
        let err = b.host_knn(m, qe, None, k).unwrap_err().to_string();
        assert!(err.contains("k = "), "{err}");
    }
}

macro_rules! knn_suite {
    ($name:ident, $require:literal, $make:expr) => {
        mod $name {
            fn backend() -> Option<Box<dyn margin_core::HostBackend>> {
                margin_tests::backend_or_skip($make, $require)
            }
            #[test]
            fn every_metric_and_shape() {
                if let Some(b) = backend() {
                    super::every_metric_and_shape(b.as_ref())
                }
            }
            #[test]
            fn bad_k_is_an_error() {
                if let Some(b) = backend() {
                    super::bad_k_is_an_error(b.as_ref())
                }
            }
        }
    };
}

knn_suite!(
    cpu,
    "MARGIN_REQUIRE_CPU",
    Ok(Box::new(margin_cpu::CpuBackend::new()))
);
knn_suite!(wgpu, "MARGIN_REQUIRE_WGPU", margin_tests::wgpu_for_tests());
knn_suite!(
    cuda,
    "MARGIN_REQUIRE_CUDA",
    margin_cuda::CudaBackend::new(0).map(|b| Box::new(b) as Box<dyn margin_core::HostBackend>)
);
