//! The LRP rules. Each is a small type with validated parameters that hands a recipe to
//! the shared [`engine`](super::engine). Formulas are given for a dense layer
//! `z_j = Σᵢ w_ji a_i + b_j` with upper relevance `R_j`; a convolution is the same with
//! the sums running over receptive fields. `stab(z) = z + ε·sign₀(z)`, sign₀(0) = +1.
//!
//! References: Bach et al. 2015 (LRP-0, αβ), Montavon et al. 2019 "Layer-wise Relevance
//! Propagation: an overview" (ε, γ, z^B), Montavon et al. 2017 (z⁺, w²), Lapuschkin et al.
//! 2019 (flat), Andéol et al. 2021 (generalised γ); numerically, zennit's `rules.py`.

use super::engine::{propagate, Group, Input, Mask, Param, Recipe, Term};
use super::Rule;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Affine, LinearMap, MergeStep, Step};
use crate::tensor::checks::check_finite;
use ndarray::ArrayD;

/// zennit's default stabiliser ε for every rule.
const DEFAULT_STABILIZER: f64 = 1e-6;

fn check_param(rule: &'static str, name: &str, v: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::InvalidParameter {
            rule,
            reason: format!("{name} must be finite and non-negative, got {v}"),
        });
    }
    Ok(())
}

/// One group over all outputs.
fn single(terms: Vec<Term>) -> Vec<Group> {
    vec![Group {
        factor: 1.0,
        mask: Mask::All,
        terms,
    }]
}

/// z⁺-style terms: x⁺ with `pos` weights (and `pos` bias), x⁻ with `neg` weights.
fn split(pos: Param, neg: Param) -> Vec<Term> {
    vec![
        Term::new(Input::Positive, pos, Some(pos)),
        Term::new(Input::Negative, neg, None),
    ]
}

macro_rules! simple_rule {
    ($(#[$doc:meta])* $name:ident, $label:literal, $groups:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name {
            stabilizer: f64,
        }

        impl $name {
            /// The rule with stabiliser ε = 1e-6 (zennit's default).
            pub fn new() -> Self {
                $name { stabilizer: DEFAULT_STABILIZER }
            }

            /// The rule with another stabiliser ε.
            ///
            /// # Errors
            /// [`Error::InvalidParameter`] if ε is negative or not finite.
            pub fn with_stabilizer(stabilizer: f64) -> Result<Self> {
                check_param($label, "stabilizer", stabilizer)?;
                Ok($name { stabilizer })
            }

            /// The stabiliser ε.
            pub fn stabilizer(&self) -> f64 {
                self.stabilizer
            }

            /// The rule as data for the engine.
            pub(crate) fn recipe<'a, F: Float>(&self) -> Recipe<'a, F> {
                Recipe { groups: $groups, epsilon: self.stabilizer, bounds: None }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<F: Float> Rule<F> for $name {
            fn name(&self) -> String {
                format!("{}(stabilizer={:e})", $label, self.stabilizer)
            }

            fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
                propagate(layer, step, &self.recipe())
            }

            fn activation_is_identity(&self) -> bool {
                true
            }
        }
    };
}

/// LRP-0 (Bach et al. 2015): `R_i = Σ_j a_i w_ji R_j / z_j`, full bias in `z`.
///
/// Where `z_j` is exactly zero the relevance of output `j` is dropped (taken as 0) instead
/// of producing NaN, as zennit's `Epsilon(0)` would. At sums and average pools it applies
/// `Norm` without a stabiliser (the other LRP rules use zennit's 1e-6 there), so that on a
/// ReLU network, residual or not, with the default starting relevance (the target logit),
/// LRP-0 equals gradient × input.
///
/// ```
/// use ndarray::array;
/// use relevance::{Dense, Lrp0, Network, Target};
/// # fn main() -> relevance::Result<()> {
/// let net = Network::<f64>::new(&[2], vec![Box::new(Dense::new(array![[1.0, 3.0]], None)?)])?;
/// let a = net.attribute(&array![[2.0, 1.0]].into_dyn(), &Target::Class(0), &Lrp0)?;
/// assert_eq!(a.relevance, array![[2.0, 3.0]].into_dyn()); // a_i w_i: the output 5 split
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lrp0;

impl<F: Float> Rule<F> for Lrp0 {
    fn activation_is_identity(&self) -> bool {
        true
    }

    fn linear(&self, map: &dyn LinearMap<F>, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        super::norm(map, step, 0.0)
    }

    /// AttnLRP's normalisation rule without a stabiliser.
    fn normalization(
        &self,
        layer: &dyn crate::layers::Normalize<F>,
        step: &Step<'_, F>,
    ) -> Result<ArrayD<F>> {
        super::normalization_epsilon(layer, step, 0.0)
    }

    /// AttnLRP's matrix-product rule without a stabiliser.
    fn matmul(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        super::matmul_uniform(step, 0.0)
    }

    fn name(&self) -> String {
        "Lrp0".into()
    }

    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        propagate(layer, step, &self.recipe())
    }
}

