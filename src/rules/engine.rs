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
use crate::kernels::elementwise::{add_channel_bias, map3, update2, update3};
use crate::layers::{Affine, Step};
use crate::tensor::numerics::{negative, positive, safe_ratio};
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

/// An input part of a rule term.
enum Part<'x, F> {
    /// A tensor of the input's shape (x, x⁺, x⁻, a bound given per element).
    Tensor(CowArray<'x, F, IxDyn>),
    /// An input constant over each channel (axis 1), given per channel: the ones of LRP-flat
    /// and LRP-w², scalar and per-channel z^B bounds. Its terms are folded into the weight
    /// (see [`propagate`]).
    Channels(Vec<F>),
}

/// The per-channel values of a bound that is constant over every per-sample axis but the
/// first (a scalar, `[C, 1, 1]`, `[1]`, or any bound of a dense layer), or `None`.
fn per_channel<F: Float>(bound: &ArrayD<F>, sample: &[usize]) -> Option<Vec<F>> {
    let channels = *sample.first()?;
    if bound.ndim() > sample.len() {
        return None;
    }
    let mut shape = vec![1; sample.len() - bound.ndim()];
    shape.extend_from_slice(bound.shape());
    if shape[1..].iter().any(|&d| d != 1) {
        return None;
    }
    match shape[0] {
        1 => Some(vec![*bound.iter().next()?; channels]),
        c if c == channels => Some(bound.iter().copied().collect()),
        _ => None,
    }
}

fn input_part<'x, F: Float>(
    part: Input,
    x: &ArrayViewD<'x, F>,
    bounds: Option<(&ArrayD<F>, &ArrayD<F>)>,
    signs: &Signs,
    fold: bool,
) -> Result<Part<'x, F>> {
    let sample = &x.shape()[1..];
    Ok(match part {
        Input::All => Part::Tensor(x.clone().into()),
        // x⁺ of a non-negative input (after a ReLU) is the input itself: no copy
        Input::Positive if signs.non_negative(x) => Part::Tensor(x.clone().into()),
        Input::Positive => Part::Tensor(positive(x).into()),
        Input::Negative => Part::Tensor(negative(x).into()),
        Input::Ones if fold && !sample.is_empty() => Part::Channels(vec![F::one(); sample[0]]),
        Input::Ones => Part::Tensor(ArrayD::from_elem(x.raw_dim(), F::one()).into()),
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
            match per_channel(b, sample).filter(|_| fold) {
                Some(c) => Part::Channels(c),
                None => Part::Tensor(broadcast_bound(what, b, x)?.into()),
            }
        }
    })
}

/// `acc += k · c[i] · param(w[o, i, ...])` over the weight's input-channel axis 1: a term on
/// an input constant per channel, folded into the weight.
fn fold_into<F: Float>(acc: &mut Option<ArrayD<F>>, w: &ArrayViewD<'_, F>, param: Param, c: &[F], k: F) {
    let w = w.as_standard_layout();
    let inner: usize = w.shape()[2..].iter().product();
    let channels = c.len();
    let acc = acc.get_or_insert_with(|| ArrayD::zeros(w.raw_dim()));
    let (acc, w) = (
        acc.as_slice_mut().expect("fresh array is contiguous"),
        w.as_slice().expect("standard layout"),
    );
    for (block, (a, v)) in acc.chunks_mut(inner).zip(w.chunks(inner)).enumerate() {
        let f = k * c[block % channels];
        for (a, &v) in a.iter_mut().zip(v) {
            *a += f * param.apply(v);
        }
    }
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
        *self.non_negative.get_or_init(|| all(x, |v| v >= F::zero()))
    }
    fn non_positive<F: Float>(&self, x: &ArrayViewD<'_, F>) -> bool {
        *self.non_positive.get_or_init(|| all(x, |v| v <= F::zero()))
    }
}

