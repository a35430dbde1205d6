//! Shared pieces of the cross-backend equivalence suite (`tests/tests/equivalence.rs`): random
//! inputs, the table of every loss configuration the SPEC allows, and comparison against the
//! float64 reference with the SPEC's named tolerances.

pub mod ref_random;

#[path = "../support/mod.rs"]
mod support;

/// The SPEC's named tolerances and the comparison with the reference, shared likewise.
pub use support::compare::{
    FLIP_GRAD_RTOL, FLIP_LOSS_RTOL, FLIP_MAX_FRACTION, GRAD_ATOL, GRAD_RTOL, LOSS_ATOL, LOSS_RTOL,
    compare_outputs, rel_norm_diff,
};
/// The golden fixtures' readers and comparisons, shared with the backend crates' own suites.
pub use support::{golden, ref_fixtures};

use margin_core::{
    Distance, Embeddings, HostBackend, Loss, LossInput, LossKind, LossOverrides, Metric,
};
use margin_cpu::ReferenceBackend;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use support::losses::mining_variants;

/// Pairwise matrices: per-entry tolerance relative to the largest magnitude in the matrix.
pub const PAIRWISE_RTOL: f64 = 1e-5;

/// Random normal values, reproducible from `seed`. Never zeros or constants.
pub fn random_normal(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// `scale * N(0, 1) + shift` values from `seed` (rows with a common offset, or of extreme
/// magnitude; `(1, 0)` is [`random_normal`]).
pub fn random_affine(len: usize, seed: u64, scale: f32, shift: f32) -> Vec<f32> {
    random_normal(len, seed)
        .into_iter()
        .map(|x| scale * x + shift)
        .collect()
}

/// How labels are laid out over a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labels {
    /// `i % k`, relabelled with large and negative values to check labels are only compared.
    Classes(usize),
    /// Every sample in one class.
    OneClass,
    /// Every sample its own class.
    AllDistinct,
}

impl Labels {
    /// The labels of an `n`-sample batch, and the number of distinct values (for centers).
    pub fn make(self, n: usize) -> (Vec<i64>, usize) {
        match self {
            Labels::Classes(k) => ((0..n).map(|i| (i % k) as i64).collect(), k.max(2)),
            Labels::OneClass => (vec![0; n], 2),
            Labels::AllDistinct => ((0..n as i64).collect(), n.max(2)),
        }
    }
}

/// Every loss configuration the SPEC allows: loss x distance x normalize x (mining, smooth).
pub fn all_loss_configs() -> Vec<Loss> {
    let mut out = Vec::new();
    for kind in LossKind::ALL {
        for distance in Distance::ALL {
            for normalize in [true, false] {
                if distance == Distance::Cosine && !normalize {
                    continue;
                }
                let overrides = LossOverrides {
                    distance: Some(distance),
                    normalize: Some(normalize),
                    ..Default::default()
                };
                if let Ok(loss) = overrides.apply(Loss::default_for(kind)) {
                    out.extend(mining_variants(loss));
                }
            }
        }
    }
    out
}

/// Runs `loss` on `backend` and on the reference with the same random inputs; returns a message
/// naming the case on any disagreement beyond the SPEC's tolerances.
pub fn check_loss(
    backend: &dyn HostBackend,
    loss: &Loss,
    n: usize,
    d: usize,
    labels: Labels,
    seed: u64,
) -> Result<(), String> {
    check_loss_affine(backend, loss, n, d, labels, seed, (1.0, 0.0))
}

/// [`check_loss`] on inputs `scale * N(0, 1) + shift` (centers too): rows far from the origin
/// relative to their spread, where the expanded distance form cancels (features with a large
/// common offset, as after a ReLU), or rows of extreme magnitude.
pub fn check_loss_affine(
    backend: &dyn HostBackend,
    loss: &Loss,
    n: usize,
    d: usize,
    labels: Labels,
    seed: u64,
    (scale, shift): (f32, f32),
) -> Result<(), String> {
    let shifted = |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|x| scale * x + shift).collect() };
    let x = shifted(random_normal(n * d, seed));
    let (y, k) = labels.make(n);
    let centers = random_affine(k * d, seed ^ 0x5eed, scale, shift);
    let c = loss
        .needs_centers()
        .then(|| Embeddings::named(&centers, k, d, "centers"))
        .transpose()
        .map_err(|e| e.to_string())?;
    let input = LossInput::new(Embeddings::new(&x, n, d).map_err(|e| e.to_string())?, &y, c)
        .map_err(|e| e.to_string())?;
    let case = format!("{loss:?} n={n} d={d} {labels:?} seed={seed} x{scale} +{shift}");
    let (got, want) = run_with_reference(backend, loss, &input, &case)?;
    compare_outputs(&got, &want, &case)
}

/// `(backend's output, the f64 reference's output)` for `loss` on `input`; `Err` naming `case`
/// when either fails.
pub fn run_with_reference(
    backend: &dyn HostBackend,
    loss: &Loss,
    input: &LossInput<'_>,
    case: &str,
) -> Result<(margin_core::LossOutput, margin_core::LossOutput), String> {
    let want = ReferenceBackend
        .host_loss(loss, input)
        .map_err(|e| format!("reference failed on {case}: {e}"))?;
    let got = backend
        .host_loss(loss, input)
        .map_err(|e| format!("{} failed on {case}: {e}", backend.backend_name()))?;
    Ok((got, want))
}

