//! Matrix products: the choice between faer and matrixmultiply, the split across threads,
//! and the row-by-row paths of small dense layers.

use crate::float::Float;
use crate::pool::written_zeros;
use ndarray::linalg::general_mat_mul;
#[cfg(feature = "parallel")]
use ndarray::Axis;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

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
        crate::tensor::layout::standard(&x),
        crate::tensor::layout::standard(&w),
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
    crate::tensor::layout::shaped((n, outputs), out)
}

/// `s · W` for `s` `[N, out]` and `W` `[out, in]`: each row a sum of weight rows scaled by
/// `s` (zero coefficients skipped; the weights are finite, so they would add exact zeros).
pub(crate) fn dense_transpose_small<F: Float>(s: &ArrayView2<'_, F>, w: &ArrayView2<'_, F>) -> Array2<F> {
    let w = w.as_standard_layout();
    let inputs = w.ncols();
    let mut out = crate::tensor::layout::shaped((s.nrows(), inputs), written_zeros(s.nrows() * inputs));
    for (s_row, mut o_row) in s.outer_iter().zip(out.outer_iter_mut()) {
        let o_row = crate::tensor::layout::standard_mut(&mut o_row);
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
