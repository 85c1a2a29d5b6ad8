//! The graph around the nodes: which tensor is the input and which the explained output,
//! which nodes the output needs (in a topological order), and who reads each tensor.

use super::decode::{fixed_input_shape, held_input_shape, input_shape, is_int_input};
use super::proto::{GraphProto, NodeProto, TensorProto, ValueInfoProto};
use super::OnnxOptions;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// What the importer knows of the graph before it looks at any value.
pub(super) struct Graph<'a> {
    pub(super) proto: &'a GraphProto,
    pub(super) initializers: HashMap<&'a str, &'a TensorProto>,
    /// The one data input.
    pub(super) input: &'a ValueInfoProto,
    /// Its per-sample shape (declared, or given in the options).
    pub(super) input_shape: Vec<usize>,
    /// Whether it holds integers (token ids, which the network takes as floats).
    pub(super) int_input: bool,
    /// Per tensor, the needed node that produces it.
    pub(super) producer: HashMap<&'a str, usize>,
    /// The other data inputs that the output needs, in the file's order, with their
    /// declared per-sample shapes: the network's held inputs.
    pub(super) held: Vec<(&'a str, Vec<usize>)>,
    /// The data inputs held at a value ([`OnnxOptions::fixed_inputs`]) that the output
    /// needs, with their per-sample shapes and their index in the options.
    pub(super) fixed: Vec<(&'a ValueInfoProto, Vec<usize>, usize)>,
    /// The tensor explained: the graph output (or the one the options name).
    pub(super) output: &'a str,
    /// The nodes the output needs, in a topological order (indices into `proto.node`).
    pub(super) order: Vec<usize>,
    /// Per tensor, the needed nodes that read it.
    pub(super) readers: HashMap<&'a str, Vec<usize>>,
    /// The default domain's operator set version.
    pub(super) opset: i64,
}

impl<'a> Graph<'a> {
    /// Finds the inputs and the output and orders the nodes the output needs.
    ///
    /// # Errors
    /// [`Error::Format`] for no data input, several outputs (none named), an input shape
    /// that is not known, a tensor produced twice or a cycle; [`Error::OnnxInput`] for an
    /// explained input name that no data input has, or a held input whose per-sample shape
    /// is not fixed; [`Error::MissingTensor`] for a tensor nothing produces.
    pub(super) fn new(proto: &'a GraphProto, opset: i64, opts: &OnnxOptions) -> Result<Self> {
        let initializers: HashMap<&str, &TensorProto> =
            proto.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        let data_inputs: Vec<&ValueInfoProto> = proto
            .input
            .iter()
            .filter(|v| !initializers.contains_key(v.name.as_str()))
            .collect();
        let names = || data_inputs.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
        // the explained input: the one named in the options, else the first
        let input = match &opts.input {
            Some(name) => data_inputs
                .iter()
                .copied()
                .find(|v| &v.name == name)
                .ok_or_else(|| Error::OnnxInput {
                    name: name.clone(),
                    reason: "no data input of the graph has this name (OnnxOptions::input)".into(),
                    inputs: names(),
                })?,
            None => data_inputs.first().copied().ok_or_else(|| Error::Format {
                what: "ONNX graph".into(),
                reason: "the graph has no data input (every input is an initializer)".into(),
            })?,
        };
        let output: &str = match (&opts.output, proto.output.as_slice()) {
            (Some(name), outs) => outs
                .iter()
                .map(|o| o.name.as_str())
                .find(|o| o == name)
                .or_else(|| {
                    proto
                        .node
                        .iter()
                        .flat_map(|n| n.output.iter())
                        .map(String::as_str)
                        .find(|o| o == name)
                })
                .ok_or_else(|| Error::Format {
                    what: "ONNX graph".into(),
                    reason: format!(
                        "no graph output or node output is named {name:?}; the graph outputs are {:?}",
                        outs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>()
                    ),
                })?,
            (None, [one]) => one.name.as_str(),
            (None, outs) => {
                return Err(Error::Format {
                    what: "ONNX graph".into(),
                    reason: format!(
                        "the graph has {} outputs {:?}; name the one to explain with OnnxOptions::output",
                        outs.len(),
                        outs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>()
                    ),
                })
            }
        };
        let input_shape = input_shape(input, opts.input_shape.as_deref())?;
        let inputs: Vec<&str> = data_inputs.iter().map(|v| v.name.as_str()).collect();
        let order = needed_nodes(proto, output, &inputs, &initializers)?;
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        for &k in &order {
            for i in proto.node[k].input.iter().filter(|i| !i.is_empty()) {
                let entry = readers.entry(i.as_str()).or_default();
                if !entry.contains(&k) {
                    entry.push(k);
                }
            }
        }
        // inputs held at a value: named data inputs other than the explained one
        let mut fixed = Vec::new();
        for (k, (name, _)) in opts.fixed_inputs.iter().enumerate() {
            let err = |reason: &str| Error::OnnxInput {
                name: name.clone(),
                reason: reason.into(),
                inputs: names(),
            };
            let v = data_inputs
                .iter()
                .copied()
                .find(|v| &v.name == name)
                .ok_or_else(|| err("no data input of the graph has this name (OnnxOptions::fixed_inputs)"))?;
            if v.name == input.name {
                return Err(err(
                    "the explained input cannot be held fixed (OnnxOptions::fixed_inputs)",
                ));
            }
            if readers.contains_key(v.name.as_str()) || v.name == output {
                let shape = fixed_input_shape(v, input, &input_shape).map_err(|reason| Error::OnnxInput {
                    name: name.clone(),
                    reason,
                    inputs: names(),
                })?;
                fixed.push((v, shape, k));
            }
        }
        // every other data input that the output needs is held, with a fixed shape
        let mut held = Vec::new();
        for v in data_inputs.iter().filter(|v| v.name != input.name) {
            if !readers.contains_key(v.name.as_str()) && v.name != output
                || opts.fixed_inputs.iter().any(|(n, _)| n == &v.name)
            {
                continue;
            }
            let shape = held_input_shape(v).map_err(|reason| Error::OnnxInput {
                name: v.name.clone(),
                reason,
                inputs: names(),
            })?;
            held.push((v.name.as_str(), shape));
        }
        let producer = order
            .iter()
            .flat_map(|&k| {
                proto.node[k]
                    .output
                    .iter()
                    .filter(|o| !o.is_empty())
                    .map(move |o| (o.as_str(), k))
            })
            .collect();
        Ok(Graph {
            proto,
            initializers,
            input,
            input_shape,
            int_input: is_int_input(input),
            producer,
            held,
            fixed,
            output,
            order,
            readers,
            opset,
        })
    }

    /// The needed nodes that read a tensor.
    pub(super) fn readers_of(&self, tensor: &str) -> impl Iterator<Item = &'a NodeProto> + '_ {
        let proto = self.proto;
        self.readers
            .get(tensor)
            .into_iter()
            .flatten()
            .map(move |&k| &proto.node[k])
    }

    /// The needed node that produces a tensor, if any (not an input or initializer).
    pub(super) fn producer_of(&self, tensor: &str) -> Option<(usize, &'a NodeProto)> {
        let proto = self.proto;
        self.producer.get(tensor).map(|&k| (k, &proto.node[k]))
    }

    /// Whether a node's output `pos` is read by anything (a node, or the explained output).
    pub(super) fn used(&self, node: &NodeProto, pos: usize) -> bool {
        node.output
            .get(pos)
            .filter(|o| !o.is_empty())
            .is_some_and(|o| o == self.output || self.readers.get(o.as_str()).is_some_and(|r| !r.is_empty()))
    }

    /// Whether a node's output is read only by `op` nodes, each as its input 0 (and is not
    /// the explained output).
    pub(super) fn only_read_by(&self, node: &NodeProto, op: &str) -> bool {
        let Some(out) = node.output.first().filter(|o| !o.is_empty()) else {
            return false;
        };
        let mut readers = self.readers_of(out).peekable();
        out != self.output
            && readers.peek().is_some()
            && readers.all(|r| r.op_type == op && is_default_domain(r) && r.input.first() == Some(out))
    }

    /// Whether a node's output is the explained output, directly or through identities.
    pub(super) fn trailing(&self, node: &NodeProto) -> bool {
        let mut t = match node.output.first() {
            Some(t) => t.as_str(),
            None => return false,
        };
        for _ in 0..8 {
            if t == self.output {
                return true;
            }
            let readers = self.readers.get(t).map(Vec::as_slice).unwrap_or_default();
            match readers {
                [r] if matches!(
                    self.proto.node[*r].op_type.as_str(),
                    "Identity" | "Cast" | "Flatten" | "Reshape"
                ) =>
                {
                    t = match self.proto.node[*r].output.first() {
                        Some(o) => o.as_str(),
                        None => return false,
                    };
                }
                _ => return false,
            }
        }
        false
    }
}

/// Whether a node is in ONNX's default operator domain.
pub(super) fn is_default_domain(node: &NodeProto) -> bool {
    node.domain.is_empty() || node.domain == "ai.onnx"
}

/// The bytes of tensor data the graph stores: initializers and `Constant` values, inline or
/// in external data files (their declared lengths, checked when they are read).
pub(super) fn stored_bytes(graph: &GraphProto) -> usize {
    let tensor = |t: &TensorProto| -> usize {
        let external = t.external_data.iter().find(|e| e.key == "length").map_or_else(
            || {
                if t.external_data.is_empty() {
                    0
                } else {
                    // no length: the rest of the file, at most the tensor's own size
                    t.dims
                        .iter()
                        .try_fold(8usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?))
                        .unwrap_or(usize::MAX)
                }
            },
            |e| e.value.parse::<usize>().unwrap_or(usize::MAX),
        );
        t.raw_data
            .len()
            .saturating_add(4 * (t.float_data.len() + t.int32_data.len()))
            .saturating_add(8 * (t.int64_data.len() + t.double_data.len()))
            .saturating_add(external)
    };
    let constants = graph
        .node
        .iter()
        .flat_map(|n| n.attribute.iter())
        .filter_map(|a| a.t.as_ref());
    graph
        .initializer
        .iter()
        .chain(constants)
        .fold(0usize, |a, t| a.saturating_add(tensor(t)))
}

