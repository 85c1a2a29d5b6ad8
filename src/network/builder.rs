//! [`GraphBuilder`]: a network built node by node, each node naming earlier nodes as its
//! inputs, so that a cycle cannot be written down; shapes are checked as nodes are added.

use super::{Network, Node, Op, ZeroTrace, MAX_NODES, MAX_RANK, MAX_SAMPLE_LEN};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Layer, Merge};
use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;

/// A handle to a node (or to the network input) of one [`GraphBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId {
    /// Which builder made it (ids of another builder are refused, never misread).
    builder: u64,
    /// The value: 0 is the input, `k + 1` the output of node `k`.
    value: usize,
}

/// Builds a [`Network`] that is a directed acyclic graph: add nodes one by one with the ids
/// of their inputs (earlier nodes or the network input), then name the output.
///
/// Every node has a name — the one given, or its index if the name is empty — by which
/// errors, per-node results and composites ([`Selector::Name`](crate::Selector::Name),
/// [`Selector::Pattern`](crate::Selector::Pattern)) refer to it. Shapes are checked as each
/// node is added, so an error names the node at fault; ids from another builder, names
/// given twice and wrong numbers of inputs are [`Error::Graph`]. Nodes from which the
/// output cannot be reached are dropped by [`GraphBuilder::build`].
///
/// ```
/// use ndarray::{array, Array4};
/// use relevance::{Add, Conv2d, Conv2dConfig, GraphBuilder, Relu, Flatten, Dense};
/// # fn main() -> relevance::Result<()> {
/// // A residual block: y = relu(x + conv(relu(conv(x)))), then a classifier.
/// let conv = || Conv2d::new(Array4::<f64>::from_elem((2, 2, 3, 3), 0.1), None, Conv2dConfig::default().padding(1));
/// let mut g = GraphBuilder::new(&[2, 4, 4])?;
/// let x = g.input();
/// let c1 = g.add("block.conv1", conv()?, x)?;
/// let r1 = g.add("block.relu1", Relu, c1)?;
/// let c2 = g.add("block.conv2", conv()?, r1)?;
/// let sum = g.merge("block.add", Add::new(), &[x, c2])?;
/// let r2 = g.add("block.relu2", Relu, sum)?;
/// let flat = g.add("flatten", Flatten, r2)?;
/// let fc = g.add("fc", Dense::new(ndarray::Array2::from_elem((3, 32), 0.05), None)?, flat)?;
/// let net = g.build(fc)?;
/// assert_eq!(net.nodes().len(), 7);
/// assert_eq!(net.node_index("block.add"), Some(3));
/// assert_eq!(net.output_shape(), &[3]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GraphBuilder<F: Float = f32> {
    id: u64,
    nodes: Vec<Node<F>>,
    /// Per value: 0 the input, `k + 1` the output of node `k`.
    shapes: Vec<Vec<usize>>,
    /// Hashes of the names taken (the names themselves are the nodes'; a hash found here
    /// is confirmed against them, so a collision costs a scan, never a wrong answer).
    names: HashSet<u64>,
    hasher: RandomState,
}

/// Whether a per-sample shape is usable: non-empty, at most [`MAX_RANK`] axes, no zero, at
/// most [`MAX_SAMPLE_LEN`] elements.
pub(super) fn valid_sample_shape(shape: &[usize]) -> bool {
    !shape.is_empty()
        && shape.len() <= MAX_RANK
        && !shape.contains(&0)
        && shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .is_some_and(|n| n <= MAX_SAMPLE_LEN)
}

impl<F: Float> GraphBuilder<F> {
    /// Starts a network with the given per-sample input shape (no batch dimension, e.g.
    /// `[3, 224, 224]` or `[784]`).
    ///
    /// # Errors
    /// [`Error::Shape`] for an empty shape, a zero dimension, or more than
    /// [`MAX_SAMPLE_LEN`] elements.
    pub fn new(input_shape: &[usize]) -> Result<Self> {
        if !valid_sample_shape(input_shape) {
            return Err(Error::Shape {
                what: "network input shape (per sample, no batch dimension)".into(),
                expected: vec![],
                got: input_shape.to_vec(),
            });
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Ok(GraphBuilder {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nodes: Vec::new(),
            shapes: vec![input_shape.to_vec()],
            names: HashSet::new(),
            hasher: RandomState::new(),
        })
    }

    /// The network input.
    pub fn input(&self) -> NodeId {
        NodeId {
            builder: self.id,
            value: 0,
        }
    }

    /// The per-sample shape of a node's output (or of the input).
    ///
    /// # Errors
    /// [`Error::Graph`] for an id of another builder.
    pub fn shape(&self, id: NodeId) -> Result<&[usize]> {
        self.value(id, "shape query").map(|v| self.shapes[v].as_slice())
    }

    /// The number of nodes added so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node has been added yet.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn value(&self, id: NodeId, node: &str) -> Result<usize> {
        if id.builder != self.id || id.value >= self.shapes.len() {
            return Err(Error::Graph {
                node: node.to_string(),
                reason: "an input is not a node of this builder".into(),
            });
        }
        Ok(id.value)
    }

