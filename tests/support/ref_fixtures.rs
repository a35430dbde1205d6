//! The reference-set golden fixtures (`tests/fixtures/pml_ref`, written by
//! `scripts/pml_ref_golden.py` from PML 2.9 in float64; format in that directory's README), read
//! into plain structs and turned into margin inputs. Cross-batch-memory calls become plain cases:
//! the memory as PML read it is the reference set, and with an enqueue mask the batch is the
//! unmasked rows (the only anchors).

use super::golden::{Params, fixture_dir, json_files, read_json};
use margin_core::{Embeddings, LossInput, NO_SELF, ReferenceSet};
use serde::Deserialize;

/// One batch against one reference set, with PML's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct RefCase {
    pub name: String,
    pub loss: String,
    /// `pml`, or `torch-f64-spec` for a float64 torch transcription (quadruplet).
    #[serde(default)]
    pub source: String,
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
    /// Never in a `<loss>.json` case (checked when read); masks are applied by
    /// [`CbmSequence::plain_cases`].
    #[serde(default)]
    pub enqueue_mask: Option<Vec<bool>>,
    pub value: f64,
    pub active: [u64; 2],
    pub grad: Vec<f64>,
}

impl RefCase {
    /// `name [source]`, or the name alone for a cross-batch-memory call.
    pub fn tag(&self) -> String {
        if self.source.is_empty() {
            self.name.clone()
        } else {
            format!("{} [{}]", self.name, self.source)
        }
    }

    /// `Err` naming the first array whose length does not fit `n`, `m` and `d`.
    pub fn check_shapes(&self) -> Result<(), String> {
        let (n, m, d) = (self.n, self.m, self.d);
        for (what, len, want) in [
            ("labels", self.labels.len(), n),
            ("embeddings", self.embeddings.len(), n * d),
            ("ref_labels", self.ref_labels.len(), m),
            ("ref_embeddings", self.ref_embeddings.len(), m * d),
            ("grad", self.grad.len(), n * d),
        ] {
            if len != want {
                return Err(format!(
                    "malformed fixture: {what} has {len} values, not {want}"
                ));
            }
        }
        Ok(())
    }

    /// The self index in margin's encoding.
    pub fn sigma(&self) -> Option<Vec<u32>> {
        self.self_index.as_ref().map(|s| {
            s.iter()
                .map(|&v| u32::try_from(v).unwrap_or(NO_SELF))
                .collect()
        })
    }

    /// The embeddings widened to f64 (for the reference's own f64 entry point).
    pub fn embeddings_f64(&self) -> (Vec<f64>, Vec<f64>) {
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect();
        (widen(&self.embeddings), widen(&self.ref_embeddings))
    }

