//! Winograd's minimal filtering F(2×2, 3×3) for 3×3 convolutions with stride 1 and
//! dilation 1 (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016).
//!
//! Each 2×2 block of outputs is computed from a 4×4 input tile as `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`:
//! 16 multiplications per (input channel, output channel) instead of 36, so the matrix
//! products (16 of them, one per tile position ξ, each `[out, in] · [in, tiles]`) do 2.25×
//! fewer multiply-adds than im2col's. The transforms only add, subtract and halve, which keeps
//! the rounding error at a few units in the last place (the tests compare against the im2col
//! path to 1e-12 in f64).
//!
//! The transposed convolution (gradient and relevance passes) of a stride-1 3×3 convolution
//! with padding p is itself one: the correlation of the output-side array with the kernel
//! flipped in space and transposed in channels, with padding 2 − p. Both go through
//! [`conv3x3_transformed`] and [`conv3x3_sum`].

use crate::float::Float;
use crate::kernels::gemm::gemm_seq;
use crate::pool::with_scratch;

/// Sizes of one Winograd convolution call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub o: usize,
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    /// Zero padding on each side (≤ 2).
    pub pad: usize,
}

impl Shape {
    fn out(&self) -> (usize, usize) {
        (self.h + 2 * self.pad - 2, self.w + 2 * self.pad - 2)
    }
    /// Tiles per sample (2×2 output blocks): rows, columns.
    fn tiles(&self) -> (usize, usize) {
        let (ho, wo) = self.out();
        (ho.div_ceil(2), wo.div_ceil(2))
    }
}

/// Multiply-adds of the 16 matrix products per sample, for choosing the product's library
/// (so that a sample is computed the same way in any batch).
pub(crate) fn work_per_sample(s: &Shape) -> usize {
    let (th, tw) = s.tiles();
    16 * s.o * s.c * th * tw
}

/// Elements of each transformed-input and product buffer: layers with more tiles are
/// processed in chunks of rows of tiles, so that scratch memory stays bounded (16 MB in f32)
/// whatever the image size.
/// (Unit tests use small chunks, so that chunks split images and span samples.)
const CHUNK_ELEMS: usize = if cfg!(test) { 1 << 13 } else { 1 << 22 };

/// The chunks of tile rows (flattened over samples: row `r` is tile row `r % th` of sample
/// `r / th`) that keep each buffer within [`CHUNK_ELEMS`]. Depends on the layer and the
/// per-sample shape, and chunks never change what a sample computes.
fn chunks(s: &Shape) -> impl Iterator<Item = std::ops::Range<usize>> {
    let (th, tw) = s.tiles();
    let per_row = 16 * s.c.max(s.o) * tw;
    let step = (CHUNK_ELEMS / per_row).max(1);
    let total = s.n * th;
    (0..total).step_by(step).map(move |r| r..(r + step).min(total))
}

/// The transform `U` of one weight (`[o, c, 3, 3]`, see [`conv3x3_transformed`]): `16·o·c`
/// values. The transposed convolutions of [`conv3x3_sum`] read the same transform.
pub(crate) fn transformed_weight<F: Float>(s: &Shape, weight: &[F]) -> Vec<F> {
    let mut u = vec![F::zero(); 16 * s.o * s.c];
    transform_weight(s, weight, &mut u);
    u
}

/// `ys[i][n, o, ho, wo] = Σ_{c,i,j} g[o, c, i, j] · x[n, c, y + i − pad, x + j − pad]` (zero
/// outside the input), with `ho = h + 2·pad − 2` (likewise wo), where `g = weights[i]`
/// (`[o, c, 3, 3]`), each given transformed by [`transformed_weight`]. `x` is `[n, c, h, w]` in standard layout; each `y`
/// (`[n, o, ho, wo]`, standard layout) is overwritten. The input is transformed once, and a weight's
/// transform can be kept across calls.
pub(crate) fn conv3x3_transformed<F: Float>(x: &[F], s: &Shape, us: &[&[F]], ys: &mut [&mut [F]]) {
    let (_, tw) = s.tiles();
    for rows in chunks(s) {
        let cols = rows.len() * tw;
        with_scratch(16 * s.c * cols, |v: &mut [F]| {
            transform_input(x, s, rows.clone(), v);
            with_scratch(16 * s.o * cols, |m: &mut [F]| {
                for (uw, y) in us.iter().zip(ys.iter_mut()) {
                    products(s, cols, uw, v, m, false);
                    transform_output(m, s, rows.clone(), y);
                }
            })
        })
    }
}

