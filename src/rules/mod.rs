//! Rules: how a node redistributes relevance from its output to its inputs.
//!
//! A [`Rule`] is asked by each node for its relevance pass (double dispatch), by the
//! node's algebraic class: affine layers call [`Rule::affine`], elementwise layers
//! [`Rule::activation`], parameter-free linear maps (sums, average pooling)
//! [`Rule::linear`], selections (max-pooling) [`Rule::select`], products of computed
//! tensors [`Rule::product`]; rearrangements (flatten, concat, pad) need no rule. The LRP
//! rules are all data for one shared engine (`rules/engine.rs`), after zennit's
//! `BasicHook`: modify inputs and parameters, stabilised division, transposed pass,
//! multiply by the (modified) input.
//!
//! Float types: rules with scalar parameters ([`Lrp0`], [`LrpEpsilon`], [`LrpGamma`], ...,
//! [`DeepLift`]) implement [`Rule<F>`] for both `f32` and `f64` (parameters are stored as
//! `f64` and checked in the network's type when used); rules holding arrays ([`LrpZBox`],
//! composites with z^B bounds) carry the network's float type `F`.

pub(crate) mod attention;
mod composite;
pub(crate) mod deeplift;
pub(crate) mod engine;
mod gradient;
mod lrp;

pub use attention::{
    matmul_constant_attention, matmul_uniform, normalization_epsilon, product_uniform, softmax_taylor,
    AttnLrp, CpLrp,
};
pub use composite::{Composite, NodeInfo, RuleSet, Selector};
pub(crate) use deeplift::DeepLiftRule;
pub use deeplift::{DeepLift, MaxPoolRule, NonlinearRule, SoftmaxRule, DEEPLIFT_THRESHOLD};
pub(crate) use gradient::product_gradient;
pub use gradient::{Gradient, GradientTimesInput};
pub use lrp::{Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Affine, Category, Layer, LinearMap, MergeStep, Normalize, Select, Step};
use crate::tensor::broadcast::sum_to_shape;
use crate::tensor::numerics::safe_ratio;
use ndarray::{ArrayD, Zip};
use std::fmt::Debug;

/// The stabiliser of zennit's `Norm` rule at sums and average pools (zennit's
/// `layer_map_base(stabilizer=1e-6)`), used by every LRP rule but [`Lrp0`].
pub const NORM_STABILIZER: f64 = 1e-6;

/// A relevance rule.
///
/// Each node calls the method of its algebraic class ([`Class`](crate::Class)). Only
/// [`Rule::affine`] is required. The defaults of the other methods are zennit's LRP
/// conventions (`composites.layer_map_base`): an activation passes relevance through
/// unchanged (`Pass`), a sum or average pool applies `Norm`, a max-pool routes relevance
/// to the first maximum of each window (the gradient), a product of a gate and a signal
/// gives everything to the signal, and a softmax takes its gradient.
pub trait Rule<F: Float>: Debug + Send + Sync {
    /// A short name with parameters, e.g. `LrpEpsilon(1e-6)`.
    fn name(&self) -> String;

    /// Relevance through a dense or convolutional layer.
    ///
    /// # Shapes
    /// `step.input` `[N, in...]`, `step.output` and `step.relevance` `[N, out...]`; the
    /// result has the shape of `step.input`.
    ///
    /// # Errors
    /// Whatever does not fit (bounds of the wrong shape, a missing baseline, ...).
    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>>;

    /// Relevance through an elementwise layer (an activation, or batch normalisation that
    /// was not merged). Default: passed through unchanged (zennit's `Pass`).
    ///
    /// # Shapes
    /// `step.relevance` and the result have the shape of `step.input`.
    ///
    /// # Errors
    /// A shape error if the relevance does not have the input's shape.
    fn activation(&self, _layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        if step.relevance.shape() != step.input.shape() {
            return Err(Error::Shape {
                what: "activation relevance".into(),
                expected: step.input.shape().to_vec(),
                got: step.relevance.shape().to_vec(),
            });
        }
        Ok(step.relevance.to_owned())
    }

