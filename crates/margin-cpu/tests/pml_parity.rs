//! Parity of the f64 reference with golden values from pytorch-metric-learning (PML) and from a
//! float64 torch transcription of the SPEC (`tests/fixtures/pml`, written by
//! `scripts/pml_golden.py`; see the README there). The reference is the oracle for every other
//! backend, so this is what ties all of margin to PML's numbers.
//!
//! Every case is checked twice: through [`Backend::loss`] (f32 in, f64 inside, f32 gradient out)
//! and through [`reference::evaluate`] (f64 gradient), so a rounding slip inside the reference that
//! the f32 output would hide still shows. All failures are collected and reported by case name.

#[path = "../../../tests/support/mod.rs"]
mod support;

use margin_core::{Backend, LossInput, LossKind};
use margin_cpu::reference::{self, ReferenceBackend};
use serde::Deserialize;
use std::path::PathBuf;
use support::golden::oracle::{GRAD_ABS, GRAD_F32_REL, GRAD_F64_REL};
use support::golden::{
    Expected, Params, fixture_dir, grad_mismatch, json_files, oracle_mismatches, read_json,
};

#[derive(Debug, Deserialize)]
struct FixtureFile {
    torch: String,
    pytorch_metric_learning: String,
    loss: String,
    cases: Vec<Case>,
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

fn pml_dir() -> PathBuf {
    fixture_dir("pml")
}

fn load_all() -> Vec<(String, FixtureFile)> {
    json_files(&pml_dir(), None)
        .into_iter()
        .map(|path| (path.display().to_string(), read_json(&path)))
        .collect()
}

fn build_loss(case: &Case) -> Result<margin_core::Loss, String> {
    case.params.loss(&case.loss)
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

    let want = Expected {
        value: case.value,
        active: case.active,
        grad: &case.grad,
    };

    // f32 face: the Backend trait, as every other backend is driven.
    match ReferenceBackend.loss(&loss, &input) {
        Err(e) => fail(format!("Backend::loss failed: {e}")),
        Ok(out) => {
            let got = (out.loss(), Some(out.stats.active_terms), &out.grad[..]);
            let misses = oracle_mismatches("Backend::loss (f32)", got, &want, GRAD_F32_REL);
            misses.into_iter().for_each(&mut fail);
            match (&out.center_grad, &case.center_grad) {
                (Some(g), Some(w)) => {
                    if let Some(m) = grad_mismatch(g, w, GRAD_F32_REL, GRAD_ABS) {
                        fail(format!("center grad (f32): {m}"));
                    }
                }
                (None, Some(_)) => fail("no center gradient returned".into()),
                _ => {}
            }
        }
    }

    // f64 face: the oracle's own entry point (which reports no active counts here).
    let x: Vec<f64> = case.embeddings.iter().map(|&v| f64::from(v)).collect();
    let c64: Option<Vec<f64>> = case
        .centers
        .as_ref()
        .map(|c| c.iter().map(|&v| f64::from(v)).collect());
    let c_arg = c64.as_deref().zip(case.k);
    match reference::evaluate(&loss, &x, n, d, &case.labels, c_arg) {
        Err(e) => fail(format!("reference::evaluate failed: {e}")),
        Ok(out) => {
            let got = (out.stats.loss, None, &out.grad[..]);
            let misses = oracle_mismatches("evaluate (f64)", got, &want, GRAD_F64_REL);
            misses.into_iter().for_each(&mut fail);
            if let (Some(g), Some(w)) = (&out.center_grad, &case.center_grad)
                && let Some(m) = grad_mismatch(g, w, GRAD_F64_REL, GRAD_ABS)
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
    assert!(total > 0, "no fixtures found in {}", pml_dir().display());
    assert!(
        fails.is_empty(),
        "{} mismatches over {total} golden cases:\n{}",
        fails.len(),
        fails.join("\n")
    );
}
