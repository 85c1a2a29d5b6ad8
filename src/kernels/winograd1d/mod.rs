//! Winograd's minimal filtering F(4, 3) for convolutions with a 1×3 kernel (one row, three
//! taps) and stride 1, any dilation: the dilated residual layers of BPNet and ChromBPNet
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, §4; the
//! transform matrices below are theirs for F(4, 3)).
//!
//! Each block of four outputs `y[p + d·j]` (`j < 4`, `d` the dilation) is computed from six
//! inputs `x[p + lo + d·i]` (`i < 6`) as `Aᵀ [(G g) ⊙ (Bᵀ x)]`: 6 multiplications per (input
//! channel, output channel) instead of 12, so the six matrix products (one per transformed
//! position ξ, each `[out, in] · [in, tiles]`) do half the multiply-adds of im2col's. A
//! dilated convolution is `d` undilated ones on the interleaved subsequences `p ≡ r (mod d)`;
//! the blocks follow each subsequence, so a dilation costs nothing beyond the partly filled
//! last block of each.
//!
//! The transforms have small integer coefficients (and 1/4, 1/6, 1/12, 1/24 in `G`); in f64
//! the results agree with direct summation to about 1e-15 relative to the output's scale
//! (the unit tests compare with a direct sum to 1e-12), in f32 to a few 1e-7.
//!
//! The transposed convolution (the gradient and relevance passes) of such a convolution is
//! one too: the correlation of the output-side array with the kernel reversed and its channels
//! swapped, reading `x[p + lo' + d·i]` with `lo' = −lo − 2d`. Both go through [`conv_many`]
//! and [`conv_sum`].

use crate::float::Float;
use crate::kernels::winograd::transformed_products;
use crate::pool::with_scratch;

/// Outputs per block (m of F(m, r)).
const M: usize = 4;
/// Transformed positions per block (m + r − 1).
const T: usize = 6;

/// Sizes of one call: `y[n, o, row, p] = Σ_{c,k} g[o, c, k] · x[n, c, row, p + lo + dil·k]`,
/// zero where the index leaves `0..w`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub o: usize,
    /// Rows per sample (1 for a `Conv1d`): each is convolved on its own.
    pub h: usize,
    /// Input length.
    pub w: usize,
    /// Output length.
    pub wo: usize,
    /// Spacing between the taps.
    pub dil: usize,
    /// The input index read by tap 0 of output 0 (minus the left padding).
    pub lo: isize,
}

/// Consecutive columns of the transformed arrays whose blocks start `step` outputs apart:
/// column `col + k` holds the block whose first output is `start + k·step`, `k < len`.
#[derive(Debug, Clone, Copy)]
struct Run {
    col: usize,
    len: usize,
    start: usize,
    step: usize,
}

/// Dilation from which the blocks of a row are ordered by position (block `b` of every
/// residue, then block `b + 1`: the residues of one `b` are adjacent outputs, so a run reads
/// and writes contiguous memory); below it, by residue (a run strides `4·dil`).
const ADJACENT_FROM: usize = 8;

impl Shape {
    /// The blocks of a row as runs: every output `p < wo` is in exactly one block, the
    /// block of its residue `p mod dil` that starts at `r + 4·dil·b`.
    fn runs(&self) -> Vec<Run> {
        let (d, mut col) = (self.dil, 0);
        let mut runs = Vec::new();
        if d >= ADJACENT_FROM {
            // for each b, the residues r < min(d, wo − 4db)
            let mut start = 0;
            while start < self.wo {
                let len = d.min(self.wo - start);
                runs.push(Run {
                    col,
                    len,
                    start,
                    step: 1,
                });
                col += len;
                start += M * d;
            }
        } else {
            for r in 0..d.min(self.wo) {
                let len = (self.wo - r).div_ceil(d).div_ceil(M);
                runs.push(Run {
                    col,
                    len,
                    start: r,
                    step: M * d,
                });
                col += len;
            }
        }
        runs
    }

    /// Blocks per row.
    fn blocks(&self) -> usize {
        self.runs().iter().map(|r| r.len).sum()
    }

