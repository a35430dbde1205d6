//! Small numerically stable scalar helpers shared by the losses.

/// `log(1 + e^v)` without overflow for large `v` or loss of precision for very negative `v`.
pub(crate) fn softplus(v: f64) -> f64 {
    if v > 0.0 {
        v + (-v).exp().ln_1p()
    } else {
        v.exp().ln_1p()
    }
}

/// `1 / (1 + e^−v)`, the derivative of [`softplus`], without overflow.
pub(crate) fn sigmoid(v: f64) -> f64 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

/// `log Σ e^v` over `values`, shifted by the maximum; `−∞` for an empty set.
pub(crate) fn logsumexp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// `log(1 + Σ e^x)` over `xs`, shifted by `max(0, max x)`; 0 for an empty set.
pub(crate) fn log1p_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(0.0, f64::max);
    m + ((-m).exp() + xs.iter().map(|x| (x - m).exp()).sum::<f64>()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_at_extremes() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert!(softplus(-50.0) > 0.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((logsumexp([1000.0, 1000.0].into_iter()) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(logsumexp(std::iter::empty()), f64::NEG_INFINITY);
    }
}
