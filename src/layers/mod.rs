//! The node traits of a [`Network`](crate::Network) and the built-in layers.
//!
//! A network is a directed acyclic graph of nodes. A node with one input is a [`Layer`];
//! a node with several inputs (a residual sum, a concatenation, a product) is a [`Merge`].
//! Each node declares its algebraic class once ([`Layer::class`], [`Merge::class`]); its
//! category, the rule method that redistributes relevance through it and DeepLIFT's
//! treatment all follow from that answer:
//!
//! | class | trait the class works through | rule method | LRP (zennit) | DeepLIFT |
//! |---|---|---|---|---|
//! | affine with parameters (dense, conv) | [`Affine`] | [`Rule::affine`] | the rule's own formula | Linear rule |
//! | elementwise (activations, batch norm) | [`Layer`] | [`Rule::activation`] | `Pass` | Rescale / RevealCancel |
//! | parameter-free linear map (sum, average pooling) | [`LinearMap`] | [`Rule::linear`] | `Norm` | Linear rule |
//! | selection by value (max-pooling) | [`Select`] | [`Rule::select`] | winner takes all | cross-max |
//! | product of two computed tensors | [`Merge`] | [`Rule::product`] | signal takes all | Shapley split |
//! | softmax along an axis | [`Layer`] | [`Rule::softmax`] | its gradient | exact (its own graph), or captum's rule |
//! | normalisation over trailing axes (layer norm, RMS norm) | [`Normalize`] | [`Rule::normalization`] | ε-rule with `1/σ` constant | its own graph, exact |
//! | matrix product of two computed tensors | [`Merge`] | [`Rule::matmul`] | ε-rule, then half to each factor | Shapley split |
//! | lookup of token ids ([`Embedding`]) | [`Layer`] | [`Rule::embedding`] | summed per token | per token, exact |
//! | rearrangement (flatten, reshape, permute, concat, pad, identity) | [`Layer`], [`Merge`] | none: the gradient | exact | exact |
//!
//! A new layer that falls into one of these classes is one new file; the [`Rule`] trait
//! does not change.
//!
//! Layers are immutable: a forward pass and every relevance pass take `&self`, and no call
//! changes what a layer computes (what a layer keeps between calls, a convolution's Winograd
//! transforms or [kept rule weights](KeptWeights), is derived from its weights). All arrays
//! are batch-first (`[N, ...]`) in PyTorch layouts.

pub(crate) mod activation;
mod avgpool;
mod batchnorm;
mod class;
mod conv1d;
mod conv2d;
mod conv_transpose2d;
mod dense;
mod embedding;
mod flatten;
mod kept;
mod length;
mod lrn;
mod matmul;
mod maxpool;
mod merge;
mod norm;
mod pad;
mod pool1d;
mod relu;
mod reshape;
mod resize;
mod softmax;
mod step;

pub use activation::{
    Clip, Elu, Exp, Gelu, HardSigmoid, HardSwish, LeakyRelu, Log, Log1p, Sigmoid, Silu, Softplus, Tanh,
};
pub use avgpool::AvgPool2d;
pub use batchnorm::BatchNorm2d;
pub use class::{Class, MergeClass};
pub use conv1d::{Conv1d, Conv1dConfig};
#[cfg(test)]
pub(crate) use conv2d::STACK_MAX;
pub use conv2d::{Conv2d, Conv2dConfig};
pub use conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig};
pub use dense::Dense;
pub use embedding::Embedding;
pub use flatten::Flatten;
pub(crate) use kept::KeptSet;
pub use kept::{KeptWeights, KEPT_SETS_MAX};
pub use lrn::LocalResponseNorm;
pub use matmul::MatMul;
pub(crate) use matmul::{two as matmul_two, Plan as MatMulPlan};
pub use maxpool::MaxPool2d;
pub use merge::{Add, Concat, Mul};
pub use norm::{LayerNorm, RmsNorm};
pub use pad::{Identity, Pad};
pub use pool1d::{AvgPool1d, MaxPool1d};
pub use relu::Relu;
pub use reshape::{Narrow, Permute, Reshape};
#[cfg_attr(not(feature = "onnx"), allow(unused_imports))] // what the ONNX importer folds constants with
pub(crate) use resize::{along as resize_along, weights_1d as resize_weights};
pub use resize::{Coordinates, Interpolation, Resize};
pub use softmax::Softmax;
pub use step::{MergeStep, Step};

