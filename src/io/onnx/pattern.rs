//! Subgraphs that one layer computes: exporters write some functions out of elementary
//! operators — GELU as `x·½(1 + erf(x/√2))`, a layer norm as reductions, a subtraction, a
//! square root and a division — that are no layer one by one (`Erf`, `Sqrt` and the
//! reductions act on data only there). Before the first pass, each family's matchers
//! (registered for the operator the subgraph is found from, `Registry::pattern`) look at
//! the graph around every needed node of that operator and claim a *group*: its nodes, its
//! data input, and how the family builds it. The first pass does not check a claimed node,
//! and the walk builds the group when it reaches the group's last node.
//!
//! A matcher answers `None` where the subgraph is not its function at all (the nodes are
//! then checked and imported one by one, which refuses what is no layer), and
//! [`Found::Refused`] where it is the function's shape with one thing off (a `Pow` of 3
//! where a variance needs 2, an epsilon computed from the input): a clear refusal for the
//! whole group, never a wrong layer.

use super::check::Literal;
use super::decode::{float_tensor, int_tensor, is_int, DataDir};
use super::graph::{is_default_domain, Graph};
use super::import::Importer;
use super::ops::Ctx;
use super::proto::NodeProto;
use crate::error::Result;
use crate::float::Float;
use std::collections::HashMap;

/// Builds a claimed group: sets the output of its last node.
pub(super) type GroupBuild<F> =
    for<'a, 'c> fn(&mut Importer<'a, F>, &Group<'a, F>, &Ctx<'a, 'c>) -> Result<()>;

/// Looks at the graph around one node (the anchor) for a family's subgraph.
pub(super) type Matcher<F> = for<'a> fn(&Around<'a, '_>, usize) -> Option<Found<'a, F>>;

/// A group of nodes that one layer computes.
pub(super) struct Group<'a, F: Float> {
    /// Every node of it (indices into the graph's nodes).
    pub(super) nodes: Vec<usize>,
    /// The node whose output is the group's (every other node of it comes before).
    pub(super) last: usize,
    /// The data input.
    pub(super) input: &'a str,
    /// A family-defined switch (GELU: the tanh form; normalisations: centred).
    pub(super) flag: bool,
    /// Constants the build reads by name (normalisations: the scale and the bias, if any).
    pub(super) params: [Option<&'a str>; 2],
    /// Axes as the file gives them (normalisations: the reduced ones).
    pub(super) axes: Vec<i64>,
    /// A family-defined number (normalisations: epsilon).
    pub(super) value: f64,
    pub(super) build: GroupBuild<F>,
}

/// What a matcher found.
pub(super) enum Found<'a, F: Float> {
    Group(Group<'a, F>),
    /// The function's shape with something off: the nodes looked at, refused together.
    Refused {
        nodes: Vec<usize>,
        reason: String,
    },
}

/// What a matcher sees: the graph, which tensors are computed from the input, and the
/// constants the file states literally.
pub(super) struct Around<'a, 'p> {
    pub(super) graph: &'p Graph<'a>,
    pub(super) data: &'p HashMap<&'a str, bool>,
    pub(super) literals: &'p HashMap<&'a str, Literal<'a>>,
}

impl<'a, 'p> Around<'a, 'p> {
    /// Node `k`.
    pub(super) fn node(&self, k: usize) -> &'a NodeProto {
        &self.graph.proto.node[k]
    }

    /// Whether a tensor is computed from the network input.
    pub(super) fn is_data(&self, tensor: &str) -> bool {
        self.data.get(tensor).copied().unwrap_or(false)
    }

    /// The node producing a tensor, if it is of operator `op` (default domain).
    pub(super) fn producer(&self, tensor: &str, op: &str) -> Option<(usize, &'a NodeProto)> {
        self.graph
            .producer_of(tensor)
            .filter(|(_, n)| n.op_type == op && is_default_domain(n))
    }

    /// Every node reading a tensor (each once), and whether it is also the explained output.
    pub(super) fn readers(&self, tensor: &str) -> (&'p [usize], bool) {
        let list = self.graph.readers.get(tensor).map_or(&[][..], Vec::as_slice);
        (list, tensor == self.graph.output)
    }

    /// A tensor that is a list of integers the file states literally (axes).
    pub(super) fn ints(&self, tensor: &str) -> Option<Vec<i64>> {
        match *self.literals.get(tensor)? {
            Literal::Tensor(t) if is_int(t) => int_tensor(t, tensor, &DataDir(None)).ok().map(|(_, v)| v),
            _ => None,
        }
    }

    /// The one node reading a tensor, if exactly one does and the tensor is not the
    /// explained output.
    pub(super) fn sole_reader(&self, tensor: &str) -> Option<(usize, &'a NodeProto)> {
        if tensor == self.graph.output {
            return None;
        }
        match self.graph.readers.get(tensor).map(Vec::as_slice) {
            Some(&[k]) => Some((k, self.node(k))),
            _ => None,
        }
    }

    /// The one reader of a tensor if it is of operator `op`.
    pub(super) fn next(&self, tensor: &str, op: &str) -> Option<(usize, &'a NodeProto)> {
        self.sole_reader(tensor)
            .filter(|(_, n)| n.op_type == op && is_default_domain(n))
    }

    /// A node's output 0.
    pub(super) fn out(node: &'a NodeProto) -> &'a str {
        node.output.first().map_or("", String::as_str)
    }

    /// For a node of two inputs, one of which is `tensor`: the other one.
    pub(super) fn other(node: &'a NodeProto, tensor: &str) -> Option<&'a str> {
        match node.input.as_slice() {
            [a, b] if a == tensor && b != tensor => Some(b),
            [a, b] if b == tensor && a != tensor => Some(a),
            _ => None,
        }
    }

    /// A tensor that is a single value the file states literally.
    pub(super) fn scalar(&self, tensor: &str) -> Option<f64> {
        match *self.literals.get(tensor)? {
            Literal::Float(v) => Some(f64::from(v)),
            Literal::Tensor(t) => {
                if t.dims.iter().product::<i64>() != 1 {
                    return None;
                }
                if is_int(t) {
                    return int_tensor(t, tensor, &DataDir(None))
                        .ok()
                        .and_then(|(_, v)| v.first().map(|&v| v as f64));
                }
                float_tensor::<f64>(t, tensor, &DataDir(None))
                    .ok()?
                    .iter()
                    .next()
                    .copied()
            }
        }
    }

    /// Whether `tensor` is a literal single value within float32 rounding of `want`.
    pub(super) fn is_value(&self, tensor: &str, want: f64) -> bool {
        self.scalar(tensor)
            .is_some_and(|v| (v - want).abs() <= 1e-6 * want.abs().max(1e-30))
    }

    /// The other input of a two-input node, if it is a literal single value near `want`.
    pub(super) fn by_value(&self, node: &'a NodeProto, tensor: &str, want: f64) -> bool {
        Self::other(node, tensor).is_some_and(|c| self.is_value(c, want))
    }
}