    /// Whether [`Rule::activation`] hands the relevance on unchanged, as the default
    /// implementation does. The network then skips the call (and its copy) at elementwise
    /// layers ([`Class::is_elementwise`](crate::Class::is_elementwise)). Keep the
    /// default, `false`, in a rule that overrides `activation`; the LRP rules return `true`.
    fn activation_is_identity(&self) -> bool {
        false
    }

    /// Relevance through a parameter-free linear map that mixes values (a residual sum,
    /// average pooling), one array per input. Default: zennit's `Norm` with stabiliser
    /// [`NORM_STABILIZER`] ([`norm`]).
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    fn linear(&self, map: &dyn LinearMap<F>, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        norm(map, step, NORM_STABILIZER)
    }

    /// Relevance through a selection by value (max-pooling). Default: each output's
    /// relevance goes to the input it selected (the gradient; zennit and captum's LRP).
    ///
    /// # Shapes
    /// `step.relevance` `[N, out...]`, the result `[N, in...]`.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    fn select(&self, layer: &dyn Select<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        layer.route(&step.input, &step.relevance)
    }

    /// Relevance through an elementwise product of two computed tensors. Default:
    /// [`signal_take_all`].
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    fn product(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        signal_take_all(step)
    }

    /// Relevance through a softmax along one axis (a layer of class
    /// [`Class::Softmax`](crate::Class::Softmax), e.g. a [`Softmax`](crate::Softmax) kept at the
    /// output). Default: its gradient (zennit assigns no rule to a softmax, so its plain
    /// gradient applies; zennit and captum users usually explain the logits instead).
    /// [`DeepLift`] follows the softmax's graph exactly or applies captum's `softmax` rule
    /// ([`SoftmaxRule`]); [`AttnLrp`] the Taylor rule ([`softmax_taylor`]), [`CpLrp`] none.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    fn softmax(&self, layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        layer.gradient(step, step.relevance.view())
    }

    /// Relevance through a normalisation over trailing axes (a layer of class
    /// [`Class::Normalization`](crate::Class::Normalization): [`LayerNorm`](crate::LayerNorm),
    /// [`RmsNorm`](crate::RmsNorm)). Default: AttnLRP's rule with stabiliser
    /// [`NORM_STABILIZER`] ([`normalization_epsilon`]: `1/σ` held constant, the ε-rule on
    /// the rest; Achtibat et al. 2024, Proposition 3.4). zennit has no rule for layer norms
    /// (its plain gradient would not conserve relevance); [`Gradient`] takes the gradient,
    /// [`DeepLift`] follows the layer's own graph exactly.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    fn normalization(&self, layer: &dyn Normalize<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        normalization_epsilon(layer, step, NORM_STABILIZER)
    }

    /// Relevance through a matrix product of two computed tensors ([`MatMul`](crate::MatMul):
    /// attention scores and weighted values). Default: AttnLRP's ε-rule then uniform split
    /// with stabiliser [`NORM_STABILIZER`] ([`matmul_uniform`]; Achtibat et al. 2024,
    /// Proposition 3.3). zennit has no rule for it; [`Gradient`] takes the gradient,
    /// [`DeepLift`] the exact Shapley split.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    fn matmul(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        matmul_uniform(step, NORM_STABILIZER)
    }

    /// Relevance through a lookup of token ids ([`Embedding`](crate::Embedding)): from the
    /// embeddings `[N, ..., D]` to the ids `[N, ...]`. Default: the relevance of each
    /// token, summed over its embedding (conserving). [`Gradient`] gives 0 (an id cannot be
    /// varied); [`DeepLift`] divides the token's contribution by the id's difference.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit, [`Error::TokenId`] for an invalid id.
    fn embedding(&self, layer: &crate::Embedding<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        layer.rows(&step.input)?;
        layer.per_token(
            "relevance at an Embedding output",
            &step.relevance,
            step.input.shape(),
        )
    }

    /// Whether this rule redistributes through an elementwise activation together with the
    /// affine node right below it (of category `below`), as DeepLIFT's RevealCancel does
    /// (it needs the positive and negative parts of the affine node's contributions).
    /// Default `false`. Where it is `true`, the network pairs the two nodes when the
    /// activation is the affine node's only reader, and calls
    /// [`Rule::affine_activation`] instead of [`Rule::activation`] and [`Rule::affine`].
    fn pairs_with_affine(&self, _below: Category) -> bool {
        false
    }

    /// Relevance through an affine node and the elementwise activation above it, treated
    /// together (see [`Rule::pairs_with_affine`]): returns the relevance at the affine
    /// node's input and what the per-node results show at the value between the two.
    /// Default: the activation's pass, then the affine node's.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    fn affine_activation(
        &self,
        affine: &dyn Affine<F>,
        activation: &dyn Layer<F>,
        step: &PairStep<'_, F>,
    ) -> Result<PairRelevance<F>> {
        let middle = self.activation(activation, &step.activation)?;
        let a = &step.affine;
        let mut below = Step::new(a.index, a.input.view(), a.output.view(), middle.view());
        if let (Some(bi), Some(bo)) = (&a.baseline_input, &a.baseline_output) {
            below = below.with_baseline(bi.view(), bo.view());
        }
        let input = self.affine(affine, &below)?;
        Ok(PairRelevance { input, middle })
    }

    /// Checks the rule's parameters in the network's float type `F`: a parameter that is
    /// valid as `f64` may overflow to ∞ or vanish to 0 as `f32` (`LrpGamma::new(1e39)`).
    /// The network calls it before using the rule. Default: nothing to check.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the parameter.
    fn check_parameters(&self) -> Result<()> {
        Ok(())
    }
}