impl Lrp0 {
    /// The rule as data for the engine: the layer itself, no stabiliser.
    pub(crate) fn recipe<'a, F: Float>(&self) -> Recipe<'a, F> {
        Recipe {
            groups: single(vec![Term::new(Input::All, Param::Keep, Some(Param::Keep))]),
            epsilon: 0.0,
            bounds: None,
        }
    }
}

/// LRP-ε (Montavon et al. 2019, eq. 5): `R_i = Σ_j a_i w_ji R_j / (z_j + ε·sign₀(z_j))`,
/// full bias in `z`, as zennit's `Epsilon`. Default ε = 1e-6 (zennit's; captum uses 1e-9).
///
/// ```
/// use relevance::LrpEpsilon;
/// assert_eq!(LrpEpsilon::default().epsilon(), 1e-6);
/// assert!(LrpEpsilon::new(-1.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrpEpsilon {
    epsilon: f64,
}

impl LrpEpsilon {
    /// LRP-ε with the given ε ≥ 0 (ε = 0 is LRP-0).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if ε is negative or not finite.
    pub fn new(epsilon: f64) -> Result<Self> {
        check_param("LrpEpsilon", "epsilon", epsilon)?;
        Ok(LrpEpsilon { epsilon })
    }

    /// The ε.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }
}

impl Default for LrpEpsilon {
    fn default() -> Self {
        LrpEpsilon {
            epsilon: DEFAULT_STABILIZER,
        }
    }
}

impl<F: Float> Rule<F> for LrpEpsilon {
    fn check_parameters(&self) -> Result<()> {
        super::param_fits::<F>("LrpEpsilon", "epsilon", self.epsilon)
    }

    fn activation_is_identity(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        format!("LrpEpsilon({:e})", self.epsilon)
    }

    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        propagate(layer, step, &self.recipe())
    }
}

impl LrpEpsilon {
    /// The rule as data for the engine.
    pub(crate) fn recipe<'a, F: Float>(&self) -> Recipe<'a, F> {
        Recipe {
            groups: single(vec![Term::new(Input::All, Param::Keep, Some(Param::Keep))]),
            epsilon: self.epsilon,
            bounds: None,
        }
    }
}

/// LRP-γ in zennit's generalised form (Andéol et al. 2021; zennit `rules.Gamma`).
///
/// With `ρ↑(w) = w + γw⁺`, `ρ↓(w) = w + γw⁻` (weights and bias alike), outputs are split
/// by the sign of the original `z_j`:
/// - `z_j > 0`: `d_j = Σ a⁺ ρ↑(w) + Σ a⁻ ρ↓(w) + ρ↑(b_j)`, and input `i` receives
///   `a⁺_i ρ↑(w_ji) R_j / stab(d_j) + a⁻_i ρ↓(w_ji) R_j / stab(d_j)`;
/// - `z_j < 0`: the same with ρ↑ and ρ↓ exchanged (bias `ρ↓(b_j)`);
/// - `z_j = 0`: the output's relevance is dropped.
///
/// For non-negative inputs and `z_j > 0` this is Montavon's `R_i = Σ_j a_i ρ(w_ji) R_j /
/// Σ_i a_i ρ(w_ji)`. γ = 0 is LRP-ε with the stabiliser ε. Default γ = 0.25, ε = 1e-6.
///
/// ```
/// use relevance::LrpGamma;
/// assert_eq!(LrpGamma::default().gamma(), 0.25);
/// assert!(LrpGamma::new(-0.1).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrpGamma {
    gamma: f64,
    stabilizer: f64,
}

