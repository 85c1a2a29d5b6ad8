//! The buffer pool: large buffers kept for reuse across calls, and each thread's scratch
//! buffers.
//!
//! A fresh allocation takes a page fault on every 4 KiB page it touches (`perf stat`: about
//! 8 000 per VGG16 LRP-ε call, and about as many per plain forward pass, roughly 5 to 10 % of
//! their time on the VMs we measured). So the arrays a call is done with (a forward pass's
//! spent values, an attribution's trace, a rule's temporaries) go back to a pool, and the
//! next layer output is written into memory that is already mapped.
//!
//! # Contract
//!
//! * **A taker may assume nothing about the contents.** [`output_buffer`] and
//!   [`with_scratch`] hand out memory that holds whatever its last user left in it. The taker
//!   must write every element before it reads it. [`written_zeros`] is the one taker that
//!   gets zeros (it writes them).
//! * **Only the owner recycles, and only what the crate allocated for itself.** [`recycle`]
//!   takes the array by value, so whoever hands it back owns it and nothing can read it
//!   afterwards. The crate recycles the arrays it made for its own use once it is done with
//!   them: a forward pass's values after their last consumer has run, the trace of an
//!   attribution call when the call returns, a rule's or a convolution's spent
//!   temporaries. It never recycles an array it has returned to the caller.
//! * **Thread safety.** The pool is process-wide behind a mutex: any thread may take or
//!   recycle, and a buffer recycled on one thread may serve another. Scratch buffers belong
//!   to one thread and never cross threads.
//! * **Bounds.** Buffers shorter than [`RECYCLE_MIN`] elements are not kept (the allocator
//!   reuses small blocks well). The pool holds at most [`RECYCLE_MAX_BYTES`] (256 MiB); a
//!   buffer that would go beyond it is freed. A request takes the smallest buffer that
//!   fits; if none fits, the largest grows to the request (a fresh allocation would leave it
//!   idle beside the new one, and the process would hold both). Each thread keeps at most [`SCRATCH_MAX`] scratch buffers.
//! * **Release.** [`release_buffers`] frees the pool and the scratch buffers of the calling
//!   thread and of the `parallel` feature's worker threads.
//! * **Violations show in tests.** In debug builds (which `cargo test` makes) every buffer
//!   [`output_buffer`] or [`with_scratch`] hands out is first filled with NaN, recycled or
//!   fresh. A taker that reads an element before writing it then computes NaN, which the
//!   fixture tests (a NaN is never within a bound) and the crate's finiteness checks catch.
//!   Release builds skip the fill.
//!
//! [`buffer_stats`] counts what the pool kept and handed out again;
//! `tests/suite/recycling.rs` reads it to prove that a second call reuses the first call's
//! buffers.

use crate::float::Float;
use ndarray::ArrayD;
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Buffers shorter than this (elements) are not kept.
pub(crate) const RECYCLE_MIN: usize = 1 << 16;

/// The most memory the pool may hold (256 MiB: two traces of one 224×224 image through
/// VGG16).
pub(crate) const RECYCLE_MAX_BYTES: usize = 1 << 28;

/// The most scratch buffers one thread keeps.
pub(crate) const SCRATCH_MAX: usize = 4;

/// The pool: `(bytes, Vec<F>)` of any float type.
static POOL: Mutex<Vec<(usize, Box<dyn Any + Send>)>> = Mutex::new(Vec::new());

/// Buffers the pool has kept ([`recycle`]) and handed out again, since the process started.
static KEPT: AtomicU64 = AtomicU64::new(0);
static REUSED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's scratch buffers, reused across calls so that large temporaries (im2col
    /// matrices) are not returned to and re-faulted from the OS on every layer.
    static SCRATCH: std::cell::RefCell<Vec<Box<dyn Any>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What the buffer pool has done since the process started, and what it holds now.
///
/// The pool is process-wide: the counts include every thread's calls.
///
/// ```
/// let before = relevance::buffer_stats();
/// // ... attribution calls ...
/// let after = relevance::buffer_stats();
/// assert!(after.reused >= before.reused && after.kept >= before.kept);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BufferStats {
    /// Buffers the pool accepted when a call was done with them.
    pub kept: u64,
    /// Buffers handed out again for a later array.
    pub reused: u64,
    /// The bytes the pool holds now (at most 256 MiB).
    pub held_bytes: usize,
}

