//! Parity of the f64 reference with reference sets (`docs/REFERENCE_SETS.md`) against golden
//! values from pytorch-metric-learning 2.9 with `ref_emb` / `ref_labels`, from a float64 torch
//! transcription of the contract's quadruplet, and from PML's `CrossBatchMemory`
//! (`tests/fixtures/pml_ref`, written by `scripts/pml_ref_golden.py`; format in its README).
//!
//! Every case is checked twice: through [`Backend::loss`] with a [`ReferenceSet`] (f32 in, f64
//! inside, f32 gradient out) and through [`reference::evaluate_with_reference`] (f64 gradient).
//! Cross-batch-memory calls use the plain API: the memory as PML read it is the reference set,
//! `self_index` the batch's slots; with an `enqueue_mask` the batch is the unmasked rows, with no
//! self index, and the masked rows' gradient is 0. All failures are reported by case name.

use margin_core::{
    Backend, Distance, Embeddings, LossInput, LossKind, LossOverrides, Mining, NO_SELF,
    ReferenceSet,
};
use margin_cpu::reference::{self, RefSet, ReferenceBackend};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Loss values: relative tolerance, and the absolute floor near 0.
const VALUE_REL: f64 = 1e-6;
const VALUE_ABS: f64 = 1e-9;
/// Gradients through the f32 output: `‖g − g_ref‖ <= GRAD_F32_REL ‖g_ref‖ + GRAD_ABS`.
const GRAD_F32_REL: f64 = 1e-5;
/// Gradients from the f64 entry point (the fixtures carry 12 significant digits).
const GRAD_F64_REL: f64 = 1e-7;
const GRAD_ABS: f64 = 1e-9;

/// The losses with a golden file of their own (n-pair and triplet-center reject a reference).
const LOSS_FILES: [&str; 9] = [
    "contrastive",
    "triplet",
    "quadruplet",
    "lifted-structure",
    "multi-similarity",
    "circle",
    "nt-xent",
    "supcon",
    "generalized-lifted-structure",
];

#[derive(Debug, Deserialize)]
struct FixtureFile {
    torch: String,
    pytorch_metric_learning: String,
    loss: String,
    cases: Vec<Case>,
}

/// Only the parameters a case overrides; the rest are the defaults.
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

/// One loss call: a batch against a reference set, with PML's results.
#[derive(Debug, Deserialize)]
struct Call {
    n: usize,
    labels: Vec<i64>,
    embeddings: Vec<f32>,
    m: usize,
    ref_labels: Vec<i64>,
    ref_embeddings: Vec<f32>,
    /// Negative entries (if any) mean "no copy".
    self_index: Option<Vec<i64>>,
    enqueue_mask: Option<Vec<bool>>,
    value: f64,
    active: [u64; 2],
    grad: Vec<f64>,
}

/// A `<loss>.json` case: one call plus its configuration.
#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    loss: String,
    source: String,
    #[serde(default)]
    params: Params,
    d: usize,
    #[serde(flatten)]
    call: Call,
}

/// A `cross-batch-memory.json` case: consecutive calls on one memory.
#[derive(Debug, Deserialize)]
struct MemoryCase {
    name: String,
    loss: String,
    #[serde(default)]
    params: Params,
    d: usize,
    memory_size: usize,
    calls: Vec<Call>,
}

#[derive(Debug, Deserialize)]
struct MemoryFile {
    cases: Vec<MemoryCase>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pml_ref")
}

fn read<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = fixture_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: bad fixture: {e}", path.display()))
}

