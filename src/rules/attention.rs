//! The rules of transformers: AttnLRP (Achtibat et al., "AttnLRP: Attention-Aware
//! Layer-Wise Relevance Propagation for Transformers", ICML 2024; reference implementation
//! `lxt` 2.1, `lxt/explicit/functional.py`) and CP-LRP (Ali et al., "XAI for
//! Transformers: Better Explanations through Conservative Propagation", ICML 2022), and
//! the node-level formulas they are made of.
//!
//! Stabiliser convention: every ε here is zennit's, `z + ε·sign₀(z)` (relevance dropped
//! where the stabilised `z` is 0), as in the rest of the crate. lxt adds `+ε` whatever the
//! sign of `z`; with ε = 0 the two coincide (the fixtures of `tests/suite/transformers.rs`
//! are compared so).

use super::{norm, Lrp0, LrpEpsilon, Rule};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Affine, Layer, LinearMap, MatMulPlan, MergeStep, Normalize, Step};
use crate::tensor::numerics::safe_ratio;
use ndarray::{ArrayD, ArrayViewD, Zip};

/// AttnLRP's softmax rule (Achtibat et al. 2024, Proposition 3.1; lxt's `softmax_fn`): the
/// first-order Taylor decomposition at the input itself,
/// `R_in = x ⊙ (R_out − s ⊙ Σ R_out)` per lane of the softmax axis
/// ([`Layer::lane_axis`]), with `s` the softmax output. Inputs of −∞ (masked positions)
/// count as 0, as in lxt.
///
/// # Errors
/// A shape error if the arrays do not fit, [`Error::Unsupported`] for a layer that does not
/// say its axis.
pub fn softmax_taylor<F: Float>(layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
    let axis = softmax_lanes(layer, step)?;
    let mut r = step.relevance.to_owned();
    for ((mut r, s), x) in r
        .lanes_mut(axis)
        .into_iter()
        .zip(step.output.lanes(axis))
        .zip(step.input.lanes(axis))
    {
        let total = r.iter().fold(F::zero(), |a, &v| a + v);
        Zip::from(&mut r).and(&s).and(&x).for_each(|r, &s, &x| {
            *r = if x.is_finite() {
                x * (*r - s * total)
            } else {
                F::zero()
            };
        });
    }
    Ok(r)
}

