//! LRP's numerics: the sign-aware stabiliser, the safe ratio, sign clamps and per-sample
//! sums.

use crate::float::Float;
use ndarray::{ArrayD, ArrayViewD, Axis};

/// The stabilised denominator `z + ε·sign₀(z)` with sign₀(0) = +1.
///
/// This is zennit's `Stabilizer` (`zennit/core.py`, `sign = (z == 0) + sign(z)`), which
/// captum (`_utils/lrp_rules.py`) and iNNvestigate share. With ε = 0 the value is `z`
/// itself; the caller decides what to do where it is exactly zero.
#[inline]
pub(crate) fn stabilise<F: Float>(z: F, eps: F) -> F {
    if z >= F::zero() {
        z + eps
    } else {
        z - eps
    }
}

/// `R / stabilise(z, ε)`, with 0 where the stabilised denominator is exactly zero (only
/// possible for ε = 0), so that LRP-0 never produces NaN.
#[inline]
pub(crate) fn safe_ratio<F: Float>(r: F, z: F, eps: F) -> F {
    let d = stabilise(z, eps);
    if d == F::zero() {
        F::zero()
    } else {
        r / d
    }
}

/// Elementwise `max(x, 0)`.
pub(crate) fn positive<F: Float>(a: &ArrayViewD<'_, F>) -> ArrayD<F> {
    a.mapv(|v| if v > F::zero() { v } else { F::zero() })
}

/// Elementwise `min(x, 0)`.
pub(crate) fn negative<F: Float>(a: &ArrayViewD<'_, F>) -> ArrayD<F> {
    a.mapv(|v| if v < F::zero() { v } else { F::zero() })
}

/// Sum over all axes but the first: one value per sample.
pub(crate) fn per_sample_sum<F: Float>(a: &ArrayViewD<'_, F>) -> ndarray::Array1<F> {
    a.axis_iter(Axis(0)).map(|s| s.sum()).collect()
}
