//! Import of sequential ONNX graphs.
//!
//! The protobuf messages below derive `prost::Message` for just the fields this importer
//! reads; the field numbers are those of `onnx.proto` (ONNX 1.x). Every other field is
//! skipped by the decoder.

use super::{checked_count, read_file, Builder, Op, Spec, MAX_DIM};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::Conv2dConfig;
use crate::network::Network;
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// `ModelProto`: the top-level message of an `.onnx` file.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(string, tag = "7")]
    domain: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(float, tag = "2")]
    f: f32,
    #[prost(int64, tag = "3")]
    i: i64,
    #[prost(bytes = "vec", tag = "4")]
    s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    ints: Vec<i64>,
    /// `AttributeType`: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 6 FLOATS, 7 INTS, ...
    #[prost(int32, tag = "20")]
    r#type: i32,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    /// `DataType`: 1 FLOAT, 6 INT32, 7 INT64, 11 DOUBLE, ...
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
    #[prost(double, repeated, tag = "10")]
    double_data: Vec<f64>,
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<StringStringEntryProto>,
    /// `DataLocation`: 0 DEFAULT, 1 EXTERNAL.
    #[prost(int32, tag = "14")]
    data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

/// `TypeProto`, of which only the `tensor_type` member of the `value` oneof is read.
#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TypeProtoTensor>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeProtoTensor {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`; `dim_value` and `dim_param` form a oneof.
#[derive(Clone, PartialEq, Message)]
struct Dimension {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    dim_param: Option<String>,
}

const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

/// The largest tensor the importer accepts: 2³¹ values (it must also be stored in full in
/// the file).
const MAX_TENSOR: usize = 1 << 31;

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
        self.builder.finish()
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
            op,
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

/// The per-sample shape of the graph input (its first dimension is the batch).
fn input_shape(input: &ValueInfoProto) -> Result<Vec<usize>> {
    let err = |reason: String| Error::Format {
        what: format!("ONNX graph input {}", input.name),
        reason,
    };
    let tensor = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| err("not a tensor".into()))?;
    if !matches!(tensor.elem_type, FLOAT | DOUBLE) {
        return Err(err(format!(
            "element type {} (float or double expected)",
            tensor.elem_type
        )));
    }
    let dims = &tensor
        .shape
        .as_ref()
        .ok_or_else(|| err("its shape is not given".into()))?
        .dim;
    if dims.len() < 2 {
        return Err(err(format!(
            "rank {} (a batch dimension and at least one more expected)",
            dims.len()
        )));
    }
    dims[1..]
        .iter()
        .enumerate()
        .map(|(i, d)| match d.dim_value {
            Some(v) if v > 0 && v as u64 <= MAX_DIM as u64 => Ok(v as usize),
            Some(v) => Err(err(format!("dimension {} is {v}", i + 1))),
            None => Err(err(format!(
                "dimension {} is symbolic ({:?}); only the batch dimension may be",
                i + 1,
                d.dim_param.as_deref().unwrap_or("")
            ))),
        })
        .collect()
}

/// A tensor's dimensions, checked.
fn dims(t: &TensorProto, name: &str) -> Result<(Vec<usize>, usize)> {
    let what = format!("tensor {name}");
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(Error::Format {
            what,
            reason: "external data is not supported; save the model with its weights inside".into(),
        });
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| Error::Format {
                what: what.clone(),
                reason: format!("negative dimension {d} in {:?}", t.dims),
            })
        })
        .collect::<Result<_>>()?;
    let n = checked_count(&what, &dims, MAX_TENSOR)?;
    Ok((dims, n))
}

fn stored_len_err(name: &str, dims: &[usize], found: usize, unit: &str) -> Error {
    Error::Format {
        what: format!("tensor {name}"),
        reason: format!("shape {dims:?} does not match the {found} {unit} stored"),
    }
}

/// A float32 or float64 tensor as an array of `F`.
fn float_tensor<F: Float>(t: &TensorProto, name: &str) -> Result<ArrayD<F>> {
    let (shape, n) = dims(t, name)?;
    let raw = &t.raw_data;
    let values: Vec<F> = match t.data_type {
        FLOAT if !raw.is_empty() => {
            if raw.len() != n * 4 {
                return Err(stored_len_err(name, &shape, raw.len(), "raw bytes"));
            }
            raw.chunks_exact(4)
                .map(|b| super::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect()
        }
        FLOAT => {
            if t.float_data.len() != n {
                return Err(stored_len_err(name, &shape, t.float_data.len(), "floats"));
            }
            t.float_data.iter().map(|&v| super::from_f32(v)).collect()
        }
        DOUBLE if !raw.is_empty() => {
            if raw.len() != n * 8 {
                return Err(stored_len_err(name, &shape, raw.len(), "raw bytes"));
            }
            raw.chunks_exact(8)
                .map(|b| {
                    super::from_f64(f64::from_le_bytes([
                        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                    ]))
                })
                .collect()
        }
        DOUBLE => {
            if t.double_data.len() != n {
                return Err(stored_len_err(name, &shape, t.double_data.len(), "doubles"));
            }
            t.double_data.iter().map(|&v| super::from_f64(v)).collect()
        }
        other => {
            return Err(Error::Format {
                what: format!("tensor {name}"),
                reason: format!("data type {other} is not supported (1 float or 11 double)"),
            })
        }
    };
    ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| Error::Format {
        what: format!("tensor {name}"),
        reason: e.to_string(),
    })
}

