//! Import of sequential ONNX graphs.
//!
//! `proto.rs` declares the protobuf messages (only the fields read), `tensor.rs` decodes
//! tensors and the graph input's shape, `attrs.rs` reads node attributes; this file maps the
//! nodes onto layers.

mod attrs;
mod proto;
mod tensor;

use super::{read_file, Builder, Op, Spec, MAX_DIM};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::Conv2dConfig;
use crate::network::Network;
use attrs::Attrs;
use ndarray::{Array1, Array2, Array4};
use prost::Message;
use proto::{GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use std::collections::HashMap;
use std::path::Path;
use tensor::{float_tensor, input_shape, int_tensor, vector};

/// Loads a sequential ONNX model from a file; see [`from_onnx`].
///
/// ```
/// use relevance::io::{load_onnx, Digits};
/// # fn main() -> relevance::Result<()> {
/// let dir = env!("CARGO_MANIFEST_DIR");
/// let net = load_onnx::<f64>(format!("{dir}/models/digits.onnx"))?; // float32 weights, f64 network
/// assert_eq!(net.nodes().len(), 10);
/// let digits = Digits::load(format!("{dir}/data/digits_test.bin"))?;
/// let logits = net.forward(&digits.images(&[0, 1])?)?;
/// assert_eq!(logits.shape(), &[2, 10]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Io`] if the file cannot be read (or is above 2 GiB); as [`from_onnx`] otherwise.
pub fn load_onnx<F: Float>(path: impl AsRef<Path>) -> Result<Network<F>> {
    from_onnx(&read_file(path.as_ref())?)
}

/// Builds a network from the bytes of an ONNX model.
///
/// The graph must be a chain: one input `[batch, ...]` with known per-sample dimensions,
/// then nodes each reading the previous node's output (plus weights stored as initializers
/// or `Constant` nodes), ending at the one graph output. Supported operators (default
/// domain):
///
/// | operator | becomes | conditions |
/// |---|---|---|
/// | `Conv` | [`Conv2d`](crate::Conv2d) | 2-D, `group` 1, symmetric `pads`, `auto_pad` `NOTSET` or `VALID` |
/// | `Gemm` | [`Dense`](crate::Dense) | `transA` 0; `alpha`, `beta`, `transB` folded into the weights |
/// | `MatMul` (+ `Add`) | [`Dense`](crate::Dense) | constant right operand `[in, out]`; a following `Add` of a constant `[out]` is its bias |
/// | `Relu` | [`Relu`](crate::Relu) | |
/// | `MaxPool` | [`MaxPool2d`](crate::MaxPool2d) | 2-D, `ceil_mode` 0, `dilations` 1, symmetric `pads`, no indices output |
/// | `Flatten` | [`Flatten`](crate::Flatten) | `axis` 1 |
/// | `Reshape` | [`Flatten`](crate::Flatten) | constant target `[batch or 0 or -1, n or -1]` that flattens |
/// | `Identity`, `Dropout` | nothing | |
///
/// A `Conv` followed by an `Add` of a constant `[C, 1, 1]` or `[1, C, 1, 1]` also takes it
/// as its bias. Weights may be float32 or float64 (converted to `F`), stored raw or in the
/// typed fields, but inside the file (no external data).
///
/// # Errors
/// [`Error::Format`] for bytes that are not a valid ONNX protobuf, a tensor whose stored
/// data does not match its shape, an absurd size, or a missing graph, default-domain opset,
/// input shape or output;
/// [`Error::UnsupportedOperator`] for an operator or setting outside the table, or a graph
/// that is not a chain; [`Error::MissingTensor`] for a weight that is neither an
/// initializer nor a constant; [`Error::AtNode`] for a weight of the wrong shape or shapes
/// that do not chain. Each names the node (its name, or `#index OpType` if it has none).
pub fn from_onnx<F: Float>(bytes: &[u8]) -> Result<Network<F>> {
    let model = ModelProto::decode(bytes).map_err(|e| Error::Format {
        what: "ONNX model".into(),
        reason: format!("not a valid ONNX protobuf: {e}"),
    })?;
    if !model
        .opset_import
        .iter()
        .any(|o| (o.domain.is_empty() || o.domain == "ai.onnx") && o.version > 0)
    {
        return Err(Error::Format {
            what: "ONNX model".into(),
            reason: "no operator set version for the default domain (opset_import)".into(),
        });
    }
    let graph = model.graph.as_ref().ok_or_else(|| Error::Format {
        what: "ONNX model".into(),
        reason: "the model has no graph".into(),
    })?;
    Importer::<F>::new(graph)?.run()
}

/// A constant tensor: an initializer or the value of a `Constant` node.
struct Constants<'a> {
    map: HashMap<&'a str, &'a TensorProto>,
}

