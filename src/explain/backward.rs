//! The one backward loop of every method: relevance (LRP), multipliers (DeepLIFT) or
//! gradients carried from the output to the input, node by node in reverse order, adding up
//! where a value feeds several nodes (as autograd adds gradients in zennit and captum).
//!
//! Each node hands its recorded step to the rule method of its algebraic class
//! ([`Class::relevance`](crate::Class::relevance),
//! [`MergeClass::relevance`](crate::MergeClass::relevance)). A rule that treats an
//! activation together with the affine node below it (DeepLIFT's RevealCancel,
//! [`Rule::pairs_with_affine`]) is given both as one [`PairStep`]; which nodes pair up is
//! decided here, by the network, from the graph ([`Network::plan`]) — rules never look at
//! the network.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{MergeStep, Step};
use crate::network::{Network, Op, Trace};
use crate::rules::{PairStep, Rule};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// How the backward loop visits one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visit {
    /// On its own, by the rule method of its class.
    Node,
    /// An activation treated together with the affine node `affine` below it
    /// ([`Rule::affine_activation`]).
    Pair {
        /// The index of the affine node.
        affine: usize,
    },
    /// An affine node handled by the activation above it: nothing arrives at its output.
    Paired,
}

/// The recorded values a backward pass reads: every value of the input's forward pass and,
/// for methods that explain a difference, of the baseline's (one row shared by the batch,
/// or one row per row).
pub(crate) struct Recorded<'a, F: Float> {
    /// The forward pass of the input, one array per value. The backward loop hands a
    /// value's buffer to the pool (`crate::pool`) as soon as no node left to visit reads it
    /// (`None` then), so that the rules' temporaries reuse the trace's memory instead of
    /// adding to it; the input and the output stay.
    acts: Vec<Option<ArrayD<F>>>,
    /// The forward pass of the baseline, if any.
    pub base: Option<&'a [ArrayD<F>]>,
}

impl<'a, F: Float> Recorded<'a, F> {
    /// The values of `trace`, and the baseline's (if the method has one).
    pub fn new(trace: Trace<F>, base: Option<&'a [ArrayD<F>]>) -> Self {
        Recorded {
            acts: trace.activations.into_iter().map(Some).collect(),
            base,
        }
    }

    /// The input's value `v`.
    pub fn act(&self, v: usize) -> &ArrayD<F> {
        self.acts[v]
            .as_ref()
            .expect("invariant: the backward loop releases a value only after its last reader")
    }

    /// The network output (the last value, never released).
    pub fn output(&self) -> &ArrayD<F> {
        self.act(self.acts.len() - 1)
    }

    /// The output; the other values' buffers go back to the pool.
    pub fn into_output(mut self) -> ArrayD<F> {
        let output = self.acts.pop().flatten().unwrap_or_default();
        self.acts.into_iter().flatten().for_each(crate::pool::recycle);
        output
    }

    /// Hands value `v`'s buffer to the pool (not the input's or the output's).
    fn release(&mut self, v: usize) {
        if v > 0 && v + 1 < self.acts.len() {
            if let Some(a) = self.acts[v].take() {
                crate::pool::recycle(a);
            }
        }
    }

    /// The baseline's value `v` with the shape of the input's (a shared row is broadcast).
    pub fn base(&self, v: usize) -> Option<ArrayViewD<'a, F>> {
        let b = self.base?.get(v)?;
        b.broadcast(self.act(v).raw_dim())
    }

    /// The step of a one-input node `k` reading value `u`, with `relevance` at its output.
    fn step<'s>(&'s self, k: usize, u: usize, relevance: ArrayViewD<'s, F>) -> Step<'s, F> {
        let step = Step::new(k, self.act(u).view(), self.act(k + 1).view(), relevance);
        match (self.base(u), self.base(k + 1)) {
            (Some(bi), Some(bo)) => step.with_baseline(bi, bo),
            _ => step,
        }
    }
}

/// What the loop returns: what arrived at the input, and at every value if asked for.
pub(crate) type Backward<F> = (ArrayD<F>, Option<Vec<ArrayD<F>>>);