/// The sum over g of the transposed convolutions (shape `s`) of `xs[g]` into `y`, each the
/// transpose of the forward convolution `s.o → s.c` whose weight (`[s.c, s.o, 3, 3]`) has
/// the forward transform `ufs[g]` ([`transformed_weight`], planes `[s.c, s.o]`): the
/// products accumulate, and the output is transformed once.
///
/// The transposed convolution of a stride-1 3×3 convolution is the correlation with the
/// kernel flipped in space and transposed in channels (module docs), and its transform is a
/// permutation of the forward transform's 16 planes, each read transposed, so nothing is
/// transformed here. Flipping a kernel reverses the rows of `G g` (`G·J = P·G`, `P` swapping
/// rows 0 ↔ 3 and 1 ↔ 2 of the 4 outputs: `[a, (a+b+c)/2, (a−b+c)/2, c]` becomes
/// `[c, (a+b+c)/2, (a−b+c)/2, a]`), so that `U_flipped[i][j] = U[p(i)][p(j)]` with
/// `p = (3, 1, 2, 0)`. A weight's transform is thus the same bits whether it is kept (the
/// layer's own, a kept rule-modified one) or made for one call.
pub(crate) fn conv3x3_sum<F: Float>(xs: &[&[F]], s: &Shape, ufs: &[&[F]], y: &mut [F]) {
    let (_, tw) = s.tiles();
    for rows in chunks(s) {
        let cols = rows.len() * tw;
        with_scratch(16 * s.c * cols, |v: &mut [F]| {
            with_scratch(16 * s.o * cols, |m: &mut [F]| {
                for (g, (x, uf)) in xs.iter().zip(ufs).enumerate() {
                    transform_input(x, s, rows.clone(), v);
                    products_transposed(s, cols, uf, v, m, g > 0);
                }
                transform_output(m, s, rows.clone(), y);
            })
        })
    }
}

/// [`products`] for a transposed convolution whose weight is given by the forward transform
/// `uf` (planes `[s.c, s.o]`, see [`conv3x3_sum`]): `M[ξ] = U_f[π(ξ)]ᵀ · V[ξ]`.
fn products_transposed<F: Float>(s: &Shape, cols: usize, uf: &[F], v: &[F], m: &mut [F], accumulate: bool) {
    const P: [usize; 4] = [3, 1, 2, 0];
    let (o, c) = (s.o, s.c);
    let work = work_per_sample(s);
    let product = |(xi, mx): (usize, &mut [F])| {
        let src = 4 * P[xi / 4] + P[xi % 4];
        let a = crate::tensor::layout::view((c, o), &uf[src * o * c..(src + 1) * o * c]);
        let b = crate::tensor::layout::view((c, cols), &v[xi * c * cols..(xi + 1) * c * cols]);
        let mut out = crate::tensor::layout::view_mut((o, cols), mx);
        gemm_seq(&a.t(), &b, &mut out, work, accumulate);
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        m.par_chunks_mut(o * cols).enumerate().for_each(product);
    }
    #[cfg(not(feature = "parallel"))]
    m.chunks_mut(o * cols).enumerate().for_each(product);
}

/// `M[ξ] = U[ξ] · V[ξ]` (`+=` if `accumulate`) for the 16 ξ over `cols` columns.
fn products<F: Float>(s: &Shape, cols: usize, u: &[F], v: &[F], m: &mut [F], accumulate: bool) {
    transformed_products((s.o, s.c, cols), work_per_sample(s), u, v, m, accumulate);
}