/// Whether `pred` holds for every element: over a contiguous array in blocks without early
/// exit inside a block, which the compiler vectorises.
fn all<F: Float>(x: &ArrayViewD<'_, F>, pred: impl Fn(F) -> bool) -> bool {
    match x.as_slice() {
        Some(s) => s
            .chunks(64)
            .all(|block| block.iter().fold(true, |all, &v| all & pred(v))),
        None => x.iter().all(|&v| pred(v)),
    }
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
        ArrayD::from_shape_vec(shape.clone(), s_pos).expect("length matches the shape"),
        ArrayD::from_shape_vec(shape, s_neg).expect("length matches the shape"),
    ))
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

    // Terms on an input constant per channel are folded, per group, into one weight
    // V_g = Σₜ signₜ · cₜ ⊙ Wₜ (scaled along the input-channel axis) and one bias: then
    // Σₜ signₜ·Wₜcₜ = V_g·1, and in step 4 Σₜ signₜ·cₜ ⊙ Wₜᵀs = V_gᵀs needs no multiplication
    // by the input. For z^B with per-channel bounds this is one transposed map in place of
    // two, and no forward pass over the bound images at all.
    let fold = layer.weight_columns_are_input_channels()
        && w.ndim() >= 2
        && !w.is_empty()
        && input_shape.first() == Some(&w.shape()[1]);

    // Input parts, each built once: (part, x_p) for tensors, (part, c) for per-channel constants.
    let signs = Signs::default();
    let mut inputs: Vec<(Input, CowArray<'_, F, IxDyn>)> = Vec::new();
    let mut constants: Vec<(Input, Vec<F>)> = Vec::new();
    // Terms that contribute: (group, term, index into `inputs`, modified weight).
    struct Active<'w, F> {
        group: usize,
        term: Term,
        input: usize,
        weight: CowArray<'w, F, IxDyn>,
    }
    /// What became of a term.
    #[derive(Clone, Copy)]
    enum Slot {
        /// Its input part is identically zero (x⁻ after a ReLU): it only adds its bias.
        Vanishes,
        /// Index into `active`.
        Active(usize),
        /// Folded into its group's weight and bias.
        Folded,
    }
    let mut active: Vec<Active<'_, F>> = Vec::new();
    let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(recipe.groups.len());
    let mut folded: Vec<Option<ArrayD<F>>> = vec![None; recipe.groups.len()];
    let mut folded_bias: Vec<Option<Array1<F>>> = vec![None; recipe.groups.len()];
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
            if vanishes(t.input, x, &signs) {
                group_slots.push(Slot::Vanishes);
                continue;
            }
            let known =
                inputs.iter().any(|(p, _)| *p == t.input) || constants.iter().any(|(p, _)| *p == t.input);
            if !known {
                match input_part(t.input, x, recipe.bounds, &signs, fold)? {
                    Part::Tensor(xp) => inputs.push((t.input, xp)),
                    Part::Channels(c) => constants.push((t.input, c)),
                }
            }
            if let Some((_, c)) = constants.iter().find(|(p, _)| *p == t.input) {
                let sign = F::lit(t.sign);
                fold_into(&mut folded[gi], &w, t.weight, c, sign);
                if let (Some(bm), Some(bias)) = (t.bias, b.as_ref()) {
                    let acc = folded_bias[gi].get_or_insert_with(|| Array1::zeros(bias.len()));
                    Zip::from(acc)
                        .and(bias)
                        .for_each(|a, &v| *a += sign * bm.apply(v));
                }
                group_slots.push(Slot::Folded);
                continue;
            }
            let input = inputs
                .iter()
                .position(|(p, _)| *p == t.input)
                .expect("built above");
            // the weight is only copied where the rule modifies it
            let weight: CowArray<'_, F, IxDyn> = if t.weight == Param::Keep {
                w.view().into()
            } else {
                w.mapv(|p| t.weight.apply(p)).into()
            };
            group_slots.push(Slot::Active(active.len()));
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
            let mut zt = match *slot {
                Slot::Folded => continue,
                Slot::Active(i) => forward[i].take(),
                Slot::Vanishes => None,
            };
            if matches!(slot, Slot::Active(_)) && recorded(t) {
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
        if let Some(v) = folded[gi].as_ref() {
            // the folded terms: V_g·1 plus their biases, the same for every sample
            let mut c = layer.apply_ones(v.view(), input_shape)?;
            if c.ndim() != step.output.ndim()
                || c.shape()[0] != 1
                || c.shape()[1..] != step.output.shape()[1..]
            {
                return Err(Error::Shape {
                    what: format!("{}: map of a constant input (one sample)", layer.name()),
                    expected: [&[1], &step.output.shape()[1..]].concat(),
                    got: c.shape().to_vec(),
                });
            }
            if let Some(fb) = folded_bias[gi].as_ref() {
                add_channel_bias(&mut c, fb.view());
            }
            z = Some(match z {
                None => c
                    .broadcast(step.output.raw_dim())
                    .expect("shape checked above")
                    .to_owned(),
                Some(mut acc) => {
                    match (acc.as_slice_mut(), c.as_slice()) {
                        // sample by sample over contiguous rows
                        (Some(a), Some(cs)) if !cs.is_empty() => {
                            a.chunks_exact_mut(cs.len()).for_each(|row| {
                                row.iter_mut().zip(cs).for_each(|(a, &v)| *a += v);
                            })
                        }
                        _ => {
                            let c = c.broadcast(step.output.raw_dim()).expect("shape checked above");
                            Zip::from(&mut acc).and(&c).for_each(|a, &v| *a += v);
                        }
                    }
                    acc
                }
            });
        }
        zs.push(z.map(CowArray::from));
    }

    // 2. s_g = mask ⊙ R / stabilise(z_g)
    let mut ss: Vec<Option<ArrayD<F>>> = vec![None; recipe.groups.len()];
    // Two groups masked by z > 0 and z < 0 (LRP-γ, zennit's Gamma) keep disjoint outputs:
    // one pass and one division per element serve both.
    let pair = match (recipe.groups.as_slice(), zs.as_slice()) {
        ([g0, g1], [Some(z0), Some(z1)]) if g0.mask == Mask::Positive && g1.mask == Mask::Negative => {
            split_ratio(&step.relevance, &z0.view(), &z1.view(), &step.output, eps)
        }
        _ => None,
    };
    if let Some((s0, s1)) = pair {
        ss = vec![Some(s0), Some(s1)];
    } else {
        for ((s, group), z) in ss.iter_mut().zip(&recipe.groups).zip(&zs) {
            let Some(z) = z else { continue };
            *s = Some(match group.mask {
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
            });
        }
    }

    // 3.–4. R_in += x_p ⊙ apply_transpose_sum([(k_t · s_g, W_t)]) per input part p, and
    //       R_in += apply_transpose_sum([(k_g · s_g, V_g)]) for the folded terms
    fn scale<F: Float>(s: &ArrayD<F>, k: f64) -> CowArray<'_, F, IxDyn> {
        if k == 1.0 {
            s.view().into()
        } else {
            let k = F::lit(k);
            s.mapv(|v| k * v).into()
        }
    }
    let mut r_in: Option<ArrayD<F>> = None;
    for (p, (_, xp)) in inputs.iter().enumerate() {
        let mut scaled: Vec<CowArray<'_, F, IxDyn>> = Vec::new();
        let mut weights: Vec<ArrayViewD<'_, F>> = Vec::new();
        for a in active.iter().filter(|a| a.input == p) {
            let Some(s) = ss[a.group].as_ref() else { continue };
            scaled.push(scale(s, recipe.groups[a.group].factor * a.term.sign));
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
                crate::pool::recycle(c);
            }
        }
    }
    let (scaled, weights): (Vec<_>, Vec<_>) = folded
        .iter()
        .zip(&ss)
        .zip(&recipe.groups)
        .filter_map(|((v, s), group)| Some((scale(s.as_ref()?, group.factor), v.as_ref()?.view())))
        .unzip();
    if !scaled.is_empty() {
        let terms: Vec<_> = scaled.iter().map(|s| s.view()).zip(weights).collect();
        let c = layer.apply_transpose_sum(&terms, input_shape)?;
        match r_in.as_mut() {
            None => r_in = Some(c),
            Some(r) => {
                update2(r, &c.view(), |r, cv| *r += cv);
                crate::pool::recycle(c);
            }
        }
    }
    // the modified outputs and quotients are spent: their buffers serve later layers
    ss.into_iter().flatten().for_each(crate::pool::recycle);
    zs.into_iter()
        .flatten()
        .filter(|z| z.is_owned())
        .for_each(|z| crate::pool::recycle(z.into_owned()));
    Ok(r_in.unwrap_or_else(|| ArrayD::zeros(x.raw_dim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused pass gives the bits of the two masked passes, also where the original
    /// output or the stabilised denominator is exactly zero.
    #[test]
    fn split_ratio_equals_two_masked_passes() {
        let n = 64;
        let v = |k: usize, m: usize| ((k * m) % 7) as f64 - 3.0;
        let r = ArrayD::from_shape_fn(IxDyn(&[2, n]), |d| v(d[1] + 1, 5) * 0.3);
        let zp = ArrayD::from_shape_fn(IxDyn(&[2, n]), |d| v(d[1] + d[0], 3));
        let zn = ArrayD::from_shape_fn(IxDyn(&[2, n]), |d| v(d[1] + 2 * d[0], 4) - 0.5);
        let orig = ArrayD::from_shape_fn(IxDyn(&[2, n]), |d| v(d[1], 2));
        for eps in [0.0, 1e-6, 0.5] {
            let (sp, sn) = split_ratio(&r.view(), &zp.view(), &zn.view(), &orig.view(), eps).unwrap();
            for i in 0..2 * n {
                let (o, r) = (orig.as_slice().unwrap()[i], r.as_slice().unwrap()[i]);
                let want_p = if o > 0.0 {
                    safe_ratio(r, zp.as_slice().unwrap()[i], eps)
                } else {
                    0.0
                };
                let want_n = if o < 0.0 {
                    safe_ratio(r, zn.as_slice().unwrap()[i], eps)
                } else {
                    0.0
                };
                assert_eq!(
                    sp.as_slice().unwrap()[i].to_bits(),
                    want_p.to_bits(),
                    "s⁺ at {i}, ε = {eps}"
                );
                assert_eq!(
                    sn.as_slice().unwrap()[i].to_bits(),
                    want_n.to_bits(),
                    "s⁻ at {i}, ε = {eps}"
                );
            }
        }
        // not contiguous: no fused pass
        let t = r.t();
        assert!(split_ratio(&t, &zp.t(), &zn.t(), &orig.t(), 0.0).is_none());
    }
}
