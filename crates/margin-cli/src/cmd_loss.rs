//! `margin loss`: a loss and its gradients on .npy files.

use crate::args::LossCmd;
use crate::backends;
use crate::error::CliError;
use crate::flags::build_loss;
use crate::npy_io::{read_labels, read_matrix, write_matrix};
use margin_core::{Embeddings, LossInput};
use serde_json::json;

/// Runs the command and returns the JSON line to print. Output files are written only after the
/// whole computation succeeded.
pub fn run(cmd: &LossCmd) -> Result<serde_json::Value, CliError> {
    let loss = build_loss(&cmd.loss, &cmd.flags)?;
    if cmd.center_grad_out.is_some() && !loss.needs_centers() {
        return Err(CliError::input(format!(
            "--center-grad-out applies only to triplet-center, not {}",
            loss.kind()
        )));
    }
    let x = read_matrix(&cmd.embeddings, "embeddings")?;
    let labels = read_labels(&cmd.labels, "labels")?;
    let centers = cmd
        .centers
        .as_deref()
        .map(|p| read_matrix(p, "centers"))
        .transpose()?;
    let embeddings = Embeddings::new(&x.data, x.rows, x.cols)?;
    let center_view = centers
        .as_ref()
        .map(|c| Embeddings::named(&c.data, c.rows, c.cols, "centers"))
        .transpose()?;
    let input = LossInput::new(embeddings, &labels, center_view)?;
    loss.validate_input(&input)?;
    let backend = backends::select(cmd.backend)?;
    let out = backend.host_loss(&loss, &input)?;
    if !out.stats.loss.is_finite() {
        return Err(CliError::runtime(format!(
            "the loss evaluated to {} on {}",
            out.stats.loss,
            backend.backend_name()
        )));
    }
    if let Some(path) = &cmd.grad_out {
        write_matrix(path, &out.grad, x.rows, x.cols)?;
    }
    if let (Some(path), Some(cg), Some(c)) = (&cmd.center_grad_out, &out.center_grad, &centers) {
        write_matrix(path, cg, c.rows, c.cols)?;
    }
    let metric = loss.metric();
    Ok(json!({
        "loss": out.stats.loss,
        "backend": backend.backend_name(),
        "loss_name": loss.kind().name(),
        "distance": metric.distance.name(),
        "normalize": metric.normalizes(),
        "n": x.rows,
        "d": x.cols,
        "active": out.stats.active,
        "active_terms": out.stats.active_terms,
    }))
}
