//! Nodes with several inputs: elementwise sums (residual connections), concatenations
//! (DenseNet, Inception, SqueezeNet's fire modules) and products (gates).

use super::{LinearMap, Merge, MergeClass, MergeStep};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::broadcast::{broadcast_shape, sum_to_shape};
use ndarray::{ArrayD, ArrayViewD, Axis, Slice};

/// The shape the per-sample `shapes` broadcast to, or the error naming the node.
fn broadcast(node: &str, shapes: &[&[usize]]) -> Result<Vec<usize>> {
    broadcast_shape(shapes).ok_or_else(|| Error::Shape {
        what: format!("{node} inputs (must broadcast to one shape)"),
        expected: shapes.first().map(|s| s.to_vec()).unwrap_or_default(),
        got: shapes.iter().skip(1).flat_map(|s| s.iter().copied()).collect(),
    })
}

/// Full shapes (batch included) of the inputs of a step.
fn input_shapes<'s, F>(step: &'s MergeStep<'_, F>) -> Vec<&'s [usize]> {
    step.inputs
        .iter()
        .map(|x| crate::tensor::checks::per_sample(x.shape()))
        .collect()
}

/// The elementwise sum of any number of inputs, as a residual connection `x + f(x)`
/// (`torch.add`, ONNX `Add`, zennit's `Sum` layer). Inputs broadcast as in NumPy (their
/// per-sample shapes; the batch must agree).
///
/// A sum is a linear map without parameters: LRP rules apply zennit's `Norm`, so each
/// input gets its share `x_k / Σ x` of the relevance (what zennit's `ResNetCanonizer` sets
/// up by replacing the residual `+` with a `Sum` module); DeepLIFT passes the multipliers
/// to every input (the Linear rule).
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{Add, Merge};
/// # fn main() -> relevance::Result<()> {
/// let (a, b) = (array![[1.0_f64, 2.0]].into_dyn(), array![[10.0, 20.0]].into_dyn());
/// assert_eq!(Add::new().forward(&[a.view(), b.view()])?, array![[11.0, 22.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Add;

impl Add {
    /// The sum of its inputs.
    pub fn new() -> Self {
        Add
    }
}

impl<F: Float> Merge<F> for Add {
    fn name(&self) -> String {
        "Add".into()
    }

    fn class(&self) -> MergeClass<'_, F> {
        MergeClass::Sum(self)
    }

    fn output_shape(&self, input_shapes: &[&[usize]]) -> Result<Vec<usize>> {
        broadcast("Add", input_shapes)
    }

    fn forward(&self, inputs: &[ArrayViewD<'_, F>]) -> Result<ArrayD<F>> {
        let full: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
        let shape = broadcast("Add", &full)?;
        let (first, rest) = inputs.split_first().ok_or_else(|| Error::Graph {
            node: "Add".into(),
            reason: "no inputs".into(),
        })?;
        let mut out =
            crate::pool::copied(&first.broadcast(shape.clone()).expect("broadcasts, checked above"));
        for x in rest {
            out += x;
        }
        Ok(out)
    }

    fn gradient(&self, step: &MergeStep<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<Vec<ArrayD<F>>> {
        LinearMap::transpose(self, grad_output, &input_shapes(step))
    }
}

impl<F: Float> LinearMap<F> for Add {
    /// `s` to every input, summed over the axes the input was broadcast along.
    fn transpose(&self, s: ArrayViewD<'_, F>, input_shapes: &[&[usize]]) -> Result<Vec<ArrayD<F>>> {
        input_shapes
            .iter()
            .map(|shape| {
                let mut full = vec![s.shape().first().copied().unwrap_or(0)];
                full.extend_from_slice(shape);
                sum_to_shape(crate::pool::copied(&s), &full)
            })
            .collect()
    }
}

/// Concatenation along a per-sample axis (0 = channels), as `torch.cat(xs, dim=axis + 1)`
/// or ONNX `Concat`. A rearrangement: each input gets back its own slice of the relevance
/// (the gradient), under every rule.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{Concat, Merge};
/// # fn main() -> relevance::Result<()> {
/// let (a, b) = (array![[1.0_f64]].into_dyn(), array![[2.0, 3.0]].into_dyn());
/// assert_eq!(Concat::new(0).forward(&[a.view(), b.view()])?, array![[1.0, 2.0, 3.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concat {
    axis: usize,
}

impl Concat {
    /// Concatenation along per-sample axis `axis` (0: channels of an image).
    pub fn new(axis: usize) -> Self {
        Concat { axis }
    }

    /// The per-sample axis.
    pub fn axis(&self) -> usize {
        self.axis
    }

