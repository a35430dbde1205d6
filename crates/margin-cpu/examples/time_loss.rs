//! Times one loss (forward + backward) on the fast CPU backend, without the CLI:
//! `cargo run --release -p margin-cpu --example time_loss -- triplet 2048 128 256 20`
//! (loss, N, D, classes, repetitions). Prints the median and minimum milliseconds.

use margin_core::{Backend, Embeddings, LossInput, LossKind};
use margin_cpu::CpuBackend;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.to_string());
    let kind: LossKind = get(0, "triplet").parse()?;
    let n: usize = get(1, "2048").parse()?;
    let d: usize = get(2, "128").parse()?;
    let classes: usize = get(3, "256").parse()?;
    let reps: usize = get(4, "20").parse()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x: Vec<f32> = (0..n * d)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let labels: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    let input = LossInput::new(Embeddings::new(&x, n, d)?, &labels, None)?;
    let loss = margin_core::Loss::default_for(kind);
    let backend = CpuBackend::new();
    let mut times = Vec::new();
    let mut value = 0.0;
    for _ in 0..reps + 1 {
        let t = Instant::now();
        value = backend.loss(&loss, &input)?.loss();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.remove(0);
    times.sort_by(f64::total_cmp);
    println!(
        "{kind} N={n} D={d} classes={classes}: median {:.2} ms, min {:.2} ms (loss {value:.6})",
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}