    /// The transposed convolution's shape (channels swapped, lengths swapped).
    pub(crate) fn transposed(&self) -> Shape {
        Shape {
            c: self.o,
            o: self.c,
            w: self.wo,
            wo: self.w,
            lo: -self.lo - 2 * self.dil as isize,
            ..*self
        }
    }
}

/// Multiply-adds of the six matrix products per sample, for choosing the product's library
/// (so that a sample is computed the same way in any batch).
pub(crate) fn work_per_sample(s: &Shape) -> usize {
    T * s.o * s.c * s.h * s.blocks()
}

/// Elements of each transformed-input and product buffer: the columns (blocks of every row
/// of the batch, row after row) are processed in chunks of this size, so that scratch memory
/// stays bounded (16 MB per buffer in f32) whatever the batch. Larger chunks make larger,
/// more efficient products: on ChromBPNet's shape (512 channels, 2 114 positions) DeepLIFT-SHAP
/// took 4.45 s with 2^19, 3.95 s with 2^21, 3.93 s with 2^22 and 3.85 s with 2^23 elements.
/// (Unit tests use small chunks, so that chunks split rows and runs.)
const CHUNK_ELEMS: usize = if cfg!(test) { 1 << 9 } else { 1 << 22 };

/// The chunks of columns that keep each buffer within [`CHUNK_ELEMS`]. Chunks never change
/// what a block computes.
fn chunks(s: &Shape, blocks: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let per_col = T * s.c.max(s.o);
    let step = (CHUNK_ELEMS / per_col.max(1)).max(1);
    let total = s.n * s.h * blocks;
    (0..total).step_by(step).map(move |c| c..(c + step).min(total))
}

/// The parts of the runs of each row that fall in the columns `cols` (global column
/// `q·blocks + k` is block `k` of row `q`), as runs whose columns count from `cols.start`.
fn segments(runs: &[Run], blocks: usize, cols: std::ops::Range<usize>) -> Vec<(usize, Vec<Run>)> {
    let mut out = Vec::new();
    if blocks == 0 || cols.is_empty() {
        return out;
    }
    for q in cols.start / blocks..=(cols.end - 1) / blocks {
        let parts: Vec<Run> = runs
            .iter()
            .filter_map(|run| {
                let (lo, hi) = (q * blocks + run.col, q * blocks + run.col + run.len);
                let (a, b) = (lo.max(cols.start), hi.min(cols.end));
                (a < b).then(|| Run {
                    col: a - cols.start,
                    len: b - a,
                    start: run.start + (a - lo) * run.step,
                    step: run.step,
                })
            })
            .collect();
        out.push((q, parts));
    }
    out
}

/// `ys[i] = x ⊛ g_i` for every transformed weight `us[i]` (of [`transformed_weight`]), see
/// [`Shape`]. `x` is `[n, c, h, w]` and each `y` `[n, o, h, wo]`, standard layout; `y` is
/// overwritten. The input is transformed once.
pub(crate) fn conv_many<F: Float>(x: &[F], s: &Shape, us: &[&[F]], ys: &mut [&mut [F]]) {
    let runs = s.runs();
    let blocks = s.blocks();
    for chunk in chunks(s, blocks) {
        let cols = chunk.len();
        let segs = segments(&runs, blocks, chunk);
        with_scratch(T * s.c * cols, |v: &mut [F]| {
            transform_input(x, s, &segs, cols, v);
            with_scratch(T * s.o * cols, |m: &mut [F]| {
                for (u, y) in us.iter().zip(ys.iter_mut()) {
                    products(s, cols, u, v, m, false);
                    transform_output(m, s, &segs, cols, y);
                }
            })
        })
    }
}

/// `y = Σ_i xs[i] ⊛ g_i` for the transformed weights `us[i]`: the products accumulate, and
/// the output is transformed once.
pub(crate) fn conv_sum<F: Float>(xs: &[&[F]], s: &Shape, us: &[&[F]], y: &mut [F]) {
    let runs = s.runs();
    let blocks = s.blocks();
    for chunk in chunks(s, blocks) {
        let cols = chunk.len();
        let segs = segments(&runs, blocks, chunk);
        with_scratch(T * s.c * cols, |v: &mut [F]| {
            with_scratch(T * s.o * cols, |m: &mut [F]| {
                for (i, (x, u)) in xs.iter().zip(us).enumerate() {
                    transform_input(x, s, &segs, cols, v);
                    products(s, cols, u, v, m, i > 0);
                }
                transform_output(m, s, &segs, cols, y);
            })
        })
    }
}

