//! Stage 2 and stage 4: the pairwise matrix between two sets of rows, and the chain rule from
//! `W = ∂L/∂D` back to the rows.
//!
//! Euclidean distances use the expanded form `‖a‖² + ‖b‖² − 2a·b`, clamped at 0, exactly as the
//! SPEC defines them: at (near-)duplicate rows this is what every fast backend computes, so the
//! oracle must compute the same thing rather than `‖a − b‖²`.

use super::normalize::Normalized;
use margin_core::Distance;

/// `+1` for a distance (larger = farther), `−1` for a similarity (larger = closer).
///
/// Every loss in the SPEC is written for a distance and "flips its signs" for a similarity; with
/// this factor the two cases are one formula: e.g. the triplet value `d_ap − d_an + m` and
/// `s_an − s_ap + m` are both `farther_sign · (D_ap − D_an) + m`.
pub(crate) fn farther_sign(distance: Distance) -> f64 {
    if distance.is_similarity() { -1.0 } else { 1.0 }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The value of `distance` between two rows (already normalized when the metric normalizes).
pub(crate) fn between(distance: Distance, a: &[f64], b: &[f64]) -> f64 {
    match distance {
        Distance::Cosine | Distance::Dot => dot(a, b),
        Distance::SquaredEuclidean => (dot(a, a) + dot(b, b) - 2.0 * dot(a, b)).max(0.0),
        Distance::Euclidean => (dot(a, a) + dot(b, b) - 2.0 * dot(a, b)).max(0.0).sqrt(),
    }
}

/// The `na x nb` matrix `D[i, j] = distance(a_i, b_j)`.
pub(crate) fn matrix(distance: Distance, a: &Normalized, b: &Normalized) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.n() * b.n());
    for i in 0..a.n() {
        for j in 0..b.n() {
            out.push(between(distance, a.row(i), b.row(j)));
        }
    }
    out
}

/// `(Σ_ij W[i,j] ∂D[i,j]/∂a_i, Σ_ij W[i,j] ∂D[i,j]/∂b_j)`: the gradients for the rows of `a` and
/// of `b`, given `W = ∂L/∂D` and the matrix `dist = matrix(distance, a, b)`.
///
/// * dot / cosine, `a·b`: `∂/∂a = b`, `∂/∂b = a`.
/// * squared-euclidean: `∂/∂a = 2(a − b) = −∂/∂b` (the derivative of the expanded form; the clamp
///   only acts where `a ≈ b`, where this is ≈ 0 too).
/// * euclidean: `∂/∂a = (a − b) / D = −∂/∂b`, defined as 0 where `D = 0`.
pub(crate) fn backward(
    distance: Distance,
    a: &Normalized,
    b: &Normalized,
    dist: &[f64],
    w: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let (na, nb, d) = (a.n(), b.n(), a.d());
    let mut ga = vec![0.0; na * d];
    let mut gb = vec![0.0; nb * d];
    for i in 0..na {
        for j in 0..nb {
            let wij = w[i * nb + j];
            if wij == 0.0 {
                continue;
            }
            let (ai, bj) = (a.row(i), b.row(j));
            let ga_i = &mut ga[i * d..(i + 1) * d];
            let gb_j = &mut gb[j * d..(j + 1) * d];
            match distance {
                Distance::Cosine | Distance::Dot => {
                    for k in 0..d {
                        ga_i[k] += wij * bj[k];
                        gb_j[k] += wij * ai[k];
                    }
                }
                Distance::SquaredEuclidean | Distance::Euclidean => {
                    let scale = if distance == Distance::SquaredEuclidean {
                        2.0 * wij
                    } else if dist[i * nb + j] > 0.0 {
                        wij / dist[i * nb + j]
                    } else {
                        0.0
                    };
                    for k in 0..d {
                        let diff = scale * (ai[k] - bj[k]);
                        ga_i[k] += diff;
                        gb_j[k] -= diff;
                    }
                }
            }
        }
    }
    (ga, gb)
}