struct Importer<'a, F: Float> {
    graph: &'a GraphProto,
    constants: Constants<'a>,
    builder: Builder<F>,
    input_name: &'a str,
    /// The tensor that the chain has reached.
    current: &'a str,
    /// The last op, not yet built, so that an `Add` can still give it a bias.
    pending: Option<Spec<F>>,
}

fn node_label(index: usize, node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!("#{index} {}", node.op_type)
    } else {
        node.name.clone()
    }
}

fn unsupported(node: &str, op: &str, reason: impl Into<String>) -> Error {
    Error::UnsupportedOperator {
        node: node.to_string(),
        op: op.to_string(),
        reason: reason.into(),
    }
}

impl<'a, F: Float> Importer<'a, F> {
    fn new(graph: &'a GraphProto) -> Result<Self> {
        let mut map = HashMap::new();
        for t in &graph.initializer {
            map.insert(t.name.as_str(), t);
        }
        let constants = Constants { map };
        let inputs: Vec<&ValueInfoProto> = graph
            .input
            .iter()
            .filter(|v| !constants.map.contains_key(v.name.as_str()))
            .collect();
        let input = match inputs.as_slice() {
            [one] => *one,
            _ => {
                return Err(Error::Format {
                    what: "ONNX graph".into(),
                    reason: format!(
                        "expected exactly one data input (besides initializers), found {}",
                        inputs.len()
                    ),
                })
            }
        };
        let shape = input_shape(input)?;
        Ok(Importer {
            graph,
            constants,
            builder: Builder::new(&shape)?,
            input_name: input.name.as_str(),
            current: input.name.as_str(),
            pending: None,
        })
    }

    fn run(mut self) -> Result<Network<F>> {
        let graph = self.graph;
        for (index, node) in graph.node.iter().enumerate() {
            let label = node_label(index, node);
            self.node(&label, node)?;
        }
        self.flush()?;
        let output = match graph.output.as_slice() {
            [one] => one.name.as_str(),
            outs => {
                return Err(Error::Format {
                    what: "ONNX graph".into(),
                    reason: format!("expected exactly one graph output, found {}", outs.len()),
                })
            }
        };
        if output != self.current {
            return Err(Error::Format {
                what: "ONNX graph".into(),
                reason: format!(
                    "the graph output {output:?} is not the end of the chain of nodes ({:?})",
                    self.current
                ),
            });
        }
        if self.current == self.input_name {
            return Err(Error::EmptyNetwork);
        }
        self.builder.finish(false)
    }

    /// Builds the pending op, if any.
    fn flush(&mut self) -> Result<()> {
        if let Some(spec) = self.pending.take() {
            self.builder.push(spec)?;
        }
        Ok(())
    }

    fn push(&mut self, node: &str, op: Op<F>) -> Result<()> {
        self.flush()?;
        self.pending = Some(Spec {
            node: node.to_string(),
            label: node.to_string(),
            op,
            inputs: Vec::new(),
        });
        Ok(())
    }

