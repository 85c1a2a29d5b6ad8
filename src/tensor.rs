//! Small array helpers shared by layers and rules: finiteness and shape checks, the
//! sign-aware stabiliser, per-channel bias broadcasting and sign clamps.

use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, Zip};

/// Returns an error naming `what` if `a` holds a NaN or an infinity.
pub(crate) fn check_finite<F: Float>(what: &str, a: &ArrayViewD<'_, F>) -> Result<()> {
    match a.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            what: what.to_string(),
            index,
            value: a.iter().nth(index).map_or(f64::NAN, |v| v.as_f64()),
        }),
    }
}

/// Checks that `a` has the shape `[batch, sample_shape...]` for some batch size ≥ 1.
pub(crate) fn check_batch_shape<F>(what: &str, a: &ArrayViewD<'_, F>, sample_shape: &[usize]) -> Result<()> {
    if a.ndim() != sample_shape.len() + 1 {
        return Err(Error::Rank {
            what: what.to_string(),
            expected: sample_shape.len() + 1,
            got: a.ndim(),
            shape: a.shape().to_vec(),
        });
    }
    if &a.shape()[1..] != sample_shape {
        let mut expected = vec![a.shape()[0]];
        expected.extend_from_slice(sample_shape);
        return Err(Error::Shape {
            what: what.to_string(),
            expected,
            got: a.shape().to_vec(),
        });
    }
    if a.shape()[0] == 0 {
        return Err(Error::EmptyBatch);
    }
    Ok(())
}

/// The stabilised denominator `z + ε·sign₀(z)` with sign₀(0) = +1.
///
/// This is zennit's `Stabilizer` (`zennit/core.py`, `sign = (z == 0) + sign(z)`), which
/// captum (`_utils/lrp_rules.py`) and iNNvestigate share. With ε = 0 the value is `z`
/// itself; the caller decides what to do where it is exactly zero.
#[inline]
pub(crate) fn stabilise<F: Float>(z: F, eps: F) -> F {
    if z >= F::zero() {
        z + eps
    } else {
        z - eps
    }
}

/// The per-sample part of a batch array's shape (all but the first axis; empty for a 0-d
/// array, whose shape checks then fail with a typed error).
pub(crate) fn per_sample(shape: &[usize]) -> &[usize] {
    shape.get(1..).unwrap_or_default()
}

/// `R / stabilise(z, ε)`, with 0 where the stabilised denominator is exactly zero (only
/// possible for ε = 0), so that LRP-0 never produces NaN.
#[inline]
pub(crate) fn safe_ratio<F: Float>(r: F, z: F, eps: F) -> F {
    let d = stabilise(z, eps);
    if d == F::zero() {
        F::zero()
    } else {
        r / d
    }
}

/// Elements from which an elementwise pass runs on several threads (feature `parallel`):
/// only the largest arrays (VGG16's first layers), where two cores move memory faster than
/// one; below it the task overhead and concurrent page faults cost more than they save.
/// Elementwise results do not depend on the thread count.
#[cfg(feature = "parallel")]
pub(crate) const PAR_ELEMS: usize = 1 << 20;

/// Whether an elementwise pass over `len` elements runs in parallel.
#[inline]
pub(crate) fn par_elems(len: usize) -> bool {
    #[cfg(feature = "parallel")]
    return len >= PAR_ELEMS && rayon::current_num_threads() > 1;
    #[cfg(not(feature = "parallel"))]
    {
        let _ = len;
        false
    }
}

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

