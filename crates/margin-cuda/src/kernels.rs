//! Kernel sources and their NVRTC compilation.
//!
//! The `.cu` files live in `shaders/cuda/` and are embedded with `include_str!`. NVRTC has no
//! include path for embedded text, so `common.cuh` is prepended to each file as text and all files
//! are concatenated into one program (one module per device). Compilation targets the device's
//! own architecture (`sm_XY`) and produces a CUBIN, so the driver never has to JIT newer PTX than
//! it understands; if the CUBIN cannot be had, the PTX is used instead.

use cudarc::nvrtc::{result as nvrtc_result, sys as nvrtc_sys};
use margin_core::{MarginError, Result};
use std::ffi::{CString, c_char};

/// Helpers shared by every kernel file.
pub const COMMON: &str = include_str!("../../../shaders/cuda/common.cuh");

/// Every kernel file, by name.
pub const SOURCES: &[(&str, &str)] = &[
    (
        "distance.cu",
        include_str!("../../../shaders/cuda/distance.cu"),
    ),
    ("chain.cu", include_str!("../../../shaders/cuda/chain.cu")),
    ("reduce.cu", include_str!("../../../shaders/cuda/reduce.cu")),
    (
        "pair_losses.cu",
        include_str!("../../../shaders/cuda/pair_losses.cu"),
    ),
    (
        "triplet.cu",
        include_str!("../../../shaders/cuda/triplet.cu"),
    ),
    (
        "quadruplet.cu",
        include_str!("../../../shaders/cuda/quadruplet.cu"),
    ),
    (
        "pml_losses.cu",
        include_str!("../../../shaders/cuda/pml_losses.cu"),
    ),
    (
        "quad_hard.cu",
        include_str!("../../../shaders/cuda/quad_hard.cu"),
    ),
    (
        "proxy_anchor.cu",
        include_str!("../../../shaders/cuda/proxy_anchor.cu"),
    ),
    (
        "proxy_softmax.cu",
        include_str!("../../../shaders/cuda/proxy_softmax.cu"),
    ),
];

/// Every `extern "C"` kernel the backend loads.
pub const KERNEL_NAMES: &[&str] = &[
    "pairwise_f32",
    "grad_gemm_f32",
    "normalize_rows_f32",
    "row_sqnorms_f32",
    "normalize_backward_f32",
    "chain_prep_f32",
    "div_by_dist_f32",
    "row_sums_f32",
    "col_sums_f32",
    "reduce_cols_f64",
    "safe_inverse_f64",
    "scan_blocks_u64",
    "add_offsets_u64",
    "fill_u64",
    "bitonic_step_u64",
    "decode_keys_f32",
    "contrastive_rows_f32",
    "lifted_lse_f32",
    "lifted_rows_f32",
    "npair_rows_f32",
    "triplet_center_rows_f32",
    "triplet_hard_rows_f32",
    "triplet_rows_f32",
    "triplet_rows_add_f32",
    "quad_pair_keys_f32",
    "quad_neg_pairs_f32",
    "quad_pos_pairs_f32",
    "quad_neg_rows_f32",
    "quad_pos_rows_f32",
    "multi_similarity_rows_f32",
    "circle_rows_f32",
    "ntxent_rows_f32",
    "supcon_rows_f32",
    "gen_lifted_rows_f32",
    "quad_hard_top2_f32",
    "quad_hard_class_f32",
    "quad_hard_rows_f32",
    "quad_hard_inplace_f32",
    "proxy_anchor_cols_f32",
    "proxy_softmax_rows_f32",
    "scale_by_stat_f32",
    // Reference sets (rectangular N x M forms of the kernels above).
    "chain_prep_rect_f32",
    "contrastive_ref_rows_f32",
    "lifted_lse_ref_f32",
    "lifted_ref_alias_f32",
    "lifted_ref_rows_f32",
    "triplet_hard_ref_rows_f32",
    "triplet_ref_rows_f32",
    "quad_pair_keys_ref_f32",
    "quad_neg_pairs_ref_f32",
    "quad_pos_pairs_ref_f32",
    "multi_similarity_ref_rows_f32",
    "circle_ref_rows_f32",
    "ntxent_ref_rows_f32",
    "supcon_ref_rows_f32",
    "gen_lifted_ref_rows_f32",
    "quad_hard_top2_ref_f32",
    "quad_hard_class_ref_f32",
    "quad_hard_rows_ref_f32",
];

/// `common.cuh` followed by one kernel file: a self-contained NVRTC program.
pub fn source_for(file_text: &str) -> String {
    format!("{COMMON}\n{file_text}")
}

