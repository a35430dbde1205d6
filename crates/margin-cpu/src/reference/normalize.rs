//! Stage 1: row normalization, `x̂ = x / max(‖x‖₂, 1e-12)` (torch's `F.normalize`), and its
//! backward pass, so that gradients always reach the raw rows.

use margin_core::NORM_EPS;

/// Rows after (optional) normalization, with what the backward pass needs.
#[derive(Debug, Clone)]
pub(crate) struct Normalized {
    /// The rows the distances are computed on: `x̂` when normalizing, `x` otherwise. `n x d`.
    rows: Vec<f64>,
    /// Per row `‖x‖₂` of the raw row; `None` when the rows were not normalized.
    norms: Option<Vec<f64>>,
    d: usize,
}

impl Normalized {
    /// Normalizes the `n x d` rows of `x` when `on`, otherwise copies them.
    pub fn new(x: &[f64], n: usize, d: usize, on: bool) -> Self {
        if !on {
            return Self {
                rows: x[..n * d].to_vec(),
                norms: None,
                d,
            };
        }
        let mut rows = Vec::with_capacity(n * d);
        let mut norms = Vec::with_capacity(n);
        for row in x[..n * d].chunks_exact(d) {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            let denom = norm.max(NORM_EPS);
            rows.extend(row.iter().map(|v| v / denom));
            norms.push(norm);
        }
        Self {
            rows,
            norms: Some(norms),
            d,
        }
    }

    /// Number of rows.
    pub fn n(&self) -> usize {
        self.rows.len() / self.d
    }

    /// Width of the rows.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.rows[i * self.d..(i + 1) * self.d]
    }

    /// Turns `g = ∂L/∂x̂` into `∂L/∂x` in place.
    ///
    /// For `‖x‖ >= 1e-12`: `g_raw = (g − x̂ (x̂·g)) / ‖x‖`. Below that the forward pass divides by
    /// the constant `1e-12` (the clamp is flat), so the backward pass is `g / 1e-12`.
    pub fn backward(&self, g: &mut [f64]) {
        let Some(norms) = &self.norms else {
            return;
        };
        let d = self.d;
        for (i, &norm) in norms.iter().enumerate() {
            let xh = &self.rows[i * d..(i + 1) * d];
            let gi = &mut g[i * d..(i + 1) * d];
            if norm < NORM_EPS {
                gi.iter_mut().for_each(|v| *v /= NORM_EPS);
                continue;
            }
            let dot: f64 = xh.iter().zip(gi.iter()).map(|(a, b)| a * b).sum();
            for (gv, &xv) in gi.iter_mut().zip(xh) {
                *gv = (*gv - xv * dot) / norm;
            }
        }
    }
}
