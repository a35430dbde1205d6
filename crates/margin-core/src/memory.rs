//! [`CrossBatchMemory`]: PML's `CrossBatchMemory` (Wang et al., "Cross-Batch Memory for Embedding
//! Learning", 2020) on any [`Backend`]. A ring buffer of the last S batch rows lives on the
//! device; every call enqueues the batch first, then computes the loss of the batch against the
//! memory as a reference set, each row's own slot excluded from its positives. Behaviour, including
//! the slot order of a wrapped ring, follows PML 2.9 exactly (`docs/REFERENCE_SETS.md`, section 4),
//! except that a batch of one row also has its own slot excluded (PML misses it then).

use crate::backend::{Backend, DeviceLossInput, DeviceReference};
use crate::error::{MarginError, Result};
use crate::loss::Loss;
use crate::output::{LossOutput, LossStats};

/// A ring buffer of past embeddings and labels on the device, used as the reference set.
pub struct CrossBatchMemory<B: Backend> {
    /// S x D embeddings; slots at and after `queue_idx` are stale until the ring has wrapped.
    memory: B::Buffer,
    /// S labels, on the host like every label.
    labels: Vec<i64>,
    size: usize,
    d: usize,
    queue_idx: usize,
    filled: bool,
}

impl<B: Backend> std::fmt::Debug for CrossBatchMemory<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossBatchMemory")
            .field("size", &self.size)
            .field("d", &self.d)
            .field("queue_idx", &self.queue_idx)
            .field("filled", &self.filled)
            .finish()
    }
}

impl<B: Backend> CrossBatchMemory<B> {
    /// An empty memory of `memory_size` rows of width `d` on `backend`.
    pub fn new(backend: &B, memory_size: usize, d: usize) -> Result<Self> {
        if memory_size == 0 || d == 0 {
            return Err(MarginError::input(format!(
                "a cross-batch memory needs at least 1 x 1 rows, got {memory_size} x {d}"
            )));
        }
        let len = memory_size
            .checked_mul(d)
            .ok_or_else(|| MarginError::input("memory size x width overflows usize"))?;
        Ok(Self {
            memory: backend.alloc_zeros(len)?,
            labels: vec![0; memory_size],
            size: memory_size,
            d,
            queue_idx: 0,
            filled: false,
        })
    }

    /// S, the number of slots.
    pub fn capacity(&self) -> usize {
        self.size
    }

    /// The rows a loss currently sees: the written prefix until the ring has wrapped, then all S.
    pub fn len(&self) -> usize {
        if self.filled {
            self.size
        } else {
            self.queue_idx
        }
    }

    /// True before anything was enqueued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot the next enqueued row goes to.
    pub fn queue_index(&self) -> usize {
        self.queue_idx
    }

    /// The labels of the rows a loss sees, in slot order.
    pub fn labels(&self) -> &[i64] {
        &self.labels[..self.len()]
    }

    /// The device buffer (S x D; only the first [`Self::len`] rows are meaningful).
    pub fn embeddings(&self) -> &B::Buffer {
        &self.memory
    }

    /// Empties the memory (the buffer is kept).
    pub fn reset(&mut self) {
        self.queue_idx = 0;
        self.filled = false;
    }

    /// Enqueues the batch (`n x d` rows of `x`, `labels`), then writes the loss's gradient for the
    /// batch into `grad` (N x D) and returns the loss of the batch against the memory, each row's
    /// own slot excluded from its positives. Needs `n <= S`.
    pub fn loss(
        &mut self,
        backend: &B,
        loss: &Loss,
        x: &B::Buffer,
        n: usize,
        labels: &[i64],
        grad: &mut B::Buffer,
    ) -> Result<LossStats> {
        self.check(backend, loss, x, n, labels, grad)?;
        let slots = self.enqueue_batch(backend, x, n, labels)?;
        let m = self.len();
        let input = DeviceLossInput {
            embeddings: x,
            n,
            d: self.d,
            labels,
            centers: None,
            reference: Some(DeviceReference {
                embeddings: &self.memory,
                m,
                labels: &self.labels[..m],
                self_index: Some(&slots),
            }),
        };
        backend.loss_on_device(loss, input, grad, None)
    }