use crate::error::Result;
use crate::float::Float;
#[cfg(doc)]
use crate::rules::Rule; // doc links
use ndarray::{Array1, ArrayD, ArrayView1, ArrayViewD};
use std::fmt::Debug;

/// What kind of node this is; composites choose rules by it (after zennit's layer types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// A fully connected layer ([`Dense`]).
    Dense,
    /// A convolution ([`Conv2d`], [`Conv1d`], [`ConvTranspose2d`]).
    Convolution,
    /// An elementwise nonlinearity ([`Relu`], [`Sigmoid`], [`Clip`], ...).
    Activation,
    /// Batch normalisation in evaluation mode, or any per-channel affine map ([`BatchNorm2d`]);
    /// also local response normalisation ([`LocalResponseNorm`]).
    BatchNorm,
    /// Max-pooling ([`MaxPool2d`]).
    MaxPool,
    /// Average pooling, global and adaptive included ([`AvgPool2d`]).
    AvgPool,
    /// An elementwise sum of several tensors, e.g. a residual connection ([`Add`]).
    Sum,
    /// An elementwise product of two computed tensors, e.g. a gate ([`Mul`]).
    Product,
    /// A node that only rearranges values ([`Flatten`], [`Concat`], [`Pad`], [`Identity`]).
    Reshape,
    /// A softmax over one axis ([`Softmax`]): not elementwise; see [`Rule::softmax`].
    Softmax,
    /// A normalisation over the trailing axes of each sample ([`LayerNorm`], [`RmsNorm`]);
    /// see [`Rule::normalization`].
    Normalization,
    /// A matrix product of two computed tensors ([`MatMul`]: attention scores and weighted
    /// values); see [`Rule::matmul`].
    MatMul,
    /// A lookup of token ids in a table ([`Embedding`]); see [`Rule::embedding`].
    Embedding,
    /// A node with no input: a held input or a constant
    /// ([`GraphBuilder::held_input`](crate::GraphBuilder::held_input),
    /// [`Network::bind`](crate::Network::bind)). No rule is applied there: what arrives at
    /// it is not carried further, as for a bias.
    Constant,
}

impl Category {
    /// Whether nodes of this category are affine (dense or convolution), i.e. are the
    /// layers where LRP rules differ.
    pub fn is_affine(self) -> bool {
        matches!(self, Category::Dense | Category::Convolution)
    }
}

/// A layer that a preceding layer may run inside its own forward pass, on its outputs as it
/// stores them ([`Layer::forward_fused`]), where no one needs the preceding layer's output
/// itself: a forward pass that keeps no values ([`Network::forward`](crate::Network::forward),
/// evaluation), never the recorded pass of an explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fused {
    /// [`Relu`]. Where the node before it does not run it fused, the network runs it in place
    /// on that node's new output (a sum, a dense layer's output), without a second array.
    Relu,
    /// A [`MaxPool2d`] with a 2×2 window, stride 2, no padding, on inputs of at least 2×2.
    MaxPool2x2,
}

/// A node with one input of a [`Network`](crate::Network).
///
/// Implement it to add a layer of your own: give its output shape (checked when the network
/// is built), its forward pass, its gradient, and its algebraic [`Class`] (`Class::Dense(self)`
/// for an affine layer, `Class::Activation(self)` for an elementwise one, see the module
/// docs): every rule then knows what to do with it. The README shows a complete example.
pub trait Layer<F: Float>: Debug + Send + Sync {
    /// A short human-readable description, e.g. `Dense(784→10)`; used in error messages.
    fn name(&self) -> String;

