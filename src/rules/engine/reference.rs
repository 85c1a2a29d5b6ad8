//! The plain reference path of the engine: the four steps of the module docs, term by term,
//! every input part a full tensor, every modified forward pass computed and every term
//! transposed on its own — the textbook formula with nothing shared or skipped. The fast
//! path ([`propagate`](super::propagate)) is tested against it.

use super::parts::full_part;
use super::{check_step, Mask, Recipe};
use crate::error::Result;
use crate::float::Float;
use crate::layers::{Affine, Step};
use crate::tensor::numerics::safe_ratio;
use ndarray::{ArrayD, Zip};

/// Relevance at the input of `layer` under `recipe`, by the plain path.
///
/// # Errors
/// A shape error if the step does not fit the layer or a bound does not broadcast to the
/// input.
pub(crate) fn reference<F: Float>(
    layer: &dyn Affine<F>,
    step: &Step<'_, F>,
    recipe: &Recipe<'_, F>,
) -> Result<ArrayD<F>> {
    check_step(layer, step)?;
    let x = &step.input;
    let (w, b) = (layer.weight(), layer.bias());
    let eps = F::lit(recipe.epsilon);
    let mut r_in = ArrayD::<F>::zeros(x.raw_dim());
    for group in &recipe.groups {
        let parts = group
            .terms
            .iter()
            .map(|t| full_part(t.input, x, recipe.bounds))
            .collect::<Result<Vec<_>>>()?;
        let weights: Vec<ArrayD<F>> = group
            .terms
            .iter()
            .map(|t| w.mapv(|v| t.weight.apply(v)))
            .collect();
        // 1. z = Σₜ signₜ · (apply_with(xₜ, Wₜ) + bₜ)
        let mut z = ArrayD::<F>::zeros(step.output.raw_dim());
        for ((t, xt), wt) in group.terms.iter().zip(&parts).zip(&weights) {
            let mut zt = layer.apply_with(xt.view(), wt.view())?;
            if let (Some(bm), Some(bias)) = (t.bias, b.as_ref()) {
                layer.add_bias(&mut zt, bias.mapv(|v| bm.apply(v)).view());
            }
            let sign = F::lit(t.sign);
            Zip::from(&mut z).and(&zt).for_each(|z, &v| *z += sign * v);
        }
        // 2. s = mask ⊙ R / stabilise(z)
        let s = Zip::from(&step.relevance)
            .and(&z)
            .and(&step.output)
            .map_collect(|&r, &z, &orig| {
                let kept = match group.mask {
                    Mask::All => true,
                    Mask::Positive => orig > F::zero(),
                    Mask::Negative => orig < F::zero(),
                };
                if kept {
                    safe_ratio(r, z, eps)
                } else {
                    F::zero()
                }
            });
        // 3.–4. R_in += factor · Σₜ signₜ · xₜ ⊙ Wₜᵀ s
        for ((t, xt), wt) in group.terms.iter().zip(&parts).zip(&weights) {
            let c =
                layer.apply_transpose(s.view(), wt.view(), crate::tensor::checks::per_sample(x.shape()))?;
            let k = F::lit(group.factor * t.sign);
            Zip::from(&mut r_in)
                .and(xt)
                .and(&c)
                .for_each(|r, &xv, &cv| *r += k * xv * cv);
        }
    }
    Ok(r_in)
}
