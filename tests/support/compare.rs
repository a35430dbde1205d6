//! The comparison of a backend's loss output with the float64 reference's under the SPEC's
//! named tolerances, with the one allowance f32 needs: a term sitting on a selection boundary
//! (semihard's `d_an > d_ap`, a hard-mining arg-max) may land on the other side, which moves the
//! AvgNonZero count by one and the gradient by that term. Shared by the cross-backend suite and
//! the backend crates' own suites, so that every backend is held to the same rule.

/// SPEC: loss within 1e-4 relative of the reference ...
pub const LOSS_RTOL: f64 = 1e-4;
/// ... or 1e-6 absolute near 0.
pub const LOSS_ATOL: f64 = 1e-6;
/// SPEC: `‖g − g_ref‖ / ‖g_ref‖` within 1e-3.
pub const GRAD_RTOL: f64 = 1e-3;
/// Gradients whose reference norm is below this are compared absolutely.
pub const GRAD_ATOL: f64 = 1e-6;
/// Active counts may differ by at most this fraction (boundary flips in f32) ...
pub const FLIP_MAX_FRACTION: f64 = 1e-3;
/// ... and then the loss is compared within this relative bound ...
pub const FLIP_LOSS_RTOL: f64 = 1e-2;
/// ... and the gradient within this one.
pub const FLIP_GRAD_RTOL: f64 = 5e-2;

/// Relative-norm difference `‖a − b‖ / ‖b‖` (absolute when `‖b‖` is tiny).
pub fn rel_norm_diff(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (f64::from(x) - f64::from(y)).powi(2);
        den += f64::from(y).powi(2);
    }
    if den.sqrt() < GRAD_ATOL {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Compares a backend's output with the reference's under the SPEC's tolerances (wider, within
/// limits, where f32 rounding moved a term across a selection boundary).
pub fn compare_outputs(
    got: &margin_core::LossOutput,
    want: &margin_core::LossOutput,
    case: &str,
) -> Result<(), String> {
    let (lg, lw) = (got.stats.loss, want.stats.loss);
    let (ag, aw) = (got.stats.active, want.stats.active);
    // A term that sits on a selection boundary (semihard's `gap > 0`, hard mining's arg-max) can
    // land on the other side in f32: then, and only then, the counts differ by a few and the
    // bounds widen to FLIP_*; anything more than FLIP_MAX_FRACTION of the terms is a bug.
    let flipped = ag != aw;
    if flipped && (ag.abs_diff(aw) as f64) > FLIP_MAX_FRACTION * (aw.max(1) as f64) {
        return Err(format!("active terms {ag} vs reference {aw} on {case}"));
    }
    let (loss_rtol, grad_rtol) = if flipped {
        (FLIP_LOSS_RTOL, FLIP_GRAD_RTOL)
    } else {
        (LOSS_RTOL, GRAD_RTOL)
    };
    if lg.is_nan() || (lg - lw).abs() > LOSS_ATOL.max(loss_rtol * lw.abs()) {
        return Err(format!("loss {lg} vs reference {lw} on {case}"));
    }
    let gd = rel_norm_diff(&got.grad, &want.grad);
    if gd.is_nan() || gd > grad_rtol {
        return Err(format!(
            "gradient differs by {gd:.3e} (relative norm) on {case}"
        ));
    }
    if let (Some(g), Some(w)) = (&got.center_grad, &want.center_grad) {
        let cd = rel_norm_diff(g, w);
        if cd.is_nan() || cd > GRAD_RTOL {
            return Err(format!("center gradient differs by {cd:.3e} on {case}"));
        }
    } else if got.center_grad.is_some() != want.center_grad.is_some() {
        return Err(format!("center gradient presence differs on {case}"));
    }
    Ok(())
}
