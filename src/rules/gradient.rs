//! The gradient and gradient × input as rule objects, so that they run through the same
//! [`Network::attribute`](crate::Network::attribute) as the LRP rules and can be compared
//! with them. Both reuse the layers' transpose passes ([`Layer::gradient`]).
//!
//! Every rule is linear in the starting relevance, so the seed scales the result: with
//! [`Seed::OneHot`](crate::Seed::OneHot) these are the plain gradient `∇f_c(x)` (captum's
//! `Saliency(abs=False)`) and `x ⊙ ∇f_c(x)` (captum's `InputXGradient`); with the default
//! [`Seed::Logit`](crate::Seed::Logit) both are multiplied by `f_c(x)`.

use super::{Rule, RuleSet};
use crate::error::Result;
use crate::float::Float;
use crate::layers::{Affine, Category, Layer, MaxPool2d, Step};
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

    fn max_pool(&self, layer: &MaxPool2d, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        Layer::<F>::gradient(layer, step, step.relevance.view())
    }
}

impl<F: Float> RuleSet<F> for Gradient {
    fn resolve<'a>(&'a self, layers: &[&dyn Layer<F>]) -> Vec<&'a dyn Rule<F>> {
        vec![self as &dyn Rule<F>; layers.len()]
    }
}

/// Gradient × input, `x ⊙ ∇f_c(x)` (Shrikumar et al. 2016; captum's `InputXGradient`).
///
/// As a [`RuleSet`] (what [`Network::attribute`](crate::Network::attribute) takes) it puts
/// itself on the lowest layer that is not a reshape (so a leading
/// [`Flatten`](crate::Flatten) is fine) and [`Gradient`] on every other layer. As a single
/// [`Rule`] inside a [`Composite`](crate::Composite) it means "the gradient at this
/// layer's input, times that input" — put it on the first layer.
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
    fn times_input<F: Float>(step: &Step<'_, F>, g: ArrayD<F>) -> ArrayD<F> {
        g * &step.input
    }
}

impl<F: Float> Rule<F> for GradientTimesInput {
    fn name(&self) -> String {
        "GradientTimesInput".into()
    }

    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        Ok(Self::times_input(
            step,
            layer.gradient(step, step.relevance.view())?,
        ))
    }

    fn activation(&self, layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        Ok(Self::times_input(
            step,
            layer.gradient(step, step.relevance.view())?,
        ))
    }

    fn max_pool(&self, layer: &MaxPool2d, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        let g = Layer::<F>::gradient(layer, step, step.relevance.view())?;
        Ok(Self::times_input(step, g))
    }
}

impl<F: Float> RuleSet<F> for GradientTimesInput {
    fn resolve<'a>(&'a self, layers: &[&dyn Layer<F>]) -> Vec<&'a dyn Rule<F>> {
        static GRADIENT: Gradient = Gradient;
        let first = layers.iter().position(|l| l.category() != Category::Reshape);
        (0..layers.len())
            .map(|i| {
                if Some(i) == first {
                    self as &dyn Rule<F>
                } else {
                    &GRADIENT as &dyn Rule<F>
                }
            })
            .collect()
    }
}
