//! The common 2×2 / stride-2 max-pool window, read in one pass (the fast paths of
//! [`MaxPool2d`](super::MaxPool2d)'s forward, routing and cross-max).

use crate::float::Float;
use ndarray::ArrayViewD;

/// `(n, c, h, w, h/2, w/2)` of a 2×2 / stride-2 pool's input, if `input` is 4-D, has at
/// least one window, and `output` has the pooled shape.
pub(super) fn dims_2x2<F>(input: &ArrayViewD<'_, F>, output: &ArrayViewD<'_, F>) -> Option<[usize; 6]> {
    if input.ndim() != 4 {
        return None;
    }
    let (n, c, h, w) = (
        input.shape()[0],
        input.shape()[1],
        input.shape()[2],
        input.shape()[3],
    );
    let (ho, wo) = (h / 2, w / 2);
    (ho > 0 && wo > 0 && output.shape() == [n, c, ho, wo]).then_some([n, c, h, w, ho, wo])
}

/// The maximum of a 2×2 window `[a, b, c, d]` (row-major) as
/// [`MaxPool2d::argmax`](super::MaxPool2d::argmax) takes it: of two equal values the earlier,
/// so that the value is the first maximum's ([`first_max_flags`]), ±0 included.
pub(super) use crate::kernels::elementwise::max_2x2;

/// One plane of the 2×2 / stride-2 pool's values ([`max_2x2`]'s maximum of each window, the
/// same comparisons in the same order), run through [`crate::kernels::simd::vectorized`]:
/// compiled for AVX2, the compiler turns the row loop into vector maxima.
pub(super) struct PoolPlane<'a, F> {
    pub(super) plane: &'a [F],
    pub(super) dst: &'a mut [F],
    pub(super) w: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
}

impl<F: Float> pulp::WithSimd for PoolPlane<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let PoolPlane {
            plane,
            dst,
            w,
            ho,
            wo,
        } = self;
        for (pair, row) in plane.chunks_exact(2 * w).take(ho).zip(dst.chunks_exact_mut(wo)) {
            let (r0, r1) = pair.split_at(w);
            for ((p, q), d) in r0.chunks_exact(2).zip(r1.chunks_exact(2)).zip(row.iter_mut()) {
                *d = max_2x2(p[0], p[1], q[0], q[1]);
            }
        }
    }
}

/// One plane of DeepLIFT's 2×2 cross-max (`MaxPool2d::cross_max_2x2`), without branches:
/// the first maxima of the input's and the baseline's windows as flags
/// ([`first_max_flags`]), each position's two candidate values computed and one selected, run
/// through [`crate::kernels::simd::vectorized`]. The branches on varied inputs (which
/// position is a window's maximum, which differences are below the threshold) mispredicted
/// often enough to make this pass 45 % of a batch-64 DeepLift call on the small CNN.
pub(super) struct CrossMaxPlane<'a, F> {
    pub(super) px: &'a [F],
    pub(super) p0: &'a [F],
    pub(super) pm: &'a [F],
    pub(super) dst: &'a mut [F],
    pub(super) w: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) threshold: F,
}