impl LrpGamma {
    /// LRP-γ with the given γ ≥ 0 and stabiliser 1e-6.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if γ is negative or not finite.
    pub fn new(gamma: f64) -> Result<Self> {
        Self::with_stabilizer(gamma, DEFAULT_STABILIZER)
    }

    /// LRP-γ with the given γ ≥ 0 and stabiliser ε ≥ 0.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if γ or ε is negative or not finite.
    pub fn with_stabilizer(gamma: f64, stabilizer: f64) -> Result<Self> {
        check_param("LrpGamma", "gamma", gamma)?;
        check_param("LrpGamma", "stabilizer", stabilizer)?;
        Ok(LrpGamma { gamma, stabilizer })
    }

    /// The γ.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }
}

impl Default for LrpGamma {
    fn default() -> Self {
        LrpGamma {
            gamma: 0.25,
            stabilizer: DEFAULT_STABILIZER,
        }
    }
}

impl<F: Float> Rule<F> for LrpGamma {
    fn check_parameters(&self) -> Result<()> {
        super::param_fits::<F>("LrpGamma", "gamma", self.gamma)?;
        super::param_fits::<F>("LrpGamma", "stabilizer", self.stabilizer)
    }

    fn activation_is_identity(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        format!("LrpGamma({})", self.gamma)
    }

    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        propagate(layer, step, &self.recipe())
    }
}

impl LrpGamma {
    /// The rule as data for the engine: outputs split by the sign of `z`, ρ↑ and ρ↓ on the
    /// inputs' positive and negative parts.
    pub(crate) fn recipe<'a, F: Float>(&self) -> Recipe<'a, F> {
        let (up, down) = (Param::GammaUp(self.gamma), Param::GammaDown(self.gamma));
        let groups = vec![
            Group {
                factor: 1.0,
                mask: Mask::Positive,
                terms: split(up, down),
            },
            Group {
                factor: 1.0,
                mask: Mask::Negative,
                terms: split(down, up),
            },
        ];
        Recipe {
            groups,
            epsilon: self.stabilizer,
            bounds: None,
        }
    }
}

/// LRP-αβ (Bach et al. 2015), as zennit's `AlphaBeta`: `R = α·R_act − β·R_inh` with
/// activator `z⁺_j = Σ a⁺w⁺ + Σ a⁻w⁻ + b⁺_j` and inhibitor `z⁻_j = Σ a⁺w⁻ + Σ a⁻w⁺ + b⁻_j`,
/// each stabilised separately; `R_act,i = (a⁺_i w⁺_ji + a⁻_i w⁻_ji) R_j / stab(z⁺_j)`,
/// likewise `R_inh`. Requires α, β ≥ 0 and α − β = 1 (conservation).
///
/// ```
/// use relevance::LrpAlphaBeta;
/// assert!(LrpAlphaBeta::new(2.0, 1.0).is_ok());
/// assert!(LrpAlphaBeta::new(2.0, 0.5).is_err()); // α − β ≠ 1
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrpAlphaBeta {
    alpha: f64,
    beta: f64,
    stabilizer: f64,
}

impl LrpAlphaBeta {
    /// αβ with stabiliser 1e-6.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless α, β ≥ 0 are finite and α − β = 1 (to 1e-9).
    pub fn new(alpha: f64, beta: f64) -> Result<Self> {
        Self::with_stabilizer(alpha, beta, DEFAULT_STABILIZER)
    }