    /// The layer's algebraic class, holding the layer as the trait object of that class:
    /// the one place a layer says what it is. Its category, its relevance pass under every
    /// rule ([`Class::relevance`]) and DeepLIFT's treatment follow from it.
    fn class(&self) -> Class<'_, F>;

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

    /// The gradient (vector-Jacobian product) of the output with respect to the input,
    /// applied to `grad_output`, at the recorded point `step`.
    ///
    /// # Shapes
    /// `grad_output` is `[N, out...]`; the result is `[N, in...]`.
    ///
    /// # Errors
    /// A shape error if `grad_output` does not fit.
    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>>;

    /// How many scratch values per sample its passes need beyond the input and the output
    /// (a convolution's unfolded input, say), for an input of per-sample shape
    /// `input_shape`; saturating. A network refuses a layer whose scratch exceeds
    /// [`MAX_SAMPLE_LEN`](crate::MAX_SAMPLE_LEN) when it is built, rather than failing to
    /// allocate at the first forward pass. Default 0.
    fn scratch_len(&self, _input_shape: &[usize]) -> usize {
        0
    }

    /// What this layer is as a [`Fused`] step, on inputs of per-sample shape `input_shape`,
    /// if a preceding layer may run it inside its own forward pass. Default `None`.
    fn as_fused(&self, _input_shape: &[usize]) -> Option<Fused> {
        None
    }

    /// The forward pass followed by the layers `then` (in order, each the only reader of
    /// the output before it), if this layer runs them fused; `None` if not (the network
    /// then runs the layers one by one). The result must be the bits the layers give in
    /// turn. Default `None`.
    ///
    /// # Errors
    /// As [`forward`](Layer::forward).
    fn forward_fused(&self, _input: ArrayViewD<'_, F>, _then: &[Fused]) -> Option<Result<ArrayD<F>>> {
        None
    }

    /// For a layer that works along one axis of each sample (a softmax, of class
    /// [`Class::Softmax`]): that axis of a full `[N, ...]` array of rank `rank`. Rules that
    /// redistribute along the lanes of a softmax (AttnLRP's Taylor rule, DeepLIFT's exact
    /// softmax rule) need it. Default `None`.
    fn lane_axis(&self, _rank: usize) -> Option<usize> {
        None
    }

    /// Whether the layer is a gate: an activation with outputs in `[0, 1]` meant to scale
    /// another tensor ([`Sigmoid`], [`HardSigmoid`]). A [`Mul`] of a gate and a signal
    /// sends all relevance to the signal. Default `false`.
    fn is_gate(&self) -> bool {
        false
    }

    /// If the layer is a per-channel affine map `y = x·scale[c] + shift[c]` over axis 1
    /// (batch normalisation in evaluation mode), its `(scale, shift)`, so that
    /// [`Network::merge_batch_norm`](crate::Network::merge_batch_norm) can fold it into
    /// the affine layer before it. Default `None`.
    fn channel_affine(&self) -> Option<(Array1<F>, Array1<F>)> {
        None
    }
}

/// A node with several inputs of a [`Network`](crate::Network): an elementwise sum
/// ([`Add`]), a concatenation ([`Concat`]), a product ([`Mul`]), or one of your own.
///
/// Its relevance pass (by its [`MergeClass`]) returns one array per input, in the order of
/// the inputs; where a tensor feeds several nodes, the network adds up what comes back from
/// each.
pub trait Merge<F: Float>: Debug + Send + Sync {
    /// A short human-readable description, e.g. `Add(2)`.
    fn name(&self) -> String;

    /// The node's algebraic class: its category and its relevance pass under every rule
    /// ([`MergeClass::relevance`]) follow from it.
    fn class(&self) -> MergeClass<'_, F>;

