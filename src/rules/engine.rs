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

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Affine, Step};
use crate::tensor::{add_channel_bias, map3, negative, positive, safe_ratio, update2, update3};
use ndarray::{Array1, ArrayD, ArrayViewD, CowArray, IxDyn, Zip};

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
}

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

/// Broadcasts a per-sample bound to the batch input's shape.
fn broadcast_bound<F: Float>(what: &str, bound: &ArrayD<F>, input: &ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
    let sample = &input.shape()[1..];
    let mut shape = vec![1];
    shape.extend(std::iter::repeat_n(1, sample.len().saturating_sub(bound.ndim())));
    shape.extend_from_slice(bound.shape());
    let err = || Error::Shape {
        what: format!("{what} (must broadcast to the per-sample input shape)"),
        expected: sample.to_vec(),
        got: bound.shape().to_vec(),
    };
    if bound.ndim() > sample.len() {
        return Err(err());
    }
    let v = bound.view().into_shape_with_order(shape).map_err(|_| err())?;
    v.broadcast(input.raw_dim()).map(|b| b.to_owned()).ok_or_else(err)
}

fn input_part<'x, F: Float>(
    part: Input,
    x: &ArrayViewD<'x, F>,
    bounds: Option<(&ArrayD<F>, &ArrayD<F>)>,
    signs: &Signs,
) -> Result<CowArray<'x, F, IxDyn>> {
    Ok(match part {
        Input::All => x.clone().into(),
        // x⁺ of a non-negative input (after a ReLU) is the input itself: no copy
        Input::Positive if signs.non_negative(x) => x.clone().into(),
        Input::Positive => positive(x).into(),
        Input::Negative => negative(x).into(),
        Input::Ones => ArrayD::from_elem(x.raw_dim(), F::one()).into(),
        Input::Low | Input::High => {
            let (low, high) = bounds.ok_or_else(|| Error::Unsupported {
                rule: "LrpZBox".into(),
                reason: "bounds missing".into(),
            })?;
            let (what, b) = if part == Input::Low {
                ("ZBox low bound", low)
            } else {
                ("ZBox high bound", high)
            };
            broadcast_bound(what, b, x)?.into()
        }
    })
}

/// Whether a term contributes nothing because its input part is identically zero
/// (x⁻ after a ReLU, x⁺ of a non-positive input).
fn vanishes<F: Float>(part: Input, x: &ArrayViewD<'_, F>, signs: &Signs) -> bool {
    match part {
        Input::Negative => signs.non_negative(x),
        Input::Positive => signs.non_positive(x),
        _ => false,
    }
}

/// Whether the input is ≥ 0 (or ≤ 0) everywhere, each scanned for at most once per layer.
#[derive(Default)]
struct Signs {
    non_negative: std::cell::OnceCell<bool>,
    non_positive: std::cell::OnceCell<bool>,
}

impl Signs {
    fn non_negative<F: Float>(&self, x: &ArrayViewD<'_, F>) -> bool {
        *self
            .non_negative
            .get_or_init(|| x.iter().all(|&v| v >= F::zero()))
    }
    fn non_positive<F: Float>(&self, x: &ArrayViewD<'_, F>) -> bool {
        *self
            .non_positive
            .get_or_init(|| x.iter().all(|&v| v <= F::zero()))
    }
}