/// `M[ξ] = U[ξ] · V[ξ]` (`+=` if `accumulate`) for every transformed position ξ of a
/// Winograd algorithm (16 for F(2×2, 3×3), 6 for F(4, 3)), `U[ξ]` `[o, c]`, `V[ξ]`
/// `[c, cols]`, `M[ξ]` `[o, cols]`, all planes one after the other: one sequential product
/// per ξ, spread over the threads (feature `parallel`). `work` (multiply-adds per sample)
/// chooses the product's library.
pub(crate) fn transformed_products<F: Float>(
    (o, c, cols): (usize, usize, usize),
    work: usize,
    u: &[F],
    v: &[F],
    m: &mut [F],
    accumulate: bool,
) {
    let product = |(xi, mx): (usize, &mut [F])| {
        let a = crate::tensor::layout::view((o, c), &u[xi * o * c..(xi + 1) * o * c]);
        let b = crate::tensor::layout::view((c, cols), &v[xi * c * cols..(xi + 1) * c * cols]);
        let mut out = crate::tensor::layout::view_mut((o, cols), mx);
        gemm_seq(&a, &b, &mut out, work, accumulate);
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        m.par_chunks_mut(o * cols).enumerate().for_each(product);
    }
    #[cfg(not(feature = "parallel"))]
    m.chunks_mut(o * cols).enumerate().for_each(product);
}

/// `U[ξ][o][c] = (G g Gᵀ)[ξ]` for every kernel `g = weight[o][c]`, with
/// `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`. `weight` is `[rows, cols, 3, 3]` in
/// standard layout. Output channels are transformed in parallel.
#[allow(clippy::needless_range_loop)] // dc indexes the kernel and the 16 local rows alike
pub(crate) fn transform_weight<F: Float>(s: &Shape, weight: &[F], u: &mut [F]) {
    let half = F::lit(0.5);
    let mut per_out: Vec<Vec<&mut [F]>> = (0..s.o).map(|_| Vec::with_capacity(16)).collect();
    for xi_slice in u.chunks_mut(s.o * s.c) {
        for (o, row) in xi_slice.chunks_mut(s.c).enumerate() {
            per_out[o].push(row);
        }
    }
    // Kernels are transformed in blocks of BLOCK input channels into local buffers, then
    // copied row by row: the 16 rows of U lie s.o·s.c elements apart (often a power of two),
    // and writing them one element at a time thrashes the cache sets.
    let g4 = |a: F, b: F, c: F| [a, (a + b + c) * half, (a - b + c) * half, c];
    let fill = |(o, rows): (usize, &mut Vec<&mut [F]>)| {
        let mut local = [[F::zero(); BLOCK]; 16];
        for c0 in (0..s.c).step_by(BLOCK) {
            let len = BLOCK.min(s.c - c0);
            for dc in 0..len {
                let c = c0 + dc;
                let at = (o * s.c + c) * 9;
                let k: &[F; 9] = weight[at..at + 9].try_into().expect("nine taps");
                let g = [[k[0], k[1], k[2]], [k[3], k[4], k[5]], [k[6], k[7], k[8]]];
                // t = G g (by column: cols[j][i]), then row i of U = G applied to row i of t
                let cols = [0, 1, 2].map(|j| g4(g[0][j], g[1][j], g[2][j]));
                for i in 0..4 {
                    let row = g4(cols[0][i], cols[1][i], cols[2][i]);
                    for (j, &val) in row.iter().enumerate() {
                        local[4 * i + j][dc] = val;
                    }
                }
            }
            for (r, l) in rows.iter_mut().zip(&local) {
                r[c0..c0 + len].copy_from_slice(&l[..len]);
            }
        }
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        per_out.par_iter_mut().enumerate().for_each(fill);
    }
    #[cfg(not(feature = "parallel"))]
    per_out.iter_mut().enumerate().for_each(fill);
}

/// Kernels are transformed in blocks of this many input channels at a time.
const BLOCK: usize = 64;