/// The transformed weight `U[ξ][o][c]` of a weight `[o, c, 3]` in standard layout, or with
/// `transposed` of `[c, o, 3]` used as `g[o, c, k] = w[c, o, 2 − k]` (the kernel of the
/// transposed convolution). It depends on the weight only, not on the lengths or the
/// dilation, so a layer can keep it.
pub(crate) fn transformed_weight<F: Float>(o: usize, c: usize, weight: &[F], transposed: bool) -> Vec<F> {
    let mut u = vec![F::zero(); T * o * c];
    transform_weight(o, c, weight, transposed, &mut u);
    u
}

/// Elements per step of [`lanes`]: a fixed count the compiler turns into vector code.
const LANES: usize = 16;

/// `outs[·][k] = f(ins[·][k])` for every `k < n` (every slice at least `n` long), in blocks
/// of [`LANES`] elements copied to fixed-size arrays, so that the loops vectorise whatever
/// `f` is (a small linear map here), then the remainder one by one.
#[inline(always)]
fn lanes<F: Float, const I: usize, const O: usize>(
    n: usize,
    ins: [&[F]; I],
    outs: [&mut [F]; O],
    f: impl Fn([F; I]) -> [F; O],
) {
    let mut outs = outs;
    let mut k = 0;
    while k + LANES <= n {
        let d: [[F; LANES]; I] = std::array::from_fn(|i| {
            let mut a = [F::zero(); LANES];
            a.copy_from_slice(&ins[i][k..k + LANES]);
            a
        });
        let mut r = [[F::zero(); LANES]; O];
        for l in 0..LANES {
            let v = f(std::array::from_fn(|i| d[i][l]));
            for (ro, vo) in r.iter_mut().zip(v) {
                ro[l] = vo;
            }
        }
        for (out, ro) in outs.iter_mut().zip(&r) {
            out[k..k + LANES].copy_from_slice(ro);
        }
        k += LANES;
    }
    for k in k..n {
        let v = f(std::array::from_fn(|i| ins[i][k]));
        for (out, vo) in outs.iter_mut().zip(v) {
            out[k] = vo;
        }
    }
}

/// `M[ξ] = U[ξ] · V[ξ]` (`+=` if `accumulate`) for the six ξ over `cols` columns.
fn products<F: Float>(s: &Shape, cols: usize, u: &[F], v: &[F], m: &mut [F], accumulate: bool) {
    transformed_products((s.o, s.c, cols), work_per_sample(s), u, v, m, accumulate);
}

