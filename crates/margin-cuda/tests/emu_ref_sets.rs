//! Writes reference-set cases for the CPU emulation of the CUDA kernels
//! (`shaders/cuda/emu/ref_check.cpp`, which runs the launches of `src/reference.rs`,
//! `src/ref_losses.rs` and `src/ref_quadruplet.rs` in the same order): every case of
//! `tests/fixtures/pml_ref` (PML's golden values; CrossBatchMemory calls through the plain API)
//! and, when the f64 reference backend implements reference sets, random rectangles against it.
//! Ignored by default; run with
//! `MARGIN_EMU_REF_SETS=/tmp/refsets.txt cargo test -p margin-cuda --test emu_ref_sets -- --ignored`
//! (or `REF=1 shaders/cuda/emu/run.sh`, which does both).

#[path = "../../../tests/support/mod.rs"]
mod support;

use margin_core::{
    Distance, Embeddings, HostBackend, Loss, LossInput, LossKind, Metric, Mining, NO_SELF,
    ReferenceSet,
};
use margin_cpu::ReferenceBackend;
use std::fmt::Write as _;
use support::golden::{fixture_dir, json_files};
use support::losses::reference_kinds;
use support::ref_fixtures::{RefCase, cbm_cases, ref_file};

/// One batch against one reference set with the expected answer.
struct Case {
    name: String,
    loss: Loss,
    d: usize,
    labels: Vec<i64>,
    x: Vec<f32>,
    ref_labels: Vec<i64>,
    r: Vec<f32>,
    self_index: Option<Vec<u32>>,
    value: f64,
    active: [u64; 2],
    grad: Vec<f64>,
}

fn mining_code(m: Mining) -> u8 {
    match m {
        Mining::All => 0,
        Mining::Hard => 1,
        Mining::SemiHard => 2,
    }
}

/// `id kind normalize p0 p1 p2`, the loss line of ref_check.cpp.
fn loss_line(loss: &Loss) -> String {
    let metric = loss.metric();
    let kind = match metric.distance {
        Distance::Euclidean => 0,
        Distance::SquaredEuclidean => 1,
        Distance::Cosine | Distance::Dot => 2,
    };
    let (id, p): (u8, [f64; 3]) = match loss {
        Loss::Contrastive(c) => (0, [c.pos_margin, c.neg_margin, 0.0]),
        Loss::Triplet(c) => (
            1,
            [
                c.margin,
                f64::from(mining_code(c.mining)),
                f64::from(u8::from(c.smooth)),
            ],
        ),
        Loss::LiftedStructure(c) => (2, [c.pos_margin, c.neg_margin, 0.0]),
        Loss::MultiSimilarity(c) => (3, [c.alpha, c.beta, c.base]),
        Loss::Circle(c) => (4, [c.margin, c.gamma, 0.0]),
        Loss::NTXent(c) => (5, [c.temperature, 0.0, 0.0]),
        Loss::SupCon(c) => (6, [c.temperature, 0.0, 0.0]),
        Loss::GeneralizedLiftedStructure(c) => (7, [c.pos_margin, c.neg_margin, 0.0]),
        Loss::Quadruplet(c) => (8, [c.margin, c.margin2, f64::from(mining_code(c.mining))]),
        Loss::NPair(_) | Loss::TripletCenter(_) => panic!("no reference set for {}", loss.kind()),
    };
    let norm = u8::from(metric.normalizes());
    format!("{id} {kind} {norm} {:e} {:e} {:e}", p[0], p[1], p[2])
}

