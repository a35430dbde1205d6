//! Random N x M rectangles for the reference-set checks of the f64 reference
//! (`reference_sets_gradcheck.rs`, `reference_sets_edges.rs`), and the random inputs and metric
//! list that the square gradient check (`reference_gradcheck.rs`) draws the same way.

#![allow(dead_code)]

use margin_core::{Distance, Metric, NO_SELF};
use margin_cpu::reference::{RefSet, pairwise};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

pub const N: usize = 5;
pub const M: usize = 7;
pub const D: usize = 3;
pub const CLASSES: usize = 3;

/// The seven distinct metrics: four distances × normalize on/off, cosine always normalized.
pub fn metrics() -> Vec<Metric> {
    let mut out = Vec::new();
    for distance in Distance::ALL {
        out.push(Metric::new(distance, true));
        if distance != Distance::Cosine {
            out.push(Metric::new(distance, false));
        }
    }
    out
}

/// A random rectangle: batch, reference, labels and (optionally) a self index.
pub struct Rectangle {
    pub x: Vec<f64>,
    pub y: Vec<i64>,
    pub r: Vec<f64>,
    pub rl: Vec<i64>,
    pub sigma: Option<Vec<u32>>,
    pub n: usize,
    pub m: usize,
}

impl Rectangle {
    pub fn reference(&self) -> RefSet<'_> {
        RefSet {
            embeddings: &self.r,
            m: self.m,
            labels: &self.rl,
            self_index: self.sigma.as_deref(),
        }
    }

    /// The entries of the N x M matrix that are not self pairs.
    pub fn entries(&self, metric: Metric) -> Vec<f64> {
        let dist = pairwise(metric, &self.x, self.n, &self.r, self.m, D);
        (0..self.n * self.m)
            .filter(|&k| {
                self.sigma
                    .as_ref()
                    .is_none_or(|s| s[k / self.m] as usize != k % self.m)
            })
            .map(|k| dist[k])
            .collect()
    }
}

pub fn normal(rng: &mut StdRng, len: usize) -> Vec<f64> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

/// `n` labels over `classes`, each class present (for n >= classes), shuffled.
pub fn labels(rng: &mut StdRng, n: usize, classes: usize) -> Vec<i64> {
    let mut l: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    l.shuffle(rng);
    l
}

/// A random N x M rectangle; with `with_self`, batch rows 0..N−1 have a near copy at a random
/// reference column (with their label) and the last row has none.
///
/// Near, not exact: with exact copies `e(x_a, copy of x_b) = e(x_b, copy of x_a)`, so the matrix
/// holds exact duplicate values, and ties in hard quadruplet's `argmin e_kl` (or a margin placed
/// between two equal values) are genuine kinks that central differences cannot see. Exact copies
/// are covered by the PML cross-batch-memory goldens and by the edge cases below.
pub fn rectangle(rng: &mut StdRng, with_self: bool) -> Rectangle {
    let x = normal(rng, N * D);
    let y = labels(rng, N, CLASSES);
    let mut r = normal(rng, M * D);
    let mut rl = labels(rng, M, CLASSES);
    let sigma = with_self.then(|| {
        let mut cols: Vec<usize> = (0..M).collect();
        cols.shuffle(rng);
        (0..N)
            .map(|i| {
                if i + 1 == N {
                    return NO_SELF;
                }
                let c = cols[i];
                rl[c] = y[i];
                for k in 0..D {
                    let noise: f64 = StandardNormal.sample(rng);
                    r[c * D + k] = x[i * D + k] + 0.05 * noise;
                }
                c as u32
            })
            .collect()
    });
    Rectangle {
        x,
        y,
        r,
        rl,
        sigma,
        n: N,
        m: M,
    }
}
