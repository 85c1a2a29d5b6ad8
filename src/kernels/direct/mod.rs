//! Direct convolution, stride 1, one group, for layers with few channels (the MNIST CNN's
//! convolutions, a small Conv1d): no im2col matrix, no packing, each output written once.
//!
//! im2col expands the input `kh·kw` times and a general matrix product then packs it again;
//! for a layer of 8 or 16 output channels over a few hundred positions that copying, the
//! packing and a separate bias pass cost about as much as the multiply-adds. Here each
//! sample's input is copied once into a zero-padded buffer, and a block of output channels
//! ([`OB`] with AVX2, 8 with AVX-512) × two vectors of output positions is summed in
//! registers over every tap, then stored with its bias (and, in forward passes that keep no
//! values, the ReLU and 2×2 max pool that follow: [`Post`]).
//!
//! The output positions are taken in the padded buffer's row-major order: position
//! `y·Wp + x` of a plane `Wp` wide reads the buffer at `y·Wp + x + ky·dh·Wp + kx·dw`, so a
//! block of consecutive positions reads consecutive inputs whatever the row; the columns
//! `x ≥ Wo` are computed and dropped (`(kw − 1)·dw` of every `Wp`).
//!
//! The sums use fused multiply-adds, in a fixed order (input channel, kernel row, kernel
//! column): the same bits alone or in a batch, on one thread or several, and in the scalar
//! code (`mul_add`) that serves machines without AVX2 — though there [`available`] keeps
//! layers on im2col, since `mul_add` without FMA hardware is a library call.
//!
//! The transposed convolution (relevance and gradients flowing back) is a direct
//! convolution too: of the output-side maps with the kernel flipped, input and output channels
//! swapped and padding `d·(k − 1) − p` ([`Packed::transposed`]); a sum of terms stacks the
//! terms' maps as input channels.

use crate::float::Float;
use crate::kernels::elementwise::{max_2x2, relu};

/// Output channels per register block with AVX2 (at most; layers with fewer output channels,
/// as a transposed pass into one input channel, take blocks of one or two channels and more
/// positions).
pub(crate) const OB: usize = 4;

/// Output channels per register block with AVX-512 (32 vector registers) for layers of at
/// least that many.
const OB_WIDE: usize = 8;

/// Whether this machine runs the kernel with AVX-512 (the blocks of [`OB_WIDE`] channels).
fn wide_isa() -> bool {
    #[cfg(target_arch = "x86_64")]
    return pulp::x86::V4::try_new().is_some();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Whether this machine runs the direct kernel with vector fused multiply-adds (x86-64 with
/// AVX2 and FMA). The choice depends on the machine only, never on the batch.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return pulp::x86::V3::try_new().is_some();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// The sizes of one direct convolution (stride 1, one group).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Input channels (all sources together).
    pub(crate) c: usize,
    /// Output channels.
    pub(crate) o: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) dilation: (usize, usize),
    /// Padding: top, left, bottom, right.
    pub(crate) pad: [usize; 4],
}

impl Shape {
    /// Output height and width; `None` if the kernel does not fit the padded input.
    pub(crate) fn out(&self) -> Option<(usize, usize)> {
        let [t, l, b, r] = self.pad;
        let ho = (self.h + t + b).checked_sub(self.dilation.0 * (self.kh - 1))?;
        let wo = (self.w + l + r).checked_sub(self.dilation.1 * (self.kw - 1))?;
        (ho > 0 && wo > 0).then_some((ho, wo))
    }

    /// Width of a padded row.
    fn wp(&self) -> usize {
        self.w + self.pad[1] + self.pad[3]
    }

