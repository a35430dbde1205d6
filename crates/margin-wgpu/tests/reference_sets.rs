//! Reference sets on the wgpu backend (docs/REFERENCE_SETS.md): every case of PML's golden values
//! (`tests/fixtures/pml_ref/<loss>.json`) and every CrossBatchMemory call
//! (`cross-batch-memory.json`, through the plain API) with the SPEC's f32 tolerances, plus the
//! rules that hold without a fixture (rule 2.3, the self column as a hard-mining candidate, the
//! square case unchanged when R = X and the self index is the identity).

mod common;
#[path = "../../../tests/support/mod.rs"]
mod support;

use common::backend;
use margin_core::{
    Backend, Distance, Loss, LossInput, LossKind, LossOutput, LossOverrides, Mining,
};
use margin_wgpu::WgpuBackend;
use support::golden::output_mismatch;
use support::losses::reference_kinds;
use support::ref_fixtures::{RefCase, cbm_cases, ref_cases, reference_input};

/// The SPEC's f32 bounds: loss 1e-4 relative or 1e-6 absolute, gradient 1e-3 relative norm.
const LOSS_RTOL: f64 = 1e-4;
const GRAD_RTOL: f64 = 1e-3;

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
    let input = reference_input(x, labels, r, ref_labels, sigma, d)?;
    b.loss(loss, &input).map_err(|e| e.to_string())
}

/// `None` when `out` matches the expected value, active counts and gradient.
fn mismatch(out: &LossOutput, value: f64, active: [u64; 2], grad: &[f64]) -> Option<String> {
    output_mismatch(out, value, active, grad, LOSS_RTOL, GRAD_RTOL)
}

fn check_case(b: &WgpuBackend, c: &RefCase) -> Result<(), String> {
    let loss = c.params.loss(&c.loss)?;
    let out = c.with_input(|input| b.loss(&loss, input).map_err(|e| e.to_string()))?;
    mismatch(&out, c.value, c.active, &c.grad).map_or(Ok(()), Err)
}

/// Checks every case, reporting all failures at once.
fn check_all(b: &WgpuBackend, cases: &[RefCase]) {
    let fails: Vec<String> = cases
        .iter()
        .filter_map(|c| check_case(b, c).err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    report(fails, cases.len());
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
    check_all(&b, &ref_cases());
}

/// The fixtures again with the GPU variants of the product and sort kernels (workgroup tiles,
/// triplet rows sorted in workgroup memory), which a CPU adapter does not pick by default.
#[test]
fn pml_ref_fixtures_workgroup_tiling() {
    let Some(b) = common::tiled_backend() else {
        return;
    };
    check_all(&b, &ref_cases());
}

/// Every CrossBatchMemory call through the plain API. With an enqueue mask the batch is the rows
/// whose mask is false (the only anchors, no self index); the other rows' expected gradient is 0
/// (checked by `plain_cases`).
#[test]
fn cbm_calls() {
    let Some(b) = backend() else { return };
    let cases: Vec<RefCase> = cbm_cases().into_iter().map(|(c, _)| c).collect();
    check_all(&b, &cases);
}

/// Rule 2.3: a 1 x 2 rectangle (one positive, one negative pair) gives 0 for the pair losses but
/// not for triplet.
#[test]
fn tiny_pair_sets_are_zero_for_pair_losses() {
    let Some(b) = backend() else { return };
    let x = [1.0f32, 0.0, 0.3, 0.2];
    let r = [0.5f32, 0.5, 0.1, -0.4, 0.9, 0.3, -0.2, 0.1];
    // Rule 2.3's seven pair losses.
    let pair_losses = LossKind::ALL
        .map(Loss::default_for)
        .into_iter()
        .filter(Loss::is_pair_loss);
    for loss in pair_losses {
        let kind = loss.kind();
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
    let mut losses: Vec<Loss> = reference_kinds()
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
        let input = reference_input(&x, &labels, &r, &ref_labels, Some(&sigma), d).unwrap();
        let want = margin_cpu::ReferenceBackend.loss(loss, &input).unwrap();
        let grad: Vec<f64> = want.grad.iter().map(|&g| f64::from(g)).collect();
        if let Some(e) = mismatch(&got, want.stats.loss, want.stats.active_terms, &grad) {
            fails.push(format!("{loss:?}: {e}"));
        }
    }
    report(fails, losses.len());
}