/// `f(a, b, c)` elementwise into a new array; `a`, `b`, `c` have one shape.
pub(crate) fn map3<F: Float>(
    a: &ArrayViewD<'_, F>,
    b: &ArrayViewD<'_, F>,
    c: &ArrayViewD<'_, F>,
    f: impl Fn(F, F, F) -> F + Sync + Send,
) -> ArrayD<F> {
    // every element is written
    let mut out =
        ArrayD::from_shape_vec(a.raw_dim(), output_buffer(a.len())).expect("length matches the shape");
    if let (Some(sa), Some(sb), Some(sc)) = (a.as_slice(), b.as_slice(), c.as_slice()) {
        // contiguous: plain slice loops, which the compiler vectorises
        let so = out.as_slice_mut().expect("fresh array is contiguous");
        #[allow(clippy::type_complexity)]
        let run = |(o, ((a, b), c)): (&mut [F], ((&[F], &[F]), &[F]))| {
            for (o, ((&a, &b), &c)) in o.iter_mut().zip(a.iter().zip(b).zip(c)) {
                *o = f(a, b, c);
            }
        };
        #[cfg(feature = "parallel")]
        if par_elems(so.len()) {
            use rayon::prelude::*;
            const CHUNK: usize = 1 << 14;
            so.par_chunks_mut(CHUNK)
                .zip(
                    sa.par_chunks(CHUNK)
                        .zip(sb.par_chunks(CHUNK))
                        .zip(sc.par_chunks(CHUNK)),
                )
                .for_each(run);
            return out;
        }
        run((so, ((sa, sb), sc)));
        return out;
    }
    let zip = Zip::from(&mut out).and(a).and(b).and(c);
    #[cfg(feature = "parallel")]
    if par_elems(a.len()) {
        zip.par_for_each(|o, &a, &b, &c| *o = f(a, b, c));
        return out;
    }
    zip.for_each(|o, &a, &b, &c| *o = f(a, b, c));
    out
}

/// `f(&mut a, b)` elementwise; `a` and `b` have one shape.
pub(crate) fn update2<F: Float>(
    a: &mut ArrayD<F>,
    b: &ArrayViewD<'_, F>,
    f: impl Fn(&mut F, F) + Sync + Send,
) {
    let big = par_elems(a.len());
    let zip = Zip::from(a).and(b);
    #[cfg(feature = "parallel")]
    if big {
        return zip.par_for_each(|a, &b| f(a, b));
    }
    let _ = big;
    zip.for_each(|a, &b| f(a, b))
}

/// `f(&mut a, b, c)` elementwise; `a`, `b`, `c` have one shape.
pub(crate) fn update3<F: Float>(
    a: &mut ArrayD<F>,
    b: &ArrayViewD<'_, F>,
    c: &ArrayViewD<'_, F>,
    f: impl Fn(&mut F, F, F) + Sync + Send,
) {
    let big = par_elems(a.len());
    let zip = Zip::from(a).and(b).and(c);
    #[cfg(feature = "parallel")]
    if big {
        return zip.par_for_each(|a, &b, &c| f(a, b, c));
    }
    let _ = big;
    zip.for_each(|a, &b, &c| f(a, b, c))
}

/// Adds a per-channel bias along axis 1 (dense `[N, out]` and conv `[N, C, H, W]` alike).
pub(crate) fn add_channel_bias<F: Float>(out: &mut ArrayD<F>, bias: ArrayView1<'_, F>) {
    let c = bias.len();
    let inner = out.shape().iter().skip(2).product::<usize>();
    if out.ndim() >= 2 && out.shape()[1] == c && c > 0 && !par_elems(out.len()) {
        if let (Some(buf), Some(b)) = (out.as_slice_mut(), bias.as_slice()) {
            // contiguous: whole rows (dense) or whole planes (convolutions) at a time
            if inner == 1 {
                for row in buf.chunks_exact_mut(c) {
                    for (v, &b) in row.iter_mut().zip(b) {
                        *v += b;
                    }
                }
            } else {
                for (k, plane) in buf.chunks_exact_mut(inner).enumerate() {
                    let b = b[k % c];
                    for v in plane {
                        *v += b;
                    }
                }
            }
            return;
        }
    }
    #[cfg(feature = "parallel")]
    if par_elems(out.len()) {
        for mut lane in out.axis_iter_mut(Axis(0)) {
            Zip::from(lane.axis_iter_mut(Axis(0)))
                .and(&bias)
                .par_for_each(|mut chan, &b| chan.mapv_inplace(|v| v + b));
        }
        return;
    }
    for mut lane in out.axis_iter_mut(Axis(0)) {
        for (mut chan, &b) in lane.axis_iter_mut(Axis(0)).zip(bias.iter()) {
            chan.mapv_inplace(|v| v + b);
        }
    }
}

