//! The fast CPU backend with a reference set (docs/REFERENCE_SETS.md) against the golden values
//! of `tests/fixtures/pml_ref`: every case of every `<loss>.json` (PML's `ref_emb` /
//! `ref_labels`, and the torch transcription for quadruplet) and every call of
//! `cross-batch-memory.json` through the plain API (reference = the memory as PML read it,
//! self index = the batch's slots). With an enqueue mask the batch is the unmasked rows, with no
//! self index, and the masked rows' gradient is 0.
//!
//! Each case runs twice: with the default budget and with a tiny one that forces one batch row
//! per block, so that the streaming path is covered too. Tolerances are the SPEC's for f32
//! backends.

use margin_core::{
    Backend, Distance, Embeddings, LossInput, LossKind, LossOverrides, Mining, ReferenceSet,
};
use margin_cpu::CpuBackend;
use serde::Deserialize;
use std::path::{Path, PathBuf};

const VALUE_REL: f64 = 1e-4;
const VALUE_ABS: f64 = 1e-6;
const GRAD_REL: f64 = 1e-3;
const GRAD_ABS: f64 = 1e-6;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    distance: Option<String>,
    normalize: Option<bool>,
    margin: Option<f64>,
    margin2: Option<f64>,
    pos_margin: Option<f64>,
    neg_margin: Option<f64>,
    smooth: Option<bool>,
    mining: Option<String>,
    alpha: Option<f64>,
    beta: Option<f64>,
    base: Option<f64>,
    gamma: Option<f64>,
    temperature: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct File {
    cases: Vec<Case>,
}

/// A `<loss>.json` case or a cross-batch-memory sequence (then `calls` is set).
#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    loss: String,
    #[serde(default)]
    params: Params,
    d: usize,
    #[serde(flatten)]
    call: Option<Call>,
    #[serde(default)]
    calls: Vec<Call>,
}

#[derive(Debug, Deserialize)]
struct Call {
    n: usize,
    labels: Vec<i64>,
    embeddings: Vec<f32>,
    m: usize,
    ref_labels: Vec<i64>,
    ref_embeddings: Vec<f32>,
    self_index: Option<Vec<i64>>,
    enqueue_mask: Option<Vec<bool>>,
    value: f64,
    active: [u64; 2],
    grad: Vec<f64>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pml_ref")
}

fn load(name: &str) -> File {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn build_loss(case: &Case) -> margin_core::Loss {
    let kind: LossKind = case.loss.parse().unwrap();
    let p = &case.params;
    let overrides = LossOverrides {
        distance: p
            .distance
            .as_deref()
            .map(|s| s.parse::<Distance>().unwrap()),
        normalize: p.normalize,
        margin: p.margin,
        margin2: p.margin2,
        pos_margin: p.pos_margin,
        neg_margin: p.neg_margin,
        smooth: p.smooth,
        mining: p.mining.as_deref().map(|s| s.parse::<Mining>().unwrap()),
        alpha: p.alpha,
        beta: p.beta,
        base: p.base,
        gamma: p.gamma,
        temperature: p.temperature,
    };
    overrides
        .apply(margin_core::Loss::default_for(kind))
        .unwrap()
}

fn grad_mismatch(got: &[f32], want: &[f64]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("length {} != {}", got.len(), want.len()));
    }
    let (mut diff, mut norm, mut worst) = (0.0f64, 0.0f64, (0usize, 0.0f64));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let e = (f64::from(g) - w).abs();
        if e > worst.1 {
            worst = (i, e);
        }
        diff += e * e;
        norm += w * w;
    }
    let (diff, norm) = (diff.sqrt(), norm.sqrt());
    (diff > GRAD_REL * norm + GRAD_ABS).then(|| {
        format!(
            "‖Δ‖/‖g‖ = {diff:.3e}/{norm:.3e}; worst at {}: got {}, want {}",
            worst.0, got[worst.0], want[worst.0]
        )
    })
}

