//! `CrossBatchMemory` on every backend against PML's CrossBatchMemory, call by call
//! (`tests/fixtures/pml_ref/cross-batch-memory.json`): the ring's state, the loss, the active
//! counts and the batch gradient; plus its errors.

use margin_core::{Backend, CrossBatchMemory, Embeddings, Loss, LossKind};
use margin_tests::ref_fixtures::cbm_sequences;
use margin_tests::{LOSS_ATOL, LOSS_RTOL, assert_all};

/// PML is float64; the f64 reference rounds only its f32 gradient output.
fn tolerances(tight: bool) -> (f64, f64) {
    if tight {
        (1e-6, 1e-5)
    } else {
        (LOSS_RTOL, 1e-3)
    }
}

fn run_sequences<B: Backend>(b: &B, tight: bool) {
    let (vrtol, grtol) = tolerances(tight);
    let mut results = Vec::new();
    for seq in cbm_sequences() {
        let loss = seq.params.loss(&seq.loss).unwrap();
        let mut mem = CrossBatchMemory::new(b, seq.memory_size, seq.d).unwrap();
        for (c, call) in seq.calls.iter().enumerate() {
            let name = format!("{} call {c}", seq.name);
            let x = b.upload(&call.embeddings).unwrap();
            let mut grad = b.alloc_zeros(call.n * seq.d).unwrap();
            let stats = match &call.enqueue_mask {
                Some(mask) => mem.loss_masked(b, &loss, &x, call.n, &call.labels, mask, &mut grad),
                None => mem.loss(b, &loss, &x, call.n, &call.labels, &mut grad),
            };
            let stats = match stats {
                Ok(s) => s,
                Err(e) => {
                    results.push(Err(format!("{name}: {e}")));
                    continue;
                }
            };
            let g = b.download(&grad).unwrap();
            let check = || -> Result<(), String> {
                if mem.len() != call.m || mem.queue_index() != call.queue_idx_after {
                    return Err(format!(
                        "memory rows {} / queue {} vs PML {} / {}",
                        mem.len(),
                        mem.queue_index(),
                        call.m,
                        call.queue_idx_after
                    ));
                }
                if mem.labels() != call.ref_labels.as_slice() {
                    return Err("memory labels differ from PML's".into());
                }
                let v = stats.loss;
                if v.is_nan() || (v - call.value).abs() > LOSS_ATOL.max(vrtol * call.value.abs()) {
                    return Err(format!("loss {v} vs PML {}", call.value));
                }
                if stats.active_terms != call.active {
                    return Err(format!(
                        "active {:?} vs {:?}",
                        stats.active_terms, call.active
                    ));
                }
                let (mut num, mut den) = (0f64, 0f64);
                for (&gv, &w) in g.iter().zip(&call.grad) {
                    num += (f64::from(gv) - w).powi(2);
                    den += w * w;
                }
                let rel = if den.sqrt() < 1e-6 {
                    num.sqrt()
                } else {
                    (num / den).sqrt()
                };
                if g.len() != call.grad.len() || rel.is_nan() || rel > grtol {
                    return Err(format!("gradient differs by {rel:.3e}"));
                }
                Ok(())
            };
            results.push(check().map_err(|e| format!("{name}: {e}")));
        }
    }
    assert_all(results);
}

fn errors<B: Backend>(b: &B) {
    assert!(CrossBatchMemory::new(b, 0, 4).is_err());
    let mut mem = CrossBatchMemory::new(b, 4, 2).unwrap();
    let x = [0.5f32, -1.0, 2.0, 0.25, 1.5, -0.75, 0.1, 0.9, -0.3, 0.7];
    let triplet = Loss::default_for(LossKind::Triplet);
    // A batch larger than the memory, a wrong label count, a loss without reference support.
    let big = Embeddings::new(&x, 5, 2).unwrap();
    let err = mem
        .host_loss(b, &triplet, big, &[0, 1, 0, 1, 0])
        .unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
    let small = Embeddings::new(&x[..6], 3, 2).unwrap();
    let err = mem.host_loss(b, &triplet, small, &[0, 1]).unwrap_err();
    assert!(err.to_string().contains("label count"), "{err}");
    let err = mem
        .host_loss(b, &Loss::default_for(LossKind::NPair), small, &[0, 1, 0])
        .unwrap_err();
    assert!(err.to_string().contains("reference set"), "{err}");
    // Nothing was enqueued by the failed calls.
    assert!(mem.is_empty());
    // A batch of one row: its own slot is not its positive (PML would keep it).
    let one = Embeddings::new(&x[..2], 1, 2).unwrap();
    let out = mem.host_loss(b, &triplet, one, &[3]).unwrap();
    assert_eq!(out.stats.active, 0);
    assert_eq!(mem.len(), 1);
}

macro_rules! memory_suite {
    ($name:ident, $require:literal, $tight:literal, $make:expr) => {
        mod $name {
            #[test]
            fn pml_sequences() {
                if let Some(b) = margin_tests::concrete_or_skip($make, $require) {
                    super::run_sequences(&b, $tight)
                }
            }
            #[test]
            fn errors() {
                if let Some(b) = margin_tests::concrete_or_skip($make, $require) {
                    super::errors(&b)
                }
            }
        }
    };
}

memory_suite!(
    reference,
    "MARGIN_REQUIRE_CPU",
    true,
    Ok(margin_cpu::ReferenceBackend)
);
memory_suite!(
    cpu,
    "MARGIN_REQUIRE_CPU",
    false,
    Ok(margin_cpu::CpuBackend::new())
);
memory_suite!(
    wgpu,
    "MARGIN_REQUIRE_WGPU",
    false,
    margin_tests::wgpu_concrete()
);
memory_suite!(
    cuda,
    "MARGIN_REQUIRE_CUDA",
    false,
    margin_cuda::CudaBackend::new(0)
);
