//! The input parts of rule terms (x, x⁺, x⁻, ones, z^B's bounds), and the folding of terms
//! on an input constant per channel into the weight.

use super::{Input, Param};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::numerics::{negative, positive};
use ndarray::{ArrayD, ArrayViewD, CowArray, IxDyn};

/// Broadcasts a per-sample bound to the batch input's shape.
pub(super) fn broadcast_bound<F: Float>(
    what: &str,
    bound: &ArrayD<F>,
    input: &ArrayViewD<'_, F>,
) -> Result<ArrayD<F>> {
    let sample = crate::tensor::checks::per_sample(input.shape());
    let mut shape = vec![1];
    shape.extend(std::iter::repeat_n(1, sample.len().saturating_sub(bound.ndim())));
    shape.extend_from_slice(bound.shape());
    let err = || Error::Shape {
        what: format!("{what} (must broadcast to the per-sample input shape)"),
        expected: sample.to_vec(),
        got: bound.shape().to_vec(),
    };
    if bound.ndim() > sample.len() {
        return Err(err());
    }
    let v = bound.view().into_shape_with_order(shape).map_err(|_| err())?;
    v.broadcast(input.raw_dim()).map(|b| b.to_owned()).ok_or_else(err)
}

/// An input part of a rule term.
pub(super) enum Part<'x, F> {
    /// A tensor of the input's shape (x, x⁺, x⁻, a bound given per element).
    Tensor(CowArray<'x, F, IxDyn>),
    /// An input constant over each channel (axis 1), given per channel: the ones of
    /// LRP-flat and LRP-w², scalar and per-channel z^B bounds. Its terms are folded into
    /// the weight.
    Channels(Vec<F>),
}

/// The per-channel values of a bound that is constant over every per-sample axis but the
/// first (a scalar, `[C, 1, 1]`, `[1]`, or any bound of a dense layer), or `None`.
fn per_channel<F: Float>(bound: &ArrayD<F>, sample: &[usize]) -> Option<Vec<F>> {
    let channels = *sample.first()?;
    if bound.ndim() > sample.len() {
        return None;
    }
    let mut shape = vec![1; sample.len() - bound.ndim()];
    shape.extend_from_slice(bound.shape());
    if shape[1..].iter().any(|&d| d != 1) {
        return None;
    }
    match shape[0] {
        1 => Some(vec![*bound.iter().next()?; channels]),
        c if c == channels => Some(bound.iter().copied().collect()),
        _ => None,
    }
}

/// The bounds of z^B, or the error that says they are missing.
fn bound<'b, F>(
    part: Input,
    bounds: Option<(&'b ArrayD<F>, &'b ArrayD<F>)>,
) -> Result<(&'static str, &'b ArrayD<F>)> {
    let (low, high) = bounds.ok_or_else(|| Error::Unsupported {
        rule: "LrpZBox".into(),
        reason: "bounds missing".into(),
    })?;
    Ok(if part == Input::Low {
        ("ZBox low bound", low)
    } else {
        ("ZBox high bound", high)
    })
}

/// The input part `part` of `x`: as a per-channel constant where `fold` allows and the part
/// is one, else as a tensor of `x`'s shape.
pub(super) fn input_part<'x, F: Float>(
    part: Input,
    x: &ArrayViewD<'x, F>,
    bounds: Option<(&ArrayD<F>, &ArrayD<F>)>,
    signs: &Signs,
    fold: bool,
) -> Result<Part<'x, F>> {
    let sample = crate::tensor::checks::per_sample(x.shape());
    Ok(match part {
        Input::All => Part::Tensor(x.clone().into()),
        // x⁺ of a non-negative input (after a ReLU) is the input itself: no copy
        Input::Positive if signs.non_negative(x) => Part::Tensor(x.clone().into()),
        Input::Positive => Part::Tensor(positive(x).into()),
        Input::Negative => Part::Tensor(negative(x).into()),
        Input::Ones if fold && !sample.is_empty() => Part::Channels(vec![F::one(); sample[0]]),
        Input::Ones => Part::Tensor(ArrayD::from_elem(x.raw_dim(), F::one()).into()),
        Input::Low | Input::High => {
            let (what, b) = bound(part, bounds)?;
            match per_channel(b, sample).filter(|_| fold) {
                Some(c) => Part::Channels(c),
                None => Part::Tensor(broadcast_bound(what, b, x)?.into()),
            }
        }
    })
}

/// The input part `part` of `x` as a full tensor, with no shortcut (the reference path).
#[cfg(test)]
pub(super) fn full_part<F: Float>(
    part: Input,
    x: &ArrayViewD<'_, F>,
    bounds: Option<(&ArrayD<F>, &ArrayD<F>)>,
) -> Result<ArrayD<F>> {
    Ok(match part {
        Input::All => x.to_owned(),
        Input::Positive => positive(x),
        Input::Negative => negative(x),
        Input::Ones => ArrayD::from_elem(x.raw_dim(), F::one()),
        Input::Low | Input::High => {
            let (what, b) = bound(part, bounds)?;
            broadcast_bound(what, b, x)?
        }
    })
}

/// `acc += k · c[i] · param(w[o, i, ...])` over the weight's input-channel axis 1: a term on
/// an input constant per channel, folded into the weight.
pub(super) fn fold_into<F: Float>(
    acc: &mut Option<ArrayD<F>>,
    w: &ArrayViewD<'_, F>,
    param: Param,
    c: &[F],
    k: F,
) {
    let w = w.as_standard_layout();
    let inner: usize = w.shape()[2..].iter().product();
    let channels = c.len();
    let acc = acc.get_or_insert_with(|| ArrayD::zeros(w.raw_dim()));
    let (acc, w) = (
        crate::tensor::layout::standard_mut(acc),
        crate::tensor::layout::standard(&w),
    );
    for (block, (a, v)) in acc.chunks_mut(inner).zip(w.chunks(inner)).enumerate() {
        let f = k * c[block % channels];
        for (a, &v) in a.iter_mut().zip(v) {
            *a += f * param.apply(v);
        }
    }
}

/// Whether a term contributes nothing because its input part is identically zero
/// (x⁻ after a ReLU, x⁺ of a non-positive input).
pub(super) fn vanishes<F: Float>(part: Input, x: &ArrayViewD<'_, F>, signs: &Signs) -> bool {
    match part {
        Input::Negative => signs.non_negative(x),
        Input::Positive => signs.non_positive(x),
        _ => false,
    }
}

/// Whether the input is ≥ 0 (or ≤ 0) everywhere, each scanned for at most once per layer.
#[derive(Default)]
pub(super) struct Signs {
    non_negative: std::cell::OnceCell<bool>,
    non_positive: std::cell::OnceCell<bool>,
}

impl Signs {
    pub(super) fn non_negative<F: Float>(&self, x: &ArrayViewD<'_, F>) -> bool {
        *self.non_negative.get_or_init(|| all(x, |v| v >= F::zero()))
    }
    pub(super) fn non_positive<F: Float>(&self, x: &ArrayViewD<'_, F>) -> bool {
        *self.non_positive.get_or_init(|| all(x, |v| v <= F::zero()))
    }
}

/// Whether `pred` holds for every element: over a contiguous array in blocks without early
/// exit inside a block, which the compiler vectorises.
fn all<F: Float>(x: &ArrayViewD<'_, F>, pred: impl Fn(F) -> bool) -> bool {
    match x.as_slice() {
        Some(s) => s
            .chunks(64)
            .all(|block| block.iter().fold(true, |all, &v| all & pred(v))),
        None => x.iter().all(|&v| pred(v)),
    }
}