impl<F: Float> pulp::WithSimd for CrossMaxPlane<'_, F> {
    type Output = ();
    // lane `l` of four arrays at once: index loops read clearer than zipped iterators
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let CrossMaxPlane {
            px,
            p0,
            pm,
            dst,
            w,
            ho,
            wo,
            threshold,
        } = self;
        let zero = F::zero();
        let pick = |f: bool, v: F| if f { v } else { zero };
        for oy in 0..ho {
            let (r0, r1) = (2 * oy * w, (2 * oy + 1) * w);
            #[allow(unused_mut)]
            let mut first = 0;
            #[cfg(target_arch = "x86_64")]
            if let Some(v3) = pulp::x86::V3::try_new() {
                // eight windows at a time in vectors, the last group padded with zeros
                // (their lanes computed and dropped)
                while first < wo {
                    let count = (wo - first).min(8);
                    // (closures here would be compiled without AVX2: plain loops)
                    let (mut xs, mut x0s, mut ms) = ([[zero; 8]; 4], [[zero; 8]; 4], [zero; 8]);
                    for l in 0..count {
                        for (k, at) in window(r0, r1, first + l).into_iter().enumerate() {
                            xs[k][l] = px[at];
                            x0s[k][l] = p0[at];
                        }
                        ms[l] = pm[oy * wo + first + l];
                    }
                    let out = cross_max_8(v3, &xs, &x0s, &ms, threshold);
                    for l in 0..count {
                        for (k, at) in window(r0, r1, first + l).into_iter().enumerate() {
                            dst[at] = out[k][l];
                        }
                    }
                    first += count;
                }
            }
            for ox in first..wo {
                let at = window(r0, r1, ox);
                let (xs, x0s) = (at.map(|i| px[i]), at.map(|i| p0[i]));
                // the windows' maxima and first-maximum flags
                let y = max_2x2(xs[0], xs[1], xs[2], xs[3]);
                let y0 = max_2x2(x0s[0], x0s[1], x0s[2], x0s[3]);
                let fx = first_max_flags(xs[0], xs[1], xs[2], xs[3]);
                let f0 = first_max_flags(x0s[0], x0s[1], x0s[2], x0s[3]);
                let m = pm[oy * wo + ox];
                let hat = if y > y0 { y } else { y0 };
                let (from_x, from_x0) = (m * (hat - y0), m * (y - hat));
                for k in 0..4 {
                    let dx = xs[k] - x0s[k];
                    // the gradient where Δx is below the threshold, else the general path's
                    // sum (0 + from_x) + (0 + from_x0) over Δx
                    let gradient = pick(fx[k], m);
                    let shared = (pick(fx[k], from_x) + pick(f0[k], from_x0)) / dx;
                    dst[at[k]] = if dx.abs() < threshold { gradient } else { shared };
                }
            }
        }
    }
}

/// One plane of the 2×2 / stride-2 routing (`MaxPool2d::route_to_max_2x2`): each window's
/// value `v` to its first maximum, +0 elsewhere, without branches: eight windows at a time in
/// AVX2 vectors where the machine has them (the last group padded), else one by one.
pub(super) struct RoutePlane<'a, F> {
    pub(super) plane: &'a [F],
    pub(super) dst: &'a mut [F],
    pub(super) v: &'a [F],
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) wo: usize,
}

impl<F: Float> pulp::WithSimd for RoutePlane<'_, F> {
    type Output = ();
    // lane `l` of four arrays at once: index loops read clearer than zipped iterators
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let RoutePlane {
            plane,
            dst,
            v,
            h,
            w,
            wo,
        } = self;
        let zero = F::zero();
        zero_outside_2x2(dst, h, w);
        for (oy, v) in v.chunks_exact(wo).enumerate() {
            let (r0, r1) = (2 * oy * w, (2 * oy + 1) * w);
            #[allow(unused_mut)]
            let mut first = 0;
            #[cfg(target_arch = "x86_64")]
            if let Some(s) = pulp::x86::V3::try_new() {
                let vzero = F::vzero(s);
                while first < wo {
                    let count = (wo - first).min(8);
                    let (mut xs, mut vs) = ([[zero; 8]; 4], [zero; 8]);
                    for l in 0..count {
                        for (k, at) in window(r0, r1, first + l).into_iter().enumerate() {
                            xs[k][l] = plane[at];
                        }
                        vs[l] = v[first + l];
                    }
                    let mut out = [[zero; 8]; 4];
                    for g in 0..8 / F::L {
                        let o = g * F::L;
                        let a = [
                            F::load(&xs[0][o..]),
                            F::load(&xs[1][o..]),
                            F::load(&xs[2][o..]),
                            F::load(&xs[3][o..]),
                        ];
                        // v + 0 at the first maximum (a −0 becomes +0), +0 elsewhere
                        let value = F::vadd(s, F::load(&vs[o..]), vzero);
                        for (k, flag) in vflags::<F>(s, a).into_iter().enumerate() {
                            F::store(F::vselect(s, flag, value, vzero), &mut out[k][o..]);
                        }
                    }
                    for l in 0..count {
                        for (k, at) in window(r0, r1, first + l).into_iter().enumerate() {
                            dst[at] = out[k][l];
                        }
                    }
                    first += count;
                }
            }
            let one = |f: bool| F::from_u8(u8::from(f)).unwrap_or(zero);
            for ox in first..wo {
                let at = window(r0, r1, ox);
                let flags = first_max_flags(plane[at[0]], plane[at[1]], plane[at[2]], plane[at[3]]);
                // v·1 or v·0, plus 0 so that a negative v leaves +0 and not −0 (no branch);
                // a non-finite v would leave NaN beside its maximum; relevance is finite here
                for (&i, f) in at.iter().zip(flags) {
                    dst[i] = v[ox] * one(f) + zero;
                }
            }
        }
    }
}

