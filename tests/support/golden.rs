//! The golden fixtures' common pieces: where they are, how a case's parameters become a
//! [`Loss`], and the comparisons of a loss value and a gradient with the expected ones.

use margin_core::{Distance, Loss, LossKind, LossOverrides, Mining};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Only the parameters a case overrides; the rest are the defaults (PML's).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    distance: Option<String>,
    normalize: Option<bool>,
    margin: Option<f64>,
    margin2: Option<f64>,
    pos_margin: Option<f64>,
    neg_margin: Option<f64>,
    smooth: Option<bool>,
    mining: Option<String>,
    alpha: Option<f64>,
    beta: Option<f64>,
    base: Option<f64>,
    gamma: Option<f64>,
    temperature: Option<f64>,
    scale: Option<f64>,
}

impl Params {
    /// The loss `kind` with these overrides.
    pub fn loss(&self, kind: &str) -> Result<Loss, String> {
        let kind: LossKind = kind.parse().map_err(|e| format!("{e}"))?;
        let parse_distance = |s: &str| s.parse::<Distance>().map_err(|e| format!("{e}"));
        let parse_mining = |s: &str| s.parse::<Mining>().map_err(|e| format!("{e}"));
        let overrides = LossOverrides {
            distance: self.distance.as_deref().map(parse_distance).transpose()?,
            normalize: self.normalize,
            margin: self.margin,
            margin2: self.margin2,
            pos_margin: self.pos_margin,
            neg_margin: self.neg_margin,
            smooth: self.smooth,
            mining: self.mining.as_deref().map(parse_mining).transpose()?,
            alpha: self.alpha,
            beta: self.beta,
            base: self.base,
            gamma: self.gamma,
            temperature: self.temperature,
            scale: self.scale,
        };
        overrides
            .apply(Loss::default_for(kind))
            .map_err(|e| format!("{e}"))
    }
}

/// `tests/fixtures/<name>` of this checkout: found above the including crate's manifest (the
/// backend crates sit two levels below the root, `margin-tests` one), else under the current
/// directory (a prebuilt test binary run from another checkout's root, as
/// `scripts/gpu-check.sh` does).
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("tests/fixtures").join(name))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| Path::new("tests/fixtures").join(name))
}

/// The `.json` files of `dir`, sorted, except `<skip>.json`.
pub fn json_files(dir: &Path, skip: Option<&str>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_stem()
                    .is_none_or(|s| Some(s) != skip.map(std::ffi::OsStr::new))
        })
        .collect();
    files.sort();
    files
}

/// One fixture file, parsed as `T`; panics naming the file when it is missing or malformed.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: bad fixture: {e}", path.display()))
}

/// True when `got` is within `rel` of `want`, or within `abs` (near 0). False for NaN.
pub fn value_close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    (got - want).abs() <= rel * want.abs() || (got - want).abs() <= abs
}

/// `‖got − want‖` and `‖want‖`, and the entry that differs most; `Err` on different lengths.
pub fn grad_diff<T: Copy + Into<f64>>(got: &[T], want: &[f64]) -> Result<GradDiff, String> {
    if got.len() != want.len() {
        return Err(format!("length {} != {}", got.len(), want.len()));
    }
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let e = (g.into() - w).abs();
        if e > worst.1 {
            worst = (i, e);
        }
        diff += e * e;
        norm += w * w;
    }
    Ok(GradDiff {
        diff: diff.sqrt(),
        norm: norm.sqrt(),
        worst: worst.0,
    })
}

/// What [`grad_diff`] measures.
pub struct GradDiff {
    /// `‖got − want‖`.
    pub diff: f64,
    /// `‖want‖`.
    pub norm: f64,
    /// The index of the largest `|got − want|`.
    pub worst: usize,
}

impl GradDiff {
    /// `‖Δ‖ / ‖want‖`, or `‖Δ‖` where `‖want‖ < tiny` (the SPEC's relative norm; NaN stays NaN).
    pub fn relative(&self, tiny: f64) -> f64 {
        if self.norm < tiny {
            self.diff
        } else {
            self.diff / self.norm
        }
    }
}