    /// Splits `a` (with a batch axis) into the inputs' slices.
    fn split<F: Float>(&self, a: ArrayViewD<'_, F>, input_shapes: &[&[usize]]) -> Result<Vec<ArrayD<F>>> {
        let axis = Axis(self.axis + 1);
        let expected = Merge::<F>::output_shape(self, input_shapes)?;
        if a.ndim() == 0 || crate::tensor::checks::per_sample(a.shape()) != expected.as_slice() {
            return Err(Error::Shape {
                what: "Concat output relevance (per sample)".into(),
                expected,
                got: crate::tensor::checks::per_sample(a.shape()).to_vec(),
            });
        }
        let mut start = 0;
        Ok(input_shapes
            .iter()
            .map(|s| {
                let len = s[self.axis];
                let part = crate::pool::copied(&a.slice_axis(axis, Slice::from(start..start + len)));
                start += len;
                part
            })
            .collect())
    }
}

impl<F: Float> Merge<F> for Concat {
    fn name(&self) -> String {
        format!("Concat(axis {})", self.axis)
    }

    fn class(&self) -> MergeClass<'_, F> {
        MergeClass::Reshape(self)
    }

    fn output_shape(&self, input_shapes: &[&[usize]]) -> Result<Vec<usize>> {
        let first = input_shapes.first().ok_or_else(|| Error::Graph {
            node: "Concat".into(),
            reason: "no inputs".into(),
        })?;
        if self.axis >= first.len() {
            return Err(Error::Rank {
                what: format!("Concat input (per sample; concatenating axis {})", self.axis),
                expected: self.axis + 1,
                got: first.len(),
                shape: first.to_vec(),
            });
        }
        let mut out = first.to_vec();
        out[self.axis] = 0;
        for s in input_shapes {
            let same = s.len() == first.len()
                && s.iter()
                    .zip(first.iter())
                    .enumerate()
                    .all(|(a, (x, y))| a == self.axis || x == y);
            if !same {
                return Err(Error::Shape {
                    what: format!("Concat input (all axes but {} must agree)", self.axis),
                    expected: first.to_vec(),
                    got: s.to_vec(),
                });
            }
            out[self.axis] += s[self.axis];
        }
        Ok(out)
    }

    fn forward(&self, inputs: &[ArrayViewD<'_, F>]) -> Result<ArrayD<F>> {
        if let Some(x) = inputs.iter().find(|x| x.ndim() < self.axis + 2) {
            return Err(Error::Rank {
                what: format!(
                    "Concat input (batch first, concatenated along axis {})",
                    self.axis
                ),
                expected: self.axis + 2,
                got: x.ndim(),
                shape: x.shape().to_vec(),
            });
        }
        ndarray::concatenate(Axis(self.axis + 1), inputs).map_err(|_| Error::Shape {
            what: "Concat inputs".into(),
            expected: inputs.first().map(|x| x.shape().to_vec()).unwrap_or_default(),
            got: inputs
                .iter()
                .skip(1)
                .flat_map(|x| x.shape().iter().copied())
                .collect(),
        })
    }

    fn gradient(&self, step: &MergeStep<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<Vec<ArrayD<F>>> {
        self.split(grad_output, &input_shapes(step))
    }
}

/// The elementwise product of two computed tensors (NumPy broadcasting), as a
/// squeeze-and-excitation gate `x ⊙ σ(g)` (`[N, C, H, W] ⊙ [N, C, 1, 1]`) or SiLU written
/// as `x ⊙ σ(x)`.
///
/// LRP rules send all relevance to the factor that is not a gate (signal-take-all, Arras et
/// al. 2017; see [`signal_take_all`](crate::rules::signal_take_all)); DeepLIFT splits the
/// difference exactly between the factors (the Shapley split, see
/// [`DeepLift`](crate::DeepLift)).
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{Merge, Mul};
/// # fn main() -> relevance::Result<()> {
/// let (x, gate) = (array![[[[1.0_f64, 2.0]]]].into_dyn(), array![[[[0.5]]]].into_dyn());
/// assert_eq!(Mul::new().forward(&[x.view(), gate.view()])?, array![[[[0.5, 1.0]]]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mul;

impl Mul {
    /// The product of its two inputs.
    pub fn new() -> Self {
        Mul
    }
}

impl<F: Float> Merge<F> for Mul {
    fn name(&self) -> String {
        "Mul".into()
    }

    fn class(&self) -> MergeClass<'_, F> {
        MergeClass::Product(self)
    }

    fn output_shape(&self, input_shapes: &[&[usize]]) -> Result<Vec<usize>> {
        if input_shapes.len() != 2 {
            return Err(Error::Graph {
                node: "Mul".into(),
                reason: format!("a product takes two inputs, got {}", input_shapes.len()),
            });
        }
        broadcast("Mul", input_shapes)
    }

    fn forward(&self, inputs: &[ArrayViewD<'_, F>]) -> Result<ArrayD<F>> {
        let [a, b] = inputs else {
            return Err(Error::Graph {
                node: "Mul".into(),
                reason: format!("a product takes two inputs, got {}", inputs.len()),
            });
        };
        let shape = broadcast("Mul", &[a.shape(), b.shape()])?;
        let mut out = crate::pool::copied(&crate::tensor::layout::broadcast(a, shape));
        out *= b;
        Ok(out)
    }

    fn gradient(&self, step: &MergeStep<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<Vec<ArrayD<F>>> {
        crate::rules::product_gradient(step, &grad_output)
    }
}