/// The buffer pool's counters and size (see [`release_buffers`] for what it keeps).
pub fn buffer_stats() -> BufferStats {
    let held_bytes = POOL
        .lock()
        .map_or(0, |pool| pool.iter().map(|(bytes, _)| bytes).sum());
    BufferStats {
        kept: KEPT.load(Ordering::Relaxed),
        reused: REUSED.load(Ordering::Relaxed),
        held_bytes,
    }
}

/// Frees the buffers the crate keeps for reuse.
///
/// When an attribution call is done with the activations it recorded, their buffers (of
/// at least 64 Ki elements) are kept, up to 256 MiB in all for the whole process, and the
/// next call writes its layer outputs into them: memory that is already mapped costs no
/// page faults, which otherwise take 5 to 10 % of an attribution of a large image. Call
/// this after the last attribution if that memory is wanted back; later calls simply
/// allocate afresh. The scratch buffers of the calling thread and of the worker threads
/// (feature `parallel`) are freed too.
///
/// ```
/// relevance::release_buffers();
/// assert_eq!(relevance::buffer_stats().held_bytes, 0);
/// ```
pub fn release_buffers() {
    if let Ok(mut pool) = POOL.lock() {
        pool.clear();
    }
    let clear = || SCRATCH.with(|s| s.borrow_mut().clear());
    clear();
    #[cfg(feature = "parallel")]
    rayon::broadcast(|_| clear());
}

/// In debug builds, fills a buffer that is handed out with NaN (see the module's contract).
#[inline]
fn poison<F: Float>(buf: &mut [F]) {
    if cfg!(debug_assertions) {
        buf.fill(F::nan());
    }
}

/// A vector of `len` elements **whose values are unspecified** (NaN in debug builds): only
/// for outputs that are then overwritten in full.
pub(crate) fn output_buffer<F: Float>(len: usize) -> Vec<F> {
    let mut v = match take_recycled(len) {
        Some(mut v) => {
            // the old values stay; only elements past the buffer's old length are written
            v.truncate(len);
            v.resize(len, F::zero());
            v
        }
        None => vec![F::zero(); len],
    };
    poison(&mut v);
    v
}

/// An empty vector with room for `len` elements (a recycled buffer, if one fits): for
/// outputs written front to back by `push`/`extend`, which then need no zero fill.
pub(crate) fn output_vec<F: Float>(len: usize) -> Vec<F> {
    match take_recycled(len) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(len),
    }
}

/// An owned copy of `a` in standard layout, in a recycled buffer if one fits: the
/// pool's `to_owned`, for the copies a backward pass makes of its large arrays (an
/// ndarray `to_owned` would allocate afresh while the pool holds spent buffers of the same
/// size, and the process would hold both).
pub(crate) fn copied<F: Float, D: ndarray::Dimension>(
    a: &ndarray::ArrayView<'_, F, D>,
) -> ndarray::Array<F, D> {
    let mut v = output_vec(a.len());
    match a.as_slice() {
        Some(s) => v.extend_from_slice(s),
        None => v.extend(a.iter().copied()),
    }
    crate::tensor::layout::shaped(a.raw_dim(), v)
}

/// `n` zeros whose memory is written now. `vec![0; n]` may come from `calloc`, whose
/// untouched pages all map the kernel's shared zero page on a first read; the first write
/// after that read then takes a copy-on-write fault and a TLB shootdown across every
/// thread (about 10 % of a VGG16 DeepLIFT call before this). Arrays that are accumulated
/// into (`+=`, scatter-adds) start from this instead.
pub(crate) fn written_zeros<F: Float>(n: usize) -> Vec<F> {
    if let Some(mut v) = take_recycled(n) {
        v.clear();
        v.resize(n, F::zero());
        return v;
    }
    let mut v = Vec::with_capacity(n);
    // black_box keeps the allocation and fill from being folded back into `calloc`
    v.resize(n, std::hint::black_box(F::zero()));
    v
}

