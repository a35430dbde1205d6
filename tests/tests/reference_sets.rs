//! Reference sets (PML's `ref_emb`, the building block of cross-batch memory) on every backend:
//! PML's golden values (`tests/fixtures/pml_ref`), each call of PML's CrossBatchMemory through the
//! plain API, and random rectangles against the float64 reference. One generic body per property,
//! instantiated per backend by `reference_suite!`.

use margin_core::{HostBackend, LossKind};
use margin_tests::golden::output_mismatch;
use margin_tests::ref_fixtures::{RefCase, cbm_cases, ref_cases};
use margin_tests::ref_random::{
    RefLayout, check_loss_with_reference, reference_loss_configs, small_for,
};
use margin_tests::{GRAD_RTOL, LOSS_RTOL, Labels, assert_all};

/// PML is float64 on the same f32 inputs: the f64 reference must agree this closely ...
const F64_VALUE_RTOL: f64 = 1e-6;
const F64_GRAD_RTOL: f64 = 1e-5;

/// Compares one fixture case; `tight` for the f64 reference, the SPEC's bounds otherwise.
fn check_case(b: &dyn HostBackend, case: &RefCase, tight: bool) -> Result<(), String> {
    let loss = case.params.loss(&case.loss)?;
    let out = case
        .with_input(|input| b.host_loss(&loss, input).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", case.name))?;
    let (vrtol, grtol) = if tight {
        (F64_VALUE_RTOL, F64_GRAD_RTOL)
    } else {
        (LOSS_RTOL, GRAD_RTOL)
    };
    match output_mismatch(&out, case.value, case.active, &case.grad, vrtol, grtol) {
        None => Ok(()),
        Some(e) => Err(format!("{}: {e} (PML)", case.name)),
    }
}

pub fn pml_ref_fixtures(b: &dyn HostBackend, tight: bool) {
    assert_all(ref_cases().iter().map(|c| check_case(b, c, tight)));
}

pub fn cbm_calls(b: &dyn HostBackend, tight: bool) {
    assert_all(
        cbm_cases()
            .iter()
            .map(|(case, _)| check_case(b, case, tight)),
    );
}

pub fn random_vs_reference(b: &dyn HostBackend) {
    let layouts = [
        (RefLayout::Independent { m: 23, classes: 5 }, 37),
        (RefLayout::Independent { m: 61, classes: 3 }, 20),
        (RefLayout::Memory { extra: 13 }, 17),
        (RefLayout::NoPositives { m: 9 }, 6),
        (RefLayout::AllPositive { m: 8 }, 5),
        (RefLayout::Independent { m: 1, classes: 1 }, 7),
        (RefLayout::Independent { m: 5, classes: 2 }, 1),
    ];
    assert_all(
        reference_loss_configs()
            .iter()
            .enumerate()
            .flat_map(|(i, loss)| {
                layouts.map(|(layout, n)| {
                    check_loss_with_reference(
                        b,
                        loss,
                        small_for(loss, n),
                        6,
                        Labels::Classes(4),
                        layout,
                        500 + i as u64,
                    )
                })
            }),
    );
}

/// Sizes past one workgroup / tile, default losses only.
pub fn larger_rectangles(b: &dyn HostBackend) {
    assert_all(
        LossKind::ALL
            .into_iter()
            .map(margin_core::Loss::default_for)
            .filter(|l| l.supports_reference())
            .flat_map(|loss| {
                [
                    (
                        130,
                        RefLayout::Independent {
                            m: 257,
                            classes: 11,
                        },
                    ),
                    (70, RefLayout::Memory { extra: 190 }),
                ]
                .map(|(n, layout)| {
                    check_loss_with_reference(
                        b,
                        &loss,
                        small_for(&loss, n),
                        19,
                        Labels::Classes(9),
                        layout,
                        n as u64,
                    )
                })
            }),
    );
}

/// Losses that take no reference set say so; nothing is computed.
pub fn rejected_losses(b: &dyn HostBackend) {
    use margin_tests::ref_random::RefInputs;
    let inputs = RefInputs::make(
        6,
        3,
        Labels::Classes(2),
        RefLayout::Independent { m: 4, classes: 2 },
        1,
    );
    let input = inputs.input().unwrap();
    for kind in [
        LossKind::NPair,
        LossKind::TripletCenter,
        LossKind::ProxyAnchor,
        LossKind::ProxyNca,
        LossKind::NormalizedSoftmax,
        LossKind::CosFace,
    ] {
        let err = b
            .host_loss(&margin_core::Loss::default_for(kind), &input)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reference set") || err.contains("centers"),
            "{kind}: {err}"
        );
    }
}

macro_rules! reference_suite {
    ($name:ident, $require:literal, $tight:literal, $make:expr) => {
        mod $name {
            use super::*;
            fn backend() -> Option<Box<dyn HostBackend>> {
                margin_tests::backend_or_skip($make, $require)
            }
            #[test]
            fn pml_ref_fixtures() {
                if let Some(b) = backend() {
                    super::pml_ref_fixtures(b.as_ref(), $tight)
                }
            }
            #[test]
            fn cbm_calls() {
                if let Some(b) = backend() {
                    super::cbm_calls(b.as_ref(), $tight)
                }
            }
            #[test]
            fn random_vs_reference() {
                if let Some(b) = backend() {
                    super::random_vs_reference(b.as_ref())
                }
            }
            #[test]
            fn larger_rectangles() {
                if let Some(b) = backend() {
                    super::larger_rectangles(b.as_ref())
                }
            }
            #[test]
            fn rejected_losses() {
                if let Some(b) = backend() {
                    super::rejected_losses(b.as_ref())
                }
            }
        }
    };
}

reference_suite!(
    reference,
    "MARGIN_REQUIRE_CPU",
    true,
    Ok(Box::new(margin_cpu::ReferenceBackend))
);
reference_suite!(
    cpu,
    "MARGIN_REQUIRE_CPU",
    false,
    Ok(Box::new(margin_cpu::CpuBackend::new()))
);
reference_suite!(
    wgpu,
    "MARGIN_REQUIRE_WGPU",
    false,
    margin_tests::wgpu_for_tests()
);
reference_suite!(
    cuda,
    "MARGIN_REQUIRE_CUDA",
    false,
    margin_cuda::CudaBackend::new(0).map(|b| Box::new(b) as Box<dyn HostBackend>)
);
