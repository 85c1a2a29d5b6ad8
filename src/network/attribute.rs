//! Targets, seeds and the attribution loop: relevance carried from the output back to the
//! input, node by node in reverse order, adding up where a value feeds several nodes.

use super::{Network, Op};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{MergeStep, Step};
use crate::rules::{Gradient, Rule, RuleSet};
use crate::tensor::batch::{concat_batch, concat_layers, split_batch};
use crate::tensor::numerics::per_sample_sum;
use ndarray::{Array1, ArrayD, ArrayViewD, Axis, Slice};
use std::ops::Range;

/// Which output to explain.
#[derive(Debug, Clone, PartialEq)]
pub enum Target<F: Float = f32> {
    /// The same class for every sample of the batch.
    Class(usize),
    /// One class per sample.
    PerSample(Vec<usize>),
    /// The starting relevance itself, `[N, outputs]` (or the output's full shape); used as
    /// given, whatever [`Seed`] says.
    Relevance(ArrayD<F>),
    /// For each sample the class the network predicts (the first largest output, as
    /// `argmax`); [`Network::predict`] gives those classes.
    Predicted,
}

/// How the starting relevance is made from a class target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seed {
    /// `R = f_c(x)` at the target class, 0 elsewhere (the default; captum's convention and
    /// zennit's `output * one_hot`). With it LRP-0 on a ReLU network equals gradient × input.
    #[default]
    Logit,
    /// `R = 1` at the target class, 0 elsewhere (zennit's usual `one_hot`).
    OneHot,
}

/// Options of [`Network::attribute_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// How the starting relevance is made.
    pub seed: Seed,
    /// Keep the relevance at every value (the input and every node's output) in
    /// [`Attribution::layers`].
    pub keep_layers: bool,
}

/// The result of an attribution.
#[derive(Debug, Clone)]
pub struct Attribution<F: Float = f32> {
    /// Relevance at the input, with the input's shape `[N, ...]`.
    pub relevance: ArrayD<F>,
    /// The network output `[N, ...]`.
    pub output: ArrayD<F>,
    /// Total starting relevance per sample `[N]`.
    pub total: Array1<F>,
    /// Conservation gap per sample `[N]`: starting total minus the sum of input relevance.
    /// Zero for conservative rules without biases; biases and stabilisers absorb the rest.
    pub delta: Array1<F>,
    /// When asked for: the relevance at every value, numbered as in a [`Trace`](crate::Trace):
    /// `layers[0]` at the input (`== relevance`), `layers[k + 1]` at the output of node `k`
    /// (the sum of what its consumers sent back), the last the starting relevance. For a
    /// chain, `layers[k]` is the relevance at the input of layer `k`. Find a node by name
    /// with [`Network::node_index`].
    pub layers: Option<Vec<ArrayD<F>>>,
}

/// What [`Network::backward`] returns: what arrived at the input, and at every value if
/// asked for.
pub(crate) type Backward<F> = (ArrayD<F>, Option<Vec<ArrayD<F>>>);

impl<F: Float> Network<F> {
    /// The starting relevance for `target` at `output`.
    pub(crate) fn seed(&self, output: &ArrayD<F>, target: &Target<F>, seed: Seed) -> Result<ArrayD<F>> {
        let n = output.shape()[0];
        self.check_target(n, target)?;
        let per_sample: Vec<usize> = match target {
            Target::Relevance(r) => return Ok(r.clone()),
            Target::Class(c) => vec![*c; n],
            Target::PerSample(v) => v.clone(),
            Target::Predicted => argmax_rows(output),
        };
        let mut r = ArrayD::<F>::zeros(output.raw_dim());
        for (&class, (mut rs, os)) in per_sample
            .iter()
            .zip(r.axis_iter_mut(Axis(0)).zip(output.axis_iter(Axis(0))))
        {
            let rs = rs.as_slice_mut().expect("fresh array is contiguous");
            let os = os.as_standard_layout();
            rs[class] = match seed {
                Seed::Logit => os.as_slice().expect("standard layout")[class],
                Seed::OneHot => F::one(),
            };
        }
        Ok(r)
    }