    /// The output positions computed per plane (`Ho·Wp` rounded up to whole blocks) and the
    /// padded buffer's length per channel (every read of those blocks inside it).
    fn lens(&self, xb: usize) -> (usize, usize) {
        let (ho, _) = self.out().unwrap_or((0, 0));
        let wp = self.wp();
        let positions = (ho * wp).div_ceil(xb) * xb;
        let reach = self.dilation.0 * (self.kh - 1) * wp + self.dilation.1 * (self.kw - 1);
        (positions, positions + reach)
    }
}

/// What the kernel does to each finished sum (bias added) before it stores it: the layers
/// that follow the convolution, fused into it where nobody needs the convolution's own
/// output (a forward pass that keeps no values). The same operations as the layers, in the
/// same order ([`relu`], then [`max_2x2`]), so the same bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Post {
    /// ReLU.
    pub(crate) relu: bool,
    /// A 2×2 / stride-2 max pool without padding (odd last rows and columns dropped).
    pub(crate) pool_2x2: bool,
}

impl Post {
    /// The stored height and width for a convolution output of `(ho, wo)`.
    pub(crate) fn out(&self, (ho, wo): (usize, usize)) -> (usize, usize) {
        if self.pool_2x2 {
            (ho / 2, wo / 2)
        } else {
            (ho, wo)
        }
    }
}

/// Weights packed for the kernel: for each block of `ob` output channels, for each tap
/// `(c, ky, kx)`, the block's `ob` weights (zeros past the last channel).
pub(crate) struct Packed<F> {
    data: Vec<F>,
    taps: usize,
    /// Output channels per block: [`OB_WIDE`] with AVX-512, else [`OB`], or 1 or 2 for fewer
    /// output channels.
    ob: usize,
}

impl<F: Float> Packed<F> {
    /// Output channels per block for a layer of `o` output channels.
    fn block(o: usize) -> usize {
        match o {
            1 => 1,
            2 | 3 => 2,
            o if o >= OB_WIDE && wide_isa() => OB_WIDE,
            _ => OB,
        }
    }

    /// `weight(o, tap)` for `o` output channels and `taps` taps per output channel.
    fn from_fn(o: usize, taps: usize, weight: impl Fn(usize, usize) -> F) -> Self {
        let ob = Self::block(o);
        let blocks = o.div_ceil(ob);
        let mut data = vec![F::zero(); blocks * taps * ob];
        for (b, block) in data.chunks_exact_mut(taps * ob).enumerate() {
            for (t, ws) in block.chunks_exact_mut(ob).enumerate() {
                for (j, w) in ws.iter_mut().enumerate() {
                    if b * ob + j < o {
                        *w = weight(b * ob + j, t);
                    }
                }
            }
        }
        Packed { data, taps, ob }
    }

    /// A forward weight `[O, C, kh, kw]` (standard layout).
    pub(crate) fn forward(w: &[F], o: usize) -> Self {
        let taps = w.len() / o.max(1);
        Self::from_fn(o, taps, |oc, t| w[oc * taps + t])
    }

    /// The transposed convolution of a sum of terms with weights `ws` (each `[O, C, kh, kw]`,
    /// standard layout): `C` output channels, `t·O` input channels (term by term), each kernel
    /// flipped in both axes.
    pub(crate) fn transposed(ws: &[&[F]], o: usize, c: usize, kh: usize, kw: usize) -> Self {
        // nested loops, no divisions per weight: a transposed pass packs per call
        let k = kh * kw;
        let taps = ws.len() * o * k;
        let ob = Self::block(c);
        let mut data = vec![F::zero(); c.div_ceil(ob) * taps * ob];
        for ci in 0..c {
            let (b, j) = (ci / ob, ci % ob);
            let block = &mut data[b * taps * ob..(b + 1) * taps * ob];
            let mut slots = block.iter_mut().skip(j).step_by(ob);
            for w in ws {
                for oc in 0..o {
                    let kernel = &w[(oc * c + ci) * k..(oc * c + ci + 1) * k];
                    // flipped in both axes: the taps in reverse order (the kernel first in
                    // the zip, so that its end takes no slot)
                    for (&v, slot) in kernel.iter().rev().zip(&mut slots) {
                        *slot = v;
                    }
                }
            }
        }
        Packed { data, taps, ob }
    }
}

