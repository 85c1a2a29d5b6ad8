//! DeepLIFT (Shrikumar, Greenside & Kundaje 2017, "Learning Important Features Through
//! Propagating Activation Differences"): the Linear rule at dense and
//! convolutional layers and at parameter-free linear maps (sums, average pools, batch
//! norm), Rescale or RevealCancel at elementwise nonlinearities, a max-pool rule, and the
//! Shapley split at products of two computed tensors.
//!
//! What travels backwards is the **multiplier** `m = ∂ᴰ f_c / ∂ᴰ a` (the paper's "modified
//! gradient", captum's `gradients`), not a contribution: the contribution of a unit is
//! `m ⊙ (a − ā)`, with `ā` the unit's value on the baseline (reference) pass. Multipliers
//! must travel because a unit with `a = ā` still passes its multiplier to the units below
//! through the gradient fallback, exactly as captum does.
//!
//! [`DeepLift`] is the method's configuration; [`Network::explain`](crate::Network::explain)
//! with [`Method::DeepLift`](crate::Method::DeepLift) (or [`Network::deeplift`](crate::Network::deeplift))
//! runs it through the network's one backward loop, which calls the per-node steps here
//! (the crate-private rule `DeepLiftRule`), RevealCancel as a paired pass of an activation
//! and the affine node below it.

mod steps;
#[cfg(test)]
mod tests;

use super::{PairRelevance, PairStep, Rule};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Affine, Category, Layer, LinearMap, MergeStep, Normalize, Select, Step};
use ndarray::{ArrayD, Zip};
use steps::{check_same, cross_max, rescale, reveal_cancel, shapley_product, split_forward, split_transpose};

/// captum's default threshold (`DeepLift(eps=1e-10)`, `captum/attr/_core/deep_lift.py`):
/// where `|Δx|` is below it, the multiplier is the ordinary gradient at the input.
pub const DEEPLIFT_THRESHOLD: f64 = 1e-10;

/// The rule at an elementwise nonlinearity (ReLU, sigmoid, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NonlinearRule {
    /// Rescale everywhere: `m_in = m_out · Δy / Δx`.
    Rescale,
    /// RevealCancel at every activation directly above a dense or convolutional layer,
    /// Rescale elsewhere.
    RevealCancel,
    /// kundajelab/deeplift's `DeepLIFT_GenomicsDefault` (`layers/activations.py`):
    /// RevealCancel at activations directly above a dense layer, Rescale elsewhere (above
    /// convolutions in particular).
    RevealCancelAfterDense,
}

/// The rule at a max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MaxPoolRule {
    /// captum's "cross-max" rule, with contributions **added** where windows overlap:
    /// with `y`, `ȳ` the pooled values and `ŷ = max(y, ȳ)`, each output sends
    /// `m·(ŷ − ȳ)` to the argmax of its window in `x` and `m·(y − ŷ)` to the argmax in
    /// `x̄`; the input multiplier is that sum divided by `Δx` (the gradient where
    /// `|Δx|` is below the threshold). Summation-to-delta holds exactly, even when the
    /// argmax of `x` and of `x̄` differ.
    CrossMax,
    /// The multiplier goes to the argmax of each window in `x` (the plain gradient), as
    /// kundajelab/deeplift's `MaxPoolDeepLiftMode.gradient` and as captum 0.9.0 does in
    /// practice when a `ReLU` module directly precedes the pool (captum issue #1104).
    /// Summation-to-delta can fail where the argmax of `x` and `x̄` differ.
    Gradient,
}

/// The rule at a softmax inside the network (or kept at its output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SoftmaxRule {
    /// captum's `softmax` rule, per sample: Rescale as if the softmax were elementwise,
    /// then the mean multiplier subtracted (Shrikumar et al. 2017, §3.6). It matches captum
    /// but does not conserve: `Σ m·Δx` differs from `Σ m_out·Δy` by the mean times `Σ Δx`.
    /// `deeplift-captum` uses it.
    Captum,
    /// DeepLIFT through the softmax's own graph `s = e / Σ e`, `e = exp(x − c)` (with `c`
    /// the larger maximum of the lane over the input and the baseline, the same for both):
    /// Rescale at `exp` and at the reciprocal of the sum, the Linear rule at the sum, the
    /// two-player Shapley split at the product. Every step is exact, so summation-to-delta
    /// holds through the softmax — what attention layers need. The default.
    #[default]
    Exact,
}

