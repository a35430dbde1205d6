//! `--stream-budget-mib`: bounds the streamed passes' memory and nothing else. On wgpu a budget
//! below a second N x N matrix sends the batch-all quadruplet down its chunked path (one more
//! pass, weights written in place); on the CPU it shrinks the anchor blocks. The loss and the
//! gradient must not change beyond float reordering, and a budget of 0 is refused.

mod common;

use serde_json::Value;
use std::path::Path;

/// Beyond summation order: both paths add the same f32 terms, in different groupings.
const SAME_LOSS_REL: f64 = 1e-5;
const SAME_GRAD_REL: f64 = 1e-4;

/// N = 600: the second matrix of the one-pass quadruplet is 1.4 MB, above a 1 MiB budget.
const N: usize = 600;
const D: usize = 12;

fn inputs(dir: &Path) {
    // Deterministic, well-spread values (a small LCG): no zeros, no constants.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let x: Vec<f32> = (0..N * D)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let y: Vec<i64> = (0..N as i64).map(|i| (i * 7) % 23).collect();
    common::write_npy(&dir.join("x.npy"), &x, &[N as u64, D as u64]);
    common::write_npy(&dir.join("y.npy"), &y, &[N as u64]);
}

/// Runs `margin loss` and returns (its JSON, the gradient it wrote).
fn loss(dir: &Path, args: &[&str], grad: &str) -> (Value, Vec<f32>) {
    let x = dir.join("x.npy").display().to_string();
    let y = dir.join("y.npy").display().to_string();
    let g = dir.join(grad).display().to_string();
    let mut all = vec!["loss"];
    all.extend_from_slice(args);
    all.extend(["--embeddings", &x, "--labels", &y, "--grad-out", &g]);
    let out = common::margin(&all);
    assert!(
        out.status.success(),
        "margin {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout).expect("loss json");
    (json, common::read_f32(Path::new(&g)))
}

fn budget_is_invisible(backend: &str) {
    let dir = common::scratch(&format!("budget-{backend}"));
    inputs(&dir);
    for (name, extra) in [
        ("quadruplet", &[][..]),
        ("quadruplet", &["--mining", "hard"][..]),
        ("triplet", &[][..]),
    ] {
        let mut base = vec![name, "--backend", backend];
        base.extend_from_slice(extra);
        let (want, want_g) = loss(&dir, &base, "g0.npy");
        let mut small = base.clone();
        small.extend(["--stream-budget-mib", "1"]);
        let (got, got_g) = loss(&dir, &small, "g1.npy");
        let context = format!("{backend} {base:?}: {got} vs {want}");
        let (a, b) = (
            got["loss"].as_f64().expect("loss"),
            want["loss"].as_f64().expect("loss"),
        );
        assert!(b > 0.0, "an inactive case tests nothing: {context}");
        assert!((a - b).abs() <= SAME_LOSS_REL * b.abs(), "{context}");
        let want_g: Vec<f64> = want_g.iter().map(|&v| f64::from(v)).collect();
        let err = common::rel_norm_diff(&got_g, &want_g);
        assert!(
            err <= SAME_GRAD_REL,
            "{context}: gradient differs by {err:e}"
        );
    }
}

#[test]
fn budget_is_invisible_on_cpu() {
    budget_is_invisible("cpu");
}

#[test]
fn budget_is_invisible_on_wgpu() {
    if !common::wgpu_available() {
        return;
    }
    budget_is_invisible("wgpu");
}

#[test]
fn zero_budget_exits_2() {
    let dir = common::scratch("budget-zero");
    inputs(&dir);
    let x = dir.join("x.npy").display().to_string();
    let y = dir.join("y.npy").display().to_string();
    for cmd in [
        vec!["loss", "triplet", "--embeddings", &x, "--labels", &y],
        vec!["bench", "triplet", "--n", "8", "--d", "4"],
    ] {
        let mut args = cmd.clone();
        args.extend(["--stream-budget-mib", "0", "--backend", "cpu"]);
        let out = common::margin(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("stream-budget-mib"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