/// How the per-node results show what was carried back to a value: the relevance itself
/// (LRP, gradients), or DeepLIFT's contributions `m ⊙ (a − ā)`.
pub(crate) type Report<'r, F> = &'r dyn Fn(usize, &ArrayD<F>, &Recorded<'_, F>) -> ArrayD<F>;

impl<F: Float> Network<F> {
    /// How the backward loop visits each node under `rules` (one per node): an activation
    /// is paired with the affine node below it where its rule asks for that
    /// ([`Rule::pairs_with_affine`]) and the activation is the affine node's only reader.
    pub(crate) fn plan(&self, rules: &[&dyn Rule<F>]) -> Vec<Visit> {
        let mut plan = vec![Visit::Node; self.nodes().len()];
        for (k, node) in self.nodes().iter().enumerate() {
            let Some(layer) = node.layer() else { continue };
            if layer.class().category() != crate::Category::Activation {
                continue;
            }
            let u = node.inputs()[0];
            if u == 0 || self.consumers()[u] != [k] {
                continue;
            }
            let j = u - 1;
            let Some(below) = self.nodes()[j].layer() else {
                continue;
            };
            let class = below.class();
            if class.affine().is_some() && rules[k].pairs_with_affine(class.category()) {
                plan[k] = Visit::Pair { affine: j };
                plan[j] = Visit::Paired;
            }
        }
        plan
    }

    /// Adds `part` (what node `k` sends back to value `u`, of the value's shape `expected`)
    /// into the slot of `u`.
    fn deposit(
        &self,
        k: usize,
        slots: &mut [Option<ArrayD<F>>],
        u: usize,
        part: ArrayD<F>,
        expected: &[usize],
    ) -> Result<()> {
        if part.shape() != expected {
            return Err(Error::Shape {
                what: "relevance sent back to an input".into(),
                expected: expected.to_vec(),
                got: part.shape().to_vec(),
            })
            .map_err(self.at(k));
        }
        match slots[u].as_mut() {
            None => slots[u] = Some(part),
            Some(acc) => {
                *acc += &part;
                crate::pool::recycle(part);
            }
        }
        Ok(())
    }

    /// Carries `start` (at the output) back to the input: node by node in reverse order,
    /// each node's rule (`rules[k]`) turns what arrived at its output into one array per
    /// input, and where a value feeds several nodes their parts add up. Returns what
    /// arrives at the input and, if `report` is given, what arrived at every value, as
    /// `report` shows it.
    pub(crate) fn backward(
        &self,
        rec: &mut Recorded<'_, F>,
        rules: &[&dyn Rule<F>],
        plan: &[Visit],
        start: ArrayD<F>,
        report: Option<Report<'_, F>>,
    ) -> Result<Backward<F>> {
        let values = self.shapes().len();
        let mut slots: Vec<Option<ArrayD<F>>> = (0..values).map(|_| None).collect();
        let mut kept: Option<Vec<ArrayD<F>>> = report.map(|_| vec![ArrayD::zeros(IxDyn(&[])); values]);
        slots[values - 1] = Some(start);
        for k in (0..self.nodes().len()).rev() {
            // every node reaches the output, so its output has received all its parts; a
            // node handled by the activation above it has received nothing
            let Some(r) = slots[k + 1].take() else {
                // (its value was read by the pair above it, already visited)
                rec.release(k + 1);
                continue;
            };
            if let (Some(kept), Some(report)) = (kept.as_mut(), report) {
                kept[k + 1] = report(k + 1, &r, rec);
            }
            let node = &self.nodes()[k];
            // node k is the last reader of its output value (the readers come after it)
            let done = k + 1;
            if let Visit::Pair { affine } = plan[k] {
                let (u, middle) = (self.nodes()[affine].inputs()[0], affine + 1);
                let parts = self.pair(affine, k, rules[k], rec, r.view())?;
                if let Some(kept) = kept.as_mut() {
                    kept[middle] = parts.middle;
                }
                crate::pool::recycle(r);
                self.deposit(k, &mut slots, u, parts.input, rec.act(u).shape())?;
                rec.release(done);
                continue;
            }
            let parts = self.visit(k, rules[k], rec, r)?;
            if parts.len() != node.inputs().len() {
                return Err(Error::Graph {
                    node: node.name().to_string(),
                    reason: format!(
                        "{} relevance arrays for {} inputs",
                        parts.len(),
                        node.inputs().len()
                    ),
                });
            }
            for (&u, part) in node.inputs().iter().zip(parts) {
                self.deposit(k, &mut slots, u, part, rec.act(u).shape())?;
            }
            rec.release(done);
        }
        let r = slots[0]
            .take()
            .unwrap_or_else(|| ArrayD::zeros(rec.act(0).raw_dim()));
        if let (Some(kept), Some(report)) = (kept.as_mut(), report) {
            kept[0] = report(0, &r, rec);
        }
        Ok((r, kept))
    }

    /// Node `k`'s pass under `rule`: what goes to each of its inputs.
    fn visit(
        &self,
        k: usize,
        rule: &dyn Rule<F>,
        rec: &Recorded<'_, F>,
        r: ArrayD<F>,
    ) -> Result<Vec<ArrayD<F>>> {
        let node = &self.nodes()[k];
        let parts = match node.op() {
            Op::Layer(layer) => {
                let u = node.inputs()[0];
                let class = layer.class();
                // an identity pass (LRP at a ReLU) hands the relevance on without a copy
                if class.is_elementwise() && rule.activation_is_identity() && r.shape() == rec.act(u).shape()
                {
                    return Ok(vec![r]);
                }
                let step = rec.step(k, u, r.view());
                vec![class.relevance(rule, &step).map_err(self.at(k))?]
            }
            Op::Merge(merge) => {
                let inputs = node.inputs().iter().map(|&u| rec.act(u).view()).collect();
                let mut step = MergeStep::new(k, inputs, rec.act(k + 1).view(), r.view())
                    .with_gates(self.gates(k).to_vec());
                if let Some(out) = rec.base(k + 1) {
                    let base: Option<Vec<_>> = node.inputs().iter().map(|&u| rec.base(u)).collect();
                    if let Some(base) = base {
                        step = step.with_baseline(base, out);
                    }
                }
                merge.class().relevance(rule, &step).map_err(self.at(k))?
            }
            // a held input or a constant has no input: what arrives is dropped, as at a
            // bias (its value is the same for the input and the baseline)
            _ => Vec::new(),
        };
        crate::pool::recycle(r);
        Ok(parts)
    }

    /// The paired pass of the activation `k` and the affine node `j` below it.
    fn pair(
        &self,
        j: usize,
        k: usize,
        rule: &dyn Rule<F>,
        rec: &Recorded<'_, F>,
        r: ArrayViewD<'_, F>,
    ) -> Result<crate::rules::PairRelevance<F>> {
        let (below, above) = (&self.nodes()[j], &self.nodes()[k]);
        let (Some(affine), Some(activation)) =
            (below.layer().and_then(|l| l.class().affine()), above.layer())
        else {
            return Err(Error::Graph {
                node: above.name().to_string(),
                reason: "a paired pass needs an affine node below an activation".into(),
            });
        };
        let step = PairStep::new(
            rec.step(j, below.inputs()[0], r.clone()),
            rec.step(k, above.inputs()[0], r),
        );
        rule.affine_activation(affine, activation, &step)
            .map_err(self.at(k))
    }
}
