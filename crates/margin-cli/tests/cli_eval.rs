//! `margin eval` against the golden fixtures of `scripts/pml_eval_golden.py` (pytorch-metric-
//! learning 2.9's `AccuracyCalculator()` with an exact k-NN), run as a user would: .npy files in,
//! one JSON line out, on the fast CPU and the reference backends, within 1e-6. Also the library
//! call with tiny block sizes, and malformed input (exit 2, one stderr line).

mod common;

use common::{fixture_cases, json_ints, margin, path_args, scratch, write_npy};
use margin_core::{Distance, Embeddings, HostBackend, Metric, evaluate_retrieval};
use margin_cpu::{CpuBackend, ReferenceBackend};
use serde_json::Value;
use std::path::Path;

const TOL: f64 = 1e-6;
const METRICS: [&str; 4] = [
    "precision_at_1",
    "r_precision",
    "mean_average_precision_at_r",
    "mean_reciprocal_rank",
];

fn fixtures() -> Vec<Value> {
    let cases = fixture_cases("eval");
    assert!(
        cases.len() >= 30,
        "expected the eval fixtures, found {}",
        cases.len()
    );
    cases
}

/// Row-major f32 values and the shape of a JSON matrix.
fn matrix(v: &Value) -> (Vec<f32>, usize, usize) {
    let rows = v.as_array().expect("rows");
    let cols = rows[0].as_array().expect("row").len();
    let data = rows
        .iter()
        .flat_map(|r| r.as_array().expect("row").iter())
        .map(|x| x.as_f64().expect("number") as f32)
        .collect();
    (data, rows.len(), cols)
}

fn write_matrix(path: &Path, v: &Value) {
    let (data, rows, cols) = matrix(v);
    write_npy(path, &data, &[rows as u64, cols as u64]);
}

fn write_labels(path: &Path, v: &Value) {
    let l = json_ints(v);
    write_npy(path, &l, &[l.len() as u64]);
}

fn metric_of(case: &Value) -> Metric {
    let distance: Distance = case["distance"]
        .as_str()
        .expect("distance")
        .parse()
        .unwrap();
    Metric::new(distance, case["normalize"].as_bool().expect("normalize"))
}

/// Compares one metric; a null expectation (PML's NaN) must come back as null.
fn check(name: &str, what: &str, got: &Value, want: &Value) {
    match (got.as_f64(), want.as_f64()) {
        (Some(g), Some(w)) => assert!((g - w).abs() <= TOL, "{name} {what}: got {g}, want {w}"),
        (None, None) => assert!(got.is_null(), "{name} {what}: got {got}"),
        _ => panic!("{name} {what}: got {got}, want {want}"),
    }
}