fn build_loss(loss: &str, p: &Params) -> Result<margin_core::Loss, String> {
    let kind: LossKind = loss.parse().map_err(|e| format!("{e}"))?;
    let distance = p
        .distance
        .as_deref()
        .map(str::parse::<Distance>)
        .transpose()
        .map_err(|e| format!("{e}"))?;
    let mining = p
        .mining
        .as_deref()
        .map(str::parse::<Mining>)
        .transpose()
        .map_err(|e| format!("{e}"))?;
    let overrides = LossOverrides {
        distance,
        normalize: p.normalize,
        margin: p.margin,
        margin2: p.margin2,
        pos_margin: p.pos_margin,
        neg_margin: p.neg_margin,
        smooth: p.smooth,
        mining,
        alpha: p.alpha,
        beta: p.beta,
        base: p.base,
        gamma: p.gamma,
        temperature: p.temperature,
    };
    overrides
        .apply(margin_core::Loss::default_for(kind))
        .map_err(|e| format!("{e}"))
}

fn close_value(got: f64, want: f64) -> bool {
    (got - want).abs() <= VALUE_REL * want.abs() || (got - want).abs() <= VALUE_ABS
}

/// `None` when within `rel`, else a description of the mismatch.
fn grad_mismatch<T: Copy + Into<f64>>(got: &[T], want: &[f64], rel: f64) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("length {} != {}", got.len(), want.len()));
    }
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let e = (g.into() - w).abs();
        if e > worst.1 {
            worst = (i, e);
        }
        diff += e * e;
        norm += w * w;
    }
    let (diff, norm) = (diff.sqrt(), norm.sqrt());
    if diff <= rel * norm + GRAD_ABS {
        return None;
    }
    let i = worst.0;
    Some(format!(
        "‖Δ‖/‖g‖ = {diff:.3e}/{norm:.3e}; worst at {i}: got {}, want {}",
        got[i].into(),
        want[i]
    ))
}

/// The batch a call evaluates: every row, or with an enqueue mask only the unmasked rows (the
/// anchors). Returns `(row ids, embeddings, labels)`.
fn anchors(call: &Call, d: usize) -> (Vec<usize>, Vec<f32>, Vec<i64>) {
    let rows: Vec<usize> = match &call.enqueue_mask {
        Some(mask) => (0..call.n).filter(|&i| !mask[i]).collect(),
        None => (0..call.n).collect(),
    };
    let x = rows
        .iter()
        .flat_map(|&i| call.embeddings[i * d..(i + 1) * d].iter().copied())
        .collect();
    let y = rows.iter().map(|&i| call.labels[i]).collect();
    (rows, x, y)
}

/// The batch-sized gradient from the anchors' rows (rows that were only enqueued get 0).
fn scatter<T: Copy + Default>(rows: &[usize], g: &[T], n: usize, d: usize) -> Vec<T> {
    let mut out = vec![T::default(); n * d];
    for (k, &i) in rows.iter().enumerate() {
        out[i * d..(i + 1) * d].copy_from_slice(&g[k * d..(k + 1) * d]);
    }
    out
}

