//! The [`Layer`] trait, the [`Affine`] trait of dense and convolutional layers, and the
//! five built-in layers.
//!
//! Layers are immutable: a forward pass and every relevance pass take `&self`, and nothing
//! is stored on a layer. All arrays are batch-first (`[N, ...]`) in PyTorch layouts.

mod conv2d;
mod dense;
mod flatten;
mod maxpool;
mod relu;
mod winograd;

pub use conv2d::{Conv2d, Conv2dConfig};
pub use dense::Dense;
pub use flatten::Flatten;
pub use maxpool::MaxPool2d;
pub use relu::Relu;

use crate::error::Result;
use crate::float::Float;
use crate::rules::Rule;
use ndarray::{ArrayD, ArrayView1, ArrayViewD};
use std::fmt::Debug;

/// What kind of layer this is; composites choose rules by it (after zennit's layer types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// A fully connected layer ([`Dense`]).
    Dense,
    /// A convolution ([`Conv2d`]).
    Convolution,
    /// An elementwise nonlinearity ([`Relu`]).
    Activation,
    /// A pooling layer ([`MaxPool2d`]).
    Pooling,
    /// A layer that only rearranges values ([`Flatten`]).
    Reshape,
}

impl Category {
    /// Whether layers of this category are affine (dense or convolution), i.e. are the
    /// layers where LRP rules differ.
    pub fn is_affine(self) -> bool {
        matches!(self, Category::Dense | Category::Convolution)
    }
}

/// What a layer's relevance pass is given: the recorded forward pass of the layer and the
/// relevance arriving at its output.
///
/// # Shapes
/// `input` is `[N, in...]`, `output` and `relevance` are `[N, out...]`. The baseline
/// fields, when present, have the shapes of `input` and `output`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Step<'a, F> {
    /// Position of the layer in the network (0 = first layer).
    pub index: usize,
    /// The layer's recorded input.
    pub input: ArrayViewD<'a, F>,
    /// The layer's recorded output (for affine layers: the pre-activation z = Wx + b).
    pub output: ArrayViewD<'a, F>,
    /// Relevance at the layer's output.
    pub relevance: ArrayViewD<'a, F>,
    /// The layer's input on the baseline (reference) pass, for rules that need one.
    pub baseline_input: Option<ArrayViewD<'a, F>>,
    /// The layer's output on the baseline (reference) pass, for rules that need one.
    pub baseline_output: Option<ArrayViewD<'a, F>>,
}

impl<'a, F> Step<'a, F> {
    /// A step without a baseline pass.
    pub fn new(
        index: usize,
        input: ArrayViewD<'a, F>,
        output: ArrayViewD<'a, F>,
        relevance: ArrayViewD<'a, F>,
    ) -> Self {
        Step {
            index,
            input,
            output,
            relevance,
            baseline_input: None,
            baseline_output: None,
        }
    }

    /// Adds the layer's input and output on the baseline pass.
    pub fn with_baseline(mut self, input: ArrayViewD<'a, F>, output: ArrayViewD<'a, F>) -> Self {
        self.baseline_input = Some(input);
        self.baseline_output = Some(output);
        self
    }
}

/// One layer of a [`Network`](crate::Network).
///
/// Implement it to add a layer of your own: give its output shape (checked when the network
/// is built), its forward pass, and its relevance pass, which usually hands itself to the
/// rule (`rule.affine(self, step)` for an affine layer, `rule.activation(self, step)` for
/// an elementwise one). The README shows a complete example.
pub trait Layer<F: Float>: Debug + Send + Sync {
    /// A short human-readable name, e.g. `Dense(784→10)`; used in error messages.
    fn name(&self) -> String;

    /// The layer's category, by which composites choose rules.
    fn category(&self) -> Category;

    /// The per-sample output shape for a per-sample input shape (no batch dimension).
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) or [`Error::Rank`](crate::Error::Rank) if
    /// the layer cannot take inputs of that shape.
    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>>;

    /// The forward pass.
    ///
    /// # Shapes
    /// `[N, in...]` → `[N, out...]`.
    ///
    /// # Errors
    /// A shape error if the input does not fit the layer.
    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>>;

    /// Redistributes `step.relevance` (at the output) onto the input, under `rule`.
    ///
    /// # Shapes
    /// `step.relevance` is `[N, out...]`; the result is `[N, in...]`.
    ///
    /// # Errors
    /// Whatever the rule reports (e.g. bounds of the wrong shape, missing baseline).
    fn relevance(&self, rule: &dyn Rule<F>, step: &Step<'_, F>) -> Result<ArrayD<F>>;

    /// The gradient (vector-Jacobian product) of the output with respect to the input,
    /// applied to `grad_output`, at the recorded point `step`.
    ///
    /// # Shapes
    /// `grad_output` is `[N, out...]`; the result is `[N, in...]`.
    ///
    /// # Errors
    /// A shape error if `grad_output` does not fit.
    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>>;

    /// This layer as an affine layer, if it is one.
    fn as_affine(&self) -> Option<&dyn Affine<F>> {
        None
    }

    /// Whether [`Layer::relevance`] is exactly `rule.activation(self, step)` (as for
    /// [`Relu`]), so that the network may skip it for rules whose activation pass is the
    /// identity ([`Rule::activation_is_identity`]). Default `false`.
    fn relevance_is_activation(&self) -> bool {
        false
    }
}

/// An affine layer (dense or convolution): everything an LRP rule needs.
///
/// A rule modifies the inputs and the parameters, then calls [`Affine::apply_with`] (the
/// layer's linear map with substituted weights, no bias) and [`Affine::apply_transpose`]
/// (the transposed map, i.e. the vector-Jacobian product `Wᵀ s`). Biases are per output
/// channel (axis 1) and added by the caller.
pub trait Affine<F: Float>: Layer<F> {
    /// The weight in PyTorch layout (dense `[out, in]`, conv `[out, in, kh, kw]`).
    fn weight(&self) -> ArrayViewD<'_, F>;