/// Elementwise `max(x, 0)`.
pub(crate) fn positive<F: Float>(a: &ArrayViewD<'_, F>) -> ArrayD<F> {
    a.mapv(|v| if v > F::zero() { v } else { F::zero() })
}

/// Elementwise `min(x, 0)`.
pub(crate) fn negative<F: Float>(a: &ArrayViewD<'_, F>) -> ArrayD<F> {
    a.mapv(|v| if v < F::zero() { v } else { F::zero() })
}

/// Sum over all axes but the first: one value per sample.
pub(crate) fn per_sample_sum<F: Float>(a: &ArrayViewD<'_, F>) -> ndarray::Array1<F> {
    a.axis_iter(Axis(0)).map(|s| s.sum()).collect()
}

/// Work (multiply-adds) below which a matrix product is not split across threads.
#[cfg(feature = "parallel")]
const PAR_GEMM_WORK: usize = 1 << 21;

/// Work per sample (multiply-adds) from which a layer's matrix products go through faer
/// (feature `faer`). Below it matrixmultiply is faster: faer's fixed cost per call
/// dominates small products.
#[cfg(feature = "faer")]
const FAER_WORK: usize = 1 << 20;

/// `c = a · b` (`c` is overwritten, never read) for a layer doing `per_sample` multiply-adds
/// per sample; see [`gemm_acc`].
pub(crate) fn gemm<F: Float>(
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    per_sample: usize,
) {
    gemm_acc(a, b, c, per_sample, false)
}

/// `c = a · b`, or `c += a · b` if `accumulate`, for a layer doing `per_sample` multiply-adds
/// per sample. Layers with much work per sample (feature `faer`) go through faer's matrix
/// product, parallel over the `parallel` feature's threads; the others through ndarray's
/// `general_mat_mul` (matrixmultiply), split into blocks of `c` across threads when large.
///
/// The library is chosen by the work per sample, not by the size of this product, so that
/// a sample is computed by the same code whatever batch it is in. Either library gives a
/// deterministic function of the operands' values: neither splits the inner dimension
/// across threads nor depends on buffer alignment (`tests/suite/determinism.rs`).
pub(crate) fn gemm_acc<F: Float>(
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    per_sample: usize,
    accumulate: bool,
) {
    gemm_on(a, b, c, per_sample, accumulate, true)
}

/// [`gemm_acc`] on the calling thread only (for callers that run several products in
/// parallel).
pub(crate) fn gemm_seq<F: Float>(
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    per_sample: usize,
    accumulate: bool,
) {
    gemm_on(a, b, c, per_sample, accumulate, false)
}

/// [`gemm_acc`], on several threads only if `parallel`.
fn gemm_on<F: Float>(
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    per_sample: usize,
    accumulate: bool,
    parallel: bool,
) {
    #[cfg(feature = "faer")]
    if per_sample >= FAER_WORK && F::faer_gemm(a, b, c, parallel, accumulate) {
        return;
    }
    #[cfg(not(feature = "faer"))]
    let _ = per_sample;
    let beta = if accumulate { F::one() } else { F::zero() };
    #[cfg(feature = "parallel")]
    {
        let threads = rayon::current_num_threads();
        if parallel && threads > 1 && a.nrows() * a.ncols() * b.ncols() >= PAR_GEMM_WORK {
            return par_gemm(a, b, c.view_mut(), threads, beta);
        }
    }
    #[cfg(not(feature = "parallel"))]
    let _ = parallel;
    general_mat_mul(F::one(), a, b, beta, c);
}