/// Random query rows and, when `nr` is given, a second set of reference rows: the inputs of the
/// pairwise and k-NN checks.
pub struct QueryRows {
    q: Vec<f32>,
    r: Option<Vec<f32>>,
    nq: usize,
    d: usize,
}

impl QueryRows {
    /// `nq x d` queries from `seed` and `nr x d` references from `seed + 1`.
    pub fn random(nq: usize, nr: Option<usize>, d: usize, seed: u64) -> Self {
        Self::shifted(nq, nr, d, seed, 0.0)
    }

    /// [`QueryRows::random`] plus `shift` in every coordinate (see [`check_loss_affine`]).
    pub fn shifted(nq: usize, nr: Option<usize>, d: usize, seed: u64, shift: f32) -> Self {
        Self {
            q: random_affine(nq * d, seed, 1.0, shift),
            r: nr.map(|nr| random_affine(nr * d, seed + 1, 1.0, shift)),
            nq,
            d,
        }
    }

    /// The validated queries and references (`None`: the queries are their own references).
    pub fn embeddings(&self) -> Result<(Embeddings<'_>, Option<Embeddings<'_>>), String> {
        let q = Embeddings::new(&self.q, self.nq, self.d).map_err(|e| e.to_string())?;
        let r = self
            .r
            .as_ref()
            .map(|r| Embeddings::new(r, r.len() / self.d, self.d))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok((q, r))
    }
}

/// Compares `backend`'s pairwise matrix (self, or against a second set when `nr` is given) with
/// the reference's.
pub fn check_pairwise(
    backend: &dyn HostBackend,
    metric: Metric,
    nq: usize,
    nr: Option<usize>,
    d: usize,
    seed: u64,
    shift: f32,
) -> Result<(), String> {
    let rows = QueryRows::shifted(nq, nr, d, seed, shift);
    let (qe, re) = rows.embeddings()?;
    let case = format!("{metric:?} nq={nq} nr={nr:?} d={d} shift={shift}");
    let want = ReferenceBackend
        .host_pairwise(metric, qe, re)
        .map_err(|e| format!("reference failed on {case}: {e}"))?;
    let got = backend
        .host_pairwise(metric, qe, re)
        .map_err(|e| format!("{} failed on {case}: {e}", backend.backend_name()))?;
    if got.len() != want.len() {
        return Err(format!("{} values vs {} on {case}", got.len(), want.len()));
    }
    let scale = want.iter().fold(1f64, |m, &v| m.max(f64::from(v).abs()));
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let diff = (f64::from(g) - f64::from(w)).abs();
        // sqrt near 0 amplifies rounding: compare euclidean entries in squared form as well.
        let ok = diff <= PAIRWISE_RTOL * scale
            || (metric.distance == Distance::Euclidean
                && (f64::from(g).powi(2) - f64::from(w).powi(2)).abs()
                    <= PAIRWISE_RTOL * scale * scale);
        if !ok {
            return Err(format!("entry {i}: {g} vs reference {w} on {case}"));
        }
    }
    Ok(())
}

/// The backend under test, or why the suite skips: `None` when it is unavailable and `require`
/// (an environment variable such as `MARGIN_REQUIRE_WGPU`) is not set to `1`. When it is set, an
/// unavailable backend fails the test: CI must not pass by skipping.
pub fn backend_or_skip(
    made: margin_core::Result<Box<dyn HostBackend>>,
    require: &str,
) -> Option<Box<dyn HostBackend>> {
    available_or_skip(made, require, |b| b.backend_name())
}

/// Like [`backend_or_skip`] for code that needs the concrete backend type.
pub fn concrete_or_skip<B: margin_core::Backend>(
    made: margin_core::Result<B>,
    require: &str,
) -> Option<B> {
    available_or_skip(made, require, B::name)
}

/// The one skip rule of [`backend_or_skip`] and [`concrete_or_skip`]; `name` says which backend
/// runs.
fn available_or_skip<B>(
    made: margin_core::Result<B>,
    require: &str,
    name: impl Fn(&B) -> String,
) -> Option<B> {
    match made {
        Ok(b) => {
            eprintln!("testing backend: {}", name(&b));
            Some(b)
        }
        Err(e) if std::env::var(require).as_deref() == Ok("1") => {
            panic!("{require}=1 but the backend is unavailable: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e} (set {require}=1 to make this a failure)");
            None
        }
    }
}

/// The wgpu backend for tests, as a [`HostBackend`]: chosen as [`wgpu_concrete`] does.
pub fn wgpu_for_tests() -> margin_core::Result<Box<dyn HostBackend>> {
    wgpu_concrete().map(|b| Box::new(b) as Box<dyn HostBackend>)
}

/// The wgpu backend for tests: `MARGIN_WGPU_ADAPTER` names an adapter; otherwise the best
/// hardware adapter, else any software adapter (lavapipe), which tests may use.
pub fn wgpu_concrete() -> margin_core::Result<margin_wgpu::WgpuBackend> {
    use margin_wgpu::WgpuBackend;
    match std::env::var("MARGIN_WGPU_ADAPTER") {
        Ok(name) => WgpuBackend::with_adapter(&name),
        Err(_) => {
            WgpuBackend::new().or_else(|e| WgpuBackend::with_adapter("llvmpipe").map_err(|_| e))
        }
    }
}

/// Runs every check and reports all failures at once.
pub fn assert_all(results: impl IntoIterator<Item = Result<(), String>>) {
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
