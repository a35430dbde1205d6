//! The fast CPU backend against the f64 reference for the losses added after the SPEC's six
//! (multi-similarity, circle, nt-xent, supcon, generalized lifted structure, quadruplet with hard
//! mining): every metric, odd sizes and label layouts, a budget so small that every anchor row is
//! its own block, and streaming against resident at a size where blocks matter.

mod fast_common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use fast_common::{check, labels, metrics, normal};
use margin_core::{Backend, Loss, LossInput, LossKind, Mining, QuadrupletConfig};
use margin_cpu::CpuBackend;
use support::losses::added_kinds;

/// (n, d, classes): N = 1, one class, pairs, all distinct, D = 1, odd sizes.
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 3, 1),
    (2, 1, 1),
    (2, 4, 2),
    (3, 2, 3),
    (23, 5, 1),
    (37, 5, 6),
    (37, 1, 4),
    (130, 17, 9),
    (41, 8, 41),
];

fn hard_quadruplet() -> Loss {
    Loss::Quadruplet(QuadrupletConfig {
        mining: Mining::Hard,
        ..Default::default()
    })
}

/// The loss under every metric it accepts (circle: cosine only).
fn all_metrics(loss: Loss) -> Vec<Loss> {
    if loss.kind() == LossKind::Circle {
        vec![loss]
    } else {
        metrics(loss)
    }
}

fn run_loss(loss: Loss, shapes: &[(usize, usize, usize)]) {
    let backends = [CpuBackend::new(), CpuBackend::with_memory_budget(1)];
    for (m, loss) in all_metrics(loss).into_iter().enumerate() {
        for (s, &(n, d, c)) in shapes.iter().enumerate() {
            let seed = (m * 10 + s) as u64;
            for b in &backends {
                check(b, &loss, n, d, c, seed);
            }
        }
    }
}

#[test]
fn multi_similarity_matches_reference() {
    run_loss(Loss::default_for(LossKind::MultiSimilarity), &SHAPES);
}

#[test]
fn circle_matches_reference() {
    run_loss(Loss::default_for(LossKind::Circle), &SHAPES);
    if let Loss::Circle(mut c) = Loss::default_for(LossKind::Circle) {
        c.margin = 0.1;
        c.gamma = 8.0;
        run_loss(Loss::Circle(c), &SHAPES);
    }
}

#[test]
fn nt_xent_matches_reference() {
    run_loss(Loss::default_for(LossKind::NTXent), &SHAPES);
}

#[test]
fn supcon_matches_reference() {
    run_loss(Loss::default_for(LossKind::SupCon), &SHAPES);
}

#[test]
fn generalized_lifted_structure_matches_reference() {
    run_loss(
        Loss::default_for(LossKind::GeneralizedLiftedStructure),
        &SHAPES,
    );
}

#[test]
fn hard_quadruplet_matches_reference() {
    run_loss(
        hard_quadruplet(),
        &[
            (1, 3, 1),
            (2, 1, 2),
            (3, 2, 3),
            (13, 4, 3),
            (23, 5, 1),
            (37, 5, 6),
            (29, 1, 4),
            (23, 6, 23),
            (60, 9, 2),
        ],
    );
}

/// Non-default parameters where the sign of the margins matters (distances and similarities).
#[test]
fn non_default_parameters() {
    if let Loss::MultiSimilarity(mut c) = Loss::default_for(LossKind::MultiSimilarity) {
        c.alpha = 0.7;
        c.beta = 3.0;
        c.base = 0.9;
        run_loss(Loss::MultiSimilarity(c), &[(37, 5, 6), (41, 8, 41)]);
    }
    if let Loss::GeneralizedLiftedStructure(mut c) =
        Loss::default_for(LossKind::GeneralizedLiftedStructure)
    {
        c.pos_margin = 0.3;
        c.neg_margin = 0.5;
        run_loss(Loss::GeneralizedLiftedStructure(c), &[(37, 5, 6)]);
    }
    if let Loss::NTXent(mut c) = Loss::default_for(LossKind::NTXent) {
        c.temperature = 1.5;
        run_loss(Loss::NTXent(c), &[(37, 5, 6)]);
    }
    if let Loss::SupCon(mut c) = Loss::default_for(LossKind::SupCon) {
        c.temperature = 0.02;
        run_loss(Loss::SupCon(c), &[(37, 5, 6)]);
    }
    if let Loss::Quadruplet(mut c) = hard_quadruplet() {
        c.margin = 0.1;
        c.margin2 = 0.05;
        run_loss(Loss::Quadruplet(c), &[(37, 5, 6)]);
    }
}

fn new_losses() -> Vec<Loss> {
    let mut v: Vec<Loss> = added_kinds().into_iter().map(Loss::default_for).collect();
    v.push(hard_quadruplet());
    v
}

/// A budget small enough for several blocks gives the resident result (up to f32 rounding of
/// the differently ordered chain).
#[test]
fn streaming_matches_resident() {
    let (n, d) = (700, 24);
    let x = normal(n, d, 42);
    let y = labels(n, 37);
    let input = LossInput::from_slices(&x, n, d, &y, None).unwrap();
    let resident = CpuBackend::new();
    let streamed = CpuBackend::with_memory_budget(200 * 1024);
    for loss in new_losses() {
        let a = resident.loss(&loss, &input).unwrap();
        let b = streamed.loss(&loss, &input).unwrap();
        let ctx = format!("{loss:?}");
        assert_eq!(a.stats.active_terms, b.stats.active_terms, "{ctx}");
        let (la, lb) = (a.stats.loss, b.stats.loss);
        assert!(
            (la - lb).abs() <= 1e-6 * la.abs() + 1e-9,
            "{la} vs {lb}: {ctx}"
        );
        let diff: f64 = a
            .grad
            .iter()
            .zip(&b.grad)
            .map(|(&p, &q)| f64::from(p - q).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = a
            .grad
            .iter()
            .map(|&p| f64::from(p).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            diff <= 1e-4 * norm + 1e-9,
            "grad diff {diff} vs {norm}: {ctx}"
        );
    }
}

/// Against the reference at a size where the streaming path runs with many blocks.
#[test]
fn larger_batch_streamed() {
    let b = CpuBackend::with_memory_budget(64 * 1024);
    for loss in new_losses() {
        check(&b, &loss, 300, 32, 12, 9);
    }
}

/// Indicative timings at N = 2048, D = 128 (run with
/// `cargo test --release -p margin-cpu --test fast_new_losses -- --ignored --nocapture`).
#[test]
#[ignore]
fn timing_2048x128() {
    let (n, d) = (2048, 128);
    let x = normal(n, d, 1);
    let y = labels(n, 64);
    let input = LossInput::from_slices(&x, n, d, &y, None).unwrap();
    let b = CpuBackend::new();
    // Contrastive first: the baseline of the engine (GEMM, chain) with a trivial kernel.
    let mut all = vec![Loss::default_for(LossKind::Contrastive)];
    all.extend(new_losses());
    for loss in all {
        b.loss(&loss, &input).unwrap();
        let reps = 5;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(b.loss(&loss, &input).unwrap());
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(reps);
        println!("{:>30}: {ms:.1} ms", loss.kind().name());
    }
}

/// The SPEC's precision bound at a large size (slow: quadruplet's reference is O(N³)).
/// Run with `cargo test -p margin-cpu --test fast_new_losses -- --ignored`.
#[test]
#[ignore]
fn large_sizes_within_spec_bounds() {
    let b = CpuBackend::new();
    for loss in new_losses() {
        check(&b, &loss, 1024, 256, 64, 13);
    }
}
