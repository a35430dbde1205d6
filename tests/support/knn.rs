//! The fused k-nearest-neighbour kernels of the GPU backends (`fused_knn` on wgpu and CUDA)
//! against the float64 reference pairwise matrix with `top_k_row` selection, and against the
//! backend's own pairwise values: one case runner and one checker for both backends, so that
//! both are held to the same tolerances.

use margin_core::retrieval::top_k_row;
use margin_core::{Backend, Distance, Embeddings, Metric, Neighbours};
use margin_cpu::ReferenceBackend;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// The `k` values of a case; `usize::MAX` stands for every candidate.
pub const KS: &[usize] = &[1, 7, usize::MAX, 33, 128, 129];

/// Every metric: four distances x normalization (cosine normalized only).
pub fn metrics() -> Vec<Metric> {
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

/// `len` standard normal values from `rng`.
pub fn normal(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| StandardNormal.sample(&mut *rng)).collect()
}

/// `top_k_row` over every row of `mat` (nq x nr).
pub fn select(mat: &[f32], nr: usize, own: bool, similarity: bool, k: usize) -> Neighbours {
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
pub fn check(
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

/// The largest magnitude of `mat` (at least 1e-30, so that a tolerance built on it is positive).
pub fn max_abs(mat: &[f32]) -> f32 {
    mat.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30)
}

/// The tolerance against the oracle: 1e-5 relative to the largest magnitude of its matrix.
pub fn tolerance(mat: &[f32]) -> f32 {
    1e-5 * max_abs(mat)
}

/// A backend's fused k-NN entry point, `(backend, metric, query, nq, reference, d, k)`: the
/// `fused_knn` method of the wgpu and CUDA backends (`&WgpuBackend::fused_knn`).
pub type Fused<'a, B> = &'a dyn Fn(
    &B,
    Metric,
    &<B as Backend>::Buffer,
    usize,
    Option<(&<B as Backend>::Buffer, usize)>,
    usize,
    usize,
) -> margin_core::Result<Neighbours>;

/// `(nq, nr, d)` of the second-set cases: one query, one reference row, sizes off the tile grid.
pub const SECOND_SET_SHAPES: [(usize, usize, usize); 5] = [
    (1, 1, 3),
    (1, 45, 19),
    (37, 45, 33),
    (37, 1000, 128),
    (300, 1000, 17),
];

/// `(n, d)` of the self-reference cases.
pub const SELF_SHAPES: [(usize, usize); 4] = [(2, 5), (37, 19), (300, 64), (130, 128)];

/// Every metric on every second-set shape, every `k` of [`KS`].
pub fn second_set_cases<B: Backend>(b: &B, fused: Fused<'_, B>) {
    for (mi, metric) in metrics().into_iter().enumerate() {
        for (si, &(nq, nr, d)) in SECOND_SET_SHAPES.iter().enumerate() {
            run_case(b, fused, metric, nq, Some(nr), d, KS, (mi * 10 + si) as u64);
        }
    }
}

/// Every metric on every self-reference shape, every `k` of [`KS`].
pub fn self_cases<B: Backend>(b: &B, fused: Fused<'_, B>) {
    for (mi, metric) in metrics().into_iter().enumerate() {
        for (si, &(n, d)) in SELF_SHAPES.iter().enumerate() {
            run_case(
                b,
                fused,
                metric,
                n,
                None,
                d,
                KS,
                100 + (mi * 10 + si) as u64,
            );
        }
    }
}

/// One case: random normal inputs from `seed`, every `k` of `ks` that fits, checked against the
/// reference backend and against this backend's own pairwise values (same kernel arithmetic).
#[allow(clippy::too_many_arguments)]
pub fn run_case<B: Backend>(
    b: &B,
    fused: Fused<'_, B>,
    metric: Metric,
    nq: usize,
    nr: Option<usize>,
    d: usize,
    ks: &[usize],
    seed: u64,
) {
    let mut r = StdRng::seed_from_u64(seed);
    let q = normal(&mut r, nq * d);
    let refr = nr.map(|nr| normal(&mut r, nr * d));
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
        let got = fused(b, metric, &qb, nq, rb.as_ref().map(|x| (x, rows)), d, k)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        check(&got, &oracle, rows, nr.is_none(), metric, tol, &what);
        // Against the backend's own matrix the values agree to rounding (the kernels share
        // their arithmetic; a compiler may still contract differently), indices up to ties.
        let own_tol = 1e-6 * max_abs(&own_mat);
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
