//! `margin loss`: a loss and its gradients on .npy files.

use crate::args::LossCmd;
use crate::backends;
use crate::error::CliError;
use crate::flags::build_loss;
use crate::npy_io::{Output, check_output_path, read_labels, read_matrix, write_outputs};
use margin_core::{Embeddings, LossInput, NO_SELF, ReferenceSet};
use serde_json::json;

/// Runs the command and returns the JSON line to print. Output files are written only after the
/// whole computation succeeded.
pub fn run(cmd: &LossCmd) -> Result<serde_json::Value, CliError> {
    let loss = build_loss(&cmd.loss, &cmd.flags)?;
    if cmd.center_grad_out.is_some() && !loss.needs_centers() {
        return Err(CliError::input(format!(
            "--center-grad-out applies only to the losses with centers, not {}",
            loss.kind()
        )));
    }
    check_outputs(cmd)?;
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
    let mut input = LossInput::new(embeddings, &labels, center_view)?;
    let reference = read_reference(cmd)?;
    if let Some(r) = &reference {
        input = input.with_reference(ReferenceSet {
            embeddings: Embeddings::named(&r.x.data, r.x.rows, r.x.cols, "reference embeddings")?,
            labels: &r.labels,
            self_index: r.self_index.as_deref(),
        })?;
    }
    loss.validate_input(&input)?;
    let backend = backends::select_with_budget(cmd.backend, cmd.budget.stream_budget_mib)?;
    let out = backend.host_loss(&loss, &input)?;
    if !out.stats.loss.is_finite() {
        return Err(CliError::runtime(format!(
            "the loss evaluated to {} on {}",
            out.stats.loss,
            backend.backend_name()
        )));
    }
    let mut outputs = Vec::new();
    if let Some(path) = &cmd.grad_out {
        outputs.push(Output {
            path,
            data: &out.grad,
            rows: x.rows,
            cols: x.cols,
        });
    }
    if let (Some(path), Some(cg), Some(c)) = (&cmd.center_grad_out, &out.center_grad, &centers) {
        outputs.push(Output {
            path,
            data: cg,
            rows: c.rows,
            cols: c.cols,
        });
    }
    write_outputs(&outputs)?;
    let metric = loss.metric();
    let mut out_json = json!({
        "loss": out.stats.loss,
        "backend": backend.backend_name(),
        "loss_name": loss.kind().name(),
        "distance": metric.distance.name(),
        "normalize": metric.normalizes(),
        "n": x.rows,
        "d": x.cols,
        "active": out.stats.active,
        "active_terms": out.stats.active_terms,
    });
    if let Some(r) = &reference {
        out_json["m"] = json!(r.x.rows);
    }
    Ok(out_json)
}

/// The output paths, checked before anything is read or computed: each must be a file name in an
/// existing folder, and the two gradients cannot share one.
fn check_outputs(cmd: &LossCmd) -> Result<(), CliError> {
    if let Some(p) = &cmd.grad_out {
        check_output_path(p, "--grad-out")?;
    }
    if let Some(p) = &cmd.center_grad_out {
        check_output_path(p, "--center-grad-out")?;
        if cmd.grad_out.as_ref() == Some(p) {
            return Err(CliError::input(format!(
                "--grad-out and --center-grad-out are both {}; give them different files",
                p.display()
            )));
        }
    }
    Ok(())
}

/// `--ref-embeddings`, `--ref-labels` and `--ref-self-index`, read (clap makes the first two
/// come together).
struct ReferenceFiles {
    x: crate::npy_io::Matrix,
    labels: Vec<i64>,
    self_index: Option<Vec<u32>>,
}

fn read_reference(cmd: &LossCmd) -> Result<Option<ReferenceFiles>, CliError> {
    let (Some(xp), Some(lp)) = (&cmd.ref_embeddings, &cmd.ref_labels) else {
        return Ok(None);
    };
    let x = read_matrix(xp, "reference embeddings")?;
    let labels = read_labels(lp, "reference labels")?;
    let self_index = cmd
        .ref_self_index
        .as_deref()
        .map(|p| {
            read_labels(p, "reference self index")?
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    -1 => Ok(NO_SELF),
                    v if v >= 0 && v < i64::from(NO_SELF) => Ok(v as u32),
                    v => Err(CliError::input(format!(
                        "reference self index {v} at row {i} is neither -1 nor a row index"
                    ))),
                })
                .collect::<Result<Vec<u32>, CliError>>()
        })
        .transpose()?;
    Ok(Some(ReferenceFiles {
        x,
        labels,
        self_index,
    }))
}
