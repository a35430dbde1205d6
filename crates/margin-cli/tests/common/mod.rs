//! Helpers for the command-line tests: .npy files in a scratch directory and running the binary.

#![allow(dead_code)]

use npyz::WriterBuilder;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh scratch directory under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes an array of any npyz-serializable element type with the given shape.
pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, data: &[T], shape: &[u64]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create npy"));
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(file)
        .begin_nd()
        .expect("npy header");
    w.extend(data.iter().copied()).expect("npy data");
    w.finish().expect("npy finish");
}

/// Reads an f32 .npy file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("read npy");
    npyz::NpyFile::new(&bytes[..])
        .expect("npy")
        .into_vec::<f32>()
        .expect("f32 data")
}

/// Runs `margin` with `args`.
pub fn margin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_margin"))
        .args(args)
        .output()
        .expect("run margin")
}

/// `‖a − b‖ / ‖b‖` (absolute when `‖b‖` is tiny).
pub fn rel_norm_diff(a: &[f32], b: &[f64]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (f64::from(x) - y).powi(2);
        den += y * y;
    }
    if den.sqrt() < 1e-6 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// A raw .npy file (version 1.0) with any descr, order and shape, for malformed-input tests.
pub fn raw_npy(descr: &str, fortran: bool, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let fortran = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// Whether `margin devices` lists an available wgpu adapter. Without one, says that the caller
/// skips; with `MARGIN_REQUIRE_WGPU=1` (CI, lavapipe) a missing adapter fails instead.
pub fn wgpu_available() -> bool {
    let probe = margin(&["devices", "--json"]);
    let devices: serde_json::Value = serde_json::from_slice(&probe.stdout).expect("devices json");
    let has_wgpu = devices["devices"]
        .as_array()
        .expect("list")
        .iter()
        .any(|d| d["backend"] == "wgpu" && d["available"] == true);
    if !has_wgpu {
        assert!(
            std::env::var("MARGIN_REQUIRE_WGPU").as_deref() != Ok("1"),
            "MARGIN_REQUIRE_WGPU=1 but no wgpu adapter"
        );
        eprintln!("skipping: no wgpu adapter");
    }
    has_wgpu
}

/// Three tests that run `$run(backend)` through the CLI: on `cpu`, on `reference`, and on
/// `wgpu` when an adapter is there (lavapipe in CI, where `MARGIN_REQUIRE_WGPU=1` makes a missing
/// adapter a failure; otherwise the test says it skips, see [`wgpu_available`]).
#[allow(unused_macros)]
macro_rules! on_every_backend {
    ($run:ident => $cpu:ident, $reference:ident, $wgpu:ident) => {
        #[test]
        fn $cpu() {
            $run("cpu");
        }

        #[test]
        fn $reference() {
            $run("reference");
        }

        #[test]
        fn $wgpu() {
            if !common::wgpu_available() {
                return;
            }
            $run("wgpu");
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_backend;

/// `flag path` pairs as command-line arguments.
pub fn path_args(pairs: &[(&str, &Path)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect()
}

/// The `cases` of every `.json` file in `tests/fixtures/<sub>`, in file-name order; panics on a
/// file without a `cases` list.
pub fn fixture_cases(sub: &str) -> Vec<serde_json::Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let list = v["cases"].as_array();
        cases.extend(
            list.unwrap_or_else(|| panic!("{}: no cases", f.display()))
                .iter()
                .cloned(),
        );
    }
    cases
}

/// A JSON array of integers.
pub fn json_ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("integer"))
        .collect()
}
