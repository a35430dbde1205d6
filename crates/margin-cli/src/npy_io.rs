//! Reading and writing `.npy` files with the checks the SPEC's command-line contract asks for:
//! embeddings f32 or f64 of rank 2, labels of any integer dtype of rank 1, C order.

use crate::error::CliError;
use npyz::{DType, NpyFile, Order, TypeChar, WriterBuilder};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

/// A row-major f32 matrix read from disk.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Row-major values.
    pub data: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
}

fn open(path: &Path, what: &str) -> Result<NpyFile<BufReader<File>>, CliError> {
    let file = File::open(path)
        .map_err(|e| CliError::input(format!("cannot open {what} file {}: {e}", path.display())))?;
    let npy = NpyFile::new(BufReader::new(file)).map_err(|e| {
        CliError::input(format!(
            "{what} file {} is not a valid .npy file: {e}",
            path.display()
        ))
    })?;
    if npy.order() != Order::C && npy.shape().iter().filter(|&&s| s > 1).count() > 1 {
        return Err(CliError::input(format!(
            "{what} file {} is in Fortran order; save it in C order",
            path.display()
        )));
    }
    Ok(npy)
}

fn type_of(npy: &NpyFile<BufReader<File>>) -> Option<(TypeChar, u64)> {
    match npy.dtype() {
        DType::Plain(ts) => Some((ts.type_char(), ts.size_field())),
        _ => None,
    }
}

fn read_err(path: &Path, what: &str) -> impl Fn(std::io::Error) -> CliError {
    let msg = format!("cannot read the {what} data in {}", path.display());
    move |e| CliError::input(format!("{msg}: {e}"))
}

/// Reads a rank-2 f32 or f64 array as f32 (f64 values are rounded to f32).
pub fn read_matrix(path: &Path, what: &str) -> Result<Matrix, CliError> {
    let npy = open(path, what)?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        return Err(CliError::input(format!(
            "{what} in {} must be a 2-D array (N x D), got shape {shape:?}",
            path.display()
        )));
    }
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    let data: Vec<f32> = match type_of(&npy) {
        Some((TypeChar::Float, 4)) => npy.into_vec::<f32>().map_err(read_err(path, what))?,
        Some((TypeChar::Float, 8)) => npy
            .into_vec::<f64>()
            .map_err(read_err(path, what))?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        _ => {
            return Err(CliError::input(format!(
                "{what} in {} must be float32 or float64, got dtype {}",
                path.display(),
                npy.dtype().descr()
            )));
        }
    };
    Ok(Matrix { data, rows, cols })
}

/// Reads a rank-1 array of any integer dtype as i64 (u64 values above i64::MAX keep their bits,
/// which preserves equality, the only thing labels are used for).
pub fn read_labels(path: &Path, what: &str) -> Result<Vec<i64>, CliError> {
    let npy = open(path, what)?;
    let shape = npy.shape().to_vec();
    if shape.len() != 1 {
        return Err(CliError::input(format!(
            "{what} in {} must be a 1-D array of N integers, got shape {shape:?}",
            path.display()
        )));
    }
    let err = read_err(path, what);
    let labels: Vec<i64> = match type_of(&npy) {
        Some((TypeChar::Int, 1)) => widen(npy.into_vec::<i8>().map_err(err)?),
        Some((TypeChar::Int, 2)) => widen(npy.into_vec::<i16>().map_err(err)?),
        Some((TypeChar::Int, 4)) => widen(npy.into_vec::<i32>().map_err(err)?),
        Some((TypeChar::Int, 8)) => npy.into_vec::<i64>().map_err(err)?,
        Some((TypeChar::Uint, 1)) => widen(npy.into_vec::<u8>().map_err(err)?),
        Some((TypeChar::Uint, 2)) => widen(npy.into_vec::<u16>().map_err(err)?),
        Some((TypeChar::Uint, 4)) => widen(npy.into_vec::<u32>().map_err(err)?),
        Some((TypeChar::Uint, 8)) => npy
            .into_vec::<u64>()
            .map_err(err)?
            .into_iter()
            .map(|v| v as i64)
            .collect(),
        _ => {
            return Err(CliError::input(format!(
                "{what} in {} must have an integer dtype, got {}",
                path.display(),
                npy.dtype().descr()
            )));
        }
    };
    Ok(labels)
}

fn widen<T: Into<i64>>(v: Vec<T>) -> Vec<i64> {
    v.into_iter().map(Into::into).collect()
}

/// Writes a `rows x cols` f32 array. Writes to a temporary file first and renames it, so that a
/// failure never leaves a partial output behind.
pub fn write_matrix(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<(), CliError> {
    let tmp = path.with_extension("npy.partial");
    let result = (|| -> std::io::Result<()> {
        let file = BufWriter::new(File::create(&tmp)?);
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(file)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    })();
    let result = result.and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::runtime(format!("cannot write {}: {e}", path.display()))
    })
}
