//! [`Network`]: a directed acyclic graph of nodes checked at construction, its forward pass
//! and trace; the builder is in `builder.rs`, the batch-norm canonizer in `canonize.rs`.
//! Explanations (the backward loop) are in `crate::explain`.

mod builder;
mod canonize;
mod held;
mod run;

pub use builder::{GraphBuilder, NodeId};

use crate::error::Result;
use crate::float::Float;
use crate::layers::{Affine, Category, Layer, Merge};
use crate::rules::NodeInfo;
use crate::tensor::batch::{concat_batch, split_batch};
use crate::tensor::checks::{check_batch_shape, check_finite};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};
use std::sync::Arc;

/// The largest number of elements one sample may have at any node (2³⁰), so that a
/// mistaken configuration (huge padding, say) is an error at construction rather than an
/// enormous allocation at the first forward pass.
pub const MAX_SAMPLE_LEN: usize = 1 << 30;

/// The largest number of axes a sample may have at any node (16; images have 3), so that
/// the shapes a network keeps stay small whatever a file declares.
pub const MAX_RANK: usize = 16;

/// The largest number of nodes a network may have (2²⁰; ResNet-152 has about 500).
pub const MAX_NODES: usize = 1 << 20;

/// What a node computes: a [`Layer`] (one input), a [`Merge`] (several inputs), or a node
/// with no input: a held input ([`GraphBuilder::held_input`]) or a constant
/// ([`GraphBuilder::constant`], what [`Network::bind`] turns a held input into).
///
/// Held by reference count, so that networks can share nodes (a rebuilt network keeps the
/// nodes it does not change: [`GraphBuilder::add_shared`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Op<F: Float> {
    /// A node with one input.
    Layer(Arc<dyn Layer<F>>),
    /// A node with several inputs.
    Merge(Arc<dyn Merge<F>>),
    /// A held input: an extra input of the network, without a value until
    /// [`Network::bind`] replaces it by a [`Op::Constant`]; its per-sample shape is the
    /// node's entry in [`Network::shapes`]. Running a network with one is
    /// [`Error::UnboundHeldInput`](crate::Error::UnboundHeldInput).
    Held,
    /// A constant, `[1, shape...]` (one row), the same for every row of every batch; no
    /// input, so nothing arriving at it is carried further (like a bias).
    Constant(Arc<ArrayD<F>>),
}

/// One node of a [`Network`]: a name, what it computes, and which values it reads.
///
/// Values are numbered as in a [`Trace`]: 0 is the network input, `k + 1` the output of
/// node `k`.
#[derive(Debug)]
pub struct Node<F: Float> {
    name: String,
    op: Op<F>,
    /// Fixed once built: a boxed slice, no spare capacity.
    inputs: Box<[usize]>,
}

impl<F: Float> Node<F> {
    /// The node's name (given when it was added, or its index).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the node computes.
    pub fn op(&self) -> &Op<F> {
        &self.op
    }

    /// The values the node reads (0 = the network input, `k + 1` = the output of node `k`);
    /// empty for a held input or a constant.
    pub fn inputs(&self) -> &[usize] {
        &self.inputs
    }

    /// The node's layer, if it has one input.
    pub fn layer(&self) -> Option<&dyn Layer<F>> {
        match &self.op {
            Op::Layer(l) => Some(l.as_ref()),
            _ => None,
        }
    }

    /// The node's merge, if it has several inputs.
    pub fn merge(&self) -> Option<&dyn Merge<F>> {
        match &self.op {
            Op::Merge(m) => Some(m.as_ref()),
            _ => None,
        }
    }

    /// Whether the node is a held input without a value ([`GraphBuilder::held_input`]).
    pub fn is_held_input(&self) -> bool {
        matches!(self.op, Op::Held)
    }

    /// The node's value if it is a constant, `[1, shape...]` (a bound held input or a
    /// [`GraphBuilder::constant`]).
    pub fn constant(&self) -> Option<&ArrayD<F>> {
        match &self.op {
            Op::Constant(v) => Some(v),
            _ => None,
        }
    }

    /// The node's category (from its algebraic class).
    pub fn category(&self) -> Category {
        match &self.op {
            Op::Layer(l) => l.class().category(),
            Op::Merge(m) => m.class().category(),
            Op::Held | Op::Constant(_) => Category::Constant,
        }
    }

