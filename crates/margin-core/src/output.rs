//! What a loss call returns.

/// The scalar result of a loss and how many of its terms were active.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossStats {
    /// The reduced loss.
    pub loss: f64,
    /// Total active terms: `active_terms[0] + active_terms[1]`.
    pub active: u64,
    /// Active terms by kind, per loss:
    /// contrastive `[positive pairs, negative pairs]` with a loss > 0;
    /// triplet `[triplets, 0]` with a loss > 0 (every valid or mined triplet when `smooth`);
    /// triplet-center `[samples, 0]` with a loss > 0; n-pair `[k labels used, 0]`;
    /// quadruplet `[triplets, quadruplets]` with a loss > 0 (mining hard: `[anchors whose
    /// term 1 > 0, anchors whose term 2 > 0]`);
    /// lifted-structure `[ordered positive pairs, 0]` with `J > 0`;
    /// multi-similarity `[anchors with a positive, anchors with a negative]`;
    /// circle `[anchors with a positive and a negative, 0]`, supcon `[anchors with a positive, 0]`
    /// (exactly those whose loss is > 0, counted without looking at the rounded loss);
    /// generalized-lifted-structure `[anchors with a loss > 0, 0]`;
    /// nt-xent `[ordered positive pairs, 0]` (its Mean's denominator);
    /// proxy-anchor `[proxies with a positive, proxies with a negative]` (the first is the
    /// positive term's divisor); proxy-nca, normalized-softmax, cosface `[samples in the Mean, 0]`
    /// (every sample, but for proxy-nca those whose target probability underflows, as in PML).
    pub active_terms: [u64; 2],
}

impl LossStats {
    /// Stats from the loss and the two active counts.
    pub fn new(loss: f64, first: u64, second: u64) -> Self {
        Self {
            loss,
            active: first + second,
            active_terms: [first, second],
        }
    }

    /// The result for a batch with nothing to reduce: loss 0, nothing active.
    pub fn empty() -> Self {
        Self::default()
    }
}

/// A loss with its gradients, on the host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LossOutput {
    /// The loss and active counts.
    pub stats: LossStats,
    /// dL/dX for the raw (pre-normalization) embeddings, N x D row-major.
    pub grad: Vec<f32>,
    /// dL/dC for the raw centers, K x D, for losses with centers.
    pub center_grad: Option<Vec<f32>>,
}

impl LossOutput {
    /// The reduced loss.
    pub fn loss(&self) -> f64 {
        self.stats.loss
    }
}
