//! Constant zero padding, and the identity.

use super::{Class, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

/// Zero padding of the last per-sample axes, as `torch.nn.functional.pad(x, ..., value=0)`
/// or ONNX `Pad` (constant mode): `(before, after)` for each of the last `pads.len()` axes.
/// Where it directly precedes a convolution it is better folded into the convolution's own
/// padding; this layer is for the cases where it cannot be.
///
/// A rearrangement: relevance (and DeepLIFT's multipliers) of the padded positions is
/// dropped and the rest goes back to where it came from (the gradient), under every rule.
///
/// # Shapes
/// Input `[N, ..., d_i, ...]`, output `[N, ..., before_i + d_i + after_i, ...]`.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Pad};
/// # fn main() -> relevance::Result<()> {
/// let pad = Pad::new(&[(1, 0), (0, 2)]); // height: 1 before; width: 2 after
/// let y = Layer::<f64>::forward(&pad, array![[[[1.0, 2.0]]]].into_dyn().view())?;
/// assert_eq!(y, array![[[[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0]]]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pad {
    pads: Vec<(usize, usize)>,
}

impl Pad {
    /// Padding `(before, after)` for each of the last `pads.len()` per-sample axes.
    pub fn new(pads: &[(usize, usize)]) -> Self {
        Pad { pads: pads.to_vec() }
    }

    /// The padding of each of the last axes.
    pub fn pads(&self) -> &[(usize, usize)] {
        &self.pads
    }

    /// The slice of the padded output that holds the input, for an output of rank `ndim`.
    fn inner(&self, shape: &[usize]) -> Vec<Slice> {
        let first = shape.len() - self.pads.len();
        (0..shape.len())
            .map(|a| match a.checked_sub(first) {
                Some(i) => {
                    let (b, e) = self.pads[i];
                    Slice::from(b..shape[a] - e)
                }
                None => Slice::from(..),
            })
            .collect()
    }
}

impl<F: Float> Layer<F> for Pad {
    fn name(&self) -> String {
        format!("Pad({:?})", self.pads)
    }

    fn class(&self) -> Class<'_, F> {
        Class::Reshape(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if self.pads.len() > input_shape.len() {
            return Err(Error::Rank {
                what: format!("Pad input (per sample; padding {} axes)", self.pads.len()),
                expected: self.pads.len(),
                got: input_shape.len(),
                shape: input_shape.to_vec(),
            });
        }
        let first = input_shape.len() - self.pads.len();
        let mut out = input_shape.to_vec();
        for (d, &(b, e)) in out[first..].iter_mut().zip(&self.pads) {
            *d = d
                .checked_add(b)
                .and_then(|v| v.checked_add(e))
                .ok_or_else(|| Error::InvalidLayer {
                    layer: "Pad",
                    reason: format!("padding {:?} overflows", self.pads),
                })?;
        }
        Ok(out)
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let shape = input.shape();
        if shape.is_empty() {
            return Err(Error::Rank {
                what: "Pad input".into(),
                expected: self.pads.len() + 1,
                got: 0,
                shape: vec![],
            });
        }
        let mut out_shape = vec![shape[0]];
        out_shape.extend(Layer::<F>::output_shape(self, &shape[1..])?);
        let mut out = ArrayD::zeros(IxDyn(&out_shape));
        let mut view = out.view_mut();
        for (a, s) in self.inner(&out_shape).into_iter().enumerate() {
            view.slice_axis_inplace(Axis(a), s);
        }
        view.assign(&input);
        Ok(out)
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let Some(&n) = step.input.shape().first() else {
            return Err(Error::Rank {
                what: "Pad input".into(),
                expected: self.pads.len() + 1,
                got: 0,
                shape: vec![],
            });
        };
        let mut expected = vec![n];
        expected.extend(Layer::<F>::output_shape(
            self,
            crate::tensor::per_sample(step.input.shape()),
        )?);
        if grad_output.shape() != expected.as_slice() {
            return Err(Error::Shape {
                what: "Pad output relevance".into(),
                expected,
                got: grad_output.shape().to_vec(),
            });
        }
        let mut view = grad_output.view();
        for (a, s) in self.inner(grad_output.shape()).into_iter().enumerate() {
            view.slice_axis_inplace(Axis(a), s);
        }
        Ok(view.to_owned())
    }
}

/// The identity, as `torch.nn.Identity` (or a `Dropout` in evaluation mode). Relevance
/// passes through unchanged under every rule.
///
/// ```
/// use ndarray::array;
/// use relevance::{Identity, Layer};
/// # fn main() -> relevance::Result<()> {
/// assert_eq!(Layer::<f64>::forward(&Identity, array![[1.0]].into_dyn().view())?, array![[1.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity;

impl<F: Float> Layer<F> for Identity {
    fn name(&self) -> String {
        "Identity".into()
    }

    fn class(&self) -> Class<'_, F> {
        Class::Reshape(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Ok(input.to_owned())
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        if grad_output.shape() != step.input.shape() {
            return Err(Error::Shape {
                what: "Identity output relevance".into(),
                expected: step.input.shape().to_vec(),
                got: grad_output.shape().to_vec(),
            });
        }
        Ok(grad_output.to_owned())
    }
}
