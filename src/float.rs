//! The float bundle: everything this crate needs of `f32` and `f64`.

use ndarray::NdFloat;
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
}

impl Float for f32 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}