/// `V[ξ][c][k] = (Bᵀ d B)[ξ]` for the 4×4 input tile `d` of every tile `k` of the tile
/// rows `rows` (flattened over samples, see [`chunks`]), with
/// `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`. Overwrites all of `v`.
/// Channels are transformed in parallel; within a channel, one row of tiles at a time, with
/// Bᵀ applied to whole (zero-padded) input rows and B to the resulting strips.
fn transform_input<F: Float>(x: &[F], s: &Shape, rows: std::ops::Range<usize>, v: &mut [F]) {
    let (th, tw) = s.tiles();
    let cols = rows.len() * tw;
    // padded row width: tiles cover 2·tw + 2 input columns starting at −pad
    let width = 2 * tw + 2;
    let mut per_channel: Vec<Vec<&mut [F]>> = (0..s.c).map(|_| Vec::with_capacity(16)).collect();
    for xi_slice in v.chunks_mut(s.c * cols) {
        for (c, row) in xi_slice.chunks_mut(cols).enumerate() {
            per_channel[c].push(row);
        }
    }
    let fill = |(c, out): (usize, &mut Vec<&mut [F]>)| {
        let zero = F::zero();
        let mut d = vec![zero; 4 * width];
        let mut t = vec![zero; 4 * width];
        for r in rows.clone() {
            let (n, ty) = (r / th, r % th);
            let plane = &x[(n * s.c + c) * s.h * s.w..(n * s.c + c + 1) * s.h * s.w];
            {
                // the four padded input rows of this row of tiles
                for (i, di) in d.chunks_mut(width).enumerate() {
                    di.fill(zero);
                    let yy = (2 * ty + i) as isize - s.pad as isize;
                    if yy < 0 || yy >= s.h as isize {
                        continue;
                    }
                    let src = &plane[yy as usize * s.w..(yy as usize + 1) * s.w];
                    let len = s.w.min(width - s.pad);
                    di[s.pad..s.pad + len].copy_from_slice(&src[..len]);
                }
                // Bᵀ d, row by row over the whole strip
                {
                    let (d0, rest) = d.split_at(width);
                    let (d1, rest) = rest.split_at(width);
                    let (d2, d3) = rest.split_at(width);
                    let (t0, rest) = t.split_at_mut(width);
                    let (t1, rest) = rest.split_at_mut(width);
                    let (t2, t3) = rest.split_at_mut(width);
                    for k in 0..width {
                        t0[k] = d0[k] - d2[k];
                        t1[k] = d1[k] + d2[k];
                        t2[k] = d2[k] - d1[k];
                        t3[k] = d1[k] - d3[k];
                    }
                }
                // (Bᵀ d) B, tile by tile
                let at = (r - rows.start) * tw;
                for (i, ti) in t.chunks(width).enumerate() {
                    let [r0, r1, r2, r3] = &mut out[4 * i..4 * i + 4] else {
                        unreachable!("16 rows")
                    };
                    let (r0, r1, r2, r3) = (
                        &mut r0[at..at + tw],
                        &mut r1[at..at + tw],
                        &mut r2[at..at + tw],
                        &mut r3[at..at + tw],
                    );
                    for (k, w4) in ti.windows(4).step_by(2).take(tw).enumerate() {
                        r0[k] = w4[0] - w4[2];
                        r1[k] = w4[1] + w4[2];
                        r2[k] = w4[2] - w4[1];
                        r3[k] = w4[1] - w4[3];
                    }
                }
            }
        }
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        per_channel.par_iter_mut().enumerate().for_each(fill);
    }
    #[cfg(not(feature = "parallel"))]
    per_channel.iter_mut().enumerate().for_each(fill);
}

/// `y[n][o] = Aᵀ M A` for every tile of the tile rows `rows` (see [`chunks`]), with
/// `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`, keeping the outputs that fall inside `ho × wo`.
/// Overwrites the output rows of those tiles. Output channels are transformed in parallel;
/// within a plane, one row of tiles at a time.
fn transform_output<F: Float>(m: &[F], s: &Shape, rows: std::ops::Range<usize>, y: &mut [F]) {
    let (ho, wo) = s.out();
    let (th, tw) = s.tiles();
    let cols = rows.len() * tw;
    let plane_m = s.o * cols;
    let (n_first, n_last) = (rows.start / th, (rows.end - 1) / th);
    // per output channel, the planes of the samples these rows touch
    let mut per_out: Vec<Vec<(usize, &mut [F])>> = (0..s.o).map(|_| Vec::new()).collect();
    for (index, plane) in y.chunks_mut(ho * wo).enumerate() {
        let (n, o) = (index / s.o, index % s.o);
        if (n_first..=n_last).contains(&n) {
            per_out[o].push((n, plane));
        }
    }
    let fill = |(o, planes): (usize, &mut Vec<(usize, &mut [F])>)| {
        for (n, out) in planes.iter_mut() {
            let n = *n;
            let ty_lo = rows.start.max(n * th) - n * th;
            let ty_hi = rows.end.min((n + 1) * th) - n * th;
            transform_plane(
                m,
                plane_m,
                o * cols + (n * th + ty_lo - rows.start) * tw,
                (ty_lo, ty_hi),
                (ho, wo, tw),
                out,
            );
        }
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        per_out.par_iter_mut().enumerate().for_each(fill);
    }
    #[cfg(not(feature = "parallel"))]
    per_out.iter_mut().enumerate().for_each(fill);
}

