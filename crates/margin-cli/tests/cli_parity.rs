//! The golden fixtures (pytorch-metric-learning and float64 evaluations of the SPEC, in
//! `tests/fixtures/pml/`) run through `margin loss ... --backend B` exactly as a user would:
//! .npy files in, JSON and gradient .npy files out. Loss within 1e-4 relative (1e-6 absolute),
//! gradients within 1e-3 relative norm, as the SPEC's precision section asks of every backend.
//! The reference-set fixtures (`tests/fixtures/pml_ref/`, PML's `ref_emb`) run the same way with
//! `--ref-embeddings --ref-labels [--ref-self-index]`.

mod common;

use common::{margin, read_f32, rel_norm_diff, scratch, write_npy};
use serde_json::Value;
use std::path::PathBuf;

const LOSS_RTOL: f64 = 1e-4;
const LOSS_ATOL: f64 = 1e-6;
const GRAD_RTOL: f64 = 1e-3;

fn fixtures() -> Vec<Value> {
    let mut cases = fixtures_in("pml");
    cases.extend(fixtures_in("pml_ref"));
    assert!(
        cases.len() >= 200,
        "expected the square and reference-set fixtures, found {}",
        cases.len()
    );
    cases
}

/// Every case of every `.json` in `tests/fixtures/<sub>` (CrossBatchMemory sequences, which
/// have `calls` instead of `cases`, are left to the library tests).
fn fixtures_in(sub: &str) -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(sub);
    let mut cases = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&f).expect("read")).expect("json");
        if let Some(list) = v["cases"].as_array() {
            cases.extend(list.iter().filter(|c| c["n"].is_u64()).cloned());
        }
    }
    cases
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn flags(params: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in params.as_object().expect("params") {
        let flag = format!("--{}", key.replace('_', "-"));
        match (key.as_str(), value) {
            ("normalize", Value::Bool(true)) => out.push("--normalize".into()),
            ("normalize", Value::Bool(false)) => out.push("--no-normalize".into()),
            ("smooth", Value::Bool(true)) => out.push("--smooth".into()),
            ("smooth", Value::Bool(false)) => {}
            (_, Value::String(s)) => out.extend([flag, s.clone()]),
            (_, Value::Number(x)) => out.extend([flag, x.to_string()]),
            other => panic!("unexpected param {other:?}"),
        }
    }
    out
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("int"))
        .collect()
}

/// Runs one case; returns a message on disagreement.
fn run_case(case: &Value, backend: &str, dir: &std::path::Path) -> Result<(), String> {
    let name = case["name"].as_str().unwrap_or("?");
    let (n, d) = (
        case["n"].as_u64().expect("n"),
        case["d"].as_u64().expect("d"),
    );
    let x: Vec<f32> = floats(&case["embeddings"])
        .iter()
        .map(|&v| v as f32)
        .collect();
    let y: Vec<i64> = case["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|v| v.as_i64().expect("int"))
        .collect();
    let (xp, yp, gp) = (dir.join("x.npy"), dir.join("y.npy"), dir.join("g.npy"));
    let (cp, cgp) = (dir.join("c.npy"), dir.join("cg.npy"));
    write_npy(&xp, &x, &[n, d]);
    write_npy(&yp, &y, &[n]);
    let _ = std::fs::remove_file(&gp);
    let loss = case["loss"].as_str().expect("loss");
    let mut args: Vec<String> = vec![
        "loss".into(),
        loss.into(),
        "--embeddings".into(),
        xp.display().to_string(),
        "--labels".into(),
        yp.display().to_string(),
        "--backend".into(),
        backend.into(),
        "--grad-out".into(),
        gp.display().to_string(),
    ];
    if let Some(k) = case["k"].as_u64() {
        let c: Vec<f32> = floats(&case["centers"]).iter().map(|&v| v as f32).collect();
        write_npy(&cp, &c, &[k, d]);
        args.extend([
            "--centers".into(),
            cp.display().to_string(),
            "--center-grad-out".into(),
            cgp.display().to_string(),
        ]);
    }
    if let Some(m) = case["m"].as_u64() {
        let (rp, rlp, sp) = (dir.join("r.npy"), dir.join("rl.npy"), dir.join("s.npy"));
        let r: Vec<f32> = floats(&case["ref_embeddings"])
            .iter()
            .map(|&v| v as f32)
            .collect();
        let rl: Vec<i64> = ints(&case["ref_labels"]);
        write_npy(&rp, &r, &[m, d]);
        write_npy(&rlp, &rl, &[m]);
        args.extend([
            "--ref-embeddings".into(),
            rp.display().to_string(),
            "--ref-labels".into(),
            rlp.display().to_string(),
        ]);
        if case["self_index"].is_array() {
            write_npy(&sp, &ints(&case["self_index"]), &[n]);
            args.extend(["--ref-self-index".into(), sp.display().to_string()]);
        }
    }
    args.extend(flags(&case["params"]));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = margin(&argv);
    if !out.status.success() {
        return Err(format!(
            "{name} on {backend}: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let json: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{name}: bad JSON: {e}"))?;
    let got = json["loss"].as_f64().ok_or(format!("{name}: no loss"))?;
    if json["m"] != case["m"] {
        return Err(format!("{name}: JSON m {} vs {}", json["m"], case["m"]));
    }
    let want = case["value"].as_f64().expect("value");
    if (got - want).abs() > LOSS_ATOL.max(LOSS_RTOL * want.abs()) || got.is_nan() {
        return Err(format!("{name} on {backend}: loss {got} vs {want}"));
    }
    let g = rel_norm_diff(&read_f32(&gp), &floats(&case["grad"]));
    if g.is_nan() || g > GRAD_RTOL {
        return Err(format!("{name} on {backend}: gradient off by {g:.2e}"));
    }
    if case["k"].is_u64() {
        let cg = rel_norm_diff(&read_f32(&cgp), &floats(&case["center_grad"]));
        if cg.is_nan() || cg > GRAD_RTOL {
            return Err(format!(
                "{name} on {backend}: center gradient off by {cg:.2e}"
            ));
        }
    }
    Ok(())
}

fn run_all(backend: &str) {
    let dir = scratch(&format!("cli-parity-{backend}"));
    let failures: Vec<String> = fixtures()
        .iter()
        .filter_map(|c| run_case(c, backend, &dir).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_fixtures_through_the_cli_on_cpu() {
    run_all("cpu");
}

#[test]
fn golden_fixtures_through_the_cli_on_the_reference() {
    run_all("reference");
}

/// Runs on wgpu when an adapter is there (lavapipe in CI, where `MARGIN_REQUIRE_WGPU=1` makes a
/// missing adapter a failure); otherwise says it skips.
#[test]
fn golden_fixtures_through_the_cli_on_wgpu() {
    if !common::wgpu_available() {
        return;
    }
    run_all("wgpu");
}
