//! The first pass: before any tensor is decoded or layer built, every node the output needs
//! is looked up in the registry, and each entry's check sees which of the node's inputs
//! are computed from the network input (the data flow), its attributes, the literal
//! constants it reads and the nodes that read it. What it finds — operators without an
//! entry, operators that only fold but act on data, nodes refused for their inputs —
//! makes one error, together with what the walk refuses later.

use super::attrs::Attrs;
use super::decode::{float_tensor, DataDir};
use super::graph::{is_default_domain, node_label, Graph};
use super::import::unsupported;
use super::ops::Registry;
use super::pattern::{Around, Found, Group};
use super::proto::{NodeProto, TensorProto};
use super::OnnxOptions;
use crate::error::Error;
use crate::float::Float;
use std::collections::HashMap;

/// A node that cannot be imported.
#[derive(Debug, Clone)]
pub(super) struct Problem {
    /// Its index in the graph.
    pub(super) index: usize,
    /// How errors name it.
    pub(super) label: String,
    /// Its operator (with the domain, if not the default one).
    pub(super) op: String,
    /// Why it is refused; `None`: the operator has no entry in the registry.
    pub(super) reason: Option<String>,
}

/// Whether a node input is absent, a constant or computed from the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Absent,
    Const,
    Data,
}

/// A literal constant the file states: an initializer or a `Constant` node's value.
#[derive(Clone, Copy)]
pub(super) enum Literal<'g> {
    Tensor(&'g TensorProto),
    Float(f32),
}

/// What a registry entry's check sees of a node.
pub(super) struct Pre<'g> {
    pub(super) graph: &'g Graph<'g>,
    pub(super) node: &'g NodeProto,
    pub(super) attrs: Attrs<'g>,
    pub(super) opts: &'g OnnxOptions,
    kinds: Vec<Kind>,
    literals: &'g HashMap<&'g str, Literal<'g>>,
}

impl Pre<'_> {
    /// Whether input `pos` is computed from the network input.
    pub(super) fn is_data(&self, pos: usize) -> bool {
        self.kinds.get(pos) == Some(&Kind::Data)
    }

    /// Input `pos` if it is a single value the file states literally (an initializer or a
    /// `Constant` node stored inline); `None` if it is computed, absent or larger.
    pub(super) fn scalar(&self, pos: usize) -> Option<f64> {
        let name = self.node.input.get(pos)?.as_str();
        match *self.literals.get(name)? {
            Literal::Float(v) => Some(f64::from(v)),
            Literal::Tensor(t) => {
                if t.dims.iter().product::<i64>() != 1 {
                    return None;
                }
                float_tensor::<f64>(t, name, &DataDir(None))
                    .ok()?
                    .iter()
                    .next()
                    .copied()
            }
        }
    }
}

