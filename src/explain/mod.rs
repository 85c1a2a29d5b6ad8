//! Explaining a prediction: one entry point, [`Network::explain`], for every [`Method`] —
//! LRP under a rule or a composite, DeepLIFT against a baseline, the gradient and gradient
//! × input — returning one result type, [`Attribution`]. All of them run the same backward
//! loop over the nodes (`backward.rs`); [`Network::attribute`] and [`Network::deeplift`]
//! are thin wrappers kept for the common cases.

mod backward;
mod baseline;
mod deeplift;
mod lrp;
mod method;
mod target;

pub use baseline::{Baseline, TracedBaseline};
pub use deeplift::{DeepLiftAttribution, DeepLiftOptions};
pub use method::{Method, MethodName, MethodNameInfo};
pub(crate) use target::target_rows;
pub use target::{sum_per_sample, Seed, Target};

use crate::error::Result;
use crate::float::Float;
use crate::network::Network;
use crate::rules::{DeepLift, Gradient, RuleSet};
use ndarray::{Array1, ArrayD};

/// Options of [`Network::explain_with`] and [`Network::attribute_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// How the starting relevance is made from a class target; by default the method's
    /// own convention ([`Seed::Method`]).
    pub seed: Seed,
    /// Keep what arrived at every value (the input and every node's output) in
    /// [`Attribution::layers`].
    pub keep_layers: bool,
}

impl Options {
    /// Options that keep the relevance at every value.
    pub fn keep_layers() -> Self {
        Options {
            keep_layers: true,
            ..Options::default()
        }
    }
}

/// The result of an explanation, whatever the method.
#[derive(Debug, Clone)]
pub struct Attribution<F: Float = f32> {
    /// Relevance at the input, with the input's shape `[N, ...]` (for DeepLIFT the
    /// contributions `multipliers ⊙ (x − x̄)`).
    pub relevance: ArrayD<F>,
    /// The network output `[N, ...]`.
    pub output: ArrayD<F>,
    /// Total starting relevance per sample `[N]` (for DeepLIFT the difference explained,
    /// `Σ seed ⊙ (f(x) − f(x̄))`, `f_c(x) − f_c(x̄)` with the one-hot seed).
    pub total: Array1<F>,
    /// Conservation gap per sample `[N]`: the total minus the sum of input relevance.
    /// Zero for conservative rules without biases (and for DeepLIFT's summation-to-delta);
    /// biases and stabilisers absorb the rest.
    pub delta: Array1<F>,
    /// When asked for ([`Options::keep_layers`]): what arrived at every value, numbered as
    /// in a [`Trace`](crate::Trace): `layers[0]` at the input (`== relevance`),
    /// `layers[k + 1]` at the output of node `k` (the sum of what its consumers sent back),
    /// the last the starting relevance. For a chain, `layers[k]` is the relevance at the
    /// input of layer `k`. Find a node by name with [`Network::node_index`]. For DeepLIFT
    /// these are contributions `m ⊙ (a − ā)`.
    pub layers: Option<Vec<ArrayD<F>>>,
    /// DeepLIFT: the multipliers at the input (captum's `multiply_by_inputs=False`
    /// result); `None` for other methods.
    pub multipliers: Option<ArrayD<F>>,
    /// DeepLIFT: the network output on the baseline `f(x̄)`; `None` for other methods.
    pub baseline_output: Option<ArrayD<F>>,
}