    /// The number of parameters the node holds: weights and biases of an affine layer,
    /// scale and shift of a per-channel affine map (batch norm), 0 otherwise.
    pub fn parameter_count(&self) -> usize {
        let Some(layer) = self.layer() else { return 0 };
        if let Some(a) = layer.class().affine() {
            a.weight().len() + a.bias().map_or(0, |b| b.len())
        } else if let Some((scale, shift)) = layer.channel_affine() {
            scale.len() + shift.len()
        } else {
            0
        }
    }

    /// The node's layer as an affine layer, if it is one (dense or convolution).
    pub fn affine(&self) -> Option<&dyn Affine<F>> {
        self.layer().and_then(|l| l.class().affine())
    }

    /// What the node computes, e.g. `Conv2d(3→8, 3×3)`.
    pub fn describe(&self) -> String {
        match &self.op {
            Op::Layer(l) => l.name(),
            Op::Merge(m) => m.name(),
            Op::Held => "HeldInput".into(),
            Op::Constant(v) => format!("Constant{:?}", &v.shape()[1..]),
        }
    }
}

/// A feed-forward network: a directed acyclic graph of nodes with a fixed per-sample input
/// shape and one output.
///
/// Besides its one explained input, a network may read *held inputs*
/// ([`GraphBuilder::held_input`]): extra inputs given per call with [`Network::bind`], the
/// same for the explained input and its baselines, and not attributed (bpnet-lite's control
/// tracks, say).
///
/// [`Network::new`] builds a chain of layers; [`GraphBuilder`] builds any graph (residual
/// sums, concatenations, gates). Shapes are checked node by node when the network is
/// built, so a network that exists can run any batch of the right input shape.
///
/// ```
/// use ndarray::array;
/// use relevance::{Dense, LrpEpsilon, Network, Relu, Target};
/// # fn main() -> relevance::Result<()> {
/// let net = Network::<f64>::new(&[2], vec![
///     Box::new(Dense::new(array![[1.0, -1.0], [0.5, 2.0]], Some(array![0.0, 0.5]))?),
///     Box::new(Relu),
///     Box::new(Dense::new(array![[1.0, 1.0]], None)?),
/// ])?;
/// let x = array![[2.0, 1.0]].into_dyn();
/// assert_eq!(net.forward(&x)?, array![[4.5]].into_dyn()); // relu(1) + relu(3.5)
/// let a = net.attribute(&x, &Target::Class(0), &LrpEpsilon::new(0.0)?)?;
/// // the output 4.5 is redistributed; the bias 0.5 of the second unit keeps its share
/// assert!((a.relevance.sum() - (4.5 - 0.5)).abs() < 1e-12);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Network<F: Float = f32> {
    /// Unique per network built (traced baselines remember which network recorded them).
    id: u64,
    /// In topological order; the last node is the output.
    nodes: Vec<Node<F>>,
    /// Per value: `shapes[0]` the input, `shapes[k + 1]` the output of node `k`.
    shapes: Vec<Vec<usize>>,
    /// Per value, the nodes that read it, in order.
    consumers: Vec<Vec<usize>>,
    /// The held inputs without a value ([`Op::Held`]), in order.
    held: Box<[usize]>,
    /// The trace of the all-zero input, recorded by the first call that needs it (a
    /// method explaining a difference to the zero baseline).
    pub(crate) zero_input: ZeroTrace<F>,
}

/// The one-row trace of the all-zero input, recorded once per network by the first call
/// that explains against [`Baseline::Zero`](crate::Baseline::Zero) and kept: it depends
/// only on the network (layers are pure functions of their input), so later calls skip the
/// baseline's forward pass, with bit-identical results.
pub(crate) struct ZeroTrace<F: Float>(pub(crate) std::sync::OnceLock<std::sync::Arc<Trace<F>>>);

impl<F: Float> std::fmt::Debug for ZeroTrace<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ZeroTrace(recorded)"
        } else {
            "ZeroTrace(not recorded)"
        })
    }
}

/// Every value of one forward pass: `activations[0]` is the input, `activations[k + 1]`
/// the output of node k (for a chain: of layer k).
#[derive(Debug, Clone)]
pub struct Trace<F: Float = f32> {
    /// The recorded values, one per node plus the input.
    pub activations: Vec<ArrayD<F>>,
}

impl<F: Float> Trace<F> {
    /// The network output (the last value).
    pub fn output(&self) -> &ArrayD<F> {
        self.activations.last().expect("a trace holds at least the input")
    }

