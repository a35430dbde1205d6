//! Turning command-line flags into validated values: loss flags into a [`margin_core::Loss`],
//! metric flags (`eval`, `pairwise`) into a [`margin_core::Metric`].

use crate::args::LossFlags;
use crate::error::CliError;
use margin_core::{Loss, LossKind, LossOverrides};

/// The loss named `name` with the SPEC's defaults, overridden by `flags`.
pub fn build_loss(name: &str, flags: &LossFlags) -> Result<Loss, CliError> {
    let kind: LossKind = name.parse()?;
    let overrides = LossOverrides {
        distance: flags.distance.as_deref().map(str::parse).transpose()?,
        normalize: normalize_choice(flags.normalize, flags.no_normalize)?,
        margin: flags.margin,
        margin2: flags.margin2,
        pos_margin: flags.pos_margin,
        neg_margin: flags.neg_margin,
        smooth: flags.smooth.then_some(true),
        mining: flags.mining.as_deref().map(str::parse).transpose()?,
        alpha: flags.alpha,
        beta: flags.beta,
        base: flags.base,
        gamma: flags.gamma,
        temperature: flags.temperature,
        scale: flags.scale,
    };
    Ok(overrides.apply(Loss::default_for(kind))?)
}

/// `--normalize` / `--no-normalize`: `Some(choice)`, or `None` when neither is given.
fn normalize_choice(normalize: bool, no_normalize: bool) -> Result<Option<bool>, CliError> {
    match (normalize, no_normalize) {
        (true, true) => Err(CliError::input(
            "--normalize and --no-normalize cannot both be given",
        )),
        (true, false) => Ok(Some(true)),
        (false, true) => Ok(Some(false)),
        (false, false) => Ok(None),
    }
}

impl crate::args::MetricFlags {
    /// The metric the flags ask for: euclidean without normalization by default.
    pub fn metric(&self) -> Result<margin_core::Metric, CliError> {
        let distance = match self.distance.as_deref() {
            Some(name) => name.parse()?,
            None => margin_core::Distance::Euclidean,
        };
        let normalize = normalize_choice(self.normalize, self.no_normalize)?;
        Ok(margin_core::Metric::new(
            distance,
            normalize.unwrap_or(false),
        ))
    }
}
