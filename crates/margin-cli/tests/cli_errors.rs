//! Malformed input through `margin loss`: every case exits with code 2, prints exactly one line
//! on stderr naming the problem, prints nothing on stdout, and writes no output file.

mod common;

use common::{margin, raw_npy, scratch, write_npy};
use std::path::Path;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The batch every case starts from unless it is what the case breaks.
macro_rules! batch {
    ($($extra:literal)?) => {
        concat!("triplet --embeddings x.npy --labels y.npy" $(, " ", $extra)?)
    };
}

/// Each malformed call as `(case, arguments of margin loss)`; `.npy` arguments are files of the
/// scratch directory that `malformed_inputs_exit_2_with_one_line` writes.
const CASES: &[(&str, &str)] = &[
    (
        "missing embeddings file",
        "triplet --embeddings nope.npy --labels y.npy",
    ),
    (
        "missing labels file",
        "triplet --embeddings x.npy --labels nope.npy",
    ),
    (
        "not a npy file",
        "triplet --embeddings text.npy --labels y.npy",
    ),
    (
        "empty file",
        "triplet --embeddings empty.npy --labels y.npy",
    ),
    (
        "truncated data",
        "triplet --embeddings truncated.npy --labels y.npy",
    ),
    (
        "fortran order",
        "triplet --embeddings fortran.npy --labels y.npy",
    ),
    (
        "complex dtype",
        "triplet --embeddings complex.npy --labels y.npy",
    ),
    (
        "float16 dtype",
        "triplet --embeddings f16.npy --labels y.npy",
    ),
    (
        "integer embeddings",
        "triplet --embeddings xint.npy --labels y.npy",
    ),
    (
        "1-D embeddings",
        "triplet --embeddings x1d.npy --labels y.npy",
    ),
    (
        "3-D embeddings",
        "triplet --embeddings x3d.npy --labels y.npy",
    ),
    ("float labels", "triplet --embeddings x.npy --labels yf.npy"),
    (
        "string labels",
        "triplet --embeddings x.npy --labels ystr.npy",
    ),
    ("2-D labels", "triplet --embeddings x.npy --labels y2d.npy"),
    (
        "label count != N",
        "triplet --embeddings x.npy --labels y5.npy",
    ),
    (
        "NaN embedding",
        "triplet --embeddings xnan.npy --labels y.npy",
    ),
    (
        "inf embedding",
        "triplet --embeddings xinf.npy --labels y.npy",
    ),
    (
        "f64 overflowing f32",
        "triplet --embeddings xbig64.npy --labels y.npy",
    ),
    ("N = 0", "triplet --embeddings x0.npy --labels y0.npy"),
    ("D = 0", "triplet --embeddings xd0.npy --labels y.npy"),
    ("unknown loss", "tripplet --embeddings x.npy --labels y.npy"),
    ("unknown distance", batch!("--distance manhattan")),
    ("unknown mining", batch!("--mining easy")),
    ("unknown backend", batch!("--backend tpu")),
    ("unknown flag", batch!("--temperature 0.1")),
    ("NaN margin", batch!("--margin nan")),
    ("infinite margin", batch!("--margin inf")),
    ("non-numeric margin", batch!("--margin abc")),
    ("flag not of this loss", batch!("--margin2 0.3")),
    (
        "normalize and no-normalize",
        batch!("--normalize --no-normalize"),
    ),
    ("missing --labels", "triplet --embeddings x.npy"),
    (
        "triplet-center without centers",
        "triplet-center --embeddings x.npy --labels y.npy",
    ),
    (
        "centers of the wrong width",
        "triplet-center --embeddings x.npy --labels y.npy --centers cwide.npy",
    ),
    (
        "label outside 0..K",
        "triplet-center --embeddings x.npy --labels yk.npy --centers c.npy",
    ),
    (
        "one center",
        "triplet-center --embeddings x.npy --labels y.npy --centers c1.npy",
    ),
    (
        "centers for a loss without centers",
        batch!("--centers c.npy"),
    ),
    (
        "proxy-anchor without proxies",
        "proxy-anchor --embeddings x.npy --labels y.npy",
    ),
    (
        "proxy label outside 0..K",
        "proxy-nca --embeddings x.npy --labels yk.npy --proxies c.npy",
    ),
    (
        "cosface on a distance",
        "cosface --embeddings x.npy --labels y.npy --centers c.npy --distance euclidean",
    ),
    (
        "normalized-softmax without normalization",
        "normalized-softmax --embeddings x.npy --labels y.npy --centers c.npy --no-normalize",
    ),
    (
        "zero scale",
        "cosface --embeddings x.npy --labels y.npy --centers c.npy --scale 0",
    ),
    (
        "scale for a loss without one",
        "proxy-anchor --embeddings x.npy --labels y.npy --proxies c.npy --scale 2",
    ),
    (
        "reference embeddings without labels",
        batch!("--ref-embeddings r.npy"),
    ),
    (
        "reference labels without embeddings",
        batch!("--ref-labels rl.npy"),
    ),
    (
        "reference of the wrong width",
        batch!("--ref-embeddings rwide.npy --ref-labels rl.npy"),
    ),
    (
        "reference label count != M",
        batch!("--ref-embeddings r.npy --ref-labels rl4.npy"),
    ),
    (
        "reference set for n-pair",
        "n-pair --embeddings x.npy --labels y.npy --ref-embeddings r.npy --ref-labels rl.npy",
    ),
    (
        "self index outside the reference",
        batch!("--ref-embeddings r.npy --ref-labels rl.npy --ref-self-index s_far.npy"),
    ),
    (
        "self index with another label",
        batch!("--ref-embeddings r.npy --ref-labels rl.npy --ref-self-index s_label.npy"),
    ),
    (
        "self index count != N",
        batch!("--ref-embeddings r.npy --ref-labels rl.npy --ref-self-index s5.npy"),
    ),
    (
        "self index without a reference",
        batch!("--ref-self-index s.npy"),
    ),
    (
        "center gradient into a missing folder",
        "triplet-center --embeddings x.npy --labels y.npy --centers c.npy --center-grad-out no/cg.npy",
    ),
    (
        "center gradient onto a folder",
        "triplet-center --embeddings x.npy --labels y.npy --centers c.npy --center-grad-out /",
    ),
    (
        "embeddings shorter than their header",
        "triplet --embeddings short.npy --labels y.npy",
    ),
];

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
    // A header announcing a huge shape over a few bytes: refused without allocating it.
    std::fs::write(
        dir.join("short.npy"),
        raw_npy("<f4", false, &[99_999_999_999, 4], &f32_bytes(&x)),
    )
    .unwrap();
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
    let mut failures = Vec::new();
    for (case, command) in CASES {
        // Every `.npy` argument names a file of the scratch directory.
        let args: Vec<String> = command
            .split_whitespace()
            .map(|a| {
                if a.ends_with(".npy") {
                    p(a)
                } else {
                    a.to_string()
                }
            })
            .collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(e) = expect_rejected(&dir, &case.replace(' ', "_"), &argv) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the contract:\n{}",
        failures.len(),
        CASES.len(),
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

/// Both gradients to one file is refused before any work, and neither file is written.
#[test]
fn one_file_for_both_gradients_exits_2() {
    let dir = scratch("cli-same-output");
    let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.61).cos()).collect();
    write_npy(&dir.join("x.npy"), &x, &[6, 4]);
    write_npy(&dir.join("y.npy"), &[0i64, 0, 1, 1, 2, 2], &[6]);
    write_npy(&dir.join("c.npy"), &x[..12], &[3, 4]);
    // `expect_rejected` adds `--grad-out <dir>/g.grad.npy`: the same file.
    let both = dir.join("g.grad.npy");
    let args = common::path_args(&[
        ("--embeddings", &dir.join("x.npy")),
        ("--labels", &dir.join("y.npy")),
        ("--centers", &dir.join("c.npy")),
        ("--center-grad-out", &both),
    ]);
    let mut argv = vec!["triplet-center"];
    argv.extend(args.iter().map(String::as_str));
    let err = expect_rejected(&dir, "g", &argv);
    assert!(err.is_ok(), "{err:?}");
    assert!(!both.exists());
}

