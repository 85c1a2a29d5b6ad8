//! The gradient and gradient × input as rule objects, so that they run through the same
//! [`Network::attribute`](crate::Network::attribute) as the LRP rules and can be compared
//! with them. Both reuse the layers' transpose passes ([`Layer::gradient`]).
//!
//! Every rule is linear in the starting relevance, so the seed scales the result: with
//! [`Seed::OneHot`](crate::Seed::OneHot) these are the plain gradient `∇f_c(x)` (captum's
//! `Saliency(abs=False)`) and `x ⊙ ∇f_c(x)` (captum's `InputXGradient`); with the default
//! [`Seed::Logit`](crate::Seed::Logit) both are multiplied by `f_c(x)`.

use super::{NodeInfo, Rule, RuleSet};
use crate::error::Result;
use crate::float::Float;
use crate::layers::{Affine, Layer, LinearMap, MergeStep, Normalize, Select, Step};
use crate::tensor::broadcast::sum_to_shape;
use ndarray::ArrayD;

/// The vector-Jacobian product at every layer: the result is the gradient of
/// `Σ R_out ⊙ f(x)` with respect to the input.
///
/// ```
/// use ndarray::array;
/// use relevance::{Dense, Gradient, Network, Options, Relu, Seed, Target};
/// # fn main() -> relevance::Result<()> {
/// let net = Network::<f64>::new(&[2], vec![
///     Box::new(Dense::new(array![[1.0, -2.0], [3.0, 1.0]], None)?),
///     Box::new(Relu),
///     Box::new(Dense::new(array![[1.0, 1.0]], None)?),
/// ])?;
/// let x = array![[1.0, 1.0]].into_dyn(); // hidden pre-activations -1 and 4
/// let opts = Options { seed: Seed::OneHot, ..Options::default() };
/// let g = net.attribute_with(&x, &Target::Class(0), &Gradient, opts)?;
/// assert_eq!(g.relevance, array![[3.0, 1.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gradient;

impl<F: Float> Rule<F> for Gradient {
    fn name(&self) -> String {
        "Gradient".into()
    }

    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        layer.gradient(step, step.relevance.view())
    }

    fn activation(&self, layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        layer.gradient(step, step.relevance.view())
    }

    fn linear(&self, map: &dyn LinearMap<F>, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        let shapes: Vec<&[usize]> = step
            .inputs
            .iter()
            .map(|x| crate::tensor::checks::per_sample(x.shape()))
            .collect();
        map.transpose(step.relevance.view(), &shapes)
    }

    fn select(&self, layer: &dyn Select<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        layer.route(&step.input, &step.relevance)
    }

    fn normalization(&self, layer: &dyn Normalize<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        layer.gradient(step, step.relevance.view())
    }

    fn matmul(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        let [a, b] = crate::layers::matmul_two(step)?;
        let (ga, gb) =
            crate::layers::MatMulPlan::new(a.shape(), b.shape())?.transposes(a, b, &step.relevance)?;
        Ok(vec![ga, gb])
    }

    fn embedding(&self, layer: &crate::Embedding<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        layer.gradient(step, step.relevance.view())
    }

    fn product(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        product_gradient(step, &step.relevance)
    }
}

/// The gradient of a product `y = a ⊙ b` (broadcasting allowed): `g·b` for `a` and `g·a`
/// for `b`, summed over the axes a factor is broadcast along.
///
/// # Errors
/// [`Error::Graph`](crate::Error::Graph) for other than two inputs, a shape error if they
/// do not broadcast to `g`.
pub(crate) fn product_gradient<F: Float>(
    step: &MergeStep<'_, F>,
    g: &ndarray::ArrayViewD<'_, F>,
) -> Result<Vec<ArrayD<F>>> {
    let [a, b] = step.inputs.as_slice() else {
        return Err(crate::Error::Graph {
            node: step.index.to_string(),
            reason: format!("a product takes two inputs, got {}", step.inputs.len()),
        });
    };
    let times = |x: &ndarray::ArrayViewD<'_, F>| -> Result<ArrayD<F>> {
        let xb = x.broadcast(g.raw_dim()).ok_or_else(|| crate::Error::Shape {
            what: "factor of a product (must broadcast to the output)".into(),
            expected: g.shape().to_vec(),
            got: x.shape().to_vec(),
        })?;
        Ok(g * &xb)
    };
    Ok(vec![
        sum_to_shape(times(b)?, a.shape())?,
        sum_to_shape(times(a)?, b.shape())?,
    ])
}