/// DeepLIFT's configuration, a method rather than a rule (it explains a difference to a
/// baseline, so it is given to [`Network::explain`](crate::Network::explain) as
/// [`Method::DeepLift`](crate::Method::DeepLift) or to
/// [`Network::deeplift`](crate::Network::deeplift), never to a composite): the Linear rule
/// at affine layers (the bias cancels in
/// `Δz = W Δx`) and at sums, average pools and concatenations, Rescale or RevealCancel at
/// elementwise layers (activations of any kind, and batch norm, where Rescale is exactly
/// the Linear rule), cross-max or gradient routing at max-pools, and at a product of two
/// computed tensors the two-player Shapley split
/// `Δ(ab) = ½(b + b̄)·Δa + ½(a + ā)·Δb`, which keeps summation-to-delta exact
/// (captum has no rule there and uses the gradient, which does not).
///
/// Conventions (captum's, so that results match `captum.attr.DeepLift` in float64):
/// where `|Δx|` is below the threshold (default [`DEEPLIFT_THRESHOLD`] = 1e-10), Rescale
/// and the cross-max rule use the ordinary gradient **at the actual input** `x`.
/// (kundajelab/deeplift uses the gradient at the reference and 1e-7.) RevealCancel uses
/// the same threshold and fallback for `Δx⁺` and `Δx⁻` separately, and no pseudocount, so
/// summation-to-delta stays exact.
///
/// ```
/// use relevance::rules::{MaxPoolRule, NonlinearRule};
/// use relevance::DeepLift;
/// let d = DeepLift::default();
/// assert_eq!(d.nonlinear(), NonlinearRule::RevealCancelAfterDense);
/// assert_eq!(d.max_pool(), MaxPoolRule::CrossMax);
/// assert_eq!(DeepLift::rescale().threshold(), 1e-10);
/// assert!(DeepLift::rescale().with_threshold(-1.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeepLift {
    nonlinear: NonlinearRule,
    max_pool: MaxPoolRule,
    softmax: SoftmaxRule,
    threshold: f64,
}

impl Default for DeepLift {
    /// [`DeepLift::genomics_default`].
    fn default() -> Self {
        Self::genomics_default()
    }
}

impl DeepLift {
    fn with_nonlinear(nonlinear: NonlinearRule) -> Self {
        DeepLift {
            nonlinear,
            max_pool: MaxPoolRule::CrossMax,
            softmax: SoftmaxRule::Exact,
            threshold: DEEPLIFT_THRESHOLD,
        }
    }

    /// Rescale at every activation, cross-max at max-pools: captum's `DeepLift`, with the
    /// max-pool rule that captum intends.
    ///
    /// **captum users**: on networks where a `ReLU` module feeds a `MaxPool2d` (most CNNs,
    /// the bundled digits model among them) captum 0.9.0 routes the pool by the gradient
    /// instead (its issue #1104), so its numbers differ from these (on 50 test digits of the
    /// digits model with a zero baseline, by 11 % of the attribution's L2 norm) and do not
    /// sum to `f(x) − f(x̄)`. For captum's exact numbers use
    /// `DeepLift::rescale().with_max_pool(MaxPoolRule::Gradient)` (plus
    /// `.with_softmax(SoftmaxRule::Captum)` where a softmax is kept; on those digits within
    /// 2e-16 of captum 0.9.0 in float64; the fixtures of `tests/suite/deeplift_fixtures.rs`
    /// check it to ~1e-15).
    /// Captum's convergence delta is `Σ attribution − (f(x) − f(x̄))`, the negative of
    /// [`DeepLiftAttribution::delta`](crate::DeepLiftAttribution::delta).
    ///
    /// ```
    /// use relevance::rules::MaxPoolRule;
    /// use relevance::DeepLift;
    /// let like_captum = DeepLift::rescale().with_max_pool(MaxPoolRule::Gradient);
    /// assert_eq!(like_captum.max_pool(), MaxPoolRule::Gradient);
    /// ```
    pub fn rescale() -> Self {
        Self::with_nonlinear(NonlinearRule::Rescale)
    }

    /// RevealCancel at every activation above an affine layer, cross-max at max-pools.
    pub fn reveal_cancel() -> Self {
        Self::with_nonlinear(NonlinearRule::RevealCancel)
    }