    /// Explains `x` for `target` under `rules` (one rule or a [`Composite`](crate::Composite)),
    /// starting from the target logit.
    ///
    /// # Shapes
    /// `x` `[N, input_shape...]`; `Attribution::relevance` has the same shape.
    ///
    /// # Errors
    /// As [`Network::forward`]; [`Error::TargetOutOfRange`] or [`Error::BatchMismatch`] for
    /// a wrong target; [`Error::AtLayer`] for an error inside a rule, or wrapping
    /// [`Error::NonFiniteResult`] for relevance that overflowed (naming the node nearest the
    /// output where it appeared); [`Error::InvalidParameter`] for a rule parameter that the
    /// float type cannot hold.
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
    /// As [`Network::attribute`].
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
        self.check_input(x)?;
        self.check_target(x.shape()[0], target)?;
        // Samples are independent: split the batch across threads (feature `parallel`).
        let parts = split_batch(x.shape()[0], |rows| {
            let xs = x.slice_axis(Axis(0), Slice::from(rows.clone())).to_owned();
            self.attribute_rows(&xs, &target_rows(target, rows), rules, options)
        })?;
        Ok(Attribution::concat(parts))
    }

    /// Checks a target against a batch of `n` samples, before the batch is split.
    pub(crate) fn check_target(&self, n: usize, target: &Target<F>) -> Result<()> {
        let classes: usize = self.output_shape().iter().product();
        match target {
            Target::Class(c) if *c >= classes => Err(Error::TargetOutOfRange {
                sample: 0,
                class: *c,
                classes,
            }),
            Target::PerSample(v) if v.len() != n => Err(Error::BatchMismatch {
                what: "per-sample targets".into(),
                batch: n,
                got: v.len(),
            }),
            Target::PerSample(v) => match v.iter().position(|&c| c >= classes) {
                Some(sample) => Err(Error::TargetOutOfRange {
                    sample,
                    class: v[sample],
                    classes,
                }),
                None => Ok(()),
            },
            Target::Relevance(r) => {
                let mut expected = vec![n];
                expected.extend_from_slice(self.output_shape());
                if r.shape() != expected.as_slice() {
                    return Err(Error::Shape {
                        what: "target relevance (must have the output's shape)".into(),
                        expected,
                        got: r.shape().to_vec(),
                    });
                }
                crate::tensor::checks::check_finite("target relevance", &r.view())
            }
            Target::Class(_) | Target::Predicted => Ok(()),
        }
    }

    /// One rule per node from a rule set, checked.
    pub(crate) fn resolve<'r, R>(&self, rules: &'r R) -> Result<Vec<&'r dyn Rule<F>>>
    where
        R: RuleSet<F> + ?Sized,
    {
        let per_node = rules.resolve(&self.node_infos());
        if per_node.len() != self.nodes.len() {
            return Err(Error::Graph {
                node: "rule set".into(),
                reason: format!(
                    "the rule set gave {} rules for {} nodes",
                    per_node.len(),
                    self.nodes.len()
                ),
            });
        }
        for (k, r) in per_node.iter().enumerate() {
            r.check_parameters().map_err(self.at(k))?;
        }
        Ok(per_node)
    }

    /// Adds `part` (what node `k` sends back to value `u`) into the slot of `u`.
    pub(crate) fn deposit(
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
    /// `visit(k, r)` turns what arrived at node `k`'s output into one array per input,
    /// and where a value feeds several nodes their parts add up (as autograd does).
    /// Returns what arrives at the input and, if `keep`, what arrived at every value.
    pub(crate) fn backward(
        &self,
        acts: &[ArrayD<F>],
        start: ArrayD<F>,
        keep: bool,
        mut visit: impl FnMut(usize, ArrayD<F>) -> Result<Vec<ArrayD<F>>>,
    ) -> Result<Backward<F>> {
        let values = self.shapes.len();
        let mut slots: Vec<Option<ArrayD<F>>> = (0..values).map(|_| None).collect();
        let mut kept: Option<Vec<ArrayD<F>>> = keep.then(|| vec![ArrayD::zeros(ndarray::IxDyn(&[])); values]);
        slots[values - 1] = Some(start);
        for k in (0..self.nodes.len()).rev() {
            // every node reaches the output, so its output has received its parts
            let Some(r) = slots[k + 1].take() else { continue };
            if let Some(kept) = kept.as_mut() {
                kept[k + 1] = r.clone();
            }
            let parts = visit(k, r)?;
            let inputs = &self.nodes[k].inputs;
            if parts.len() != inputs.len() {
                return Err(Error::Graph {
                    node: self.nodes[k].name.clone(),
                    reason: format!("{} relevance arrays for {} inputs", parts.len(), inputs.len()),
                });
            }
            for (&u, part) in inputs.iter().zip(parts) {
                self.deposit(k, &mut slots, u, part, acts[u].shape())?;
            }
        }
        let r = slots[0]
            .take()
            .unwrap_or_else(|| ArrayD::zeros(acts[0].raw_dim()));
        if let Some(kept) = kept.as_mut() {
            kept[0] = r.clone();
        }
        Ok((r, kept))
    }

    /// Node `k`'s relevance pass under `rule`: what goes to each of its inputs.
    fn node_relevance(
        &self,
        k: usize,
        rule: &dyn Rule<F>,
        acts: &[ArrayD<F>],
        r: ArrayD<F>,
    ) -> Result<Vec<ArrayD<F>>> {
        let node = &self.nodes[k];
        match &node.op {
            Op::Layer(layer) => {
                let u = node.inputs[0];
                // an identity pass (LRP at a ReLU) hands the relevance on without a copy
                if layer.relevance_is_activation()
                    && rule.activation_is_identity()
                    && r.shape() == acts[u].shape()
                {
                    return Ok(vec![r]);
                }
                let step = Step::new(k, acts[u].view(), acts[k + 1].view(), r.view());
                let next = layer.relevance(rule, &step).map_err(self.at(k))?;
                crate::pool::recycle(r);
                Ok(vec![next])
            }
            Op::Merge(merge) => {
                let inputs: Vec<ArrayViewD<'_, F>> = node.inputs.iter().map(|&u| acts[u].view()).collect();
                let step = MergeStep::new(k, inputs, acts[k + 1].view(), r.view())
                    .with_gates(self.gates(k).to_vec());
                merge.relevance(rule, &step).map_err(self.at(k))
            }
        }
    }

    /// [`Network::attribute_with`] on one part of a batch, on the calling thread.
    fn attribute_rows<R>(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rules: &R,
        options: Options,
    ) -> Result<Attribution<F>>
    where
        R: RuleSet<F> + ?Sized,
    {
        let trace = self.trace(x)?;
        let per_node = self.resolve(rules)?;
        if let Some(i) = per_node.iter().position(|r| r.needs_baseline()) {
            return Err(Error::Unsupported {
                rule: per_node[i].name(),
                reason: "this rule needs a baseline; use the DeepLIFT entry point".into(),
            })
            .map_err(self.at(i));
        }
        let start = self.seed(trace.output(), target, options.seed)?;
        let total = per_sample_sum(&start.view());
        let acts = &trace.activations;
        let keep_start = (!options.keep_layers).then(|| start.clone());
        let (mut r, layers) = self.backward(acts, start, options.keep_layers, |k, r| {
            self.node_relevance(k, per_node[k], acts, r)
        })?;
        if rules.times_input() {
            r *= x;
        }
        self.check_backward("relevance pass", &r, || match (&layers, keep_start) {
            (Some(l), _) => Ok(Some(l.clone())),
            (None, Some(start)) => {
                let (_, kept) = self.backward(acts, start, true, |k, r| {
                    self.node_relevance(k, per_node[k], acts, r)
                })?;
                Ok(kept)
            }
            (None, None) => Ok(None),
        })?;
        let delta = &total - &per_sample_sum(&r.view());
        let mut activations = trace.activations;
        let output = activations.pop().expect("non-empty");
        activations.into_iter().for_each(crate::pool::recycle);
        Ok(Attribution {
            relevance: r,
            output,
            total,
            delta,
            layers,
        })
    }

    /// The gradient of the target's starting relevance (`Σ R_out ⊙ f(x)` with the seed
    /// taken as constant) with respect to the input.
    ///
    /// # Errors
    /// As [`Network::attribute`].
    pub fn gradient(&self, x: &ArrayD<F>, target: &Target<F>) -> Result<ArrayD<F>> {
        let options = Options {
            seed: Seed::OneHot,
            keep_layers: false,
        };
        Ok(self.attribute_with(x, target, &Gradient, options)?.relevance)
    }
}

