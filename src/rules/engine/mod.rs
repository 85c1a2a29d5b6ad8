//! The one engine behind every LRP rule, after zennit's `BasicHook`
//! (`zennit/core.py`) and iNNvestigate's `ZRule.apply`.
//!
//! A rule is a list of [`Group`]s. Each group is a list of [`Term`]s — a part of the input
//! paired with a modified weight and bias — plus a factor (α or −β) and a mask on the
//! original output's sign. For one group:
//!
//! 1. `z = Σₜ signₜ · (apply_with(xₜ, Wₜ) + bₜ)` — the modified forward pass;
//! 2. `s = mask ⊙ R / stabilise(z)` — the stabilised division;
//! 3. `cₜ = apply_transpose(s, Wₜ)` — the transposed pass, one per term;
//! 4. `R_in += factor · Σₜ signₜ · xₜ ⊙ cₜ` — multiply by the (modified) input.
//!
//! [`reference`] computes exactly that, term by term, with full tensors. [`propagate`]
//! computes the same with named fast paths ([`FastPaths`]) that share or skip work; a test
//! (`engine/tests.rs`) compares each fast path, alone and all together, against the
//! reference on random dense and convolutional layers for every rule.
//!
//! Files: `plan.rs` sorts the terms (input parts built once, vanishing terms skipped,
//! constant-input terms folded), `forward.rs` is step 1, this file steps 2–4, `parts.rs`
//! the input parts, `reference.rs` the plain path.

mod forward;
mod parts;
mod plan;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

#[cfg(test)]
use reference::reference;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::elementwise::{map3, update2, update3};
use crate::layers::{Affine, Step};
use crate::tensor::numerics::safe_ratio;
use ndarray::{ArrayD, ArrayViewD, CowArray, IxDyn};
use plan::Plan;

/// Which input a term multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// The recorded input x.
    All,
    /// x⁺ = max(x, 0).
    Positive,
    /// x⁻ = min(x, 0).
    Negative,
    /// A tensor of ones (Flat, WSquare).
    Ones,
    /// The lower bound l (ZBox).
    Low,
    /// The upper bound h (ZBox).
    High,
}

/// How a parameter (weight or bias) is modified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Param {
    /// Unchanged.
    Keep,
    /// p⁺ = max(p, 0).
    Positive,
    /// p⁻ = min(p, 0).
    Negative,
    /// All ones (Flat).
    Ones,
    /// p² (WSquare).
    Square,
    /// p + γ·p⁺ (zennit's Gamma, "up").
    GammaUp(f64),
    /// p + γ·p⁻ (zennit's Gamma, "down").
    GammaDown(f64),
}

impl Param {
    fn apply<F: Float>(self, p: F) -> F {
        let zero = F::zero();
        match self {
            Param::Keep => p,
            Param::Positive => p.max(zero),
            Param::Negative => p.min(zero),
            Param::Ones => F::one(),
            Param::Square => p * p,
            Param::GammaUp(g) => p + F::lit(g) * p.max(zero),
            Param::GammaDown(g) => p + F::lit(g) * p.min(zero),
        }
    }