/// What a paired relevance pass ([`Rule::affine_activation`]) is given: the steps of an
/// affine node and of the elementwise activation that reads its output (and nothing else
/// does).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PairStep<'a, F> {
    /// The affine node's step: its input, its output `z` and their baseline passes. Its
    /// `relevance` is what arrived at the activation's output (the affine node's own output
    /// relevance is what the pair computes).
    pub affine: Step<'a, F>,
    /// The activation's step: input `z`, its output, the relevance arriving there, and
    /// the baseline passes.
    pub activation: Step<'a, F>,
}

impl<'a, F> PairStep<'a, F> {
    /// The pair of an affine node's step and its activation's step.
    pub fn new(affine: Step<'a, F>, activation: Step<'a, F>) -> Self {
        PairStep { affine, activation }
    }
}

/// The result of a paired pass ([`Rule::affine_activation`]).
#[derive(Debug, Clone)]
pub struct PairRelevance<F> {
    /// What goes back to the affine node's input.
    pub input: ArrayD<F>,
    /// What the per-node results show at the value between the two nodes (for LRP the
    /// relevance there; for DeepLIFT the contributions `m⁺Δz⁺ + m⁻Δz⁻`).
    pub middle: ArrayD<F>,
}

/// Checks that the parameter `v` of `rule` survives the conversion to `F`: finite, and
/// not rounded to zero if it is not zero.
pub(crate) fn param_fits<F: Float>(rule: &'static str, name: &str, v: f64) -> Result<()> {
    let c = F::lit(v);
    if !c.is_finite() || (v != 0.0 && c == F::zero()) {
        return Err(Error::InvalidParameter {
            rule,
            reason: format!(
                "{name} = {v:e} is not representable in the network's float type ({})",
                std::any::type_name::<F>()
            ),
        });
    }
    Ok(())
}

