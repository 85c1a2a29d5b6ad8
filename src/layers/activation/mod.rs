//! Elementwise activations other than [`Relu`](super::Relu), one file each. Every LRP rule
//! passes relevance through them (zennit's `Pass` for `types.Activation`); DeepLIFT applies
//! Rescale (or RevealCancel above an affine layer), with the gradient below the threshold.
//!
//! Each activation gives its value and its derivative (with PyTorch's conventions at the
//! kinks, which DeepLIFT's gradient fallback uses); `elementwise_layer!` turns the pair
//! into a [`Layer`](super::Layer).

mod clip;
mod elu;
mod gelu;
mod hard;
mod leaky_relu;
mod sigmoid;
mod softplus;

pub use clip::Clip;
pub use elu::Elu;
pub use gelu::Gelu;
pub use hard::{HardSigmoid, HardSwish};
pub use leaky_relu::LeakyRelu;
pub use sigmoid::{Sigmoid, Silu, Tanh};
pub use softplus::{Exp, Log, Log1p, Softplus};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::Step;
use ndarray::{ArrayD, ArrayViewD, Zip};

/// Elements from which [`map`] splits a contiguous array across threads.
#[cfg(feature = "parallel")]
const MAP_PAR_ELEMS: usize = 1 << 15;
/// The block of a contiguous array [`map`] gives one task.
const MAP_BLOCK: usize = 1 << 13;

/// `f` applied to every element, into a fresh (or recycled) array; on several threads for
/// large arrays (feature `parallel`).
pub(crate) fn map<F: Float>(input: &ArrayViewD<'_, F>, f: impl Fn(F) -> F + Sync + Send) -> ArrayD<F> {
    // every element is written
    let mut out = crate::tensor::layout::shaped(input.raw_dim(), crate::pool::output_buffer(input.len()));
    if let (Some(x), Some(o)) = (input.as_slice(), out.as_slice_mut()) {
        // contiguous: blocks of a slice (an activation costs far more than an addition, so
        // threads pay off from a smaller size than elementwise arithmetic)
        let g = |(o, x): (&mut [F], &[F])| {
            for (o, &x) in o.iter_mut().zip(x) {
                *o = f(x);
            }
        };
        #[cfg(feature = "parallel")]
        if x.len() >= MAP_PAR_ELEMS && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            o.par_chunks_mut(MAP_BLOCK)
                .zip(x.par_chunks(MAP_BLOCK))
                .for_each(g);
            return out;
        }
        o.chunks_mut(MAP_BLOCK).zip(x.chunks(MAP_BLOCK)).for_each(g);
        return out;
    }
    let zip = Zip::from(&mut out).and(input);
    let g = |o: &mut F, &v: &F| *o = f(v);
    #[cfg(feature = "parallel")]
    if crate::kernels::elementwise::par_elems(input.len()) {
        zip.par_for_each(g);
        return out;
    }
    zip.for_each(g);
    out
}

/// `grad_output ⊙ f'(x)` at the recorded input.
pub(crate) fn times_slope<F: Float>(
    what: &str,
    step: &Step<'_, F>,
    grad_output: ArrayViewD<'_, F>,
    slope: impl Fn(F) -> F,
) -> Result<ArrayD<F>> {
    if grad_output.shape() != step.input.shape() {
        return Err(Error::Shape {
            what: format!("{what} output gradient"),
            expected: step.input.shape().to_vec(),
            got: grad_output.shape().to_vec(),
        });
    }
    let mut g = grad_output.to_owned();
    Zip::from(&mut g)
        .and(&step.input)
        .for_each(|g, &x| *g *= slope(x));
    Ok(g)
}

/// Checks that an activation's parameter is finite.
pub(crate) fn finite(layer: &'static str, name: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::InvalidLayer {
            layer,
            reason: format!("{name} must be finite, got {v}"),
        });
    }
    Ok(())
}

/// Implements [`Layer`](crate::Layer) for an activation type with inherent methods
/// `value(x)`, `derivative(x)` (both generic over the float) and `describe()`.
macro_rules! elementwise_layer {
    ($t:ty, gate = $gate:expr) => {
        impl<F: $crate::Float> $crate::Layer<F> for $t {
            fn name(&self) -> String {
                self.describe()
            }

            fn class(&self) -> $crate::layers::Class<'_, F> {
                $crate::layers::Class::Activation(self)
            }

            fn output_shape(&self, input_shape: &[usize]) -> $crate::Result<Vec<usize>> {
                Ok(input_shape.to_vec())
            }

            fn forward(&self, input: ndarray::ArrayViewD<'_, F>) -> $crate::Result<ndarray::ArrayD<F>> {
                Ok($crate::layers::activation::map(&input, |x| self.value(x)))
            }

            fn gradient(
                &self,
                step: &$crate::Step<'_, F>,
                grad_output: ndarray::ArrayViewD<'_, F>,
            ) -> $crate::Result<ndarray::ArrayD<F>> {
                $crate::layers::activation::times_slope(&self.describe(), step, grad_output, |x| {
                    self.derivative(x)
                })
            }

            fn is_gate(&self) -> bool {
                $gate
            }
        }
    };
}
pub(crate) use elementwise_layer;
