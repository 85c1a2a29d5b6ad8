//! Small array helpers shared by layers and rules: finiteness and shape checks, the
//! sign-aware stabiliser, per-channel bias broadcasting and sign clamps.

use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, ArrayView1, ArrayViewD, Axis};

/// Returns an error naming `what` if `a` holds a NaN or an infinity.
pub(crate) fn check_finite<F: Float>(what: &str, a: &ArrayViewD<'_, F>) -> Result<()> {
    match a.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            what: what.to_string(),
            index,
            value: a.iter().nth(index).map_or(f64::NAN, |v| v.as_f64()),
        }),
    }
}

/// Checks that `a` has the shape `[batch, sample_shape...]` for some batch size ≥ 1.
pub(crate) fn check_batch_shape<F>(what: &str, a: &ArrayViewD<'_, F>, sample_shape: &[usize]) -> Result<()> {
    if a.ndim() != sample_shape.len() + 1 {
        return Err(Error::Rank {
            what: what.to_string(),
            expected: sample_shape.len() + 1,
            got: a.ndim(),
            shape: a.shape().to_vec(),
        });
    }
    if &a.shape()[1..] != sample_shape {
        let mut expected = vec![a.shape()[0]];
        expected.extend_from_slice(sample_shape);
        return Err(Error::Shape {
            what: what.to_string(),
            expected,
            got: a.shape().to_vec(),
        });
    }
    if a.shape()[0] == 0 {
        return Err(Error::EmptyBatch);
    }
    Ok(())
}

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

/// Adds a per-channel bias along axis 1 (dense `[N, out]` and conv `[N, C, H, W]` alike).
pub(crate) fn add_channel_bias<F: Float>(out: &mut ArrayD<F>, bias: ArrayView1<'_, F>) {
    for mut lane in out.axis_iter_mut(Axis(0)) {
        for (mut chan, &b) in lane.axis_iter_mut(Axis(0)).zip(bias.iter()) {
            chan.mapv_inplace(|v| v + b);
        }
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
