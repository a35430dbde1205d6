//! `evaluate_retrieval` through a minimal host backend (naive f64 pairwise, rounded to f32):
//! hand-computed metrics, block-size invariance, lone queries, and input validation.

use margin_core::{
    Distance, Embeddings, HostBackend, Loss, LossInput, LossOutput, MarginError, Metric,
    Neighbours, Result, evaluate_retrieval,
};
use std::cell::Cell;

/// Pairwise only; counts calls so tests can see that blocks were used.
#[derive(Default)]
struct Naive {
    calls: Cell<usize>,
}

impl HostBackend for Naive {
    fn backend_name(&self) -> String {
        "naive".into()
    }
    fn host_loss(&self, _: &Loss, _: &LossInput<'_>) -> Result<LossOutput> {
        Err(MarginError::unavailable("naive test backend has no losses"))
    }
    fn host_knn(
        &self,
        _: Metric,
        _: Embeddings<'_>,
        _: Option<Embeddings<'_>>,
        _: usize,
    ) -> Result<Neighbours> {
        Err(MarginError::unavailable("naive test backend has no k-NN"))
    }
    fn host_pairwise(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
    ) -> Result<Vec<f32>> {
        self.calls.set(self.calls.get() + 1);
        let r = reference.unwrap_or(query);
        let prep = |x: &[f32]| -> Vec<f64> {
            let v: Vec<f64> = x.iter().map(|&a| f64::from(a)).collect();
            if metric.normalizes() {
                let n = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
                v.iter().map(|a| a / n).collect()
            } else {
                v
            }
        };
        let mut out = Vec::with_capacity(query.rows() * r.rows());
        for i in 0..query.rows() {
            let a = prep(query.row(i));
            for j in 0..r.rows() {
                let b = prep(r.row(j));
                let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
                let sq: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
                out.push(match metric.distance {
                    Distance::Euclidean => sq.sqrt(),
                    Distance::SquaredEuclidean => sq,
                    Distance::Cosine | Distance::Dot => dot,
                } as f32);
            }
        }
        Ok(out)
    }
    fn host_synchronize(&self) -> Result<()> {
        Ok(())
    }
}

fn euclid() -> Metric {
    Metric::new(Distance::Euclidean, false)
}

/// Points on a line: 0, 1, 3, 6, 10 with labels a a b a b.
#[test]
fn same_source_by_hand() {
    let x = [0.0f32, 1.0, 3.0, 6.0, 10.0];
    let labels = [1i64, 1, 2, 1, 2];
    let q = Embeddings::new(&x, 5, 1).unwrap();
    let m = evaluate_retrieval(&Naive::default(), euclid(), q, &labels, None, 2).unwrap();
    // Row 0 (a, R=2): order 1(a) 3(b) 6(a) 10(b): P@1 1, RP 1/2, AP (1 + 0)/2 = 0.5, RR 1.
    // Row 1 (a, R=2): 0(a) 3(b) 6(a) 10(b):       P@1 1, RP 1/2, AP 0.5, RR 1.
    // Row 2 (b, R=1): 1(a) 0(a) 6(a) 10(b):       P@1 0, RP 0, AP 0, RR 1/4 (0 and 6 tie at
    //                 distance 3; the lower index, 0, comes first, which changes nothing here).
    // Row 3 (a, R=2): 3(b) 10(b) 1(a) 0(a):       P@1 0, RP 0, AP 0, RR 1/3.
    // Row 4 (b, R=1): 6(a) 3(b) ...:              P@1 0, RP 0, AP 0, RR 1/2.
    assert_eq!(m.queries_evaluated, 5);
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    close(m.precision_at_1, 2.0 / 5.0);
    close(m.r_precision, 1.0 / 5.0);
    close(m.mean_average_precision_at_r, 1.0 / 5.0);
    close(
        m.mean_reciprocal_rank,
        (1.0 + 1.0 + 0.25 + 1.0 / 3.0 + 0.5) / 5.0,
    );
}

