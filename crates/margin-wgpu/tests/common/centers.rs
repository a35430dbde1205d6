//! What the center-loss suites (proxy_anchor.rs, proxy_softmax.rs) share: label patterns over
//! `0..K`, random inputs with centers, and the comparison with the f64 reference.

use super::{loss_close, normal, rel_norm, rng};
use margin_core::{Loss, LossStats};
use margin_cpu::reference;
use rand::Rng;

/// How a case draws its labels in `0..K`.
#[derive(Debug, Clone, Copy)]
pub enum Labels {
    /// Uniform over all K centers (small N leaves some without a sample).
    Random,
    /// Uniform over the first `c` centers only: the others have no sample.
    FirstOf(usize),
    /// Every sample of center 0 (K = 1: no center has another class's sample).
    OneClass,
    /// N = K, one sample per center, shuffled.
    AllDistinct,
}

/// `n` labels in `0..k` of the pattern `kind`.
pub fn draw_labels(r: &mut rand::rngs::StdRng, n: usize, k: usize, kind: Labels) -> Vec<i64> {
    match kind {
        Labels::Random => (0..n).map(|_| r.random_range(0..k as i64)).collect(),
        Labels::FirstOf(c) => (0..n).map(|_| r.random_range(0..c as i64)).collect(),
        Labels::OneClass => vec![0; n],
        Labels::AllDistinct => {
            let mut y: Vec<i64> = (0..n as i64).collect();
            for i in (1..n).rev() {
                y.swap(i, r.random_range(0..=i));
            }
            y
        }
    }
}

/// One random case: `(x, centers, labels)`.
pub fn inputs(
    seed: u64,
    n: usize,
    d: usize,
    k: usize,
    kind: Labels,
) -> (Vec<f32>, Vec<f32>, Vec<i64>) {
    let mut r = rng(seed);
    let x = normal(&mut r, n, d);
    let c = normal(&mut r, k, d);
    let y = draw_labels(&mut r, n, k, kind);
    (x, c, y)
}

/// The f64 reference: stats, dL/dX and dL/dC.
pub fn want(loss: &Loss, x: &[f32], c: &[f32], y: &[i64], d: usize) -> reference::RefOutput {
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let c64: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
    let (n, k) = (x.len() / d, c.len() / d);
    reference::evaluate(loss, &x64, n, d, y, Some((&c64, k)))
        .unwrap_or_else(|e| panic!("reference {loss:?}: {e}"))
}

/// Loss (1e-4 relative), both gradients (1e-3 relative norm) and the exact active counts.
pub fn assert_matches(
    ctx: &str,
    stats: &LossStats,
    grad: &[f32],
    center_grad: Option<&[f32]>,
    want: &reference::RefOutput,
) {
    assert!(
        loss_close(stats.loss, want.stats.loss),
        "{ctx}: loss {} vs reference {}",
        stats.loss,
        want.stats.loss
    );
    assert_eq!(
        stats.active_terms, want.stats.active_terms,
        "{ctx}: active counts"
    );
    let gerr = rel_norm(grad, &want.grad);
    assert!(gerr <= 1e-3, "{ctx}: gradient rel err {gerr}");
    if let Some(cg) = center_grad {
        let wc = want.center_grad.as_deref().unwrap_or_default();
        let cerr = rel_norm(cg, wc);
        assert!(cerr <= 1e-3, "{ctx}: center gradient rel err {cerr}");
    }
}