impl<F: Float> Network<F> {
    /// Explains `x` for `target` with `method`: LRP, DeepLIFT or a gradient, through one
    /// backward loop, returning one result type.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Baseline, DeepLift, Dense, LrpEpsilon, Method, Network, Relu, Target};
    /// # fn main() -> relevance::Result<()> {
    /// let net = Network::<f64>::new(&[2], vec![
    ///     Box::new(Dense::new(array![[1.0, -1.0], [1.0, 0.0]], None)?),
    ///     Box::new(Relu),
    ///     Box::new(Dense::new(array![[-1.0, 1.0]], None)?),
    /// ])?;
    /// let x = array![[3.0, 1.0]].into_dyn();
    /// for method in [
    ///     Method::lrp(LrpEpsilon::new(0.0)?),
    ///     Method::deeplift(DeepLift::reveal_cancel(), Baseline::Zero),
    ///     Method::GradientTimesInput,
    ///     "epsilon=0.25".parse::<relevance::MethodName>()?.method(None, Baseline::Zero)?,
    /// ] {
    ///     let a = net.explain(&x, &Target::Class(0), &method)?;
    ///     assert_eq!(a.relevance.shape(), &[1, 2]);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Shapes
    /// `x` `[N, input_shape...]`; [`Attribution::relevance`] has the same shape.
    ///
    /// # Errors
    /// As [`Network::forward`]; [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange)
    /// or [`Error::BatchMismatch`](crate::Error::BatchMismatch) for a wrong target;
    /// for DeepLIFT a baseline of the wrong shape or with NaN/∞ ([`Network::deeplift`]);
    /// [`Error::AtLayer`](crate::Error::AtLayer) for an error inside a rule, or wrapping
    /// [`Error::NonFiniteResult`](crate::Error::NonFiniteResult) for relevance that
    /// overflowed (naming the node nearest the output where it appeared);
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) for a rule parameter that
    /// the float type cannot hold.
    pub fn explain(&self, x: &ArrayD<F>, target: &Target<F>, method: &Method<F>) -> Result<Attribution<F>> {
        self.explain_with(x, target, method, Options::default())
    }

    /// [`Network::explain`] with options: the seed and whether to keep what arrived at
    /// every value.
    ///
    /// # Errors
    /// As [`Network::explain`].
    pub fn explain_with(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        method: &Method<F>,
        options: Options,
    ) -> Result<Attribution<F>> {
        let or = |default: Seed| match options.seed {
            Seed::Method => default,
            s => s,
        };
        let keep = options.keep_layers;
        match method {
            Method::Lrp(rules) => self.lrp(x, target, &**rules, or(Seed::Logit), keep),
            Method::DeepLift { rule, baseline } => {
                self.deeplift_method(x, target, rule, baseline, or(Seed::OneHot), keep)
            }
            Method::Gradient => self.lrp(x, target, &Gradient, or(Seed::OneHot), keep),
            Method::GradientTimesInput => {
                self.lrp(x, target, &crate::GradientTimesInput, or(Seed::OneHot), keep)
            }
        }
    }

    /// Explains `x` for `target` under `rules` (one rule or a [`Composite`](crate::Composite)),
    /// starting from the target logit: [`Network::explain`] with [`Method::Lrp`], without
    /// boxing the rule set. DeepLIFT is a [`Method`], not a rule set:
    ///
    /// ```compile_fail
    /// # use relevance::{DeepLift, Dense, Network, Target};
    /// # let net = Network::<f64>::new(&[2], vec![Box::new(Dense::new(ndarray::array![[1.0, 1.0]], None).unwrap())]).unwrap();
    /// net.attribute(&ndarray::array![[1.0, 2.0]].into_dyn(), &Target::Class(0), &DeepLift::rescale());
    /// ```
    ///
    /// # Shapes
    /// `x` `[N, input_shape...]`; `Attribution::relevance` has the same shape.
    ///
    /// # Errors
    /// As [`Network::explain`].
    pub fn attribute<R>(&self, x: &ArrayD<F>, target: &Target<F>, rules: &R) -> Result<Attribution<F>>
    where
        R: RuleSet<F> + ?Sized,
    {
        self.attribute_with(x, target, rules, Options::default())
    }

    /// [`Network::attribute`] with options: the seed and whether to keep every node's
    /// relevance.
    ///
    /// # Errors
    /// As [`Network::explain`].
    pub fn attribute_with<R>(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rules: &R,
        options: Options,
    ) -> Result<Attribution<F>>
    where
        R: RuleSet<F> + ?Sized,
    {
        let seed = match options.seed {
            Seed::Method => Seed::Logit,
            s => s,
        };
        self.lrp(x, target, rules, seed, options.keep_layers)
    }

    /// Explains `f(x) − f(x̄)` for `target` with DeepLIFT (Shrikumar et al. 2017):
    /// [`Network::explain`] with [`Method::DeepLift`], in DeepLIFT's names.
    ///
    /// The network traces `x` and the baseline `x̄`, then carries multipliers from the
    /// output down: the seed is one-hot at the target (captum's), so the attribution of a
    /// sample sums to `f_c(x) − f_c(x̄)`. Affine layers use the Linear rule, activations
    /// Rescale or RevealCancel, max-pools cross-max or the gradient, as `rule` says.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Baseline, DeepLift, Dense, Network, Relu, Target};
    /// # fn main() -> relevance::Result<()> {
    /// // The paper's "min" network o = i1 − relu(i1 − i2), at (3, 1) against zero.
    /// let net = Network::<f64>::new(&[2], vec![
    ///     Box::new(Dense::new(array![[1.0, -1.0], [1.0, 0.0]], None)?),
    ///     Box::new(Relu),
    ///     Box::new(Dense::new(array![[-1.0, 1.0]], None)?),
    /// ])?;
    /// let x = array![[3.0, 1.0]].into_dyn();
    /// let r = net.deeplift(&x, &Target::Class(0), &DeepLift::rescale(), &Baseline::Zero)?;
    /// assert_eq!(r.attribution, array![[0.0, 1.0]].into_dyn());
    /// let rc = net.deeplift(&x, &Target::Class(0), &DeepLift::reveal_cancel(), &Baseline::Zero)?;
    /// assert!((&rc.attribution - &array![[0.5, 0.5]].into_dyn()).iter().all(|d| d.abs() < 1e-12));
    /// assert!(rc.delta[0].abs() < 1e-12); // f(x) − f(0) = 1 = 0.5 + 0.5
    /// # Ok(()) }
    /// ```
    ///
    /// # Shapes
    /// `x` `[N, input_shape...]`; `attribution` and `multipliers` have the same shape.
    ///
    /// # Errors
    /// As [`Network::forward`] for `x`; for the baseline
    /// [`Error::Shape`](crate::Error::Shape) or [`Error::Rank`](crate::Error::Rank) if it
    /// does not have the input's per-sample shape,
    /// [`Error::BatchMismatch`](crate::Error::BatchMismatch) for per-sample baselines of
    /// another batch size, [`Error::NonFinite`](crate::Error::NonFinite) for NaN or ∞ in it;
    /// [`Error::TargetOutOfRange`](crate::Error::TargetOutOfRange) or
    /// [`Error::BatchMismatch`](crate::Error::BatchMismatch) for a wrong target (a
    /// [`Target::Relevance`] must have the input's batch);
    /// [`Error::NonFiniteResult`](crate::Error::NonFiniteResult) inside
    /// [`Error::AtLayer`](crate::Error::AtLayer) if a value overflowed (naming the node);
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) for a threshold the float
    /// type cannot hold.
    pub fn deeplift(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rule: &DeepLift,
        baseline: &Baseline<F>,
    ) -> Result<DeepLiftAttribution<F>> {
        self.deeplift_with(x, target, rule, baseline, DeepLiftOptions::default())
    }

    /// [`Network::deeplift`] with options (per-layer contributions).
    ///
    /// # Errors
    /// As [`Network::deeplift`].
    pub fn deeplift_with(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rule: &DeepLift,
        baseline: &Baseline<F>,
        options: DeepLiftOptions,
    ) -> Result<DeepLiftAttribution<F>> {
        let a = self.deeplift_method(x, target, rule, baseline, Seed::OneHot, options.keep_layers)?;
        Ok(a.into())
    }

    /// The gradient of the target's starting relevance (`Σ R_out ⊙ f(x)` with the seed
    /// taken as constant; one-hot by default, so `∇f_c(x)`) with respect to the input:
    /// [`Network::explain`] with [`Method::Gradient`].
    ///
    /// # Errors
    /// As [`Network::explain`].
    pub fn gradient(&self, x: &ArrayD<F>, target: &Target<F>) -> Result<ArrayD<F>> {
        Ok(self.explain(x, target, &Method::Gradient)?.relevance)
    }
}
