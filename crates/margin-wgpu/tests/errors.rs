//! Errors are values: unknown adapters, bad shapes and labels, oversize requests.

mod common;

use common::{backend, loss_close, normal, rel_norm, rng};
use margin_core::{
    Backend, DeviceLossInput, Loss, LossKind, LossStats, MarginError, TripletCenterConfig,
};
use margin_wgpu::{WgpuBackend, list_adapters};

#[test]
fn unknown_adapter_name_is_unavailable() {
    let err = WgpuBackend::with_adapter("no-such-adapter-anywhere").unwrap_err();
    assert!(matches!(err, MarginError::Unavailable(_)), "{err}");
}

#[test]
fn list_adapters_does_not_panic() {
    for a in list_adapters() {
        assert!(!a.name.is_empty());
        assert!(
            ["Vulkan", "Metal", "Dx12"].contains(&a.backend.as_str()),
            "{a}"
        );
    }
}

#[test]
fn hardware_only_constructor_refuses_software() {
    match WgpuBackend::new() {
        Ok(b) => assert_ne!(b.device_type(), "Cpu", "{}", b.name()),
        Err(e) => assert!(matches!(e, MarginError::Unavailable(_)), "{e}"),
    }
}

#[test]
fn bad_inputs_are_errors() {
    let Some(b) = backend() else { return };
    assert!(b.name().starts_with("wgpu ("), "{}", b.name());
    let mut r = rng(5);
    let (n, d) = (6, 3);
    let x = b.upload(&normal(&mut r, n, d)).unwrap();
    let mut g = b.alloc_zeros(n * d).unwrap();
    let loss = Loss::default_for(LossKind::Contrastive);
    let labels = [0i64, 1, 0, 1, 2];
    let input = DeviceLossInput {
        embeddings: &x,
        n,
        d,
        labels: &labels,
        centers: None,
        reference: None,
    };
    let err = b.loss_on_device(&loss, input, &mut g, None).unwrap_err();
    assert!(matches!(err, MarginError::InvalidInput(_)), "{err}");

    let labels = [0i64, 1, 0, 1, 2, 9];
    let input = DeviceLossInput {
        embeddings: &x,
        n: 7,
        d,
        labels: &labels,
        centers: None,
        reference: None,
    };
    let err = b.loss_on_device(&loss, input, &mut g, None).unwrap_err();
    assert!(matches!(err, MarginError::InvalidInput(_)), "{err}");

    // Triplet-center: a label outside 0..K.
    let c = b.upload(&normal(&mut r, 3, d)).unwrap();
    let tc = Loss::TripletCenter(TripletCenterConfig::default());
    let input = DeviceLossInput {
        embeddings: &x,
        n,
        d,
        labels: &labels,
        centers: Some((&c, 3)),
        reference: None,
    };
    let err = b.loss_on_device(&tc, input, &mut g, None).unwrap_err();
    assert!(matches!(err, MarginError::InvalidInput(_)), "{err}");
}

#[test]
fn oversize_matrix_is_out_of_memory() {
    let Some(b) = backend() else { return };
    // 70000^2 f32 values exceed every adapter's binding limit (and 32-bit indexing).
    let x = b.upload(&[0.5f32; 70_000]).unwrap();
    let mut out = b.alloc_zeros(4).unwrap();
    let err = b
        .pairwise_on_device(
            margin_core::Metric::new(margin_core::Distance::Dot, false),
            &x,
            70_000,
            None,
            1,
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            MarginError::InvalidInput(_) | MarginError::OutOfMemory(_)
        ),
        "{err}"
    );
    // Losses run in slabs of rows beyond a binding, but the quadruplet's positive-pair lists (here
    // 70000^2 / 3) must fit one: refused before any pass.
    let err = loss_on_device(&b, LossKind::Quadruplet, &x, 70_000).unwrap_err();
    assert!(matches!(err, MarginError::OutOfMemory(_)), "{err}");
}

/// The default `kind` loss over `n` rows of width 1 already on the device, labels `i % 3`.
fn loss_on_device(
    b: &WgpuBackend,
    kind: LossKind,
    x: &wgpu::Buffer,
    n: usize,
) -> Result<(LossStats, Vec<f32>), MarginError> {
    let mut g = b.alloc_zeros(n)?;
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    let input = DeviceLossInput {
        embeddings: x,
        n,
        d: 1,
        labels: &labels,
        centers: None,
        reference: None,
    };
    let stats = b.loss_on_device(&Loss::default_for(kind), input, &mut g, None)?;
    Ok((stats, b.download(&g)?))
}

/// `margin devices` tells how large a square batch fits an adapter in one piece
/// (`max_square_rows`, from the binding limit it lists), and that limit is the enforced one: a
/// buffer one value past it is refused with `OutOfMemory`, and a loss one row past it runs in two
/// slabs of rows (src/losses/slabs.rs; contrastive, about 3 s on lavapipe at N = 5793) and
/// matches the f64 reference.
#[test]
fn listed_binding_limit_is_the_enforced_one() {
    let Some(b) = backend() else { return };
    let listed = list_adapters()
        .into_iter()
        .find(|a| b.name() == format!("wgpu ({}, {})", a.name, a.backend))
        .unwrap_or_else(|| panic!("{} is not among the listed adapters", b.name()));
    assert!(listed.max_binding > 0, "{listed}");
    let values = usize::try_from(listed.max_binding / 4).unwrap() + 1;
    let err = b.alloc_zeros(values).unwrap_err();
    assert!(
        matches!(err, MarginError::OutOfMemory(_)),
        "{listed}: {err}"
    );
    let n = usize::try_from(listed.max_square_rows()).unwrap() + 1;
    if n > 20_000 {
        // A GPU: the f64 reference at this size would take minutes.
        return;
    }
    let xs = normal(&mut rng(5), n, 1);
    let x = b.upload(&xs).unwrap();
    let t = std::time::Instant::now();
    let (stats, grad) = loss_on_device(&b, LossKind::Contrastive, &x, n).unwrap();
    println!("contrastive in slabs, n = {n}: {:?}", t.elapsed());
    let x64: Vec<f64> = xs.iter().map(|&v| f64::from(v)).collect();
    let y: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    let loss = Loss::default_for(LossKind::Contrastive);
    let want = margin_cpu::reference::evaluate(&loss, &x64, n, 1, &y, None).unwrap();
    assert!(
        loss_close(stats.loss, want.stats.loss),
        "{stats:?} vs {:?}",
        want.stats
    );
    let gerr = rel_norm(&grad, &want.grad);
    assert!(gerr <= 1e-3, "gradient rel err {gerr}");
}
