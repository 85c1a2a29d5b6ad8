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

/// The maximum of a 2×2 window `[a, b, c, d]` (row-major) and the position (0–3) of its
/// first occurrence, as [`MaxPool2d::argmax`](super::MaxPool2d::argmax) (strictly greater wins): the maximum equals
/// one or more of the four, and the first of those wins.
#[inline]
pub(super) fn max_2x2<F: Float>(a: F, b: F, c: F, d: F) -> (F, usize) {
    // the earlier of two equal values, so that the value is the first maximum's too
    // (±0 included)
    let top = |p: F, q: F| if q > p { q } else { p };
    let m = top(top(a, b), top(c, d));
    let at = if a == m {
        0
    } else if b == m {
        1
    } else if c == m {
        2
    } else {
        3
    };
    (m, at)
}

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
                // `top` is `max_2x2`'s: the earlier of two equal values
                let top = |p: F, q: F| if q > p { q } else { p };
                *d = top(top(p[0], p[1]), top(q[0], q[1]));
            }
        }
    }
}

/// Which position of a 2×2 window `[a, b, c, d]` holds [`max_2x2`]'s first maximum, as four
/// flags: it is strictly greater than every earlier value and at least every later one.
#[inline]
pub(super) fn first_max_flags<F: Float>(a: F, b: F, c: F, d: F) -> [bool; 4] {
    let (ba, ca, da) = (b > a, c > a, d > a);
    let (cb, db, dc) = (c > b, d > b, d > c);
    [!ba & !ca & !da, ba & !cb & !db, ca & cb & !dc, da & db & dc]
}

/// Zeros the last row and column of an `h × w` plane where they lie outside every 2×2
/// window (odd sizes): nothing is routed there.
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
        for (n, c, h, w) in [(1, 2, 4, 4), (2, 3, 5, 7), (1, 1, 2, 9)] {
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
