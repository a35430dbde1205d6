//! The fast CPU backend: f32 storage, f64 accumulation, matrix products through
//! `matrixmultiply` in row strips spread over rayon (see `linalg` for the measurement behind the
//! choice), rayon for everything else, and the five stages of docs/ALGORITHMS.md:
//!
//! 1. `geometry`: normalization (kept for stage 5).
//! 2. `geometry`: `e = sign * d` a block of anchor rows at a time (expanded form, GEMM; direct
//!    sums for euclidean with D <= 16).
//! 3. `engine` drives per-row kernels (`triplet`, `quadruplet`, `pairs`, `softmax_pairs` for
//!    multi-similarity / generalized lifted structure / circle, `infonce` for nt-xent / supcon)
//!    that write `W = ∂L/∂e` and f64 loss sums; `cross` handles triplet-center and n-pair;
//!    `quadruplet_hard` needs one read-only pass (`engine::map_rows`) and a sparse chain.
//! 4. `chain`: `M = W + Wᵀ` through the distance (one GEMM when the matrix is resident, two per
//!    block when streaming).
//! 5. `geometry`: normalization backward.
//!
//! With a reference set (docs/REFERENCE_SETS.md), `reference_set` runs the same row kernels over
//! the `N x M` rectangle (`rect`, blocks of batch rows; `classes` tells the kernels each row's
//! class and its excluded self column) and chains to the batch only; `rect_quadruplet` has the
//! quadruplet loss's rectangle versions. `row_losses` dispatches the losses that are one row
//! kernel for both (its `Runner` is `engine::run` or `Rect::run`).
//!
//! Memory: when `N² · 4 · (1 + groups)` bytes fit `min(budget, 512 MiB)` the whole matrix is
//! resident (fastest); otherwise blocks of at most 1024 anchor rows sized from the budget, so
//! extra memory is `O(block × N)` plus `O(N D)` gradients (and, for the quadruplet loss,
//! `O(N²/C)` sorted positive-pair values and histograms). Triplet-center keeps its `N x K`
//! matrix whole. Nothing ever enumerates triplets or quadruplets: hinge losses are counted with
//! sorting and binary search, lifted structure and n-pair go through row-wise log-sum-exp.
//!
//! Device data is not checked for finiteness (the SPEC allows that); NaN rows give NaN results
//! but never a panic.

mod chain;
mod classes;
mod cross;
mod engine;
mod geometry;
mod infonce;
mod knn;
mod linalg;
mod pairs;
mod proxies;
mod quadruplet;
mod quadruplet_hard;
mod rect;
mod rect_quadruplet;
mod reference_set;
mod row_losses;
mod scratch;
mod search;
mod softmax_pairs;
mod triplet;
mod vexp;

use classes::Classes;
use geometry::{Rows, sign};
use margin_core::{
    Backend, DeviceLossInput, Embeddings, Loss, LossStats, MarginError, Metric, Mining, Result,
    check_device_input,
};

/// Multi-threaded f32 CPU backend.
#[derive(Debug, Clone)]
pub struct CpuBackend {
    memory_budget_bytes: usize,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// A backend with a 1 GiB working-memory budget.
    pub fn new() -> Self {
        Self::with_memory_budget(1 << 30)
    }
    /// A backend whose extra memory per call stays near `bytes` (it picks its anchor block from it).
    pub fn with_memory_budget(bytes: usize) -> Self {
        Self {
            memory_budget_bytes: bytes,
        }
    }
    /// The working-memory budget in bytes.
    pub fn memory_budget(&self) -> usize {
        self.memory_budget_bytes
    }
}

/// `num / den`, 0 when nothing was counted (AvgNonZero of an empty set).
fn avg(num: f64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num / den as f64 }
}

/// A batch with nothing to reduce (nt-xent, supcon without a positive or a negative pair):
/// zero gradient, nothing active.
fn empty(n: usize, d: usize, grad: &mut [f32]) -> LossStats {
    grad[..n * d].fill(0.0);
    LossStats::empty()
}

