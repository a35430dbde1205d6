//! `margin demo` end to end: a short training run on the bundled digits data writes one JSON
//! object with the retrieval metrics before and after, and a PNG that decodes at the expected size.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh scratch directory under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn demo(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_margin"))
        .arg("demo")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Pure JSON on stdout: exactly one line, one object.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// Width, height of a PNG file.
fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    (frame.width, frame.height)
}

const METRICS: [&str; 4] = [
    "precision_at_1",
    "r_precision",
    "mean_average_precision_at_r",
    "mean_reciprocal_rank",
];

#[test]
fn default_loss_improves_every_metric_and_draws_the_png() {
    let dir = scratch("demo-default");
    let out = demo(
        &dir,
        &[
            "--json",
            "--steps",
            "80",
            "--backend",
            "cpu",
            "--png",
            "shot.png",
        ],
    );
    let s = json(&out);
    assert_eq!(s["loss_name"], "triplet");
    assert_eq!(s["backend"], "cpu");
    assert_eq!(s["test_samples"], 360);
    assert_eq!(s["train_samples"], 1437);
    for name in METRICS {
        let (b, a) = (
            s["metrics_before"][name].as_f64().unwrap(),
            s["metrics_after"][name].as_f64().unwrap(),
        );
        assert!(
            (0.0..=1.0).contains(&b) && (0.0..=1.0).contains(&a),
            "{name}"
        );
        assert!(a > b, "{name}: {b} before, {a} after");
    }
    assert_eq!(s["metrics_after"]["queries_evaluated"], 360);
    assert!(
        s["metrics_after"]["mean_average_precision_at_r"]
            .as_f64()
            .unwrap()
            > 0.5
    );
    assert_eq!(s["recall_at_1_after"], s["metrics_after"]["precision_at_1"]);

    let png = PathBuf::from(s["png"].as_str().unwrap());
    assert!(png.is_absolute(), "{png:?}");
    assert_eq!(png, dir.join("shot.png").canonicalize().unwrap());
    assert_eq!(png_size(&png), (1200, 720));
    // No progress bar (nor anything else) when --json and stderr is a pipe.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_png_writes_nothing_and_the_default_name_is_used_otherwise() {
    let dir = scratch("demo-no-png");
    let s = json(&demo(
        &dir,
        &["--json", "--steps", "2", "--backend", "cpu", "--no-png"],
    ));
    assert!(s["png"].is_null());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    let out = demo(
        &dir,
        &[
            "--steps",
            "2",
            "--backend",
            "cpu",
            "--loss",
            "triplet-center",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("MAP@R"), "{text}");
    assert!(text.contains("margin-demo.png"), "{text}");
    assert_eq!(png_size(&dir.join("margin-demo.png")), (1200, 720));
}

#[test]
fn bad_flags_fail_with_one_line_and_no_file() {
    let dir = scratch("demo-bad");
    for args in [
        &["--loss", "nope"][..],
        &["--steps", "0"],
        &["--png", "x.png", "--no-png"],
        &["--png", "no-such-dir/x.png"],
        &["--png", "picture.jpg"],
        &["--memory", "512", "--loss", "n-pair"],
        &["--memory", "16", "--batch", "64"],
        // A projection too large to allocate is an error, not an abort.
        &["--dim", "100000000000000", "--no-png"],
    ] {
        let out = demo(&dir, args);
        assert!(!out.status.success(), "{args:?}");
        // Exit 2 (bad input) with one line, before any training.
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

/// `--memory`: the loss is taken against a cross-batch memory of past embeddings, and training
/// still improves retrieval.
#[test]
fn cross_batch_memory_trains() {
    let dir = scratch("demo-memory");
    let out = demo(
        &dir,
        &[
            "--backend",
            "cpu",
            "--steps",
            "60",
            "--memory",
            "512",
            "--json",
            "--no-png",
        ],
    );
    let v = json(&out);
    assert_eq!(v["memory"], 512);
    let (before, after) = (&v["metrics_before"], &v["metrics_after"]);
    for m in ["precision_at_1", "mean_average_precision_at_r"] {
        let (b, a) = (before[m].as_f64().unwrap(), after[m].as_f64().unwrap());
        assert!(a > b, "{m}: {b} -> {a}");
    }
}
