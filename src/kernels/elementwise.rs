//! Elementwise passes over arrays of one shape (and the per-channel bias add), on several
//! threads for the largest arrays (feature `parallel`).

use crate::float::Float;
use crate::pool::output_buffer;
use ndarray::{ArrayD, ArrayView1, ArrayViewD, Axis, Zip};

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

/// ReLU of one value as the [`Relu`](crate::Relu) layer takes it: `v` if `v > 0`, else `+0`
/// (so `−0` and NaN become `+0`). The layer and the direct convolution's fused epilogue
/// share it, so a fused pass gives the layer's bits.
#[inline(always)]
pub(crate) fn relu<F: Float>(v: F) -> F {
    if v > F::zero() {
        v
    } else {
        F::zero()
    }
}

/// The maximum of a 2×2 window `[a, b, c, d]` (row-major) as
/// [`MaxPool2d`](crate::MaxPool2d) takes it: of two equal values the earlier, so that the
/// value is the first maximum's, ±0 included (a NaN loses every comparison). The pool's
/// passes and the direct convolution's fused epilogue share it.
#[inline(always)]
pub(crate) fn max_2x2<F: Float>(a: F, b: F, c: F, d: F) -> F {
    let top = |p: F, q: F| if q > p { q } else { p };
    top(top(a, b), top(c, d))
}

/// `f(a, b, c)` elementwise into a new array; `a`, `b`, `c` have one shape.
pub(crate) fn map3<F: Float>(
    a: &ArrayViewD<'_, F>,
    b: &ArrayViewD<'_, F>,
    c: &ArrayViewD<'_, F>,
    f: impl Fn(F, F, F) -> F + Sync + Send,
) -> ArrayD<F> {
    // every element is written
    let mut out = crate::tensor::layout::shaped(a.raw_dim(), output_buffer(a.len()));
    if let (Some(sa), Some(sb), Some(sc)) = (a.as_slice(), b.as_slice(), c.as_slice()) {
        // contiguous: plain slice loops, which the compiler vectorises
        let so = crate::tensor::layout::standard_mut(&mut out);
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
    debug_assert_eq!(a.shape(), b.shape());
    let big = par_elems(a.len());
    if let (Some(sa), Some(sb)) = (a.as_slice_mut(), b.as_slice()) {
        // contiguous: plain slice loops, which the compiler vectorises
        let run = |(a, b): (&mut [F], &[F])| {
            for (a, &b) in a.iter_mut().zip(b) {
                f(a, b);
            }
        };
        #[cfg(feature = "parallel")]
        if big {
            use rayon::prelude::*;
            const CHUNK: usize = 1 << 14;
            return sa.par_chunks_mut(CHUNK).zip(sb.par_chunks(CHUNK)).for_each(run);
        }
        return run((sa, sb));
    }
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
    debug_assert!(a.shape() == b.shape() && a.shape() == c.shape());
    let big = par_elems(a.len());
    if let (Some(sa), Some(sb), Some(sc)) = (a.as_slice_mut(), b.as_slice(), c.as_slice()) {
        // contiguous: plain slice loops, which the compiler vectorises
        #[allow(clippy::type_complexity)]
        let run = |(a, (b, c)): (&mut [F], (&[F], &[F]))| {
            for (a, (&b, &c)) in a.iter_mut().zip(b.iter().zip(c)) {
                f(a, b, c);
            }
        };
        #[cfg(feature = "parallel")]
        if big {
            use rayon::prelude::*;
            const CHUNK: usize = 1 << 14;
            return sa
                .par_chunks_mut(CHUNK)
                .zip(sb.par_chunks(CHUNK).zip(sc.par_chunks(CHUNK)))
                .for_each(run);
        }
        return run((sa, (sb, sc)));
    }
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
    map_channel_bias(out, bias, |v, b| v + b);
}

/// [`add_channel_bias`] and then [`relu`] in one pass over `out` (the ReLU alone without a
/// bias): the same operations in the same order, so the same bits as the two passes, without
/// a second array (a convolution's forward pass runs the ReLU after it this way:
/// [`crate::Layer::forward_fused`]).
pub(crate) fn add_channel_bias_relu<F: Float>(out: &mut ArrayD<F>, bias: Option<ArrayView1<'_, F>>) {
    match bias {
        Some(bias) => map_channel_bias(out, bias, |v, b| relu(v + b)),
        None => {
            #[cfg(feature = "parallel")]
            if par_elems(out.len()) {
                out.par_mapv_inplace(relu);
                return;
            }
            out.mapv_inplace(relu);
        }
    }
}

/// `out[n, c, ...] = op(out[n, c, ...], bias[c])` in place.
fn map_channel_bias<F: Float>(out: &mut ArrayD<F>, bias: ArrayView1<'_, F>, op: impl Fn(F, F) -> F + Sync) {
    let c = bias.len();
    let inner = out.shape().iter().skip(2).product::<usize>();
    if out.ndim() >= 2 && out.shape()[1] == c && c > 0 && !par_elems(out.len()) {
        if let (Some(buf), Some(b)) = (out.as_slice_mut(), bias.as_slice()) {
            // contiguous: whole rows (dense) or whole planes (convolutions) at a time
            if inner == 1 {
                for row in buf.chunks_exact_mut(c) {
                    for (v, &b) in row.iter_mut().zip(b) {
                        *v = op(*v, b);
                    }
                }
            } else {
                for (k, plane) in buf.chunks_exact_mut(inner).enumerate() {
                    let b = b[k % c];
                    for v in plane {
                        *v = op(*v, b);
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
                .par_for_each(|mut chan, &b| chan.mapv_inplace(|v| op(v, b)));
        }
        return;
    }
    for mut lane in out.axis_iter_mut(Axis(0)) {
        for (mut chan, &b) in lane.axis_iter_mut(Axis(0)).zip(bias.iter()) {
            chan.mapv_inplace(|v| op(v, b));
        }
    }
}