/// [`CrossMaxPlane`] for eight windows side by side in vectors (one for `f32`, two for
/// `f64`): `xs[k][l]` and `x0s[k][l]` are position `k` of window `l` of the input and the
/// baseline, `m` the windows' multipliers; the result is each position's value. The same
/// operations as the one-window code (comparisons, selects, one division per position), so
/// the same bits.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn cross_max_8<F: Float>(
    s: pulp::x86::V3,
    xs: &[[F; 8]; 4],
    x0s: &[[F; 8]; 4],
    m: &[F],
    threshold: F,
) -> [[F; 8]; 4] {
    let mut out = [[F::zero(); 8]; 4];
    let (zero, thr) = (F::vzero(s), F::splat(s, threshold));
    for v in 0..8 / F::L {
        let o = v * F::L;
        let a = [
            F::load(&xs[0][o..]),
            F::load(&xs[1][o..]),
            F::load(&xs[2][o..]),
            F::load(&xs[3][o..]),
        ];
        let b = [
            F::load(&x0s[0][o..]),
            F::load(&x0s[1][o..]),
            F::load(&x0s[2][o..]),
            F::load(&x0s[3][o..]),
        ];
        let mv = F::load(&m[o..]);
        let (y, y0) = (vmax4::<F>(s, a), vmax4::<F>(s, b));
        let (fx, f0) = (vflags::<F>(s, a), vflags::<F>(s, b));
        let hat = F::vselect(s, F::vgt(s, y, y0), y, y0);
        let from_x = F::vmul(s, mv, F::vsub(s, hat, y0));
        let from_x0 = F::vmul(s, mv, F::vsub(s, y, hat));
        for k in 0..4 {
            let dx = F::vsub(s, a[k], b[k]);
            let gradient = F::vselect(s, fx[k], mv, zero);
            let sum = F::vadd(
                s,
                F::vselect(s, fx[k], from_x, zero),
                F::vselect(s, f0[k], from_x0, zero),
            );
            let shared = F::vdiv(s, sum, dx);
            let small = F::vlt(s, F::vabs(s, dx), thr);
            F::store(F::vselect(s, small, gradient, shared), &mut out[k][o..]);
        }
    }
    out
}

/// [`max_2x2`] on vectors.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn vmax4<F: Float>(s: pulp::x86::V3, [a, b, c, d]: [F::V; 4]) -> F::V {
    let ab = F::vselect(s, F::vgt(s, b, a), b, a);
    let cd = F::vselect(s, F::vgt(s, d, c), d, c);
    F::vselect(s, F::vgt(s, cd, ab), cd, ab)
}

/// [`first_max_flags`] on vectors.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn vflags<F: Float>(s: pulp::x86::V3, [a, b, c, d]: [F::V; 4]) -> [F::M; 4] {
    let (ba, ca, da) = (F::vgt(s, b, a), F::vgt(s, c, a), F::vgt(s, d, a));
    let (cb, db, dc) = (F::vgt(s, c, b), F::vgt(s, d, b), F::vgt(s, d, c));
    let (nba, nca, nda) = (F::mnot(s, ba), F::mnot(s, ca), F::mnot(s, da));
    let (ncb, ndb, ndc) = (F::mnot(s, cb), F::mnot(s, db), F::mnot(s, dc));
    [
        F::mand(s, F::mand(s, nba, nca), nda),
        F::mand(s, F::mand(s, ba, ncb), ndb),
        F::mand(s, F::mand(s, ca, cb), ndc),
        F::mand(s, F::mand(s, da, db), dc),
    ]
}

