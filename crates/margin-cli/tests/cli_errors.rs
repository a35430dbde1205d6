//! Malformed input through `margin loss`: every case exits with code 2, prints exactly one line
//! on stderr naming the problem, prints nothing on stdout, and writes no output file.

mod common;

use common::{margin, raw_npy, scratch, write_npy};
use std::path::Path;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Runs `margin loss` with the given args plus `--grad-out`; checks the contract; returns stderr.
fn expect_rejected(dir: &Path, case: &str, args: &[&str]) -> Result<(), String> {
    let grad = dir.join(format!("{case}.grad.npy"));
    let mut argv = vec!["loss"];
    argv.extend(args);
    let grad_s = grad.display().to_string();
    argv.extend(["--grad-out", &grad_s]);
    let out = margin(&argv);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit code {:?}", out.status.code()));
    }
    if lines.len() != 1 || lines[0].trim().is_empty() {
        problems.push(format!("stderr has {} lines: {stderr:?}", lines.len()));
    }
    if !out.stdout.is_empty() {
        problems.push("stdout is not empty".into());
    }
    if grad.exists() {
        problems.push("an output file was written".into());
    }
    if stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    if problems.is_empty() {
        eprintln!("{case}: {}", stderr.trim());
        Ok(())
    } else {
        Err(format!("{case}: {}", problems.join("; ")))
    }
}

