//! Checks of user-supplied arrays: finiteness and the batch shape `[N, sample...]`.

use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::ArrayViewD;

/// Returns an error naming `what` if `a` holds a NaN or an infinity.
pub(crate) fn check_finite<F: Float>(what: &str, a: &ArrayViewD<'_, F>) -> Result<()> {
    if let Some(s) = a.as_slice_memory_order() {
        if all_finite(s) {
            return Ok(());
        }
    }
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

/// The per-sample part of a batch array's shape (all but the first axis; empty for a 0-d
/// array, whose shape checks then fail with a typed error).
pub(crate) fn per_sample(shape: &[usize]) -> &[usize] {
    shape.get(1..).unwrap_or_default()
}

/// Whether every value of `s` is finite: blocks of 256 without an early exit inside, which
/// vectorise (a search for the first non-finite value does not).
pub(crate) fn all_finite<F: Float>(s: &[F]) -> bool {
    s.chunks(256)
        .all(|block| block.iter().fold(true, |ok, v| ok & v.is_finite()))
}