/// A pooled buffer with room for `len` elements (its old values and length, which the
/// caller sets: [`output_buffer`] keeps the values, [`output_vec`] clears them, and neither
/// pays for a fill the other does not need), if one of a fitting size is kept.
fn take_recycled<F: Float>(len: usize) -> Option<Vec<F>> {
    if len < RECYCLE_MIN {
        return None;
    }
    let mut pool = POOL.lock().ok()?;
    let caps: Vec<(usize, usize)> = pool
        .iter()
        .enumerate()
        .filter_map(|(i, (_, b))| b.downcast_ref::<Vec<F>>().map(|v| (i, v.capacity())))
        .collect();
    let i = caps[choose(caps.iter().map(|&(_, cap)| cap), len)?].0;
    let (_, b) = pool.swap_remove(i);
    drop(pool);
    let mut v = *b.downcast::<Vec<F>>().ok()?;
    REUSED.fetch_add(1, Ordering::Relaxed);
    if v.capacity() < len {
        v.clear();
        v.reserve_exact(len);
    }
    Some(v)
}

/// Which of buffers of capacities `caps` serves a request of `len` elements (its position):
/// the smallest that fits; if none does, the largest, which then grows (a fresh allocation
/// would leave it idle, and resident, beside the new one).
fn choose(caps: impl Iterator<Item = usize> + Clone, len: usize) -> Option<usize> {
    let fits = caps
        .clone()
        .enumerate()
        .filter(|&(_, cap)| cap >= len)
        .min_by_key(|&(_, cap)| cap);
    fits.or_else(|| caps.enumerate().max_by_key(|&(_, cap)| cap))
        .map(|(i, _)| i)
}

/// Hands the buffer of `a` to the pool, if it is large and there is room (see the
/// module's contract: only arrays the crate made for itself and is done with).
pub(crate) fn recycle<F: Float>(a: ArrayD<F>) {
    let (v, _) = a.into_raw_vec_and_offset();
    if v.capacity() < RECYCLE_MIN {
        return;
    }
    let bytes = v.capacity() * std::mem::size_of::<F>();
    if let Ok(mut pool) = POOL.lock() {
        let held: usize = pool.iter().map(|(b, _)| b).sum();
        if held + bytes <= RECYCLE_MAX_BYTES {
            pool.push((bytes, Box::new(v)));
            KEPT.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `f` on a scratch slice of `len` elements, taken from (and returned to) this
/// thread's scratch buffers. Its contents are unspecified (left over from earlier use; NaN
/// in debug builds): `f` must write every element it later reads. Not zeroing saves a pass
/// over what can be a hundred megabytes (the im2col matrix of a VGG16 layer).
pub(crate) fn with_scratch<F: Float, R>(len: usize, f: impl FnOnce(&mut [F]) -> R) -> R {
    // the smallest buffer that is large enough, else the largest (which then grows)
    let taken = SCRATCH.with(|pool| {
        let mut pool = pool.borrow_mut();
        let size = |b: &Box<dyn Any>| b.downcast_ref::<Vec<F>>().map(Vec::len);
        let fits = (0..pool.len())
            .filter(|&i| size(&pool[i]).is_some_and(|s| s >= len))
            .min_by_key(|&i| size(&pool[i]));
        let at = fits.or_else(|| {
            (0..pool.len())
                .filter(|&i| size(&pool[i]).is_some())
                .max_by_key(|&i| size(&pool[i]))
        })?;
        pool.swap_remove(at).downcast::<Vec<F>>().ok()
    });
    let mut buf = taken.map_or_else(Vec::new, |b| *b);
    if buf.len() < len {
        buf.resize(len, F::zero());
    }
    poison(&mut buf[..len]);
    let out = f(&mut buf[..len]);
    SCRATCH.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < SCRATCH_MAX {
            pool.push(Box::new(buf));
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_takes_the_smallest_fit_else_grows_the_largest() {
        let caps = [300, 100, 200, 150];
        let pick = |len| choose(caps.iter().copied(), len);
        assert_eq!(pick(120), Some(3)); // 150: the smallest that fits
        assert_eq!(pick(100), Some(1)); // an exact fit
        assert_eq!(pick(250), Some(0)); // 300, though more than twice as large
        assert_eq!(pick(400), Some(0)); // none fits: the largest grows
        assert_eq!(choose(std::iter::empty(), 10), None);
    }

    #[test]
    fn handed_out_buffers_are_poisoned_in_debug_builds() {
        let v = output_buffer::<f64>(10);
        assert_eq!(v.len(), 10);
        assert!(v.iter().all(|x| x.is_nan()) == cfg!(debug_assertions));
        with_scratch::<f32, _>(7, |s| {
            assert!(s.iter().all(|x| x.is_nan()) == cfg!(debug_assertions));
        });
        assert!(written_zeros::<f32>(RECYCLE_MIN).iter().all(|&x| x == 0.0));
    }
}
