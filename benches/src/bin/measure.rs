//! One-shot timings of the performance targets (not a test):
//! `cargo run --release -p margin-benches --bin measure [-- gemm|triplet|quadruplet|pairwise|small]`.
//! Prints one line per measurement: backend, what, N, D, milliseconds.

use margin_benches::{Batch, backends, time_loss, time_pairwise};
use margin_core::{Distance, Loss, LossKind, Metric};
use std::time::Instant;

fn gemm_compare() {
    let (m, n, k) = (4096usize, 4096usize, 512usize);
    let batch = Batch::new(m, k, 1, 1);
    let mut out = vec![0.0f32; m * n];
    for _ in 0..2 {
        let t = Instant::now();
        // SAFETY: all three matrices are dense row-major slices of exactly the sizes given.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                batch.x.as_ptr(),
                1,
                k as isize,
                batch.x.as_ptr(),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
        println!(
            "gemm 0.19 (rayon)       {m}x{n}x{k}: {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let t = Instant::now();
        // SAFETY: as above.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                batch.x.as_ptr(),
                k as isize,
                1,
                batch.x.as_ptr(),
                1,
                k as isize,
                0.0,
                out.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        println!(
            "matrixmultiply 0.3      {m}x{n}x{k}: {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        // matrixmultiply in row strips over rayon, as margin-cpu's fast backend does it.
        let t = Instant::now();
        let strip = m.div_ceil(rayon::current_num_threads() * 2).max(32);
        {
            use rayon::prelude::*;
            out.par_chunks_mut(strip * n)
                .enumerate()
                .for_each(|(s, o)| {
                    let rows = o.len() / n;
                    // SAFETY: `o` holds `rows` full rows of the output; the lhs pointer starts at row
                    // `s * strip` of a dense m x k matrix with at least `rows` rows left.
                    unsafe {
                        matrixmultiply::sgemm(
                            rows,
                            k,
                            n,
                            1.0,
                            batch.x.as_ptr().add(s * strip * k),
                            k as isize,
                            1,
                            batch.x.as_ptr(),
                            1,
                            k as isize,
                            0.0,
                            o.as_mut_ptr(),
                            n as isize,
                            1,
                        );
                    }
                });
        }
        println!(
            "matrixmultiply strips   {m}x{n}x{k}: {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}

fn report(what: &str, n: usize, d: usize, r: margin_core::Result<std::time::Duration>, b: &str) {
    match r {
        Ok(t) => println!(
            "{b:8} {what:40} N={n:6} D={d:5} {:10.1} ms",
            t.as_secs_f64() * 1e3
        ),
        Err(e) => println!("{b:8} {what:40} N={n:6} D={d:5} error: {e}"),
    }
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let all = which == "all";
    let big: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16384);
    if which == "gemm" || all {
        gemm_compare();
    }
    for b in backends() {
        let name = b.backend_name();
        if which == "pairwise" || all {
            let batch = Batch::new(4096, 512, 16, 2);
            for _ in 0..3 {
                let r = time_pairwise(b.as_ref(), Metric::new(Distance::Euclidean, false), &batch);
                report("pairwise euclidean", 4096, 512, r, &name);
            }
        }
        if which == "small" || all {
            for kind in [
                LossKind::Contrastive,
                LossKind::NPair,
                LossKind::LiftedStructure,
                LossKind::Triplet,
            ] {
                let batch = Batch::new(2048, 128, 64, 3);
                let loss = Loss::default_for(kind);
                for _ in 0..2 {
                    report(
                        kind.name(),
                        2048,
                        128,
                        time_loss(b.as_ref(), &loss, &batch),
                        &name,
                    );
                }
            }
        }
        if which == "triplet" || all {
            let batch = Batch::new(big, 128, 256, 4);
            let loss = Loss::default_for(LossKind::Triplet);
            report(
                "triplet batch-all (256 classes)",
                big,
                128,
                time_loss(b.as_ref(), &loss, &batch),
                &name,
            );
        }
        if which == "quadruplet" || all {
            let batch = Batch::new(big, 128, 256, 5);
            let loss = Loss::default_for(LossKind::Quadruplet);
            report(
                "quadruplet (256 classes)",
                big,
                128,
                time_loss(b.as_ref(), &loss, &batch),
                &name,
            );
        }
    }
}