/// Runs one call on `backend`; pushes one line per mismatch.
fn check_call(backend: &CpuBackend, tag: &str, case: &Case, call: &Call, fails: &mut Vec<String>) {
    let mut fail = |msg: String| fails.push(format!("{tag}: {msg}"));
    let loss = build_loss(case);
    let d = case.d;
    // With an enqueue mask the anchors are the unmasked rows.
    let keep: Vec<usize> = match &call.enqueue_mask {
        Some(mask) => (0..call.n).filter(|&i| !mask[i]).collect(),
        None => (0..call.n).collect(),
    };
    let x: Vec<f32> = keep
        .iter()
        .flat_map(|&i| call.embeddings[i * d..(i + 1) * d].iter().copied())
        .collect();
    let labels: Vec<i64> = keep.iter().map(|&i| call.labels[i]).collect();
    let sigma: Option<Vec<u32>> = call.self_index.as_ref().map(|s| {
        s.iter()
            .map(|&v| {
                if v < 0 {
                    margin_core::NO_SELF
                } else {
                    v as u32
                }
            })
            .collect()
    });
    let input = LossInput::new(Embeddings::new(&x, keep.len(), d).unwrap(), &labels, None)
        .unwrap()
        .with_reference(ReferenceSet {
            embeddings: Embeddings::new(&call.ref_embeddings, call.m, d).unwrap(),
            labels: &call.ref_labels,
            self_index: sigma.as_deref(),
        })
        .unwrap();
    let out = match backend.loss(&loss, &input) {
        Ok(o) => o,
        Err(e) => return fail(format!("loss failed: {e}")),
    };
    let (got, want) = (out.loss(), call.value);
    if !((got - want).abs() <= VALUE_REL * want.abs() || (got - want).abs() <= VALUE_ABS) {
        fail(format!("loss {got} != expected {want}"));
    }
    if out.stats.active_terms != call.active {
        fail(format!(
            "active {:?} != expected {:?}",
            out.stats.active_terms, call.active
        ));
    }
    let mut full = vec![0.0f32; call.n * d];
    for (k, &i) in keep.iter().enumerate() {
        full[i * d..(i + 1) * d].copy_from_slice(&out.grad[k * d..(k + 1) * d]);
    }
    if let Some(m) = grad_mismatch(&full, &call.grad) {
        fail(format!("grad: {m}"));
    }
}

/// The two backends every case runs on: default budget, and one batch row per block.
fn backends() -> [(&'static str, CpuBackend); 2] {
    [
        ("default", CpuBackend::new()),
        ("streamed", CpuBackend::with_memory_budget(1)),
    ]
}

fn check_file(name: &str) {
    let file = load(name);
    let mut fails = Vec::new();
    let mut count = 0;
    for case in &file.cases {
        let call = case.call.as_ref().expect("a <loss>.json case has one call");
        for (budget, backend) in backends() {
            count += 1;
            let tag = format!("{} ({budget})", case.name);
            check_call(&backend, &tag, case, call, &mut fails);
        }
    }
    assert!(count > 0, "{name}: no cases");
    assert!(
        fails.is_empty(),
        "{} mismatches over {count} runs of {name}:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

macro_rules! fixture_tests {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_file($file);
            }
        )*
    };
}

fixture_tests! {
    contrastive => "contrastive.json",
    triplet => "triplet.json",
    quadruplet => "quadruplet.json",
    lifted_structure => "lifted-structure.json",
    multi_similarity => "multi-similarity.json",
    circle => "circle.json",
    nt_xent => "nt-xent.json",
    supcon => "supcon.json",
    generalized_lifted_structure => "generalized-lifted-structure.json",
}

