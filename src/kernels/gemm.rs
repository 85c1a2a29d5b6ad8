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
#[inline(always)]
fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    let [d] = dots([a], [b]);
    d
}

/// `R` dot products `Σᵢ a[r][i]·b[r][i]` side by side, each exactly as [`dot`] alone (its own
/// eight running sums, combined in the same order): independent sums hide the additions'
/// latency, which bounds a single dot product.
#[inline(always)]
fn dots<F: Float, const R: usize>(a: [&[F]; R], b: [&[F]; R]) -> [F; R] {
    let whole = a[0].len() / 8 * 8;
    let acc = running_sums(&a, &b, whole);
    std::array::from_fn(|r| {
        let tail = a[r][whole..]
            .iter()
            .zip(&b[r][whole..])
            .fold(F::zero(), |t, (&x, &y)| t + x * y);
        let s = &acc[r];
        ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail
    })
}

/// The eight running sums of each of [`dots`]' products over the first `whole` elements:
/// sum `k` adds the products of the elements `k`, `k + 8`, … in turn (AVX2 vectors where the
/// machine has them; a multiply, then an add, as the plain loop).
#[inline(always)]
fn running_sums<F: Float, const R: usize>(a: &[&[F]; R], b: &[&[F]; R], whole: usize) -> [[F; 8]; R] {
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = pulp::x86::V3::try_new() {
        // eight sums are one f32 vector or two f64 vectors
        let nv = 8 / F::L;
        let mut acc = [[F::vzero(v3); 2]; R];
        for i in (0..whole).step_by(8) {
            for r in 0..R {
                let (x, y) = (&a[r][i..i + 8], &b[r][i..i + 8]);
                for v in 0..nv {
                    let (xv, yv) = (F::load(&x[v * F::L..]), F::load(&y[v * F::L..]));
                    acc[r][v] = F::vadd(v3, acc[r][v], F::vmul(v3, xv, yv));
                }
            }
        }
        return std::array::from_fn(|r| {
            let mut s = [F::zero(); 8];
            for v in 0..nv {
                F::store(acc[r][v], &mut s[v * F::L..]);
            }
            s
        });
    }
    let mut acc = [[F::zero(); 8]; R];
    for i in (0..whole).step_by(8) {
        for r in 0..R {
            let (x, y) = (&a[r][i..i + 8], &b[r][i..i + 8]);
            for k in 0..8 {
                acc[r][k] += x[k] * y[k];
            }
        }
    }
    acc
}

/// `x · Wᵀ` for `x` `[N, in]` and `W` `[out, in]`: one dot product per output, four outputs
/// at a time, compiled for AVX2 where the machine has it (the same bits: multiplies and adds
/// stay separate).
pub(crate) fn dense_forward_small<F: Float>(x: &ArrayView2<'_, F>, w: &ArrayView2<'_, F>) -> Array2<F> {
    let (x, w) = (x.as_standard_layout(), w.as_standard_layout());
    let (n, inputs, outputs) = (x.nrows(), x.ncols(), w.nrows());
    let (xs, ws) = (
        crate::tensor::layout::standard(&x),
        crate::tensor::layout::standard(&w),
    );
    let mut out = written_zeros(n * outputs);
    if inputs > 0 {
        crate::kernels::simd::vectorized(DotRows {
            xs,
            ws,
            inputs,
            outputs,
            out: &mut out,
        });
    }
    crate::tensor::layout::shaped((n, outputs), out)
}

/// The products of [`dense_forward_small`], run through [`crate::kernels::simd::vectorized`]:
/// two samples by four weight rows at a time (eight sums side by side, each weight row read
/// once for both samples).
struct DotRows<'a, F> {
    xs: &'a [F],
    ws: &'a [F],
    inputs: usize,
    outputs: usize,
    out: &'a mut [F],
}