    /// αβ with the given stabiliser.
    ///
    /// # Errors
    /// As [`LrpAlphaBeta::new`], and for a negative or non-finite stabiliser.
    pub fn with_stabilizer(alpha: f64, beta: f64, stabilizer: f64) -> Result<Self> {
        check_param("LrpAlphaBeta", "alpha", alpha)?;
        check_param("LrpAlphaBeta", "beta", beta)?;
        check_param("LrpAlphaBeta", "stabilizer", stabilizer)?;
        if ((alpha - beta) - 1.0).abs() > 1e-9 {
            return Err(Error::InvalidParameter {
                rule: "LrpAlphaBeta",
                reason: format!("alpha - beta must be 1, got alpha={alpha}, beta={beta}"),
            });
        }
        Ok(LrpAlphaBeta {
            alpha,
            beta,
            stabilizer,
        })
    }

    /// (α, β).
    pub fn alpha_beta(&self) -> (f64, f64) {
        (self.alpha, self.beta)
    }
}

impl Default for LrpAlphaBeta {
    /// α = 2, β = 1.
    fn default() -> Self {
        LrpAlphaBeta {
            alpha: 2.0,
            beta: 1.0,
            stabilizer: DEFAULT_STABILIZER,
        }
    }
}

impl<F: Float> Rule<F> for LrpAlphaBeta {
    fn check_parameters(&self) -> Result<()> {
        super::param_fits::<F>("LrpAlphaBeta", "alpha", self.alpha)?;
        super::param_fits::<F>("LrpAlphaBeta", "beta", self.beta)?;
        super::param_fits::<F>("LrpAlphaBeta", "stabilizer", self.stabilizer)
    }

    fn activation_is_identity(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        format!("LrpAlphaBeta(alpha={}, beta={})", self.alpha, self.beta)
    }

    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        propagate(layer, step, &self.recipe())
    }
}

impl LrpAlphaBeta {
    /// The rule as data for the engine: the activator group weighted α, the inhibitor −β.
    pub(crate) fn recipe<'a, F: Float>(&self) -> Recipe<'a, F> {
        let mut groups = vec![Group {
            factor: self.alpha,
            mask: Mask::All,
            terms: split(Param::Positive, Param::Negative),
        }];
        if self.beta != 0.0 {
            groups.push(Group {
                factor: -self.beta,
                mask: Mask::All,
                terms: split(Param::Negative, Param::Positive),
            });
        }
        Recipe {
            groups,
            epsilon: self.stabilizer,
            bounds: None,
        }
    }
}

simple_rule!(
    /// LRP-z⁺ (Montavon et al. 2017), as zennit's `ZPlus`: `z⁺_j = Σ a⁺w⁺ + Σ a⁻w⁻ + b⁺_j`,
    /// `R_i = (a⁺_i w⁺_ji + a⁻_i w⁻_ji) R_j / stab(z⁺_j)`. Equal to αβ with α = 1, β = 0.
    LrpZPlus, "LrpZPlus", single(split(Param::Positive, Param::Negative))
);

simple_rule!(
    /// LRP-flat (Lapuschkin et al. 2019), as zennit's `Flat`: inputs and weights set to 1,
    /// bias to 0, so `R_i = Σ_j R_j / stab(n_j)` with `n_j` the number of inputs of output
    /// `j` (zero padding excluded). The input values play no part.
    LrpFlat, "LrpFlat", single(vec![Term::new(Input::Ones, Param::Ones, None)])
);

simple_rule!(
    /// LRP-w² (Montavon et al. 2017), as zennit's `WSquare`: inputs set to 1, weights and
    /// bias squared, so `R_i = Σ_j w_ji² R_j / stab(Σ_i w_ji² + b_j²)`. zennit keeps the
    /// squared bias in the denominator (iNNvestigate and the LRP toolbox drop it).
    LrpWSquare, "LrpWSquare", single(vec![Term::new(Input::Ones, Param::Square, Some(Param::Square))])
);

