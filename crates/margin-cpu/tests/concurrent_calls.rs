//! A trainer may call one `CpuBackend` from several threads at once (data-parallel workers):
//! the calls share the process-wide scratch pool and the rayon pool, and each must return what it
//! returns alone (up to the order of parallel sums, which work stealing may change: a last-bit
//! difference, where a shared buffer would give garbage).

use margin_core::{Backend, Embeddings, Loss, LossInput, LossKind};
use margin_cpu::CpuBackend;

/// A loss with its rows, labels, N and D.
type Case = (Loss, Vec<f32>, Vec<i64>, usize, usize);

fn rows(n: usize, d: usize, seed: u32) -> Vec<f32> {
    (0..n * d)
        .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) as f32 / 4e9).sin())
        .collect()
}

#[test]
fn concurrent_calls_match_sequential_ones() {
    // The default budget keeps these matrices resident; 256 KiB makes them stream in blocks.
    for backend in [CpuBackend::new(), CpuBackend::with_memory_budget(256 << 10)] {
        check(&backend);
    }
}

fn check(backend: &CpuBackend) {
    let cases: Vec<(LossKind, usize, usize)> = vec![
        (LossKind::Triplet, 300, 16),
        (LossKind::Contrastive, 700, 8),
        (LossKind::LiftedStructure, 257, 12),
        (LossKind::MultiSimilarity, 513, 5),
        (LossKind::Quadruplet, 90, 7),
        (LossKind::NTXent, 400, 9),
    ];
    let inputs: Vec<Case> = cases
        .iter()
        .enumerate()
        .map(|(i, &(kind, n, d))| {
            let labels = (0..n).map(|j| (j % 17) as i64).collect();
            (Loss::default_for(kind), rows(n, d, i as u32), labels, n, d)
        })
        .collect();
    let run = |(loss, x, y, n, d): &Case| {
        let input = LossInput::new(Embeddings::new(x, *n, *d).unwrap(), y, None).unwrap();
        backend.loss(loss, &input).unwrap()
    };
    let alone: Vec<_> = inputs.iter().map(run).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .flat_map(|_| inputs.iter().enumerate())
            .map(|(i, case)| (i, s.spawn(move || run(case))))
            .collect();
        for (i, h) in handles {
            let got = h.join().expect("no panic");
            let want = &alone[i];
            let (l, w) = (got.stats.loss, want.stats.loss);
            assert!(
                (l - w).abs() <= 1e-12 * w.abs().max(1.0),
                "case {i}: loss {l} vs {w}"
            );
            assert_eq!(got.stats.active, want.stats.active, "case {i}: active");
            let diff: f64 = got
                .grad
                .iter()
                .zip(&want.grad)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum::<f64>()
                .sqrt();
            let norm: f64 = want
                .grad
                .iter()
                .map(|&b| f64::from(b).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                diff <= 1e-6 * norm.max(1e-12),
                "case {i}: gradient differs by {diff}"
            );
        }
    });
}