/// The positions of window `ox` of the row pair starting at `r0` and `r1`, row-major.
#[inline(always)]
fn window(r0: usize, r1: usize, ox: usize) -> [usize; 4] {
    let c = 2 * ox;
    [r0 + c, r0 + c + 1, r1 + c, r1 + c + 1]
}

/// Which position of a 2×2 window `[a, b, c, d]` holds [`max_2x2`]'s first maximum, as four
/// flags: it is strictly greater than every earlier value and at least every later one.
#[inline(always)]
pub(super) fn first_max_flags<F: Float>(a: F, b: F, c: F, d: F) -> [bool; 4] {
    let (ba, ca, da) = (b > a, c > a, d > a);
    let (cb, db, dc) = (c > b, d > b, d > c);
    [!ba & !ca & !da, ba & !cb & !db, ca & cb & !dc, da & db & dc]
}

/// Zeros the last row and column of an `h × w` plane where they lie outside every 2×2
/// window (odd sizes): nothing is routed there.
#[inline(always)]
pub(super) fn zero_outside_2x2<F: Float>(plane: &mut [F], h: usize, w: usize) {
    if h % 2 == 1 {
        plane[(h - 1) * w..].fill(F::zero());
    }
    if w % 2 == 1 {
        for r in 0..h - h % 2 {
            plane[r * w + w - 1] = F::zero();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::MaxPool2d;
    use ndarray::ArrayD;
    use ndarray::IxDyn;

    /// The one-pass 2×2 forward (compiled for AVX2 where the machine has it) gives the values
    /// of `argmax`, bit for bit: ties of +0 and −0 in every order, odd sizes, rows of several
    /// vectors.
    #[test]
    fn forward_2x2_matches_argmax() {
        use crate::layers::Layer;
        let pool = MaxPool2d::square(2).unwrap();
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            [0.0, -0.0, 1.0, -1.0, 0.5][((state >> 33) % 5) as usize]
        };
        for (n, c, h, w) in [
            (1, 2, 4, 4),
            (2, 3, 5, 7),
            (1, 1, 2, 9),
            (2, 2, 28, 28),
            (1, 1, 6, 70),
        ] {
            let x = ArrayD::from_shape_simple_fn(IxDyn(&[n, c, h, w]), &mut next);
            let fast = pool.forward(x.view()).unwrap();
            let (general, _) = pool.argmax(&x.view()).unwrap();
            let bits = |a: &ArrayD<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&general.into_dyn()), "shape {:?}", x.shape());
            let x32 = x.mapv(|v| v as f32);
            let fast32 = pool.forward(x32.view()).unwrap();
            assert_eq!(
                bits(&fast32.mapv(f64::from)),
                bits(&fast),
                "f32, shape {:?}",
                x.shape()
            );
        }
    }

    /// The one-pass 2×2 routing gives the general path's result (argmax, then route) bit for
    /// bit: values on a coarse grid make ties common, and odd sizes leave a row and a column
    /// outside every window.
    #[test]
    fn route_to_max_2x2_matches_argmax_and_route() {
        let pool = MaxPool2d::square(2).unwrap();
        let mut state = 99u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 5) as f64 - 2.0
        };
        for (n, c, h, w) in [(1, 2, 4, 4), (2, 3, 5, 7), (1, 1, 2, 9), (2, 2, 6, 41)] {
            let x = ArrayD::from_shape_simple_fn(IxDyn(&[n, c, h, w]), &mut next);
            let v = ArrayD::from_shape_simple_fn(IxDyn(&[n, c, h / 2, w / 2]), || next() + 0.5); // some negative: a −0 would show in the bits
            let fast = pool.route_to_max_2x2(&x.view(), &v.view()).expect("2×2 path");
            let (_, idx) = pool.argmax(&x.view()).unwrap();
            let general = pool.route(x.shape(), &idx, &v.view()).unwrap();
            let bits = |a: &ArrayD<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&general), "shape {:?}", x.shape());
            assert!(fast.iter().filter(|&&r| r != 0.0).count() == v.len());
        }
    }
}