    /// The per-sample output shape for the per-sample input shapes (no batch dimension).
    ///
    /// # Errors
    /// A shape error, or [`Error::Graph`](crate::Error::Graph) for a wrong number of
    /// inputs.
    fn output_shape(&self, input_shapes: &[&[usize]]) -> Result<Vec<usize>>;

    /// The forward pass.
    ///
    /// # Shapes
    /// `inputs[k]` `[N, in_k...]` → `[N, out...]`.
    ///
    /// # Errors
    /// A shape error if the inputs do not fit.
    fn forward(&self, inputs: &[ArrayViewD<'_, F>]) -> Result<ArrayD<F>>;

    /// The vector-Jacobian product with respect to each input, at the recorded point.
    ///
    /// # Errors
    /// A shape error if `grad_output` does not fit.
    fn gradient(&self, step: &MergeStep<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<Vec<ArrayD<F>>>;
}

/// A linear map without parameters of one or more inputs that mixes values: a sum of
/// tensors ([`Add`]), average pooling ([`AvgPool2d`]). LRP rules apply zennit's `Norm`
/// here ([`rules::norm`](crate::rules::norm)), DeepLIFT its Linear rule.
pub trait LinearMap<F: Float>: Debug + Send + Sync {
    /// The transposed map (the vector-Jacobian product) applied to `s`: one array per
    /// input, `[N, input_shapes[k]...]`.
    ///
    /// # Shapes
    /// `s` is `[N, out...]`; `input_shapes` are per sample (no batch dimension).
    ///
    /// # Errors
    /// A shape error if `s` does not fit.
    fn transpose(&self, s: ArrayViewD<'_, F>, input_shapes: &[&[usize]]) -> Result<Vec<ArrayD<F>>>;
}

/// A layer whose every output is one of its inputs, chosen by value: max-pooling.
/// LRP rules route relevance to the chosen input (the gradient); DeepLIFT applies its
/// cross-max rule through [`Select::route`].
pub trait Select<F: Float>: Layer<F> {
    /// Adds each value of `values` (at the output) at the input element its output chose
    /// on `input` (for max-pooling the first maximum of the window), into a zero array of
    /// the input's shape.
    ///
    /// # Shapes
    /// `input` `[N, in...]`, `values` `[N, out...]`; the result `[N, in...]`.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    fn route(&self, input: &ArrayViewD<'_, F>, values: &ArrayViewD<'_, F>) -> Result<ArrayD<F>>;

    /// DeepLIFT's cross-max rule computed in one pass, if the layer has a fast path for
    /// these arrays (`None`: the rule runs its general form on [`Select::route`]).
    /// Must give the general form's values. Default `None`.
    fn cross_max(
        &self,
        _input: &ArrayViewD<'_, F>,
        _baseline: &ArrayViewD<'_, F>,
        _multiplier: &ArrayViewD<'_, F>,
        _threshold: F,
    ) -> Option<ArrayD<F>> {
        None
    }
}

/// A normalisation over the trailing axes of each sample ([`LayerNorm`], [`RmsNorm`]):
/// `y = w ⊙ c · s + b` per row, with `c` the centred input (layer norm) or the input (RMS
/// norm) and `s = 1/√(mean(c²) + eps)`. What rules need besides the forward pass and the
/// gradient.
pub trait Normalize<F: Float>: Layer<F> {
    /// `Jᵀ t` at the recorded `input`, where `J` is the Jacobian with the normalising
    /// factor `s` held at its recorded value (the map `x ↦ w ⊙ c(x) · s`, linear in `x`).
    /// AttnLRP's rule is `R_in = x ⊙ Jᵀ(R / stab(y))` (Achtibat et al. 2024, Prop. 3.4).
    ///
    /// # Errors
    /// A shape error if the arrays do not fit the layer.
    fn frozen_transpose(&self, input: &ArrayViewD<'_, F>, t: &ArrayViewD<'_, F>) -> Result<ArrayD<F>>;

    /// DeepLIFT's multipliers at the input, given those at the output, by the layer's own
    /// graph: the Linear rule through the centring, the two-player Shapley split of
    /// `c · s` and of `c ⊙ c` (inside the mean square `v`), and Rescale through
    /// `s = (v + eps)^(-1/2)` (its derivative at the midpoint where `|Δv| < threshold`).
    /// Every step is exact, so `Σ m_in ⊙ Δx = Σ m_out ⊙ Δy` per row.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit the layer.
    fn difference_multipliers(
        &self,
        input: &ArrayViewD<'_, F>,
        baseline_input: &ArrayViewD<'_, F>,
        multipliers: &ArrayViewD<'_, F>,
        threshold: F,
    ) -> Result<ArrayD<F>>;
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

    /// Adds `bias` (one value per output channel) to an output of [`Affine::apply_with`].
    /// Default: along axis 1 (the channels of `[N, C, ...]`); [`Dense`] adds along the last
    /// axis (the features of `[N, ..., out]`).
    fn add_bias(&self, out: &mut ArrayD<F>, bias: ArrayView1<'_, F>) {
        crate::kernels::elementwise::add_channel_bias(out, bias);
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

    /// Where the layer keeps rule-modified copies of its weight between calls, if it offers
    /// such storage: [`Network::keep_rule_weights`](crate::Network::keep_rule_weights)
    /// switches it on. Default `None`: rules modify the weight on every call. [`Dense`] and
    /// [`Conv2d`] and [`Conv1d`] offer it.
    fn kept_weights(&self) -> Option<&KeptWeights<F>> {
        None
    }

    /// The same layer with another weight (the shape of [`Affine::weight`]) and bias
    /// (one value per output channel), if the layer can be rebuilt so; used by
    /// [`Network::merge_batch_norm`](crate::Network::merge_batch_norm). Default `None`.
    fn with_parameters(&self, _weight: ArrayD<F>, _bias: Array1<F>) -> Option<Result<Box<dyn Layer<F>>>> {
        None
    }

    /// The weight with output channel `c` multiplied by `scale[c]`, or `None` if `scale`
    /// does not have one value per output channel; used by
    /// [`Network::merge_batch_norm`](crate::Network::merge_batch_norm). The default scales
    /// along axis 0 (dense `[out, in]`, conv `[out, in, kh, kw]`);
    /// [`ConvTranspose2d`] (`[in, out / groups, kh, kw]`) along axis 1, per group.
    fn scale_output_channels(&self, scale: ArrayView1<'_, F>) -> Option<ArrayD<F>> {
        let w = self.weight();
        if w.ndim() < 1 || w.shape()[0] != scale.len() {
            return None;
        }
        let mut weight = w.to_owned();
        for (mut row, &s) in weight.axis_iter_mut(ndarray::Axis(0)).zip(scale.iter()) {
            row.mapv_inplace(|v| v * s);
        }
        Some(weight)
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
        layer.add_bias(&mut out, b);
    }
    Ok(out)
}

/// [`affine_forward`] followed by a [`Relu`], in one pass over the output (the bias and the
/// ReLU together, in place): the same bits as the two layers in turn.
pub(crate) fn affine_forward_relu<F: Float>(
    layer: &dyn Affine<F>,
    input: ArrayViewD<'_, F>,
) -> Result<ArrayD<F>> {
    let mut out = layer.apply_with(input, layer.weight())?;
    crate::kernels::elementwise::add_channel_bias_relu(&mut out, layer.bias());
    Ok(out)
}

/// The gradient of an affine layer: [`Affine::apply_transpose`] with its own weight.
pub(crate) fn affine_gradient<F: Float>(
    layer: &dyn Affine<F>,
    step: &Step<'_, F>,
    grad_output: ArrayViewD<'_, F>,
) -> Result<ArrayD<F>> {
    layer.apply_transpose(
        grad_output,
        layer.weight(),
        crate::tensor::checks::per_sample(step.input.shape()),
    )
}
