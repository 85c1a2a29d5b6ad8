//! Buffers kept for reuse: the process-wide pool of large output buffers and each
//! thread's scratch buffers.

use crate::float::Float;
use ndarray::ArrayD;

/// `n` zeros whose memory is written now. `vec![0; n]` may come from `calloc`, whose
/// untouched pages all map the kernel's shared zero page on a first read; the first write
/// after that read then takes a copy-on-write fault and a TLB shootdown across every
/// thread (about 10 % of a VGG16 DeepLIFT call before this). Arrays that are accumulated
/// into (`+=`, scatter-adds) start from this instead.
pub(crate) fn written_zeros<F: Float>(n: usize) -> Vec<F> {
    if let Some(mut v) = take_recycled(n) {
        v.fill(F::zero());
        return v;
    }
    let mut v = Vec::with_capacity(n);
    // black_box keeps the allocation and fill from being folded back into `calloc`
    v.resize(n, std::hint::black_box(F::zero()));
    v
}

/// Buffers of recorded activations, handed back when a call is done with its trace and
/// handed out again for layer outputs, so that the next call writes into memory that is
/// already mapped: a fresh allocation takes a page fault on every 4 KiB page it touches
/// (`perf stat`: about 8 000 per VGG16 LRP-ε call before this, and about as many per plain
/// forward pass, roughly 5 to 10 % of their time on the VMs we measured). The forward pass
/// recycles each activation once the next layer has consumed it.
/// Process-wide, of any float type, at most [`RECYCLE_MAX_BYTES`] in all;
/// [`crate::release_buffers`] empties it.
static RECYCLED: std::sync::Mutex<Vec<(usize, Box<dyn std::any::Any + Send>)>> =
    std::sync::Mutex::new(Vec::new());

/// Buffers shorter than this (elements) are not kept: the allocator reuses small blocks.
const RECYCLE_MIN: usize = 1 << 16;

/// The most memory the recycled buffers may hold (256 MiB: two traces of one 224×224
/// image through VGG16).
pub(crate) const RECYCLE_MAX_BYTES: usize = 1 << 28;

/// A vector of `len` elements **whose values are unspecified** (a recycled buffer keeps
/// its old values): only for outputs that are then overwritten in full.
pub(crate) fn output_buffer<F: Float>(len: usize) -> Vec<F> {
    take_recycled(len).unwrap_or_else(|| vec![F::zero(); len])
}

/// A recycled buffer of `len` elements (old values), if one of a fitting size is kept.
fn take_recycled<F: Float>(len: usize) -> Option<Vec<F>> {
    if len >= RECYCLE_MIN {
        if let Ok(mut pool) = RECYCLED.lock() {
            // the smallest buffer that fits, and not more than twice as large
            let fits = pool
                .iter()
                .enumerate()
                .filter_map(|(i, (_, b))| b.downcast_ref::<Vec<F>>().map(|v| (i, v.capacity())))
                .filter(|&(_, cap)| cap >= len && cap <= 2 * len)
                .min_by_key(|&(_, cap)| cap);
            if let Some((i, _)) = fits {
                let (_, b) = pool.swap_remove(i);
                if let Ok(v) = b.downcast::<Vec<F>>() {
                    let mut v = *v;
                    v.truncate(len);
                    v.resize(len, F::zero());
                    return Some(v);
                }
            }
        }
    }
    None
}

/// Keeps the buffer of `a` for [`output_buffer`], if it is large and there is room.
pub(crate) fn recycle<F: Float>(a: ArrayD<F>) {
    let (v, _) = a.into_raw_vec_and_offset();
    let bytes = v.capacity() * std::mem::size_of::<F>();
    if v.capacity() < RECYCLE_MIN {
        return;
    }
    if let Ok(mut pool) = RECYCLED.lock() {
        let held: usize = pool.iter().map(|(b, _)| b).sum();
        if held + bytes <= RECYCLE_MAX_BYTES {
            pool.push((bytes, Box::new(v)));
        }
    }
}

/// Frees every recycled buffer.
pub(crate) fn release_recycled() {
    if let Ok(mut pool) = RECYCLED.lock() {
        pool.clear();
    }
}

thread_local! {
    /// Per-thread scratch buffers, reused across calls so that large temporaries (im2col
    /// matrices) are not returned to and re-faulted from the OS on every layer.
    static SCRATCH: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` elements, taken from (and returned to) this
/// thread's pool. Its contents are unspecified (left over from earlier use): `f` must
/// write every element it later reads. Not zeroing saves a pass over what can be a
/// hundred megabytes (the im2col matrix of a VGG16 layer).
pub(crate) fn with_scratch<F: Float, R>(len: usize, f: impl FnOnce(&mut [F]) -> R) -> R {
    // the smallest buffer that is large enough, else the largest (which then grows)
    let taken = SCRATCH.with(|pool| {
        let mut pool = pool.borrow_mut();
        let size = |b: &Box<dyn std::any::Any>| b.downcast_ref::<Vec<F>>().map(Vec::len);
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
    let out = f(&mut buf[..len]);
    // keep at most a few buffers per thread
    SCRATCH.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < 4 {
            pool.push(Box::new(buf));
        }
    });
    out
}