fn join<T: std::fmt::LowerExp>(v: &[T]) -> String {
    v.iter()
        .map(|x| format!("{x:e}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_case(out: &mut String, c: &Case) {
    let (n, m) = (c.labels.len(), c.ref_labels.len());
    let ints = |v: &[i64]| {
        v.iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sigma: Vec<i64> = match &c.self_index {
        Some(s) => s
            .iter()
            .map(|&v| if v == NO_SELF { -1 } else { i64::from(v) })
            .collect(),
        None => vec![-1; n],
    };
    writeln!(out, "{}", c.name.replace(' ', "_")).unwrap();
    writeln!(out, "{} {n} {m} {}", loss_line(&c.loss), c.d).unwrap();
    writeln!(out, "{}", ints(&c.labels)).unwrap();
    writeln!(out, "{}", ints(&c.ref_labels)).unwrap();
    writeln!(out, "{}", ints(&sigma)).unwrap();
    writeln!(out, "{}", join(&c.x)).unwrap();
    writeln!(out, "{}", join(&c.r)).unwrap();
    writeln!(out, "{:e} {} {}", c.value, c.active[0], c.active[1]).unwrap();
    writeln!(out, "{}", join(&c.grad)).unwrap();
}

impl Case {
    /// A fixture case (a CrossBatchMemory call already cut down to its anchors).
    fn from_fixture(c: RefCase) -> Case {
        let loss = c.params.loss(&c.loss).unwrap();
        let self_index = c.sigma();
        Case {
            name: c.name,
            loss,
            d: c.d,
            labels: c.labels,
            x: c.embeddings,
            ref_labels: c.ref_labels,
            r: c.ref_embeddings,
            self_index,
            value: c.value,
            active: c.active,
            grad: c.grad,
        }
    }
}

/// Every fixture case, file by file in name order (a CrossBatchMemory call through the plain
/// API, with an enqueue mask only its unmasked rows as anchors).
fn fixture_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for path in json_files(&fixture_dir("pml_ref"), None) {
        let stem = path.file_stem().unwrap().to_string_lossy();
        let cases: Vec<RefCase> = if stem == "cross-batch-memory" {
            cbm_cases().into_iter().map(|(c, _)| c).collect()
        } else {
            ref_file(&stem).cases
        };
        out.extend(cases.into_iter().map(Case::from_fixture));
    }
    out
}

/// Random rectangles against the f64 reference backend; empty while it has no reference sets.
fn random_cases() -> Vec<Case> {
    let mut state = 987654321u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    // (n, m, d, classes, copies of batch rows in the reference set with a self index)
    let shapes = [
        (7, 11, 5, 3, false),
        (9, 12, 4, 2, true),
        (5, 13, 3, 4, true),
        (1, 5, 3, 2, false),
        (12, 4, 6, 3, false),
        (6, 6, 2, 6, true),
        // rows longer than the emulator's 64-thread blocks
        (20, 150, 4, 5, true),
        (33, 70, 3, 3, false),
    ];
    let mut losses = Vec::new();
    // The dump's order (quadruplet last), so that the random cases stay the same.
    let mut kinds: Vec<LossKind> = reference_kinds()
        .into_iter()
        .filter(|&k| k != LossKind::Quadruplet)
        .collect();
    kinds.push(LossKind::Quadruplet);
    for kind in kinds {
        for (dist, norm) in [
            (Distance::Euclidean, true),
            (Distance::SquaredEuclidean, false),
            (Distance::Cosine, true),
            (Distance::Dot, false),
        ] {
            let mut loss = Loss::default_for(kind);
            *loss.metric_mut() = Metric::new(dist, norm);
            if loss.validate().is_err() {
                continue;
            }
            let minings: &[Mining] = match kind {
                LossKind::Triplet => &[Mining::All, Mining::Hard, Mining::SemiHard],
                LossKind::Quadruplet => &[Mining::All, Mining::Hard],
                _ => &[Mining::All],
            };
            for &mining in minings {
                let mut l = loss;
                match &mut l {
                    Loss::Triplet(c) => c.mining = mining,
                    Loss::Quadruplet(c) => c.mining = mining,
                    _ => {}
                }
                losses.push(l);
            }
        }
    }
    let mut out = Vec::new();
    for (li, loss) in losses.iter().enumerate() {
        let (n, m, d, classes, copies) = shapes[li % shapes.len()];
        let x: Vec<f32> = (0..n * d).map(|_| (rnd() * 2.0 - 1.0) as f32).collect();
        let labels: Vec<i64> = (0..n).map(|_| (rnd() * classes as f64) as i64).collect();
        let mut r: Vec<f32> = (0..m * d).map(|_| (rnd() * 2.0 - 1.0) as f32).collect();
        let mut ref_labels: Vec<i64> = (0..m)
            .map(|_| (rnd() * (classes + 1) as f64) as i64)
            .collect();
        let sigma = copies.then(|| {
            // Batch row i is copied to reference row (3 i + 1) mod m when that slot is free.
            let mut s = vec![NO_SELF; n];
            let mut used = vec![false; m];
            for (i, si) in s.iter_mut().enumerate() {
                let j = (3 * i + 1) % m;
                if !used[j] {
                    used[j] = true;
                    r[j * d..(j + 1) * d].copy_from_slice(&x[i * d..(i + 1) * d]);
                    ref_labels[j] = labels[i];
                    *si = j as u32;
                }
            }
            s
        });
        let emb = Embeddings::new(&x, n, d).unwrap();
        let reference = ReferenceSet {
            embeddings: Embeddings::new(&r, m, d).unwrap(),
            labels: &ref_labels,
            self_index: sigma.as_deref(),
        };
        let input = LossInput::new(emb, &labels, None)
            .unwrap()
            .with_reference(reference)
            .unwrap();
        let Ok(res) = ReferenceBackend.host_loss(loss, &input) else {
            println!("the f64 reference has no reference sets yet: random rectangles skipped");
            return Vec::new();
        };
        out.push(Case {
            name: format!("random/{}#{li}", loss.kind()),
            loss: *loss,
            d,
            labels: labels.clone(),
            x: x.clone(),
            ref_labels: ref_labels.clone(),
            r: r.clone(),
            self_index: sigma,
            value: res.stats.loss,
            active: res.stats.active_terms,
            grad: res.grad.iter().map(|&g| f64::from(g)).collect(),
        });
    }
    out
}

#[test]
#[ignore = "writes reference-set cases for the emulator; needs MARGIN_EMU_REF_SETS"]
fn dump_reference_set_cases() {
    let Ok(path) = std::env::var("MARGIN_EMU_REF_SETS") else {
        println!("skipping: MARGIN_EMU_REF_SETS is not set");
        return;
    };
    let mut out = String::new();
    let fixtures = fixture_cases();
    let random = random_cases();
    for c in fixtures.iter().chain(&random) {
        write_case(&mut out, c);
    }
    std::fs::write(&path, out).unwrap();
    println!(
        "wrote {} fixture and {} random cases to {path}",
        fixtures.len(),
        random.len()
    );
}
