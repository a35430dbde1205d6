//! Random reference-set cases against the float64 reference: plain rectangles, memory-like
//! reference sets that hold copies of the batch (with a self index), and the edge layouts
//! (M = 1, N = 1, no positives, only positives).

use crate::{Labels, compare_outputs, random_normal, run_with_reference};
use margin_core::{Embeddings, HostBackend, Loss, LossInput, LossKind, ReferenceSet};

/// How the reference set relates to the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefLayout {
    /// Independent rows; reference labels `j % classes`, which may include classes the batch
    /// lacks and lack some it has.
    Independent { m: usize, classes: usize },
    /// `extra` independent rows, then an exact copy of every batch row, each named by the self
    /// index: what a cross-batch memory holds.
    Memory { extra: usize },
    /// Reference labels that never match the batch's.
    NoPositives { m: usize },
    /// Batch and reference all in one class.
    AllPositive { m: usize },
}

/// One case: the batch, the reference set and its self index.
pub struct RefInputs {
    pub x: Vec<f32>,
    pub y: Vec<i64>,
    pub r: Vec<f32>,
    pub ry: Vec<i64>,
    pub sigma: Option<Vec<u32>>,
    pub n: usize,
    pub m: usize,
    pub d: usize,
}

impl RefInputs {
    /// Random inputs for `layout`, reproducible from `seed`.
    pub fn make(n: usize, d: usize, labels: Labels, layout: RefLayout, seed: u64) -> Self {
        let x = random_normal(n * d, seed);
        let (mut y, _) = labels.make(n);
        let (r, ry, sigma) = match layout {
            RefLayout::Independent { m, classes } => (
                random_normal(m * d, seed ^ 0xface),
                (0..m).map(|j| (j % classes.max(1)) as i64).collect(),
                None,
            ),
            RefLayout::Memory { extra } => {
                let mut r = random_normal(extra * d, seed ^ 0xbeef);
                r.extend_from_slice(&x);
                let mut ry: Vec<i64> = (0..extra).map(|j| (j % 3) as i64).collect();
                ry.extend_from_slice(&y);
                let sigma = (0..n).map(|i| (extra + i) as u32).collect();
                (r, ry, Some(sigma))
            }
            RefLayout::NoPositives { m } => (
                random_normal(m * d, seed ^ 0xd00d),
                (0..m).map(|j| 1000 + j as i64).collect(),
                None,
            ),
            RefLayout::AllPositive { m } => {
                y = vec![7; n];
                (random_normal(m * d, seed ^ 0xcafe), vec![7; m], None)
            }
        };
        let m = ry.len();
        Self {
            x,
            y,
            r,
            ry,
            sigma,
            n,
            m,
            d,
        }
    }

    /// The validated input.
    pub fn input(&self) -> Result<LossInput<'_>, String> {
        let x = Embeddings::new(&self.x, self.n, self.d).map_err(|e| e.to_string())?;
        let r = Embeddings::named(&self.r, self.m, self.d, "reference embeddings")
            .map_err(|e| e.to_string())?;
        LossInput::new(x, &self.y, None)
            .and_then(|i| {
                i.with_reference(ReferenceSet {
                    embeddings: r,
                    labels: &self.ry,
                    self_index: self.sigma.as_deref(),
                })
            })
            .map_err(|e| e.to_string())
    }
}

/// Runs `loss` with a reference set on `backend` and on the f64 reference; reports a mismatch.
pub fn check_loss_with_reference(
    backend: &dyn HostBackend,
    loss: &Loss,
    n: usize,
    d: usize,
    labels: Labels,
    layout: RefLayout,
    seed: u64,
) -> Result<(), String> {
    let inputs = RefInputs::make(n, d, labels, layout, seed);
    let input = inputs.input()?;
    let case = format!("{loss:?} n={n} d={d} {labels:?} {layout:?} seed={seed}");
    let (got, want) = run_with_reference(backend, loss, &input, &case)?;
    if got.grad.len() != n * d {
        return Err(format!("gradient has {} values on {case}", got.grad.len()));
    }
    compare_outputs(&got, &want, &case)
}

/// Every configuration of [`crate::all_loss_configs`] whose loss takes a reference set.
pub fn reference_loss_configs() -> Vec<Loss> {
    crate::all_loss_configs()
        .into_iter()
        .filter(Loss::supports_reference)
        .collect()
}

/// Batch sizes for `loss`: quadruplet's f64 reference is quartic, so its cases stay small.
pub fn small_for(loss: &Loss, n: usize) -> usize {
    if loss.kind() == LossKind::Quadruplet {
        n.min(11)
    } else {
        n
    }
}