/// `out = sign * g`, then stage 5.
fn finish(rows: &Rows, metric: Metric, g: &[f32], out: &mut [f32]) {
    let s = sign(metric);
    let n = rows.n * rows.d;
    let out = &mut out[..n];
    for (o, &v) in out.iter_mut().zip(g) {
        *o = s * v;
    }
    rows.backward(out);
}

impl CpuBackend {
    fn self_loss(
        &self,
        loss: &Loss,
        x: &[f32],
        n: usize,
        d: usize,
        labels: &[i64],
        grad: &mut [f32],
    ) -> Result<LossStats> {
        let metric = loss.metric();
        let s = f64::from(sign(metric));
        let budget = self.memory_budget_bytes;
        let classes = Classes::new(labels);
        let rows = Rows::new(x, n, d, metric);
        let npos = classes.ordered_positive_pairs();
        let (stats, grad_e) = match *loss {
            Loss::Quadruplet(c) => {
                let (a, grad) = match c.mining {
                    Mining::All => {
                        quadruplet::run(&rows, metric, &classes, c.margin, c.margin2, budget)?
                    }
                    Mining::Hard => {
                        quadruplet_hard::run(&rows, metric, &classes, c.margin, c.margin2, budget)?
                    }
                    Mining::SemiHard => return Err(quadruplet_semihard()),
                };
                (row_losses::two_groups(a), grad)
            }
            Loss::LiftedStructure(c) => {
                let nm = s * c.neg_margin;
                let e = engine::resident_e(&rows, metric, 1, budget)?;
                let lse = engine::map_rows_in(&rows, metric, budget, e.as_ref(), |i, e| {
                    pairs::row_lse(&classes, nm, i, e)
                })?;
                let k = pairs::Lifted {
                    classes: &classes,
                    lse: &lse,
                    pm: s * c.pos_margin,
                    nm,
                    npos,
                };
                let p = engine::run_in(&rows, metric, &k, budget, e)?;
                let stats = LossStats::new(avg(p.acc.loss[0], npos), p.acc.count[0], 0);
                (stats, p.grad)
            }
            Loss::NTXent(_) | Loss::SupCon(_) if npos == 0 || classes.members.len() < 2 => {
                return Ok(empty(n, d, grad));
            }
            _ if loss.needs_centers() || matches!(loss, Loss::NPair(_)) => {
                return Err(MarginError::device("internal: not a self-pair loss"));
            }
            _ => {
                let square = row_losses::Square {
                    rows: &rows,
                    metric,
                    budget,
                };
                row_losses::run(loss, &classes, n, npos, &square)?
            }
        };
        finish(&rows, metric, &grad_e, grad);
        Ok(stats)
    }
}

/// Semi-hard mining is defined for triplets only; `check_device_input` runs `Loss::validate`,
/// which refuses it with the user-facing message, so this arm is never reached.
fn quadruplet_semihard() -> MarginError {
    MarginError::device("internal: Loss::validate lets no semihard quadruplet through")
}