/// The first largest output of each sample (NaN never wins).
pub(crate) fn argmax_rows<F: Float>(output: &ArrayD<F>) -> Vec<usize> {
    output
        .axis_iter(Axis(0))
        .map(|row| {
            let mut best: Option<(usize, F)> = None;
            for (i, &v) in row.iter().enumerate() {
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some((i, v));
                }
            }
            best.map_or(0, |(i, _)| i)
        })
        .collect()
}

impl<F: Float> Network<F> {
    /// The class each sample is predicted as: the index of its first largest output.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Dense, Network};
    /// # fn main() -> relevance::Result<()> {
    /// let net = Network::new(&[2], vec![Box::new(Dense::new(array![[1.0, 0.0], [0.0, 1.0]], None)?)])?;
    /// assert_eq!(net.predict(&array![[0.2, 0.9], [3.0, -1.0]].into_dyn())?, vec![1, 0]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Network::forward`].
    pub fn predict(&self, x: &ArrayD<F>) -> Result<Vec<usize>> {
        Ok(argmax_rows(&self.forward(x)?))
    }

    /// The `k` most likely classes of each sample with their outputs, largest first (ties:
    /// the lower class first), as `torch.topk` on the logits. Explain the r-th of them with
    /// `Target::PerSample(top.iter().map(|t| t[r].0).collect())`.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Dense, Network};
    /// # fn main() -> relevance::Result<()> {
    /// let net = Network::new(&[3], vec![Box::new(Dense::new(array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], None)?)])?;
    /// let top = net.top_k(&array![[0.2, 0.9, 0.5]].into_dyn(), 2)?;
    /// assert_eq!(top, vec![vec![(1, 0.9), (2, 0.5)]]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `k` is 0 or more than the network's outputs; as
    /// [`Network::forward`].
    pub fn top_k(&self, x: &ArrayD<F>, k: usize) -> Result<Vec<Vec<(usize, F)>>> {
        let outputs: usize = self.output_shape().iter().product();
        if k == 0 || k > outputs {
            return Err(Error::InvalidParameter {
                rule: "top_k",
                reason: format!("k must be in 1..={outputs} (the network's outputs), got {k}"),
            });
        }
        let out = self.forward(x)?;
        let n = out.shape()[0];
        let flat = out.as_standard_layout();
        let flat = flat.as_slice().expect("standard layout");
        Ok((0..n)
            .map(|i| {
                let row = &flat[i * outputs..(i + 1) * outputs];
                let mut idx: Vec<usize> = (0..outputs).collect();
                // finite outputs (forward checks), so the comparison is total
                idx.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap_or(std::cmp::Ordering::Equal));
                idx.into_iter().take(k).map(|c| (c, row[c])).collect()
            })
            .collect())
    }
}