    fn constant(&self, name: &str, node: &str) -> Result<&'a TensorProto> {
        self.constants
            .map
            .get(name)
            .copied()
            .ok_or_else(|| Error::MissingTensor {
                tensor: name.to_string(),
                node: node.to_string(),
            })
    }

    fn node(&mut self, label: &str, node: &'a NodeProto) -> Result<()> {
        let op = node.op_type.as_str();
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(unsupported(
                label,
                op,
                format!("domain {:?} is not the ONNX default", node.domain),
            ));
        }
        if op == "Constant" {
            let out = node
                .output
                .first()
                .ok_or_else(|| unsupported(label, op, "no output"))?;
            let value = node
                .attribute
                .iter()
                .find(|a| a.name == "value")
                .and_then(|a| a.t.as_ref())
                .ok_or_else(|| {
                    unsupported(label, op, "only a Constant with a tensor `value` is supported")
                })?;
            self.constants.map.insert(out.as_str(), value);
            return Ok(());
        }
        // the data input: the first input, or for Add whichever input the chain is at
        let data_pos = if op == "Add" {
            node.input.iter().position(|i| i == self.current).unwrap_or(0)
        } else {
            0
        };
        let data_in = node.input.get(data_pos).map(String::as_str).unwrap_or("");
        if data_in != self.current {
            return Err(unsupported(
                label,
                op,
                format!(
                    "the graph is not a chain: this node reads {data_in:?}, but the chain is at {:?}",
                    self.current
                ),
            ));
        }
        let outputs: Vec<&String> = node.output.iter().filter(|o| !o.is_empty()).collect();
        let out = match (op, outputs.as_slice()) {
            (_, [one]) => one.as_str(),
            ("Dropout", [one, _mask]) => one.as_str(),
            _ => {
                return Err(unsupported(
                    label,
                    op,
                    format!("expected one output, found {}", outputs.len()),
                ))
            }
        };
        if self.constants.map.contains_key(out) {
            return Err(Error::Format {
                what: label.to_string(),
                reason: format!("output {out:?} is also the name of a constant"),
            });
        }
        let attrs = Attrs {
            node: label,
            op,
            list: &node.attribute,
        };
        match op {
            "Conv" => self.conv(label, node, &attrs)?,
            "Gemm" => self.gemm(label, node, &attrs)?,
            "MatMul" => {
                let w = self.matrix(label, node, 1)?;
                self.push(
                    label,
                    Op::Dense {
                        weight: w.t().to_owned(),
                        bias: None,
                    },
                )?;
            }
            "Add" => self.add(label, node, data_pos)?,
            "Relu" => self.push(label, Op::Relu)?,
            "MaxPool" => self.maxpool(label, &attrs)?,
            "Flatten" => {
                attrs.only(&["axis"])?;
                let rank = self.builder_shape_after_pending(label)?.len() as i64 + 1;
                let axis = attrs.int("axis", 1)?;
                let axis = if axis < 0 { axis + rank } else { axis };
                if axis != 1 {
                    return Err(unsupported(
                        label,
                        op,
                        format!("axis {axis} (only 1 flattens per sample)"),
                    ));
                }
                self.push(label, Op::Flatten)?;
            }
            "Reshape" => self.reshape(label, node, &attrs)?,
            "Identity" | "Dropout" => {}
            _ => {
                return Err(unsupported(
                    label,
                    op,
                    "supported: Conv, Gemm, MatMul, Add (as a bias), Relu, MaxPool, Flatten, Reshape, \
                     Identity, Dropout, Constant",
                ))
            }
        }
        self.current = out;
        Ok(())
    }

    /// The per-sample shape after the pending op (building it).
    fn builder_shape_after_pending(&mut self, _node: &str) -> Result<Vec<usize>> {
        self.flush()?;
        Ok(self.builder.shape().to_vec())
    }

    /// A constant 2-D matrix at input `pos`.
    fn matrix(&self, label: &str, node: &NodeProto, pos: usize) -> Result<Array2<F>> {
        let name = input_at(node, pos, label)?;
        let t = self.constant(name, label)?;
        let a = float_tensor::<F>(t, name)?;
        let shape = a.shape().to_vec();
        a.into_dimensionality().map_err(|_| Error::AtNode {
            node: label.to_string(),
            source: Box::new(Error::Rank {
                what: format!("tensor {name}"),
                expected: 2,
                got: shape.len(),
                shape,
            }),
        })
    }

    fn conv(&mut self, label: &str, node: &NodeProto, attrs: &Attrs<'_>) -> Result<()> {
        attrs.only(&[
            "kernel_shape",
            "strides",
            "pads",
            "dilations",
            "group",
            "auto_pad",
        ])?;
        let wname = input_at(node, 1, label)?;
        let w = float_tensor::<F>(self.constant(wname, label)?, wname)?;
        let wshape = w.shape().to_vec();
        let w: Array4<F> = w.into_dimensionality().map_err(|_| {
            unsupported(
                label,
                "Conv",
                format!("weight {wname} has shape {wshape:?}; only 2-D convolutions are supported"),
            )
        })?;
        if attrs.int("group", 1)? != 1 {
            return Err(unsupported(label, "Conv", "grouped convolution (group ≠ 1)"));
        }
        let auto_pad = attrs.string("auto_pad")?;
        if !matches!(auto_pad.as_str(), "" | "NOTSET" | "VALID") {
            return Err(unsupported(label, "Conv", format!("auto_pad {auto_pad}")));
        }
        if let Some(k) = attrs.ints("kernel_shape")? {
            if k.as_slice() != &wshape[2..] {
                return Err(Error::AtNode {
                    node: label.to_string(),
                    source: Box::new(Error::Shape {
                        what: "Conv kernel_shape (must match the weight)".into(),
                        expected: wshape[2..].to_vec(),
                        got: k,
                    }),
                });
            }
        }
        let config = Conv2dConfig {
            stride: attrs.pair("strides", 1)?,
            padding: attrs.pads()?,
            dilation: attrs.pair("dilations", 1)?,
            ..Conv2dConfig::default()
        };
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => Some(vector::<F>(self.constant(b, label)?, b, label)?),
            None => None,
        };
        self.push(
            label,
            Op::Conv {
                weight: w,
                bias,
                config,
            },
        )
    }

    fn gemm(&mut self, label: &str, node: &NodeProto, attrs: &Attrs<'_>) -> Result<()> {
        attrs.only(&["alpha", "beta", "transA", "transB"])?;
        if attrs.int("transA", 0)? != 0 {
            return Err(unsupported(label, "Gemm", "transA = 1"));
        }
        let alpha = F::lit(attrs.float("alpha", 1.0)? as f64);
        let beta = F::lit(attrs.float("beta", 1.0)? as f64);
        let b = self.matrix(label, node, 1)?;
        let w = if attrs.int("transB", 0)? != 0 {
            b
        } else {
            b.t().to_owned()
        };
        let w = w.mapv(|v| v * alpha);
        let bias = match node.input.get(2).filter(|c| !c.is_empty()) {
            Some(c) => Some(vector::<F>(self.constant(c, label)?, c, label)?.mapv(|v| v * beta)),
            None => None,
        };
        // a scalar or length-1 C broadcasts over the outputs
        let bias = bias.map(|b| {
            if b.len() == 1 && w.nrows() != 1 {
                Array1::from_elem(w.nrows(), b[0])
            } else {
                b
            }
        });
        self.push(label, Op::Dense { weight: w, bias })
    }

    fn add(&mut self, label: &str, node: &NodeProto, data_pos: usize) -> Result<()> {
        if node.input.len() != 2 {
            return Err(unsupported(label, "Add", format!("{} inputs", node.input.len())));
        }
        let other = node.input[1 - data_pos].as_str();
        let t = self.constant(other, label).map_err(|_| {
            unsupported(
                label,
                "Add",
                format!("{other:?} is not a constant; only a bias Add is supported"),
            )
        })?;
        let b = float_tensor::<F>(t, other)?;
        let b =
            match self.pending.as_mut().map(|s| &mut s.op) {
                Some(Op::Dense {
                    weight,
                    bias: slot @ None,
                }) => {
                    let out = weight.nrows();
                    let b = match b.shape() {
                        [n] | [1, n] if *n == out => b.into_shape_with_order(out).ok(),
                        _ => None,
                    };
                    b.map(|b| *slot = Some(b))
                }
                Some(Op::Conv {
                    weight,
                    bias: slot @ None,
                    ..
                }) => {
                    let out = weight.shape()[0];
                    let b = match b.shape() {
                        [n, 1, 1] | [1, n, 1, 1] if *n == out => b.into_shape_with_order(out).ok(),
                        _ => None,
                    };
                    b.map(|b| *slot = Some(b))
                }
                _ => return Err(unsupported(
                    label,
                    "Add",
                    "only an Add right after a MatMul, Gemm or Conv without bias is supported (as its bias)",
                )),
            };
        b.ok_or_else(|| Error::AtNode {
            node: label.to_string(),
            source: Box::new(Error::Shape {
                what: format!("Add operand {other} (a bias per output channel)"),
                expected: vec![],
                got: t.dims.iter().map(|&d| d.max(0) as usize).collect(),
            }),
        })
    }

    fn maxpool(&mut self, label: &str, attrs: &Attrs<'_>) -> Result<()> {
        attrs.only(&[
            "kernel_shape",
            "strides",
            "pads",
            "dilations",
            "ceil_mode",
            "auto_pad",
            "storage_order",
        ])?;
        let kernel = attrs
            .ints("kernel_shape")?
            .ok_or_else(|| unsupported(label, "MaxPool", "no kernel_shape"))?;
        let kernel = match kernel.as_slice() {
            [h, w] => (*h, *w),
            k => {
                return Err(unsupported(
                    label,
                    "MaxPool",
                    format!("kernel_shape {k:?} is not 2-D"),
                ))
            }
        };
        if attrs.int("ceil_mode", 0)? != 0 {
            return Err(unsupported(label, "MaxPool", "ceil_mode = 1"));
        }
        if attrs.pair("dilations", 1)? != (1, 1) {
            return Err(unsupported(label, "MaxPool", "dilations other than 1"));
        }
        let auto_pad = attrs.string("auto_pad")?;
        if !matches!(auto_pad.as_str(), "" | "NOTSET" | "VALID") {
            return Err(unsupported(label, "MaxPool", format!("auto_pad {auto_pad}")));
        }
        let op = Op::MaxPool {
            kernel,
            stride: attrs.pair("strides", 1)?,
            padding: attrs.pads()?,
        };
        self.push(label, op)
    }

    fn reshape(&mut self, label: &str, node: &NodeProto, attrs: &Attrs<'_>) -> Result<()> {
        attrs.only(&["allowzero"])?;
        let name = input_at(node, 1, label)?;
        let target = int_tensor(self.constant(name, label)?, name)?;
        let shape = self.builder_shape_after_pending(label)?;
        let n: usize = shape.iter().product();
        let allowzero = attrs.int("allowzero", 0)? != 0;
        let fail = |why: &str| {
            unsupported(
                label,
                "Reshape",
                format!("target shape {target:?} for per-sample shape {shape:?}: {why}"),
            )
        };
        // the first entry is the batch: 0 (copy), -1 (infer) or 1
        match target.first() {
            Some(0 | 1) => {}
            Some(-1) if allowzero || !target[1..].contains(&-1) => {}
            _ => return Err(fail("the first entry must keep the batch (0, -1 or 1)")),
        }
        let mut per = Vec::with_capacity(target.len().saturating_sub(1));
        let mut infer = None;
        for (i, &t) in target[1..].iter().enumerate() {
            per.push(match t {
                0 if !allowzero => *shape
                    .get(i)
                    .ok_or_else(|| fail("0 copies a dimension that does not exist"))?,
                -1 if infer.is_none() => {
                    infer = Some(i);
                    1
                }
                t if t > 0 && t as u64 <= MAX_DIM as u64 => t as usize,
                _ => return Err(fail("invalid entry")),
            });
        }
        let known = per
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| fail("overflow"))?;
        if let Some(i) = infer {
            if known == 0 || n % known != 0 {
                return Err(fail("-1 cannot be inferred"));
            }
            per[i] = n / known;
        } else if known != n {
            return Err(fail("the number of values changes"));
        }
        if per == [n] {
            self.push(label, Op::Flatten)
        } else if per == shape {
            Ok(()) // a reshape to the same per-sample shape does nothing
        } else {
            Err(fail("only a reshape that flattens each sample is supported"))
        }
    }
}

fn input_at<'n>(node: &'n NodeProto, pos: usize, label: &str) -> Result<&'n str> {
    node.input
        .get(pos)
        .filter(|s| !s.is_empty())
        .map(String::as_str)
        .ok_or_else(|| unsupported(label, &node.op_type, format!("input {pos} is missing")))
}
