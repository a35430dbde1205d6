//! Cross-batch memory in a few lines: each batch is enqueued into a ring of past embeddings and
//! its contrastive loss is taken against all of them (its own rows excluded), as PML's
//! `CrossBatchMemory` does. Any backend works the same way; its buffers stay on its device.
//! `cargo run --release -p margin-cpu --example cross_batch_memory`

use margin_core::{Backend, CrossBatchMemory, Loss, LossKind};
use margin_cpu::CpuBackend;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n, d, memory_rows) = (64, 32, 1024);
    let backend = CpuBackend::new();
    let loss = Loss::default_for(LossKind::Contrastive);
    let mut memory = CrossBatchMemory::new(&backend, memory_rows, d)?;
    let mut grad = backend.alloc_zeros(n * d)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    for step in 0..20 {
        let x: Vec<f32> = (0..n * d)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let labels: Vec<i64> = (0..n as i64).map(|i| (i + step) % 10).collect();
        let batch = backend.upload(&x)?;
        let stats = memory.loss(&backend, &loss, &batch, n, &labels, &mut grad)?;
        println!(
            "step {step:2}: loss {:.4} over {} active pairs, against {} remembered rows",
            stats.loss,
            stats.active,
            memory.len()
        );
    }
    Ok(())
}
