//! `margin bench`: in-process timing of a loss (forward plus backward, optionally with a reference
//! set), of the pairwise matrix, or of k nearest neighbours, on random normal inputs: the host
//! call with its copies, or with `--on-device` the device path alone
//! ([`margin_core::time_on_device`]). Prints one JSON object.

use crate::args::BenchCmd;
use crate::backends;
use crate::error::CliError;
use crate::flags::build_loss;
use margin_core::{DeviceOp, Embeddings, Loss, LossInput, Metric, ReferenceSet};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::json;
use std::time::Instant;

/// `rows x cols` random normal values, reproducible from `seed`; an error naming `what` when
/// that many cannot be held (a huge `--n` must not abort the process).
pub fn random_normal(
    rows: usize,
    cols: usize,
    seed: u64,
    what: &str,
) -> Result<Vec<f32>, CliError> {
    let mut rng = StdRng::seed_from_u64(seed);
    filled(rows, cols, what, |_| StandardNormal.sample(&mut rng))
}

/// `rows x cols` values `f(i)`, allocated fallibly.
fn filled<T>(
    rows: usize,
    cols: usize,
    what: &str,
    f: impl FnMut(usize) -> T,
) -> Result<Vec<T>, CliError> {
    let too_big = || {
        CliError::input(format!(
            "out of memory: cannot allocate {what} ({rows} x {cols} values)"
        ))
    };
    let len = rows.checked_mul(cols).ok_or_else(too_big)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_big())?;
    v.extend((0..len).map(f));
    Ok(v)
}

/// Runs the benchmark.
pub fn run(cmd: &BenchCmd) -> Result<serde_json::Value, CliError> {
    if cmd.n == 0 || cmd.d == 0 {
        return Err(CliError::input("--n and --d must be at least 1"));
    }
    if cmd.reps == 0 {
        return Err(CliError::input("--reps must be at least 1"));
    }
    let classes = cmd.classes.unwrap_or(cmd.n.min(256));
    if classes == 0 {
        return Err(CliError::input("--classes must be at least 1"));
    }
    let pairwise = cmd.what == "pairwise" || cmd.what == "knn";
    let knn = cmd.what == "knn";
    if pairwise && cmd.ref_m.is_some() {
        return Err(CliError::input("--ref-m applies to losses only"));
    }
    let loss = if pairwise {
        None
    } else {
        Some(build_loss(&cmd.what, &cmd.flags)?)
    };
    let metric = match (&loss, &cmd.flags.distance) {
        (Some(l), _) => l.metric(),
        (None, d) => Metric::new(
            d.as_deref().unwrap_or("euclidean").parse()?,
            cmd.flags.normalize,
        ),
    };
    let x = random_normal(cmd.n, cmd.d, cmd.seed, "the embeddings")?;
    let labels = filled(cmd.n, 1, "the labels", |i| (i % classes) as i64)?;
    let centers = random_normal(classes.max(2), cmd.d, cmd.seed + 1, "the centers")?;
    let backend = backends::select_with_budget(cmd.backend, cmd.budget.stream_budget_mib)?;
    let embeddings = Embeddings::new(&x, cmd.n, cmd.d)?;
    let center_view = Embeddings::named(&centers, classes.max(2), cmd.d, "centers")?;
    let mut input = LossInput::new(
        embeddings,
        &labels,
        loss.filter(Loss::needs_centers).map(|_| center_view),
    )?;
    let m = cmd.ref_m.unwrap_or(0);
    let ref_x = random_normal(m, cmd.d, cmd.seed + 2, "the reference set")?;
    let ref_labels = filled(m, 1, "the reference labels", |j| (j % classes) as i64)?;
    if m > 0 {
        input = input.with_reference(ReferenceSet {
            embeddings: Embeddings::named(&ref_x, m, cmd.d, "reference embeddings")?,
            labels: &ref_labels,
            self_index: None,
        })?;
    } else if cmd.ref_m.is_some() {
        return Err(CliError::input("--ref-m must be at least 1"));
    }
    if let Some(l) = &loss {
        l.validate_input(&input)?;
    }
    let mut times = if cmd.on_device {
        let op = match &loss {
            Some(l) => DeviceOp::Loss(l, &input),
            None if knn => DeviceOp::Knn(metric, embeddings, cmd.k),
            None => DeviceOp::Pairwise(metric, embeddings),
        };
        backend.host_time_on_device(op, cmd.warmup, cmd.reps)?
    } else {
        let run_once = || -> Result<f64, CliError> {
            let start = Instant::now();
            let value = match &loss {
                Some(l) => backend.host_loss(l, &input)?.stats.loss,
                None if knn => {
                    f64::from(backend.host_knn(metric, embeddings, None, cmd.k)?.scores[0])
                }
                None => f64::from(backend.host_pairwise(metric, embeddings, None)?[0]),
            };
            backend.host_synchronize()?;
            std::hint::black_box(value);
            Ok(start.elapsed().as_secs_f64() * 1e3)
        };
        for _ in 0..cmd.warmup {
            run_once()?;
        }
        (0..cmd.reps)
            .map(|_| run_once())
            .collect::<Result<Vec<_>, _>>()?
    };
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    Ok(json!({
        "what": cmd.what,
        "backend": backend.backend_name(),
        "n": cmd.n,
        "d": cmd.d,
        "classes": classes,
        "m": cmd.ref_m,
        "k": knn.then_some(cmd.k),
        "distance": metric.distance.name(),
        "normalize": metric.normalizes(),
        "reps": cmd.reps,
        "stream_budget_mib": cmd.budget.stream_budget_mib,
        "timing": if cmd.on_device { "device" } else { "host" },
        "median_ms": median,
        "min_ms": times[0],
        "max_ms": times[times.len() - 1],
        "peak_rss_mb": peak_rss_mb(),
    }))
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`), or null elsewhere.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
