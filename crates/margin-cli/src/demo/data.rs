//! The digits data set (1797 8x8 images, 10 classes; E. Alpaydin and C. Kaynak, UCI, CC BY 4.0:
//! see `data/digits/README.md`), embedded in the binary so that `margin demo` runs anywhere.

use crate::error::CliError;
use npyz::NpyFile;
use std::path::Path;

const IMAGES: &[u8] = include_bytes!("../../../../data/digits/images.npy");
const LABELS: &[u8] = include_bytes!("../../../../data/digits/labels.npy");

/// Features scaled to [0, 1] and centered, with labels.
pub struct Digits {
    /// Row-major N x 64 features.
    pub features: Vec<f32>,
    /// N labels 0..9.
    pub labels: Vec<i64>,
    /// 64.
    pub dim: usize,
}

impl Digits {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }
}

fn parse_u8(bytes: &[u8], what: &str) -> Result<(Vec<u8>, Vec<u64>), CliError> {
    let bad = |e: std::io::Error| CliError::input(format!("digits {what}: {e}"));
    let npy = NpyFile::new(bytes).map_err(bad)?;
    let shape = npy.shape().to_vec();
    Ok((npy.into_vec::<u8>().map_err(bad)?, shape))
}

/// Loads the embedded copy, or `images.npy` / `labels.npy` (uint8, as shipped) from `dir`.
pub fn load(dir: Option<&Path>) -> Result<Digits, CliError> {
    let read = |name: &str| -> Result<std::borrow::Cow<'static, [u8]>, CliError> {
        match dir {
            None if name == "images.npy" => Ok(IMAGES.into()),
            None => Ok(LABELS.into()),
            Some(dir) => std::fs::read(dir.join(name)).map(Into::into).map_err(|e| {
                CliError::input(format!("cannot read {}: {e}", dir.join(name).display()))
            }),
        }
    };
    let (pixels, shape) = parse_u8(&read("images.npy")?, "images")?;
    let (labels, _) = parse_u8(&read("labels.npy")?, "labels")?;
    let dim = shape.get(1).copied().unwrap_or(0) as usize;
    if shape.len() != 2 || dim == 0 || pixels.len() != labels.len() * dim {
        return Err(CliError::input(format!(
            "digits data: images of shape {shape:?} do not match {} labels",
            labels.len()
        )));
    }
    let pixels = pixels.into_iter().map(f32::from).collect();
    Ok(Digits {
        features: center(scale(pixels), dim),
        labels: labels.into_iter().map(i64::from).collect(),
        dim,
    })
}

fn scale(pixels: Vec<f32>) -> Vec<f32> {
    pixels.into_iter().map(|p| p / 16.0).collect()
}

fn center(mut x: Vec<f32>, dim: usize) -> Vec<f32> {
    let n = x.len() / dim;
    let mut mean = vec![0f64; dim];
    for row in x.chunks(dim) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += f64::from(*v) / n as f64;
        }
    }
    for row in x.chunks_mut(dim) {
        for (v, m) in row.iter_mut().zip(&mean) {
            *v -= *m as f32;
        }
    }
    x
}
