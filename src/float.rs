//! The float bundle: everything this crate needs of `f32` and `f64`.

use ndarray::NdFloat;
#[cfg(feature = "faer")]
use ndarray::{ArrayView2, ArrayViewMut2};
use num_traits::FromPrimitive;

/// A floating-point element type this crate can compute with: `f32` (the default) or `f64`.
///
/// It bundles ndarray's [`NdFloat`] (arithmetic, matrix products) with [`FromPrimitive`]
/// (literals from `f64`). It is implemented for `f32` and `f64` only.
pub trait Float:
    NdFloat
    + FromPrimitive
    + Default
    + Send
    + Sync
    + 'static
    + crate::kernels::simd::Lane
    + crate::kernels::simd::Wide
{
    /// Converts an `f64` literal or parameter into this type (rounding for `f32`).
    fn lit(x: f64) -> Self {
        Self::from_f64(x).unwrap_or_else(Self::nan)
    }
    /// Converts to `f64` (for error messages and summaries).
    fn as_f64(self) -> f64;

    /// The error function `erf(x)` (the exact GELU's), to the type's precision: libm's in
    /// `f64`; in `f32` a rational approximation on `[−4, 4]` (Eigen's
    /// `generic_fast_erf_float`, within a few units in the last place of `f32`; ±1 outside),
    /// which vectorises (libm's is scalar code in `f64`, a quarter of a ViT's forward pass).
    /// Plain multiply-adds, not `mul_add`: without the `fma` target feature that is a call.
    #[doc(hidden)]
    fn erf(self) -> Self {
        Self::lit(libm::erf(self.as_f64()))
    }

    /// `c = a · b` (`c += a · b` if `accumulate`) through faer if the three views are row- or
    /// column-major; `false` (and `c` untouched) otherwise; on several threads if
    /// `parallel` and the product is large.
    /// An implementation detail of the `faer` feature.
    #[doc(hidden)]
    #[cfg(feature = "faer")]
    fn faer_gemm(
        a: &ArrayView2<'_, Self>,
        b: &ArrayView2<'_, Self>,
        c: &mut ArrayViewMut2<'_, Self>,
        parallel: bool,
        accumulate: bool,
    ) -> bool;
}

/// A faer view of a row-major or column-major ndarray view, if it is either.
#[cfg(feature = "faer")]
fn faer_ref<'a, T: faer::traits::ComplexField>(a: &ArrayView2<'a, T>) -> Option<faer::MatRef<'a, T>> {
    let (m, n) = a.dim();
    if let Some(s) = a.to_slice() {
        return Some(faer::MatRef::from_row_major_slice(s, m, n));
    }
    let s = (*a).reversed_axes().to_slice()?;
    Some(faer::MatRef::from_column_major_slice(s, m, n))
}

/// `c = a · b` (`c += a · b` if `accumulate`) through faer, on the `parallel` feature's
/// threads for large products if `parallel`.
#[cfg(feature = "faer")]
fn faer_gemm<T: faer::traits::ComplexField + Copy + num_traits::One>(
    a: &ArrayView2<'_, T>,
    b: &ArrayView2<'_, T>,
    c: &mut ArrayViewMut2<'_, T>,
    parallel: bool,
    accumulate: bool,
) -> bool {
    let (Some(ar), Some(br)) = (faer_ref(a), faer_ref(b)) else {
        return false;
    };
    let (m, n) = c.dim();
    let Some(cs) = c.as_slice_mut() else { return false };
    let cm = faer::MatMut::from_row_major_slice_mut(cs, m, n);
    #[cfg(feature = "parallel")]
    let par = {
        let threads = rayon::current_num_threads();
        // inside a task of the pool (a part of a batch, a product of a batched MatMul) the
        // other threads have their own work: the product stays on this thread
        let in_pool = rayon::current_thread_index().is_some();
        if parallel && !in_pool && threads > 1 && m * n * ar.ncols() >= 1 << 20 {
            faer::Par::rayon(threads)
        } else {
            faer::Par::Seq
        }
    };
    #[cfg(not(feature = "parallel"))]
    let par = {
        let _ = parallel;
        faer::Par::Seq
    };
    let accum = if accumulate {
        faer::Accum::Add
    } else {
        faer::Accum::Replace
    };
    let parallel = !matches!(par, faer::Par::Seq);
    faer::linalg::matmul::matmul(cm, accum, ar, br, T::one(), par);
    clear_upper_state(parallel);
    true
}