impl<F: Float> pulp::WithSimd for DotRows<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let (k, o) = (self.inputs, self.outputs);
        let mut pairs = self.xs.chunks_exact(2 * k);
        let mut outs = self.out.chunks_exact_mut(2 * o);
        for (pair, out) in (&mut pairs).zip(&mut outs) {
            let (r0, r1) = pair.split_at(k);
            let (o0, o1) = out.split_at_mut(o);
            let mut quads = self.ws.chunks_exact(4 * k);
            for (q, at) in (&mut quads).zip((0..).step_by(4)) {
                let w: [&[F]; 4] = std::array::from_fn(|r| &q[r * k..(r + 1) * k]);
                let d = dots(
                    [r0, r0, r0, r0, r1, r1, r1, r1],
                    [w[0], w[1], w[2], w[3], w[0], w[1], w[2], w[3]],
                );
                o0[at..at + 4].copy_from_slice(&d[..4]);
                o1[at..at + 4].copy_from_slice(&d[4..]);
            }
            let done = o / 4 * 4;
            for (j, wr) in quads.remainder().chunks_exact(k).enumerate() {
                o0[done + j] = dot(r0, wr);
                o1[done + j] = dot(r1, wr);
            }
        }
        for (row, out) in pairs
            .remainder()
            .chunks_exact(k)
            .zip(outs.into_remainder().chunks_exact_mut(o))
        {
            let mut quads = self.ws.chunks_exact(4 * k);
            for (q, at) in (&mut quads).zip((0..).step_by(4)) {
                let w: [&[F]; 4] = std::array::from_fn(|r| &q[r * k..(r + 1) * k]);
                out[at..at + 4].copy_from_slice(&dots([row; 4], w));
            }
            let done = o / 4 * 4;
            for (j, wr) in quads.remainder().chunks_exact(k).enumerate() {
                out[done + j] = dot(row, wr);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::dense_forward_small;
    use ndarray::Array2;

    /// The small dense path (four dot products side by side, AVX2 where the machine has it)
    /// gives the bits of one plain dot product per output: eight running sums, combined in
    /// the documented order, the tail last. Lengths with and without a tail, outputs with
    /// and without a partial group of four, f32 and f64.
    #[test]
    fn dense_forward_small_is_the_plain_dot_product() {
        fn plain<F: crate::float::Float>(a: &[F], b: &[F]) -> F {
            let whole = a.len() / 8 * 8;
            let mut s = [F::zero(); 8];
            for i in (0..whole).step_by(8) {
                for k in 0..8 {
                    s[k] += a[i + k] * b[i + k];
                }
            }
            let tail = (whole..a.len()).fold(F::zero(), |t, i| t + a[i] * b[i]);
            ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail
        }
        let mut next = crate::kernels::test_uniform(3);
        for (n, inputs, outputs) in [(1, 784, 32), (3, 37, 9), (2, 8, 1), (1, 5, 6), (4, 64, 10)] {
            let x = Array2::from_shape_simple_fn((n, inputs), &mut next);
            let w = Array2::from_shape_simple_fn((outputs, inputs), &mut next);
            let y = dense_forward_small(&x.view(), &w.view());
            let (x32, w32) = (x.mapv(|v| v as f32), w.mapv(|v| v as f32));
            let y32 = dense_forward_small(&x32.view(), &w32.view());
            for i in 0..n {
                for o in 0..outputs {
                    let want = plain(x.row(i).as_slice().unwrap(), w.row(o).as_slice().unwrap());
                    assert_eq!(
                        y[[i, o]].to_bits(),
                        want.to_bits(),
                        "f64 ({n}, {inputs}, {outputs})"
                    );
                    let want = plain(x32.row(i).as_slice().unwrap(), w32.row(o).as_slice().unwrap());
                    assert_eq!(
                        y32[[i, o]].to_bits(),
                        want.to_bits(),
                        "f32 ({n}, {inputs}, {outputs})"
                    );
                }
            }
        }
    }
}