/// LRP-z^B for bounded (pixel) inputs (Montavon et al. 2017), as zennit's `ZBox`:
/// `z_j = Σ x_i w_ji − Σ l_i w⁺_ji − Σ h_i w⁻_ji` (the bias cancels, so relevance is
/// conserved up to the stabiliser), `R_i = (x_i w_ji − l_i w⁺_ji − h_i w⁻_ji) R_j / stab(z_j)`.
///
/// `low` and `high` have the per-sample input shape or a shape that broadcasts to it,
/// e.g. `[C, 1, 1]` for one bound per channel of an image, or `[]` for a scalar.
///
/// ```
/// use ndarray::{arr0, ArrayD};
/// use relevance::LrpZBox;
/// let zbox = LrpZBox::<f32>::new(arr0(0.0).into_dyn(), arr0(1.0).into_dyn()).unwrap();
/// assert!(LrpZBox::<f32>::new(arr0(1.0).into_dyn(), arr0(0.0).into_dyn()).is_err()); // low > high
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LrpZBox<F: Float = f32> {
    low: ArrayD<F>,
    high: ArrayD<F>,
    stabilizer: f64,
}

impl<F: Float> LrpZBox<F> {
    /// z^B with bounds `low ≤ high` (same shape) and stabiliser 1e-6.
    ///
    /// # Errors
    /// [`Error::Shape`] if the bounds differ in shape, [`Error::NonFinite`] if one holds
    /// NaN or ∞, [`Error::InvalidParameter`] if `low > high` anywhere.
    pub fn new(low: ArrayD<F>, high: ArrayD<F>) -> Result<Self> {
        Self::with_stabilizer(low, high, DEFAULT_STABILIZER)
    }

    /// z^B with the given stabiliser.
    ///
    /// # Errors
    /// As [`LrpZBox::new`], and for a negative or non-finite stabiliser.
    pub fn with_stabilizer(low: ArrayD<F>, high: ArrayD<F>, stabilizer: f64) -> Result<Self> {
        check_param("LrpZBox", "stabilizer", stabilizer)?;
        if low.shape() != high.shape() {
            return Err(Error::Shape {
                what: "ZBox high bound (must match the low bound)".into(),
                expected: low.shape().to_vec(),
                got: high.shape().to_vec(),
            });
        }
        check_finite("ZBox low bound", &low.view())?;
        check_finite("ZBox high bound", &high.view())?;
        if let Some(i) = low.iter().zip(high.iter()).position(|(l, h)| l > h) {
            return Err(Error::InvalidParameter {
                rule: "LrpZBox",
                reason: format!("low > high at flat index {i}"),
            });
        }
        Ok(LrpZBox {
            low,
            high,
            stabilizer,
        })
    }

    /// The bounds (low, high).
    pub fn bounds(&self) -> (&ArrayD<F>, &ArrayD<F>) {
        (&self.low, &self.high)
    }
}

impl<F: Float> Rule<F> for LrpZBox<F> {
    fn check_parameters(&self) -> Result<()> {
        super::param_fits::<F>("LrpZBox", "stabilizer", self.stabilizer)
    }

    fn activation_is_identity(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "LrpZBox".into()
    }

    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        propagate(layer, step, &self.recipe())
    }
}

impl<F: Float> LrpZBox<F> {
    /// The rule as data for the engine: the layer on x, less W⁺ on the low and W⁻ on the
    /// high bound (their biases cancel the layer's).
    pub(crate) fn recipe(&self) -> Recipe<'_, F> {
        let groups = single(vec![
            Term::new(Input::All, Param::Keep, Some(Param::Keep)),
            Term::new(Input::Low, Param::Positive, Some(Param::Positive)).negated(),
            Term::new(Input::High, Param::Negative, Some(Param::Negative)).negated(),
        ]);
        Recipe {
            groups,
            epsilon: self.stabilizer,
            bounds: Some((&self.low, &self.high)),
        }
    }
}
