//! The training progress bar: loss, active terms and step time, on stderr only, and only when
//! stderr is a terminal and `--json` is off (so piped output and CI logs stay clean).

use crate::error::CliError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use margin_core::LossStats;
use std::io::IsTerminal;
use std::time::Duration;

/// Weight of the newest step in the smoothed step time shown.
const SMOOTHING: f64 = 0.1;

/// A progress bar over training steps (hidden when it must not draw).
pub struct Progress {
    bar: ProgressBar,
    step_ms: Option<f64>,
}

impl Progress {
    /// A bar over `steps` steps under a `header` line; hidden when `quiet` or stderr is not a
    /// terminal.
    pub fn new(steps: usize, header: String, quiet: bool) -> Result<Self, CliError> {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(steps as u64), target);
        let style = ProgressStyle::with_template(
            "[{bar:20.cyan/blue}] {pos:>5}/{len} {wide_msg} eta {eta:<3}",
        )
        .map_err(|e| CliError::runtime(format!("progress bar template: {e}")))?
        .progress_chars("=> ");
        bar.set_style(style);
        // A header line above the bar (printed only when the bar is visible).
        bar.println(header);
        Ok(Self { bar, step_ms: None })
    }

    /// Records one finished step.
    pub fn step(&mut self, stats: &LossStats, took: Duration) {
        let ms = took.as_secs_f64() * 1e3;
        let smoothed = self.step_ms.map_or(ms, |s| s + SMOOTHING * (ms - s));
        self.step_ms = Some(smoothed);
        self.bar.set_message(format!(
            "loss {:.4}  active {}  {:.2} ms/step",
            stats.loss, stats.active, smoothed
        ));
        self.bar.inc(1);
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