#[cfg(feature = "parallel")]
fn par_gemm<F: Float>(
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    c: ArrayViewMut2<'_, F>,
    parts: usize,
    beta: F,
) {
    let (m, n) = c.dim();
    if parts <= 1 || a.ncols() * m * n < PAR_GEMM_WORK / 2 {
        let mut c = c;
        general_mat_mul(F::one(), a, b, beta, &mut c);
        return;
    }
    let left = parts / 2;
    if n >= m {
        // split columns, at a multiple of 16 to keep the kernel's panels whole
        let mid = ((n * left / parts) / 16 * 16).clamp(1, n - 1);
        let (c1, c2) = c.split_at(Axis(1), mid);
        let (b1, b2) = b.view().split_at(Axis(1), mid);
        rayon::join(
            || par_gemm(a, &b1, c1, left, beta),
            || par_gemm(a, &b2, c2, parts - left, beta),
        );
    } else {
        let mid = ((m * left / parts) / 16 * 16).clamp(1, m - 1);
        let (c1, c2) = c.split_at(Axis(0), mid);
        let (a1, a2) = a.view().split_at(Axis(0), mid);
        rayon::join(
            || par_gemm(&a1, b, c1, left, beta),
            || par_gemm(&a2, b, c2, parts - left, beta),
        );
    }
}

/// Work per sample (multiply-adds) up to which a dense layer multiplies row by row
/// ([`dense_forward_small`], [`dense_transpose_small`]) instead of through a matrix product:
/// at batch 1 the product's packing of the weight costs more than the arithmetic (Dense
/// 784→32: 11 µs through matrixmultiply, about 2 µs row by row). Chosen by the layer, never
/// by the batch size, so a sample gets the same bits alone and in a batch.
pub(crate) const SMALL_DENSE_WORK: usize = 1 << 16;

