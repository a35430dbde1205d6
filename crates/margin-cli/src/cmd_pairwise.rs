//! `margin pairwise`: the distance (or similarity) matrix between the rows of an `.npy` file, or
//! between them and the rows of a second one, written as an f32 `.npy`.

use crate::args::PairwiseCmd;
use crate::backends;
use crate::error::CliError;
use crate::npy_io::{Output, check_output_path, read_matrix, write_outputs};
use margin_core::Embeddings;
use serde_json::json;

/// Runs the command and returns the JSON line to print. The output file is written only after
/// the whole matrix was computed.
pub fn run(cmd: &PairwiseCmd) -> Result<serde_json::Value, CliError> {
    let metric = cmd.metric.metric()?;
    check_output_path(&cmd.out, "--out")?;
    let q = read_matrix(&cmd.embeddings, "embeddings")?;
    let r = cmd
        .reference
        .as_deref()
        .map(|p| read_matrix(p, "reference embeddings"))
        .transpose()?;
    let query = Embeddings::new(&q.data, q.rows, q.cols)?;
    let reference = r
        .as_ref()
        .map(|r| Embeddings::named(&r.data, r.rows, r.cols, "reference embeddings"))
        .transpose()?;
    let m = r.as_ref().map_or(q.rows, |r| r.rows);
    // The matrix is held on the host (and the device) whole: refuse what cannot be allocated
    // here before any work, naming the size, instead of aborting halfway.
    let values = q
        .rows
        .checked_mul(m)
        .filter(|v| v.checked_mul(4).is_some())
        .ok_or_else(|| CliError::input(format!("a {} x {m} matrix overflows usize", q.rows)))?;
    if Vec::<f32>::new().try_reserve_exact(values).is_err() {
        return Err(CliError::input(format!(
            "the {} x {m} matrix ({:.1} GiB) cannot be allocated on this machine",
            q.rows,
            values as f64 * 4.0 / f64::from(1u32 << 30)
        )));
    }
    let backend = backends::select(cmd.backend)?;
    let matrix = backend.host_pairwise(metric, query, reference)?;
    write_outputs(&[Output {
        path: &cmd.out,
        data: &matrix,
        rows: q.rows,
        cols: m,
    }])?;
    Ok(json!({
        "backend": backend.backend_name(),
        "n": q.rows,
        "m": m,
        "d": q.cols,
        "distance": metric.distance.name(),
        "normalize": metric.normalizes(),
        "out": cmd.out.display().to_string(),
    }))
}
