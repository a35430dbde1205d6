//! Loss configurations that several suites sweep: the mining (and smooth) variants of a loss,
//! and the groups of losses the suites single out.

use margin_core::{Distance, Loss, LossKind, Metric, Mining, QuadrupletConfig, TripletConfig};

/// `loss` once per mining variant: triplet × {all, hard, semihard} × {hinge, smooth} (mining
/// outer), quadruplet × {all, hard}; any other loss alone. Everything else is kept from `loss`.
pub fn mining_variants(loss: Loss) -> Vec<Loss> {
    match loss {
        Loss::Triplet(c) => [Mining::All, Mining::Hard, Mining::SemiHard]
            .into_iter()
            .flat_map(|mining| {
                [false, true].map(|smooth| {
                    Loss::Triplet(TripletConfig {
                        mining,
                        smooth,
                        ..c
                    })
                })
            })
            .collect(),
        Loss::Quadruplet(c) => [Mining::All, Mining::Hard]
            .map(|mining| Loss::Quadruplet(QuadrupletConfig { mining, ..c }))
            .to_vec(),
        other => vec![other],
    }
}

/// The losses added after the SPEC's six that compare the rows of one batch, in
/// [`LossKind::ALL`] order (proxy-anchor, against its proxies, is swept with the center losses).
pub fn added_kinds() -> Vec<LossKind> {
    LossKind::ALL
        .into_iter()
        .filter(|&k| !LossKind::SEED.contains(&k) && !Loss::default_for(k).needs_centers())
        .collect()
}

/// The losses that take a reference set, in [`LossKind::ALL`] order.
pub fn reference_kinds() -> Vec<LossKind> {
    LossKind::ALL
        .into_iter()
        .filter(|&k| Loss::default_for(k).supports_reference())
        .collect()
}

/// Every loss × distance × normalize (normalize on first) × mining variant that validates, in
/// [`LossKind::ALL`] order: circle on cosine only. Cosine appears with normalize off too (it
/// normalizes regardless), as a configuration a caller may pass.
pub fn every_config() -> Vec<Loss> {
    let mut out = Vec::new();
    for kind in LossKind::ALL {
        for distance in Distance::ALL {
            for normalize in [true, false] {
                let mut loss = Loss::default_for(kind);
                *loss.metric_mut() = Metric::new(distance, normalize);
                let valid = mining_variants(loss)
                    .into_iter()
                    .filter(|l| l.validate().is_ok());
                out.extend(valid);
            }
        }
    }
    out
}
