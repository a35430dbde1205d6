//! Loading NVRTC programs into a CUDA context, with an on-disk cache of their CUBINs.
//!
//! NVRTC takes seconds of CPU time to compile the loss program (about 4 s for sm_90 on a small
//! CPU), and every process pays it once per architecture: a CLI call per fixture, a test binary
//! per suite. The CUBIN is therefore also kept on disk, named by a hash of the program text, the
//! architecture, the compile options and the NVRTC version, so a later process loads it in
//! milliseconds. The cache is best effort: any I/O error, a truncated file or a CUBIN the driver
//! rejects falls back to compiling (and loading the PTX when the CUBIN still fails).
//!
//! Where: `$MARGIN_CUDA_CACHE_DIR` (empty: no disk cache), else `$XDG_CACHE_HOME/margin/cuda`,
//! else `$HOME/.cache/margin/cuda`.

use crate::device::dev_err;
use crate::kernels::{self, Compiled};
use cudarc::driver::{CudaContext, CudaModule};
use cudarc::nvrtc::Ptx;
use margin_core::Result;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Compiled programs of one source by architecture, kept for the life of the process.
pub(crate) type Memo = Mutex<HashMap<String, Arc<Compiled>>>;

/// The options `kernels::compile` passes without ptxas statistics; part of the cache key.
const OPTIONS_TAG: &str = "--std=c++17 --fmad=true";

/// First bytes of a cache file; the CUBIN's length follows (u64, little endian), then the CUBIN.
const MAGIC: &[u8; 8] = b"MGCUBIN1";

/// Loads the program `src` (named `name` in NVRTC's messages) into `ctx`, compiled for `arch`:
/// from `memo` when this process compiled it already, else from the disk cache, else by NVRTC.
pub(crate) fn load_program(
    ctx: &Arc<CudaContext>,
    memo: &Memo,
    src: &str,
    name: &str,
    arch: &str,
) -> Result<Arc<CudaModule>> {
    if let Some(c) = memo.lock().ok().and_then(|m| m.get(arch).cloned()) {
        return module_from(ctx, &c);
    }
    let dir = cache_dir();
    let file = dir.as_deref().and_then(|d| file_for(d, src, name, arch));
    if let Some(cubin) = file.as_deref().and_then(read_cubin)
        && let Ok(module) = ctx.load_module(Ptx::from_binary(cubin.clone()))
    {
        remember(
            memo,
            arch,
            Compiled {
                ptx: String::new(),
                cubin: Some(cubin),
                log: String::new(),
            },
        );
        return Ok(module);
    }
    let compiled = kernels::compile(src, name, arch, false)?;
    if let (Some(path), Some(cubin)) = (&file, &compiled.cubin) {
        write_cubin(path, cubin);
    }
    let compiled = remember(memo, arch, compiled);
    module_from(ctx, &compiled)
}

fn remember(memo: &Memo, arch: &str, compiled: Compiled) -> Arc<Compiled> {
    let compiled = Arc::new(compiled);
    if let Ok(mut m) = memo.lock() {
        m.insert(arch.to_string(), compiled.clone());
    }
    compiled
}

/// The CUBIN when there is one and the driver takes it, else the PTX.
fn module_from(ctx: &Arc<CudaContext>, compiled: &Compiled) -> Result<Arc<CudaModule>> {
    match &compiled.cubin {
        Some(cubin) if compiled.ptx.is_empty() => ctx.load_module(Ptx::from_binary(cubin.clone())),
        Some(cubin) => ctx
            .load_module(Ptx::from_binary(cubin.clone()))
            .or_else(|_| ctx.load_module(Ptx::from_src(compiled.ptx.clone()))),
        None => ctx.load_module(Ptx::from_src(compiled.ptx.clone())),
    }
    .map_err(dev_err)
}

/// The cache directory, or `None` when disabled or when there is no home.
fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MARGIN_CUDA_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("margin").join("cuda"))
}

/// The cache file of a program in `dir` (needs libnvrtc's version for the key).
fn file_for(dir: &Path, src: &str, name: &str, arch: &str) -> Option<PathBuf> {
    let version = kernels::nvrtc_version()?;
    Some(dir.join(file_name(src, name, arch, version)))
}

/// `<name>-<arch>-<128-bit hash>.cubin`; the hash covers everything that changes the CUBIN.
fn file_name(src: &str, name: &str, arch: &str, version: (i32, i32)) -> String {
    let digest = |seed: u64| {
        let mut h = DefaultHasher::new();
        (seed, src, name, arch, OPTIONS_TAG, version).hash(&mut h);
        h.finish()
    };
    let stem: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{stem}-{arch}-{:016x}{:016x}.cubin", digest(1), digest(2))
}

/// The CUBIN stored at `path`, if the file is whole.
fn read_cubin(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (len, cubin) = rest.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    (len == cubin.len() && len > 0).then(|| cubin.to_vec())
}

/// Stores `cubin` at `path` through a temporary file and a rename, so that concurrent processes
/// never read a partial file. Errors are ignored: the cache only saves time.
fn write_cubin(path: &Path, cubin: &[u8]) {
    let Some(dir) = path.parent() else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + cubin.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(cubin.len() as u64).to_le_bytes());
    bytes.extend_from_slice(cubin);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, &bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("margin-cuda-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keys_separate_programs_architectures_and_versions() {
        let a = file_name("src", "margin.cu", "sm_90", (13, 0));
        assert!(a.starts_with("margin_cu-sm_90-") && a.ends_with(".cubin"));
        assert_eq!(a, file_name("src", "margin.cu", "sm_90", (13, 0)));
        assert_ne!(a, file_name("src2", "margin.cu", "sm_90", (13, 0)));
        assert_ne!(a, file_name("src", "margin.cu", "sm_80", (13, 0)));
        assert_ne!(a, file_name("src", "margin.cu", "sm_90", (12, 8)));
        assert_ne!(a, file_name("src", "knn.cu", "sm_90", (13, 0)));
    }

    #[test]
    fn round_trip_and_damaged_files() {
        let dir = scratch_dir("rt");
        let path = dir.join(file_name("src", "margin.cu", "sm_90", (13, 0)));
        assert_eq!(read_cubin(&path), None);
        let cubin: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        write_cubin(&path, &cubin);
        assert_eq!(read_cubin(&path).as_deref(), Some(cubin.as_slice()));
        // Truncated, foreign or empty files are misses, never errors.
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
        assert_eq!(read_cubin(&path), None);
        std::fs::write(&path, b"not a cubin").unwrap();
        assert_eq!(read_cubin(&path), None);
        write_cubin(&path, &[]);
        assert_eq!(read_cubin(&path), None);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(names, vec![path]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
