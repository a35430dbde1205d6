//! `margin demo`: trains a linear projection of the digits data (64 -> 16) with any loss on the
//! best available backend, with a live progress bar; scores the held-out fifth with PML's
//! retrieval metrics before and after training; and draws both embeddings (2-D PCA, coloured by
//! class) side by side into a PNG.

mod data;
mod font;
mod metrics;
mod pca;
mod plot;
mod progress;
mod train;

use crate::args::DemoCmd;
use crate::backends;
use crate::cmd_bench::random_normal;
use crate::error::CliError;
use crate::flags::build_loss;
use margin_core::{HostBackend, Loss, LossStats, Metric, RetrievalMetrics};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde_json::json;
use std::path::{Path, PathBuf};
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

/// The held-out split, its embeddings' width, and how they are ranked.
struct Eval<'a> {
    backend: &'a dyn HostBackend,
    metric: Metric,
    x: Vec<f32>,
    labels: Vec<i64>,
}

impl Eval<'_> {
    /// Embeds the held-out rows with `model`; returns the embeddings and their metrics.
    fn run(&self, model: &Model) -> Result<(Vec<f32>, RetrievalMetrics), CliError> {
        let n = self.labels.len();
        let e = model.embed(&self.x, n);
        let m = metrics::evaluate(
            self.backend,
            self.metric,
            &e,
            n,
            model.outputs(),
            &self.labels,
        )?;
        Ok((e, m))
    }
}

fn check(cmd: &DemoCmd) -> Result<Loss, CliError> {
    let loss = build_loss(&cmd.loss, &Default::default())?;
    if cmd.steps == 0 || cmd.batch < 2 || cmd.dim == 0 {
        return Err(CliError::input(
            "--steps, --dim must be >= 1 and --batch >= 2",
        ));
    }
    if !(cmd.lr.is_finite() && cmd.lr > 0.0) {
        return Err(CliError::input("--lr must be a positive number"));
    }
    if cmd.memory > 0 {
        if !loss.supports_reference() {
            return Err(loss.reference_unsupported().into());
        }
        if cmd.memory < cmd.batch {
            return Err(CliError::input(format!(
                "--memory {} must hold at least one batch (--batch {})",
                cmd.memory, cmd.batch
            )));
        }
    }
    if !cmd.no_png {
        check_png_path(&cmd.png)?;
    }
    Ok(loss)
}

/// Fails before training, not after it, when the picture could not be written: the encoder picks
/// the format from the extension, and the folder must exist.
fn check_png_path(path: &Path) -> Result<(), CliError> {
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(CliError::input(format!(
            "--png {}: the file name must end in .png",
            path.display()
        )));
    }
    crate::npy_io::check_output_path(path, "--png")
}

/// Runs the demo; prints the human report unless `--json`, and returns the JSON summary.
pub fn run(cmd: &DemoCmd) -> Result<serde_json::Value, CliError> {
    let loss = check(cmd)?;
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
    if digits.labels.iter().any(|&l| l < 0) {
        return Err(CliError::input("digits labels must be >= 0"));
    }
    let (test_x, test_y) = gather(&digits, &test_idx);
    let scale = 1.0 / (digits.dim as f32).sqrt();
    let w: Vec<f32> = random_normal(digits.dim, cmd.dim, cmd.seed, "the projection")?
        .into_iter()
        .map(|v| v * scale)
        .collect();
    // The losses with centers (triplet-center, proxy-anchor) learn one per class beside the
    // projection.
    let classes = digits.labels.iter().max().map_or(0, |&l| l as usize + 1);
    let centers = loss
        .needs_centers()
        .then(|| random_normal(classes, cmd.dim, cmd.seed + 1, "the centers"))
        .transpose()?;
    let mut model = Model::new(w, centers, digits.dim, cmd.dim, cmd.lr);
    let metric = loss.metric();
    let eval = Eval {
        backend: backend.as_ref(),
        metric,
        x: test_x,
        labels: test_y,
    };
    let (emb_before, before) = eval.run(&model)?;

    let header = format!(
        "training {} on {}: {} steps of {} samples",
        loss.kind().name(),
        backend.backend_name(),
        cmd.steps,
        cmd.batch
    );
    let run = train(
        cmd,
        backend.as_ref(),
        &loss,
        &mut model,
        &digits,
        &train_idx,
        header,
    )?;
    let (emb_after, after) = eval.run(&model)?;

    let png = if cmd.no_png {
        None
    } else {
        let after_title = format!("after {} steps of {}", cmd.steps, loss.kind().name());
        let views = [
            ("before training".to_string(), &emb_before, &before),
            (after_title, &emb_after, &after),
        ];
        Some(picture(cmd, metric, &eval.labels, views)?)
    };

    let summary = json!({
        "loss_name": loss.kind().name(),
        "backend": backend.backend_name(),
        "steps": cmd.steps,
        "batch": cmd.batch,
        "memory": cmd.memory,
        "input_dim": digits.dim,
        "dim": cmd.dim,
        "train_samples": train_idx.len(),
        "test_samples": test_idx.len(),
        "final_loss": run.last.loss,
        "final_active": run.last.active,
        "train_seconds": run.seconds,
        "ms_per_step": run.median_step_ms,
        "evaluation": metrics::PROTOCOL,
        "distance": metric.distance.name(),
        "normalize": metric.normalizes(),
        "metrics_before": metrics::to_json(&before),
        "metrics_after": metrics::to_json(&after),
        "recall_at_1_before": before.precision_at_1,
        "recall_at_1_after": after.precision_at_1,
        "png": png.as_ref().map(|p| p.display().to_string()),
    });
    if !cmd.json {
        print_report(&before, &after, metric, test_idx.len(), png.as_deref());
    }
    Ok(summary)
}