    /// `dst[i] = self.apply(src[i])`, the same values, with the choice made once per slice
    /// (a match per element keeps the loop from vectorising: it took 12 % of an
    /// EpsilonGammaBox call on ResNet-18).
    ///
    /// Weights of at least [`PAR_WEIGHT`] elements are split across threads (feature
    /// `parallel`): the copy is bound by memory traffic, 45 MB read and written per
    /// EpsilonGammaBox call on ResNet-18. Each element is the same function of its own
    /// weight, so the split changes no bit.
    pub(crate) fn apply_into<F: Float>(self, src: &[F], dst: &mut [F]) {
        #[cfg(feature = "parallel")]
        if src.len() >= PAR_WEIGHT && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            const CHUNK: usize = 1 << 16;
            dst.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| self.apply_serial(s, d));
            return;
        }
        self.apply_serial(src, dst);
    }

    /// [`Param::apply_into`] on this thread.
    fn apply_serial<F: Float>(self, src: &[F], dst: &mut [F]) {
        fn each<F: Float>(src: &[F], dst: &mut [F], f: impl Fn(F) -> F) {
            for (d, &p) in dst.iter_mut().zip(src) {
                *d = f(p);
            }
        }
        let zero = F::zero();
        match self {
            Param::Keep => dst.copy_from_slice(src),
            Param::Positive => each(src, dst, |p| p.max(zero)),
            Param::Negative => each(src, dst, |p| p.min(zero)),
            Param::Ones => dst.fill(F::one()),
            Param::Square => each(src, dst, |p| p * p),
            Param::GammaUp(g) => {
                let g = F::lit(g);
                each(src, dst, |p| p + g * p.max(zero))
            }
            Param::GammaDown(g) => {
                let g = F::lit(g);
                each(src, dst, |p| p + g * p.min(zero))
            }
        }
    }
}

/// Elements from which [`Param::apply_into`] splits a weight across threads: 2^18 (ResNet's
/// 3×3 layers from 256 channels on) was about 3 % faster on an EpsilonGammaBox call of
/// ResNet-18 than the elementwise passes' 2^20, and 8 % faster than one thread.
#[cfg(feature = "parallel")]
const PAR_WEIGHT: usize = 1 << 18;

/// Which outputs a group redistributes, judged by the sign of the original output z.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mask {
    /// Every output.
    All,
    /// Outputs with z > 0.
    Positive,
    /// Outputs with z < 0.
    Negative,
}

/// One modified forward pass: `sign · (apply_with(input, weight(W)) + bias(b))`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Term {
    pub input: Input,
    pub weight: Param,
    /// `None`: this term adds no bias.
    pub bias: Option<Param>,
    /// +1 or −1.
    pub sign: f64,
}

impl Term {
    pub const fn new(input: Input, weight: Param, bias: Option<Param>) -> Self {
        Term {
            input,
            weight,
            bias,
            sign: 1.0,
        }
    }
    pub const fn negated(mut self) -> Self {
        self.sign = -self.sign;
        self
    }
}

/// Terms sharing one stabilised denominator.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub factor: f64,
    pub mask: Mask,
    pub terms: Vec<Term>,
}

/// A complete LRP rule for one affine layer.
#[derive(Debug, Clone)]
pub(crate) struct Recipe<'a, F> {
    pub groups: Vec<Group>,
    /// Stabiliser ε in `z + ε·sign₀(z)`.
    pub epsilon: f64,
    /// ZBox bounds (per-sample shape broadcastable to the input).
    pub bounds: Option<(&'a ArrayD<F>, &'a ArrayD<F>)>,
}

/// The engine's fast paths, each of which can be switched off (for the tests that compare
/// it with [`reference`]). [`FastPaths::ALL`] is what the rules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FastPaths {
    /// Step 1: the unmodified layer on the unmodified input (all of LRP-0 and ε, z^B's
    /// first term) reads the recorded output instead of recomputing it.
    pub recorded_output: bool,
    /// Step 1: LRP-γ's `W↓x` on the unmodified input is `(2 + γ)·Wx − W↑x`.
    pub gamma_derived: bool,
    /// Step 1: the forward passes of terms on one input part go through one
    /// [`Affine::apply_many`] call (a convolution builds its im2col matrix once).
    pub shared_forward: bool,
    /// Terms on an input constant per channel (z^B's scalar or per-channel bounds, the ones
    /// of flat and w²) are folded into one weight per group ([`Affine::apply_ones`]).
    pub fold_constants: bool,
    /// Terms whose input part is identically zero (x⁻ after a ReLU) are skipped.
    pub skip_vanishing: bool,
    /// Step 2: LRP-γ's two groups, masked by `z > 0` and `z < 0`, divide in one pass.
    pub fused_ratio: bool,
    /// Steps 3–4: the transposed passes of the terms on one input part are summed before
    /// the step back to the input layout ([`Affine::apply_transpose_sum`]) and multiplied
    /// by the input once.
    pub grouped_transpose: bool,
}