impl<F: Float> RuleSet<F> for Gradient {
    fn resolve<'a>(&'a self, nodes: &[NodeInfo<'_>]) -> Vec<&'a dyn Rule<F>> {
        vec![self as &dyn Rule<F>; nodes.len()]
    }
}

/// Gradient × input, `x ⊙ ∇f_c(x)` (Shrikumar et al. 2016; captum's `InputXGradient`).
///
/// As a [`RuleSet`] (what [`Network::attribute`](crate::Network::attribute) takes) it is
/// [`Gradient`] at every node, and the gradient arriving at the network input is multiplied
/// by the input. As a single [`Rule`] inside a [`Composite`](crate::Composite) it means
/// "the gradient at this layer's input, times that input" — put it on the first layer.
///
/// On a ReLU network (biases included), `GradientTimesInput` with the one-hot seed equals
/// [`Lrp0`](crate::Lrp0) with the default logit seed.
///
/// ```
/// use ndarray::array;
/// use relevance::{Dense, GradientTimesInput, Network, Options, Relu, Seed, Target};
/// # fn main() -> relevance::Result<()> {
/// let net = Network::<f64>::new(&[2], vec![
///     Box::new(Dense::new(array![[1.0, -2.0], [3.0, 1.0]], None)?),
///     Box::new(Relu),
///     Box::new(Dense::new(array![[1.0, 1.0]], None)?),
/// ])?;
/// let x = array![[2.0, 0.5]].into_dyn();
/// let opts = Options { seed: Seed::OneHot, ..Options::default() };
/// let a = net.attribute_with(&x, &Target::Class(0), &GradientTimesInput, opts)?;
/// // both hidden units are active: gradient (4, -1), times the input
/// assert_eq!(a.relevance, array![[8.0, -0.5]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradientTimesInput;

impl GradientTimesInput {
    fn times_input<F: Float>(step: &Step<'_, F>, g: ArrayD<F>) -> Result<ArrayD<F>> {
        times(g, &step.input)
    }
}

/// `g ⊙ x`, checked: both have the input's shape.
fn times<F: Float>(mut g: ArrayD<F>, x: &ndarray::ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
    if g.shape() != x.shape() {
        return Err(crate::Error::Shape {
            what: "gradient at a node input (must have the input's shape)".into(),
            expected: x.shape().to_vec(),
            got: g.shape().to_vec(),
        });
    }
    g *= x;
    Ok(g)
}

impl<F: Float> Rule<F> for GradientTimesInput {
    fn name(&self) -> String {
        "GradientTimesInput".into()
    }

    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        Self::times_input(step, layer.gradient(step, step.relevance.view())?)
    }

    fn activation(&self, layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        Self::times_input(step, layer.gradient(step, step.relevance.view())?)
    }

    fn linear(&self, map: &dyn LinearMap<F>, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        let parts = Gradient.linear(map, step)?;
        super::check_parts("linear map", &parts, step)?;
        parts
            .into_iter()
            .zip(&step.inputs)
            .map(|(p, x)| times(p, x))
            .collect()
    }

    fn select(&self, layer: &dyn Select<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        Self::times_input(step, layer.route(&step.input, &step.relevance)?)
    }

    fn normalization(&self, layer: &dyn Normalize<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        Self::times_input(step, layer.gradient(step, step.relevance.view())?)
    }

    fn matmul(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        let parts = Gradient.matmul(step)?;
        super::check_parts("matrix product", &parts, step)?;
        parts
            .into_iter()
            .zip(&step.inputs)
            .map(|(p, x)| times(p, x))
            .collect()
    }

    fn product(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        let parts = product_gradient(step, &step.relevance)?;
        super::check_parts("product", &parts, step)?;
        parts
            .into_iter()
            .zip(&step.inputs)
            .map(|(p, x)| times(p, x))
            .collect()
    }
}

impl<F: Float> RuleSet<F> for GradientTimesInput {
    fn resolve<'a>(&'a self, nodes: &[NodeInfo<'_>]) -> Vec<&'a dyn Rule<F>> {
        static GRADIENT: Gradient = Gradient;
        vec![&GRADIENT as &dyn Rule<F>; nodes.len()]
    }

    fn times_input(&self) -> bool {
        true
    }
}
