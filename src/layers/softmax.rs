//! The softmax over one axis, kept at a network's output on request (an ONNX model's
//! trailing `Softmax` with `OnnxOptions::keep_softmax`).

use super::{Class, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
#[cfg(doc)]
use crate::rules::Rule; // doc links
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis};

/// `y = softmax(x)` along one per-sample axis (PyTorch's `nn.Softmax(dim = axis + 1)`).
///
/// Explanations usually start from the logits before it (zennit and captum users remove
/// it; the ONNX loader does by default). Kept, it is explained as the reference libraries
/// do, through [`Rule::softmax`](crate::Rule::softmax): the LRP rules take its gradient (zennit assigns no rule
/// to a softmax), DeepLIFT follows the softmax's own graph exactly (or applies captum's
/// `softmax` rule on request, [`SoftmaxRule`](crate::rules::SoftmaxRule)); AttnLRP applies the
/// Taylor rule ([`softmax_taylor`](crate::rules::softmax_taylor)).
///
/// # Shapes
/// `[N, ...]` → `[N, ...]`, the same shape.
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Softmax};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Softmax::last(), array![[0.0, 0.0], [1.0, 1.0]].into_dyn().view())?;
/// assert_eq!(y, array![[0.5, 0.5], [0.5, 0.5]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Softmax {
    /// The per-sample axis (0: the first after the batch); `None`: the last one.
    axis: Option<usize>,
}

impl Softmax {
    /// The softmax along per-sample axis `axis` (0 is the first axis after the batch).
    pub fn new(axis: usize) -> Self {
        Softmax { axis: Some(axis) }
    }

    /// The softmax along the last axis (the classes of a `[N, C]` output).
    pub fn last() -> Self {
        Softmax { axis: None }
    }

    /// The axis of a full `[N, ...]` array of rank `rank` it runs along, if it has it.
    fn full_axis(&self, rank: usize) -> Option<usize> {
        match self.axis {
            Some(a) if a + 1 < rank => Some(a + 1),
            None if rank >= 2 => Some(rank - 1),
            _ => None,
        }
    }

    fn axis_of(&self, what: &str, shape: &[usize]) -> Result<Axis> {
        self.full_axis(shape.len()).map(Axis).ok_or_else(|| Error::Shape {
            what: format!("{what} (softmax along per-sample axis {:?})", self.axis),
            expected: vec![],
            got: shape.to_vec(),
        })
    }

    /// The softmax of `x` along `axis`, in place.
    fn apply<F: Float>(mut x: ArrayViewMutD<'_, F>, axis: Axis) {
        let n = x.shape()[axis.index()];
        if axis.index() + 1 == x.ndim() && n > 0 {
            if let Some(s) = x.as_slice_mut() {
                // contiguous lanes (attention scores): blocks of lanes, on several threads
                // when large
                let lanes = |block: &mut [F]| {
                    for lane in block.chunks_exact_mut(n) {
                        let m = lane.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
                        let mut sum = F::zero();
                        for v in lane.iter_mut() {
                            *v = (*v - m).exp();
                            sum += *v;
                        }
                        let inv = F::one() / sum;
                        for v in lane.iter_mut() {
                            *v *= inv;
                        }
                    }
                };
                let block = n * (4096 / n).max(1);
                #[cfg(feature = "parallel")]
                if s.len() >= 1 << 15 && rayon::current_num_threads() > 1 {
                    use rayon::prelude::*;
                    s.par_chunks_mut(block).for_each(lanes);
                    return;
                }
                s.chunks_mut(block).for_each(lanes);
                return;
            }
        }
        for mut lane in x.lanes_mut(axis) {
            let m = lane.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
            lane.mapv_inplace(|v| (v - m).exp());
            let s = lane.sum();
            lane.mapv_inplace(|v| v / s);
        }
    }

    /// The vector-Jacobian product at the softmax output `y`: `y ⊙ (g − Σ g ⊙ y)` per lane.
    pub(crate) fn vjp<F: Float>(y: &ArrayViewD<'_, F>, g: &ArrayViewD<'_, F>, axis: Axis) -> ArrayD<F> {
        let mut out = g.to_owned();
        for (mut o, yl) in out.lanes_mut(axis).into_iter().zip(y.lanes(axis)) {
            let dot = o.iter().zip(yl.iter()).fold(F::zero(), |s, (&a, &b)| s + a * b);
            o.zip_mut_with(&yl, |v, &p| *v = p * (*v - dot));
        }
        out
    }

    /// The softmax of `x` (for a baseline pass that holds only the input).
    pub(crate) fn of<F: Float>(&self, x: &ArrayViewD<'_, F>) -> Result<(ArrayD<F>, Axis)> {
        let axis = self.axis_of("softmax input", x.shape())?;
        let mut y = x.to_owned();
        Self::apply(y.view_mut(), axis);
        Ok((y, axis))
    }
}

impl<F: Float> Layer<F> for Softmax {
    fn name(&self) -> String {
        match self.axis {
            Some(a) => format!("Softmax(axis {a})"),
            None => "Softmax".into(),
        }
    }

    fn class(&self) -> Class<'_, F> {
        Class::Softmax(self)
    }

    /// A softmax's outputs are weights in `[0, 1]` (attention weights): a product with it
    /// treats it as a gate (LRP's signal-take-all, CP-LRP's constant attention).
    fn is_gate(&self) -> bool {
        true
    }

    fn lane_axis(&self, rank: usize) -> Option<usize> {
        self.full_axis(rank)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        // a per-sample shape: the full array has one more axis
        self.axis_of("softmax input", &[&[1], input_shape].concat())?;
        Ok(input_shape.to_vec())
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Ok(self.of(&input)?.0)
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let axis = self.axis_of("softmax input", step.input.shape())?;
        if grad_output.shape() != step.output.shape() || step.output.shape() != step.input.shape() {
            return Err(Error::Shape {
                what: "softmax output gradient".into(),
                expected: step.input.shape().to_vec(),
                got: grad_output.shape().to_vec(),
            });
        }
        Ok(Self::vjp(&step.output, &grad_output, axis))
    }
}
