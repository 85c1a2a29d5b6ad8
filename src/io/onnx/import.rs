//! The walk over the nodes the output needs: the first pass (`check.rs`) lists what cannot
//! be imported; then every node, in order, is folded (all inputs constant) or built into
//! layers by its registry entry (`ops/`). A node refused on the way is listed with the
//! first pass's findings and the walk goes on past it (whatever reads its outputs is
//! skipped), so that one error names everything that stands in the way.

use super::attrs::Attrs;
use super::check::{self, Problem};
use super::decode::{declared_batch, float_tensor, int_tensor, is_int, DataDir};
use super::graph::{node_label, stored_bytes, Graph};
use super::ops::{registry, Ctx, Registry};
use super::pattern::Group;
use super::proto::{NodeProto, TensorProto};
use super::values::{Const, Sym, Value};
use super::view::{Data, View};
use super::{OnnxModel, OnnxOptions};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::{at_node, Builder, Op};
use crate::network::NodeId;
use ndarray::{ArcArray, IxDyn};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// The error for a node that cannot be imported.
pub(super) fn unsupported(node: &str, op: &str, reason: impl Into<String>) -> Error {
    Error::UnsupportedOperator {
        node: node.to_string(),
        op: op.to_string(),
        reason: reason.into(),
    }
}

/// The importer's state during the walk.
pub(super) struct Importer<'a, F: Float> {
    pub(super) g: &'a Graph<'a>,
    reg: &'a Registry<F>,
    pub(super) dir: DataDir,
    pub(super) opts: &'a OnnxOptions,
    pub(super) builder: Builder<F>,
    values: HashMap<&'a str, Rc<Value<F>>>,
    /// Nodes already handled as part of another (an `Add` taken as a bias).
    pub(super) absorbed: HashSet<usize>,
    /// The batch size the graph input declares, if it is a literal (static exports).
    pub(super) batch: Option<i64>,
    pub(super) notes: Vec<String>,
    /// Layer parameters by tensor name and whether transposed: decoded once, shared by
    /// every node that reads them.
    weights: HashMap<(&'a str, bool), ArcArray<F, IxDyn>>,
    /// `Permute` layers built for pending permutations: (node, permutation) → layer.
    pub(super) permuted: HashMap<(NodeId, Vec<usize>), NodeId>,
    /// `Reshape` layers built for layouts (`layout.rs`): (node, shape) → layer.
    pub(super) reshaped: HashMap<(NodeId, Vec<usize>), NodeId>,
}