/// Checks one call through both faces; pushes one line per mismatch onto `fails`.
fn check_call(tag: &str, loss: &margin_core::Loss, d: usize, call: &Call, fails: &mut Vec<String>) {
    let mut fail = |msg: String| fails.push(format!("{tag}: {msg}"));
    if call.embeddings.len() != call.n * d
        || call.ref_embeddings.len() != call.m * d
        || call.ref_labels.len() != call.m
        || call.grad.len() != call.n * d
    {
        return fail("malformed fixture (shapes)".into());
    }
    if call.enqueue_mask.is_some() && call.self_index.is_some() {
        return fail("an enqueue mask comes without a self index".into());
    }
    let (rows, x, y) = anchors(call, d);
    let sigma: Option<Vec<u32>> = call.self_index.as_ref().map(|s| {
        s.iter()
            .map(|&v| u32::try_from(v).unwrap_or(NO_SELF))
            .collect()
    });

    // f32 face: the Backend trait with a ReferenceSet, as every other backend is driven.
    let f32_out = Embeddings::new(&x, rows.len(), d)
        .and_then(|xe| LossInput::new(xe, &y, None))
        .and_then(|input| {
            let r = Embeddings::named(&call.ref_embeddings, call.m, d, "reference")?;
            input.with_reference(ReferenceSet {
                embeddings: r,
                labels: &call.ref_labels,
                self_index: sigma.as_deref(),
            })
        })
        .and_then(|input| ReferenceBackend.loss(loss, &input));
    match f32_out {
        Err(e) => fail(format!("Backend::loss failed: {e}")),
        Ok(out) => {
            if !close_value(out.loss(), call.value) {
                fail(format!("loss {} != expected {}", out.loss(), call.value));
            }
            if out.stats.active_terms != call.active {
                fail(format!(
                    "active terms {:?} != expected {:?}",
                    out.stats.active_terms, call.active
                ));
            }
            let g = scatter(&rows, &out.grad, call.n, d);
            if let Some(m) = grad_mismatch(&g, &call.grad, GRAD_F32_REL) {
                fail(format!("grad (f32): {m}"));
            }
        }
    }

    // f64 face: the oracle's own entry point.
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let r64: Vec<f64> = call.ref_embeddings.iter().map(|&v| f64::from(v)).collect();
    let reference = RefSet {
        embeddings: &r64,
        m: call.m,
        labels: &call.ref_labels,
        self_index: sigma.as_deref(),
    };
    match reference::evaluate_with_reference(loss, &x64, rows.len(), d, &y, reference) {
        Err(e) => fail(format!("evaluate_with_reference failed: {e}")),
        Ok(out) => {
            if !close_value(out.stats.loss, call.value) {
                fail(format!(
                    "evaluate loss {} != expected {}",
                    out.stats.loss, call.value
                ));
            }
            if out.stats.active_terms != call.active {
                fail(format!(
                    "evaluate active terms {:?} != expected {:?}",
                    out.stats.active_terms, call.active
                ));
            }
            let g = scatter(&rows, &out.grad, call.n, d);
            if let Some(m) = grad_mismatch(&g, &call.grad, GRAD_F64_REL) {
                fail(format!("grad (f64): {m}"));
            }
        }
    }
}

#[test]
fn reference_sets_match_pml_goldens() {
    let mut fails = Vec::new();
    let mut total = 0usize;
    for name in LOSS_FILES {
        let file: FixtureFile = read(name);
        assert_eq!(file.loss, name);
        assert!(!file.torch.is_empty() && !file.pytorch_metric_learning.is_empty());
        assert!(
            file.cases.len() >= 5,
            "only {} cases in {name}",
            file.cases.len()
        );
        for case in &file.cases {
            total += 1;
            let tag = format!("{} [{}]", case.name, case.source);
            assert_eq!(case.loss, name, "{tag}");
            assert!(case.call.enqueue_mask.is_none(), "{tag}");
            match build_loss(&case.loss, &case.params) {
                Ok(loss) => check_call(&tag, &loss, case.d, &case.call, &mut fails),
                Err(e) => fails.push(format!("{tag}: cannot build the loss: {e}")),
            }
        }
    }
    println!("{total} reference-set cases checked");
    assert!(
        fails.is_empty(),
        "{} mismatches over {total} golden cases:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

#[test]
fn cross_batch_memory_calls_match_pml() {
    let file: MemoryFile = read("cross-batch-memory");
    let mut fails = Vec::new();
    let mut total = 0usize;
    for case in &file.cases {
        let loss = match build_loss(&case.loss, &case.params) {
            Ok(l) => l,
            Err(e) => {
                fails.push(format!("{}: cannot build the loss: {e}", case.name));
                continue;
            }
        };
        for (k, call) in case.calls.iter().enumerate() {
            total += 1;
            let tag = format!("{} call {k}", case.name);
            assert!(call.m <= case.memory_size, "{tag}");
            check_call(&tag, &loss, case.d, call, &mut fails);
        }
    }
    assert!(total >= 12, "only {total} calls");
    assert!(
        fails.is_empty(),
        "{} mismatches over {total} cross-batch-memory calls:\n{}",
        fails.len(),
        fails.join("\n")
    );
}