impl FastPaths {
    /// Every fast path on: what the rules use.
    pub const ALL: FastPaths = FastPaths {
        recorded_output: true,
        gamma_derived: true,
        shared_forward: true,
        fold_constants: true,
        skip_vanishing: true,
        fused_ratio: true,
        grouped_transpose: true,
    };

    /// Every fast path off.
    #[cfg(test)]
    pub const NONE: FastPaths = FastPaths {
        recorded_output: false,
        gamma_derived: false,
        shared_forward: false,
        fold_constants: false,
        skip_vanishing: false,
        fused_ratio: false,
        grouped_transpose: false,
    };
}

/// Checks that a step fits an affine layer: an input of at least one axis, a recorded
/// output of the shape the layer maps the input to, and relevance of the output's shape.
fn check_step<F: Float>(layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<()> {
    let x = &step.input;
    if x.ndim() == 0 {
        return Err(Error::Rank {
            what: format!("{} input (batch first)", layer.name()),
            expected: 2,
            got: 0,
            shape: vec![],
        });
    }
    let mut expected = vec![x.shape()[0]];
    expected.extend(layer.output_shape(crate::tensor::checks::per_sample(x.shape()))?);
    for (what, got) in [
        ("layer output (recorded)", step.output.shape()),
        ("relevance at the layer output", step.relevance.shape()),
    ] {
        if got != expected.as_slice() {
            return Err(Error::Shape {
                what: format!("{}: {what}", layer.name()),
                expected,
                got: got.to_vec(),
            });
        }
    }
    Ok(())
}

/// Runs the four steps of the module docs for every group and sums the results, with
/// every fast path.
pub(crate) fn propagate<F: Float>(
    layer: &dyn Affine<F>,
    step: &Step<'_, F>,
    recipe: &Recipe<'_, F>,
) -> Result<ArrayD<F>> {
    propagate_with(layer, step, recipe, FastPaths::ALL)
}

/// [`propagate`] with the fast paths `fast`.
pub(crate) fn propagate_with<F: Float>(
    layer: &dyn Affine<F>,
    step: &Step<'_, F>,
    recipe: &Recipe<'_, F>,
    fast: FastPaths,
) -> Result<ArrayD<F>> {
    check_step(layer, step)?;
    // the rule's modified weights, kept by the layer between calls if asked to
    let kept = kept_set(layer, recipe);
    let plan = Plan::new(layer, step, recipe, fast, kept.as_deref())?;
    // 1. z_g = Σ sign · (apply_with(x_t, W_t) + b_t)
    let zs = forward::modified_outputs(layer, step, recipe, &plan, fast)?;
    // 2. s_g = mask ⊙ R / stabilise(z_g)
    let ss = ratios(step, recipe, &zs, fast);
    // 3.–4. R_in = Σ_p x_p ⊙ Σ_t k_t · W_tᵀ s_g (+ the folded terms' V_gᵀ s_g)
    let r = relevance_in(layer, step, recipe, &plan, &ss, fast)?;
    // the modified outputs and quotients are spent: their buffers serve later layers
    ss.into_iter().flatten().for_each(crate::pool::recycle);
    zs.into_iter()
        .flatten()
        .filter(|z| z.is_owned())
        .for_each(|z| crate::pool::recycle(z.into_owned()));
    Ok(r)
}

/// The layer's kept set of the weights `recipe` modifies (every distinct modification of
/// its terms, in order of first use), if the layer keeps modified weights
/// ([`crate::Network::keep_rule_weights`]); `None` when it does not, or the rule modifies
/// no weight.
fn kept_set<F: Float>(
    layer: &dyn Affine<F>,
    recipe: &Recipe<'_, F>,
) -> Option<std::sync::Arc<crate::layers::KeptSet<F>>> {
    let store = layer.kept_weights().filter(|k| k.is_on())?;
    let mut params: Vec<Param> = Vec::new();
    for t in recipe.groups.iter().flat_map(|g| &g.terms) {
        if t.weight != Param::Keep && !params.contains(&t.weight) {
            params.push(t.weight);
        }
    }
    let w = layer.weight();
    let w = w.as_slice()?;
    store.get_or_make(&params, w)
}

/// Step 2: `s_g = mask ⊙ R / stabilise(z_g)` per group (`None` where `z_g` is).
fn ratios<F: Float>(
    step: &Step<'_, F>,
    recipe: &Recipe<'_, F>,
    zs: &[Option<CowArray<'_, F, IxDyn>>],
    fast: FastPaths,
) -> Vec<Option<ArrayD<F>>> {
    let eps = F::lit(recipe.epsilon);
    // Fast path `fused_ratio`: two groups masked by z > 0 and z < 0 (LRP-γ, zennit's Gamma)
    // keep disjoint outputs: one pass and one division per element serve both.
    let pair = match (recipe.groups.as_slice(), zs) {
        ([g0, g1], [Some(z0), Some(z1)])
            if fast.fused_ratio && g0.mask == Mask::Positive && g1.mask == Mask::Negative =>
        {
            split_ratio(&step.relevance, &z0.view(), &z1.view(), &step.output, eps)
        }
        _ => None,
    };
    if let Some((s0, s1)) = pair {
        return vec![Some(s0), Some(s1)];
    }
    recipe
        .groups
        .iter()
        .zip(zs)
        .map(|(group, z)| {
            let z = z.as_ref()?;
            Some(match group.mask {
                // no mask: the original output need not be read
                Mask::All => map3(&step.relevance, &z.view(), &z.view(), move |r, z, _| {
                    safe_ratio(r, z, eps)
                }),
                Mask::Positive => map3(&step.relevance, &z.view(), &step.output, move |r, z, orig| {
                    if orig > F::zero() {
                        safe_ratio(r, z, eps)
                    } else {
                        F::zero()
                    }
                }),
                Mask::Negative => map3(&step.relevance, &z.view(), &step.output, move |r, z, orig| {
                    if orig < F::zero() {
                        safe_ratio(r, z, eps)
                    } else {
                        F::zero()
                    }
                }),
            })
        })
        .collect()
}

/// `s · k` (a view when `k = 1`).
fn scale<F: Float>(s: &ArrayD<F>, k: f64) -> CowArray<'_, F, IxDyn> {
    if k == 1.0 {
        s.view().into()
    } else {
        let k = F::lit(k);
        s.mapv(|v| k * v).into()
    }
}

/// `r += x ⊙ c`, or `r = x ⊙ c` (computed in place in `c`) for the first part.
fn accumulate<F: Float>(r_in: &mut Option<ArrayD<F>>, x: Option<&ArrayViewD<'_, F>>, mut c: ArrayD<F>) {
    match (r_in.as_mut(), x) {
        (None, Some(x)) => {
            update2(&mut c, x, |c, xv| *c = xv * *c);
            *r_in = Some(c);
        }
        (None, None) => *r_in = Some(c),
        (Some(r), Some(x)) => {
            update3(r, x, &c.view(), |r, xv, cv| *r += xv * cv);
            crate::pool::recycle(c);
        }
        (Some(r), None) => {
            update2(r, &c.view(), |r, cv| *r += cv);
            crate::pool::recycle(c);
        }
    }
}

/// Steps 3–4: `R_in += x_p ⊙ Σ_t k_t · W_tᵀ s_g` per input part `p`, with `k_t` the group's
/// factor times the term's sign, and `R_in += Σ_g k_g · V_gᵀ s_g` for the folded terms.
fn relevance_in<F: Float>(
    layer: &dyn Affine<F>,
    step: &Step<'_, F>,
    recipe: &Recipe<'_, F>,
    plan: &Plan<'_, '_, F>,
    ss: &[Option<ArrayD<F>>],
    fast: FastPaths,
) -> Result<ArrayD<F>> {
    let input_shape = crate::tensor::checks::per_sample(step.input.shape());
    // Fast path `grouped_transpose`: one transposed map per input part (a convolution
    // accumulates the matrix products and runs one col2im), one multiplication by the input.
    let transposed = |terms: &[(CowArray<'_, F, IxDyn>, ArrayViewD<'_, F>)]| -> Result<Vec<ArrayD<F>>> {
        if fast.grouped_transpose {
            let terms: Vec<_> = terms.iter().map(|(s, w)| (s.view(), w.clone())).collect();
            Ok(vec![layer.apply_transpose_sum(&terms, input_shape)?])
        } else {
            terms
                .iter()
                .map(|(s, w)| layer.apply_transpose(s.view(), w.clone(), input_shape))
                .collect()
        }
    };
    let mut r_in: Option<ArrayD<F>> = None;
    for (p, (_, xp)) in plan.inputs.iter().enumerate() {
        let terms: Vec<_> = plan
            .active
            .iter()
            .filter(|a| a.input == p)
            .filter_map(|a| {
                let s = ss[a.group].as_ref()?;
                Some((
                    scale(s, recipe.groups[a.group].factor * a.term.sign),
                    a.weight.view(),
                ))
            })
            .collect();
        if terms.is_empty() {
            continue;
        }
        for c in transposed(&terms)? {
            accumulate(&mut r_in, Some(&xp.view()), c);
        }
    }
    let folded: Vec<_> = plan
        .folded
        .iter()
        .zip(ss)
        .zip(&recipe.groups)
        .filter_map(|((v, s), group)| Some((scale(s.as_ref()?, group.factor), v.as_ref()?.view())))
        .collect();
    if !folded.is_empty() {
        for c in transposed(&folded)? {
            accumulate(&mut r_in, None, c);
        }
    }
    Ok(r_in.unwrap_or_else(|| ArrayD::zeros(step.input.raw_dim())))
}

/// `(s⁺, s⁻)` with `s⁺ = R / stabilise(z⁺)` where the original output is > 0 (else 0) and
/// `s⁻ = R / stabilise(z⁻)` where it is < 0 (else 0), in one pass over contiguous arrays;
/// `None` if one is not contiguous. Each element is the same as from two masked passes.
fn split_ratio<F: Float>(
    r: &ArrayViewD<'_, F>,
    z_pos: &ArrayViewD<'_, F>,
    z_neg: &ArrayViewD<'_, F>,
    orig: &ArrayViewD<'_, F>,
    eps: F,
) -> Option<(ArrayD<F>, ArrayD<F>)> {
    let (r, zp, zn, o) = (
        r.as_slice()?,
        z_pos.as_slice()?,
        z_neg.as_slice()?,
        orig.as_slice()?,
    );
    if [zp.len(), zn.len(), o.len()].iter().any(|&l| l != r.len()) {
        return None;
    }
    let mut s_pos = crate::pool::output_buffer(r.len());
    let mut s_neg = crate::pool::output_buffer(r.len());
    let zero = F::zero();
    for (((((sp, sn), &r), &zp), &zn), &o) in s_pos.iter_mut().zip(&mut s_neg).zip(r).zip(zp).zip(zn).zip(o) {
        let q = safe_ratio(r, if o > zero { zp } else { zn }, eps);
        *sp = if o > zero { q } else { zero };
        *sn = if o < zero { q } else { zero };
    }
    let shape = z_pos.raw_dim();
    Some((
        crate::tensor::layout::shaped(shape.clone(), s_pos),
        crate::tensor::layout::shaped(shape, s_neg),
    ))
}