/// The first pass over the needed nodes: the data flow, the groups that patterns claim
/// (`pattern.rs`), and what stands in the way of importing the rest.
pub(super) fn first_pass<'a, F: Float>(
    graph: &Graph<'a>,
    reg: &Registry<F>,
    opts: &OnnxOptions,
) -> FirstPass<'a, F> {
    let proto = graph.proto;
    let mut literals: HashMap<&str, Literal<'_>> = graph
        .initializers
        .iter()
        .map(|(&k, &t)| (k, Literal::Tensor(t)))
        .collect();
    // the explained input and the held inputs are data
    let mut data: HashMap<&str, bool> = std::iter::once(graph.input.name.as_str())
        .chain(graph.held.iter().map(|(name, _)| *name))
        .map(|name| (name, true))
        .collect();
    // the data flow and the literal constants
    for &k in &graph.order {
        let node = &proto.node[k];
        let op = node.op_type.as_str();
        let reads_data = node.input.iter().any(|i| data.get(i.as_str()) == Some(&true));
        let def = reg.get(op).filter(|_| is_default_domain(node));
        let computes = reads_data && !def.is_some_and(|d| d.fold_always);
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            data.insert(o.as_str(), computes);
        }
        if op == "Constant" && is_default_domain(node) {
            if let (Some(out), Some(a)) = (node.output.first(), node.attribute.first()) {
                match (a.name.as_str(), a.t.as_ref()) {
                    ("value", Some(t)) => literals.insert(out.as_str(), Literal::Tensor(t)),
                    ("value_float", _) => literals.insert(out.as_str(), Literal::Float(a.f)),
                    _ => None,
                };
            }
        }
    }
    let mut problems = Vec::new();
    // the groups patterns claim, each node in one at most
    let mut groups = Vec::new();
    let mut claimed: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut refused_groups = std::collections::HashSet::new();
    {
        let around = Around {
            graph,
            data: &data,
            literals: &literals,
        };
        for &k in &graph.order {
            let node = &proto.node[k];
            if claimed.contains(&k) || !is_default_domain(node) {
                continue;
            }
            for matcher in reg.patterns(&node.op_type) {
                let Some(found) = matcher(&around, k) else {
                    continue;
                };
                let nodes = match &found {
                    Found::Group(g) => g.nodes.clone(),
                    Found::Refused { nodes, .. } => nodes.clone(),
                };
                if nodes.iter().any(|n| claimed.contains(n)) {
                    continue;
                }
                claimed.extend(nodes.iter().copied());
                match found {
                    Found::Group(g) => groups.push(g),
                    Found::Refused { reason, nodes } => {
                        refused_groups.extend(nodes);
                        problems.push(Problem {
                            index: k,
                            label: node_label(k, node),
                            op: node.op_type.clone(),
                            reason: Some(reason),
                        });
                    }
                }
                break;
            }
        }
    }
    // the checks of every other node
    for &k in &graph.order {
        let node = &proto.node[k];
        let op = node.op_type.as_str();
        if claimed.contains(&k) {
            continue;
        }
        let kinds: Vec<Kind> = node
            .input
            .iter()
            .map(|i| match (i.is_empty(), data.get(i.as_str())) {
                (true, _) => Kind::Absent,
                (false, Some(true)) => Kind::Data,
                _ => Kind::Const,
            })
            .collect();
        let reads_data = kinds.contains(&Kind::Data);
        let def = reg.get(op).filter(|_| is_default_domain(node));
        let label = node_label(k, node);
        let reason = match def {
            None => None,
            Some(def) if def.build.is_none() && !def.fold_always && reads_data => Some(
                "evaluated when the file is read, on constants only: here it acts on data"
                    .to_string(),
            ),
            Some(def) if def.fold.is_none() && !reads_data && kinds.contains(&Kind::Const) => Some(
                "every input is a constant, and this operator is not evaluated when the file is read (it is a layer \
                 on data)"
                    .to_string(),
            ),
            Some(def) => {
                let Some(check) = def.check else { continue };
                let pre = Pre {
                    graph,
                    node,
                    attrs: Attrs {
                        node: &label,
                        op,
                        list: &node.attribute,
                    },
                    opts,
                    kinds,
                    literals: &literals,
                };
                match check(&pre) {
                    Some(reason) => Some(reason),
                    None => continue,
                }
            }
        };
        let op = if is_default_domain(node) {
            op.to_string()
        } else {
            format!("{}::{op}", node.domain)
        };
        problems.push(Problem {
            index: k,
            label,
            op,
            reason,
        });
    }
    FirstPass {
        problems,
        groups,
        refused_groups,
    }
}

/// What the first pass finds.
pub(super) struct FirstPass<'a, F: Float> {
    pub(super) problems: Vec<Problem>,
    /// The groups that patterns claim.
    pub(super) groups: Vec<Group<'a, F>>,
    /// The nodes of subgraphs refused as a whole (their anchor is among the problems).
    pub(super) refused_groups: std::collections::HashSet<usize>,
}

/// The error for everything that stands in the way: one problem as it is; several as one
/// list — each operator without an entry with its count and first node, then each refused
/// node with why — naming the first of them.
pub(super) fn refusal(mut problems: Vec<Problem>) -> Error {
    problems.sort_by_key(|p| p.index);
    if let [one] = problems.as_slice() {
        if let Some(reason) = &one.reason {
            return unsupported(&one.label, &one.op, reason.clone());
        }
    }
    // operators without an entry: (op, count, first node)
    let mut unknown: Vec<(&str, usize, &str)> = Vec::new();
    for p in problems.iter().filter(|p| p.reason.is_none()) {
        match unknown.iter_mut().find(|(op, _, _)| *op == p.op) {
            Some(entry) => entry.1 += 1,
            None => unknown.push((&p.op, 1, &p.label)),
        }
    }
    let refused: Vec<&Problem> = problems.iter().filter(|p| p.reason.is_some()).collect();
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|(op, n, first)| format!("{op} ×{n} (first: {first:?})"))
            .collect();
        parts.push(format!(
            "the model uses {} operator(s) without a layer here: {}",
            unknown.len(),
            list.join(", ")
        ));
    }
    if !refused.is_empty() {
        const SHOWN: usize = 8;
        let mut list: Vec<String> = refused
            .iter()
            .take(SHOWN)
            .map(|p| {
                format!(
                    "{} {:?} ({})",
                    p.op,
                    p.label,
                    p.reason.as_deref().unwrap_or_default()
                )
            })
            .collect();
        if refused.len() > SHOWN {
            list.push(format!("and {} more", refused.len() - SHOWN));
        }
        parts.push(format!(
            "{} node(s) cannot be imported as they are: {}",
            refused.len(),
            list.join("; ")
        ));
    }
    match problems.iter().find(|p| p.reason.is_none()).or(problems.first()) {
        Some(first) => unsupported(&first.label, &first.op, parts.join("; and ")),
        None => unsupported("ONNX graph", "", "nothing"),
    }
}
