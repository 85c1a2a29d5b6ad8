//! Rectified linear unit.

use super::{Class, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::elementwise::map3;
use ndarray::{ArrayD, ArrayViewD};

/// `max(x, 0)` elementwise, as `torch.nn.ReLU`.
///
/// Under every LRP rule relevance passes through unchanged (zennit's `Pass`); DeepLIFT
/// applies its Rescale or RevealCancel multiplier here.
///
/// # Shapes
/// Any `[N, ...]`; the output has the input's shape.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Relu};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Relu, array![[-1.0, 2.0]].into_dyn().view())?;
/// assert_eq!(y, array![[0.0, 2.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relu;

impl<F: Float> Layer<F> for Relu {
    fn name(&self) -> String {
        "ReLU".into()
    }

    fn class(&self) -> Class<'_, F> {
        Class::Activation(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }

    fn as_fused(&self, _input_shape: &[usize]) -> Option<super::Fused> {
        Some(super::Fused::Relu)
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        use crate::kernels::elementwise::relu as r;
        let relu = |o: &mut F, &v: &F| *o = r(v);
        if let (Some(x), false) = (
            input.as_slice(),
            crate::kernels::elementwise::par_elems(input.len()),
        ) {
            // contiguous: written front to back, no zero fill first
            let mut out = crate::pool::output_vec(x.len());
            out.extend(x.iter().map(|&v| r(v)));
            return Ok(crate::tensor::layout::shaped(input.raw_dim(), out));
        }
        // every element is written
        let mut out = crate::tensor::layout::shaped(input.raw_dim(), crate::pool::output_buffer(input.len()));
        let zip = ndarray::Zip::from(&mut out).and(&input);
        #[cfg(feature = "parallel")]
        if crate::kernels::elementwise::par_elems(input.len()) {
            zip.par_for_each(relu);
            return Ok(out);
        }
        zip.for_each(relu);
        Ok(out)
    }

    /// The gradient of ReLU is 1 where the input is positive and 0 elsewhere (0 at 0, as
    /// PyTorch).
    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        if grad_output.shape() != step.input.shape() {
            return Err(Error::Shape {
                what: "ReLU output gradient".into(),
                expected: step.input.shape().to_vec(),
                got: grad_output.shape().to_vec(),
            });
        }
        // written once into a pooled buffer, not copied and then masked in place (the copy
        // took a fresh array's page faults and a second pass: 15 % of ResNet-18's gradient
        // on the calling thread); `map3`'s third operand is unused
        let input = step.input.view();
        Ok(map3(&grad_output, &input, &input, |g, x, _| {
            if x <= F::zero() {
                F::zero()
            } else {
                g
            }
        }))
    }
}
