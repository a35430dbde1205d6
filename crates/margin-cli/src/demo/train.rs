//! The demo's model: a linear projection `E = X W` trained with Adam on a margin loss.

use margin_core::{
    CrossBatchMemory, Embeddings, HostBackend, Loss, LossInput, LossStats, ReferenceSet, Result,
};
use margin_cpu::CpuBackend;

/// `--memory`: a cross-batch memory of past embeddings on the host (the CPU backend's buffers
/// are host vectors), so the demo can use it with whichever backend computes the loss.
pub struct HostMemory {
    ring: CrossBatchMemory<CpuBackend>,
}

impl HostMemory {
    /// An empty memory of `size` rows of width `d`.
    pub fn new(size: usize, d: usize) -> Result<Self> {
        Ok(Self {
            ring: CrossBatchMemory::new(&CpuBackend::new(), size, d)?,
        })
    }
}

/// Adam state for one parameter tensor.
pub struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
    lr: f64,
}

impl Adam {
    /// Zeroed moments for `len` parameters.
    pub fn new(len: usize, lr: f64) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
            lr,
        }
    }

    /// One step of Adam (β1 = 0.9, β2 = 0.999, ε = 1e-8).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            let g = f64::from(g);
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p -= (self.lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8)) as f32;
        }
    }
}

/// `rows x inputs` times `inputs x outputs`.
pub fn project(x: &[f32], rows: usize, inputs: usize, w: &[f32], outputs: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * outputs];
    for r in 0..rows {
        let xr = &x[r * inputs..(r + 1) * inputs];
        let or = &mut out[r * outputs..(r + 1) * outputs];
        for (f, &xv) in xr.iter().enumerate() {
            for (o, &wv) in or.iter_mut().zip(&w[f * outputs..(f + 1) * outputs]) {
                *o += xv * wv;
            }
        }
    }
    out
}

/// The projection, optional centers (triplet-center) and their optimizers.
pub struct Model {
    /// `inputs x outputs`, row-major.
    pub w: Vec<f32>,
    /// `K x outputs` centers, when the loss has centers.
    pub centers: Option<Vec<f32>>,
    inputs: usize,
    outputs: usize,
    opt_w: Adam,
    opt_c: Adam,
}

impl Model {
    /// A model from an initial projection and optional centers.
    pub fn new(
        w: Vec<f32>,
        centers: Option<Vec<f32>>,
        inputs: usize,
        outputs: usize,
        lr: f64,
    ) -> Self {
        let clen = centers.as_ref().map_or(0, Vec::len);
        Self {
            opt_w: Adam::new(w.len(), lr),
            opt_c: Adam::new(clen, lr),
            w,
            centers,
            inputs,
            outputs,
        }
    }

    /// Width of the embeddings.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Embeds `rows` samples.
    pub fn embed(&self, x: &[f32], rows: usize) -> Vec<f32> {
        project(x, rows, self.inputs, &self.w, self.outputs)
    }

    /// One training step on a batch; returns the loss statistics before the update. With a
    /// `memory`, the batch is enqueued first and its loss taken against the memory (its own
    /// slots excluded), as PML's CrossBatchMemory does.
    pub fn step(
        &mut self,
        backend: &dyn HostBackend,
        loss: &Loss,
        x: &[f32],
        labels: &[i64],
        memory: Option<&mut HostMemory>,
    ) -> Result<LossStats> {
        let rows = labels.len();
        let e = self.embed(x, rows);
        let k = self.centers.as_ref().map_or(0, |c| c.len() / self.outputs);
        let centers = self
            .centers
            .as_deref()
            .map(|c| Embeddings::named(c, k, self.outputs, "centers"))
            .transpose()?;
        let mut input = LossInput::new(Embeddings::new(&e, rows, self.outputs)?, labels, centers)?;
        let slots;
        if let Some(mem) = memory {
            // The memory stores host rows (the CPU backend's buffers); any backend computes.
            let ring = &mut mem.ring;
            slots = ring.enqueue_batch(&CpuBackend::new(), &e, rows, labels)?;
            let m = ring.len();
            input = input.with_reference(ReferenceSet {
                embeddings: Embeddings::named(
                    &ring.embeddings()[..m * self.outputs],
                    m,
                    self.outputs,
                    "memory",
                )?,
                labels: ring.labels(),
                self_index: Some(&slots),
            })?;
        }
        let out = backend.host_loss(loss, &input)?;
        // dL/dW = Xᵀ G.
        let mut gw = vec![0f32; self.w.len()];
        for r in 0..rows {
            let g = &out.grad[r * self.outputs..(r + 1) * self.outputs];
            for (f, &xv) in x[r * self.inputs..(r + 1) * self.inputs].iter().enumerate() {
                for (acc, &gv) in gw[f * self.outputs..(f + 1) * self.outputs]
                    .iter_mut()
                    .zip(g)
                {
                    *acc += xv * gv;
                }
            }
        }
        self.opt_w.step(&mut self.w, &gw);
        if let (Some(c), Some(gc)) = (self.centers.as_mut(), out.center_grad.as_ref()) {
            self.opt_c.step(c, gc);
        }
        Ok(out.stats)
    }
}
