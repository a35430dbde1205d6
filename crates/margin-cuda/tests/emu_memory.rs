//! Device memory of loss calls, as the emulator's stand-in libcuda counts it
//! (shaders/cuda/emu/fake_driver.cpp, `margin_emu_peak_bytes`): past the stream budget the
//! batch-all quadruplet keeps no second N x N matrix (SPEC, Cost), and losses with a reference
//! set keep one N x M matrix. On a real driver, or without
//! CUDA, the test says it skipped and why. Run by hand and in CI with
//! `shaders/cuda/emu/host_check.sh -p margin-cuda --test emu_memory`.

mod cuda_common;

use cuda_common::cuda_or_skip;
use margin_core::{
    Backend, Distance, Embeddings, Loss, LossInput, LossKind, Metric, Mining, QuadrupletConfig,
    ReferenceSet,
};
use margin_cuda::CudaBackend;
use std::sync::Mutex;

/// The emulator's peak-bytes counter (reset: start a new measurement), or `None` when the loaded
/// libcuda is not the emulator's.
fn peak_bytes(reset: bool) -> Option<usize> {
    // SAFETY: dlopen with RTLD_NOLOAD only returns a handle to a library already loaded (the
    // CUDA backend loaded libcuda.so.1); the name is a valid C string.
    let lib = unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if lib.is_null() {
        return None;
    }
    // SAFETY: `lib` is a live handle and the symbol name a valid C string.
    let sym = unsafe { libc::dlsym(lib, c"margin_emu_peak_bytes".as_ptr()) };
    if sym.is_null() {
        return None;
    }
    // SAFETY: fake_driver.cpp defines it as `size_t margin_emu_peak_bytes(int)` with C linkage.
    let f: extern "C" fn(libc::c_int) -> libc::size_t = unsafe { std::mem::transmute(sym) };
    Some(f(libc::c_int::from(reset)))
}

/// Peak device bytes of one loss call on `cuda`.
fn peak_of(cuda: &CudaBackend, loss: &Loss, input: &LossInput<'_>) -> usize {
    peak_bytes(true);
    cuda.loss(loss, input).unwrap();
    peak_bytes(false).unwrap_or(0)
}

/// The peak counter is one per process: the tests of this file take turns (cargo runs tests on
/// several threads).
static COUNTER: Mutex<()> = Mutex::new(());

/// Two backends on the emulator, the second with a stream budget of `budget` bytes; `None`
/// (having said why) without CUDA or on a real driver.
fn emulated_pair(budget: usize) -> Option<(CudaBackend, CudaBackend)> {
    let whole = cuda_or_skip()?;
    if peak_bytes(true).is_none() {
        println!("skipping: the loaded libcuda is not the emulator's (no peak counter)");
        return None;
    }
    let chunked = cuda_or_skip()?.with_stream_budget(budget);
    Some((whole, chunked))
}

/// `len` values in [-1, 1) with no two neighbours alike (`k` sets the pattern).
fn wave(len: usize, k: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * k % 101) as f32 / 50.0) - 1.0)
        .collect()
}

#[test]
fn quadruplet_chunks_drop_the_second_matrix() {
    // 8 KiB: chunks of 21 rows at N = 96, whose 36 KiB matrix is past it.
    let _turn = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some((whole, chunked)) = emulated_pair(8 << 10) else {
        return;
    };
    let (n, d) = (96, 8);
    let x = wave(n * d, 37);
    let labels: Vec<i64> = (0..n).map(|i| (i % 6) as i64).collect();
    let input = LossInput::from_slices(&x, n, d, &labels, None).unwrap();
    let matrix = n * n * 4;
    for distance in [Distance::SquaredEuclidean, Distance::Euclidean] {
        let loss = Loss::Quadruplet(QuadrupletConfig {
            metric: Metric::new(distance, true),
            mining: Mining::All,
            ..Default::default()
        });
        let (a, b) = (
            peak_of(&whole, &loss, &input),
            peak_of(&chunked, &loss, &input),
        );
        println!("{distance:?}: peak {a} B with a second matrix, {b} B in chunks");
        assert!(
            b + matrix * 3 / 4 <= a,
            "{distance:?}: {b} B in chunks vs {a} B"
        );
    }
}

#[test]
fn reference_sets_keep_one_matrix() {
    // 16 KiB: chunks of 6 rows of the 94 KiB N x M matrix.
    let _turn = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some((whole, chunked)) = emulated_pair(16 << 10) else {
        return;
    };
    let (n, m, d) = (40, 600, 4);
    let (x, r) = (wave(n * d, 37), wave(m * d, 53));
    let labels: Vec<i64> = (0..n).map(|i| (i % 5) as i64).collect();
    let ref_labels: Vec<i64> = (0..m).map(|j| (j % 6) as i64).collect();
    let input = LossInput::new(Embeddings::new(&x, n, d).unwrap(), &labels, None)
        .unwrap()
        .with_reference(ReferenceSet {
            embeddings: Embeddings::new(&r, m, d).unwrap(),
            labels: &ref_labels,
            self_index: None,
        })
        .unwrap();
    let matrix = n * m * 4;
    // The weights overwrite the distances: less than half a matrix beside the one.
    for kind in [
        LossKind::Contrastive,
        LossKind::LiftedStructure,
        LossKind::MultiSimilarity,
        LossKind::NTXent,
    ] {
        let peak = peak_of(&whole, &Loss::default_for(kind), &input);
        println!("{kind:?}: peak {peak} B, the N x M matrix {matrix} B");
        assert!(peak < matrix * 3 / 2, "{kind:?}: peak {peak} B");
    }
    let quad = Loss::default_for(LossKind::Quadruplet);
    let (a, b) = (
        peak_of(&whole, &quad, &input),
        peak_of(&chunked, &quad, &input),
    );
    println!("quadruplet: peak {a} B with a second matrix, {b} B in chunks");
    assert!(
        b + matrix * 3 / 4 <= a,
        "quadruplet: {b} B in chunks vs {a} B"
    );
}