/// `common.cuh` followed by every kernel file: the program the backend loads.
pub fn full_source() -> String {
    let mut s = String::from(COMMON);
    for (name, text) in SOURCES {
        s.push_str(&format!("\n// ---- {name} ----\n"));
        s.push_str(text);
    }
    s
}

/// True when `libnvrtc` can be loaded. cudarc panics on first use of a missing library, so this
/// is checked before every NVRTC call.
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names; no symbol is called.
    unsafe { nvrtc_sys::is_culib_present() }
}

/// The result of compiling one program.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The PTX text (always produced by NVRTC).
    pub ptx: String,
    /// The CUBIN, when compiled for a real architecture (`sm_XY`) and NVRTC returned one.
    pub cubin: Option<Vec<u8>>,
    /// NVRTC's log (warnings, and ptxas statistics when asked for).
    pub log: String,
}

/// Destroys the NVRTC program on every exit path.
struct ProgramGuard(nvrtc_sys::nvrtcProgram);

impl Drop for ProgramGuard {
    fn drop(&mut self) {
        // SAFETY: the program was created by create_program and is destroyed exactly once here.
        let _ = unsafe { nvrtc_result::destroy_program(self.0) };
    }
}

fn c_chars_to_string(raw: &[c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles `src` for `arch` (e.g. `"sm_90"`, or `"compute_90"` for PTX only). With
/// `ptxas_verbose` the log carries ptxas's register and spill report per kernel.
pub fn compile(src: &str, name: &str, arch: &str, ptxas_verbose: bool) -> Result<Compiled> {
    if !nvrtc_present() {
        return Err(MarginError::unavailable(
            "libnvrtc not found (install the CUDA toolkit or the nvidia-cuda-nvrtc wheel and add \
             its lib directory to LD_LIBRARY_PATH)",
        ));
    }
    let c_src = CString::new(src).map_err(|_| MarginError::device("kernel source contains NUL"))?;
    let c_name =
        CString::new(name).map_err(|_| MarginError::device("program name contains NUL"))?;
    let prog = nvrtc_result::create_program(&c_src, Some(&c_name))
        .map_err(|e| MarginError::device(format!("nvrtcCreateProgram: {e:?}")))?;
    let guard = ProgramGuard(prog);
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        "--fmad=true".to_string(),
    ];
    if ptxas_verbose {
        options.push("--ptxas-options=-v".to_string());
    }
    // SAFETY: `guard.0` is a live program created above; the options are valid C strings.
    let compiled = unsafe { nvrtc_result::compile_program(guard.0, &options) };
    // SAFETY: as above; the log exists after a compile attempt, successful or not.
    let log = unsafe { nvrtc_result::get_program_log(guard.0) }
        .map(|raw| c_chars_to_string(&raw))
        .unwrap_or_default();
    if let Err(e) = compiled {
        return Err(MarginError::device(format!(
            "NVRTC failed to compile {name} for {arch} ({e:?}):\n{log}"
        )));
    }
    // SAFETY: the program compiled successfully.
    let ptx = unsafe { nvrtc_result::get_ptx(guard.0) }
        .map(|raw| c_chars_to_string(&raw))
        .map_err(|e| MarginError::device(format!("nvrtcGetPTX: {e:?}")))?;
    let cubin = if arch.starts_with("sm_") {
        get_cubin(guard.0)
    } else {
        None
    };
    Ok(Compiled { ptx, cubin, log })
}

fn get_cubin(prog: nvrtc_sys::nvrtcProgram) -> Option<Vec<u8>> {
    let mut size = 0usize;
    // SAFETY: `prog` is a successfully compiled live program; `size` is a valid out pointer.
    let status = unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size) };
    if status != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS || size == 0 {
        return None;
    }
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` has exactly the size NVRTC reported for the CUBIN.
    let status = unsafe { nvrtc_sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr().cast::<c_char>()) };
    (status == nvrtc_sys::nvrtcResult::NVRTC_SUCCESS).then_some(buf)
}

/// NVRTC's version as `(major, minor)`, if the library is present.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    if !nvrtc_present() {
        return None;
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; both pointers are valid for writes.
    let status = unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) };
    (status == nvrtc_sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
}

/// Lines of an NVRTC log that report a warning or an error (the compile test fails on any).
pub fn diagnostic_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            lower.contains("warning") || lower.contains("error")
        })
        .collect()
}

/// The `.reg` declarations of each `.entry` in a PTX text: a rough register report when ptxas
/// statistics are not available.
pub fn ptx_register_summary(ptx: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in ptx.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix(".visible .entry ") {
            current = Some(rest.split('(').next().unwrap_or(rest).trim().to_string());
        } else if t.starts_with(".reg ")
            && let Some(name) = &current
        {
            out.push(format!("{name}: {t}"));
        }
    }
    out
}
