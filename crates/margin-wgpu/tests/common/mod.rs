//! Test helpers: adapter selection (MARGIN_WGPU_ADAPTER / MARGIN_REQUIRE_WGPU), random inputs and
//! comparisons with the float64 reference.

#![allow(dead_code)]

pub mod centers;

use margin_core::Backend;
use margin_wgpu::{WgpuBackend, list_adapters};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The backend under test, or `None` (after printing why) when no adapter is available and
/// `MARGIN_REQUIRE_WGPU=1` is not set.
pub fn backend() -> Option<WgpuBackend> {
    let result = match std::env::var("MARGIN_WGPU_ADAPTER") {
        Ok(name) if !name.is_empty() => WgpuBackend::with_adapter(&name),
        _ => WgpuBackend::new().or_else(|hw_err| {
            list_adapters()
                .into_iter()
                .find(|a| a.device_type == "Cpu")
                .map(|a| WgpuBackend::with_adapter(&a.name))
                .unwrap_or(Err(hw_err))
        }),
    };
    match result {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var("MARGIN_REQUIRE_WGPU").as_deref() == Ok("1") {
                panic!("MARGIN_REQUIRE_WGPU=1 but no wgpu adapter: {e}");
            }
            println!("skipping: {e}");
            None
        }
    }
}

/// The test adapter with the workgroup-memory (GPU) product kernels forced, so a CPU adapter
/// also runs them.
pub fn tiled_backend() -> Option<WgpuBackend> {
    let adapter = adapter_of(&backend()?);
    Some(WgpuBackend::with_adapter_tiling(&adapter, margin_wgpu::Tiling::Workgroup).unwrap())
}

/// The adapter name inside `name()` ("wgpu (<adapter name>, <backend>)"), to open another
/// backend on the same adapter (other tiling, capped binding).
pub fn adapter_of(b: &WgpuBackend) -> String {
    let name = b.name();
    name.strip_prefix("wgpu (")
        .and_then(|s| s.rsplit_once(", "))
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| panic!("unexpected backend name {name}"))
}

/// `n x d` standard normal values.
pub fn normal(rng: &mut rand::rngs::StdRng, n: usize, d: usize) -> Vec<f32> {
    (0..n * d)
        .map(|_| StandardNormal.sample(&mut *rng))
        .collect()
}

/// `n` labels drawn from `classes` classes.
pub fn labels(rng: &mut rand::rngs::StdRng, n: usize, classes: usize) -> Vec<i64> {
    (0..n)
        .map(|_| rng.random_range(0..classes as i64))
        .collect()
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// `|a - b| / |b|` over vectors; infinite when either holds a NaN, so that every `err > tol` check
/// fails on it (a NaN compares false). Absolute when `|b|` is below f32's normal range (0, or a
/// reference gradient such as proxy-anchor's `α e^{-90}` at N = 1 that no f32 result can hold).
pub fn rel_norm(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    let err = if den < f64::from(f32::MIN_POSITIVE) {
        num
    } else {
        num / den
    };
    if err.is_nan() { f64::INFINITY } else { err }
}

/// True when `got` is within 1e-4 relative (1e-6 absolute near 0) of `want`.
pub fn loss_close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-4 * want.abs().max(1e-2)
}