/// The lane axis of a softmax step, its arrays checked.
pub(crate) fn softmax_lanes<F: Float>(layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ndarray::Axis> {
    if step.relevance.shape() != step.output.shape() || step.input.shape() != step.output.shape() {
        return Err(Error::Shape {
            what: "relevance at a softmax output".into(),
            expected: step.output.shape().to_vec(),
            got: step.relevance.shape().to_vec(),
        });
    }
    layer
        .lane_axis(step.input.ndim())
        .map(ndarray::Axis)
        .ok_or_else(|| Error::Unsupported {
            rule: "softmax rule".into(),
            reason: format!(
                "{} does not say along which axis it normalises (Layer::lane_axis)",
                layer.name()
            ),
        })
}

/// AttnLRP's rule for the matrix product of two computed tensors (Achtibat et al. 2024,
/// Proposition 3.3; lxt's `matmul_fn`): the ε-rule over the terms `a_ij b_jl` of each
/// output, then the uniform rule, half of each term to each factor:
/// `S = R / (2·stab(z))`, `R_a = a ⊙ (S bᵀ)`, `R_b = b ⊙ (aᵀ S)`.
///
/// # Errors
/// A shape error if the arrays do not fit, [`Error::Graph`] for other than two inputs.
pub fn matmul_uniform<F: Float>(step: &MergeStep<'_, F>, epsilon: f64) -> Result<Vec<ArrayD<F>>> {
    matmul_shares(step, epsilon, [F::lit(0.5), F::lit(0.5)])
}

/// CP-LRP's rule for a matrix product (Ali et al. 2022): attention weights are constants,
/// so the product is linear in the other factor, which gets all relevance by the ε-rule
/// (`R_v = v ⊙ (Aᵀ R / stab(z))`). The attention weights are the factor that comes out of
/// a softmax ([`MergeStep::gates`]); where neither or both factors are, each gets half
/// ([`matmul_uniform`]).
///
/// # Errors
/// As [`matmul_uniform`].
pub fn matmul_constant_attention<F: Float>(step: &MergeStep<'_, F>, epsilon: f64) -> Result<Vec<ArrayD<F>>> {
    let (one, zero, half) = (F::one(), F::zero(), F::lit(0.5));
    let shares = match (step.gates.first(), step.gates.get(1)) {
        (Some(true), Some(false)) => [zero, one],
        (Some(false), Some(true)) => [one, zero],
        _ => [half, half],
    };
    matmul_shares(step, epsilon, shares)
}

/// The ε-rule through a matrix product, `shares[i]` of each term to factor `i`.
fn matmul_shares<F: Float>(step: &MergeStep<'_, F>, epsilon: f64, shares: [F; 2]) -> Result<Vec<ArrayD<F>>> {
    let [a, b] = crate::layers::matmul_two(step)?;
    let plan = MatMulPlan::new(a.shape(), b.shape())?;
    if step.relevance.shape() != step.output.shape() {
        return Err(Error::Shape {
            what: "relevance at a MatMul output".into(),
            expected: step.output.shape().to_vec(),
            got: step.relevance.shape().to_vec(),
        });
    }
    let eps = F::lit(epsilon);
    let s = ratio(&step.relevance, &step.output, eps);
    let (mut ra, mut rb) = plan.transposes(a, b, &s.view())?;
    scale_by(&mut ra, a, shares[0]);
    scale_by(&mut rb, b, shares[1]);
    Ok(vec![ra, rb])
}

/// `safe_ratio(r, z, ε)` elementwise (contiguous arrays as slices: `Zip` over dynamic
/// dimensions costs more than the division).
fn ratio<F: Float>(r: &ArrayViewD<'_, F>, z: &ArrayViewD<'_, F>, eps: F) -> ArrayD<F> {
    let mut s = r.as_standard_layout().into_owned();
    match (s.as_slice_mut(), z.as_slice()) {
        (Some(s), Some(z)) => s
            .iter_mut()
            .zip(z)
            .for_each(|(s, &z)| *s = safe_ratio(*s, z, eps)),
        _ => Zip::from(&mut s)
            .and(z)
            .for_each(|s, &z| *s = safe_ratio(*s, z, eps)),
    }
    s
}

/// `r *= x · k` elementwise.
fn scale_by<F: Float>(r: &mut ArrayD<F>, x: &ArrayViewD<'_, F>, k: F) {
    match (r.as_slice_mut(), x.as_slice()) {
        (Some(r), Some(x)) => r.iter_mut().zip(x).for_each(|(r, &x)| *r = *r * x * k),
        _ => Zip::from(r).and(x).for_each(|r, &x| *r = *r * x * k),
    }
}

/// AttnLRP's rule for layer and RMS normalisation (Achtibat et al. 2024, Proposition 3.4;
/// lxt's `layer_norm_grad_fn` and `rms_norm_identity_fn`): the normalising factor `1/σ` is
/// a constant (identity rule), and the remaining map, linear in `x` with the layer's bias,
/// gets the ε-rule: `R_in = x ⊙ Jᵀ(R / stab(y))` ([`Normalize::frozen_transpose`]). With
/// ε = 0 and no bias an RMS norm passes relevance on unchanged; a layer norm redistributes
/// it through the centring `x − mean(x)`.
///
/// # Errors
/// A shape error if the arrays do not fit.
pub fn normalization_epsilon<F: Float>(
    layer: &dyn Normalize<F>,
    step: &Step<'_, F>,
    epsilon: f64,
) -> Result<ArrayD<F>> {
    if step.relevance.shape() != step.output.shape() {
        return Err(Error::Shape {
            what: "relevance at a normalisation output".into(),
            expected: step.output.shape().to_vec(),
            got: step.relevance.shape().to_vec(),
        });
    }
    let eps = F::lit(epsilon);
    let mut s = step.relevance.to_owned();
    Zip::from(&mut s)
        .and(&step.output)
        .for_each(|s, &y| *s = safe_ratio(*s, y, eps));
    let mut r = layer.frozen_transpose(&step.input, &s.view())?;
    Zip::from(&mut r).and(&step.input).for_each(|r, &x| *r *= x);
    Ok(r)
}

/// The uniform rule for an elementwise product of two computed tensors (Achtibat et al.
/// 2024, Proposition 3.2; lxt's `mul2_fn`): half of the relevance to each factor (summed
/// over the axes a factor was broadcast along).
///
/// # Errors
/// A shape error if the arrays do not fit, [`Error::Graph`] for other than two inputs.
pub fn product_uniform<F: Float>(step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
    let [a, b] = crate::layers::matmul_two(step)?;
    let half = F::lit(0.5);
    [a, b]
        .iter()
        .map(|x| crate::tensor::broadcast::sum_to_shape(step.relevance.mapv(|r| r * half), x.shape()))
        .collect()
}

macro_rules! attention_rule {
    ($name:ident, $label:literal, $softmax:expr, $matmul:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name {
            epsilon: f64,
        }

        impl $name {
            /// The rule with stabiliser `epsilon` at every ε-rule (dense and convolutional
            /// layers, sums, matrix products, normalisations).
            ///
            /// # Errors
            /// [`Error::InvalidParameter`] for a negative or non-finite `epsilon`.
            pub fn new(epsilon: f64) -> Result<Self> {
                if !(epsilon.is_finite() && epsilon >= 0.0) {
                    return Err(Error::InvalidParameter {
                        rule: $label,
                        reason: format!("epsilon = {epsilon} must be finite and ≥ 0"),
                    });
                }
                Ok($name { epsilon })
            }

            /// The stabiliser.
            pub fn epsilon(&self) -> f64 {
                self.epsilon
            }
        }

        impl Default for $name {
            /// ε = 1e-6 (lxt's default for linear layers and layer norms).
            fn default() -> Self {
                $name { epsilon: 1e-6 }
            }
        }

        impl<F: Float> Rule<F> for $name {
            fn name(&self) -> String {
                format!("{}({:e})", $label, self.epsilon)
            }

            fn check_parameters(&self) -> Result<()> {
                if self.epsilon == 0.0 {
                    return Ok(());
                }
                super::param_fits::<F>($label, "epsilon", self.epsilon)
            }

            /// The ε-rule (LRP-0 for ε = 0), the same as [`LrpEpsilon`].
            fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
                if self.epsilon == 0.0 {
                    Lrp0.affine(layer, step)
                } else {
                    LrpEpsilon::new(self.epsilon)?.affine(layer, step)
                }
            }

            /// The identity rule at elementwise activations (GELU, SiLU, tanh, ...):
            /// relevance passes unchanged (Achtibat et al. 2024, Eq. 9).
            fn activation_is_identity(&self) -> bool {
                true
            }

            /// zennit's `Norm` at sums (a residual connection, a constant added) with this
            /// rule's ε: each summand its share, constants absorb theirs (lxt's `add2`).
            fn linear(&self, map: &dyn LinearMap<F>, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
                norm(map, step, self.epsilon)
            }

            /// The uniform rule ([`product_uniform`]).
            fn product(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
                product_uniform(step)
            }

            fn softmax(&self, layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
                #[allow(clippy::redundant_closure_call)]
                ($softmax)(layer, step)
            }

            fn matmul(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
                #[allow(clippy::redundant_closure_call)]
                ($matmul)(step, self.epsilon)
            }

            /// [`normalization_epsilon`]: `1/σ` constant, the ε-rule on the rest.
            fn normalization(&self, layer: &dyn Normalize<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
                normalization_epsilon(layer, step, self.epsilon)
            }
        }
    };
}