    /// The reference implementation's default: RevealCancel above dense layers, Rescale
    /// above convolutions; cross-max at max-pools.
    pub fn genomics_default() -> Self {
        Self::with_nonlinear(NonlinearRule::RevealCancelAfterDense)
    }

    /// The same rule with another max-pool rule.
    pub fn with_max_pool(mut self, max_pool: MaxPoolRule) -> Self {
        self.max_pool = max_pool;
        self
    }

    /// The same rule with another softmax rule: the default [`SoftmaxRule::Exact`] keeps
    /// summation-to-delta exact through attention, [`SoftmaxRule::Captum`] gives captum's
    /// numbers.
    ///
    /// ```
    /// use relevance::rules::SoftmaxRule;
    /// use relevance::DeepLift;
    /// assert_eq!(DeepLift::rescale().softmax(), SoftmaxRule::Exact);
    /// let like_captum = DeepLift::rescale().with_softmax(SoftmaxRule::Captum);
    /// assert_eq!(like_captum.softmax(), SoftmaxRule::Captum);
    /// ```
    pub fn with_softmax(mut self, softmax: SoftmaxRule) -> Self {
        self.softmax = softmax;
        self
    }

    /// The rule at softmaxes.
    pub fn softmax(&self) -> SoftmaxRule {
        self.softmax
    }

