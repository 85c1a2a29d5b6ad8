//! Flatten all but the batch dimension.

use super::{Class, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// Flattens every dimension but the batch, in C order, as `torch.flatten(x, 1)`.
///
/// Relevance is reshaped back; no rule is involved.
///
/// # Shapes
/// `[N, d1, d2, ...]` → `[N, d1·d2·...]`.
///
/// # Example
/// ```
/// use ndarray::Array4;
/// use relevance::{Flatten, Layer};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f32>::forward(&Flatten, Array4::<f32>::zeros((2, 3, 4, 5)).into_dyn().view())?;
/// assert_eq!(y.shape(), &[2, 60]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flatten;

fn reshape<F: Float>(a: ArrayViewD<'_, F>, shape: Vec<usize>) -> Result<ArrayD<F>> {
    let got = a.shape().to_vec();
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(&shape))
        .map_err(|_| Error::Shape {
            what: "Flatten".into(),
            expected: shape,
            got,
        })
}

impl<F: Float> Layer<F> for Flatten {
    fn name(&self) -> String {
        "Flatten".into()
    }

    fn class(&self) -> Class<'_, F> {
        Class::Reshape(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let len = input_shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        len.map(|len| vec![len]).ok_or_else(|| Error::Shape {
            what: "Flatten input (too many elements)".into(),
            expected: vec![],
            got: input_shape.to_vec(),
        })
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        if input.ndim() == 0 {
            return Err(Error::Rank {
                what: "Flatten input".into(),
                expected: 2,
                got: 0,
                shape: vec![],
            });
        }
        let n = input.shape()[0];
        let rest = input.shape()[1..].iter().product();
        reshape(input, vec![n, rest])
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        reshape(grad_output, step.input.shape().to_vec())
    }
}
