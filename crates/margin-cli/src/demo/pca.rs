//! A 2-D view of embeddings for the demo's plot: the top two principal components, found by power
//! iteration on the D x D covariance (D is the small embedding width, so this is instant and needs
//! no linear-algebra crate).

/// Iterations of power iteration at most; it stops earlier once the vector settles.
const MAX_ITERATIONS: usize = 1000;

/// Projects the `n x d` rows of `x` onto their top two principal components. With `normalize`
/// the rows are L2-normalized first, so the picture shows the geometry the loss's metric sees.
/// A missing component (d = 1, or all rows equal) projects to zero.
pub fn project_2d(x: &[f32], n: usize, d: usize, normalize: bool) -> Vec<[f64; 2]> {
    let mut rows: Vec<Vec<f64>> = x
        .chunks_exact(d.max(1))
        .take(n)
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    if normalize {
        for r in &mut rows {
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 0.0 {
                r.iter_mut().for_each(|v| *v /= norm);
            }
        }
    }
    let mut mean = vec![0f64; d];
    for r in &rows {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v / n.max(1) as f64;
        }
    }
    for r in &mut rows {
        r.iter_mut().zip(&mean).for_each(|(v, m)| *v -= m);
    }
    let cov = covariance(&rows, d);
    let first = top_eigenvector(&cov, d, None);
    let second = top_eigenvector(&cov, d, Some(&first));
    rows.iter()
        .map(|r| [dot(r, &first), dot(r, &second)])
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `d x d` row-major covariance of centered rows.
fn covariance(rows: &[Vec<f64>], d: usize) -> Vec<f64> {
    let mut c = vec![0f64; d * d];
    for r in rows {
        for (i, &ri) in r.iter().enumerate() {
            for (cij, &rj) in c[i * d..(i + 1) * d].iter_mut().zip(r) {
                *cij += ri * rj;
            }
        }
    }
    let n = rows.len().max(1) as f64;
    c.iter_mut().for_each(|v| *v /= n);
    c
}

/// Removes `v`'s component along the unit vector `u`.
fn orthogonalize(v: &mut [f64], u: Option<&[f64]>) {
    if let Some(u) = u {
        let p = dot(v, u);
        v.iter_mut().zip(u).for_each(|(x, y)| *x -= p * y);
    }
}

/// Scales `v` to unit length; false when it is (numerically) zero.
fn normalize(v: &mut [f64]) -> bool {
    let norm = dot(v, v).sqrt();
    if norm <= 1e-150 {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

/// The unit eigenvector of the largest eigenvalue of the symmetric PSD matrix `c`, restricted to
/// the complement of `orthogonal_to` when given; zero when `c` vanishes there. The start vector is
/// fixed, so the result (and the plot) is deterministic.
fn top_eigenvector(c: &[f64], d: usize, orthogonal_to: Option<&[f64]>) -> Vec<f64> {
    let mut v: Vec<f64> = (0..d)
        .map(|i| 1.0 + (i as f64 * 0.618_034).fract())
        .collect();
    orthogonalize(&mut v, orthogonal_to);
    if !normalize(&mut v) {
        return vec![0.0; d];
    }
    for _ in 0..MAX_ITERATIONS {
        let mut w: Vec<f64> = c.chunks_exact(d).map(|row| dot(row, &v)).collect();
        orthogonalize(&mut w, orthogonal_to);
        if !normalize(&mut w) {
            return vec![0.0; d];
        }
        let change: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
        v = w;
        if change < 1e-12 {
            break;
        }
    }
    // A fixed sign: the largest entry positive.
    let flip = v
        .iter()
        .copied()
        .fold(0f64, |best, x| if x.abs() > best.abs() { x } else { best })
        < 0.0;
    if flip {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_axes_of_an_elongated_cloud() {
        // Points spread 10x along (1, 1, 0) and 3x along (0, 0, 1), nothing along (1, -1, 0).
        let mut x = Vec::new();
        for i in -5..=5 {
            for j in -1..=1 {
                let (a, b) = (i as f32 * 10.0, j as f32 * 3.0);
                x.extend([a, a, b]);
            }
        }
        let n = x.len() / 3;
        let p = project_2d(&x, n, 3, false);
        // First coordinate is the projection on (1, 1, 0) / sqrt 2, second on (0, 0, 1).
        for (k, pt) in p.iter().enumerate() {
            let row = &x[k * 3..k * 3 + 3];
            let expected0 = f64::from(row[0] + row[1]) / 2f64.sqrt();
            assert!((pt[0].abs() - expected0.abs()).abs() < 1e-6, "{pt:?}");
            assert!(
                (pt[1].abs() - f64::from(row[2]).abs()).abs() < 1e-6,
                "{pt:?}"
            );
        }
    }

    #[test]
    fn degenerate_inputs_project_to_zero() {
        assert!(
            project_2d(&[1.0, 1.0, 1.0], 3, 1, false)
                .iter()
                .all(|p| *p == [0.0, 0.0])
        );
        let p = project_2d(&[1.0, 2.0, 3.0], 3, 1, false);
        assert!(p.iter().all(|q| q[1] == 0.0));
    }
}