/// `Σᵢ a[i]·b[i]` with eight running sums (so that it vectorises), combined in a fixed
/// order: the same bits for the same operands, whatever the batch.
fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    let mut acc = [F::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(F::zero(), |t, (&x, &y)| t + x * y);
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `x · Wᵀ` for `x` `[N, in]` and `W` `[out, in]`: one dot product per output.
pub(crate) fn dense_forward_small<F: Float>(x: &ArrayView2<'_, F>, w: &ArrayView2<'_, F>) -> Array2<F> {
    let (x, w) = (x.as_standard_layout(), w.as_standard_layout());
    let (n, inputs, outputs) = (x.nrows(), x.ncols(), w.nrows());
    let (xs, ws) = (
        x.as_slice().expect("standard layout"),
        w.as_slice().expect("standard layout"),
    );
    let mut out = Vec::with_capacity(n * outputs);
    for row in xs.chunks_exact(inputs.max(1)).take(n) {
        out.extend(
            ws.chunks_exact(inputs.max(1))
                .take(outputs)
                .map(|wr| dot(row, wr)),
        );
    }
    out.resize(n * outputs, F::zero());
    Array2::from_shape_vec((n, outputs), out).expect("length matches the shape")
}

/// `s · W` for `s` `[N, out]` and `W` `[out, in]`: each row a sum of weight rows scaled by
/// `s` (zero coefficients skipped; the weights are finite, so they would add exact zeros).
pub(crate) fn dense_transpose_small<F: Float>(s: &ArrayView2<'_, F>, w: &ArrayView2<'_, F>) -> Array2<F> {
    let w = w.as_standard_layout();
    let inputs = w.ncols();
    let mut out = Array2::from_shape_vec((s.nrows(), inputs), written_zeros(s.nrows() * inputs))
        .expect("length matches the shape");
    for (s_row, mut o_row) in s.outer_iter().zip(out.outer_iter_mut()) {
        let o_row = o_row.as_slice_mut().expect("fresh array is contiguous");
        for (&c, w_row) in s_row.iter().zip(w.outer_iter()) {
            if c == F::zero() {
                continue;
            }
            let w_row = w_row.to_slice().expect("standard layout");
            for (o, &v) in o_row.iter_mut().zip(w_row) {
                *o += c * v;
            }
        }
    }
    out
}

/// Samples per block when a batch is processed block by block: small enough that a block's
/// im2col matrices stay in cache, large enough to keep the matrix products efficient.
const BATCH_BLOCK: usize = 4;

/// Runs `f` on consecutive row ranges (blocks of at most [`BATCH_BLOCK`] samples, and at
/// least one per thread) of a batch of `n` samples — in parallel with the `parallel`
/// feature — and returns the results in order.
pub(crate) fn split_batch<T: Send>(
    n: usize,
    f: impl Fn(std::ops::Range<usize>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    #[cfg(feature = "parallel")]
    let threads = rayon::current_num_threads();
    #[cfg(not(feature = "parallel"))]
    let threads = 1;
    let parts = threads.max(n.div_ceil(BATCH_BLOCK)).min(n).max(1);
    let range = |t: usize| t * n / parts..(t + 1) * n / parts;
    #[cfg(feature = "parallel")]
    if parts > 1 {
        use rayon::prelude::*;
        return (0..parts).into_par_iter().map(|t| f(range(t))).collect();
    }
    (0..parts).map(|t| f(range(t))).collect()
}

/// Concatenates the per-layer arrays of consecutive parts of a batch, layer by layer
/// (`None` if the parts kept no layers).
pub(crate) fn concat_layers<F: Float>(parts: &[Option<&Vec<ArrayD<F>>>]) -> Option<Vec<ArrayD<F>>> {
    let first = parts.first().copied().flatten()?;
    Some(
        (0..first.len())
            .map(|k| concat_batch(parts.iter().flatten().map(|p| p[k].clone()).collect()))
            .collect(),
    )
}

/// Concatenates arrays along the batch axis (a single part is returned as is).
pub(crate) fn concat_batch<F: Float>(mut parts: Vec<ArrayD<F>>) -> ArrayD<F> {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("parts of one batch")
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

/// The shape that `shapes` broadcast to under NumPy's rules (aligned at the last axis; a 1
/// stretches), or `None` if they do not.
pub(crate) fn broadcast_shape(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max()?;
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (o, &d) in out[rank - s.len()..].iter_mut().zip(s.iter()) {
            match (*o, d) {
                (a, b) if a == b => {}
                (1, b) => *o = b,
                (_, 1) => {}
                _ => return None,
            }
        }
    }
    Some(out)
}

/// Sums `a` down to `shape`, which broadcasts to `a`'s shape: the gradient of a
/// broadcast. Returns `a` itself when the shapes agree.
///
/// # Errors
/// [`Error::Shape`] if `shape` does not broadcast to `a`'s shape.
pub(crate) fn sum_to_shape<F: Float>(a: ArrayD<F>, shape: &[usize]) -> Result<ArrayD<F>> {
    if a.shape() == shape {
        return Ok(a);
    }
    let full = a.shape().to_vec();
    let err = || Error::Shape {
        what: "broadcast operand (must broadcast to the output)".into(),
        expected: full.clone(),
        got: shape.to_vec(),
    };
    if shape.len() > a.ndim() {
        return Err(err());
    }
    let lead = a.ndim() - shape.len();
    let mut r = a;
    // leading axes the operand does not have are summed away
    for _ in 0..lead {
        r = r.sum_axis(Axis(0));
    }
    for (axis, &d) in shape.iter().enumerate() {
        let have = r.shape()[axis];
        if d == have {
            continue;
        }
        if d != 1 {
            return Err(err());
        }
        r = r.sum_axis(Axis(axis)).insert_axis(Axis(axis));
    }
    Ok(r)
}
