//! Writes f64-reference cases of the six losses of new_losses.md for the CPU emulation of the
//! CUDA kernels (shaders/cuda/emu/reference_check.cpp), which runs the same launches as the host
//! code and compares loss, active counts and gradient. Ignored by default; run with
//! `MARGIN_EMU_REF=/tmp/ref.txt cargo test -p margin-cuda --test emu_reference -- --ignored`
//! (or `REF=1 shaders/cuda/emu/run.sh`, which does both).

use margin_core::{Distance, Embeddings, HostBackend, Loss, LossInput, LossKind, Metric, Mining};
use margin_cpu::ReferenceBackend;
use std::fmt::Write as _;

/// The loss ids of reference_check.cpp, in order.
const KINDS: [LossKind; 6] = [
    LossKind::MultiSimilarity,
    LossKind::Circle,
    LossKind::NTXent,
    LossKind::SupCon,
    LossKind::GeneralizedLiftedStructure,
    LossKind::Quadruplet,
];

/// `(n, d, classes)`: odd sizes, N = 1, one class, all distinct, D = 1, two classes.
const SHAPES: [(usize, usize, usize); 6] = [
    (13, 5, 3),
    (1, 3, 1),
    (9, 4, 1),
    (8, 3, 8),
    (17, 1, 4),
    (21, 6, 2),
];

fn join<T: std::fmt::LowerExp>(v: &[T]) -> String {
    v.iter()
        .map(|x| format!("{x:e}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
#[ignore = "writes reference cases for the emulator; needs MARGIN_EMU_REF"]
fn dump_reference_cases() {
    let Ok(path) = std::env::var("MARGIN_EMU_REF") else {
        println!("skipping: MARGIN_EMU_REF is not set");
        return;
    };
    let mut state = 12345u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0
    };
    let mut out = String::new();
    for (id, kind) in KINDS.iter().enumerate() {
        for (code, dist) in [
            (0, Distance::Euclidean),
            (1, Distance::SquaredEuclidean),
            (2, Distance::Dot),
            (2, Distance::Cosine),
        ] {
            for norm in [true, false] {
                let mut loss = Loss::default_for(*kind);
                *loss.metric_mut() = Metric::new(dist, norm);
                if let Loss::Quadruplet(c) = &mut loss {
                    c.mining = Mining::Hard;
                }
                if loss.validate().is_err() || (dist == Distance::Cosine && !norm) {
                    continue;
                }
                // Besides the shapes: rows with a common offset of 100 (the expanded distance
                // form cancels; distances only) and wide unnormalized rows (D = 300: every
                // exponential must be stabilized), as the generic equivalence suite has them.
                let mut cases: Vec<(usize, usize, usize, f32)> =
                    SHAPES.iter().map(|&(n, d, c)| (n, d, c, 0.0)).collect();
                if !norm && !dist.is_similarity() {
                    cases.push((13, 24, 3, 100.0));
                }
                if !norm {
                    cases.push((11, 300, 3, 0.0));
                }
                for (n, d, classes, shift) in cases {
                    let x: Vec<f32> = (0..n * d).map(|_| rnd() + shift).collect();
                    let labels: Vec<i64> = (0..n).map(|i| ((i * 7 + 3) % classes) as i64).collect();
                    let emb = Embeddings::new(&x, n, d).unwrap();
                    let input = LossInput::new(emb, &labels, None).unwrap();
                    let r = ReferenceBackend.host_loss(&loss, &input).unwrap();
                    let normed = i32::from(loss.metric().normalizes());
                    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
                    writeln!(out, "{id} {code} {normed} {n} {d} {:?}", loss.params()).unwrap();
                    writeln!(out, "{}", labels.join(" ")).unwrap();
                    writeln!(out, "{}", join(&x)).unwrap();
                    let [a0, a1] = r.stats.active_terms;
                    writeln!(out, "{:e} {a0} {a1}", r.stats.loss).unwrap();
                    writeln!(out, "{}", join(&r.grad)).unwrap();
                }
            }
        }
    }
    std::fs::write(&path, out).unwrap();
    println!("wrote {path}");
}
