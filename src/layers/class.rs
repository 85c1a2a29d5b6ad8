//! A node's algebraic class, declared once ([`Layer::class`], [`Merge::class`]): its
//! category (what composites select by), which rule method redistributes relevance through
//! it, and what DeepLIFT does there all follow from this one answer.

use super::{Affine, Category, Embedding, Layer, LinearMap, Merge, MergeStep, Normalize, Select, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::rules::Rule;
use ndarray::ArrayD;

/// What a node with one input ([`Layer`]) is, algebraically; each variant holds the layer
/// as the trait object its class works through.
///
/// | variant | category | rule method | LRP (zennit) | DeepLIFT |
/// |---|---|---|---|---|
/// | `Dense`, `Convolution` | the same | [`Rule::affine`] | the rule's formula | Linear rule |
/// | `Activation`, `BatchNorm` (elementwise) | the same | [`Rule::activation`] | `Pass` | Rescale / RevealCancel |
/// | `AvgPool` (a parameter-free linear map) | `AvgPool` | [`Rule::linear`] | `Norm` | Linear rule |
/// | `MaxPool` (a selection by value) | `MaxPool` | [`Rule::select`] | winner takes all | cross-max |
/// | `Softmax` (along one axis) | `Softmax` | [`Rule::softmax`] | its gradient | exact (its own graph), or captum's rule |
/// | `Reshape` (values only move) | `Reshape` | none: the gradient, exact | | |
///
/// ```
/// use relevance::{Category, Dense, Layer, Relu};
/// let dense = Dense::new(ndarray::array![[1.0, 2.0]], None).unwrap();
/// assert_eq!(Layer::<f64>::class(&dense).category(), Category::Dense);
/// assert!(Layer::<f64>::class(&dense).affine().is_some());
/// assert_eq!(Layer::<f64>::class(&Relu).category(), Category::Activation);
/// ```
#[non_exhaustive]
pub enum Class<'a, F: Float> {
    /// A fully connected layer.
    Dense(&'a dyn Affine<F>),
    /// A convolution.
    Convolution(&'a dyn Affine<F>),
    /// An elementwise nonlinearity (ReLU, sigmoid, ...): `y_i = f(x_i)`, one function `f`
    /// for every element whatever its position, so that the layer's forward pass and
    /// gradient may be taken on any elements gathered into a `[1, k]` array (DeepLIFT's
    /// gradient fallback does). Position-dependent maps (per-channel slopes, batch norm)
    /// are [`Class::BatchNorm`].
    Activation(&'a dyn Layer<F>),
    /// An elementwise affine or normalising map that is not a nonlinearity to explain:
    /// batch normalisation in evaluation mode, local response normalisation.
    BatchNorm(&'a dyn Layer<F>),
    /// A selection by value: each output is one of its inputs (max-pooling).
    MaxPool(&'a dyn Select<F>),
    /// A parameter-free linear map that mixes values (average pooling).
    AvgPool(&'a dyn LinearMap<F>),
    /// A softmax along one axis.
    Softmax(&'a dyn Layer<F>),
    /// A normalisation over the trailing axes of each sample (layer norm, RMS norm).
    Normalization(&'a dyn Normalize<F>),
    /// A lookup of token ids in a table.
    Embedding(&'a Embedding<F>),
    /// A node that only moves values (flatten, reshape, permute, narrow, pad, identity):
    /// every rule sends each value's relevance back to where it came from (the gradient).
    Reshape(&'a dyn Layer<F>),
}

/// What a node with several inputs ([`Merge`]) is, algebraically.
///
/// | variant | category | rule method | LRP (zennit) | DeepLIFT |
/// |---|---|---|---|---|
/// | `Sum` (a parameter-free linear map) | `Sum` | [`Rule::linear`] | `Norm` | Linear rule |
/// | `Product` of two computed tensors | `Product` | [`Rule::product`] | signal takes all | Shapley split |
/// | `MatMul` of two computed tensors | `MatMul` | [`Rule::matmul`] | ε-rule, half to each factor | Shapley split |
/// | `Reshape` (concatenation) | `Reshape` | none: the gradient | | |
#[non_exhaustive]
pub enum MergeClass<'a, F: Float> {
    /// An elementwise sum of its inputs (a residual connection).
    Sum(&'a dyn LinearMap<F>),
    /// The elementwise product of two computed tensors (a gate).
    Product(&'a dyn Merge<F>),
    /// The matrix product of two computed tensors (attention).
    MatMul(&'a dyn Merge<F>),
    /// A node that only moves values (concatenation): relevance goes back to where each
    /// value came from.
    Reshape(&'a dyn Merge<F>),
}

impl<F: Float> std::fmt::Debug for Class<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Class::{:?}", self.category())
    }
}

impl<F: Float> std::fmt::Debug for MergeClass<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MergeClass::{:?}", self.category())
    }
}

impl<'a, F: Float> Class<'a, F> {
    /// The category composites select the node by.
    pub fn category(&self) -> Category {
        match self {
            Class::Dense(_) => Category::Dense,
            Class::Convolution(_) => Category::Convolution,
            Class::Activation(_) => Category::Activation,
            Class::BatchNorm(_) => Category::BatchNorm,
            Class::MaxPool(_) => Category::MaxPool,
            Class::AvgPool(_) => Category::AvgPool,
            Class::Softmax(_) => Category::Softmax,
            Class::Normalization(_) => Category::Normalization,
            Class::Embedding(_) => Category::Embedding,
            Class::Reshape(_) => Category::Reshape,
        }
    }

    /// The layer as an affine layer, if it is one (dense or convolution).
    pub fn affine(&self) -> Option<&'a dyn Affine<F>> {
        match *self {
            Class::Dense(a) | Class::Convolution(a) => Some(a),
            _ => None,
        }
    }

    /// Whether the layer is elementwise (an activation or a batch norm): its relevance
    /// pass is [`Rule::activation`].
    pub fn is_elementwise(&self) -> bool {
        matches!(self, Class::Activation(_) | Class::BatchNorm(_))
    }

    /// Redistributes `step.relevance` onto the layer's input under `rule`, by the rule
    /// method of this class. This is what the network does at every node.
    ///
    /// # Shapes
    /// `step.input` `[N, in...]`, `step.output` and `step.relevance` `[N, out...]`; the
    /// result `[N, in...]`.
    ///
    /// # Errors
    /// What the rule reports; a shape error if the arrays do not fit the layer.
    pub fn relevance(&self, rule: &dyn Rule<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        match *self {
            Class::Dense(a) | Class::Convolution(a) => rule.affine(a, step),
            Class::Activation(l) | Class::BatchNorm(l) => rule.activation(l, step),
            Class::MaxPool(s) => rule.select(s, step),
            Class::AvgPool(m) => {
                let mut parts = rule.linear(m, &MergeStep::from_step(step))?;
                match (parts.pop(), parts.is_empty()) {
                    (Some(p), true) => Ok(p),
                    _ => Err(Error::Graph {
                        node: step.index.to_string(),
                        reason: "the rule did not return one relevance array for the pool's one input".into(),
                    }),
                }
            }
            Class::Softmax(l) => rule.softmax(l, step),
            Class::Normalization(l) => rule.normalization(l, step),
            Class::Embedding(l) => rule.embedding(l, step),
            Class::Reshape(l) => l.gradient(step, step.relevance.view()),
        }
    }
}

impl<'a, F: Float> MergeClass<'a, F> {
    /// The category composites select the node by.
    pub fn category(&self) -> Category {
        match self {
            MergeClass::Sum(_) => Category::Sum,
            MergeClass::Product(_) => Category::Product,
            MergeClass::MatMul(_) => Category::MatMul,
            MergeClass::Reshape(_) => Category::Reshape,
        }
    }

    /// Redistributes `step.relevance` onto the node's inputs under `rule` (one array per
    /// input), by the rule method of this class.
    ///
    /// # Errors
    /// What the rule reports; a shape error if the arrays do not fit.
    pub fn relevance(&self, rule: &dyn Rule<F>, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        match *self {
            MergeClass::Sum(m) => rule.linear(m, step),
            MergeClass::Product(_) => rule.product(step),
            MergeClass::MatMul(_) => rule.matmul(step),
            MergeClass::Reshape(m) => m.gradient(step, step.relevance.view()),
        }
    }
}