/// `None` when `‖got − want‖ <= rel ‖want‖ + abs`, else a description naming the worst entry.
pub fn grad_mismatch<T: Copy + Into<f64>>(
    got: &[T],
    want: &[f64],
    rel: f64,
    abs: f64,
) -> Option<String> {
    let g = match grad_diff(got, want) {
        Ok(g) => g,
        Err(e) => return Some(e),
    };
    if g.diff <= rel * g.norm + abs {
        return None;
    }
    let i = g.worst;
    Some(format!(
        "‖Δ‖/‖g‖ = {:.3e}/{:.3e}; worst at {i}: got {}, want {}",
        g.diff,
        g.norm,
        got[i].into(),
        want[i]
    ))
}

/// Below this reference-gradient norm, gradients are compared absolutely (the SPEC's relative
/// norm is meaningless at 0).
pub const GRAD_TINY: f64 = 1e-6;
/// The SPEC's absolute floor for loss values near 0.
pub const LOSS_ATOL: f64 = 1e-6;

/// `None` when `out` has the expected loss (within `value_rtol`, or [`LOSS_ATOL`]), exactly the
/// expected active counts, and a gradient within `grad_rtol` in relative norm (absolute below a
/// reference norm of [`GRAD_TINY`]); else what differs first.
pub fn output_mismatch(
    out: &margin_core::LossOutput,
    value: f64,
    active: [u64; 2],
    grad: &[f64],
    value_rtol: f64,
    grad_rtol: f64,
) -> Option<String> {
    let v = out.stats.loss;
    if !value_close(v, value, value_rtol, LOSS_ATOL) {
        return Some(format!("loss {v} vs {value}"));
    }
    if out.stats.active_terms != active {
        return Some(format!("active {:?} vs {active:?}", out.stats.active_terms));
    }
    let rel = match grad_diff(&out.grad, grad) {
        Ok(g) => g.relative(GRAD_TINY),
        Err(e) => return Some(format!("gradient {e}")),
    };
    if rel.is_nan() || rel > grad_rtol {
        return Some(format!("gradient differs by {rel:.3e}"));
    }
    None
}

/// How closely the f64 reference must reproduce the golden values: PML is float64 on the same
/// f32 inputs, and the fixtures carry 12 significant digits.
pub mod oracle {
    /// Loss values: relative tolerance ...
    pub const VALUE_REL: f64 = 1e-6;
    /// ... and the absolute floor near 0.
    pub const VALUE_ABS: f64 = 1e-9;
    /// Gradients through the f32 output: `‖g − g_ref‖ <= GRAD_F32_REL ‖g_ref‖ + GRAD_ABS`.
    pub const GRAD_F32_REL: f64 = 1e-5;
    /// Gradients from the f64 entry point.
    pub const GRAD_F64_REL: f64 = 1e-7;
    /// The absolute floor of both gradient bounds.
    pub const GRAD_ABS: f64 = 1e-9;
}

/// A golden case's answer.
pub struct Expected<'a> {
    pub value: f64,
    pub active: [u64; 2],
    pub grad: &'a [f64],
}

/// One line per way the f64 reference's result through `face` (its loss, active counts when the
/// face reports them, and gradient) misses `want` under the [`oracle`] bounds, with `grad_rel`
/// ([`oracle::GRAD_F32_REL`] or [`oracle::GRAD_F64_REL`]) for the gradient.
pub fn oracle_mismatches<T: Copy + Into<f64>>(
    face: &str,
    (loss, active, grad): (f64, Option<[u64; 2]>, &[T]),
    want: &Expected<'_>,
    grad_rel: f64,
) -> Vec<String> {
    let mut out = Vec::new();
    if !value_close(loss, want.value, oracle::VALUE_REL, oracle::VALUE_ABS) {
        out.push(format!("{face}: loss {loss} != expected {}", want.value));
    }
    if let Some(a) = active
        && a != want.active
    {
        out.push(format!(
            "{face}: active terms {a:?} != expected {:?}",
            want.active
        ));
    }
    if let Some(m) = grad_mismatch(grad, want.grad, grad_rel, oracle::GRAD_ABS) {
        out.push(format!("{face}: grad {m}"));
    }
    out
}
