//! The view of a 1-D (length) layout `[N, C, L]` as a 2-D one of height 1, `[N, C, 1, L]`,
//! through which the 1-D layers ([`Conv1d`](super::Conv1d), [`MaxPool1d`](super::MaxPool1d),
//! [`AvgPool1d`](super::AvgPool1d)) delegate to their 2-D counterparts. Inserting and removing
//! an axis of length 1 copies nothing.

use super::Step;
use crate::error::{Error, Result};
use ndarray::{ArrayD, ArrayViewD, Axis};

/// `[N, C, L]` → `[N, C, 1, L]` (a view).
///
/// # Errors
/// [`Error::Rank`] if `a` is not of rank 3.
pub(crate) fn lift<'a, F>(what: &str, a: ArrayViewD<'a, F>) -> Result<ArrayViewD<'a, F>> {
    if a.ndim() != 3 {
        return Err(Error::Rank {
            what: format!("{what} ([N, C, L])"),
            expected: 3,
            got: a.ndim(),
            shape: a.shape().to_vec(),
        });
    }
    Ok(a.insert_axis(Axis(2)))
}

/// `[N, C, 1, L]` → `[N, C, L]` (the same buffer).
pub(crate) fn lower<F>(a: ArrayD<F>) -> ArrayD<F> {
    debug_assert!(a.ndim() == 4 && a.shape()[2] == 1, "a [N, C, 1, L] array");
    a.index_axis_move(Axis(2), 0)
}

/// A per-sample shape `[C, L]` → `[C, 1, L]`.
///
/// # Errors
/// [`Error::Rank`] if `shape` is not of rank 2.
pub(crate) fn lift_shape(what: &str, shape: &[usize]) -> Result<Vec<usize>> {
    match shape {
        &[c, l] => Ok(vec![c, 1, l]),
        _ => Err(Error::Rank {
            what: format!("{what} (per sample, [C, L])"),
            expected: 2,
            got: shape.len(),
            shape: shape.to_vec(),
        }),
    }
}

/// A per-sample shape `[C, 1, L]` → `[C, L]`.
pub(crate) fn lower_shape(mut shape: Vec<usize>) -> Vec<usize> {
    debug_assert!(shape.len() == 3 && shape[1] == 1, "a [C, 1, L] shape");
    shape.remove(1);
    shape
}

/// A step on `[N, C, L]` arrays as the same step on `[N, C, 1, L]` views.
///
/// # Errors
/// [`Error::Rank`] if an array of the step is not of rank 3.
pub(crate) fn lift_step<'a, F>(what: &str, step: &Step<'a, F>) -> Result<Step<'a, F>> {
    let opt = |a: &Option<ArrayViewD<'a, F>>| a.clone().map(|a| lift(what, a)).transpose();
    Ok(Step {
        index: step.index,
        input: lift(what, step.input.clone())?,
        output: lift(what, step.output.clone())?,
        relevance: lift(what, step.relevance.clone())?,
        baseline_input: opt(&step.baseline_input)?,
        baseline_output: opt(&step.baseline_output)?,
    })
}
