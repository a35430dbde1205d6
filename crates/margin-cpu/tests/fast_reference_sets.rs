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

#[path = "../../../tests/support/mod.rs"]
mod support;

use margin_core::{
    Backend, Distance, Embeddings, LossInput, LossKind, LossOverrides, Mining, ReferenceSet,
};
use margin_cpu::CpuBackend;
use support::golden::{grad_mismatch, value_close};
use support::ref_fixtures::{RefCase, cbm_cases, ref_file};

const VALUE_REL: f64 = 1e-4;
const VALUE_ABS: f64 = 1e-6;
const GRAD_REL: f64 = 1e-3;
const GRAD_ABS: f64 = 1e-6;

/// Runs one case (a call already cut down to its anchors) on `backend`; pushes one line per
/// mismatch.
fn check_case(backend: &CpuBackend, tag: &str, case: &RefCase, fails: &mut Vec<String>) {
    let mut fail = |msg: String| fails.push(format!("{tag}: {msg}"));
    let loss = case.params.loss(&case.loss).unwrap();
    let out = match case.with_input(|input| backend.loss(&loss, input).map_err(|e| e.to_string())) {
        Ok(o) => o,
        Err(e) => return fail(format!("loss failed: {e}")),
    };
    let (got, want) = (out.loss(), case.value);
    if !value_close(got, want, VALUE_REL, VALUE_ABS) {
        fail(format!("loss {got} != expected {want}"));
    }
    if out.stats.active_terms != case.active {
        fail(format!(
            "active {:?} != expected {:?}",
            out.stats.active_terms, case.active
        ));
    }
    if let Some(m) = grad_mismatch(&out.grad, &case.grad, GRAD_REL, GRAD_ABS) {
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
    let file = ref_file(name.trim_end_matches(".json"));
    let mut fails = Vec::new();
    let mut count = 0;
    for case in &file.cases {
        for (budget, backend) in backends() {
            count += 1;
            let tag = format!("{} ({budget})", case.name);
            check_case(&backend, &tag, case, &mut fails);
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
    let mut fails = Vec::new();
    let mut count = 0;
    for (case, _) in cbm_cases() {
        for (budget, backend) in backends() {
            count += 1;
            let tag = format!("{} ({budget})", case.name);
            check_case(&backend, &tag, &case, &mut fails);
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
        if !value_close(g, w, VALUE_REL, VALUE_ABS) {
            fails.push(format!("{tag}: loss {g} vs {w}"));
        }
        if got.stats.active_terms != want.stats.active_terms {
            fails.push(format!(
                "{tag}: active {:?} vs {:?}",
                got.stats.active_terms, want.stats.active_terms
            ));
        }
        let want_grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
        if let Some(msg) = grad_mismatch(&got.grad, &want_grad, GRAD_REL, GRAD_ABS) {
            fails.push(format!("{tag}: grad {msg}"));
        }
    }
    assert!(configs.len() > 30, "only {} configs", configs.len());
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