/// A 1-D float tensor (a bias).
fn vector<F: Float>(t: &TensorProto, name: &str, node: &str) -> Result<Array1<F>> {
    let a = float_tensor::<F>(t, name)?;
    let shape = a.shape().to_vec();
    a.into_dimensionality().map_err(|_| Error::AtNode {
        node: node.to_string(),
        source: Box::new(Error::Rank {
            what: format!("tensor {name}"),
            expected: 1,
            got: shape.len(),
            shape,
        }),
    })
}

/// An int64 or int32 tensor as a flat list (a shape operand).
fn int_tensor(t: &TensorProto, name: &str) -> Result<Vec<i64>> {
    let (shape, n) = dims(t, name)?;
    let raw = &t.raw_data;
    let values: Vec<i64> = match t.data_type {
        INT64 if !raw.is_empty() => {
            if raw.len() != n * 8 {
                return Err(stored_len_err(name, &shape, raw.len(), "raw bytes"));
            }
            raw.chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect()
        }
        INT64 => t.int64_data.clone(),
        INT32 if !raw.is_empty() => {
            if raw.len() != n * 4 {
                return Err(stored_len_err(name, &shape, raw.len(), "raw bytes"));
            }
            raw.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect()
        }
        INT32 => t.int32_data.iter().map(|&v| v as i64).collect(),
        other => {
            return Err(Error::Format {
                what: format!("tensor {name}"),
                reason: format!("data type {other} is not an integer type (6 int32 or 7 int64)"),
            })
        }
    };
    if values.len() != n {
        return Err(stored_len_err(name, &shape, values.len(), "integers"));
    }
    Ok(values)
}

/// A node's attributes, read with defaults and range checks.
struct Attrs<'a> {
    node: &'a str,
    op: &'a str,
    list: &'a [AttributeProto],
}

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.list.iter().find(|a| a.name == name)
    }

    fn bad(&self, reason: String) -> Error {
        Error::Format {
            what: format!("node {} ({})", self.node, self.op),
            reason,
        }
    }

    /// Rejects attributes outside `known`.
    fn only(&self, known: &[&str]) -> Result<()> {
        match self.list.iter().find(|a| !known.contains(&a.name.as_str())) {
            Some(a) => Err(unsupported(self.node, self.op, format!("attribute {:?}", a.name))),
            None => Ok(()),
        }
    }

    fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.get(name).map_or(default, |a| a.i))
    }

    fn float(&self, name: &str, default: f32) -> Result<f32> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.f.is_finite() => Ok(a.f),
            Some(a) => Err(self.bad(format!("attribute {name} is {}", a.f))),
        }
    }

    fn string(&self, name: &str) -> Result<String> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(a) => {
                String::from_utf8(a.s.clone()).map_err(|_| self.bad(format!("attribute {name} is not UTF-8")))
            }
        }
    }

    /// A list of non-negative sizes, each at most [`MAX_DIM`].
    fn ints(&self, name: &str) -> Result<Option<Vec<usize>>> {
        let Some(a) = self.get(name) else { return Ok(None) };
        a.ints
            .iter()
            .map(|&v| {
                usize::try_from(v).ok().filter(|&v| v <= MAX_DIM).ok_or_else(|| {
                    self.bad(format!(
                        "attribute {name} = {:?} is out of range 0..={MAX_DIM}",
                        a.ints
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A 2-D (height, width) attribute such as `strides`.
    fn pair(&self, name: &str, default: usize) -> Result<(usize, usize)> {
        match self.ints(name)?.as_deref() {
            None => Ok((default, default)),
            Some([h, w]) => Ok((*h, *w)),
            Some(v) => Err(unsupported(
                self.node,
                self.op,
                format!("{name} {v:?} is not 2-D"),
            )),
        }
    }

    /// `pads` `[top, left, bottom, right]`, which must be symmetric.
    fn pads(&self) -> Result<(usize, usize)> {
        match self.ints("pads")?.as_deref() {
            None => Ok((0, 0)),
            Some([t, l, b, r]) if t == b && l == r => Ok((*t, *l)),
            Some(v) => Err(unsupported(
                self.node,
                self.op,
                format!("pads {v:?} (only symmetric 2-D padding [t, l, t, l] is supported)"),
            )),
        }
    }
}