    /// PML's `enqueue_mask`: rows with `true` are only written to the memory, rows with `false`
    /// are only anchors (their gradient is written; the enqueued rows get 0), and no self pair is
    /// excluded. Needs at most S enqueued rows.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_masked(
        &mut self,
        backend: &B,
        loss: &Loss,
        x: &B::Buffer,
        n: usize,
        labels: &[i64],
        enqueue_mask: &[bool],
        grad: &mut B::Buffer,
    ) -> Result<LossStats> {
        self.check(backend, loss, x, n, labels, grad)?;
        if enqueue_mask.len() != n {
            return Err(MarginError::input(format!(
                "enqueue mask has {} entries, expected one per batch row ({n})",
                enqueue_mask.len()
            )));
        }
        let (queued, anchors): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| enqueue_mask[i]);
        if queued.len() > self.size {
            return Err(MarginError::input(format!(
                "{} enqueued rows do not fit a cross-batch memory of {} rows",
                queued.len(),
                self.size
            )));
        }
        self.enqueue(backend, x, &queued, labels)?;
        let d = self.d;
        // Enqueue-only rows get a zero gradient; the caller's buffer is kept.
        backend.copy_values(&backend.alloc_zeros(n * d)?, 0, grad, 0, n * d)?;
        let m = self.len();
        if anchors.is_empty() || m == 0 {
            return Ok(LossStats::empty());
        }
        // Gather the anchor rows, compute, scatter their gradient rows back.
        let mut ax = backend.alloc_zeros(anchors.len() * d)?;
        for (a, &i) in anchors.iter().enumerate() {
            backend.copy_values(x, i * d, &mut ax, a * d, d)?;
        }
        let alabels: Vec<i64> = anchors.iter().map(|&i| labels[i]).collect();
        let mut agrad = backend.alloc_zeros(anchors.len() * d)?;
        let input = DeviceLossInput {
            embeddings: &ax,
            n: anchors.len(),
            d,
            labels: &alabels,
            centers: None,
            reference: Some(DeviceReference {
                embeddings: &self.memory,
                m,
                labels: &self.labels[..m],
                self_index: None,
            }),
        };
        let stats = backend.loss_on_device(loss, input, &mut agrad, None)?;
        for (a, &i) in anchors.iter().enumerate() {
            backend.copy_values(&agrad, a * d, grad, i * d, d)?;
        }
        Ok(stats)
    }

    /// Only enqueues the batch (`n x d` rows of `x`, `labels`, `n <= S`) and returns each row's
    /// slot, for a caller that computes the loss itself: with [`Self::embeddings`] (its first
    /// [`Self::len`] rows), [`Self::labels`] and the slots as the reference set's self index.
    pub fn enqueue_batch(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        n: usize,
        labels: &[i64],
    ) -> Result<Vec<u32>> {
        if labels.len() != n || n == 0 || backend.buffer_len(x) < n * self.d {
            return Err(MarginError::input(format!(
                "a batch of {n} rows needs {n} labels (got {}) and {n} x {} values",
                labels.len(),
                self.d
            )));
        }
        if n > self.size {
            return Err(MarginError::input(format!(
                "a batch of {n} rows does not fit a cross-batch memory of {} rows",
                self.size
            )));
        }
        self.enqueue(backend, x, &(0..n).collect::<Vec<_>>(), labels)
    }

    /// Host convenience: uploads the batch, runs [`Self::loss`] and downloads the gradient.
    pub fn host_loss(
        &mut self,
        backend: &B,
        loss: &Loss,
        x: crate::Embeddings<'_>,
        labels: &[i64],
    ) -> Result<LossOutput> {
        let xb = backend.upload(x.data())?;
        let mut grad = backend.alloc_zeros(x.rows() * x.cols())?;
        let stats = self.loss(backend, loss, &xb, x.rows(), labels, &mut grad)?;
        Ok(LossOutput {
            stats,
            grad: backend.download(&grad)?,
            center_grad: None,
        })
    }

    /// Shapes, labels and loss support, checked before anything is enqueued.
    fn check(
        &self,
        backend: &B,
        loss: &Loss,
        x: &B::Buffer,
        n: usize,
        labels: &[i64],
        grad: &B::Buffer,
    ) -> Result<()> {
        loss.validate()?;
        if !loss.supports_reference() {
            return Err(loss.reference_unsupported());
        }
        if n == 0 {
            return Err(MarginError::input("the batch has no rows (N = 0)"));
        }
        if labels.len() != n {
            return Err(MarginError::input(format!(
                "label count {} does not match the {n} batch rows",
                labels.len()
            )));
        }
        let need = n * self.d;
        if backend.buffer_len(x) < need || backend.buffer_len(grad) < need {
            return Err(MarginError::input(format!(
                "batch or gradient buffer holds fewer than {n} x {} values (the memory's width)",
                self.d
            )));
        }
        Ok(())
    }

    /// Writes rows `rows` of `x` to the next slots (device copies, one per contiguous run) and
    /// returns the slot of each; advances the ring as PML does.
    fn enqueue(
        &mut self,
        backend: &B,
        x: &B::Buffer,
        rows: &[usize],
        labels: &[i64],
    ) -> Result<Vec<u32>> {
        let d = self.d;
        let slots: Vec<usize> = (0..rows.len())
            .map(|t| (self.queue_idx + t) % self.size)
            .collect();
        let mut t = 0;
        while t < rows.len() {
            // A run: consecutive source rows landing in consecutive slots.
            let mut len = 1;
            while t + len < rows.len()
                && rows[t + len] == rows[t] + len
                && slots[t + len] == slots[t] + len
            {
                len += 1;
            }
            backend.copy_values(x, rows[t] * d, &mut self.memory, slots[t] * d, len * d)?;
            t += len;
        }
        for (&r, &s) in rows.iter().zip(&slots) {
            self.labels[s] = labels[r];
        }
        let prev = self.queue_idx;
        self.queue_idx = (self.queue_idx + rows.len()) % self.size;
        // PML also marks the ring full after enqueueing nothing (an all-false mask), which makes
        // its zero-initialized slots look like data; margin does not.
        if !self.filled && !rows.is_empty() && self.queue_idx <= prev {
            self.filled = true;
        }
        // Slots fit in u32: a memory of 2^32 rows would not fit any device.
        Ok(slots.iter().map(|&s| s as u32).collect())
    }
}
