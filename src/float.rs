//! The float bundle: everything this crate needs of `f32` and `f64`.

use ndarray::NdFloat;
#[cfg(feature = "faer")]
use ndarray::{ArrayView2, ArrayViewMut2};
use num_traits::FromPrimitive;

/// A floating-point element type this crate can compute with: `f32` (the default) or `f64`.
///
/// It bundles ndarray's [`NdFloat`] (arithmetic, matrix products) with [`FromPrimitive`]
/// (literals from `f64`). It is implemented for `f32` and `f64` only.
pub trait Float: NdFloat + FromPrimitive + Default + Send + Sync + 'static {
    /// Converts an `f64` literal or parameter into this type (rounding for `f32`).
    fn lit(x: f64) -> Self {
        Self::from_f64(x).unwrap_or_else(Self::nan)
    }
    /// Converts to `f64` (for error messages and summaries).
    fn as_f64(self) -> f64;

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
        if parallel && threads > 1 && m * n * ar.ncols() >= 1 << 20 {
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
    faer::linalg::matmul::matmul(cm, accum, ar, br, T::one(), par);
    true
}

impl Float for f32 {
    fn as_f64(self) -> f64 {
        self as f64
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