/// The direct convolution of `n` samples. `sources` are the input's channels in order, each
/// `[N, c_k, H, W]` (standard layout, `Σ c_k = shape.c`); the result `[N, O, Ho, Wo]` is
/// appended to `out` (front to back, so that it needs no zero fill); `bias` (per output
/// channel) is added to each finished sum, as a separate bias pass would; then `post`
/// (`[N, O, Ho/2, Wo/2]` with its pool).
pub(crate) fn conv<F: Float>(
    shape: &Shape,
    n: usize,
    sources: &[(&[F], usize)],
    packed: &Packed<F>,
    bias: Option<&[F]>,
    post: Post,
    out: &mut Vec<F>,
) {
    let mut job = Job {
        shape,
        n,
        sources,
        packed,
        bias,
        post,
        half: Vec::new(),
        out,
    };
    if !conv_vector(&mut job) {
        conv_scalar(&mut job);
    }
}

/// One call of [`conv`]: its arguments and output.
struct Job<'a, 'o, F> {
    shape: &'a Shape,
    n: usize,
    sources: &'a [(&'a [F], usize)],
    packed: &'a Packed<F>,
    bias: Option<&'a [F]>,
    post: Post,
    /// Scratch of the fused pool: a plane's pairs of columns.
    half: Vec<F>,
    /// Outputs are appended: sample by sample, channel by channel, row by row.
    out: &'o mut Vec<F>,
}

impl<F: Float> Job<'_, '_, F> {
    /// Copies sample `i`'s channels into `padded` (`c` planes of `plane` elements, `Wp`
    /// wide), inside the zero padding, which stays as it is.
    fn fill(&self, i: usize, plane: usize, padded: &mut [F]) {
        let s = self.shape;
        let wp = s.wp();
        let [top, left, ..] = s.pad;
        let mut ch = 0;
        for &(src, c) in self.sources {
            let len = c * s.h * s.w;
            for (k, input) in src[i * len..(i + 1) * len].chunks_exact(s.h * s.w).enumerate() {
                let dst = &mut padded[(ch + k) * plane..(ch + k + 1) * plane];
                for (y, row) in input.chunks_exact(s.w).enumerate() {
                    let at = (y + top) * wp + left;
                    dst[at..at + s.w].copy_from_slice(row);
                }
            }
            ch += c;
        }
    }