#[test]
fn cross_batch_memory_calls() {
    let file = load("cross-batch-memory.json");
    let mut fails = Vec::new();
    let mut count = 0;
    for case in &file.cases {
        assert!(!case.calls.is_empty(), "{}: no calls", case.name);
        for (k, call) in case.calls.iter().enumerate() {
            for (budget, backend) in backends() {
                count += 1;
                let tag = format!("{} call {k} ({budget})", case.name);
                check_call(&backend, &tag, case, call, &mut fails);
            }
        }
    }
    assert!(
        fails.is_empty(),
        "{} mismatches over {count} calls:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

/// Timings at the size the backend is meant for (N = 4096, M = 16384, D = 128, 256 classes,
/// a cross-batch-memory-like self index): `cargo test --release -p margin-cpu --test
/// fast_reference_sets -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_large() {
    use rand::{Rng, SeedableRng};
    let (n, m, d, classes) = (4096usize, 16384usize, 128usize, 256i64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let rv: Vec<f32> = (0..m * d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let rl: Vec<i64> = (0..m as i64).map(|j| j % classes).collect();
    // The batch is the memory's first N rows (its own copies), as after an enqueue.
    let x = rv[..n * d].to_vec();
    let labels = rl[..n].to_vec();
    let sigma: Vec<u32> = (0..n as u32).collect();
    let input = LossInput::new(Embeddings::new(&x, n, d).unwrap(), &labels, None)
        .unwrap()
        .with_reference(ReferenceSet {
            embeddings: Embeddings::new(&rv, m, d).unwrap(),
            labels: &rl,
            self_index: Some(&sigma),
        })
        .unwrap();
    let backend = CpuBackend::new();
    let mut losses: Vec<(String, margin_core::Loss)> = LossKind::ALL
        .into_iter()
        .map(margin_core::Loss::default_for)
        .filter(|l| l.supports_reference())
        .map(|l| (l.kind().to_string(), l))
        .collect();
    for mining in [Mining::Hard, Mining::SemiHard] {
        let c = margin_core::TripletConfig {
            mining,
            ..Default::default()
        };
        losses.push((
            format!("triplet {}", mining.name()),
            margin_core::Loss::Triplet(c),
        ));
    }
    let q = margin_core::QuadrupletConfig {
        mining: Mining::Hard,
        ..Default::default()
    };
    losses.push(("quadruplet hard".into(), margin_core::Loss::Quadruplet(q)));
    let only = std::env::var("MARGIN_TIMING_ONLY").ok();
    for (name, loss) in &losses {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let (t, c) = (std::time::Instant::now(), cpu_seconds());
        let out = backend.loss(loss, &input).unwrap();
        println!(
            "{name:32} wall {:7.3} s  cpu {:7.3} s  loss {:.6} active {:?}",
            t.elapsed().as_secs_f64(),
            cpu_seconds() - c,
            out.loss(),
            out.stats.active_terms
        );
    }
}

/// CPU time of the whole process (all threads), for timings on a shared machine.
#[cfg(target_os = "linux")]
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(not(target_os = "linux"))]
fn cpu_seconds() -> f64 {
    0.0
}

/// Every supported loss and metric on random rectangles with a memory-like self index, against
/// the float64 reference, with a budget small enough for several blocks of batch rows (the
/// fixtures are one block, or one row per block).
#[test]
fn random_rectangles_match_the_reference_in_blocks() {
    use margin_cpu::ReferenceBackend;
    use rand::{Rng, SeedableRng};
    let mut configs = Vec::new();
    for kind in LossKind::ALL {
        let base = margin_core::Loss::default_for(kind);
        if !base.supports_reference() {
            continue;
        }
        let minings: &[Option<Mining>] = match kind {
            LossKind::Triplet => &[None, Some(Mining::Hard), Some(Mining::SemiHard)],
            LossKind::Quadruplet => &[None, Some(Mining::Hard)],
            _ => &[None],
        };
        for &mining in minings {
            for (distance, normalize) in [
                (Distance::Euclidean, true),
                (Distance::SquaredEuclidean, false),
                (Distance::Cosine, true),
                (Distance::Dot, false),
            ] {
                let overrides = LossOverrides {
                    distance: Some(distance),
                    normalize: Some(normalize),
                    mining,
                    ..Default::default()
                };
                if let Ok(loss) = overrides.apply(base)
                    && loss.validate().is_ok()
                {
                    configs.push(loss);
                }
            }
        }
    }
    let mut fails = Vec::new();
    for (t, loss) in configs.iter().enumerate() {
        let quad = loss.kind() == LossKind::Quadruplet;
        let (n, m, d) = if quad { (9, 14, 5) } else { (37, 83, 6) };
        let mut rng = rand::rngs::StdRng::seed_from_u64(900 + t as u64);
        let mut r: Vec<f32> = (0..m * d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let rl: Vec<i64> = (0..m).map(|_| rng.random_range(0..5)).collect();
        let x: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let labels: Vec<i64> = (0..n).map(|_| rng.random_range(0..6)).collect();
        let mut rl = rl;
        // Rows 0, 2, 4, ... have a copy in the reference (a memory slot), the others none.
        let sigma: Vec<u32> = (0..n)
            .map(|i| {
                if i % 2 == 1 {
                    return margin_core::NO_SELF;
                }
                let slot = (3 * i + 5) % m;
                r[slot * d..(slot + 1) * d].copy_from_slice(&x[i * d..(i + 1) * d]);
                rl[slot] = labels[i];
                slot as u32
            })
            .collect();
        let input = LossInput::new(Embeddings::new(&x, n, d).unwrap(), &labels, None)
            .unwrap()
            .with_reference(ReferenceSet {
                embeddings: Embeddings::new(&r, m, d).unwrap(),
                labels: &rl,
                self_index: Some(&sigma),
            })
            .unwrap();
        let want = ReferenceBackend.loss(loss, &input).unwrap();
        // 5 rows per block at M = 83 (two groups: 3 matrices).
        let got = CpuBackend::with_memory_budget(5 * m * 4 * 3)
            .loss(loss, &input)
            .unwrap();
        let tag = format!("{loss:?}");
        let (g, w) = (got.loss(), want.loss());
        if (g - w).abs() > VALUE_REL * w.abs() && (g - w).abs() > VALUE_ABS {
            fails.push(format!("{tag}: loss {g} vs {w}"));
        }
        if got.stats.active_terms != want.stats.active_terms {
            fails.push(format!(
                "{tag}: active {:?} vs {:?}",
                got.stats.active_terms, want.stats.active_terms
            ));
        }
        let want_grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
        if let Some(msg) = grad_mismatch(&got.grad, &want_grad) {
            fails.push(format!("{tag}: grad {msg}"));
        }
    }
    assert!(configs.len() > 30, "only {} configs", configs.len());
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
