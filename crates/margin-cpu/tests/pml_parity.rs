//! Parity of the f64 reference with golden values from pytorch-metric-learning (PML) and from a
//! float64 torch transcription of the SPEC (`tests/fixtures/pml`, written by
//! `scripts/pml_golden.py`; see the README there). The reference is the oracle for every other
//! backend, so this is what ties all of margin to PML's numbers.
//!
//! Every case is checked twice: through [`Backend::loss`] (f32 in, f64 inside, f32 gradient out)
//! and through [`reference::evaluate`] (f64 gradient), so a rounding slip inside the reference that
//! the f32 output would hide still shows. All failures are collected and reported by case name.

use margin_core::{Backend, Distance, LossInput, LossKind, LossOverrides, Mining};
use margin_cpu::reference::{self, ReferenceBackend};
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

#[derive(Debug, Deserialize)]
struct FixtureFile {
    torch: String,
    pytorch_metric_learning: String,
    loss: String,
    cases: Vec<Case>,
}

/// Only the parameters a case overrides; the rest are the SPEC defaults.
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
struct Case {
    name: String,
    loss: String,
    source: String,
    #[serde(default)]
    params: Params,
    n: usize,
    d: usize,
    labels: Vec<i64>,
    embeddings: Vec<f32>,
    k: Option<usize>,
    centers: Option<Vec<f32>>,
    value: f64,
    active: [u64; 2],
    grad: Vec<f64>,
    center_grad: Option<Vec<f64>>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pml")
}

fn load_all() -> Vec<(String, FixtureFile)> {
    let dir = fixture_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let file: FixtureFile = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: bad fixture: {e}", path.display()));
            (path.display().to_string(), file)
        })
        .collect()
}

fn build_loss(case: &Case) -> Result<margin_core::Loss, String> {
    let kind: LossKind = case.loss.parse().map_err(|e| format!("{e}"))?;
    let p = &case.params;
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

/// Checks one case; pushes one line per mismatch onto `fails`.
fn check_case(case: &Case, fails: &mut Vec<String>) {
    let tag = format!("{} [{}]", case.name, case.source);
    let mut fail = |msg: String| fails.push(format!("{tag}: {msg}"));
    let loss = match build_loss(case) {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot build the loss: {e}")),
    };
    let (n, d) = (case.n, case.d);
    let centers = match (&case.centers, case.k) {
        (Some(c), Some(k)) => Some((c.as_slice(), k, d)),
        (None, None) => None,
        _ => return fail("fixture has centers without k or k without centers".into()),
    };
    let input = match LossInput::from_slices(&case.embeddings, n, d, &case.labels, centers) {
        Ok(i) => i,
        Err(e) => return fail(format!("bad input: {e}")),
    };

    // f32 face: the Backend trait, as every other backend is driven.
    match ReferenceBackend.loss(&loss, &input) {
        Err(e) => fail(format!("Backend::loss failed: {e}")),
        Ok(out) => {
            if !close_value(out.loss(), case.value) {
                fail(format!("loss {} != expected {}", out.loss(), case.value));
            }
            if out.stats.active_terms != case.active {
                fail(format!(
                    "active terms {:?} != expected {:?}",
                    out.stats.active_terms, case.active
                ));
            }
            if let Some(m) = grad_mismatch(&out.grad, &case.grad, GRAD_F32_REL) {
                fail(format!("grad (f32): {m}"));
            }
            match (&out.center_grad, &case.center_grad) {
                (Some(g), Some(w)) => {
                    if let Some(m) = grad_mismatch(g, w, GRAD_F32_REL) {
                        fail(format!("center grad (f32): {m}"));
                    }
                }
                (None, Some(_)) => fail("no center gradient returned".into()),
                _ => {}
            }
        }
    }

    // f64 face: the oracle's own entry point.
    let x: Vec<f64> = case.embeddings.iter().map(|&v| f64::from(v)).collect();
    let c64: Option<Vec<f64>> = case
        .centers
        .as_ref()
        .map(|c| c.iter().map(|&v| f64::from(v)).collect());
    let c_arg = c64.as_deref().zip(case.k);
    match reference::evaluate(&loss, &x, n, d, &case.labels, c_arg) {
        Err(e) => fail(format!("reference::evaluate failed: {e}")),
        Ok(out) => {
            if !close_value(out.stats.loss, case.value) {
                fail(format!(
                    "evaluate loss {} != expected {}",
                    out.stats.loss, case.value
                ));
            }
            if let Some(m) = grad_mismatch(&out.grad, &case.grad, GRAD_F64_REL) {
                fail(format!("grad (f64): {m}"));
            }
            if let (Some(g), Some(w)) = (&out.center_grad, &case.center_grad)
                && let Some(m) = grad_mismatch(g, w, GRAD_F64_REL)
            {
                fail(format!("center grad (f64): {m}"));
            }
        }
    }
}

#[test]
fn fixtures_are_well_formed_and_cover_every_loss() {
    let files = load_all();
    for kind in LossKind::ALL {
        let count: usize = files
            .iter()
            .flat_map(|(_, f)| &f.cases)
            .filter(|c| c.loss == kind.name())
            .count();
        assert!(count >= 5, "only {count} fixtures for {kind}");
    }
    for (path, file) in &files {
        assert!(!file.torch.is_empty() && !file.pytorch_metric_learning.is_empty());
        for case in &file.cases {
            assert_eq!(case.loss, file.loss, "{path}: {}", case.name);
            assert_eq!(case.embeddings.len(), case.n * case.d, "{}", case.name);
            assert_eq!(case.labels.len(), case.n, "{}", case.name);
            assert_eq!(case.grad.len(), case.n * case.d, "{}", case.name);
            assert!(
                case.source == "pml" || case.source == "torch-f64-spec",
                "{}: source {}",
                case.name,
                case.source
            );
            build_loss(case).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        }
    }
}

#[test]
fn reference_matches_pml_and_torch_f64_goldens() {
    let files = load_all();
    let mut fails = Vec::new();
    let mut total = 0usize;
    for (_, file) in &files {
        for case in &file.cases {
            total += 1;
            check_case(case, &mut fails);
        }
    }
    assert!(
        total > 0,
        "no fixtures found in {}",
        fixture_dir().display()
    );
    assert!(
        fails.is_empty(),
        "{} mismatches over {total} golden cases:\n{}",
        fails.len(),
        fails.join("\n")
    );
}
