//! The reference-set golden fixtures (`tests/fixtures/pml_ref`, written by
//! `scripts/pml_ref_golden.py` from PML 2.9 in float64; format in that directory's README), read
//! into plain structs, and turned into margin inputs.

use margin_core::{Distance, Embeddings, Loss, LossInput, LossKind, LossOverrides, Mining};
use margin_core::{NO_SELF, ReferenceSet};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Only the parameters a case overrides; the rest are the defaults.
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
        };
        overrides
            .apply(Loss::default_for(kind))
            .map_err(|e| format!("{e}"))
    }
}

/// One batch against one reference set, with PML's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct RefCase {
    pub name: String,
    pub loss: String,
    #[serde(default)]
    pub params: Params,
    pub n: usize,
    pub m: usize,
    pub d: usize,
    pub labels: Vec<i64>,
    pub embeddings: Vec<f32>,
    pub ref_labels: Vec<i64>,
    pub ref_embeddings: Vec<f32>,
    /// Reference row of each batch row's own copy (`-1` or absent: none).
    #[serde(default)]
    pub self_index: Option<Vec<i64>>,
    pub value: f64,
    pub active: [u64; 2],
    pub grad: Vec<f64>,
}

impl RefCase {
    /// The self index in margin's encoding.
    pub fn sigma(&self) -> Option<Vec<u32>> {
        self.self_index.as_ref().map(|s| {
            s.iter()
                .map(|&v| u32::try_from(v).unwrap_or(NO_SELF))
                .collect()
        })
    }

    /// Runs `f` with the validated input of this case.
    pub fn with_input<T>(
        &self,
        f: impl FnOnce(&LossInput<'_>) -> Result<T, String>,
    ) -> Result<T, String> {
        let sigma = self.sigma();
        let x = Embeddings::new(&self.embeddings, self.n, self.d).map_err(|e| e.to_string())?;
        let r = Embeddings::named(&self.ref_embeddings, self.m, self.d, "reference embeddings")
            .map_err(|e| e.to_string())?;
        let input = LossInput::new(x, &self.labels, None)
            .and_then(|i| {
                i.with_reference(ReferenceSet {
                    embeddings: r,
                    labels: &self.ref_labels,
                    self_index: sigma.as_deref(),
                })
            })
            .map_err(|e| e.to_string())?;
        f(&input)
    }
}

/// One forward call on a CrossBatchMemory, with the memory as PML read it.
#[derive(Debug, Clone, Deserialize)]
pub struct CbmCall {
    pub n: usize,
    pub labels: Vec<i64>,
    pub embeddings: Vec<f32>,
    #[serde(default)]
    pub enqueue_mask: Option<Vec<bool>>,
    pub m: usize,
    pub ref_labels: Vec<i64>,
    pub ref_embeddings: Vec<f32>,
    pub self_index: Option<Vec<i64>>,
    pub queue_idx_after: usize,
    pub value: f64,
    pub active: [u64; 2],
    pub grad: Vec<f64>,
}

/// Consecutive calls on one fresh CrossBatchMemory of `memory_size` rows.
#[derive(Debug, Clone, Deserialize)]
pub struct CbmSequence {
    pub name: String,
    pub loss: String,
    #[serde(default)]
    pub params: Params,
    pub d: usize,
    pub memory_size: usize,
    pub calls: Vec<CbmCall>,
}

impl CbmSequence {
    /// Each call as a plain reference-set case: with an enqueue mask, the batch is the rows
    /// whose mask is false (only they are anchors) and `rows` says which batch rows they are.
    pub fn plain_cases(&self) -> Vec<(RefCase, Vec<usize>)> {
        self.calls
            .iter()
            .enumerate()
            .map(|(c, call)| {
                let rows: Vec<usize> = match &call.enqueue_mask {
                    Some(mask) => (0..call.n).filter(|&i| !mask[i]).collect(),
                    None => (0..call.n).collect(),
                };
                let d = self.d;
                let pick = |v: &[f32]| -> Vec<f32> {
                    rows.iter()
                        .flat_map(|&i| v[i * d..(i + 1) * d].iter().copied())
                        .collect()
                };
                let grad: Vec<f64> = rows
                    .iter()
                    .flat_map(|&i| call.grad[i * d..(i + 1) * d].iter().copied())
                    .collect();
                let case = RefCase {
                    name: format!("{} call {c}", self.name),
                    loss: self.loss.clone(),
                    params: self.params.clone(),
                    n: rows.len(),
                    m: call.m,
                    d,
                    labels: rows.iter().map(|&i| call.labels[i]).collect(),
                    embeddings: pick(&call.embeddings),
                    ref_labels: call.ref_labels.clone(),
                    ref_embeddings: call.ref_embeddings.clone(),
                    self_index: call.self_index.clone(),
                    value: call.value,
                    active: call.active,
                    grad,
                };
                (case, rows)
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct CaseFile<T> {
    cases: Vec<T>,
}

/// The fixtures beside this crate, or under `tests/fixtures/pml_ref` of the current directory
/// (a prebuilt test binary run from another checkout's root, as `scripts/gpu-check.sh` does).
fn dir() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pml_ref");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("tests/fixtures/pml_ref")
    }
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str::<CaseFile<T>>(&text)
        .unwrap_or_else(|e| panic!("{}: bad fixture: {e}", path.display()))
        .cases
}

/// Every plain case (one file per loss; not the CrossBatchMemory sequences).
pub fn ref_cases() -> Vec<RefCase> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/fixtures/pml_ref exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_stem().is_some_and(|s| s != "cross-batch-memory")
        })
        .collect();
    files.sort();
    let cases: Vec<RefCase> = files.iter().flat_map(|p| read::<RefCase>(p)).collect();
    assert!(
        cases.len() >= 150,
        "only {} reference-set cases",
        cases.len()
    );
    cases
}

/// The CrossBatchMemory sequences.
pub fn cbm_sequences() -> Vec<CbmSequence> {
    read(&dir().join("cross-batch-memory.json"))
}
