//! The golden fixtures (pytorch-metric-learning and float64 evaluations of the SPEC, in
//! `tests/fixtures/pml/`) run through `margin loss ... --backend B` exactly as a user would:
//! .npy files in, JSON and gradient .npy files out. Loss within 1e-4 relative (1e-6 absolute),
//! gradients within 1e-3 relative norm, as the SPEC's precision section asks of every backend.
//! The reference-set fixtures (`tests/fixtures/pml_ref/`, PML's `ref_emb`) run the same way with
//! `--ref-embeddings --ref-labels [--ref-self-index]`.

mod common;

use common::{
    fixture_cases, json_ints, margin, path_args, read_f32, rel_norm_diff, scratch, write_npy,
};
use serde_json::Value;

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

/// Every loss case of `tests/fixtures/<sub>` (CrossBatchMemory sequences, which have `calls`
/// instead of `n`, are left to the library tests).
fn fixtures_in(sub: &str) -> Vec<Value> {
    let cases = fixture_cases(sub).into_iter();
    cases.filter(|c| c["n"].is_u64()).collect()
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
    let mut args: Vec<String> = vec!["loss".into(), loss.into()];
    args.extend(path_args(&[("--embeddings", &xp), ("--labels", &yp)]));
    args.extend(["--backend".into(), backend.into()]);
    args.extend(path_args(&[("--grad-out", &gp)]));
    if let Some(k) = case["k"].as_u64() {
        let c: Vec<f32> = floats(&case["centers"]).iter().map(|&v| v as f32).collect();
        write_npy(&cp, &c, &[k, d]);
        args.extend(path_args(&[
            ("--centers", &cp),
            ("--center-grad-out", &cgp),
        ]));
    }
    if let Some(m) = case["m"].as_u64() {
        let (rp, rlp, sp) = (dir.join("r.npy"), dir.join("rl.npy"), dir.join("s.npy"));
        let r: Vec<f32> = floats(&case["ref_embeddings"])
            .iter()
            .map(|&v| v as f32)
            .collect();
        let rl: Vec<i64> = json_ints(&case["ref_labels"]);
        write_npy(&rp, &r, &[m, d]);
        write_npy(&rlp, &rl, &[m]);
        args.extend(path_args(&[
            ("--ref-embeddings", &rp),
            ("--ref-labels", &rlp),
        ]));
        if case["self_index"].is_array() {
            write_npy(&sp, &json_ints(&case["self_index"]), &[n]);
            args.extend(path_args(&[("--ref-self-index", &sp)]));
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

common::on_every_backend!(run_all =>
    golden_fixtures_through_the_cli_on_cpu,
    golden_fixtures_through_the_cli_on_the_reference,
    golden_fixtures_through_the_cli_on_wgpu);
