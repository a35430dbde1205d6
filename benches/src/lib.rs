//! Shared pieces of the margin benchmarks: the backends to measure, random inputs, and one
//! timed loss or pairwise call written against `&dyn HostBackend`, so that GPU backends join
//! the list in [`backends`] without touching the bench bodies.
//!
//! * `benches/cpu.rs`: criterion benches (`cargo bench -p margin-benches`).
//! * `src/bin/measure.rs`: a one-shot timing of the performance targets
//!   (`cargo run --release -p margin-benches --bin measure`).

use margin_core::{DeviceOp, Embeddings, HostBackend, Loss, LossInput, Metric, Result};
use margin_cpu::CpuBackend;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use std::time::{Duration, Instant};

/// Every backend available at run time: the CPU always; CUDA when an NVIDIA GPU is there; wgpu on
/// a hardware adapter (or the adapter named by `MARGIN_WGPU_ADAPTER`, e.g. `llvmpipe`). GPU
/// timings end with a device synchronize.
pub fn backends() -> Vec<Box<dyn HostBackend>> {
    let mut out: Vec<Box<dyn HostBackend>> = vec![Box::new(CpuBackend::new())];
    match margin_cuda::CudaBackend::new(0) {
        Ok(b) => out.push(Box::new(b)),
        Err(e) => eprintln!("benches: skipping cuda: {e}"),
    }
    let wgpu = match std::env::var("MARGIN_WGPU_ADAPTER") {
        Ok(name) => margin_wgpu::WgpuBackend::with_adapter(&name),
        Err(_) => margin_wgpu::WgpuBackend::new(),
    };
    match wgpu {
        Ok(b) => out.push(Box::new(b)),
        Err(e) => eprintln!("benches: skipping wgpu: {e}"),
    }
    out
}

/// Random normal embeddings, labels `i % classes` and `K = classes` centers.
pub struct Batch {
    pub x: Vec<f32>,
    pub labels: Vec<i64>,
    pub centers: Vec<f32>,
    pub n: usize,
    pub d: usize,
    pub classes: usize,
}

impl Batch {
    /// A batch of `n x d` with `classes` labels (at least 2 centers).
    pub fn new(n: usize, d: usize, classes: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let nd = Normal::new(0.0f32, 1.0).unwrap_or_else(|_| unreachable!());
        let k = classes.max(2);
        Self {
            x: (0..n * d).map(|_| nd.sample(&mut rng)).collect(),
            labels: (0..n).map(|i| (i % classes.max(1)) as i64).collect(),
            centers: (0..k * d).map(|_| nd.sample(&mut rng)).collect(),
            n,
            d,
            classes: k,
        }
    }

    /// The loss input (with centers when `loss` needs them).
    pub fn input(&self, loss: &Loss) -> Result<LossInput<'_>> {
        let centers = loss
            .needs_centers()
            .then_some((&self.centers[..], self.classes, self.d));
        LossInput::from_slices(&self.x, self.n, self.d, &self.labels, centers)
    }
}

/// The total time of `iters` forward+backward calls on the device: inputs uploaded once, each
/// call ended by a device synchronize (`margin_core::time_on_device`), no host copies. The body
/// of criterion's `iter_custom`: a GPU is timed as a trainer whose embeddings live there uses it.
pub fn time_loss_on_device(
    b: &dyn HostBackend,
    loss: &Loss,
    batch: &Batch,
    iters: u64,
) -> Result<Duration> {
    let input = batch.input(loss)?;
    total(b.host_time_on_device(DeviceOp::Loss(loss, &input), 0, reps(iters))?)
}

/// The total time of `iters` `n x n` pairwise calls on the device (see [`time_loss_on_device`]).
pub fn time_pairwise_on_device(
    b: &dyn HostBackend,
    metric: Metric,
    batch: &Batch,
    iters: u64,
) -> Result<Duration> {
    let q = Embeddings::new(&batch.x, batch.n, batch.d)?;
    total(b.host_time_on_device(DeviceOp::Pairwise(metric, q), 0, reps(iters))?)
}

/// Criterion's iteration count as a repetition count (at least 1).
fn reps(iters: u64) -> usize {
    usize::try_from(iters).unwrap_or(usize::MAX).max(1)
}

/// The sum of per-call milliseconds.
fn total(ms: Vec<f64>) -> Result<Duration> {
    Ok(Duration::from_secs_f64(ms.iter().sum::<f64>() / 1e3))
}

/// One forward+backward call through the host path (copies included), synchronized, timed.
pub fn time_loss(b: &dyn HostBackend, loss: &Loss, batch: &Batch) -> Result<Duration> {
    let input = batch.input(loss)?;
    let t = Instant::now();
    let out = b.host_loss(loss, &input)?;
    b.host_synchronize()?;
    let el = t.elapsed();
    std::hint::black_box(out);
    Ok(el)
}

/// One `n x n` pairwise matrix call through the host path, synchronized, timed.
pub fn time_pairwise(b: &dyn HostBackend, metric: Metric, batch: &Batch) -> Result<Duration> {
    let q = Embeddings::new(&batch.x, batch.n, batch.d)?;
    let t = Instant::now();
    let out = b.host_pairwise(metric, q, None)?;
    b.host_synchronize()?;
    let el = t.elapsed();
    std::hint::black_box(out);
    Ok(el)
}