    /// Hands every value's buffer back to the pool (`crate::pool`): the trace is spent.
    pub(crate) fn recycle(self) {
        self.activations.into_iter().for_each(crate::pool::recycle);
    }
}

impl<F: Float> Network<F> {
    /// Builds a chain of layers from its per-sample input shape (no batch dimension, e.g.
    /// `[1, 28, 28]` or `[784]`), checking that the shapes chain. The nodes are named by
    /// their index (`"0"`, `"1"`, ..., as in PyTorch's `nn.Sequential`).
    ///
    /// # Errors
    /// [`Error::EmptyNetwork`](crate::Error::EmptyNetwork) for no layers;
    /// [`Error::AtLayer`](crate::Error::AtLayer) wrapping the shape error of the first
    /// layer that cannot take its input.
    pub fn new(input_shape: &[usize], layers: Vec<Box<dyn Layer<F>>>) -> Result<Self> {
        if layers.is_empty() {
            return Err(crate::Error::EmptyNetwork);
        }
        let mut g = GraphBuilder::new(input_shape)?;
        let mut last = g.input();
        for layer in layers {
            last = g.add_boxed("", layer, last)?;
        }
        g.build(last)
    }

    /// This network's unique identity (for traced baselines).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The nodes, in order (a topological order: every node comes after its inputs).
    pub fn nodes(&self) -> &[Node<F>] {
        &self.nodes
    }