    /// Whether a node of this name was added.
    pub(crate) fn has_name(&self, name: &str) -> bool {
        self.names.contains(&self.hasher.hash_one(name)) && self.nodes.iter().any(|n| n.name == name)
    }

    /// The name for the next node: `name`, or the node's index if `name` is empty.
    fn claim_name(&self, name: &str) -> Result<String> {
        let index = self.nodes.len();
        if index >= MAX_NODES {
            return Err(Error::Graph {
                node: name.to_string(),
                reason: format!("a network has at most {MAX_NODES} nodes"),
            });
        }
        if name.is_empty() {
            let mut candidate = index.to_string();
            let mut k = 1;
            while self.has_name(&candidate) {
                candidate = format!("{index}_{k}");
                k += 1;
            }
            return Ok(candidate);
        }
        if self.has_name(name) {
            return Err(Error::Graph {
                node: name.to_string(),
                reason: "a node of this name was already added".into(),
            });
        }
        Ok(name.to_string())
    }

    fn push(&mut self, name: String, op: Op<F>, inputs: Vec<usize>, shape: Vec<usize>) -> NodeId {
        let index = self.nodes.len();
        self.names.insert(self.hasher.hash_one(&name));
        self.nodes.push(Node {
            name,
            op,
            inputs: inputs.into_boxed_slice(),
        });
        self.shapes.push(shape);
        NodeId {
            builder: self.id,
            value: index + 1,
        }
    }

    fn check_output(index: usize, name: &str, desc: &str, shape: Vec<usize>) -> Result<Vec<usize>> {
        if !valid_sample_shape(&shape) {
            return Err(Error::Shape {
                what: format!(
                    "node output (per sample; at most {MAX_RANK} axes and {MAX_SAMPLE_LEN} elements, none zero)"
                ),
                expected: vec![],
                got: shape,
            }
            .at_layer(index, name, desc));
        }
        Ok(shape)
    }

    /// Adds a layer (a node with one input) named `name` (or its index, if empty) reading
    /// `input`, and returns its id.
    ///
    /// # Errors
    /// [`Error::Graph`] for an input of another builder or a name already taken;
    /// [`Error::AtLayer`] wrapping the layer's shape error if it cannot take the input.
    pub fn add(&mut self, name: &str, layer: impl Layer<F> + 'static, input: NodeId) -> Result<NodeId> {
        self.add_boxed(name, Box::new(layer), input)
    }

    /// [`GraphBuilder::add`] for a boxed layer.
    ///
    /// # Errors
    /// As [`GraphBuilder::add`].
    pub fn add_boxed(&mut self, name: &str, layer: Box<dyn Layer<F>>, input: NodeId) -> Result<NodeId> {
        self.add_shared(name, Arc::from(layer), input)
    }