/// The output transform of tile rows `ty_lo..ty_hi` of one plane `out` (`ho × wo`), whose
/// first tile is at column `start` of every `M[ξ]` (`plane_m` apart).
fn transform_plane<F: Float>(
    m: &[F],
    plane_m: usize,
    start: usize,
    (ty_lo, ty_hi): (usize, usize),
    (ho, wo, tw): (usize, usize, usize),
    out: &mut [F],
) {
    let zero = F::zero();
    {
        // Aᵀ M for one row of tiles: r[i][j] (i: output row in the tile, j: tile column)
        let mut r = vec![zero; 8 * tw];
        for ty in ty_lo..ty_hi {
            let at = start + (ty - ty_lo) * tw;
            let seg = |xi: usize| &m[xi * plane_m + at..xi * plane_m + at + tw];
            for j in 0..4 {
                let (m0, m1, m2, m3) = (seg(j), seg(4 + j), seg(8 + j), seg(12 + j));
                let (ra, rb) = r.split_at_mut(4 * tw);
                let r0 = &mut ra[j * tw..(j + 1) * tw];
                let r1 = &mut rb[j * tw..(j + 1) * tw];
                for k in 0..tw {
                    r0[k] = m0[k] + m1[k] + m2[k];
                    r1[k] = m1[k] - m2[k] - m3[k];
                }
            }
            // (Aᵀ M) A into the output rows
            for (i, ri) in r.chunks(4 * tw).enumerate() {
                let yy = 2 * ty + i;
                if yy >= ho {
                    break;
                }
                let (q0, rest) = ri.split_at(tw);
                let (q1, rest) = rest.split_at(tw);
                let (q2, q3) = rest.split_at(tw);
                let row = &mut out[yy * wo..(yy + 1) * wo];
                let full = wo / 2;
                for (k, pair) in row.chunks_exact_mut(2).take(full).enumerate() {
                    pair[0] = q0[k] + q1[k] + q2[k];
                    pair[1] = q1[k] - q2[k] - q3[k];
                }
                if wo % 2 == 1 {
                    let k = full;
                    row[wo - 1] = q0[k] + q1[k] + q2[k];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{transformed_weight, Shape};

    /// The block-wise weight transform gives, bit for bit, `G g Gᵀ` computed one kernel at a
    /// time (columns of `G g` first, then `G` on its rows), for channel counts below, at and
    /// across the block size.
    #[test]
    fn weight_transform_matches_kernel_by_kernel() {
        let half = 0.5f32;
        let g4 = |a: f32, b: f32, c: f32| [a, (a + b + c) * half, (a - b + c) * half, c];
        for c in [1usize, 5, 63, 64, 65, 130] {
            let o = 3;
            let s = Shape {
                n: 1,
                c,
                o,
                h: 4,
                w: 4,
                pad: 1,
            };
            let w: Vec<f32> = (0..o * c * 9)
                .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 97.0)
                .collect();
            let u = transformed_weight(&s, &w);
            for oc in 0..o {
                for ci in 0..c {
                    let k = &w[(oc * c + ci) * 9..(oc * c + ci + 1) * 9];
                    let cols = [0, 1, 2].map(|j| g4(k[j], k[3 + j], k[6 + j]));
                    for i in 0..4 {
                        let row = g4(cols[0][i], cols[1][i], cols[2][i]);
                        for (j, want) in row.iter().enumerate() {
                            let got = u[(4 * i + j) * o * c + oc * c + ci];
                            assert_eq!(got.to_bits(), want.to_bits(), "c {c}, o {oc}, c {ci}, ξ {i},{j}");
                        }
                    }
                }
            }
        }
    }
}