impl Backend for CpuBackend {
    type Buffer = Vec<f32>;
    fn name(&self) -> String {
        "cpu".into()
    }
    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }
    fn alloc_zeros(&self, len: usize) -> Result<Vec<f32>> {
        linalg::zeros_lazy(len, "a buffer")
    }
    fn download(&self, buffer: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(buffer.clone())
    }
    fn buffer_len(&self, buffer: &Vec<f32>) -> usize {
        buffer.len()
    }
    fn loss_on_device(
        &self,
        loss: &Loss,
        input: DeviceLossInput<'_, Vec<f32>>,
        grad: &mut Vec<f32>,
        center_grad: Option<&mut Vec<f32>>,
    ) -> Result<LossStats> {
        check_device_input(self, loss, &input, grad, center_grad.as_deref())?;
        let (n, d) = (input.n, input.d);
        if let Some(r) = input.reference {
            let rs = reference_set::Input {
                x: &input.embeddings[..n * d],
                n,
                d,
                labels: input.labels,
                r: &r.embeddings[..r.m * d],
                m: r.m,
                ref_labels: r.labels,
                self_index: r.self_index,
            };
            return reference_set::loss(loss, &rs, self.memory_budget_bytes, grad);
        }
        let x = &input.embeddings[..n * d];
        let metric = loss.metric();
        match *loss {
            _ if loss.needs_centers() => {
                let Some((cbuf, k)) = input.centers else {
                    return Err(MarginError::input(format!("{} needs centers", loss.kind())));
                };
                let xr = Rows::new(x, n, d, metric);
                let cr = Rows::new(&cbuf[..k * d], k, d, metric);
                let (stats, g) = match (loss.proxy_softmax(), *loss) {
                    (Some(form), _) => {
                        proxies::proxy_softmax(&xr, &cr, input.labels, metric, form)?
                    }
                    (None, Loss::ProxyAnchor(c)) => {
                        proxies::proxy_anchor(&xr, &cr, input.labels, metric, (c.margin, c.alpha))?
                    }
                    (None, Loss::TripletCenter(c)) => {
                        cross::triplet_center(&xr, &cr, input.labels, metric, c.margin)?
                    }
                    _ => return Err(MarginError::device("internal: not a center loss")),
                };
                grad[..n * d].copy_from_slice(&g.ga);
                if let Some(cg) = center_grad {
                    cg[..k * d].copy_from_slice(&g.gb);
                }
                Ok(stats)
            }
            Loss::NPair(_) => match cross::n_pair(x, n, d, input.labels, metric)? {
                Some((stats, g)) => {
                    grad[..n * d].copy_from_slice(&g);
                    Ok(stats)
                }
                None => {
                    grad[..n * d].fill(0.0);
                    Ok(LossStats::empty())
                }
            },
            _ => self.self_loss(loss, x, n, d, input.labels, grad),
        }
    }
    /// Overrides the host convenience to write straight into the returned vector (the default
    /// would copy the inputs in and the `nq x nr` result out once more).
    fn pairwise(
        &self,
        metric: Metric,
        query: Embeddings<'_>,
        reference: Option<Embeddings<'_>>,
    ) -> Result<Vec<f32>> {
        margin_core::check_query_rows(self.max_squared_norm(), metric, query, reference)?;
        let nr = reference.map_or(query.rows(), |r| r.rows());
        let len = query
            .rows()
            .checked_mul(nr)
            .ok_or_else(|| MarginError::OutOfMemory("pairwise output overflows usize".into()))?;
        let mut out = linalg::zeros_lazy(len, "the pairwise matrix")?;
        geometry::pairwise(
            metric,
            query.data(),
            query.rows(),
            reference.map(|r| (r.data(), r.rows())),
            query.cols(),
            &mut out,
        )?;
        Ok(out)
    }
    /// Blocks of query rows through the pairwise GEMM, then a parallel per-row selection.
    fn knn_on_device(
        &self,
        metric: Metric,
        query: &Vec<f32>,
        nq: usize,
        reference: Option<(&Vec<f32>, usize)>,
        d: usize,
        k: usize,
    ) -> Result<margin_core::Neighbours> {
        knn::knn(
            metric,
            query,
            nq,
            reference.map(|(r, n)| (r.as_slice(), n)),
            d,
            k,
        )
    }

    fn pairwise_on_device(
        &self,
        metric: Metric,
        query: &Vec<f32>,
        nq: usize,
        reference: Option<(&Vec<f32>, usize)>,
        d: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let nr = reference.map_or(nq, |r| r.1);
        if nq == 0 || d == 0 || nr == 0 {
            return Err(MarginError::input(format!(
                "pairwise needs at least one row and one column, got {nq} x {d} against {nr}"
            )));
        }
        let short = |what: &str, have: usize, want: usize| {
            MarginError::input(format!(
                "{what} buffer holds {have} values, expected {want}"
            ))
        };
        if query.len() < nq * d {
            return Err(short("query", query.len(), nq * d));
        }
        if let Some((r, nr)) = reference
            && r.len() < nr * d
        {
            return Err(short("reference", r.len(), nr * d));
        }
        if out.len() < nq * nr {
            return Err(short("output", out.len(), nq * nr));
        }
        geometry::pairwise(
            metric,
            &query[..nq * d],
            nq,
            reference.map(|(r, nr)| (&r[..nr * d], nr)),
            d,
            out,
        )
    }
}