/// Sum of an array's values per sample (over all but the first axis).
pub fn sum_per_sample<F: Float>(a: &ArrayViewD<'_, F>) -> Array1<F> {
    per_sample_sum(a)
}

/// The rows `rows` of a target, for one part of a split batch.
pub(crate) fn target_rows<F: Float>(target: &Target<F>, rows: Range<usize>) -> Target<F> {
    match target {
        Target::Class(c) => Target::Class(*c),
        Target::PerSample(v) => Target::PerSample(v[rows].to_vec()),
        Target::Relevance(r) => Target::Relevance(r.slice_axis(Axis(0), Slice::from(rows)).to_owned()),
        Target::Predicted => Target::Predicted,
    }
}

impl<F: Float> Attribution<F> {
    /// Joins the attributions of consecutive parts of a batch.
    fn concat(mut parts: Vec<Attribution<F>>) -> Self {
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        let cat1 = |f: fn(&Attribution<F>) -> &Array1<F>| {
            let views: Vec<_> = parts.iter().map(|p| f(p).view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("parts of one batch")
        };
        let total = cat1(|a| &a.total);
        let delta = cat1(|a| &a.delta);
        let layers = concat_layers(&parts.iter().map(|p| p.layers.as_ref()).collect::<Vec<_>>());
        let output = concat_batch(parts.iter().map(|p| p.output.clone()).collect());
        let relevance = concat_batch(parts.into_iter().map(|p| p.relevance).collect());
        Attribution {
            relevance,
            output,
            total,
            delta,
            layers,
        }
    }
}
