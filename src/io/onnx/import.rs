//! The graph walk: which nodes the output needs, in a topological order; every operator
//! the model uses checked at once; constants folded; the rest mapped onto layers
//! (`layers.rs`).

use super::attrs::Attrs;
use super::proto::{GraphProto, NodeProto, TensorProto, ValueInfoProto};
use super::tensor::{declared_batch, float_tensor, input_shape, int_tensor, is_int, DataDir};
use super::values::{self, Const, Data, Sym, Value};
use super::{OnnxModel, OnnxOptions};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::{at_node, Builder, Op};
use crate::network::NodeId;
use ndarray::{ArcArray, ArrayD, IxDyn};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Operators evaluated at load time when their inputs are constants (shape arithmetic,
/// weights reshaped or cast by the exporter).
const FOLDED: &[&str] = &[
    "Constant",
    "ConstantOfShape",
    "Shape",
    "Size",
    "Gather",
    "Slice",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Cast",
    "CastLike",
    "Reshape",
    "Transpose",
    "Identity",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Neg",
    "Sqrt",
    "Reciprocal",
    "Abs",
    "Floor",
    "Ceil",
    "Equal",
    "Less",
    "Greater",
    "Max",
    "Min",
    "Mod",
    "Not",
    "Where",
    "Expand",
    "Range",
    "Flatten",
    "Dropout",
    "Split",
];

/// Operators that become layers (or vanish: identities, a trailing softmax).
const LAYERS: &[&str] = &[
    "Conv",
    "Sum",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Gelu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Pad",
    "Slice",
    "Split",
    "BatchNormalization",
    "LRN",
    "ImageScaler",
    "Dropout",
    "Identity",
    "Cast",
    "Softmax",
    "LogSoftmax",
    "Shape",
];

/// The bytes of tensor data the graph stores: initializers and `Constant` values, inline or
/// in external data files (their declared lengths, checked when they are read).
fn stored_bytes(graph: &GraphProto) -> usize {
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
fn node_label(index: usize, node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!("#{index} {}", node.op_type)
    } else {
        node.name.clone()
    }
}

pub(super) fn unsupported(node: &str, op: &str, reason: impl Into<String>) -> Error {
    Error::UnsupportedOperator {
        node: node.to_string(),
        op: op.to_string(),
        reason: reason.into(),
    }
}

pub(super) struct Importer<'a, F: Float> {
    pub(super) graph: &'a GraphProto,
    pub(super) dir: DataDir,
    pub(super) opts: &'a OnnxOptions,
    pub(super) builder: Builder<F>,
    values: HashMap<&'a str, Rc<Value<F>>>,
    initializers: HashMap<&'a str, &'a TensorProto>,
    /// Per tensor, the nodes (indices into the graph) that read it, among those needed.
    pub(super) readers: HashMap<&'a str, Vec<usize>>,
    /// Nodes already handled as part of another (an `Add` taken as a bias).
    pub(super) absorbed: HashSet<usize>,
    /// The batch size the graph input declares, if it is a literal (static exports).
    pub(super) batch: Option<i64>,
    pub(super) notes: Vec<String>,
    /// The tensor explained: the graph output (or the one the options name).
    pub(super) output: &'a str,
    pub(super) opset: i64,
    /// Layer parameters by tensor name and whether transposed: decoded once, shared by
    /// every node that reads them.
    weights: HashMap<(&'a str, bool), ArcArray<F, IxDyn>>,
}

/// Reads the graph input and output and decides which nodes are needed, in which order.
pub(super) fn import<F: Float>(
    graph: &GraphProto,
    opset: i64,
    dir: DataDir,
    opts: &OnnxOptions,
) -> Result<OnnxModel<F>> {
    let initializers: HashMap<&str, &TensorProto> =
        graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let data_inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|v| !initializers.contains_key(v.name.as_str()))
        .collect();
    let input = match data_inputs.as_slice() {
        [one] => *one,
        more => {
            return Err(Error::Format {
                what: "ONNX graph".into(),
                reason: format!(
                    "expected exactly one data input (besides initializers), found {}: {:?}",
                    more.len(),
                    more.iter().map(|v| v.name.as_str()).collect::<Vec<_>>()
                ),
            })
        }
    };
    let output: &str = match (&opts.output, graph.output.as_slice()) {
        (Some(name), outs) => outs
            .iter()
            .map(|o| o.name.as_str())
            .find(|o| o == name)
            .or_else(|| {
                graph
                    .node
                    .iter()
                    .flat_map(|n| n.output.iter())
                    .map(String::as_str)
                    .find(|o| o == name)
            })
            .ok_or_else(|| Error::Format {
                what: "ONNX graph".into(),
                reason: format!("no graph output or node output is named {name:?}"),
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
    let shape = input_shape(input, opts.input_shape.as_deref())?;
    let order = needed_nodes(graph, output, input.name.as_str(), &initializers)?;
    check_operators(graph, &order)?;
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for &k in &order {
        for i in graph.node[k].input.iter().filter(|i| !i.is_empty()) {
            let entry = readers.entry(i.as_str()).or_insert_with(|| Vec::with_capacity(1));
            if !entry.contains(&k) {
                entry.push(k);
            }
        }
    }
    let mut builder = Builder::new(&shape)?;
    builder.limit_weights(stored_bytes(graph));
    let mut imp = Importer {
        graph,
        dir,
        opts,
        values: HashMap::new(),
        initializers,
        readers,
        absorbed: HashSet::new(),
        batch: declared_batch(input),
        notes: Vec::new(),
        output,
        opset,
        builder,
        weights: HashMap::new(),
    };
    let id = imp.builder.input();
    imp.values.insert(
        input.name.as_str(),
        Rc::new(Value::Data(Data { id, shape, pad: None })),
    );
    for &k in &order {
        if imp.absorbed.contains(&k) {
            continue;
        }
        let node = &graph.node[k];
        let label = node_label(k, node);
        imp.node(&label, node).map_err(at_node(&label))?;
    }
    let out = match imp.get(output, "the graph output")?.as_ref() {
        Value::Data(d) => d.clone(),
        Value::Const(_) => {
            return Err(Error::Format {
                what: "ONNX graph".into(),
                reason: format!("the output {output:?} does not depend on the input"),
            })
        }
    };
    let id = imp.materialize(&out, "output")?;
    if id == imp.builder.input() {
        return Err(Error::EmptyNetwork);
    }
    // the importer's tables are freed before the network is finished
    let (builder, notes) = imp.into_parts();
    let network = builder.finish_at(id, !opts.merge_batch_norm)?;
    Ok(OnnxModel {
        network,
        notes,
        input: input.name.clone(),
        output: output.to_string(),
    })
}

/// The nodes the output depends on, in a topological order (the file's order where it
/// already is one).
fn needed_nodes(
    graph: &GraphProto,
    output: &str,
    input: &str,
    initializers: &HashMap<&str, &TensorProto>,
) -> Result<Vec<usize>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (k, node) in graph.node.iter().enumerate() {
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            if producer.insert(o.as_str(), k).is_some() || o == input || initializers.contains_key(o.as_str())
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
        } else if t != input && !initializers.contains_key(t) {
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

/// Every operator the needed nodes use, checked at once: the error lists each unsupported
/// one with its count and first node, so that a user sees how far the model is from loading.
fn check_operators(graph: &GraphProto, order: &[usize]) -> Result<()> {
    let mut bad: Vec<(String, usize, String)> = Vec::new();
    for &k in order {
        let node = &graph.node[k];
        let op = node.op_type.as_str();
        let known = (node.domain.is_empty() || node.domain == "ai.onnx")
            && (FOLDED.contains(&op) || LAYERS.contains(&op));
        if known {
            continue;
        }
        let op = if node.domain.is_empty() {
            op.to_string()
        } else {
            format!("{}::{op}", node.domain)
        };
        match bad.iter_mut().find(|(o, _, _)| *o == op) {
            Some(entry) => entry.1 += 1,
            None => bad.push((op, 1, node_label(k, node))),
        }
    }
    let Some((op, _, node)) = bad.first().cloned() else {
        return Ok(());
    };
    let list: Vec<String> = bad
        .iter()
        .map(|(op, n, first)| format!("{op} ×{n} (first: {first:?})"))
        .collect();
    Err(unsupported(
        &node,
        &op,
        format!(
            "the model uses {} operator(s) without a layer here: {}",
            bad.len(),
            list.join(", ")
        ),
    ))
}

impl<'a, F: Float> Importer<'a, F> {
    /// The builder and the notes; the rest is dropped.
    fn into_parts(self) -> (Builder<F>, Vec<String>) {
        (self.builder, self.notes)
    }

    /// The value of a tensor (an initializer is decoded on first use).
    pub(super) fn get(&mut self, name: &'a str, node: &str) -> Result<Rc<Value<F>>> {
        if let Some(v) = self.values.get(name) {
            return Ok(Rc::clone(v));
        }
        let t = self
            .initializers
            .get(name)
            .copied()
            .ok_or_else(|| Error::MissingTensor {
                tensor: name.to_string(),
                node: node.to_string(),
            })?;
        let c = self.decode(t, name)?;
        let v = Rc::new(Value::Const(c));
        self.values.insert(name, Rc::clone(&v));
        Ok(v)
    }

    fn decode(&self, t: &TensorProto, name: &str) -> Result<Const<F>> {
        if is_int(t) {
            let (shape, v) = int_tensor(t, name, &self.dir)?;
            Ok(Const::Int(
                ArrayD::from_shape_vec(IxDyn(&shape), v.into_iter().map(Sym::Int).collect())
                    .expect("checked length"),
            ))
        } else {
            Ok(Const::Float(float_tensor::<F>(t, name, &self.dir)?))
        }
    }

    /// Input `pos` of a node, if present.
    pub(super) fn input(
        &mut self,
        node: &'a NodeProto,
        pos: usize,
        label: &str,
    ) -> Result<Option<Rc<Value<F>>>> {
        match node.input.get(pos).filter(|s| !s.is_empty()) {
            Some(name) => self.get(name.as_str(), label).map(Some),
            None => Ok(None),
        }
    }

    /// Input `pos`, which must be present.
    pub(super) fn required(&mut self, node: &'a NodeProto, pos: usize, label: &str) -> Result<Rc<Value<F>>> {
        self.input(node, pos, label)?
            .ok_or_else(|| unsupported(label, &node.op_type, format!("input {pos} is missing")))
    }

    /// Input `pos` as a layer parameter, as stored or `transposed` (axes reversed), shared:
    /// a tensor that many nodes read the same way is decoded and stored once.
    pub(super) fn weight(
        &mut self,
        node: &'a NodeProto,
        pos: usize,
        label: &str,
        transposed: bool,
    ) -> Result<Option<ArcArray<F, IxDyn>>> {
        let Some(name) = node.input.get(pos).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if let Some(w) = self.weights.get(&(name.as_str(), transposed)) {
            return Ok(Some(w.clone()));
        }
        let Some(c) = self.constant(node, pos, label)? else {
            return Ok(None);
        };
        let w = c.floats()?;
        let w = if transposed {
            w.reversed_axes().as_standard_layout().into_owned()
        } else {
            w
        }
        .into_shared();
        self.weights.insert((name.as_str(), transposed), w.clone());
        Ok(Some(w))
    }

    /// Input `pos` as a constant.
    pub(super) fn constant(
        &mut self,
        node: &'a NodeProto,
        pos: usize,
        label: &str,
    ) -> Result<Option<Const<F>>> {
        match self.input(node, pos, label)?.as_deref() {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some(c.clone())),
            Some(Value::Data(_)) => Err(unsupported(
                label,
                &node.op_type,
                format!("input {pos} must be a constant (a weight), but it depends on the network input"),
            )),
        }
    }

    /// Sets output `pos` of a node.
    pub(super) fn set(&mut self, node: &'a NodeProto, pos: usize, v: Value<F>) {
        if let Some(name) = node.output.get(pos).filter(|o| !o.is_empty()) {
            self.values.insert(name.as_str(), Rc::new(v));
        }
    }

    /// Whether a node's output `pos` is read by anything (a node, or the explained output).
    pub(super) fn used(&self, node: &NodeProto, pos: usize) -> bool {
        node.output
            .get(pos)
            .filter(|o| !o.is_empty())
            .is_some_and(|o| o == self.output || self.readers.get(o.as_str()).is_some_and(|r| !r.is_empty()))
    }

    /// A fresh node name for the network, based on the ONNX node's.
    pub(super) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.builder.has_name(&name) || name == "input" {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    /// Adds a layer reading `inputs`, named after the ONNX node, and returns its data value.
    pub(super) fn layer(&mut self, label: &str, op: Op<F>, inputs: &[NodeId]) -> Result<Data> {
        let name = self.fresh(label);
        let id = self.builder.add(&name, label, op, inputs)?;
        Ok(Data {
            id,
            shape: self.builder.shape_of(id).to_vec(),
            pad: None,
        })
    }

    /// The node computing a data value, with any pending padding applied first.
    pub(super) fn materialize(&mut self, d: &Data, label: &str) -> Result<NodeId> {
        match &d.pad {
            None => Ok(d.id),
            Some(pads) => {
                let layer = Box::new(crate::layers::Pad::new(pads));
                Ok(self.layer(&format!("{label}/pad"), Op::Layer(layer), &[d.id])?.id)
            }
        }
    }

    /// One node.
    fn node(&mut self, label: &str, node: &'a NodeProto) -> Result<()> {
        let op = node.op_type.as_str();
        let attrs = Attrs {
            node: label,
            op,
            list: &node.attribute,
        };
        if op == "Constant" {
            let c = self.constant_node(label, &attrs)?;
            self.set(node, 0, Value::Const(c));
            return Ok(());
        }
        // every present input is a constant: evaluate the node now
        let mut all_const = true;
        for pos in 0..node.input.len() {
            if let Some(v) = self.input(node, pos, label)? {
                all_const &= matches!(*v, Value::Const(_));
            }
        }
        if (all_const && !node.input.is_empty() && FOLDED.contains(&op)) || op == "Shape" || op == "Size" {
            return self.fold(label, node, &attrs);
        }
        if !LAYERS.contains(&op) {
            return Err(unsupported(
                label,
                op,
                "this operator is only supported on constants (it is evaluated when the file is read), \
                 but here it acts on data",
            ));
        }
        self.data_node(label, node, &attrs)
    }

    /// A `Constant` node's value.
    fn constant_node(&self, label: &str, attrs: &Attrs<'_>) -> Result<Const<F>> {
        let a = attrs
            .list
            .first()
            .ok_or_else(|| unsupported(label, "Constant", "no value attribute"))?;
        let scalar = |v: Vec<Sym>, shape: &[usize]| {
            Const::Int(ArrayD::from_shape_vec(IxDyn(shape), v).expect("shape"))
        };
        Ok(match a.name.as_str() {
            "value" => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| unsupported(label, "Constant", "value without a tensor"))?;
                self.decode(t, label)?
            }
            "value_float" => Const::Float(ArrayD::from_elem(IxDyn(&[]), F::lit(f64::from(a.f)))),
            "value_floats" => Const::Float(
                ArrayD::from_shape_vec(
                    IxDyn(&[a.floats.len()]),
                    a.floats.iter().map(|&v| F::lit(f64::from(v))).collect(),
                )
                .expect("1-D"),
            ),
            "value_int" => scalar(vec![Sym::Int(a.i)], &[]),
            "value_ints" => scalar(a.ints.iter().map(|&v| Sym::Int(v)).collect(), &[a.ints.len()]),
            other => return Err(unsupported(label, "Constant", format!("attribute {other:?}"))),
        })
    }

    /// A node whose inputs are all constants (or `Shape` of anything).
    fn fold(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<()> {
        let op = node.op_type.as_str();
        let c = |imp: &mut Self, pos: usize| -> Result<Const<F>> {
            imp.constant(node, pos, label)?
                .ok_or_else(|| unsupported(label, op, format!("input {pos} is missing")))
        };
        let list = |imp: &mut Self, pos: usize| -> Result<Option<Vec<i64>>> {
            imp.constant(node, pos, label)?
                .map(|c| c.int_list(64))
                .transpose()
        };
        let value: Const<F> = match op {
            "Shape" | "Size" => {
                let start = attrs.int("start", 0)?;
                let end = attrs.get("end").map(|a| a.i);
                let shape = match self.required(node, 0, label)?.as_ref() {
                    Value::Data(d) => values::shape_of_data::<F>(&d.shape, start, end)?,
                    Value::Const(c) => values::shape_of_const(c, start, end)?,
                };
                if op == "Size" {
                    let all = shape_product(&shape)?;
                    Const::Int(ArrayD::from_elem(IxDyn(&[]), all))
                } else {
                    shape
                }
            }
            "Identity" | "Dropout" => c(self, 0)?,
            "Cast" | "CastLike" => {
                let v = c(self, 0)?;
                let to = if op == "CastLike" {
                    if matches!(c(self, 1)?, Const::Int(_)) {
                        7
                    } else {
                        1
                    }
                } else {
                    attrs.int("to", 1)? as i32
                };
                match to {
                    1 | 10 | 11 | 16 => Const::Float(v.floats()?),
                    6 | 7 | 2 | 3 | 9 | 12 | 13 => match v {
                        Const::Int(a) => Const::Int(a),
                        Const::Float(a) => Const::Int(a.mapv(|f| Sym::Int(f.as_f64().trunc() as i64))),
                    },
                    other => return Err(unsupported(label, op, format!("cast to data type {other}"))),
                }
            }
            "ConstantOfShape" => {
                let shape = to_shape(&list(self, 0)?.unwrap_or_default())?;
                values::check_size(&shape)?;
                match attrs.get("value").and_then(|a| a.t.as_ref()) {
                    Some(t) => {
                        let v = self.decode(t, label)?;
                        match v {
                            Const::Float(a) => {
                                let x = *a.iter().next().unwrap_or(&F::zero());
                                Const::Float(ArrayD::from_elem(IxDyn(&shape), x))
                            }
                            Const::Int(a) => {
                                let x = *a.iter().next().unwrap_or(&Sym::Int(0));
                                Const::Int(ArrayD::from_elem(IxDyn(&shape), x))
                            }
                        }
                    }
                    None => Const::Float(ArrayD::zeros(IxDyn(&shape))),
                }
            }
            "Gather" => {
                let (data, idx) = (c(self, 0)?, c(self, 1)?);
                values::gather(&data, &idx, attrs.int("axis", 0)?)?
            }
            "Slice" => {
                let data = c(self, 0)?;
                if self.opset < 10 {
                    let get = |n: &str| attrs.get(n).map(|a| a.ints.clone());
                    let (s, e) = (get("starts").unwrap_or_default(), get("ends").unwrap_or_default());
                    values::slice(&data, &s, &e, get("axes").as_deref(), None)?
                } else {
                    let s = list(self, 1)?.unwrap_or_default();
                    let e = list(self, 2)?.unwrap_or_default();
                    let axes = list(self, 3)?;
                    let steps = list(self, 4)?;
                    values::slice(&data, &s, &e, axes.as_deref(), steps.as_deref())?
                }
            }
            "Unsqueeze" | "Squeeze" => {
                let data = c(self, 0)?;
                let axes = if self.opset < 13 {
                    attrs.get("axes").map(|a| a.ints.clone())
                } else {
                    list(self, 1)?
                };
                let shape = if op == "Unsqueeze" {
                    values::unsqueeze_shape(data.shape(), &axes.unwrap_or_default())?
                } else {
                    values::squeeze_shape(data.shape(), axes.as_deref())?
                };
                values::reshape_const(&data, &shape)?
            }
            "Concat" => {
                let mut parts = Vec::new();
                for pos in 0..node.input.len() {
                    if let Some(p) = self.constant(node, pos, label)? {
                        parts.push(p);
                    }
                }
                let refs: Vec<&Const<F>> = parts.iter().collect();
                values::concat(&refs, attrs.int("axis", 0)?)?
            }
            "Reshape" => {
                let data = c(self, 0)?;
                let target = list(self, 1)?.unwrap_or_default();
                let shape = values::resolve_reshape(data.shape(), &target, attrs.int("allowzero", 0)? != 0)?;
                values::reshape_const(&data, &shape)?
            }
            "Flatten" => {
                let data = c(self, 0)?;
                let ax = values::axis(attrs.int("axis", 1)?, data.shape().len() + 1)?;
                let (a, b): (usize, usize) = (
                    data.shape()[..ax].iter().product(),
                    data.shape()[ax..].iter().product(),
                );
                values::reshape_const(&data, &[a, b])?
            }
            "Transpose" => {
                let data = c(self, 0)?;
                values::transpose_const(&data, attrs.get("perm").map(|a| a.ints.as_slice()))?
            }
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Equal" | "Less" | "Greater" | "Max" | "Min" | "Mod" => {
                let mut acc = c(self, 0)?;
                for pos in 1..node.input.len() {
                    let b = c(self, pos)?;
                    acc = values::binary(op, &acc, &b)?;
                }
                acc
            }
            "Neg" | "Sqrt" | "Reciprocal" | "Abs" | "Floor" | "Ceil" | "Not" => {
                let v = c(self, 0)?;
                match (op, v) {
                    ("Neg", Const::Int(a)) => Const::Int(a.mapv(|s| match s {
                        Sym::Int(v) => Sym::Int(-v),
                        b => b,
                    })),
                    ("Not", v) => Const::Int(v.ints()?.mapv(|s| Sym::Int(i64::from(s.int() == Some(0))))),
                    ("Abs" | "Floor" | "Ceil", Const::Int(a)) => Const::Int(a.mapv(|s| match s {
                        Sym::Int(v) if op == "Abs" => Sym::Int(v.abs()),
                        s => s,
                    })),
                    (_, v) => {
                        let a = v.floats()?;
                        Const::Float(a.mapv(|x| match op {
                            "Neg" => -x,
                            "Sqrt" => x.sqrt(),
                            "Reciprocal" => F::one() / x,
                            "Abs" => x.abs(),
                            "Floor" => x.floor(),
                            _ => x.ceil(),
                        }))
                    }
                }
            }
            "Where" => {
                let (cond, a, b) = (c(self, 0)?, c(self, 1)?, c(self, 2)?);
                values::where_(&cond, &a, &b)?
            }
            "Expand" => {
                let data = c(self, 0)?;
                let shape = to_shape(&list(self, 1)?.unwrap_or_default())?;
                values::expand(&data, &shape)?
            }
            "Range" => {
                let (s, l, d) = (c(self, 0)?, c(self, 1)?, c(self, 2)?);
                values::range(&s, &l, &d)?
            }
            "Split" => return self.fold_split(label, node, attrs),
            other => return Err(unsupported(label, other, "cannot be evaluated on constants")),
        };
        if let Const::Float(a) = &value {
            if let Some(i) = a.iter().position(|v| !v.is_finite()) {
                if op != "ConstantOfShape" {
                    return Err(Error::Format {
                        what: label.to_string(),
                        reason: format!("folding {op} gave a non-finite value at index {i}"),
                    });
                }
            }
        }
        if value.shape().len() > values::MAX_FOLDED_RANK {
            return Err(Error::Format {
                what: label.to_string(),
                reason: format!(
                    "folding {op} gave a constant of rank {} (at most {})",
                    value.shape().len(),
                    values::MAX_FOLDED_RANK
                ),
            });
        }
        self.set(node, 0, Value::Const(value));
        Ok(())
    }

    fn fold_split(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<()> {
        let data = self
            .constant(node, 0, label)?
            .ok_or_else(|| unsupported(label, "Split", "no input"))?;
        let ax = values::axis(attrs.int("axis", 0)?, data.shape().len())?;
        let len = data.shape()[ax];
        let outs = node.output.len();
        let sizes: Vec<usize> = match (attrs.get("split"), self.constant(node, 1, label)?) {
            (Some(a), _) => to_shape(&a.ints)?,
            (None, Some(c)) => to_shape(&c.int_list(64)?)?,
            (None, None) if outs > 0 && len % outs == 0 => vec![len / outs; outs],
            _ => return Err(unsupported(label, "Split", "sizes cannot be inferred")),
        };
        let total = sizes.iter().try_fold(0usize, |t, &s| t.checked_add(s));
        if total != Some(len) || sizes.len() != outs {
            return Err(unsupported(
                label,
                "Split",
                format!("sizes {sizes:?} for length {len}"),
            ));
        }
        let mut start = 0;
        for (pos, &s) in sizes.iter().enumerate() {
            let part = values::take_rows(&data, ax, start, s);
            self.set(node, pos, Value::Const(part));
            start += s;
        }
        Ok(())
    }
}

/// A list of non-negative sizes.
fn to_shape(v: &[i64]) -> Result<Vec<usize>> {
    v.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| Error::Format {
                what: "constant folding".into(),
                reason: format!("negative size {d} in {v:?}"),
            })
        })
        .collect()
}

/// The product of a shape's entries (symbolic if the batch is among them).
fn shape_product<F: Float>(shape: &Const<F>) -> Result<Sym> {
    let v = shape.ints()?;
    let mut acc = 1i64;
    for s in v.iter() {
        match s {
            Sym::Int(d) => acc = acc.saturating_mul(*d),
            Sym::Batch => {
                return Err(Error::Format {
                    what: "constant folding".into(),
                    reason: "Size of a tensor whose size depends on the batch".into(),
                })
            }
        }
    }
    Ok(Sym::Int(acc))
}