    /// [`GraphBuilder::add`] for a layer that other nodes or networks may share, e.g. a
    /// node of another network ([`Op::Layer`]) kept in a rebuilt one.
    ///
    /// ```
    /// use relevance::{GraphBuilder, Op, Relu};
    /// # fn main() -> relevance::Result<()> {
    /// let mut g = GraphBuilder::<f32>::new(&[3])?;
    /// let relu = g.add("relu", Relu, g.input())?;
    /// let net = g.build(relu)?;
    /// let Op::Layer(layer) = net.nodes()[0].op() else { unreachable!() };
    /// let mut h = GraphBuilder::<f32>::new(&[3])?;
    /// let again = h.add_shared("relu", layer.clone(), h.input())?; // the same node, not a copy
    /// assert_eq!(h.build(again)?.nodes().len(), 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`GraphBuilder::add`].
    pub fn add_shared(&mut self, name: &str, layer: Arc<dyn Layer<F>>, input: NodeId) -> Result<NodeId> {
        let name = self.claim_name(name)?;
        let u = self.value(input, &name)?;
        let index = self.nodes.len();
        let desc = layer.name();
        let shape = layer
            .output_shape(&self.shapes[u])
            .map_err(|e| e.at_layer(index, &name, &desc))?;
        let shape = Self::check_output(index, &name, &desc, shape)?;
        let scratch = layer.scratch_len(&self.shapes[u]);
        if scratch > MAX_SAMPLE_LEN {
            return Err(Error::Shape {
                what: format!(
                    "working memory of the layer ({scratch} values per sample, e.g. a convolution's unfolded \
                     input; at most {MAX_SAMPLE_LEN})"
                ),
                expected: vec![],
                got: self.shapes[u].clone(),
            }
            .at_layer(index, &name, &desc));
        }
        Ok(self.push(name, Op::Layer(layer), vec![u], shape))
    }

    /// Adds a node with several inputs (e.g. [`Add`](crate::Add),
    /// [`Concat`](crate::Concat), [`Mul`](crate::Mul)) named `name` (or its index, if
    /// empty) reading `inputs` in order, and returns its id.
    ///
    /// # Errors
    /// As [`GraphBuilder::add`]; [`Error::Graph`] for no inputs.
    pub fn merge(&mut self, name: &str, merge: impl Merge<F> + 'static, inputs: &[NodeId]) -> Result<NodeId> {
        self.merge_boxed(name, Box::new(merge), inputs)
    }

    /// [`GraphBuilder::merge`] for a boxed node.
    ///
    /// # Errors
    /// As [`GraphBuilder::merge`].
    pub fn merge_boxed(&mut self, name: &str, merge: Box<dyn Merge<F>>, inputs: &[NodeId]) -> Result<NodeId> {
        self.merge_shared(name, Arc::from(merge), inputs)
    }

    /// [`GraphBuilder::merge`] for a node that other networks may share (see
    /// [`GraphBuilder::add_shared`]).
    ///
    /// # Errors
    /// As [`GraphBuilder::merge`].
    pub fn merge_shared(
        &mut self,
        name: &str,
        merge: Arc<dyn Merge<F>>,
        inputs: &[NodeId],
    ) -> Result<NodeId> {
        let name = self.claim_name(name)?;
        if inputs.is_empty() {
            return Err(Error::Graph {
                node: name,
                reason: "a merge node needs at least one input".into(),
            });
        }
        let us = inputs
            .iter()
            .map(|&id| self.value(id, &name))
            .collect::<Result<Vec<_>>>()?;
        let index = self.nodes.len();
        let desc = merge.name();
        let shapes: Vec<&[usize]> = us.iter().map(|&u| self.shapes[u].as_slice()).collect();
        let shape = merge
            .output_shape(&shapes)
            .map_err(|e| e.at_layer(index, &name, &desc))?;
        let shape = Self::check_output(index, &name, &desc, shape)?;
        Ok(self.push(name, Op::Merge(merge), us, shape))
    }

    /// Adds a held input named `name` with the per-sample shape `shape` (no batch axis): an
    /// extra input of the network that is given per call — the same for the explained input
    /// and its baselines — and not attributed. The network built cannot run until
    /// [`Network::bind`] gives every held input a value; see there for what explanations
    /// do with it.
    ///
    /// # Errors
    /// [`Error::Graph`] for an empty name or one already taken; [`Error::AtLayer`] naming
    /// the node, wrapping [`Error::Shape`], for an empty shape, a zero dimension or too many
    /// elements.
    pub fn held_input(&mut self, name: &str, shape: &[usize]) -> Result<NodeId> {
        if name.is_empty() {
            return Err(Error::Graph {
                node: String::new(),
                reason: "a held input needs a name (values are bound to it by position, errors name it)"
                    .into(),
            });
        }
        let name = self.claim_name(name)?;
        let shape = Self::check_output(self.nodes.len(), &name, "HeldInput", shape.to_vec())?;
        Ok(self.push(name, Op::Held, vec![], shape))
    }

