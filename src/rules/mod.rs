//! Rules: how a layer redistributes relevance from its output to its input.
//!
//! A [`Rule`] is asked by each layer for its relevance pass (double dispatch): affine
//! layers call [`Rule::affine`], activations [`Rule::activation`], max-pool
//! [`Rule::max_pool`]. The LRP rules are all data for one shared engine (`rules/engine.rs`), after
//! zennit's `BasicHook`: modify inputs and parameters, stabilised division, transposed
//! pass, multiply by the (modified) input.

mod composite;
pub(crate) mod deeplift;
pub(crate) mod engine;
mod gradient;
mod lrp;

pub use composite::{Composite, RuleSet, Selector};
pub use deeplift::{DeepLift, MaxPoolRule, NonlinearRule, DEEPLIFT_THRESHOLD};
pub use gradient::{Gradient, GradientTimesInput};
pub use lrp::{Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Affine, Layer, MaxPool2d, Step};
use ndarray::ArrayD;
use std::fmt::Debug;

/// A relevance rule.
///
/// Only [`Rule::affine`] is required. The defaults of the other methods are zennit's: an
/// activation passes relevance through unchanged (`Pass`), a max-pool routes it to the
/// first maximum of each window (the gradient).
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

    /// Relevance through an elementwise activation. Default: passed through unchanged.
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
    /// implementation does. The network then skips the call (and its copy) at layers whose
    /// relevance pass is the activation rule ([`Layer::relevance_is_activation`]). Keep the
    /// default, `false`, in a rule that overrides `activation`; the LRP rules return `true`.
    fn activation_is_identity(&self) -> bool {
        false
    }

    /// Relevance through a max-pool. Default: each output's relevance goes to the first
    /// maximum of its window (the gradient, as zennit and captum's LRP).
    ///
    /// # Shapes
    /// `step.relevance` `[N, C, H', W']`, the result `[N, C, H, W]`.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    fn max_pool(&self, layer: &MaxPool2d, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        layer.route_to_max(&step.input, &step.relevance)
    }

    /// Whether this rule needs the trace of a baseline (reference) input, as DeepLIFT does.
    fn needs_baseline(&self) -> bool {
        false
    }
}