#[test]
fn malformed_inputs_exit_2_with_one_line() {
    let dir = scratch("cli-errors");
    let p = |name: &str| dir.join(name).display().to_string();
    let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
    write_npy(&dir.join("x.npy"), &x, &[6, 4]);
    write_npy(&dir.join("y.npy"), &[0i64, 0, 1, 1, 2, 2], &[6]);
    write_npy(&dir.join("y5.npy"), &[0i64, 0, 1, 1, 2], &[5]);
    write_npy(&dir.join("y2d.npy"), &[0i64, 0, 1, 1, 2, 2], &[6, 1]);
    write_npy(&dir.join("yf.npy"), &[0f32, 0., 1., 1., 2., 2.], &[6]);
    write_npy(&dir.join("yk.npy"), &[0i64, 0, 1, 1, 5, 5], &[6]);
    write_npy(&dir.join("x1d.npy"), &x, &[24]);
    write_npy(&dir.join("x3d.npy"), &x, &[2, 3, 4]);
    write_npy(&dir.join("xint.npy"), &[1i32; 24], &[6, 4]);
    write_npy(&dir.join("c.npy"), &x[..12], &[3, 4]);
    write_npy(&dir.join("cwide.npy"), &x[..15], &[3, 5]);
    write_npy(&dir.join("c1.npy"), &x[..4], &[1, 4]);
    let mut nan = x.clone();
    nan[5] = f32::NAN;
    write_npy(&dir.join("xnan.npy"), &nan, &[6, 4]);
    let mut inf = x.clone();
    inf[7] = f32::INFINITY;
    write_npy(&dir.join("xinf.npy"), &inf, &[6, 4]);
    let mut big: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    big[3] = 1e300;
    write_npy(&dir.join("xbig64.npy"), &big, &[6, 4]);
    write_npy::<f32>(&dir.join("x0.npy"), &[], &[0, 4]);
    write_npy::<f32>(&dir.join("xd0.npy"), &[], &[6, 0]);
    write_npy::<i64>(&dir.join("y0.npy"), &[], &[0]);
    std::fs::write(dir.join("text.npy"), "not a numpy file\n").unwrap();
    std::fs::write(dir.join("empty.npy"), "").unwrap();
    let full = raw_npy("<f4", false, &[6, 4], &f32_bytes(&x));
    std::fs::write(dir.join("truncated.npy"), &full[..full.len() - 10]).unwrap();
    std::fs::write(
        dir.join("fortran.npy"),
        raw_npy("<f4", true, &[6, 4], &f32_bytes(&x)),
    )
    .unwrap();
    std::fs::write(
        dir.join("complex.npy"),
        raw_npy("<c8", false, &[6, 4], &[0u8; 192]),
    )
    .unwrap();
    std::fs::write(
        dir.join("f16.npy"),
        raw_npy("<f2", false, &[6, 4], &[0x3cu8; 48]),
    )
    .unwrap();
    std::fs::write(
        dir.join("ystr.npy"),
        raw_npy("<U1", false, &[6], &[0x41u8; 24]),
    )
    .unwrap();

    write_npy(&dir.join("r.npy"), &x[..20], &[5, 4]);
    write_npy(&dir.join("rwide.npy"), &x[..15], &[3, 5]);
    write_npy(&dir.join("rl.npy"), &[0i64, 1, 2, 0, 1], &[5]);
    write_npy(&dir.join("rl4.npy"), &[0i64, 1, 2, 0], &[4]);
    write_npy(&dir.join("s.npy"), &[0i64, 3, 1, -1, 2, -1], &[6]);
    write_npy(&dir.join("s_far.npy"), &[0i64, 3, 1, -1, 9, -1], &[6]);
    write_npy(&dir.join("s_label.npy"), &[1i64, 3, 1, -1, 2, -1], &[6]);
    write_npy(&dir.join("s5.npy"), &[0i64, 3, 1, -1, 2], &[5]);
    let (xs, ys) = (p("x.npy"), p("y.npy"));
    let base = |file: &str, labels: &str| {
        vec![
            "triplet".to_string(),
            "--embeddings".into(),
            p(file),
            "--labels".into(),
            p(labels),
        ]
    };
    let with = |mut v: Vec<String>, extra: &[&str]| {
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("missing embeddings file", base("nope.npy", "y.npy")),
        ("missing labels file", base("x.npy", "nope.npy")),
        ("not a npy file", base("text.npy", "y.npy")),
        ("empty file", base("empty.npy", "y.npy")),
        ("truncated data", base("truncated.npy", "y.npy")),
        ("fortran order", base("fortran.npy", "y.npy")),
        ("complex dtype", base("complex.npy", "y.npy")),
        ("float16 dtype", base("f16.npy", "y.npy")),
        ("integer embeddings", base("xint.npy", "y.npy")),
        ("1-D embeddings", base("x1d.npy", "y.npy")),
        ("3-D embeddings", base("x3d.npy", "y.npy")),
        ("float labels", base("x.npy", "yf.npy")),
        ("string labels", base("x.npy", "ystr.npy")),
        ("2-D labels", base("x.npy", "y2d.npy")),
        ("label count != N", base("x.npy", "y5.npy")),
        ("NaN embedding", base("xnan.npy", "y.npy")),
        ("inf embedding", base("xinf.npy", "y.npy")),
        ("f64 overflowing f32", base("xbig64.npy", "y.npy")),
        ("N = 0", base("x0.npy", "y0.npy")),
        ("D = 0", base("xd0.npy", "y.npy")),
        (
            "unknown loss",
            vec![
                "tripplet".into(),
                "--embeddings".into(),
                xs.clone(),
                "--labels".into(),
                ys.clone(),
            ],
        ),
        (
            "unknown distance",
            with(base("x.npy", "y.npy"), &["--distance", "manhattan"]),
        ),
        (
            "unknown mining",
            with(base("x.npy", "y.npy"), &["--mining", "easy"]),
        ),
        (
            "unknown backend",
            with(base("x.npy", "y.npy"), &["--backend", "tpu"]),
        ),
        (
            "unknown flag",
            with(base("x.npy", "y.npy"), &["--temperature", "0.1"]),
        ),
        (
            "NaN margin",
            with(base("x.npy", "y.npy"), &["--margin", "nan"]),
        ),
        (
            "infinite margin",
            with(base("x.npy", "y.npy"), &["--margin", "inf"]),
        ),
        (
            "non-numeric margin",
            with(base("x.npy", "y.npy"), &["--margin", "abc"]),
        ),
        (
            "flag not of this loss",
            with(base("x.npy", "y.npy"), &["--margin2", "0.3"]),
        ),
        (
            "normalize and no-normalize",
            with(base("x.npy", "y.npy"), &["--normalize", "--no-normalize"]),
        ),
        (
            "missing --labels",
            vec!["triplet".into(), "--embeddings".into(), xs.clone()],
        ),
        (
            "triplet-center without centers",
            vec![
                "triplet-center".into(),
                "--embeddings".into(),
                xs.clone(),
                "--labels".into(),
                ys.clone(),
            ],
        ),
        (
            "centers of the wrong width",
            vec![
                "triplet-center".into(),
                "--embeddings".into(),
                xs.clone(),
                "--labels".into(),
                ys.clone(),
                "--centers".into(),
                p("cwide.npy"),
            ],
        ),
        (
            "label outside 0..K",
            vec![
                "triplet-center".into(),
                "--embeddings".into(),
                xs.clone(),
                "--labels".into(),
                p("yk.npy"),
                "--centers".into(),
                p("c.npy"),
            ],
        ),
        (
            "one center",
            vec![
                "triplet-center".into(),
                "--embeddings".into(),
                xs.clone(),
                "--labels".into(),
                p("y.npy"),
                "--centers".into(),
                p("c1.npy"),
            ],
        ),
        (
            "centers for a loss without centers",
            with(base("x.npy", "y.npy"), &["--centers", &p("c.npy")]),
        ),
        (
            "reference embeddings without labels",
            with(base("x.npy", "y.npy"), &["--ref-embeddings", &p("r.npy")]),
        ),
        (
            "reference labels without embeddings",
            with(base("x.npy", "y.npy"), &["--ref-labels", &p("rl.npy")]),
        ),
        (
            "reference of the wrong width",
            with(
                base("x.npy", "y.npy"),
                &[
                    "--ref-embeddings",
                    &p("rwide.npy"),
                    "--ref-labels",
                    &p("rl.npy"),
                ],
            ),
        ),
        (
            "reference label count != M",
            with(
                base("x.npy", "y.npy"),
                &[
                    "--ref-embeddings",
                    &p("r.npy"),
                    "--ref-labels",
                    &p("rl4.npy"),
                ],
            ),
        ),
        (
            "reference set for n-pair",
            vec![
                "n-pair".into(),
                "--embeddings".into(),
                xs.clone(),
                "--labels".into(),
                ys.clone(),
                "--ref-embeddings".into(),
                p("r.npy"),
                "--ref-labels".into(),
                p("rl.npy"),
            ],
        ),
        (
            "self index outside the reference",
            with(
                base("x.npy", "y.npy"),
                &[
                    "--ref-embeddings",
                    &p("r.npy"),
                    "--ref-labels",
                    &p("rl.npy"),
                    "--ref-self-index",
                    &p("s_far.npy"),
                ],
            ),
        ),
        (
            "self index with another label",
            with(
                base("x.npy", "y.npy"),
                &[
                    "--ref-embeddings",
                    &p("r.npy"),
                    "--ref-labels",
                    &p("rl.npy"),
                    "--ref-self-index",
                    &p("s_label.npy"),
                ],
            ),
        ),
        (
            "self index count != N",
            with(
                base("x.npy", "y.npy"),
                &[
                    "--ref-embeddings",
                    &p("r.npy"),
                    "--ref-labels",
                    &p("rl.npy"),
                    "--ref-self-index",
                    &p("s5.npy"),
                ],
            ),
        ),
        (
            "self index without a reference",
            with(base("x.npy", "y.npy"), &["--ref-self-index", &p("s.npy")]),
        ),
    ];
    let mut failures = Vec::new();
    for (case, args) in &cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(e) = expect_rejected(&dir, &case.replace(' ', "_"), &argv) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the contract:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// CUDA is absent on CI machines: asking for it is an input error (exit 2), never a panic.
#[test]
fn unavailable_backend_exits_2() {
    let devices = margin(&["devices", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&devices.stdout).expect("devices json");
    let dir = scratch("cli-unavailable");
    write_npy(&dir.join("x.npy"), &[0.3f32, -1.2, 0.8, 0.1], &[2, 2]);
    write_npy(&dir.join("y.npy"), &[1i64, 2], &[2]);
    for backend in ["cuda", "wgpu"] {
        let available = v["devices"]
            .as_array()
            .expect("list")
            .iter()
            .any(|d| d["backend"] == backend && d["available"] == true);
        if available {
            continue;
        }
        let (x, y) = (
            dir.join("x.npy").display().to_string(),
            dir.join("y.npy").display().to_string(),
        );
        expect_rejected(
            &dir,
            backend,
            &[
                "contrastive",
                "--embeddings",
                &x,
                "--labels",
                &y,
                "--backend",
                backend,
            ],
        )
        .unwrap();
    }
}
