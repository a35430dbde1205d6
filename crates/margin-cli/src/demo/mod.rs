//! `margin demo`: trains a linear projection of the digits data (64 -> 16) with a loss of the
//! user's choice on the best available backend, and reports Recall@1 on a held-out split before
//! and after training.

mod data;
mod recall;
mod train;

use crate::args::DemoCmd;
use crate::backends;
use crate::cmd_bench::random_normal;
use crate::error::CliError;
use crate::flags::build_loss;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde_json::json;
use std::time::Instant;
use train::Model;

/// Every fifth sample is held out for evaluation.
fn is_test(i: usize) -> bool {
    i.is_multiple_of(5)
}

fn gather(d: &data::Digits, idx: &[usize]) -> (Vec<f32>, Vec<i64>) {
    let x = idx.iter().flat_map(|&i| d.row(i).iter().copied()).collect();
    let y = idx.iter().map(|&i| d.labels[i]).collect();
    (x, y)
}

/// Runs the demo; returns the JSON summary.
pub fn run(cmd: &DemoCmd) -> Result<serde_json::Value, CliError> {
    let loss = build_loss(&cmd.loss, &Default::default())?;
    if cmd.steps == 0 || cmd.batch < 2 || cmd.dim == 0 {
        return Err(CliError::input(
            "--steps, --dim must be >= 1 and --batch >= 2",
        ));
    }
    if !(cmd.lr.is_finite() && cmd.lr > 0.0) {
        return Err(CliError::input("--lr must be a positive number"));
    }
    let digits = data::load(cmd.data.as_deref())?;
    let backend = backends::select(cmd.backend)?;
    let (train_idx, test_idx): (Vec<usize>, Vec<usize>) =
        (0..digits.len()).partition(|&i| !is_test(i));
    if train_idx.len() < cmd.batch {
        return Err(CliError::input(format!(
            "--batch {} exceeds the {} training samples",
            cmd.batch,
            train_idx.len()
        )));
    }
    let (test_x, test_y) = gather(&digits, &test_idx);
    let scale = 1.0 / (digits.dim as f32).sqrt();
    let w: Vec<f32> = random_normal(digits.dim * cmd.dim, cmd.seed)
        .into_iter()
        .map(|v| v * scale)
        .collect();
    let centers = loss
        .needs_centers()
        .then(|| random_normal(10 * cmd.dim, cmd.seed + 1));
    let mut model = Model::new(w, centers, digits.dim, cmd.dim, cmd.lr);
    let metric = loss.metric();
    let evaluate = |model: &Model| {
        let e = model.embed(&test_x, test_idx.len());
        recall::recall_at_1(
            backend.as_ref(),
            metric,
            &e,
            test_idx.len(),
            cmd.dim,
            &test_y,
        )
    };
    let before = evaluate(&model)?;

    let bar = if cmd.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(cmd.steps as u64), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}")
            .map_err(|e| CliError::runtime(e.to_string()))?,
    );
    let mut rng = StdRng::seed_from_u64(cmd.seed + 2);
    let start = Instant::now();
    let mut last = Default::default();
    for _ in 0..cmd.steps {
        let step_start = Instant::now();
        let batch: Vec<usize> = sample(&mut rng, train_idx.len(), cmd.batch)
            .into_iter()
            .map(|i| train_idx[i])
            .collect();
        let (x, y) = gather(&digits, &batch);
        last = model.step(backend.as_ref(), &loss, &x, &y)?;
        bar.set_message(format!(
            "loss {:.4}  active {}  {:.1} ms/step",
            last.loss,
            last.active,
            step_start.elapsed().as_secs_f64() * 1e3
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let after = evaluate(&model)?;
    Ok(json!({
        "loss_name": loss.kind().name(),
        "backend": backend.backend_name(),
        "steps": cmd.steps,
        "batch": cmd.batch,
        "train_samples": train_idx.len(),
        "test_samples": test_idx.len(),
        "final_loss": last.loss,
        "train_seconds": seconds,
        "recall_at_1_before": before,
        "recall_at_1_after": after,
    }))
}
