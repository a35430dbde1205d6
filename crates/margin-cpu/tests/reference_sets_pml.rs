//! Parity of the f64 reference with reference sets (`docs/REFERENCE_SETS.md`) against golden
//! values from pytorch-metric-learning 2.9 with `ref_emb` / `ref_labels`, from a float64 torch
//! transcription of the contract's quadruplet, and from PML's `CrossBatchMemory`
//! (`tests/fixtures/pml_ref`, written by `scripts/pml_ref_golden.py`; format in its README).
//!
//! Every case is checked twice: through [`Backend::loss`] with a [`ReferenceSet`] (f32 in, f64
//! inside, f32 gradient out) and through [`reference::evaluate_with_reference`] (f64 gradient).
//! Cross-batch-memory calls use the plain API: the memory as PML read it is the reference set,
//! `self_index` the batch's slots; with an `enqueue_mask` the batch is the unmasked rows, with no
//! self index, and the masked rows' gradient is 0. All failures are reported by case name.
//!
//! [`ReferenceSet`]: margin_core::ReferenceSet

#[path = "../../../tests/support/mod.rs"]
mod support;

use margin_core::Backend;
use margin_cpu::reference::{self, RefSet, ReferenceBackend};
use support::golden::oracle::{GRAD_F32_REL, GRAD_F64_REL};
use support::golden::{Expected, oracle_mismatches};
use support::losses::reference_kinds;
use support::ref_fixtures::{RefCase, cbm_cases, ref_file};

/// Checks one case (a call already cut down to its anchors) through both faces; pushes one line
/// per mismatch onto `fails`.
fn check_case(case: &RefCase, fails: &mut Vec<String>) {
    let tag = case.tag();
    let mut fail = |msg: String| fails.push(format!("{tag}: {msg}"));
    if let Err(e) = case.check_shapes() {
        return fail(e);
    }
    let loss = match case.params.loss(&case.loss) {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot build the loss: {e}")),
    };

    let want = Expected {
        value: case.value,
        active: case.active,
        grad: &case.grad,
    };

    // f32 face: the Backend trait with a ReferenceSet, as every other backend is driven.
    match case.with_input(|input| {
        ReferenceBackend
            .loss(&loss, input)
            .map_err(|e| e.to_string())
    }) {
        Err(e) => fail(format!("Backend::loss failed: {e}")),
        Ok(out) => {
            let got = (out.loss(), Some(out.stats.active_terms), &out.grad[..]);
            let misses = oracle_mismatches("Backend::loss (f32)", got, &want, GRAD_F32_REL);
            misses.into_iter().for_each(&mut fail);
        }
    }

    // f64 face: the oracle's own entry point.
    let (x64, r64) = case.embeddings_f64();
    let sigma = case.sigma();
    let reference = RefSet {
        embeddings: &r64,
        m: case.m,
        labels: &case.ref_labels,
        self_index: sigma.as_deref(),
    };
    match reference::evaluate_with_reference(&loss, &x64, case.n, case.d, &case.labels, reference) {
        Err(e) => fail(format!("evaluate_with_reference failed: {e}")),
        Ok(out) => {
            let got = (out.stats.loss, Some(out.stats.active_terms), &out.grad[..]);
            let misses = oracle_mismatches("evaluate (f64)", got, &want, GRAD_F64_REL);
            misses.into_iter().for_each(&mut fail);
        }
    }
}

#[test]
fn reference_sets_match_pml_goldens() {
    let mut fails = Vec::new();
    let mut total = 0usize;
    // Every loss that takes a reference set has a golden file of its own (n-pair and
    // triplet-center reject one); `ref_file` checks the file's loss, versions, shapes and that no
    // case has a mask.
    for kind in reference_kinds() {
        let name = kind.name();
        let file = ref_file(name);
        assert!(
            file.cases.len() >= 5,
            "only {} cases in {name}",
            file.cases.len()
        );
        for case in &file.cases {
            total += 1;
            check_case(case, &mut fails);
        }
    }
    println!("{total} reference-set cases checked");
    assert!(
        fails.is_empty(),
        "{} mismatches over {total} golden cases:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

#[test]
fn cross_batch_memory_calls_match_pml() {
    // `cbm_cases` checks each call's memory size and mask, and that the rows a mask leaves out
    // (only enqueued) expect a zero gradient; the anchors' rows are compared here.
    let cases = cbm_cases();
    let mut fails = Vec::new();
    for (case, _) in &cases {
        check_case(case, &mut fails);
    }
    let total = cases.len();
    assert!(total >= 12, "only {total} calls");
    assert!(
        fails.is_empty(),
        "{} mismatches over {total} cross-batch-memory calls:\n{}",
        fails.len(),
        fails.join("\n")
    );
}
