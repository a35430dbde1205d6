//! Writes reference-set cases for the CPU emulation of the CUDA kernels
//! (`shaders/cuda/emu/ref_check.cpp`, which runs the launches of `src/reference.rs`,
//! `src/ref_losses.rs` and `src/ref_quadruplet.rs` in the same order): every case of
//! `tests/fixtures/pml_ref` (PML's golden values; CrossBatchMemory calls through the plain API)
//! and, when the f64 reference backend implements reference sets, random rectangles against it.
//! Ignored by default; run with
//! `MARGIN_EMU_REF_SETS=/tmp/refsets.txt cargo test -p margin-cuda --test emu_ref_sets -- --ignored`
//! (or `REF=1 shaders/cuda/emu/run.sh`, which does both).

use margin_core::{
    Distance, Embeddings, HostBackend, Loss, LossInput, LossKind, LossOverrides, Metric, Mining,
    NO_SELF, ReferenceSet,
};
use margin_cpu::ReferenceBackend;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

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

fn loss_from(kind: &str, params: &Value) -> Loss {
    let kind: LossKind = kind.parse().unwrap();
    let f = |k: &str| params.get(k).and_then(Value::as_f64);
    let s = |k: &str| params.get(k).and_then(Value::as_str);
    let o = LossOverrides {
        distance: s("distance").map(|v| v.parse::<Distance>().unwrap()),
        normalize: params.get("normalize").and_then(Value::as_bool),
        margin: f("margin"),
        margin2: f("margin2"),
        pos_margin: f("pos_margin"),
        neg_margin: f("neg_margin"),
        smooth: params.get("smooth").and_then(Value::as_bool),
        mining: s("mining").map(|v| v.parse::<Mining>().unwrap()),
        alpha: f("alpha"),
        beta: f("beta"),
        base: f("base"),
        gamma: f("gamma"),
        temperature: f("temperature"),
    };
    o.apply(Loss::default_for(kind)).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn self_index(v: Option<&Value>) -> Option<Vec<u32>> {
    let arr = v?.as_array()?;
    Some(
        arr.iter()
            .map(|x| {
                x.as_i64()
                    .map_or(NO_SELF, |i| if i < 0 { NO_SELF } else { i as u32 })
            })
            .collect(),
    )
}

/// One fixture call (a `<loss>.json` case or a CrossBatchMemory call). With an enqueue mask,
/// only the unmasked rows are anchors (the masked ones are only written to memory).
fn fixture_case(name: String, loss: Loss, d: usize, c: &Value) -> Case {
    let mut labels = i64s(&c["labels"]);
    let mut x = f32s(&c["embeddings"]);
    let mut grad = f64s(&c["grad"]);
    let mut sigma = self_index(c.get("self_index"));
    if let Some(mask) = c.get("enqueue_mask").and_then(Value::as_array) {
        let keep: Vec<usize> = (0..labels.len())
            .filter(|&i| !mask[i].as_bool().unwrap())
            .collect();
        labels = keep.iter().map(|&i| labels[i]).collect();
        x = keep
            .iter()
            .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
            .collect();
        grad = keep
            .iter()
            .flat_map(|&i| grad[i * d..(i + 1) * d].to_vec())
            .collect();
        sigma = sigma.map(|s| keep.iter().map(|&i| s[i]).collect());
    }
    let active = c["active"].as_array().unwrap();
    Case {
        name,
        loss,
        d,
        labels,
        x,
        ref_labels: i64s(&c["ref_labels"]),
        r: f32s(&c["ref_embeddings"]),
        self_index: sigma,
        value: c["value"].as_f64().unwrap(),
        active: [active[0].as_u64().unwrap(), active[1].as_u64().unwrap()],
        grad,
    }
}

fn fixture_cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pml_ref");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for c in doc["cases"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap().to_string();
            let loss = loss_from(c["loss"].as_str().unwrap(), &c["params"]);
            let d = c["d"].as_u64().unwrap() as usize;
            match c.get("calls").and_then(Value::as_array) {
                Some(calls) => {
                    for (k, call) in calls.iter().enumerate() {
                        out.push(fixture_case(format!("{name}#{k}"), loss, d, call));
                    }
                }
                None => out.push(fixture_case(name, loss, d, c)),
            }
        }
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
    for kind in [
        LossKind::Contrastive,
        LossKind::Triplet,
        LossKind::LiftedStructure,
        LossKind::MultiSimilarity,
        LossKind::Circle,
        LossKind::NTXent,
        LossKind::SupCon,
        LossKind::GeneralizedLiftedStructure,
        LossKind::Quadruplet,
    ] {
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
