//! `margin pairwise` run as a user would: .npy rows in, an f32 .npy matrix out, checked against
//! the metric computed here in f64, on the fast CPU, the reference and wgpu; bad calls exit 2
//! with one stderr line and write nothing.

mod common;

use common::{margin, path_args, read_f32, scratch, write_npy};
use std::path::Path;

/// The metric of `--distance name` (with `normalize`) between two rows, in f64.
fn metric(name: &str, normalize: bool, a: &[f32], b: &[f32]) -> f64 {
    let unit = |v: &[f32]| -> Vec<f64> {
        let v: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
        if !normalize && name != "cosine" {
            return v;
        }
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        v.iter().map(|x| x / n).collect()
    };
    let (a, b) = (unit(a), unit(b));
    let sq: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    match name {
        "euclidean" => sq.sqrt(),
        "squared-euclidean" => sq,
        _ => dot,
    }
}

fn rows(n: usize, d: usize, seed: f32) -> Vec<f32> {
    // A common offset of 20 as well: the expanded form must not cancel.
    (0..n * d)
        .map(|i| 20.0 + ((i as f32 + seed) * 0.731).sin() * 3.0)
        .collect()
}

fn run_case(backend: &str, dir: &Path, distance: &str, normalize: bool, with_ref: bool) {
    let (n, m, d) = (37, 23, 9);
    let x = rows(n, d, 0.5);
    let r = rows(m, d, 99.0);
    write_npy(&dir.join("x.npy"), &x, &[n as u64, d as u64]);
    write_npy(&dir.join("r.npy"), &r, &[m as u64, d as u64]);
    let out = dir.join(format!("{backend}-{distance}-{normalize}-{with_ref}.npy"));
    let mut args = path_args(&[("--embeddings", &dir.join("x.npy")), ("--out", &out)]);
    if with_ref {
        args.extend(path_args(&[("--reference", &dir.join("r.npy"))]));
    }
    args.extend(["--distance", distance, "--backend", backend].map(String::from));
    args.push(
        if normalize {
            "--normalize"
        } else {
            "--no-normalize"
        }
        .into(),
    );
    let mut argv = vec!["pairwise"];
    argv.extend(args.iter().map(String::as_str));
    let res = margin(&argv);
    assert_eq!(
        res.status.code(),
        Some(0),
        "{argv:?}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&res.stdout).expect("one JSON line");
    let (rows_b, cols) = if with_ref { (&r, m) } else { (&x, n) };
    assert_eq!(
        (json["n"].as_u64(), json["m"].as_u64()),
        (Some(n as u64), Some(cols as u64))
    );
    let got = read_f32(&out);
    assert_eq!(got.len(), n * cols);
    for i in 0..n {
        for j in 0..cols {
            let want = metric(distance, normalize, &x[i * d..][..d], &rows_b[j * d..][..d]);
            let g = f64::from(got[i * cols + j]);
            assert!(
                (g - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{backend} {distance} normalize={normalize} ref={with_ref} ({i}, {j}): {g} vs {want}"
            );
        }
    }
}

fn every_metric(backend: &str) {
    let dir = scratch(&format!("cli-pairwise-{backend}"));
    for distance in ["euclidean", "squared-euclidean", "cosine", "dot"] {
        for normalize in [false, true] {
            for with_ref in [false, true] {
                run_case(backend, &dir, distance, normalize, with_ref);
            }
        }
    }
}

common::on_every_backend!(every_metric => pairwise_on_cpu, pairwise_on_reference, pairwise_on_wgpu);

/// Bad calls exit 2 with one line naming the problem and write no output.
#[test]
fn bad_calls_exit_2() {
    let dir = scratch("cli-pairwise-errors");
    write_npy(&dir.join("x.npy"), &rows(6, 4, 1.0), &[6, 4]);
    write_npy(&dir.join("wide.npy"), &rows(3, 5, 2.0), &[3, 5]);
    let big: Vec<f32> = rows(6, 4, 3.0).iter().map(|v| v * 1e15).collect();
    write_npy(&dir.join("big.npy"), &big, &[6, 4]);
    let out = dir.join("d.npy");
    let p = |f: &str| dir.join(f).display().to_string();
    let o = out.display().to_string();
    let missing = dir.join("no/d.npy").display().to_string();
    let cases: [(&str, Vec<String>); 5] = [
        (
            "reference of another width",
            vec![
                "--embeddings".into(),
                p("x.npy"),
                "--reference".into(),
                p("wide.npy"),
                "--out".into(),
                o.clone(),
            ],
        ),
        (
            "output in a missing folder",
            vec!["--embeddings".into(), p("x.npy"), "--out".into(), missing],
        ),
        (
            "output onto a folder",
            vec![
                "--embeddings".into(),
                p("x.npy"),
                "--out".into(),
                dir.display().to_string(),
            ],
        ),
        (
            "unknown distance",
            vec![
                "--embeddings".into(),
                p("x.npy"),
                "--out".into(),
                o.clone(),
                "--distance".into(),
                "manhattan".into(),
            ],
        ),
        (
            "rows beyond f32 distances",
            vec![
                "--embeddings".into(),
                p("big.npy"),
                "--out".into(),
                o.clone(),
                "--backend".into(),
                "cpu".into(),
            ],
        ),
    ];
    for (case, args) in cases {
        let mut argv = vec!["pairwise"];
        argv.extend(args.iter().map(String::as_str));
        let res = margin(&argv);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(2), "{case}: {err}");
        assert_eq!(err.lines().count(), 1, "{case}: {err}");
        assert!(res.stdout.is_empty(), "{case}");
        assert!(!out.exists(), "{case}: wrote {}", out.display());
        eprintln!("{case}: {}", err.trim());
    }
}