/// zennit's `Norm` rule (`rules.Norm`, used for `Sum` and average pools by
/// `composites.layer_map_base`): the ε-rule on a map without parameters,
/// `R_k = x_k ⊙ Mₖᵀ(R / stab(z))` with `z` the recorded output and
/// `stab(z) = z + ε·sign₀(z)` (relevance dropped where the stabilised `z` is exactly 0).
/// For a sum `z = Σ_k x_k` each input gets `x_k · R / stab(z)`: its share of the sum.
///
/// # Errors
/// A shape error if the arrays do not fit.
pub fn norm<F: Float>(
    map: &dyn LinearMap<F>,
    step: &MergeStep<'_, F>,
    stabilizer: f64,
) -> Result<Vec<ArrayD<F>>> {
    if step.relevance.shape() != step.output.shape() {
        return Err(Error::Shape {
            what: "relevance at the output of a linear map".into(),
            expected: step.output.shape().to_vec(),
            got: step.relevance.shape().to_vec(),
        });
    }
    let eps = F::lit(stabilizer);
    let mut s = crate::tensor::layout::shaped(
        step.output.raw_dim(),
        crate::pool::output_buffer(step.output.len()),
    );
    Zip::from(&mut s)
        .and(&step.relevance)
        .and(&step.output)
        .for_each(|s, &r, &z| *s = safe_ratio(r, z, eps));
    let shapes: Vec<&[usize]> = step
        .inputs
        .iter()
        .map(|x| crate::tensor::checks::per_sample(x.shape()))
        .collect();
    let mut parts = map.transpose(s.view(), &shapes)?;
    crate::pool::recycle(s);
    check_parts("linear map", &parts, step)?;
    for (c, x) in parts.iter_mut().zip(&step.inputs) {
        Zip::from(c).and(x).for_each(|c, &x| *c = x * *c);
    }
    Ok(parts)
}

/// The product rule of LRP: where one factor comes out of a gate
/// ([`MergeStep::gates`], e.g. a sigmoid in a squeeze-and-excitation block or in SiLU
/// written as `x·σ(x)`), all relevance goes to the other factor, the signal, and none to the
/// gate (Arras et al. 2017, "Explaining recurrent neural network predictions in sentiment
/// analysis": the gate only decides how much of the signal passes). Where neither or both
/// factors are gates, each factor gets half. A factor broadcast over the output (a
/// `[N, C, 1, 1]` gate) gets its relevance summed over the broadcast axes.
///
/// # Errors
/// A shape error if the arrays do not fit, [`Error::Graph`] for a product of other than two
/// inputs.
pub fn signal_take_all<F: Float>(step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
    if step.inputs.len() != 2 {
        return Err(Error::Graph {
            node: format!("{}", step.index),
            reason: format!("a product takes two inputs, got {}", step.inputs.len()),
        });
    }
    let share: [F; 2] = match (step.gates.first(), step.gates.get(1)) {
        (Some(false), Some(true)) => [F::one(), F::zero()],
        (Some(true), Some(false)) => [F::zero(), F::one()],
        _ => [F::lit(0.5); 2],
    };
    step.inputs
        .iter()
        .zip(share)
        .map(|(x, k)| {
            let r = step.relevance.mapv(|r| r * k);
            sum_to_shape(r, x.shape())
        })
        .collect()
}

/// Checks that a node returned one array per input, each of the input's shape.
pub(crate) fn check_parts<F>(what: &str, parts: &[ArrayD<F>], step: &MergeStep<'_, F>) -> Result<()> {
    if parts.len() != step.inputs.len() {
        return Err(Error::Graph {
            node: format!("{}", step.index),
            reason: format!(
                "{what} returned {} arrays for {} inputs",
                parts.len(),
                step.inputs.len()
            ),
        });
    }
    for (p, x) in parts.iter().zip(&step.inputs) {
        if p.shape() != x.shape() {
            return Err(Error::Shape {
                what: format!("{what}: relevance of an input"),
                expected: x.shape().to_vec(),
                got: p.shape().to_vec(),
            });
        }
    }
    Ok(())
}