/// `U[ξ][o][c] = (G g)[ξ]` for every kernel `g` (`weight[o][c]`, or with `transposed`
/// `weight[c][o]` reversed), with Lavin & Gray's
/// `G = [[¼, 0, 0], [−⅙, −⅙, −⅙], [−⅙, ⅙, −⅙], [1/24, 1/12, ⅙], [1/24, −1/12, ⅙], [0, 0, 1]]`.
fn transform_weight<F: Float>(o_n: usize, c_n: usize, weight: &[F], transposed: bool, u: &mut [F]) {
    let s = &Shape {
        n: 0,
        c: c_n,
        o: o_n,
        h: 0,
        w: 0,
        wo: 0,
        dil: 1,
        lo: 0,
    };
    let (quarter, sixth) = (F::lit(0.25), F::one() / F::lit(6.0));
    let (twelfth, twenty_fourth) = (F::one() / F::lit(12.0), F::one() / F::lit(24.0));
    // the kernels as [o][c][3], taps in order: the transposed weight [c][o][3] is copied
    // with its taps reversed, in square blocks so that both sides stay in cache
    let reordered;
    let kernels: &[F] = if transposed {
        let mut k = vec![F::zero(); weight.len()];
        const B: usize = 16;
        for c0 in (0..s.c).step_by(B) {
            for o0 in (0..s.o).step_by(B) {
                for c in c0..(c0 + B).min(s.c) {
                    for o in o0..(o0 + B).min(s.o) {
                        let (src, dst) = ((c * s.o + o) * 3, (o * s.c + c) * 3);
                        k[dst] = weight[src + 2];
                        k[dst + 1] = weight[src + 1];
                        k[dst + 2] = weight[src];
                    }
                }
            }
        }
        reordered = k;
        &reordered
    } else {
        weight
    };
    // per output channel, its row of each of the six planes
    let mut per_out: Vec<Vec<&mut [F]>> = (0..s.o).map(|_| Vec::with_capacity(T)).collect();
    for plane in u.chunks_mut(s.o * s.c) {
        for (o, row) in plane.chunks_mut(s.c).enumerate() {
            per_out[o].push(row);
        }
    }
    let fill = |(o, rows): (usize, &mut Vec<&mut [F]>)| {
        let [u0, u1, u2, u3, u4, u5] = &mut rows[..] else {
            unreachable!("six transformed positions")
        };
        let ks = &kernels[o * s.c * 3..(o + 1) * s.c * 3];
        for (c, g) in ks.chunks_exact(3).enumerate() {
            let (g0, g1, g2) = (g[0], g[1], g[2]);
            u0[c] = g0 * quarter;
            u1[c] = -(g0 + g1 + g2) * sixth;
            u2[c] = -(g0 - g1 + g2) * sixth;
            u3[c] = g0 * twenty_fourth + g1 * twelfth + g2 * sixth;
            u4[c] = g0 * twenty_fourth - g1 * twelfth + g2 * sixth;
            u5[c] = g2;
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

/// `V[ξ][c][col] = (Bᵀ d)[ξ]` for the six inputs `d` of every block of the chunk
/// in the segments `segs` (per row `q`, its runs cut to the chunk, see [`segments`]), with
/// Lavin & Gray's `Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0],
/// [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]]`.
/// Overwrites all of `v`; channels are transformed in parallel, each row through a copy with
/// the zeros of the padding around it, so that the loops over a run have no bounds to test.
fn transform_input<F: Float>(x: &[F], s: &Shape, segs: &[(usize, Vec<Run>)], cols: usize, v: &mut [F]) {
    let mut per_channel: Vec<Vec<&mut [F]>> = (0..s.c).map(|_| Vec::with_capacity(T)).collect();
    for xi_slice in v.chunks_mut(s.c * cols) {
        for (c, row) in xi_slice.chunks_mut(cols).enumerate() {
            per_channel[c].push(row);
        }
    }
    // the padded row covers the input indices lo ..= last block's start + lo + 5·dil
    let reach = segs
        .iter()
        .flat_map(|(_, runs)| runs)
        .map(|r| r.start + (r.len - 1) * r.step + (T - 1) * s.dil)
        .max()
        .unwrap_or(0);
    let before = (-s.lo).max(0) as usize; // zeros before the row
    let first = (s.lo + before as isize) as usize; // padded index of input index lo
    let padded_len = (first + reach + 1).max(before + s.w);
    let (two, four, five) = (F::lit(2.0), F::lit(4.0), F::lit(5.0));
    // Bᵀ applied to the six inputs of a block
    let bt = |d: [F; T]| {
        [
            four * d[0] - five * d[2] + d[4],
            d[3] + d[4] - four * (d[1] + d[2]),
            four * (d[1] - d[2]) + d[4] - d[3],
            two * (d[3] - d[1]) + d[4] - d[2],
            two * (d[1] - d[3]) + d[4] - d[2],
            four * d[1] - five * d[3] + d[5],
        ]
    };
    let fill = |(c, out): (usize, &mut Vec<&mut [F]>)| {
        let mut padded = vec![F::zero(); padded_len];
        let mut phases: [Vec<F>; 4] = std::array::from_fn(|_| Vec::new());
        let [o0, o1, o2, o3, o4, o5] = &mut out[..] else {
            unreachable!("six transformed positions")
        };
        for (q, runs) in segs {
            let (n, r) = (q / s.h, q % s.h);
            let at = ((n * s.c + c) * s.h + r) * s.w;
            padded[before..before + s.w].copy_from_slice(&x[at..at + s.w]);
            for run in runs {
                let cs = run.col..run.col + run.len;
                let (v0, v1, v2) = (&mut o0[cs.clone()], &mut o1[cs.clone()], &mut o2[cs.clone()]);
                let (v3, v4, v5) = (&mut o3[cs.clone()], &mut o4[cs.clone()], &mut o5[cs]);
                let base = first + run.start;
                let n = run.len;
                if run.step == 1 {
                    // six contiguous input slices, one per tap position
                    let t: [&[F]; T] = std::array::from_fn(|i| &padded[base + i * s.dil..][..n]);
                    lanes(n, t, [v0, v1, v2, v3, v4, v5], bt);
                } else {
                    // blocks `4·dil` apart: tap i of block k is phase i mod 4 at k + i / 4,
                    // with phase p holding the inputs base + step·t + p·dil
                    for (p, ph) in phases.iter_mut().enumerate() {
                        let count = if p < 2 { n + 1 } else { n };
                        ph.clear();
                        ph.extend((0..count).map(|t| padded[base + t * run.step + p * s.dil]));
                    }
                    let t: [&[F]; T] = std::array::from_fn(|i| &phases[i % 4][i / 4..][..n]);
                    lanes(n, t, [v0, v1, v2, v3, v4, v5], bt);
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

/// One output row and the runs of blocks that write it.
type Line<'a, F> = (&'a mut [F], &'a [Run]);

/// `y[n][o][row][p + dil·j] = (Aᵀ m)[j]` for every block (first output `p`) of the chunk's
/// segments `segs`, with `Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0],
/// [0, 1, −1, 8, −8, 1]]`, keeping the outputs that fall inside `wo`. Overwrites those rows
/// of `y`; output channels are transformed in parallel.
fn transform_output<F: Float>(m: &[F], s: &Shape, segs: &[(usize, Vec<Run>)], cols: usize, y: &mut [F]) {
    let plane_m = s.o * cols;
    let (Some((q_first, _)), Some((q_last, _))) = (segs.first(), segs.last()) else {
        return;
    };
    let (q_first, q_last) = (*q_first, *q_last);
    // per output channel, the (sample, row) lines these rows touch, with their runs
    let mut per_out: Vec<Vec<Line<'_, F>>> = (0..s.o).map(|_| Vec::new()).collect();
    let lines = y.chunks_mut(s.wo).enumerate().skip(q_first / s.h * s.o * s.h);
    for (index, line) in lines {
        let (n, o, r) = (index / (s.o * s.h), (index / s.h) % s.o, index % s.h);
        let q = n * s.h + r;
        if n > q_last / s.h {
            break;
        }
        if (q_first..=q_last).contains(&q) {
            per_out[o].push((line, &segs[q - q_first].1));
        }
    }
    let (two, four, eight) = (F::lit(2.0), F::lit(4.0), F::lit(8.0));
    let fill = |(o, lines): (usize, &mut Vec<Line<'_, F>>)| {
        // the four outputs of each block of a run, before they go to the row
        let mut q: [Vec<F>; M] = std::array::from_fn(|_| Vec::new());
        for (line, runs) in lines.iter_mut() {
            for run in runs.iter() {
                let (at, n) = (o * cols + run.col, run.len);
                let ms: [&[F]; T] = std::array::from_fn(|xi| &m[xi * plane_m + at..][..n]);
                for qj in q.iter_mut() {
                    qj.resize(n, F::zero());
                }
                let [q0, q1, q2, q3] = &mut q;
                lanes(n, ms, [&mut q0[..], &mut q1[..], &mut q2[..], &mut q3[..]], |x| {
                    let (a, b) = (x[1] + x[2], x[1] - x[2]);
                    let (c, d) = (x[3] + x[4], x[3] - x[4]);
                    [a + c + x[0], b + two * d, a + four * c, b + eight * d + x[5]]
                });
                for (j, qj) in q.iter().enumerate() {
                    // the blocks whose output j falls inside the row: a prefix of the run
                    let from = run.start + j * s.dil;
                    if from >= s.wo {
                        break;
                    }
                    let valid = n.min((s.wo - from).div_ceil(run.step));
                    if run.step == 1 {
                        line[from..from + valid].copy_from_slice(&qj[..valid]);
                    } else {
                        for (k, &v) in qj[..valid].iter().enumerate() {
                            line[from + k * run.step] = v;
                        }
                    }
                }
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

#[cfg(test)]
mod tests;
