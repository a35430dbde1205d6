//! Reference sets on the wgpu backend (docs/REFERENCE_SETS.md): every case of PML's golden values
//! (`tests/fixtures/pml_ref/<loss>.json`) and every CrossBatchMemory call
//! (`cross-batch-memory.json`, through the plain API) with the SPEC's f32 tolerances, plus the
//! rules that hold without a fixture (rule 2.3, the self column as a hard-mining candidate, the
//! square case unchanged when R = X and the self index is the identity).

mod common;

use common::backend;
use margin_core::{
    Backend, Distance, Embeddings, Loss, LossInput, LossKind, LossOutput, LossOverrides, Mining,
    NO_SELF, ReferenceSet,
};
use margin_wgpu::WgpuBackend;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The SPEC's f32 bounds: loss 1e-4 relative or 1e-6 absolute, gradient 1e-3 relative norm.
const LOSS_RTOL: f64 = 1e-4;
const LOSS_ATOL: f64 = 1e-6;
const GRAD_RTOL: f64 = 1e-3;

/// Only the parameters a case overrides; the rest are the defaults.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
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
    fn loss(&self, kind: &str) -> Result<Loss, String> {
        let kind: LossKind = kind.parse().map_err(|e| format!("{e}"))?;
        let distance = |s: &str| s.parse::<Distance>().map_err(|e| format!("{e}"));
        let mining = |s: &str| s.parse::<Mining>().map_err(|e| format!("{e}"));
        LossOverrides {
            distance: self.distance.as_deref().map(distance).transpose()?,
            normalize: self.normalize,
            margin: self.margin,
            margin2: self.margin2,
            pos_margin: self.pos_margin,
            neg_margin: self.neg_margin,
            smooth: self.smooth,
            mining: self.mining.as_deref().map(mining).transpose()?,
            alpha: self.alpha,
            beta: self.beta,
            base: self.base,
            gamma: self.gamma,
            temperature: self.temperature,
        }
        .apply(Loss::default_for(kind))
        .map_err(|e| format!("{e}"))
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RefCase {
    name: String,
    loss: String,
    #[serde(default)]
    params: Params,
    n: usize,
    m: usize,
    d: usize,
    labels: Vec<i64>,
    embeddings: Vec<f32>,
    ref_labels: Vec<i64>,
    ref_embeddings: Vec<f32>,
    #[serde(default)]
    self_index: Option<Vec<i64>>,
    value: f64,
    active: [u64; 2],
    grad: Vec<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct CbmCall {
    n: usize,
    labels: Vec<i64>,
    embeddings: Vec<f32>,
    #[serde(default)]
    enqueue_mask: Option<Vec<bool>>,
    m: usize,
    ref_labels: Vec<i64>,
    ref_embeddings: Vec<f32>,
    self_index: Option<Vec<i64>>,
    value: f64,
    active: [u64; 2],
    grad: Vec<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct CbmSequence {
    name: String,
    loss: String,
    #[serde(default)]
    params: Params,
    d: usize,
    calls: Vec<CbmCall>,
}

#[derive(Debug, Deserialize)]
struct CaseFile<T> {
    cases: Vec<T>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pml_ref")
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<CaseFile<T>>(&text)
        .unwrap_or_else(|e| panic!("{}: bad fixture: {e}", path.display()))
        .cases
}

/// Runs `loss` on the batch against the reference set.
#[allow(clippy::too_many_arguments)]
fn run(
    b: &WgpuBackend,
    loss: &Loss,
    x: &[f32],
    labels: &[i64],
    r: &[f32],
    ref_labels: &[i64],
    sigma: Option<&[u32]>,
    d: usize,
) -> Result<LossOutput, String> {
    let n = labels.len();
    let m = ref_labels.len();
    let xe = Embeddings::new(x, n, d).map_err(|e| e.to_string())?;
    let re = Embeddings::named(r, m, d, "reference").map_err(|e| e.to_string())?;
    let input = LossInput::new(xe, labels, None)
        .and_then(|i| {
            i.with_reference(ReferenceSet {
                embeddings: re,
                labels: ref_labels,
                self_index: sigma,
            })
        })
        .map_err(|e| e.to_string())?;
    b.loss(loss, &input).map_err(|e| e.to_string())
}

/// `None` when `out` matches the golden value, active counts and gradient.
fn mismatch(out: &LossOutput, value: f64, active: [u64; 2], grad: &[f64]) -> Option<String> {
    let v = out.stats.loss;
    if v.is_nan() || (v - value).abs() > LOSS_ATOL.max(LOSS_RTOL * value.abs()) {
        return Some(format!("loss {v} vs {value}"));
    }
    if out.stats.active_terms != active {
        return Some(format!("active {:?} vs {active:?}", out.stats.active_terms));
    }
    if out.grad.len() != grad.len() {
        return Some(format!(
            "gradient length {} vs {}",
            out.grad.len(),
            grad.len()
        ));
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (&g, &w) in out.grad.iter().zip(grad) {
        num += (f64::from(g) - w).powi(2);
        den += w * w;
    }
    let rel = if den.sqrt() < 1e-6 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    };
    if rel.is_nan() || rel > GRAD_RTOL {
        return Some(format!("gradient differs by {rel:.3e}"));
    }
    None
}

fn sigma_of(s: &Option<Vec<i64>>) -> Option<Vec<u32>> {
    s.as_ref().map(|v| {
        v.iter()
            .map(|&i| u32::try_from(i).unwrap_or(NO_SELF))
            .collect()
    })
}

fn check_case(b: &WgpuBackend, c: &RefCase) -> Result<(), String> {
    let loss = c.params.loss(&c.loss)?;
    assert_eq!(c.embeddings.len(), c.n * c.d, "{}", c.name);
    assert_eq!(c.ref_embeddings.len(), c.m * c.d, "{}", c.name);
    let sigma = sigma_of(&c.self_index);
    let out = run(
        b,
        &loss,
        &c.embeddings,
        &c.labels,
        &c.ref_embeddings,
        &c.ref_labels,
        sigma.as_deref(),
        c.d,
    )?;
    match mismatch(&out, c.value, c.active, &c.grad) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

fn report(fails: Vec<String>, total: usize) {
    assert!(
        fails.is_empty(),
        "{} of {total} cases failed:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

#[test]
fn pml_ref_fixtures() {
    let Some(b) = backend() else { return };
    check_fixtures(&b);
}

/// The fixtures again with the GPU variants of the product and sort kernels (workgroup tiles,
/// triplet rows sorted in workgroup memory), which a CPU adapter does not pick by default.
#[test]
fn pml_ref_fixtures_workgroup_tiling() {
    let Some(b) = common::tiled_backend() else {
        return;
    };
    check_fixtures(&b);
}

fn check_fixtures(b: &WgpuBackend) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_stem().is_some_and(|s| s != "cross-batch-memory")
        })
        .collect();
    files.sort();
    let cases: Vec<RefCase> = files.iter().flat_map(|p| read::<RefCase>(p)).collect();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let fails: Vec<String> = cases
        .iter()
        .filter_map(|c| check_case(b, c).err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    report(fails, cases.len());
}

/// Every CrossBatchMemory call through the plain API. With an enqueue mask the batch is the rows
/// whose mask is false (the only anchors, no self index); the other rows get gradient 0.
#[test]
fn cbm_calls() {
    let Some(b) = backend() else { return };
    let seqs: Vec<CbmSequence> = read(&fixture_dir().join("cross-batch-memory.json"));
    assert!(seqs.len() >= 12);
    let mut fails = Vec::new();
    let mut total = 0;
    for s in &seqs {
        let loss = s.params.loss(&s.loss).unwrap();
        let d = s.d;
        for (k, call) in s.calls.iter().enumerate() {
            total += 1;
            let rows: Vec<usize> = match &call.enqueue_mask {
                Some(mask) => (0..call.n).filter(|&i| !mask[i]).collect(),
                None => (0..call.n).collect(),
            };
            // Rows that were only enqueued have no gradient.
            for i in (0..call.n).filter(|i| !rows.contains(i)) {
                assert!(call.grad[i * d..(i + 1) * d].iter().all(|&g| g == 0.0));
            }
            let pick = |v: &[f32]| -> Vec<f32> {
                rows.iter()
                    .flat_map(|&i| v[i * d..(i + 1) * d].iter().copied())
                    .collect()
            };
            let x = pick(&call.embeddings);
            let labels: Vec<i64> = rows.iter().map(|&i| call.labels[i]).collect();
            let grad: Vec<f64> = rows
                .iter()
                .flat_map(|&i| call.grad[i * d..(i + 1) * d].iter().copied())
                .collect();
            assert_eq!(call.ref_embeddings.len(), call.m * d);
            let sigma = sigma_of(&call.self_index);
            let res = run(
                &b,
                &loss,
                &x,
                &labels,
                &call.ref_embeddings,
                &call.ref_labels,
                sigma.as_deref(),
                d,
            )
            .and_then(|out| mismatch(&out, call.value, call.active, &grad).map_or(Ok(()), Err));
            if let Err(e) = res {
                fails.push(format!("{} call {k}: {e}", s.name));
            }
        }
    }
    report(fails, total);
}

/// Rule 2.3: a 1 x 2 rectangle (one positive, one negative pair) gives 0 for the pair losses but
/// not for triplet.
#[test]
fn tiny_pair_sets_are_zero_for_pair_losses() {
    let Some(b) = backend() else { return };
    let x = [1.0f32, 0.0, 0.3, 0.2];
    let r = [0.5f32, 0.5, 0.1, -0.4, 0.9, 0.3, -0.2, 0.1];
    for kind in [
        LossKind::Contrastive,
        LossKind::LiftedStructure,
        LossKind::MultiSimilarity,
        LossKind::Circle,
        LossKind::NTXent,
        LossKind::SupCon,
        LossKind::GeneralizedLiftedStructure,
    ] {
        let loss = Loss::default_for(kind);
        let out = run(&b, &loss, &x, &[0], &r, &[0, 1], None, 4).unwrap();
        assert_eq!(out.stats.loss, 0.0, "{kind:?}");
        assert_eq!(out.stats.active_terms, [0, 0], "{kind:?}");
        assert!(out.grad.iter().all(|&g| g == 0.0), "{kind:?}");
    }
    let loss = Loss::default_for(LossKind::Triplet);
    let out = run(&b, &loss, &x, &[0], &r, &[0, 1], None, 4).unwrap();
    assert_eq!(out.stats.active_terms, [1, 0]);
}

/// The batch as its own reference with the identity self index gives the square case's loss value
/// and active counts (the gradient differs: it flows through the anchor side only). For batch-hard
/// mining the self entry is the closest possible value under the default metrics, so it never
/// wins p*.
#[test]
fn self_index_identity_matches_square_loss_value() {
    let Some(b) = backend() else { return };
    let mut rng = common::rng(77);
    let (n, d) = (24, 8);
    let x = common::normal(&mut rng, n, d);
    let labels = common::labels(&mut rng, n, 4);
    let sigma: Vec<u32> = (0..n as u32).collect();
    let mut losses: Vec<Loss> = [
        LossKind::Contrastive,
        LossKind::Triplet,
        LossKind::Quadruplet,
        LossKind::LiftedStructure,
        LossKind::MultiSimilarity,
        LossKind::Circle,
        LossKind::NTXent,
        LossKind::SupCon,
        LossKind::GeneralizedLiftedStructure,
    ]
    .into_iter()
    .map(Loss::default_for)
    .collect();
    for kind in [LossKind::Triplet, LossKind::Quadruplet] {
        let overrides = LossOverrides {
            mining: Some(Mining::Hard),
            ..Default::default()
        };
        losses.push(overrides.apply(Loss::default_for(kind)).unwrap());
    }
    for loss in &losses {
        let square = b
            .loss(
                loss,
                &LossInput::from_slices(&x, n, d, &labels, None).unwrap(),
            )
            .unwrap();
        let rect = run(&b, loss, &x, &labels, &x, &labels, Some(&sigma), d).unwrap();
        let (a, s) = (rect.stats.loss, square.stats.loss);
        assert!(
            (a - s).abs() <= 1e-4 * s.abs().max(1e-2),
            "{loss:?}: {a} vs {s}"
        );
        assert_eq!(
            rect.stats.active_terms, square.stats.active_terms,
            "{loss:?}"
        );
    }
}

/// Raw dot product, batch-hard: a reference holding the anchor's own copy with a tiny norm makes
/// that copy the anchor's least similar positive, so the anchor is dropped (PML mines, then
/// removes self comparisons), for triplet and quadruplet alike.
#[test]
fn self_copy_winning_hard_positive_drops_the_anchor() {
    let Some(b) = backend() else { return };
    let x = [0.1f32, 0.0];
    let r = [0.1f32, 0.0, 2.0, 0.1, -1.0, 0.5, 0.3, 3.0];
    let (labels, ref_labels) = ([0i64], [0i64, 0, 1, 2]);
    for kind in [LossKind::Triplet, LossKind::Quadruplet] {
        let overrides = LossOverrides {
            mining: Some(Mining::Hard),
            distance: Some(Distance::Dot),
            normalize: Some(false),
            ..Default::default()
        };
        let loss = overrides.apply(Loss::default_for(kind)).unwrap();
        let with_self = run(&b, &loss, &x, &labels, &r, &ref_labels, Some(&[0]), 2).unwrap();
        assert_eq!(with_self.stats.active_terms, [0, 0], "{kind:?}");
        assert!(with_self.grad.iter().all(|&g| g == 0.0), "{kind:?}");
        let without = run(&b, &loss, &x, &labels, &r, &ref_labels, None, 2).unwrap();
        assert_eq!(without.stats.active_terms[0], 1, "{kind:?}");
    }
}

/// Rectangles wider than a workgroup (M = 300 columns, row sorts of 512 values in workgroup
/// memory), memory-like (the batch's own copies at the front of the reference, named by the self
/// index), with the GPU kernel variants, against the float64 reference.
#[test]
fn tiled_wide_rectangles_match_reference() {
    let Some(b) = common::tiled_backend() else {
        return;
    };
    let mut losses: Vec<Loss> = LossKind::ALL
        .into_iter()
        .map(Loss::default_for)
        .filter(Loss::supports_reference)
        .collect();
    for (kind, mining, smooth) in [
        (LossKind::Triplet, Mining::Hard, false),
        (LossKind::Triplet, Mining::SemiHard, false),
        (LossKind::Triplet, Mining::All, true),
        (LossKind::Quadruplet, Mining::Hard, false),
    ] {
        let overrides = LossOverrides {
            mining: Some(mining),
            smooth: smooth.then_some(true),
            ..Default::default()
        };
        losses.push(overrides.apply(Loss::default_for(kind)).unwrap());
    }
    let d = 16;
    let mut fails = Vec::new();
    for (i, loss) in losses.iter().enumerate() {
        let n = if loss.kind() == LossKind::Quadruplet {
            10
        } else {
            70
        };
        let m = 300;
        let mut rng = common::rng(40 + i as u64);
        let x = common::normal(&mut rng, n, d);
        let labels = common::labels(&mut rng, n, 7);
        let mut r = x.clone();
        r.extend(common::normal(&mut rng, m - n, d));
        let mut ref_labels = labels.clone();
        ref_labels.extend(common::labels(&mut rng, m - n, 7));
        let sigma: Vec<u32> = (0..n as u32).collect();
        let got = run(&b, loss, &x, &labels, &r, &ref_labels, Some(&sigma), d).unwrap();
        let xe = Embeddings::new(&x, n, d).unwrap();
        let re = Embeddings::new(&r, m, d).unwrap();
        let input = LossInput::new(xe, &labels, None)
            .unwrap()
            .with_reference(ReferenceSet {
                embeddings: re,
                labels: &ref_labels,
                self_index: Some(&sigma),
            })
            .unwrap();
        let want = margin_cpu::ReferenceBackend.loss(loss, &input).unwrap();
        let grad: Vec<f64> = want.grad.iter().map(|&g| f64::from(g)).collect();
        if let Some(e) = mismatch(&got, want.stats.loss, want.stats.active_terms, &grad) {
            fails.push(format!("{loss:?}: {e}"));
        }
    }
    report(fails, losses.len());
}
