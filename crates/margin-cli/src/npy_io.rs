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
    move |e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CliError::input(format!(
                "{msg}: the file ends before the values its header's shape announces"
            ))
        } else {
            CliError::input(format!("{msg}: {e}"))
        }
    }
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

/// One f32 output array: `rows x cols` values for `path`.
pub struct Output<'a> {
    pub path: &'a Path,
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

/// Fails before any work when `path` cannot become an output file (`flag` names the option): it
/// is a folder, or its folder does not exist. Later write failures (a full disk, permissions) are
/// still caught by [`write_outputs`].
pub fn check_output_path(path: &Path, flag: &str) -> Result<(), CliError> {
    if path.is_dir() || path.file_name().is_none() {
        return Err(CliError::input(format!(
            "{flag} {}: is a folder, not a file name",
            path.display()
        )));
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(CliError::input(format!(
            "{flag} {}: no such folder {}",
            path.display(),
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Writes every output or none: each array goes to a temporary file first, and the files are
/// renamed into place only once all of them were written, so that a failure never leaves a
/// partial output (or one output of two) behind.
pub fn write_outputs(outputs: &[Output<'_>]) -> Result<(), CliError> {
    let temps: Vec<_> = outputs
        .iter()
        .map(|o| o.path.with_extension("npy.partial"))
        .collect();
    let discard = |temps: &[std::path::PathBuf]| {
        for t in temps {
            let _ = std::fs::remove_file(t);
        }
    };
    for (o, tmp) in outputs.iter().zip(&temps) {
        if let Err(e) = write_npy(tmp, o) {
            discard(&temps);
            return Err(CliError::runtime(format!(
                "cannot write {}: {e}",
                o.path.display()
            )));
        }
    }
    for (i, (o, tmp)) in outputs.iter().zip(&temps).enumerate() {
        if let Err(e) = std::fs::rename(tmp, o.path) {
            discard(&temps[i..]);
            return Err(CliError::runtime(format!(
                "cannot write {}: {e}",
                o.path.display()
            )));
        }
    }
    Ok(())
}

fn write_npy(path: &Path, o: &Output<'_>) -> std::io::Result<()> {
    let file = BufWriter::new(File::create(path)?);
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[o.rows as u64, o.cols as u64])
        .writer(file)
        .begin_nd()?;
    writer.extend(o.data.iter().copied())?;
    writer.finish()
}
