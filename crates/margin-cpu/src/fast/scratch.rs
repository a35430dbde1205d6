//! Scratch matrices reused across calls. A training loop calls the same loss at the same N every
//! step; allocating its `N x N` buffers anew each time costs a page fault per 4 KiB page (the
//! kernel zero-fills every page), measured at ~15% of a contrastive call at N = 2048. Buffers
//! go back to a small process-wide pool when dropped and are handed out again, already mapped.
//!
//! The contents of a taken buffer are unspecified (stale values from an earlier call): callers
//! overwrite every element before reading it.

use margin_core::{MarginError, Result};
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// The pool keeps at most this many bytes of idle buffers; larger leftovers are freed.
const POOL_MAX_BYTES: usize = 192 << 20;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of `len` floats borrowed from the pool (its backing vector may be longer).
pub(crate) struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

/// A buffer of `len` floats with unspecified contents, or `OutOfMemory`.
pub(crate) fn take(len: usize, what: &str) -> Result<Scratch> {
    if len == 0 {
        return Ok(Scratch {
            buf: Vec::new(),
            len: 0,
        });
    }
    let pooled = {
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        // The smallest idle buffer that is large enough.
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.len() >= len)
            .min_by_key(|(_, v)| v.len())
            .map(|(i, _)| i);
        best.map(|i| pool.swap_remove(i))
    };
    let buf = match pooled {
        Some(v) => v,
        None => {
            let mut v = Vec::new();
            v.try_reserve_exact(len).map_err(|_| {
                MarginError::OutOfMemory(format!("cannot allocate {len} floats for {what}"))
            })?;
            advise_huge_pages(&mut v);
            v.resize(len, 0.0);
            v
        }
    };
    Ok(Scratch { buf, len })
}

/// Asks Linux to back a large buffer with transparent huge pages (where THP is in `madvise`
/// mode, the common default). The row kernels and the fused transpose touch rows `4N` bytes
/// apart; with 4 KiB pages every such row is its own TLB entry, and the page walks measured at
/// a third of the merge pass at N = 2048. Best effort: failure changes nothing.
fn advise_huge_pages(v: &mut Vec<f32>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = v.capacity() * 4;
        if bytes >= 2 * HUGE {
            let start = v.as_mut_ptr() as usize;
            let aligned = start.div_ceil(HUGE) * HUGE;
            let len = (start + bytes - aligned) / HUGE * HUGE;
            // SAFETY: [aligned, aligned + len) lies inside the vector's own allocation (its
            // capacity, not yet written); MADV_HUGEPAGE only changes how the kernel backs those
            // pages, never their contents or validity, and its result is ignored.
            unsafe {
                libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        let held: usize = pool.iter().map(|v| v.len() * 4).sum();
        if held + buf.len() * 4 <= POOL_MAX_BYTES {
            pool.push(buf);
        } else if let Some((i, _)) =
            pool.iter()
                .enumerate()
                .min_by_key(|(_, v)| v.len())
                .filter(|(_, v)| {
                    v.len() < buf.len() && held - v.len() * 4 + buf.len() * 4 <= POOL_MAX_BYTES
                })
        {
            // Prefer keeping the larger buffer: the next call is most likely the same size.
            pool[i] = buf;
        }
    }
}