    /// The bias, one value per output channel, if the layer has one.
    fn bias(&self) -> Option<ArrayView1<'_, F>>;

    /// The linear map with weight `w` (same shape as [`Affine::weight`]) and no bias.
    ///
    /// # Shapes
    /// `x` is `[N, in...]`, the result `[N, out...]`.
    ///
    /// # Errors
    /// A shape error if `x` or `w` does not fit.
    fn apply_with(&self, x: ArrayViewD<'_, F>, w: ArrayViewD<'_, F>) -> Result<ArrayD<F>>;

    /// The transpose of [`Affine::apply_with`]:
    /// `⟨apply_with(x, w), s⟩ = ⟨x, apply_transpose(s, w, x.shape()[1..])⟩`.
    ///
    /// # Shapes
    /// `s` is `[N, out...]`; `input_shape` is the per-sample input shape (no batch
    /// dimension; a strided convolution needs it); the result is `[N, input_shape...]`.
    ///
    /// # Errors
    /// A shape error if `s`, `w` or `input_shape` does not fit.
    fn apply_transpose(
        &self,
        s: ArrayViewD<'_, F>,
        w: ArrayViewD<'_, F>,
        input_shape: &[usize],
    ) -> Result<ArrayD<F>>;

    /// Whether the weight's axis 1 is the input-channel axis (axis 1 of the input), so that
    /// an input element of channel `k` only meets weights `w[:, k, ...]`: true for [`Dense`]
    /// (`[out, in]`) and [`Conv2d`] (`[out, in, kh, kw]`).
    ///
    /// Rules then fold a term whose input is constant over each channel (z^B's scalar or
    /// per-channel bounds, LRP-flat's ones) into the weight, `W·c = (W diag c)·1`, and
    /// use [`Affine::apply_ones`]. Default `false`: such inputs are built as full tensors
    /// and go through [`Affine::apply_with`].
    fn weight_columns_are_input_channels(&self) -> bool {
        false
    }

    /// [`Affine::apply_with`] of a single sample of all ones, of per-sample shape
    /// `input_shape`: `[1, out...]`.
    ///
    /// The default builds the ones and calls `apply_with`; [`Conv2d`] sums the weight over
    /// the taps inside the image instead.
    ///
    /// # Errors
    /// As [`Affine::apply_with`].
    fn apply_ones(&self, w: ArrayViewD<'_, F>, input_shape: &[usize]) -> Result<ArrayD<F>> {
        let shape: Vec<usize> = std::iter::once(1).chain(input_shape.iter().copied()).collect();
        self.apply_with(ArrayD::from_elem(shape, F::one()).view(), w)
    }

    /// [`Affine::apply_with`] of one input with several weights:
    /// `[apply_with(x, w) for w in ws]`.
    ///
    /// The default calls `apply_with` once per weight. A layer can override it to share the
    /// work that depends on `x` alone ([`Conv2d`] builds its im2col matrix once). Rules
    /// with several terms on the same input (LRP-γ's two groups) go through it.
    ///
    /// # Errors
    /// As [`Affine::apply_with`].
    fn apply_many(&self, x: ArrayViewD<'_, F>, ws: &[ArrayViewD<'_, F>]) -> Result<Vec<ArrayD<F>>> {
        ws.iter().map(|w| self.apply_with(x.clone(), w.clone())).collect()
    }

    /// The sum of several transposed maps, `Σ_g apply_transpose(s_g, w_g)`.
    ///
    /// The default adds the separate results. A layer can override it to sum before the
    /// step back to the input layout ([`Conv2d`] accumulates the matrix products and runs
    /// one col2im).
    ///
    /// # Errors
    /// As [`Affine::apply_transpose`]; [`Error::Unsupported`](crate::Error::Unsupported)
    /// for no terms.
    fn apply_transpose_sum(
        &self,
        terms: &[(ArrayViewD<'_, F>, ArrayViewD<'_, F>)],
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        let mut sum: Option<ArrayD<F>> = None;
        for (s, w) in terms {
            let c = self.apply_transpose(s.clone(), w.clone(), input_shape)?;
            match sum.as_mut() {
                None => sum = Some(c),
                Some(acc) if acc.shape() == c.shape() => *acc += &c,
                Some(acc) => {
                    return Err(crate::Error::Shape {
                        what: format!("{}: transposed map of a summed term", self.name()),
                        expected: acc.shape().to_vec(),
                        got: c.shape().to_vec(),
                    })
                }
            }
        }
        sum.ok_or_else(|| crate::Error::Unsupported {
            rule: self.name(),
            reason: "a sum of transposed maps needs at least one term".into(),
        })
    }
}

/// The forward pass of an affine layer: [`Affine::apply_with`] with its own weight, plus
/// its bias per output channel. Shared by [`Dense`] and [`Conv2d`].
pub(crate) fn affine_forward<F: Float>(layer: &dyn Affine<F>, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
    let mut out = layer.apply_with(input, layer.weight())?;
    if let Some(b) = layer.bias() {
        crate::tensor::add_channel_bias(&mut out, b);
    }
    Ok(out)
}

/// The gradient of an affine layer: [`Affine::apply_transpose`] with its own weight.
pub(crate) fn affine_gradient<F: Float>(
    layer: &dyn Affine<F>,
    step: &Step<'_, F>,
    grad_output: ArrayViewD<'_, F>,
) -> Result<ArrayD<F>> {
    layer.apply_transpose(grad_output, layer.weight(), &step.input.shape()[1..])
}
