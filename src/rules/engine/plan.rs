//! Which terms of a recipe contribute and how: each input part built once, terms on an
//! input that is identically zero skipped, terms on an input constant per channel folded
//! into one weight per group.

use super::parts::{fold_into, input_part, vanishes, Part, Signs};
use super::{FastPaths, Input, Param, Recipe, Term};
use crate::error::Result;
use crate::float::Float;
use crate::layers::{Affine, Step};
use ndarray::{Array1, ArrayD, ArrayViewD, CowArray, IxDyn, Zip};

/// What became of a term.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    /// Its input part is identically zero (x⁻ after a ReLU): it only adds its bias.
    Vanishes,
    /// Index into [`Plan::active`].
    Active(usize),
    /// Folded into its group's weight and bias.
    Folded,
}

/// A term that contributes through its own forward and transposed pass.
pub(super) struct Active<'a, F> {
    /// The group it belongs to.
    pub group: usize,
    /// The term.
    pub term: Term,
    /// Index into [`Plan::inputs`].
    pub input: usize,
    /// The modified weight (a view of the layer's where the rule keeps it).
    pub weight: CowArray<'a, F, IxDyn>,
}

/// The terms of a recipe on one layer and step, sorted by what they need.
pub(super) struct Plan<'w, 'x, F: Float> {
    /// Input parts held as tensors, each built once.
    pub inputs: Vec<(Input, CowArray<'x, F, IxDyn>)>,
    /// Input parts constant per channel (folded), each built once.
    pub constants: Vec<(Input, Vec<F>)>,
    /// The terms with their own passes.
    pub active: Vec<Active<'w, F>>,
    /// Per group, what became of each term.
    pub slots: Vec<Vec<Slot>>,
    /// Per group, the folded weight `V_g = Σₜ signₜ · cₜ ⊙ Wₜ` of its constant-input terms.
    pub folded: Vec<Option<ArrayD<F>>>,
    /// Per group, the biases of its folded terms.
    pub folded_bias: Vec<Option<Array1<F>>>,
    /// Per group, whether it is the unmodified layer on the unmodified input (LRP-0, ε):
    /// its output is the recorded one.
    pub plain: Vec<bool>,
    /// The input's signs, scanned at most once.
    pub signs: Signs,
}

impl<'w, 'x, F: Float> Plan<'w, 'x, F> {
    /// Sorts the terms of `recipe` for `layer` and `step`.
    pub fn new(
        layer: &'w dyn Affine<F>,
        step: &Step<'x, F>,
        recipe: &Recipe<'_, F>,
        fast: FastPaths,
        kept: Option<&'w crate::layers::KeptSet<F>>,
    ) -> Result<Self> {
        let x = &step.input;
        let w = layer.weight();
        let b = layer.bias();
        // Terms on an input constant per channel are folded, per group, into one weight
        // V_g = Σₜ signₜ · cₜ ⊙ Wₜ (scaled along the input-channel axis) and one bias: then
        // Σₜ signₜ·Wₜcₜ = V_g·1, and in step 4 Σₜ signₜ·cₜ ⊙ Wₜᵀs = V_gᵀs needs no
        // multiplication by the input. For z^B with per-channel bounds this is one
        // transposed map in place of two, and no forward pass over the bound images at all.
        let fold = fast.fold_constants
            && layer.weight_columns_are_input_channels()
            && w.ndim() >= 2
            && !w.is_empty()
            && x.shape().get(1) == Some(&w.shape()[1])
            // a dense layer on tokens ([N, T, D]) has its input channels on the last axis
            && !(w.ndim() == 2 && x.ndim() != 2);
        let groups = recipe.groups.len();
        let mut plan = Plan {
            inputs: Vec::new(),
            constants: Vec::new(),
            active: Vec::new(),
            slots: Vec::with_capacity(groups),
            folded: vec![None; groups],
            folded_bias: vec![None; groups],
            plain: recipe
                .groups
                .iter()
                .map(|g| fast.recorded_output && g.terms.len() == 1 && is_plain(&g.terms[0]))
                .collect(),
            signs: Signs::default(),
        };
        for (gi, group) in recipe.groups.iter().enumerate() {
            let mut group_slots = Vec::with_capacity(group.terms.len());
            for t in &group.terms {
                if fast.skip_vanishing && vanishes(t.input, x, &plan.signs) {
                    group_slots.push(Slot::Vanishes);
                    continue;
                }
                let known = plan.inputs.iter().any(|(p, _)| *p == t.input)
                    || plan.constants.iter().any(|(p, _)| *p == t.input);
                if !known {
                    match input_part(t.input, x, recipe.bounds, &plan.signs, fold)? {
                        Part::Tensor(xp) => plan.inputs.push((t.input, xp)),
                        Part::Channels(c) => plan.constants.push((t.input, c)),
                    }
                }
                if let Some((_, c)) = plan.constants.iter().find(|(p, _)| *p == t.input) {
                    let sign = F::lit(t.sign);
                    fold_into(&mut plan.folded[gi], &w, t.weight, c, sign);
                    if let (Some(bm), Some(bias)) = (t.bias, b.as_ref()) {
                        let acc = plan.folded_bias[gi].get_or_insert_with(|| Array1::zeros(bias.len()));
                        Zip::from(acc)
                            .and(bias)
                            .for_each(|a, &v| *a += sign * bm.apply(v));
                    }
                    group_slots.push(Slot::Folded);
                    continue;
                }
                let Some(input) = plan.inputs.iter().position(|(p, _)| *p == t.input) else {
                    return Err(crate::Error::Unsupported {
                        rule: layer.name(),
                        reason: format!("an input part of the rule ({:?}) was not built", t.input),
                    });
                };
                // the weight is only copied where the rule modifies it
                let kept_weight = kept.and_then(|k| {
                    let i = k.index_of(t.weight)?;
                    ArrayViewD::from_shape(w.shape(), k.weight(i)).ok()
                });
                let weight: CowArray<'w, F, IxDyn> = if t.weight == Param::Keep {
                    w.clone().into()
                } else if let Some(kw) = kept_weight {
                    // modified by an earlier call and kept by the layer
                    kw.into()
                } else {
                    // in a recycled buffer (see `Drop for Plan`): a fresh one of a large
                    // layer's size costs a page fault per 4 KiB on every call
                    let mut buf = crate::pool::output_buffer(w.len());
                    let src = w.as_standard_layout();
                    t.weight
                        .apply_into(crate::tensor::layout::standard(&src), &mut buf);
                    crate::tensor::layout::shaped(IxDyn(w.shape()), buf).into()
                };
                group_slots.push(Slot::Active(plan.active.len()));
                plan.active.push(Active {
                    group: gi,
                    term: *t,
                    input,
                    weight,
                });
            }
            plan.slots.push(group_slots);
        }
        Ok(plan)
    }
}

impl<F: Float> Drop for Plan<'_, '_, F> {
    /// The modified weights and input parts go back to the buffer pool for the next layer
    /// or call.
    fn drop(&mut self) {
        for a in self.active.drain(..) {
            recycle_owned(a.weight);
        }
        for (_, x) in self.inputs.drain(..) {
            recycle_owned(x);
        }
    }
}

/// Recycles the buffer of an owned array (views are left alone).
fn recycle_owned<F: Float>(a: CowArray<'_, F, IxDyn>) {
    if a.is_view() {
        return;
    }
    crate::pool::recycle(a.into_owned());
}

/// Whether a term is the unmodified layer on the unmodified input, bias included.
fn is_plain(t: &Term) -> bool {
    t.input == Input::All && t.weight == Param::Keep && t.bias == Some(Param::Keep) && t.sign == 1.0
}