    /// The index of the node with this name.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Name and category of every node, as composites see them.
    pub fn node_infos(&self) -> Vec<NodeInfo<'_>> {
        self.nodes
            .iter()
            .map(|n| NodeInfo::new(&n.name, n.category()))
            .collect()
    }

    /// The per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.shapes[0]
    }

    /// The per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        self.shapes.last().expect("non-empty")
    }

    /// The per-sample shape of every value: the input, then the output of each node
    /// (for a chain: the input shape of every layer, then the output shape).
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    /// The nodes that read each value, in order (for the input, `consumers()[0]`).
    pub fn consumers(&self) -> &[Vec<usize>] {
        &self.consumers
    }

    /// Per input of a node, whether it comes out of a gate ([`Layer::is_gate`]; asked when
    /// needed, not stored per node).
    pub(crate) fn gates(&self, node: usize) -> Vec<bool> {
        self.nodes[node]
            .inputs
            .iter()
            .map(|&u| u > 0 && self.nodes[u - 1].layer().is_some_and(|l| l.is_gate()))
            .collect()
    }

    pub(crate) fn check_input(&self, x: &ArrayD<F>) -> Result<()> {
        self.check_bound()?;
        check_batch_shape("network input", &x.view(), self.input_shape())?;
        check_finite("network input", &x.view())
    }

    /// The error context of node `k`.
    pub(crate) fn at(&self, k: usize) -> impl Fn(crate::Error) -> crate::Error + '_ {
        move |e| e.at_layer(k, &self.nodes[k].name, &self.nodes[k].describe())
    }

    /// Runs node `k` on the values `value(u)` gives, for a batch of `n` rows.
    pub(crate) fn forward_node_with<'v>(
        &self,
        k: usize,
        n: usize,
        value: impl Fn(usize) -> ArrayViewD<'v, F>,
    ) -> Result<ArrayD<F>>
    where
        F: 'v,
    {
        let node = &self.nodes[k];
        let out = match &node.op {
            Op::Layer(l) => l.forward(value(node.inputs[0])),
            Op::Merge(m) => {
                let inputs: Vec<ArrayViewD<'_, F>> = node.inputs.iter().map(|&u| value(u)).collect();
                m.forward(&inputs)
            }
            Op::Held => Err(crate::Error::UnboundHeldInput {
                name: node.name.clone(),
            }),
            Op::Constant(v) => held::broadcast_rows(v, n),
        }
        .map_err(self.at(k))?;
        self.promised(k, n, out)
    }

    /// `out` if it has the shape node `k` promised for a batch of `n` rows.
    pub(super) fn promised(&self, k: usize, n: usize, out: ArrayD<F>) -> Result<ArrayD<F>> {
        if out.ndim() != self.shapes[k + 1].len() + 1
            || out.shape()[0] != n
            || out.shape()[1..] != self.shapes[k + 1]
        {
            let mut expected = vec![n];
            expected.extend_from_slice(&self.shapes[k + 1]);
            return Err(crate::Error::Shape {
                what: "node output (not the shape the node promised)".into(),
                expected,
                got: out.shape().to_vec(),
            })
            .map_err(self.at(k));
        }
        Ok(out)
    }

    /// The error for a non-finite result of `pass` that first appeared at node `k`.
    pub(crate) fn non_finite(&self, pass: &'static str, k: usize) -> crate::Error {
        self.at(k)(crate::Error::NonFiniteResult {
            pass,
            float: std::any::type_name::<F>(),
        })
    }

    /// Checks a forward result: if `out` has a non-finite value, the error names the first
    /// node whose output has one (`values` are the kept values, recomputed from `x` if
    /// `None`).
    pub(crate) fn check_forward(
        &self,
        out: &ArrayD<F>,
        x: &ArrayD<F>,
        values: Option<&[ArrayD<F>]>,
    ) -> Result<()> {
        if all_finite(out) {
            return Ok(());
        }
        let recomputed;
        let values = match values {
            Some(v) => v,
            None => {
                recomputed = self
                    .run(x.clone(), true)?
                    .into_iter()
                    .map(|v| v.expect("kept"))
                    .collect::<Vec<_>>();
                &recomputed
            }
        };
        let k = values[1..]
            .iter()
            .position(|v| !all_finite(v))
            .unwrap_or(self.nodes.len() - 1);
        Err(self.non_finite("forward pass", k))
    }

    /// Checks a backward result (relevance or DeepLIFT contributions at the input): if it
    /// has a non-finite value, the error names the node nearest the output whose input
    /// received one, found in `kept` (one array per value) computed by `recompute`.
    pub(crate) fn check_backward(
        &self,
        pass: &'static str,
        result: &ArrayD<F>,
        recompute: impl FnOnce() -> Result<Option<Vec<ArrayD<F>>>>,
    ) -> Result<()> {
        if all_finite(result) {
            return Ok(());
        }
        let kept = recompute()?.unwrap_or_default();
        // the value nearest the output holding a non-finite entry, and its last consumer
        let k = (0..kept.len())
            .rev()
            .find(|&v| !all_finite(&kept[v]))
            .and_then(|v| self.consumers.get(v).and_then(|c| c.last().copied()))
            .unwrap_or(0);
        Err(self.non_finite(pass, k))
    }

    /// The one-row trace of the all-zero input: recorded by the first call that needs it,
    /// then kept by the network (one sample's activations; see
    /// [`Baseline::Zero`](crate::Baseline::Zero)).
    pub(crate) fn zero_input_trace(&self) -> Result<Arc<Trace<F>>> {
        if let Some(t) = self.zero_input.0.get() {
            return Ok(Arc::clone(t));
        }
        let mut shape = vec![1];
        shape.extend_from_slice(self.input_shape());
        let t = Arc::new(self.trace(&ArrayD::zeros(IxDyn(&shape)))?);
        // two threads may both record it; they record the same values, and one is kept
        Ok(Arc::clone(self.zero_input.0.get_or_init(|| t)))
    }

    /// The forward pass.
    ///
    /// # Shapes
    /// `[N, input_shape...]` → `[N, output_shape...]`.
    ///
    /// # Errors
    /// A shape or rank error for an input of the wrong shape, [`Error::NonFinite`](crate::Error::NonFinite)
    /// for NaN or ∞ in it, [`Error::EmptyBatch`](crate::Error::EmptyBatch) for N = 0;
    /// [`Error::UnboundHeldInput`](crate::Error::UnboundHeldInput) for a held input not yet
    /// given a value ([`Network::bind`]);
    /// [`Error::NonFiniteResult`](crate::Error::NonFiniteResult) inside
    /// [`Error::AtLayer`](crate::Error::AtLayer) naming the first node whose output
    /// overflowed.
    pub fn forward(&self, x: &ArrayD<F>) -> Result<ArrayD<F>> {
        self.check_input(x)?;
        // Samples are independent: split the batch across threads (feature `parallel`).
        let parts = split_batch(x.shape()[0], |rows| {
            let n = rows.len();
            let xs = x.slice_axis(Axis(0), Slice::from(rows));
            let mut values = self.run_on(Err(xs), n, false)?;
            Ok(values.pop().flatten().expect("the output is kept"))
        })?;
        let out = concat_batch(parts);
        self.check_forward(&out, x, None)?;
        Ok(out)
    }

    /// Keeps (`true`) the weights that LRP rules modify (LRP-γ's `W + γW⁺` and `W + γW⁻`,
    /// z⁺'s `W⁺`, z^B's, …) between calls, or stops keeping them and frees them (`false`).
    ///
    /// Without it, every call modifies each weight it needs, and a convolution transforms
    /// the modified weight, and its own 3×3 weight, for its Winograd path, again on every
    /// call (into scratch memory that is reused: no more memory than one layer's transforms
    /// at a time). With it, the first
    /// call that needs a modified weight makes it and later calls read it: on ResNets,
    /// EpsilonGammaBox runs faster (the README's performance section has the figures). It
    /// costs memory: up to the weights' size per modification a rule makes (LRP-γ makes two;
    /// [`Network::kept_weight_bytes`] tells what is held), plus 16/9 of that for the 3×3
    /// layers that take the Winograd path. Each layer keeps the weights of at most
    /// [`KEPT_SETS_MAX`](crate::KEPT_SETS_MAX) rules (rules with other parameters modify the
    /// weight for their call). The results are the same bits either way.
    ///
    /// Layers that offer the storage ([`Affine::kept_weights`](crate::Affine::kept_weights):
    /// [`Dense`](crate::Dense), [`Conv2d`](crate::Conv2d), [`Conv1d`](crate::Conv1d)) keep; others
    /// modify per call.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Dense, LrpGamma, Method, Network, Relu, Target};
    /// # fn main() -> relevance::Result<()> {
    /// let net = Network::<f64>::new(&[2], vec![
    ///     Box::new(Dense::new(array![[1.0, -1.0], [1.0, 0.5]], None)?),
    ///     Box::new(Relu),
    ///     Box::new(Dense::new(array![[-1.0, 1.0]], None)?),
    /// ])?;
    /// let (x, gamma) = (array![[3.0, 1.0]].into_dyn(), Method::lrp(LrpGamma::new(0.25)?));
    /// let fresh = net.explain(&x, &Target::Class(0), &gamma)?;
    /// net.keep_rule_weights(true);
    /// let kept = net.explain(&x, &Target::Class(0), &gamma)?;
    /// assert_eq!(kept.relevance, fresh.relevance);
    /// assert_eq!(net.kept_weight_bytes(), (2 * 4 + 2 * 2) * 8); // W + γW⁺ and W + γW⁻ of both layers
    /// net.keep_rule_weights(false);
    /// assert_eq!(net.kept_weight_bytes(), 0);
    /// # Ok(()) }
    /// ```
    pub fn keep_rule_weights(&self, keep: bool) {
        for node in &self.nodes {
            if let Some(k) = node.affine().and_then(|a| a.kept_weights()) {
                k.set(keep);
            }
        }
    }

    /// The bytes of rule-modified weights (and their transforms) the network's layers keep
    /// ([`Network::keep_rule_weights`]); the transforms of the layers' own 3×3 weights, kept
    /// beside them (16/9 of those weights), are not counted.
    pub fn kept_weight_bytes(&self) -> usize {
        self.nodes
            .iter()
            .filter_map(|n| n.affine().and_then(|a| a.kept_weights()))
            .map(|k| k.bytes())
            .sum()
    }

    /// The forward pass, keeping every value.
    ///
    /// # Errors
    /// As [`Network::forward`].
    pub fn trace(&self, x: &ArrayD<F>) -> Result<Trace<F>> {
        self.check_input(x)?;
        self.trace_owned(crate::pool::copied(&x.view()))
    }

    /// [`Network::trace`] of an input the caller hands over (checked by the caller): it
    /// becomes the trace's first value without a copy.
    pub(crate) fn trace_owned(&self, x: ArrayD<F>) -> Result<Trace<F>> {
        let values: Vec<ArrayD<F>> = self.run(x, true)?.into_iter().map(|v| v.expect("kept")).collect();
        let (first, last) = (
            values.first().expect("non-empty"),
            values.last().expect("non-empty"),
        );
        self.check_forward(last, first, Some(&values))?;
        Ok(Trace { activations: values })
    }
}

/// Whether every value of `a` is finite.
pub(crate) fn all_finite<F: Float>(a: &ArrayD<F>) -> bool {
    match a.as_slice_memory_order() {
        Some(s) => crate::tensor::checks::all_finite(s),
        None => a.iter().all(|v| v.is_finite()),
    }
}