attention_rule!(
    AttnLrp,
    "AttnLrp",
    softmax_taylor,
    matmul_uniform,
    "AttnLRP (Achtibat et al., ICML 2024), the rules of lxt 2.1 at every node of a transformer:
the ε-rule at dense and convolutional layers, at sums and (with `1/σ` held constant) at layer
and RMS norms; the identity rule at elementwise activations (GELU, SiLU); the Taylor
decomposition at softmaxes ([`softmax_taylor`], Proposition 3.1); the ε-rule followed by the
uniform split at matrix products of computed tensors ([`matmul_uniform`], Proposition 3.3);
the uniform rule at elementwise products ([`product_uniform`], Proposition 3.2).

Use it alone, or as the default of a composite ([`Composite::attn_lrp`](crate::Composite::attn_lrp))
that gives other layers other rules, e.g. LRP-γ on the patch embedding and the dense layers
of a vision transformer as lxt's ViT example does.

```
use relevance::{AttnLrp, Rule};
let rule = AttnLrp::new(1e-6).unwrap();
assert_eq!(Rule::<f32>::name(&rule), \"AttnLrp(1e-6)\");
assert!(AttnLrp::new(-1.0).is_err());
```"
);

attention_rule!(
    CpLrp,
    "CpLrp",
    |_layer: &dyn Layer<F>, step: &Step<'_, F>| Ok(ArrayD::zeros(step.input.raw_dim())),
    matmul_constant_attention,
    "CP-LRP (Ali et al., \"XAI for Transformers: Better Explanations through Conservative
Propagation\", ICML 2022; lxt's `cp_multi_head_attention_forward`, which detaches queries
and keys): attention weights are constants, so no relevance flows into a softmax (or into the
queries and keys behind it), and a product of attention weights and values gives all its
relevance to the values by the ε-rule ([`matmul_constant_attention`]). Elsewhere it is
[`AttnLrp`]: the ε-rule at dense layers, sums and layer norms (`1/σ` constant), the identity
at activations.

```
use relevance::{CpLrp, Rule};
assert_eq!(Rule::<f64>::name(&CpLrp::default()), \"CpLrp(1e-6)\");
```"
);