#[test]
fn lone_queries_are_left_out_and_all_lone_is_nan() {
    let x = [0.0f32, 1.0, 5.0];
    let q = Embeddings::new(&x, 3, 1).unwrap();
    // Label 7 appears once: lone in the same-source setting.
    let m = evaluate_retrieval(&Naive::default(), euclid(), q, &[1, 1, 7], None, 8).unwrap();
    assert_eq!(m.queries_evaluated, 2);
    assert_eq!(m.precision_at_1, 1.0);
    let all = evaluate_retrieval(&Naive::default(), euclid(), q, &[1, 2, 3], None, 8).unwrap();
    assert_eq!(all.queries_evaluated, 0);
    assert!(all.precision_at_1.is_nan() && all.mean_reciprocal_rank.is_nan());
    // Separate references: a query label absent from the references is lone.
    let r = Embeddings::new(&[0.5f32, 4.0], 2, 1).unwrap();
    let sep = evaluate_retrieval(
        &Naive::default(),
        euclid(),
        q,
        &[1, 2, 9],
        Some((r, &[1, 2])),
        1,
    )
    .unwrap();
    assert_eq!(sep.queries_evaluated, 2);
    // Query 0 (label 1) finds 0.5 first; query 1 (label 2, at 1.0) finds 0.5 (label 1) first.
    assert_eq!(sep.precision_at_1, 0.5);
    assert_eq!(sep.mean_reciprocal_rank, 0.75);
}

/// A deterministic pseudo-random point cloud.
fn cloud(n: usize, d: usize, classes: i64, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f64 / (1u64 << 31) as f64) as f32 - 0.5
    };
    let x: Vec<f32> = (0..n * d).map(|_| next()).collect();
    let labels = (0..n).map(|i| (i as i64 * 7 + 3) % classes).collect();
    (x, labels)
}

#[test]
fn block_size_does_not_change_results() {
    let (x, labels) = cloud(37, 5, 6, 1);
    let (r, rl) = cloud(23, 5, 4, 2);
    let q = Embeddings::new(&x, 37, 5).unwrap();
    let re = Embeddings::new(&r, 23, 5).unwrap();
    for metric in [
        euclid(),
        Metric::new(Distance::Cosine, true),
        Metric::new(Distance::Dot, false),
    ] {
        for reference in [None, Some((re, &rl[..]))] {
            let whole = Naive::default();
            let base = evaluate_retrieval(&whole, metric, q, &labels, reference, 1000).unwrap();
            assert_eq!(whole.calls.get(), 1);
            assert!(base.queries_evaluated > 0);
            for block in [1, 2, 5, 36, 37] {
                let b = Naive::default();
                let m = evaluate_retrieval(&b, metric, q, &labels, reference, block).unwrap();
                assert_eq!(m, base, "block {block}");
                // Blocks made only of lone queries are skipped.
                assert!(b.calls.get() <= 37usize.div_ceil(block), "block {block}");
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let x = [0.0f32, 1.0, 2.0, 3.0];
    let q = Embeddings::new(&x, 2, 2).unwrap();
    let n = Naive::default();
    let err = |r: Result<_>| assert!(matches!(r, Err(MarginError::InvalidInput(_))));
    err(evaluate_retrieval(&n, euclid(), q, &[1], None, 4));
    let r3 = Embeddings::new(&x[..3], 1, 3).unwrap();
    err(evaluate_retrieval(
        &n,
        euclid(),
        q,
        &[1, 1],
        Some((r3, &[1])),
        4,
    ));
    let r2 = Embeddings::new(&x, 2, 2).unwrap();
    err(evaluate_retrieval(
        &n,
        euclid(),
        q,
        &[1, 1],
        Some((r2, &[1])),
        4,
    ));
    assert!(matches!(
        evaluate_retrieval(&n, euclid(), q, &[1, 1], None, 0),
        Err(MarginError::InvalidConfig(_))
    ));
}

/// One 1500-row block is scored on several threads; 100-row blocks on one. Same bits.
#[test]
fn threaded_scoring_matches_single_threaded() {
    let (x, labels) = cloud(1500, 3, 40, 3);
    let q = Embeddings::new(&x, 1500, 3).unwrap();
    let one = evaluate_retrieval(&Naive::default(), euclid(), q, &labels, None, 1500).unwrap();
    let many = evaluate_retrieval(&Naive::default(), euclid(), q, &labels, None, 100).unwrap();
    assert_eq!(one, many);
    assert_eq!(one.queries_evaluated, 1500);
}