/// Runs the four steps of the module docs for every group and sums the results.
///
/// Work is shared across terms and groups: the modified forward passes of terms on the
/// same input part go through one [`Affine::apply_many`] call, and step 4 is regrouped by
/// input part, `R_in += x_p ⊙ apply_transpose_sum([(k_t·s_g, W_t)])` with `k_t` the group's
/// factor times the term's sign, so that e.g. LRP-γ's two groups (both on x⁺ after a ReLU)
/// share one im2col and one col2im.
pub(crate) fn propagate<F: Float>(
    layer: &dyn Affine<F>,
    step: &Step<'_, F>,
    recipe: &Recipe<'_, F>,
) -> Result<ArrayD<F>> {
    let x = &step.input;
    let input_shape = &x.shape()[1..];
    if step.relevance.shape() != step.output.shape() {
        return Err(Error::Shape {
            what: "relevance at the layer output".into(),
            expected: step.output.shape().to_vec(),
            got: step.relevance.shape().to_vec(),
        });
    }
    let w = layer.weight();
    let b = layer.bias();
    let eps = F::lit(recipe.epsilon);

    // Input parts, each built once: (part, x_p).
    let signs = Signs::default();
    let mut inputs: Vec<(Input, CowArray<'_, F, IxDyn>)> = Vec::new();
    // Terms that contribute: (group, term, index into `inputs`, modified weight).
    struct Active<'w, F> {
        group: usize,
        term: Term,
        input: usize,
        weight: CowArray<'w, F, IxDyn>,
    }
    let mut active: Vec<Active<'_, F>> = Vec::new();
    // slots[g][t]: the index in `active` of term t of group g (None: its input vanishes)
    let mut slots: Vec<Vec<Option<usize>>> = Vec::with_capacity(recipe.groups.len());
    let plain: Vec<bool> = recipe
        .groups
        .iter()
        .map(|group| {
            group.terms.len() == 1
                && group.terms[0].input == Input::All
                && group.terms[0].weight == Param::Keep
                && group.terms[0].bias == Some(Param::Keep)
                && group.terms[0].sign == 1.0
        })
        .collect();
    for (gi, group) in recipe.groups.iter().enumerate() {
        let mut group_slots = Vec::with_capacity(group.terms.len());
        for t in &group.terms {
            // A term whose input part is identically zero (x⁻ after a ReLU) only adds its bias.
            if vanishes(t.input, x, &signs) {
                group_slots.push(None);
                continue;
            }
            let input = match inputs.iter().position(|(p, _)| *p == t.input) {
                Some(i) => i,
                None => {
                    inputs.push((t.input, input_part(t.input, x, recipe.bounds, &signs)?));
                    inputs.len() - 1
                }
            };
            // the weight is only copied where the rule modifies it
            let weight: CowArray<'_, F, IxDyn> = if t.weight == Param::Keep {
                w.view().into()
            } else {
                w.mapv(|p| t.weight.apply(p)).into()
            };
            group_slots.push(Some(active.len()));
            active.push(Active {
                group: gi,
                term: *t,
                input,
                weight,
            });
        }
        slots.push(group_slots);
    }

    // 1. z_g = Σ sign · (apply_with(x_t, W_t) + b_t). A term of the unmodified layer on the
    //    unmodified input (all of LRP-0 and ε, the first term of z^B) is the recorded output.
    let recorded = |t: &Term| {
        t.input == Input::All && t.weight == Param::Keep && (t.bias == Some(Param::Keep) || b.is_none())
    };
    let mut forward: Vec<Option<ArrayD<F>>> = active.iter().map(|_| None).collect();
    for (p, (part, xp)) in inputs.iter().enumerate() {
        let which: Vec<usize> = (0..active.len())
            .filter(|&i| active[i].input == p && !plain[active[i].group] && !recorded(&active[i].term))
            .collect();
        if which.is_empty() {
            continue;
        }
        // γ's two weights sum to (2 + γ)W, so on the unmodified input (x itself)
        // W↓x = (2 + γ)·Wx − W↑x, with Wx the recorded output less the bias: one product
        // fewer per layer.
        let whole = *part == Input::All || (*part == Input::Positive && signs.non_negative(x));
        let derived: Vec<(usize, usize, f64)> = which
            .iter()
            .filter_map(|&i| match active[i].term.weight {
                Param::GammaDown(g) if whole => which
                    .iter()
                    .find(|&&j| active[j].term.weight == Param::GammaUp(g))
                    .map(|&j| (i, j, g)),
                _ => None,
            })
            .collect();
        let which: Vec<usize> = which
            .into_iter()
            .filter(|i| !derived.iter().any(|d| d.0 == *i))
            .collect();
        let ws: Vec<ArrayViewD<'_, F>> = which.iter().map(|&i| active[i].weight.view()).collect();
        for (i, z) in which.into_iter().zip(layer.apply_many(xp.view(), &ws)?) {
            forward[i] = Some(z);
        }
        for (down, up, g) in derived {
            let k = F::lit(2.0 + g);
            let mut z = step.output.to_owned();
            if let Some(bias) = b.as_ref() {
                add_channel_bias(&mut z, bias.mapv(|v| -v).view());
            }
            let up = forward[up].as_ref().expect("computed above");
            update2(&mut z, &up.view(), |z, u| *z = k * *z - u);
            forward[down] = Some(z);
        }
    }
    let mut zs: Vec<Option<CowArray<'_, F, IxDyn>>> = Vec::with_capacity(recipe.groups.len());
    for (gi, group) in recipe.groups.iter().enumerate() {
        if plain[gi] {
            zs.push(Some(step.output.view().into()));
            continue;
        }
        let mut z: Option<ArrayD<F>> = None;
        for (t, slot) in group.terms.iter().zip(&slots[gi]) {
            let mut zt = slot.and_then(|i| forward[i].take());
            if slot.is_some() && recorded(t) {
                // the recorded output, bias included
                zt = Some(step.output.to_owned());
            } else if let (Some(bm), Some(bias)) = (t.bias, b.as_ref()) {
                let bt: Array1<F> = bias.mapv(|p| bm.apply(p));
                let zt = zt.get_or_insert_with(|| ArrayD::zeros(step.output.raw_dim()));
                add_channel_bias(zt, bt.view());
            }
            if let Some(zt) = zt {
                let sign = F::lit(t.sign);
                z = Some(match z {
                    None if t.sign == 1.0 => zt,
                    None => zt.mapv(|v| v * sign),
                    Some(mut acc) => {
                        Zip::from(&mut acc).and(&zt).for_each(|a, &v| *a += sign * v);
                        acc
                    }
                });
            }
        }
        zs.push(z.map(CowArray::from));
    }

    // 2. s_g = mask ⊙ R / stabilise(z_g)
    let ss: Vec<Option<ArrayD<F>>> = recipe
        .groups
        .iter()
        .zip(&zs)
        .map(|(group, z)| {
            z.as_ref().map(|z| {
                let mask = group.mask;
                if mask == Mask::All {
                    // no mask: the original output need not be read
                    return map3(&step.relevance, &z.view(), &z.view(), move |r, z, _| {
                        safe_ratio(r, z, eps)
                    });
                }
                map3(&step.relevance, &z.view(), &step.output, move |r, z, orig| {
                    let keep = match mask {
                        Mask::All => true,
                        Mask::Positive => orig > F::zero(),
                        Mask::Negative => orig < F::zero(),
                    };
                    if keep {
                        safe_ratio(r, z, eps)
                    } else {
                        F::zero()
                    }
                })
            })
        })
        .collect();

    // 3.–4. R_in += x_p ⊙ apply_transpose_sum([(k_t · s_g, W_t)]) per input part p
    let mut r_in: Option<ArrayD<F>> = None;
    for (p, (_, xp)) in inputs.iter().enumerate() {
        let mut scaled: Vec<CowArray<'_, F, IxDyn>> = Vec::new();
        let mut weights: Vec<ArrayViewD<'_, F>> = Vec::new();
        for a in active.iter().filter(|a| a.input == p) {
            let Some(s) = ss[a.group].as_ref() else { continue };
            let k = recipe.groups[a.group].factor * a.term.sign;
            scaled.push(if k == 1.0 {
                s.view().into()
            } else {
                let k = F::lit(k);
                s.mapv(|v| k * v).into()
            });
            weights.push(a.weight.view());
        }
        if scaled.is_empty() {
            continue;
        }
        let terms: Vec<_> = scaled.iter().map(|s| s.view()).zip(weights).collect();
        let mut c = layer.apply_transpose_sum(&terms, input_shape)?;
        match r_in.as_mut() {
            // the first part's product is computed in place
            None => {
                update2(&mut c, &xp.view(), |c, xv| *c = xv * *c);
                r_in = Some(c);
            }
            Some(r) => {
                update3(r, &xp.view(), &c.view(), |r, xv, cv| *r += xv * cv);
                crate::tensor::recycle(c);
            }
        }
    }
    // the modified outputs and quotients are spent: their buffers serve later layers
    ss.into_iter().flatten().for_each(crate::tensor::recycle);
    zs.into_iter()
        .flatten()
        .filter(|z| z.is_owned())
        .for_each(|z| crate::tensor::recycle(z.into_owned()));
    Ok(r_in.unwrap_or_else(|| ArrayD::zeros(x.raw_dim())))
}