fn run_case(dir: &Path, case: &Value, backend: &str) -> Value {
    let name = case["name"].as_str().expect("name");
    let q = dir.join(format!("{name}-q.npy"));
    let ql = dir.join(format!("{name}-ql.npy"));
    write_matrix(&q, &case["query"]);
    write_labels(&ql, &case["query_labels"]);
    let mut args: Vec<String> = vec!["eval".into()];
    args.extend(path_args(&[("--query", &q), ("--query-labels", &ql)]));
    args.extend([
        "--backend".into(),
        backend.into(),
        "--distance".into(),
        case["distance"].as_str().expect("distance").into(),
    ]);
    args.push(if case["normalize"].as_bool().expect("normalize") {
        "--normalize".into()
    } else {
        "--no-normalize".into()
    });
    match &case["k"] {
        Value::Null => {}
        Value::String(k) => args.extend(["--k".into(), k.replace('_', "-")]),
        k => args.extend(["--k".into(), k.to_string()]),
    }
    if !case["reference"].is_null() {
        let r = dir.join(format!("{name}-r.npy"));
        let rl = dir.join(format!("{name}-rl.npy"));
        write_matrix(&r, &case["reference"]);
        write_labels(&rl, &case["reference_labels"]);
        args.extend(path_args(&[
            ("--reference", &r),
            ("--reference-labels", &rl),
        ]));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = margin(&argv);
    assert!(
        out.status.success(),
        "{name} on {backend}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn fixtures_through_cli(backend: &str) {
    let dir = scratch(&format!("cli_eval_{backend}"));
    for case in fixtures() {
        let name = case["name"].as_str().expect("name");
        let got = run_case(&dir, &case, backend);
        for m in METRICS {
            check(name, m, &got[m], &case["expected"][m]);
        }
        assert_eq!(
            got["queries_evaluated"], case["queries_evaluated"],
            "{name}"
        );
        assert_eq!(
            got["queries"].as_u64(),
            Some(json_ints(&case["query_labels"]).len() as u64)
        );
        assert!(got["backend"].is_string());
    }
}

// On wgpu the `--k` cases run through the fused distance + top-k kernel.
common::on_every_backend!(fixtures_through_cli =>
    golden_fixtures_cpu, golden_fixtures_reference, golden_fixtures_wgpu);

/// The library call on both CPU backends: tiny blocks (many backend calls) give results identical
/// to one block, and both agree with the fixtures.
#[test]
fn block_size_is_invisible() {
    let backends: [Box<dyn HostBackend>; 2] =
        [Box::new(CpuBackend::new()), Box::new(ReferenceBackend)];
    // The `--k` cases rank only k neighbours; this test is about the full ranking.
    for case in fixtures().into_iter().filter(|c| c["k"].is_null()) {
        let name = case["name"].as_str().expect("name");
        let (q, nq, d) = matrix(&case["query"]);
        let ql = json_ints(&case["query_labels"]);
        let reference = (!case["reference"].is_null()).then(|| {
            (
                matrix(&case["reference"]),
                json_ints(&case["reference_labels"]),
            )
        });
        let query = Embeddings::new(&q, nq, d).unwrap();
        let ref_view = reference
            .as_ref()
            .map(|((r, nr, dr), rl)| (Embeddings::new(r, *nr, *dr).unwrap(), &rl[..]));
        for backend in &backends {
            let run = |block| {
                evaluate_retrieval(
                    backend.as_ref(),
                    metric_of(&case),
                    query,
                    &ql,
                    ref_view,
                    block,
                )
                .unwrap()
            };
            let whole = run(usize::MAX);
            for block in [1, 3, 16] {
                let m = run(block);
                // NaN != NaN, so compare bit patterns.
                let bits = |m: &margin_core::RetrievalMetrics| {
                    [
                        m.precision_at_1.to_bits(),
                        m.r_precision.to_bits(),
                        m.mean_average_precision_at_r.to_bits(),
                        m.mean_reciprocal_rank.to_bits(),
                    ]
                };
                assert_eq!(bits(&m), bits(&whole), "{name} block {block}");
                assert_eq!(m.queries_evaluated, whole.queries_evaluated);
            }
            let got = serde_json::json!({
                "precision_at_1": whole.precision_at_1,
                "r_precision": whole.r_precision,
                "mean_average_precision_at_r": whole.mean_average_precision_at_r,
                "mean_reciprocal_rank": whole.mean_reciprocal_rank,
            });
            for m in METRICS {
                check(name, m, &got[m], &case["expected"][m]);
            }
        }
    }
}

fn expect_input_error(args: &[&str], needle: &str) {
    let out = margin(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

#[test]
fn malformed_input_exits_2() {
    let dir = scratch("cli_eval_errors");
    let p = |n: &str| dir.join(n).display().to_string();
    write_npy(&dir.join("q.npy"), &[0f32, 1., 2., 3., 4., 5.], &[3, 2]);
    write_npy(&dir.join("ql.npy"), &[1i64, 1, 2], &[3]);
    write_npy(&dir.join("ql2.npy"), &[1i64, 1], &[2]);
    write_npy(&dir.join("r3.npy"), &[0f32, 1., 2.], &[1, 3]);
    write_npy(&dir.join("rl.npy"), &[1i64], &[1]);
    write_npy(
        &dir.join("qnan.npy"),
        &[0f32, f32::NAN, 2., 3., 4., 5.],
        &[3, 2],
    );
    let (q, ql) = (p("q.npy"), p("ql.npy"));
    let base = ["eval", "--query", &q, "--backend", "cpu"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (with(&["--query-labels", &p("ql2.npy")]), "label count"),
        (
            with(&[
                "--query-labels",
                &ql,
                "--reference",
                &p("r3.npy"),
                "--reference-labels",
                &p("rl.npy"),
            ]),
            "width",
        ),
        (
            with(&["--query-labels", &ql, "--reference", &q]),
            "reference-labels",
        ),
        (
            with(&["--query-labels", &ql, "--distance", "manhattan"]),
            "unknown distance",
        ),
        (
            with(&["--query-labels", &ql, "--normalize", "--no-normalize"]),
            "normalize",
        ),
        (with(&["--query-labels", &p("missing.npy")]), "cannot open"),
        (with(&["--query-labels", &q]), "integer"),
        (with(&["--query-labels", &ql, "--k", "0"]), "k = 0"),
        (with(&["--query-labels", &ql, "--k", "3"]), "1..=2"),
        (with(&["--query-labels", &ql, "--k", "many"]), "--k must be"),
    ];
    for (args, needle) in cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_input_error(&argv, needle);
    }
    let nan = p("qnan.npy");
    expect_input_error(
        &[
            "eval",
            "--query",
            &nan,
            "--query-labels",
            &ql,
            "--backend",
            "reference",
        ],
        "non-finite",
    );
}