/// What the training loop reports.
struct TrainRun {
    last: LossStats,
    seconds: f64,
    median_step_ms: f64,
}

/// `--steps` steps of Adam on random batches of the training split, with the progress bar.
fn train(
    cmd: &DemoCmd,
    backend: &dyn HostBackend,
    loss: &Loss,
    model: &mut Model,
    digits: &data::Digits,
    train_idx: &[usize],
    header: String,
) -> Result<TrainRun, CliError> {
    let mut bar = progress::Progress::new(cmd.steps, header, cmd.json)?;
    let mut rng = StdRng::seed_from_u64(cmd.seed + 2);
    let start = Instant::now();
    let mut step_ms = Vec::with_capacity(cmd.steps);
    let mut last = LossStats::default();
    let mut memory = (cmd.memory > 0)
        .then(|| train::HostMemory::new(cmd.memory, cmd.dim))
        .transpose()?;
    for _ in 0..cmd.steps {
        let step_start = Instant::now();
        let batch: Vec<usize> = sample(&mut rng, train_idx.len(), cmd.batch)
            .into_iter()
            .map(|i| train_idx[i])
            .collect();
        let (x, y) = gather(digits, &batch);
        last = match model.step(backend, loss, &x, &y, memory.as_mut()) {
            Ok(stats) => stats,
            Err(e) => {
                bar.finish();
                return Err(e.into());
            }
        };
        let took = step_start.elapsed();
        step_ms.push(took.as_secs_f64() * 1e3);
        bar.step(&last, took);
    }
    bar.finish();
    Ok(TrainRun {
        last,
        seconds: start.elapsed().as_secs_f64(),
        median_step_ms: median(&mut step_ms),
    })
}

/// Draws the PCA views of the held-out embeddings `(title, embeddings, metrics)` into
/// `--png`; returns the path written.
fn picture(
    cmd: &DemoCmd,
    metric: Metric,
    labels: &[i64],
    views: [(String, &Vec<f32>, &RetrievalMetrics); 2],
) -> Result<PathBuf, CliError> {
    let points = views
        .each_ref()
        .map(|(_, e, _)| pca::project_2d(e, labels.len(), cmd.dim, metric.normalizes()));
    let [(t0, _, m0), (t1, _, m1)] = views;
    let [p0, p1] = &points;
    let panels = [
        plot::Panel {
            title: t0,
            subtitle: subtitle(m0),
            points: p0,
        },
        plot::Panel {
            title: t1,
            subtitle: subtitle(m1),
            points: p1,
        },
    ];
    plot::write_png(&cmd.png, panels, labels)?;
    Ok(display_path(&cmd.png))
}

/// The second title line: the two headline metrics.
fn subtitle(m: &RetrievalMetrics) -> String {
    format!(
        "P@1 {:.3}   MAP@R {:.3}   MRR {:.3}",
        m.precision_at_1, m.mean_average_precision_at_r, m.mean_reciprocal_rank
    )
}

/// `path` made absolute (so it can be opened from anywhere), or as given if that fails.
fn display_path(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The human output: the metrics table and where the picture is.
fn print_report(
    before: &RetrievalMetrics,
    after: &RetrievalMetrics,
    metric: Metric,
    n: usize,
    png: Option<&Path>,
) {
    println!(
        "retrieval on {n} held-out digits ({}; {}{}):",
        metrics::PROTOCOL,
        metric.distance.name(),
        if metric.normalizes() {
            ", normalized"
        } else {
            ""
        }
    );
    println!("  {:<12} {:>8} {:>8}", "", "before", "after");
    for ((name, b), (_, a)) in metrics::rows(before).into_iter().zip(metrics::rows(after)) {
        println!("  {name:<12} {b:>8.4} {a:>8.4}");
    }
    if let Some(p) = png {
        println!(
            "wrote {} (PCA of the held-out embeddings, before | after, one colour per digit)",
            p.display()
        );
    }
}