    /// Runs `f` with the validated input of this case.
    pub fn with_input<T>(
        &self,
        f: impl FnOnce(&LossInput<'_>) -> Result<T, String>,
    ) -> Result<T, String> {
        let sigma = self.sigma();
        let input = reference_input(
            &self.embeddings,
            &self.labels,
            &self.ref_embeddings,
            &self.ref_labels,
            sigma.as_deref(),
            self.d,
        )?;
        f(&input)
    }
}

/// The validated input of a batch (`x`, one label per row) against a reference set (`r`, one
/// label per row), both of width `d`.
pub fn reference_input<'a>(
    x: &'a [f32],
    labels: &'a [i64],
    r: &'a [f32],
    ref_labels: &'a [i64],
    sigma: Option<&'a [u32]>,
    d: usize,
) -> Result<LossInput<'a>, String> {
    let xe = Embeddings::new(x, labels.len(), d).map_err(|e| e.to_string())?;
    let re = Embeddings::named(r, ref_labels.len(), d, "reference embeddings")
        .map_err(|e| e.to_string())?;
    LossInput::new(xe, labels, None)
        .and_then(|i| {
            i.with_reference(ReferenceSet {
                embeddings: re,
                labels: ref_labels,
                self_index: sigma,
            })
        })
        .map_err(|e| e.to_string())
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
    /// Panics on a malformed call: a memory larger than its size, a mask with a self index, or
    /// a masked row whose expected gradient is not 0 (only the anchors' rows are compared).
    pub fn plain_cases(&self) -> Vec<(RefCase, Vec<usize>)> {
        let d = self.d;
        self.calls
            .iter()
            .enumerate()
            .map(|(c, call)| {
                let name = format!("{} call {c}", self.name);
                assert!(call.m <= self.memory_size, "{name}: memory over its size");
                assert!(
                    call.enqueue_mask.is_none() || call.self_index.is_none(),
                    "{name}: an enqueue mask comes without a self index"
                );
                assert_eq!(call.grad.len(), call.n * d, "{name}: gradient shape");
                let rows: Vec<usize> = match &call.enqueue_mask {
                    Some(mask) => (0..call.n).filter(|&i| !mask[i]).collect(),
                    None => (0..call.n).collect(),
                };
                for i in (0..call.n).filter(|i| !rows.contains(i)) {
                    assert!(
                        call.grad[i * d..(i + 1) * d].iter().all(|&g| g == 0.0),
                        "{name}: enqueued-only row {i} has a gradient"
                    );
                }
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
                    name,
                    loss: self.loss.clone(),
                    source: String::new(),
                    params: self.params.clone(),
                    n: rows.len(),
                    m: call.m,
                    d,
                    labels: rows.iter().map(|&i| call.labels[i]).collect(),
                    embeddings: pick(&call.embeddings),
                    ref_labels: call.ref_labels.clone(),
                    ref_embeddings: call.ref_embeddings.clone(),
                    self_index: call.self_index.clone(),
                    enqueue_mask: None,
                    value: call.value,
                    active: call.active,
                    grad,
                };
                (case, rows)
            })
            .collect()
    }
}

/// A fixture file: its generator's versions and its cases.
#[derive(Debug, Deserialize)]
pub struct CaseFile<T> {
    #[serde(default)]
    pub torch: String,
    #[serde(default)]
    pub pytorch_metric_learning: String,
    #[serde(default)]
    pub loss: String,
    pub cases: Vec<T>,
}

/// `<loss>.json`: checks that it names its generator's versions and that each case is of
/// `loss`, well formed and without an enqueue mask.
pub fn ref_file(loss: &str) -> CaseFile<RefCase> {
    let path = fixture_dir("pml_ref").join(format!("{loss}.json"));
    let file: CaseFile<RefCase> = read_json(&path);
    assert_eq!(file.loss, loss, "{}", path.display());
    assert!(!file.torch.is_empty() && !file.pytorch_metric_learning.is_empty());
    for case in &file.cases {
        assert_eq!(case.loss, loss, "{}", case.name);
        assert!(case.enqueue_mask.is_none(), "{}", case.name);
        case.check_shapes()
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
    file
}

/// The losses with a `<loss>.json` of their own, in file order (n-pair and triplet-center reject
/// a reference set).
pub fn ref_losses() -> Vec<String> {
    json_files(&fixture_dir("pml_ref"), Some("cross-batch-memory"))
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect()
}

/// Every plain case (one file per loss; not the CrossBatchMemory sequences), at least 150.
pub fn ref_cases() -> Vec<RefCase> {
    let cases: Vec<RefCase> = ref_losses()
        .iter()
        .flat_map(|l| ref_file(l).cases)
        .collect();
    assert!(
        cases.len() >= 150,
        "only {} reference-set cases",
        cases.len()
    );
    cases
}

/// The CrossBatchMemory sequences: at least 12, each with calls.
pub fn cbm_sequences() -> Vec<CbmSequence> {
    let path = fixture_dir("pml_ref").join("cross-batch-memory.json");
    let seqs = read_json::<CaseFile<CbmSequence>>(&path).cases;
    assert!(seqs.len() >= 12, "only {} sequences", seqs.len());
    for s in &seqs {
        assert!(!s.calls.is_empty(), "{}: no calls", s.name);
    }
    seqs
}

/// Every CrossBatchMemory call as a plain case (see [`CbmSequence::plain_cases`]).
pub fn cbm_cases() -> Vec<(RefCase, Vec<usize>)> {
    cbm_sequences()
        .iter()
        .flat_map(CbmSequence::plain_cases)
        .collect()
}