    /// Appends the next output channel from `wide`, its sums (bias added) at every position
    /// of the padded row-major order: the first `Wo` of each row of `Wp`, through the
    /// [`Post`] steps (inlined into the vector kernel, so that they are compiled with its
    /// instruction set).
    #[inline(always)]
    fn store(&mut self, wide: &[F]) {
        let s = self.shape;
        let Some((ho, wo)) = s.out() else { return };
        let wp = s.wp();
        match self.post {
            Post {
                relu: false,
                pool_2x2: false,
            } => {
                for row in wide.chunks(wp).take(ho) {
                    self.out.extend_from_slice(&row[..wo]);
                }
            }
            Post {
                relu: true,
                pool_2x2: false,
            } => {
                for (dst, row) in grow(self.out, ho * wo).chunks_exact_mut(wo).zip(wide.chunks(wp)) {
                    for (o, &v) in dst.iter_mut().zip(&row[..wo]) {
                        *o = relu(v);
                    }
                }
            }
            Post {
                relu: true,
                pool_2x2: true,
            } if wp % 2 == 0 => {
                // After ReLU no value is NaN or −0, so the maximum of a window is one bit
                // pattern whatever the order of the comparisons. Pairs of columns first, over
                // the whole plane at once (an even `Wp`: no pair straddles two rows), in blocks
                // of fixed size that vectorise; then pairs of rows.
                let mx = |p: F, q: F| if q > p { q } else { p };
                let half = &mut self.half;
                half.clear();
                half.resize(ho / 2 * wp, F::zero());
                let src = &wide[..ho / 2 * 2 * wp];
                for (h, p) in half.iter_mut().zip(src.chunks_exact(2)) {
                    *h = mx(relu(p[0]), relu(p[1]));
                }
                let hw = wp / 2;
                let plane = grow(self.out, ho / 2 * (wo / 2));
                for (dst, rows) in plane
                    .chunks_exact_mut((wo / 2).max(1))
                    .zip(half.chunks_exact(2 * hw))
                {
                    let (a, b) = rows.split_at(hw);
                    for ((o, &p), &q) in dst.iter_mut().zip(&a[..wo / 2]).zip(&b[..wo / 2]) {
                        *o = mx(p, q);
                    }
                }
            }
            Post {
                relu: r,
                pool_2x2: true,
            } => {
                // an odd `Wp`, or the pool alone: window by window, in the pool's order
                let f = |v: F| if r { relu(v) } else { v };
                let plane = grow(self.out, ho / 2 * (wo / 2));
                for (dst, pair) in plane
                    .chunks_exact_mut((wo / 2).max(1))
                    .zip(wide.chunks_exact(2 * wp))
                {
                    let (r0, r1) = pair.split_at(wp);
                    let (r0, r1) = (&r0[..wo / 2 * 2], &r1[..wo / 2 * 2]);
                    for ((o, p), q) in dst.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                        *o = max_2x2(f(p[0]), f(p[1]), f(q[0]), f(q[1]));
                    }
                }
            }
        }
    }

    /// Each tap's offset in the padded buffer, in the packed weights' order.
    fn offsets(&self, plane: usize) -> Vec<usize> {
        let s = self.shape;
        let (wp, (dh, dw)) = (s.wp(), s.dilation);
        let mut offsets = Vec::with_capacity(self.packed.taps);
        for c in 0..s.c {
            for ky in 0..s.kh {
                for kx in 0..s.kw {
                    offsets.push(c * plane + ky * dh * wp + kx * dw);
                }
            }
        }
        offsets
    }
}

/// The next `len` elements of `out`, appended (zeros, to be overwritten; a whole plane at a
/// time, one fill): a loop writing into a slice vectorises where one pushing through `extend`
/// stays scalar (the row-pair maxima of the fused pool took 6 % of a pixel-flipping run
/// through `extend`).
#[inline(always)]
fn grow<F: Float>(out: &mut Vec<F>, len: usize) -> &mut [F] {
    let start = out.len();
    out.resize(start + len, F::zero());
    &mut out[start..]
}

/// [`conv`] one output at a time (machines without the vector kernel; the same fused
/// multiply-adds in the same order, so the same bits).
fn conv_scalar<F: Float>(job: &mut Job<'_, '_, F>) {
    let s = *job.shape;
    let (positions, plane) = s.lens(1);
    let mut padded = vec![F::zero(); s.c * plane];
    let offsets = job.offsets(plane);
    let (taps, ob) = (job.packed.taps, job.packed.ob);
    let mut wide = vec![F::zero(); positions];
    for i in 0..job.n {
        job.fill(i, plane, &mut padded);
        for oc in 0..s.o {
            let (b, j) = (oc / ob, oc % ob);
            let wb = &job.packed.data[b * taps * ob..(b + 1) * taps * ob];
            for (f, sum) in wide.iter_mut().enumerate() {
                let mut acc = F::zero();
                for (&off, ws) in offsets.iter().zip(wb.chunks_exact(ob)) {
                    acc = ws[j].mul_add(padded[f + off], acc);
                }
                *sum = match job.bias {
                    Some(bias) => acc + bias[oc],
                    None => acc,
                };
            }
            job.store(&wide);
        }
    }
}

