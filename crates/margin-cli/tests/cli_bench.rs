//! `margin bench`: one JSON object per call, for every kind of target (a loss, a loss with a
//! reference set, triplet-center with its centers, the pairwise matrix, k-NN), timed through the
//! host call or with `--on-device` through the device path alone; bad arguments exit 2.

mod common;

use serde_json::Value;

/// Runs `margin bench` with `args` and returns its JSON, failing with its stderr otherwise.
fn bench(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    let out = common::margin(&all);
    assert!(
        out.status.success(),
        "margin {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bench json")
}

/// Every target on `backend`, both timings: the JSON says what ran and how it was timed.
fn every_target(backend: &str) {
    let targets: [&[&str]; 6] = [
        &["triplet", "--n", "67", "--d", "9", "--classes", "5"],
        &["contrastive", "--n", "40", "--d", "5", "--ref-m", "33"],
        &["triplet-center", "--n", "30", "--d", "4", "--classes", "3"],
        &["quadruplet", "--n", "35", "--d", "6", "--classes", "4"],
        &["pairwise", "--n", "70", "--d", "3"],
        &["knn", "--n", "50", "--d", "4", "--k", "5"],
    ];
    for target in targets {
        for on_device in [false, true] {
            let mut args = target.to_vec();
            args.extend(["--backend", backend, "--reps", "3", "--warmup", "1"]);
            if on_device {
                args.push("--on-device");
            }
            let j = bench(&args);
            let context = format!("{args:?}: {j}");
            assert_eq!(j["what"], target[0], "{context}");
            assert_eq!(j["reps"], 3, "{context}");
            assert_eq!(
                j["timing"],
                if on_device { "device" } else { "host" },
                "{context}"
            );
            assert!(
                j["backend"]
                    .as_str()
                    .is_some_and(|b| b.starts_with(backend)),
                "{context}"
            );
            let (min, median, max) = (
                j["min_ms"].as_f64().expect("min_ms"),
                j["median_ms"].as_f64().expect("median_ms"),
                j["max_ms"].as_f64().expect("max_ms"),
            );
            assert!(0.0 <= min && min <= median && median <= max, "{context}");
        }
    }
}

#[test]
fn every_target_on_cpu() {
    every_target("cpu");
}

#[test]
fn every_target_on_reference() {
    every_target("reference");
}

/// On wgpu (lavapipe in CI) `--on-device` keeps the buffers on the adapter between runs.
#[test]
fn every_target_on_wgpu() {
    if !common::wgpu_available() {
        return;
    }
    every_target("wgpu");
}

/// Bad arguments exit 2 with one line naming the problem, and print no JSON.
#[test]
fn bad_arguments_exit_2() {
    let cases: [(&[&str], &str); 10] = [
        (&["triplet", "--n", "0", "--d", "4"], "--n and --d"),
        (
            &["triplet", "--n", "8", "--d", "4", "--reps", "0"],
            "--reps",
        ),
        (
            &["triplet", "--n", "8", "--d", "4", "--classes", "0"],
            "--classes",
        ),
        (
            &["pairwise", "--n", "8", "--d", "4", "--ref-m", "4"],
            "--ref-m",
        ),
        (
            &["triplet", "--n", "8", "--d", "4", "--ref-m", "0"],
            "--ref-m",
        ),
        (&["no-such-loss", "--n", "8", "--d", "4"], "no-such-loss"),
        (
            &["knn", "--n", "1", "--d", "4", "--k", "1"],
            "at least 2 rows",
        ),
        // Sizes that cannot be allocated are errors, not aborts.
        (
            &["triplet", "--n", "100000000000", "--d", "1000"],
            "out of memory",
        ),
        (
            &[
                "triplet",
                "--n",
                "8",
                "--d",
                "4",
                "--ref-m",
                "100000000000000",
            ],
            "out of memory",
        ),
        (
            &["pairwise", "--n", "18446744073709551615", "--d", "2"],
            "out of memory",
        ),
    ];
    for (args, needle) in cases {
        for on_device in [false, true] {
            let mut all = vec!["bench"];
            all.extend_from_slice(args);
            all.extend(["--backend", "cpu"]);
            if on_device {
                all.push("--on-device");
            }
            let out = common::margin(&all);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
            assert!(out.stdout.is_empty(), "{all:?} printed {:?}", out.stdout);
            assert!(err.contains(needle), "{all:?}: {err}");
        }
    }
}
