//! [`LossOverrides`]: optional parameter overrides, as given on the command line.

use crate::config::Mining;
use crate::distance::Distance;
use crate::error::{MarginError, Result};
use crate::loss::{Loss, LossKind};

/// Optional parameter overrides, as given on the command line. [`LossOverrides::apply`] rejects a
/// parameter that the chosen loss does not have, so a typo never silently does nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossOverrides {
    /// `--distance`
    pub distance: Option<Distance>,
    /// `--normalize` / `--no-normalize`
    pub normalize: Option<bool>,
    /// `--margin`
    pub margin: Option<f64>,
    /// `--margin2`
    pub margin2: Option<f64>,
    /// `--pos-margin`
    pub pos_margin: Option<f64>,
    /// `--neg-margin`
    pub neg_margin: Option<f64>,
    /// `--smooth`
    pub smooth: Option<bool>,
    /// `--mining`
    pub mining: Option<Mining>,
    /// `--alpha` (multi-similarity, proxy-anchor)
    pub alpha: Option<f64>,
    /// `--beta` (multi-similarity)
    pub beta: Option<f64>,
    /// `--base` (multi-similarity)
    pub base: Option<f64>,
    /// `--gamma` (circle)
    pub gamma: Option<f64>,
    /// `--temperature` (nt-xent, supcon, normalized-softmax)
    pub temperature: Option<f64>,
    /// `--scale` (proxy-nca's softmax scale, cosface)
    pub scale: Option<f64>,
}

impl LossOverrides {
    /// Applies the overrides to `loss` and validates the result.
    pub fn apply(&self, mut loss: Loss) -> Result<Loss> {
        if let Some(d) = self.distance {
            loss.metric_mut().distance = d;
        }
        if let Some(n) = self.normalize {
            loss.metric_mut().normalize = n;
        }
        match &mut loss {
            Loss::Contrastive(c) => {
                set(&mut c.pos_margin, self.pos_margin);
                set(&mut c.neg_margin, self.neg_margin);
            }
            Loss::LiftedStructure(c) => {
                set(&mut c.pos_margin, self.pos_margin);
                set(&mut c.neg_margin, self.neg_margin);
            }
            Loss::GeneralizedLiftedStructure(c) => {
                set(&mut c.pos_margin, self.pos_margin);
                set(&mut c.neg_margin, self.neg_margin);
            }
            Loss::Triplet(c) => {
                set(&mut c.margin, self.margin);
                set(&mut c.smooth, self.smooth);
                set(&mut c.mining, self.mining);
            }
            Loss::TripletCenter(c) => set(&mut c.margin, self.margin),
            Loss::Quadruplet(c) => {
                set(&mut c.margin, self.margin);
                set(&mut c.margin2, self.margin2);
                set(&mut c.mining, self.mining);
            }
            Loss::NPair(_) => {}
            Loss::MultiSimilarity(c) => {
                set(&mut c.alpha, self.alpha);
                set(&mut c.beta, self.beta);
                set(&mut c.base, self.base);
            }
            Loss::Circle(c) => {
                set(&mut c.margin, self.margin);
                set(&mut c.gamma, self.gamma);
            }
            Loss::NTXent(c) => set(&mut c.temperature, self.temperature),
            Loss::SupCon(c) => set(&mut c.temperature, self.temperature),
            Loss::ProxyAnchor(c) => {
                set(&mut c.margin, self.margin);
                set(&mut c.alpha, self.alpha);
            }
            Loss::ProxyNca(c) => set(&mut c.softmax_scale, self.scale),
            Loss::NormalizedSoftmax(c) => set(&mut c.temperature, self.temperature),
            Loss::CosFace(c) => {
                set(&mut c.margin, self.margin);
                set(&mut c.scale, self.scale);
            }
        }
        self.reject_foreign(loss.kind())?;
        loss.validate()?;
        Ok(loss)
    }

    /// An error naming the first flag that `kind` does not take.
    fn reject_foreign(&self, kind: LossKind) -> Result<()> {
        use LossKind::*;
        let flags: [(&str, bool, &[LossKind]); 11] = [
            (
                "margin",
                self.margin.is_some(),
                &[
                    Triplet,
                    TripletCenter,
                    Quadruplet,
                    Circle,
                    ProxyAnchor,
                    CosFace,
                ],
            ),
            ("margin2", self.margin2.is_some(), &[Quadruplet]),
            (
                "pos-margin",
                self.pos_margin.is_some(),
                &[Contrastive, LiftedStructure, GeneralizedLiftedStructure],
            ),
            (
                "neg-margin",
                self.neg_margin.is_some(),
                &[Contrastive, LiftedStructure, GeneralizedLiftedStructure],
            ),
            ("smooth", self.smooth == Some(true), &[Triplet]),
            ("mining", self.mining.is_some(), &[Triplet, Quadruplet]),
            (
                "alpha",
                self.alpha.is_some(),
                &[MultiSimilarity, ProxyAnchor],
            ),
            ("beta", self.beta.is_some(), &[MultiSimilarity]),
            ("base", self.base.is_some(), &[MultiSimilarity]),
            (
                "temperature",
                self.temperature.is_some(),
                &[NTXent, SupCon, NormalizedSoftmax],
            ),
            ("scale", self.scale.is_some(), &[ProxyNca, CosFace]),
        ];
        let gamma = ("gamma", self.gamma.is_some(), &[Circle][..]);
        for (flag, given, takers) in flags.into_iter().chain([gamma]) {
            if given && !takers.contains(&kind) {
                return Err(MarginError::config(format!(
                    "--{flag} does not apply to the {kind} loss"
                )));
            }
        }
        Ok(())
    }
}

fn set<T: Copy>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}