/// `vzeroupper` on this thread (and on every thread of the pool if the product ran on
/// several): faer's x86 kernels are assembly that leaves the upper halves of the vector
/// registers dirty, and every SSE instruction compiled afterwards (this crate's loops, built
/// for baseline x86-64) then pays a false dependency on them — measured here, a GELU over a
/// ViT's MLP activations ran 3.5 times slower after one faer product than before. A
/// function that uses 256-bit registers ends with `vzeroupper` (LLVM inserts it), which
/// is what [`Touch`] is; pulp makes it callable without `unsafe`.
#[cfg(feature = "faer")]
fn clear_upper_state(all_threads: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        struct Touch;
        impl pulp::WithSimd for Touch {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) {
                let v = simd.splat_f32s(1.0);
                std::hint::black_box(simd.add_f32s(v, v));
            }
        }
        let clear = || {
            if let Some(v3) = pulp::x86::V3::try_new() {
                pulp::Simd::vectorize(v3, Touch);
            }
        };
        #[cfg(feature = "parallel")]
        if all_threads {
            rayon::broadcast(|_| clear());
        }
        #[cfg(not(feature = "parallel"))]
        let _ = all_threads;
        clear();
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = all_threads;
}

impl Float for f32 {
    fn as_f64(self) -> f64 {
        self as f64
    }

    #[inline(always)]
    fn erf(self) -> f32 {
        // Eigen, `generic_fast_erf_float` (MPL-2.0 header; the coefficients of a published
        // minimax approximation): erf(x) ≈ x·P(x²)/Q(x²) on [−4, 4]
        let x = self.clamp(-4.0, 4.0);
        let x2 = x * x;
        let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
        p = x2 * p + -2.101_024e-6;
        p = x2 * p + -5.692_506_4e-5;
        p = x2 * p + -7.349_906_3e-4;
        p = x2 * p + -2.954_600_6e-3;
        p = x2 * p + -1.609_603_3e-2;
        let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
        q = x2 * q + -1.682_827e-3;
        q = x2 * q + -7.373_329e-3;
        q = x2 * q + -1.426_474e-2;
        x * p / q
    }
    #[cfg(feature = "faer")]
    fn faer_gemm(
        a: &ArrayView2<'_, Self>,
        b: &ArrayView2<'_, Self>,
        c: &mut ArrayViewMut2<'_, Self>,
        parallel: bool,
        accumulate: bool,
    ) -> bool {
        faer_gemm(a, b, c, parallel, accumulate)
    }
}

impl Float for f64 {
    fn as_f64(self) -> f64 {
        self
    }
    #[cfg(feature = "faer")]
    fn faer_gemm(
        a: &ArrayView2<'_, Self>,
        b: &ArrayView2<'_, Self>,
        c: &mut ArrayViewMut2<'_, Self>,
        parallel: bool,
        accumulate: bool,
    ) -> bool {
        faer_gemm(a, b, c, parallel, accumulate)
    }
}

#[cfg(test)]
mod tests {
    use super::Float;

    /// The f32 erf against libm's f64 erf on a fine grid and at the clamp.
    #[test]
    fn f32_erf_is_within_a_few_ulp() {
        let mut worst: f64 = 0.0;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let want = libm::erf(x as f64);
            let got = Float::erf(x) as f64;
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 4e-7, "f32 erf deviates by {worst:e}");
        assert_eq!(Float::erf(10.0_f32), 1.0);
        assert_eq!(Float::erf(-10.0_f32), -1.0);
        assert_eq!(Float::erf(0.0_f32), 0.0);
    }
}