/// A successful call on every available backend prints its JSON and nothing on stderr: in
/// particular, not the "XDG_RUNTIME_DIR is invalid" lines that Mesa's Vulkan device-select
/// layer prints on headless machines while wgpu enumerates adapters.
#[test]
fn success_leaves_stderr_empty() {
    let dir = scratch("cli-quiet");
    let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.43).sin()).collect();
    write_npy(&dir.join("x.npy"), &x, &[6, 4]);
    write_npy(&dir.join("y.npy"), &[0i64, 0, 1, 1, 2, 2], &[6]);
    let args = common::path_args(&[
        ("--embeddings", &dir.join("x.npy")),
        ("--labels", &dir.join("y.npy")),
    ]);
    let mut backends = vec!["auto", "cpu"];
    if common::wgpu_available() {
        backends.push("wgpu");
    }
    for backend in backends {
        let mut argv = vec!["loss", "triplet", "--backend", backend];
        argv.extend(args.iter().map(String::as_str));
        let out = margin(&argv);
        assert_eq!(out.status.code(), Some(0), "{backend}");
        assert!(
            out.stderr.is_empty(),
            "{backend}: stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let devices = margin(&["devices"]);
    assert!(
        devices.stderr.is_empty(),
        "devices: stderr {:?}",
        String::from_utf8_lossy(&devices.stderr)
    );
}

/// `--proxies` and `--proxy-grad-out` are `--centers` and `--center-grad-out` under the names the
/// proxy losses use: the same call either way gives the same loss and the same files.
#[test]
fn proxy_flags_are_the_center_flags() {
    let dir = scratch("cli-proxy-alias");
    let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
    write_npy(&dir.join("x.npy"), &x, &[6, 4]);
    write_npy(&dir.join("y.npy"), &[0i64, 0, 1, 1, 2, 2], &[6]);
    write_npy(&dir.join("p.npy"), &x[4..20], &[4, 4]);
    let run = |centers: &str, grad_out: &str, tag: &str| {
        let g = dir.join(format!("{tag}.npy"));
        let args = common::path_args(&[
            ("--embeddings", &dir.join("x.npy")),
            ("--labels", &dir.join("y.npy")),
            (centers, &dir.join("p.npy")),
            (grad_out, &g),
        ]);
        let mut argv = vec!["loss", "proxy-anchor", "--backend", "cpu"];
        argv.extend(args.iter().map(String::as_str));
        let out = margin(&argv);
        assert_eq!(out.status.code(), Some(0), "{tag}: {out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json["loss"].as_f64().unwrap(), common::read_f32(&g))
    };
    let (a, ga) = run("--centers", "--center-grad-out", "center");
    let (b, gb) = run("--proxies", "--proxy-grad-out", "proxy");
    assert_eq!(a, b);
    assert_eq!(ga, gb);
    assert_eq!(ga.len(), 16);
    assert!(ga.iter().any(|&v| v != 0.0));
}