    /// The same rule with another threshold for the gradient fallback.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the threshold is negative or not finite.
    pub fn with_threshold(mut self, threshold: f64) -> Result<Self> {
        if !threshold.is_finite() || threshold < 0.0 {
            return Err(Error::InvalidParameter {
                rule: "DeepLift",
                reason: format!("threshold must be finite and non-negative, got {threshold}"),
            });
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// The rule at activations.
    pub fn nonlinear(&self) -> NonlinearRule {
        self.nonlinear
    }

    /// The rule at max-pools.
    pub fn max_pool(&self) -> MaxPoolRule {
        self.max_pool
    }

    /// The threshold below which `|Δx|` falls back to the gradient.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
}

/// DeepLIFT's pass at one node, as the backward loop calls it: the [`Rule`] behind
/// [`Method::DeepLift`](crate::Method::DeepLift). Not public: DeepLIFT is a method (it needs
/// a baseline's forward pass), not a rule to put in a composite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeepLiftRule(pub DeepLift);

impl<F: Float> Rule<F> for DeepLiftRule {
    fn check_parameters(&self) -> Result<()> {
        super::param_fits::<F>("DeepLift", "threshold", self.0.threshold)
    }

    fn name(&self) -> String {
        format!(
            "DeepLift({:?}, max-pool {:?}, threshold {:e})",
            self.0.nonlinear, self.0.max_pool, self.0.threshold
        )
    }

    /// The Linear rule: `m_in = Wᵀ m_out` (the bias cancels in `Δz = W Δx`).
    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        check_same(
            "DeepLIFT multiplier at the layer output",
            step.output.shape(),
            step.relevance.shape(),
        )?;
        layer.apply_transpose(
            step.relevance.view(),
            layer.weight(),
            crate::tensor::checks::per_sample(step.input.shape()),
        )
    }

    /// Rescale. (RevealCancel needs `Δx⁺` and `Δx⁻` from the affine node below, so the
    /// network pairs the two where this rule asks for it: [`Rule::affine_activation`].)
    fn activation(&self, layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        rescale(layer, step, F::lit(self.0.threshold))
    }

    /// RevealCancel where the rule selects it: above every affine node
    /// ([`NonlinearRule::RevealCancel`]) or above dense nodes only
    /// ([`NonlinearRule::RevealCancelAfterDense`]).
    fn pairs_with_affine(&self, below: Category) -> bool {
        match self.0.nonlinear {
            NonlinearRule::Rescale => false,
            NonlinearRule::RevealCancel => below.is_affine(),
            NonlinearRule::RevealCancelAfterDense => below == Category::Dense,
        }
    }

    /// RevealCancel: `Δz⁺`/`Δz⁻` forward from the affine node's input differences, the
    /// multipliers `m⁺`/`m⁻` at the activation, and back through the affine node by the
    /// sign of each input's difference (kundajelab/deeplift `layers/core.py`,
    /// `activations.py`). The value between the two shows `m⁺Δz⁺ + m⁻Δz⁻`.
    fn affine_activation(
        &self,
        affine: &dyn Affine<F>,
        activation: &dyn Layer<F>,
        step: &PairStep<'_, F>,
    ) -> Result<PairRelevance<F>> {
        let below = &step.affine;
        let Some(x0) = below.baseline_input.as_ref() else {
            return Err(steps::no_baseline());
        };
        let dx = &below.input - x0;
        let (dpos, dneg) = split_forward(affine, &dx)?;
        let (mp, mn) = reveal_cancel(
            activation,
            &step.activation,
            &dpos,
            &dneg,
            F::lit(self.0.threshold),
        )?;
        let input = split_transpose(affine, &dx, &mp, &mn)?;
        Ok(PairRelevance {
            input,
            middle: &mp * &dpos + &mn * &dneg,
        })
    }

    /// The Linear rule: the transposed map.
    fn linear(&self, map: &dyn LinearMap<F>, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        let shapes: Vec<&[usize]> = step
            .inputs
            .iter()
            .map(|x| crate::tensor::checks::per_sample(x.shape()))
            .collect();
        map.transpose(step.relevance.view(), &shapes)
    }

    fn select(&self, layer: &dyn Select<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        match self.0.max_pool {
            MaxPoolRule::CrossMax => cross_max(layer, step, F::lit(self.0.threshold)),
            MaxPoolRule::Gradient => layer.route(&step.input, &step.relevance),
        }
    }

    /// By default DeepLIFT through the softmax's own graph, exact ([`SoftmaxRule::Exact`]).
    /// With [`SoftmaxRule::Captum`],
    /// captum's `softmax` rule (`deep_lift.py`, `softmax`): Rescale elementwise
    /// (`m = m_out · Δy / Δx`, the gradient where `|Δx|` is below the threshold, at the
    /// input for the input and at the baseline for the baseline), then the mean of those
    /// multipliers over the input and the baseline subtracted, which makes them invariant to
    /// a shift of all logits (Shrikumar et al. 2017, §3.6). captum takes that mean over the
    /// whole batch of inputs and baselines at once, so that a sample's multipliers depend on
    /// the other samples of its batch; here it is taken per sample, which equals captum
    /// called with one sample at a time (and keeps a sample's result independent of its
    /// batch). The softmax does not conserve: Σ m·Δx differs from Σ m_out·Δy by the mean
    /// times Σ Δx.
    fn softmax(&self, layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        match self.0.softmax {
            SoftmaxRule::Captum => steps::softmax(layer, step, F::lit(self.0.threshold)),
            SoftmaxRule::Exact => steps::softmax_exact(layer, step, F::lit(self.0.threshold)),
        }
    }

    /// The two-player Shapley split (see [`DeepLift`]).
    fn product(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        shapley_product(step)
    }

    /// The token's contribution `Σ_d m ⊙ (e − ē)` over the id's difference (0 where the
    /// ids agree, as the embeddings do).
    fn embedding(&self, layer: &crate::Embedding<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        let (bx, by) = steps::baseline(step)?;
        layer.rows(bx)?;
        let mut c = step.relevance.to_owned();
        Zip::from(&mut c)
            .and(&step.output)
            .and(by)
            .for_each(|c, &e, &e0| *c *= e - e0);
        let mut m = layer.per_token(
            "DeepLIFT multipliers at an Embedding output",
            &c.view(),
            step.input.shape(),
        )?;
        Zip::from(&mut m).and(&step.input).and(bx).for_each(|m, &x, &x0| {
            *m = if x == x0 { F::zero() } else { *m / (x - x0) };
        });
        Ok(m)
    }

    /// The layer's own graph, exactly ([`Normalize::difference_multipliers`]).
    fn normalization(&self, layer: &dyn Normalize<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        let (bx, _) = steps::baseline(step)?;
        layer.difference_multipliers(&step.input, bx, &step.relevance, F::lit(self.0.threshold))
    }

    /// The Shapley split of a bilinear map, exact for any difference:
    /// `Δ(ab) = Δa·(b + b̄)/2 + (a + ā)/2·Δb`, so `m_a = m·((b + b̄)/2)ᵀ` and
    /// `m_b = ((a + ā)/2)ᵀ·m`.
    fn matmul(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        steps::shapley_matmul(step)
    }
}