/// The vector kernel for `f32` and `f64` on x86-64 with AVX2 and FMA (AVX-512 where the
/// machine has it: twice the positions per instruction, the same bits): `false` (nothing
/// done) elsewhere.
fn conv_vector<T: Float>(job: &mut Job<'_, '_, T>) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(v4) = pulp::x86::V4::try_new() {
            vector_blocks(v4, job);
            return true;
        }
        if let Some(v3) = pulp::x86::V3::try_new() {
            vector_blocks(v3, job);
            return true;
        }
    }
    let _ = job;
    false
}

/// [`conv_vector`] with the instruction set `s`: register blocks of the packed weights'
/// channels × two to eight vectors of positions.
#[cfg(target_arch = "x86_64")]
fn vector_blocks<T: Float, S: pulp::Simd>(s: S, job: &mut Job<'_, '_, T>) {
    match job.packed.ob {
        1 => s.vectorize(Blocks::<T, 1, 8>(job)),
        2 => s.vectorize(Blocks::<T, 2, 4>(job)),
        OB => s.vectorize(Blocks::<T, OB, 2>(job)),
        _ => s.vectorize(Blocks::<T, OB_WIDE, 2>(job)),
    }
}

/// A [`Job`] with `B` output channels × `NV` vectors of positions per register block, run
/// through `pulp::Simd::vectorize` (compiled for the instruction set it is given).
#[cfg(target_arch = "x86_64")]
struct Blocks<'j, 'a, 'o, T, const B: usize, const NV: usize>(&'j mut Job<'a, 'o, T>);

#[cfg(target_arch = "x86_64")]
impl<T: Float, const B: usize, const NV: usize> pulp::WithSimd for Blocks<'_, '_, '_, T, B, NV> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Blocks(job) = self;
        let s = *job.shape;
        let l = T::width::<S>();
        let x = NV * l;
        let (positions, plane) = s.lens(x);
        let mut padded = vec![<T as num_traits::Zero>::zero(); s.c * plane];
        let offsets = job.offsets(plane);
        let taps = job.packed.taps;
        debug_assert_eq!(job.packed.ob, B);
        // a block's sums at every position of the padded order
        let mut wide = vec![<T as num_traits::Zero>::zero(); B * positions];
        for i in 0..job.n {
            job.fill(i, plane, &mut padded);
            for (b, wb) in job.packed.data.chunks_exact(taps * B).enumerate() {
                let bias: [T::W<S>; B] = std::array::from_fn(|j| {
                    let beta = job.bias.and_then(|bias| bias.get(b * B + j).copied());
                    T::wsplat(simd, beta.unwrap_or(<T as num_traits::Zero>::zero()))
                });
                for f0 in (0..positions).step_by(x) {
                    let mut acc = [[T::wzero(simd); NV]; B];
                    for (&off, ws) in offsets.iter().zip(wb.chunks_exact(B)) {
                        let xs: [T::W<S>; NV] = T::wload_n::<S, NV>(&padded[f0 + off..]);
                        for (acc, &w) in acc.iter_mut().zip(ws) {
                            let w = T::wsplat(simd, w);
                            for (a, &xv) in acc.iter_mut().zip(&xs) {
                                *a = T::wfma(simd, w, xv, *a);
                            }
                        }
                    }
                    for (j, (acc, &beta)) in acc.iter().zip(&bias).enumerate() {
                        let dst = &mut wide[j * positions + f0..j * positions + f0 + x];
                        for (v, &a) in acc.iter().enumerate() {
                            // without a bias the sum as it is (a −0 stays −0)
                            let a = if job.bias.is_some() {
                                T::wadd(simd, a, beta)
                            } else {
                                a
                            };
                            T::wstore::<S>(a, &mut dst[v * l..]);
                        }
                    }
                }
                for j in 0..B.min(s.o - b * B) {
                    job.store(&wide[j * positions..(j + 1) * positions]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
