//! Bad input and bad configuration: the reference returns an error that names the problem, and
//! never panics. Checked both on [`evaluate`] and through the [`Backend`] path.

use margin_core::{
    Backend, DeviceLossInput, Distance, Loss, LossInput, MarginError, Metric, TripletCenterConfig,
    TripletConfig,
};
use margin_cpu::ReferenceBackend;
use margin_cpu::reference::evaluate;

fn triplet() -> Loss {
    Loss::Triplet(TripletConfig::default())
}

fn center_loss() -> Loss {
    Loss::TripletCenter(TripletCenterConfig::default())
}

/// Asserts an `InvalidInput` whose message contains every word of `needles`.
fn assert_input_error<T: std::fmt::Debug>(result: margin_core::Result<T>, needles: &[&str]) {
    match result {
        Err(MarginError::InvalidInput(msg)) => {
            for needle in needles {
                assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
            }
        }
        other => panic!("expected InvalidInput naming {needles:?}, got {other:?}"),
    }
}

const X: [f64; 6] = [0.3, -1.2, 0.7, 2.0, -0.4, 1.1];

#[test]
fn shapes_and_labels() {
    assert_input_error(evaluate(&triplet(), &[], 0, 2, &[], None), &["0 x 2"]);
    assert_input_error(
        evaluate(&triplet(), &[], 3, 0, &[0, 0, 1], None),
        &["3 x 0"],
    );
    assert_input_error(
        evaluate(&triplet(), &X, 3, 3, &[0, 0, 1], None),
        &["hold 6", "3 x 3"],
    );
    assert_input_error(
        evaluate(&triplet(), &X, 3, 2, &[0, 1], None),
        &["label count 2"],
    );
    assert_input_error(
        evaluate(&triplet(), &X, usize::MAX, 2, &[0, 1], None),
        &["overflows"],
    );
}

#[test]
fn non_finite_values() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut x = X;
        x[3] = bad;
        assert_input_error(
            evaluate(&triplet(), &x, 3, 2, &[0, 0, 1], None),
            &["non-finite", "row 1", "column 1"],
        );
        let mut c = [1.0, 0.0, 0.0, 1.0];
        c[2] = bad;
        assert_input_error(
            evaluate(&center_loss(), &X, 3, 2, &[0, 0, 1], Some((&c, 2))),
            &["centers", "non-finite"],
        );
    }
}

#[test]
fn centers() {
    let c = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let labels = [0, 0, 1];
    assert_input_error(
        evaluate(&center_loss(), &X, 3, 2, &labels, None),
        &["needs centers"],
    );
    assert_input_error(
        evaluate(&triplet(), &X, 3, 2, &labels, Some((&c, 3))),
        &["takes no centers"],
    );
    // Three centers of width 2 passed as if width 3 is not accepted: wrong value count.
    assert_input_error(
        evaluate(&center_loss(), &X, 3, 2, &labels, Some((&c[..5], 3))),
        &["centers", "hold 5"],
    );
    assert_input_error(
        evaluate(&center_loss(), &X, 3, 2, &[0, 0, 0], Some((&c[..2], 1))),
        &["at least 2 centers"],
    );
    assert_input_error(
        evaluate(&center_loss(), &X, 3, 2, &[0, 3, 1], Some((&c, 3))),
        &["label 3", "row 1", "0..3"],
    );
    assert_input_error(
        evaluate(&center_loss(), &X, 3, 2, &[0, 1, -1], Some((&c, 3))),
        &["label -1", "row 2"],
    );
}

#[test]
fn non_finite_margins_are_config_errors() {
    for bad in [f64::NAN, f64::INFINITY] {
        let loss = Loss::Triplet(TripletConfig {
            margin: bad,
            ..Default::default()
        });
        match evaluate(&loss, &X, 3, 2, &[0, 0, 1], None) {
            Err(MarginError::InvalidConfig(msg)) => assert!(msg.contains("margin"), "{msg}"),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn backend_path_checks_shapes_and_finiteness() {
    let b = ReferenceBackend;
    let x: Vec<f32> = vec![0.3, -1.2, f32::NAN, 2.0, -0.4, 1.1];
    let mut grad = vec![0.0f32; 6];
    let input = DeviceLossInput {
        embeddings: &x,
        n: 3,
        d: 2,
        labels: &[0, 0, 1],
        centers: None,
        reference: None,
    };
    assert_input_error(
        b.loss_on_device(&triplet(), input, &mut grad, None),
        &["non-finite"],
    );
    let ok: Vec<f32> = vec![0.3, -1.2, 0.5, 2.0, -0.4, 1.1];
    let mut short = vec![0.0f32; 5];
    let input = DeviceLossInput {
        embeddings: &ok,
        ..input
    };
    assert_input_error(
        b.loss_on_device(&triplet(), input, &mut short, None),
        &["gradient buffer"],
    );
    // The host path validates through LossInput.
    assert!(LossInput::from_slices(&x, 3, 2, &[0, 0, 1], None).is_err());

    let mut out = Vec::new();
    let metric = Metric::new(Distance::Euclidean, true);
    assert_input_error(
        b.pairwise_on_device(metric, &x, 3, None, 2, &mut out),
        &["non-finite"],
    );
    assert_input_error(
        b.pairwise_on_device(metric, &ok, 0, None, 2, &mut out),
        &["0 x 2"],
    );
    assert_input_error(
        b.pairwise_on_device(metric, &ok, 3, Some((&ok, 4)), 2, &mut out),
        &["reference", "holds 6"],
    );
}