/// Imports a graph: the first pass, the walk, the network.
pub(super) fn import<F: Float>(
    proto: &super::proto::GraphProto,
    opset: i64,
    dir: DataDir,
    opts: &OnnxOptions,
) -> Result<OnnxModel<F>> {
    let graph = Graph::new(proto, opset, opts)?;
    let reg = registry::<F>();
    let check::FirstPass {
        mut problems,
        groups,
        refused_groups,
    } = check::first_pass(&graph, &reg, opts);
    // node → the group it belongs to
    let group_of: HashMap<usize, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.nodes.iter().map(move |&k| (k, i)))
        .collect();
    let mut builder = Builder::new(&graph.input_shape)?;
    builder.limit_weights(stored_bytes(proto));
    let mut imp = Importer {
        g: &graph,
        reg: &reg,
        dir,
        opts,
        builder,
        values: HashMap::new(),
        absorbed: HashSet::new(),
        batch: declared_batch(graph.input),
        notes: Vec::new(),
        weights: HashMap::new(),
        permuted: HashMap::new(),
        reshaped: HashMap::new(),
    };
    let id = imp.builder.input();
    imp.values.insert(
        graph.input.name.as_str(),
        Rc::new(Value::Data(Data::node(id, graph.input_shape.clone()))),
    );
    // the other data inputs the output reads: held inputs, bound per call (Network::bind)
    for (name, shape) in &graph.held {
        let id = imp.builder.held_input(name, shape)?;
        imp.values
            .insert(name, Rc::new(Value::Data(Data::node(id, shape.clone()))));
    }
    // inputs held at a value: constants, folded into what they feed
    for (v, shape, k) in &graph.fixed {
        let value = fixed_value::<F>(v, shape, &opts.fixed_inputs[*k].1)?;
        imp.values.insert(v.name.as_str(), Rc::new(Value::Const(value)));
    }
    // tensors that a refused node (or one downstream of it) would have produced
    let mut lost: HashSet<&str> = HashSet::new();
    let mut refused: HashSet<usize> = problems.iter().map(|p| p.index).collect();
    refused.extend(refused_groups);
    for &k in &graph.order {
        let node = &proto.node[k];
        let outputs = node.output.iter().map(String::as_str);
        if imp.absorbed.contains(&k) {
            // taken by the node before it; lost with it if that node was refused
            if node
                .output
                .first()
                .is_some_and(|o| !imp.values.contains_key(o.as_str()))
            {
                lost.extend(outputs);
            }
            continue;
        }
        if refused.contains(&k) || node.input.iter().any(|i| lost.contains(i.as_str())) {
            lost.extend(outputs);
            continue;
        }
        let label = node_label(k, node);
        let done = match group_of.get(&k) {
            // a node of a group: the group is built at its last node, from its data input
            Some(&g) => {
                let group = &groups[g];
                if k != group.last {
                    continue;
                }
                if lost.contains(group.input) {
                    lost.extend(outputs);
                    continue;
                }
                imp.group(&label, node, group)
            }
            None => imp.node(&label, node),
        };
        match done.map_err(at_node(&label)) {
            Ok(()) => {}
            Err(Error::UnsupportedOperator { node: at, op, reason }) => {
                problems.push(Problem {
                    index: k,
                    label: at,
                    op,
                    reason: Some(reason),
                });
                lost.extend(outputs);
            }
            // what the first pass found comes first: it is what stands in the way
            Err(e) if problems.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    if !problems.is_empty() {
        return Err(check::refusal(problems));
    }
    let output = graph.output;
    let out = match imp.get(output, "the graph output")?.as_ref() {
        Value::Data(d) => d.clone(),
        Value::Const(_) => {
            return Err(Error::Format {
                what: "ONNX graph".into(),
                reason: format!("the output {output:?} does not depend on the input"),
            })
        }
    };
    let id = if out.view == View::Scalar {
        imp.notes.push(format!(
            "the output {output:?} is one value per sample ([N]): the network gives it as [N, 1]"
        ));
        out.id
    } else {
        imp.materialize(&out, "output")?
    };
    if id == imp.builder.input() {
        return Err(Error::EmptyNetwork);
    }
    // the importer's tables are freed before the network is finished
    let (builder, notes) = imp.into_parts();
    let network = builder.finish_at(id, !opts.merge_batch_norm)?;
    Ok(OnnxModel {
        network,
        notes,
        input: graph.input.name.clone(),
        output: output.to_string(),
    })
}

impl<'a, F: Float> Importer<'a, F> {
    /// One node: folded if its registry entry can and its inputs are constants, else
    /// built. (The first pass has checked that the operator is in the registry.)
    fn node(&mut self, label: &str, node: &'a NodeProto) -> Result<()> {
        let op = node.op_type.as_str();
        let def = self
            .reg
            .get(op)
            .ok_or_else(|| unsupported(label, op, "no such operator here"))?;
        let (fold, build, fold_always, layouts) = (def.fold, def.build, def.fold_always, def.layouts);
        let ctx = Ctx {
            node,
            label,
            attrs: Attrs {
                node: label,
                op,
                list: &node.attribute,
            },
        };
        let mut all_const = true;
        for pos in 0..node.input.len() {
            if let Some(v) = self.input(node, pos, label)? {
                all_const &= matches!(*v, Value::Const(_));
                if !layouts {
                    self.batch_first_input(node, pos, label)?;
                }
            }
        }
        match (fold, build) {
            (Some(fold), _) if all_const || fold_always => fold(self, &ctx),
            (_, Some(build)) => build(self, &ctx),
            _ => Err(unsupported(
                label,
                op,
                "evaluated when the file is read, on constants only: here it acts on data",
            )),
        }
    }

    /// A group of nodes (`pattern.rs`), built at its last node `node`.
    fn group(&mut self, label: &str, node: &'a NodeProto, group: &Group<'a, F>) -> Result<()> {
        let ctx = Ctx {
            node,
            label,
            attrs: Attrs {
                node: label,
                op: &node.op_type,
                list: &node.attribute,
            },
        };
        (group.build)(self, group, &ctx)
    }

    /// A data input of a group, batch-first (`layout.rs`).
    pub(super) fn group_input(&mut self, group: &Group<'a, F>, label: &str) -> Result<Data> {
        let d = match self.get(group.input, label)?.as_ref() {
            Value::Data(d) => d.clone(),
            Value::Const(_) => return Err(unsupported(label, "", "its input is a constant")),
        };
        match d.layout() {
            Some(l) if !l.batch_first() => Err(super::view::batch_elsewhere(label, "", l)),
            Some(_) => {
                let id = self.materialize(&d, label)?;
                Ok(Data::node(id, self.builder.shape_of(id).to_vec()))
            }
            None => Ok(d),
        }
    }

    /// Makes input `pos` of a node that does not handle layouts (`layout.rs`) a tensor
    /// with the batch first: built so where it is a layout with the batch first, refused
    /// where the batch is elsewhere.
    pub(super) fn batch_first_input(&mut self, node: &'a NodeProto, pos: usize, label: &str) -> Result<()> {
        let Some(name) = node.input.get(pos).filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let d = match self.values.get(name.as_str()).map(Rc::as_ref) {
            Some(Value::Data(d)) if d.layout().is_some() => d.clone(),
            _ => return Ok(()),
        };
        let l = d.layout().expect("a layout");
        if !l.batch_first() {
            return Err(super::view::batch_elsewhere(label, &node.op_type, l));
        }
        let id = self.materialize(&d, label)?;
        let shape = self.builder.shape_of(id).to_vec();
        self.values
            .insert(name.as_str(), Rc::new(Value::Data(Data::node(id, shape))));
        Ok(())
    }

    /// The value of a tensor (an initializer is decoded on first use).
    pub(super) fn get(&mut self, name: &'a str, node: &str) -> Result<Rc<Value<F>>> {
        if let Some(v) = self.values.get(name) {
            return Ok(Rc::clone(v));
        }
        let t = self
            .g
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

    /// A stored tensor as a constant.
    pub(super) fn decode(&self, t: &TensorProto, name: &str) -> Result<Const<F>> {
        if is_int(t) {
            let (shape, v) = int_tensor(t, name, &self.dir)?;
            Ok(Const::Int(crate::tensor::layout::shaped(
                IxDyn(&shape),
                v.into_iter().map(Sym::Int).collect(),
            )))
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

    /// The builder and the notes; the rest is dropped.
    fn into_parts(self) -> (Builder<F>, Vec<String>) {
        (self.builder, self.notes)
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

    /// A constant as a network node (one row that every sample shares, `GraphBuilder::
    /// constant`) of per-sample shape `shape`: the constant broadcast to `[1, shape...]`;
    /// `Err` (a reason) if it does not broadcast so (its first axis is not one row).
    pub(super) fn constant_node(
        &mut self,
        name: &str,
        c: &Const<F>,
        shape: &[usize],
    ) -> Result<std::result::Result<NodeId, String>> {
        let a = c.floats()?;
        let mut full = vec![1usize];
        full.extend_from_slice(shape);
        let fits = a.ndim() <= full.len()
            && a.shape()
                .iter()
                .rev()
                .zip(full.iter().rev())
                .all(|(&c, &f)| c == f || c == 1)
            && (a.ndim() < full.len() || a.shape()[0] == 1);
        if !fits {
            return Ok(Err(format!(
                "a constant of shape {:?} where one row of shape {full:?} is needed",
                a.shape()
            )));
        }
        let row = crate::tensor::layout::broadcast(&a, IxDyn(&full)).to_owned();
        let name = self.fresh(name);
        Ok(Ok(self.builder.constant(&name, row)?))
    }

    /// Adds a layer reading `inputs`, named after the ONNX node, and returns its data value.
    pub(super) fn layer(&mut self, label: &str, op: Op<F>, inputs: &[NodeId]) -> Result<Data> {
        let name = self.fresh(label);
        let id = self.builder.add(&name, label, op, inputs)?;
        Ok(Data::node(id, self.builder.shape_of(id).to_vec()))
    }
}

/// The constant a graph input held at `value` stands for: a batch axis of 1 and then
/// `shape`, integers for an integer or boolean input.
fn fixed_value<F: Float>(
    input: &super::proto::ValueInfoProto,
    shape: &[usize],
    value: &super::FixedInput,
) -> Result<Const<F>> {
    let err = |reason: String| Error::OnnxInput {
        name: input.name.clone(),
        reason,
        inputs: Vec::new(),
    };
    let full: Vec<usize> = std::iter::once(1).chain(shape.iter().copied()).collect();
    super::values::check_size(&full)?;
    let data: ndarray::ArrayD<f64> = match value {
        super::FixedInput::Fill(v) => ndarray::ArrayD::from_elem(ndarray::IxDyn(&full), *v),
        super::FixedInput::Values(a) => {
            if a.shape() != shape {
                return Err(err(format!(
                    "FixedInput::Values of shape {:?}; the input's per-sample shape is {shape:?} (no batch axis)",
                    a.shape()
                )));
            }
            a.clone().insert_axis(ndarray::Axis(0))
        }
    };
    if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
        return Err(err(format!("the fixed value {bad} is not finite")));
    }
    if super::decode::is_integer_input(input) {
        if let Some(bad) = data.iter().find(|v| v.fract() != 0.0 || v.abs() > 9.0e15) {
            return Err(err(format!(
                "the fixed value {bad} is not an integer, and the input holds integers"
            )));
        }
        Ok(Const::Int(data.mapv(|v| Sym::Int(v as i64))))
    } else {
        Ok(Const::Float(data.mapv(F::lit)))
    }
}