    /// Adds a constant named `name` (or its index, if empty): `value` is one row,
    /// `[1, shape...]`, and the node's output is that row for every row of every batch. It
    /// has no input; what arrives at it in an explanation is not carried further (as for a
    /// bias). [`Network::bind`] makes held inputs into such nodes.
    ///
    /// # Errors
    /// [`Error::Graph`] for a name already taken; [`Error::Rank`] or [`Error::Shape`] for a
    /// value without a batch axis of 1; [`Error::AtLayer`] naming the node, wrapping
    /// [`Error::Shape`] for an unusable per-sample shape (a zero dimension, too many
    /// elements) or [`Error::NonFinite`] for NaN or infinity in the value.
    pub fn constant(&mut self, name: &str, value: ndarray::ArrayD<F>) -> Result<NodeId> {
        self.constant_shared(name, Arc::new(value))
    }

    /// [`GraphBuilder::constant`] for a value that other networks may share (see
    /// [`GraphBuilder::add_shared`]).
    ///
    /// # Errors
    /// As [`GraphBuilder::constant`].
    pub fn constant_shared(&mut self, name: &str, value: Arc<ndarray::ArrayD<F>>) -> Result<NodeId> {
        let name = self.claim_name(name)?;
        let shape = super::held::check_row(&value)?;
        let index = self.nodes.len();
        let desc = format!("Constant{shape:?}");
        let shape = Self::check_output(index, &name, &desc, shape)?;
        crate::tensor::checks::check_finite("constant", &value.view())
            .map_err(|e| e.at_layer(index, &name, &desc))?;
        Ok(self.push(name, Op::Constant(value), vec![], shape))
    }

    /// Finishes the network with `output` as its output. Nodes from which `output` cannot
    /// be reached are dropped (they cannot affect what is explained); the others keep their
    /// order and names.
    ///
    /// # Errors
    /// [`Error::Graph`] for an id of another builder; [`Error::EmptyNetwork`] if `output`
    /// is the network input itself.
    pub fn build(self, output: NodeId) -> Result<Network<F>> {
        let out = self.value(output, "output")?;
        if out == 0 {
            return Err(Error::EmptyNetwork);
        }
        let GraphBuilder {
            mut nodes,
            mut shapes,
            ..
        } = self;
        // the nodes the output depends on, walking back from it
        let mut live = vec![false; shapes.len()];
        live[out] = true;
        for v in (1..=out).rev() {
            if live[v] {
                for &u in nodes[v - 1].inputs.iter() {
                    live[u] = true;
                }
            }
        }
        // dropped in place, the others renumbered (inputs come before their readers)
        let mut renumber = vec![usize::MAX; shapes.len()];
        renumber[0] = 0;
        let mut k = 0;
        let mut kept = 0;
        nodes.retain_mut(|node| {
            k += 1;
            if !live[k] {
                return false;
            }
            node.inputs.iter_mut().for_each(|u| *u = renumber[*u]);
            kept += 1;
            renumber[k] = kept;
            true
        });
        let mut v = 0;
        shapes.retain(|_| {
            v += 1;
            live[v - 1]
        });
        Ok(Network::from_parts(nodes, shapes))
    }
}

impl<F: Float> Network<F> {
    /// Builds the network from nodes in topological order and the shapes of their values,
    /// each list without spare capacity.
    pub(super) fn from_parts(mut nodes: Vec<Node<F>>, mut shapes: Vec<Vec<usize>>) -> Network<F> {
        nodes.shrink_to_fit();
        shapes.shrink_to_fit();
        // readers per value (a node reading a value twice is one reader), each list
        // allocated at its final length
        let mut count = vec![0usize; shapes.len()];
        let mut last = vec![usize::MAX; shapes.len()];
        for (k, node) in nodes.iter().enumerate() {
            for &u in node.inputs.iter() {
                if last[u] != k {
                    last[u] = k;
                    count[u] += 1;
                }
            }
        }
        drop(last);
        let held = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.op, Op::Held))
            .map(|(k, _)| k)
            .collect();
        let mut consumers: Vec<Vec<usize>> = count.into_iter().map(Vec::with_capacity).collect();
        for (k, node) in nodes.iter().enumerate() {
            for &u in node.inputs.iter() {
                if consumers[u].last() != Some(&k) {
                    consumers[u].push(k);
                }
            }
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Network {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nodes,
            shapes,
            consumers,
            held,
            zero_input: ZeroTrace(std::sync::OnceLock::new()),
        }
    }
}