/// How errors name a node: its name, or `#index OpType` if it has none.
pub(super) fn node_label(index: usize, node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!("#{index} {}", node.op_type)
    } else {
        node.name.clone()
    }
}

/// The nodes the output depends on, in a topological order (the file's order where it
/// already is one).
fn needed_nodes(
    graph: &GraphProto,
    output: &str,
    inputs: &[&str],
    initializers: &HashMap<&str, &TensorProto>,
) -> Result<Vec<usize>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (k, node) in graph.node.iter().enumerate() {
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            if producer.insert(o.as_str(), k).is_some()
                || inputs.contains(&o.as_str())
                || initializers.contains_key(o.as_str())
            {
                return Err(Error::Format {
                    what: node_label(k, node),
                    reason: format!("tensor {o:?} is produced more than once"),
                });
            }
        }
    }
    // walk back from the output
    let mut needed = vec![false; graph.node.len()];
    // (remembering who asked for each tensor, for the error)
    let mut stack: Vec<(&str, Option<usize>)> = vec![(output, None)];
    while let Some((t, reader)) = stack.pop() {
        if let Some(&k) = producer.get(t) {
            if !std::mem::replace(&mut needed[k], true) {
                stack.extend(
                    graph.node[k]
                        .input
                        .iter()
                        .filter(|i| !i.is_empty())
                        .map(|i| (i.as_str(), Some(k))),
                );
            }
        } else if !inputs.contains(&t) && !initializers.contains_key(t) {
            return Err(Error::MissingTensor {
                tensor: t.to_string(),
                node: reader.map_or_else(|| "the graph output".into(), |k| node_label(k, &graph.node[k])),
            });
        }
    }
    // Kahn's algorithm over the needed nodes, lowest index first
    let mut pending: Vec<usize> = vec![0; graph.node.len()];
    let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
    for (k, node) in graph.node.iter().enumerate().filter(|(k, _)| needed[*k]) {
        let mut deps: Vec<usize> = node
            .input
            .iter()
            .filter_map(|i| producer.get(i.as_str()).copied())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        pending[k] = deps.len();
        for d in deps {
            readers.entry(d).or_default().push(k);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..graph.node.len())
        .filter(|&k| needed[k] && pending[k] == 0)
        .collect();
    let mut order = Vec::new();
    while let Some(k) = ready.pop_first() {
        order.push(k);
        for &r in readers.get(&k).into_iter().flatten() {
            pending[r] -= 1;
            if pending[r] == 0 {
                ready.insert(r);
            }
        }
    }
    if order.len() != needed.iter().filter(|&&n| n).count() {
        return Err(Error::Format {
            what: "ONNX graph".into(),
            reason: "the nodes form a cycle".into(),
        });
    }
    Ok(order)
}
