//! PyTorch weights in safetensors files, with a JSON architecture description.

use super::{at_node, checked_count, read_file, Builder, LoadOptions, Op, Spec, MAX_DIM};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{
    Add, AvgPool2d, BatchNorm2d, Clip, Concat, Conv2dConfig, Elu, Gelu, HardSigmoid, HardSwish, Identity,
    Layer, LeakyRelu, MaxPool2d, Mul, Pad, Sigmoid, Silu, Tanh,
};
use crate::network::Network;
use ndarray::{Array, Array1, Array2, Array4, ArrayD, Dimension, IxDyn};
use serde::Deserialize;
use std::path::Path;

/// A (height, width) pair; in JSON either one number for both or `[h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "PairRepr")]
pub struct Pair(pub usize, pub usize);

#[derive(Deserialize)]
#[serde(untagged)]
enum PairRepr {
    One(usize),
    Two([usize; 2]),
}

impl From<PairRepr> for Pair {
    fn from(p: PairRepr) -> Self {
        match p {
            PairRepr::One(v) => Pair(v, v),
            PairRepr::Two([h, w]) => Pair(h, w),
        }
    }
}

impl Pair {
    fn tuple(self) -> (usize, usize) {
        (self.0, self.1)
    }
}

fn one() -> Pair {
    Pair(1, 1)
}

fn zero() -> Pair {
    Pair(0, 0)
}

fn one_usize() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn bn_eps() -> f64 {
    1e-5
}

fn leaky_slope() -> f64 {
    0.01
}

fn one_f64() -> f64 {
    1.0
}

/// One layer (or merge) of an [`Architecture`]; in JSON an object with a `"type"` and the
/// layer's settings, plus an optional `"name"` and `"inputs"` (see [`NodeSpec`]). Parameter
/// tensors are named as in the PyTorch `state_dict` saved to the safetensors file.
///
/// | `"type"` | fields (defaults) | PyTorch |
/// |---|---|---|
/// | `"conv2d"` | `weight`, `bias` (none), `stride` (1), `padding` (0), `dilation` (1), `groups` (1), `padding_end` (= `padding`) | `nn.Conv2d` |
/// | `"dense"` (or `"linear"`) | `weight`, `bias` (none) | `nn.Linear` |
/// | `"batchnorm2d"` | `mean`, `var` (running statistics), `weight`, `bias` (none: 1 and 0), `eps` (1e-5) | `nn.BatchNorm2d` / `BatchNorm1d`, eval mode |
/// | `"relu"`, `"relu6"`, `"sigmoid"`, `"tanh"`, `"hardsigmoid"`, `"hardswish"`, `"silu"` | | the activation |
/// | `"leaky_relu"` | `slope` (0.01) | `nn.LeakyReLU` |
/// | `"elu"` | `alpha` (1) | `nn.ELU` |
/// | `"gelu"` | `approximate` (`"none"`; or `"tanh"`) | `nn.GELU` |
/// | `"clip"` | `min`, `max` | `nn.Hardtanh`, `torch.clamp` |
/// | `"maxpool2d"` | `kernel`, `stride` (= kernel), `padding` (0), `ceil_mode` (false) | `nn.MaxPool2d` |
/// | `"avgpool2d"` | `kernel`, `stride` (= kernel), `padding` (0), `ceil_mode` (false), `count_include_pad` (true) | `nn.AvgPool2d` |
/// | `"adaptive_avgpool2d"` | `output` (`1` is global average pooling) | `nn.AdaptiveAvgPool2d` |
/// | `"flatten"` | | `nn.Flatten` |
/// | `"identity"` (or `"dropout"`) | | `nn.Identity`, `nn.Dropout` in eval mode |
/// | `"pad"` | `pads`: `[before, after]` for each of the last axes | `F.pad(x, ..., value=0)` |
/// | `"add"` | (two or more `inputs`) | `x + y`, residual connections |
/// | `"concat"` | `axis` (per-sample axis, 0 = channels) | `torch.cat(xs, dim=axis + 1)` |
/// | `"mul"` | (two `inputs`) | `x * y`, gates |
///
/// Sizes are one number or `[height, width]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum LayerSpec {
    /// A 2-D convolution, weight `[out, in / groups, kh, kw]`.
    Conv2d {
        /// Name of the weight tensor.
        weight: String,
        /// Name of the bias tensor `[out]`, if any.
        #[serde(default)]
        bias: Option<String>,
        /// Stride.
        #[serde(default = "one")]
        stride: Pair,
        /// Zero padding before (and, unless `padding_end` is given, after) the input.
        #[serde(default = "zero")]
        padding: Pair,
        /// Dilation.
        #[serde(default = "one")]
        dilation: Pair,
        /// Groups of channels convolved separately.
        #[serde(default = "one_usize")]
        groups: usize,
        /// Zero padding after the input (bottom, right), if not `padding`.
        #[serde(default)]
        padding_end: Option<Pair>,
    },
    /// A fully connected layer, weight `[out, in]`.
    #[serde(alias = "linear")]
    Dense {
        /// Name of the weight tensor.
        weight: String,
        /// Name of the bias tensor `[out]`, if any.
        #[serde(default)]
        bias: Option<String>,
    },
    /// Batch normalisation in evaluation mode.
    #[serde(alias = "batchnorm", alias = "batch_norm")]
    Batchnorm2d {
        /// Name of the running mean.
        mean: String,
        /// Name of the running variance.
        var: String,
        /// Name of the weight γ (none: 1).
        #[serde(default)]
        weight: Option<String>,
        /// Name of the bias β (none: 0).
        #[serde(default)]
        bias: Option<String>,
        /// ε.
        #[serde(default = "bn_eps")]
        eps: f64,
    },
    /// ReLU.
    Relu,
    /// ReLU6.
    Relu6,
    /// Clipping to `[min, max]`.
    Clip {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Leaky ReLU.
    #[serde(rename = "leaky_relu", alias = "leakyrelu")]
    LeakyRelu {
        /// Negative slope.
        #[serde(default = "leaky_slope")]
        slope: f64,
    },
    /// The logistic sigmoid.
    Sigmoid,
    /// tanh.
    Tanh,
    /// PyTorch's hard sigmoid.
    Hardsigmoid,
    /// Hard swish.
    Hardswish,
    /// SiLU (swish).
    Silu,
    /// ELU.
    Elu {
        /// α.
        #[serde(default = "one_f64")]
        alpha: f64,
    },
    /// GELU.
    Gelu {
        /// `"none"` (erf) or `"tanh"`.
        #[serde(default)]
        approximate: Option<String>,
    },
    /// 2-D max pooling.
    #[serde(alias = "max_pool2d")]
    Maxpool2d {
        /// Window size.
        kernel: Pair,
        /// Stride; the kernel size if absent (as PyTorch).
        #[serde(default)]
        stride: Option<Pair>,
        /// Padding on each side.
        #[serde(default = "zero")]
        padding: Pair,
        /// PyTorch's `ceil_mode`.
        #[serde(default)]
        ceil_mode: bool,
    },
    /// 2-D average pooling.
    #[serde(alias = "avg_pool2d")]
    Avgpool2d {
        /// Window size.
        kernel: Pair,
        /// Stride; the kernel size if absent (as PyTorch).
        #[serde(default)]
        stride: Option<Pair>,
        /// Padding on each side.
        #[serde(default = "zero")]
        padding: Pair,
        /// PyTorch's `ceil_mode`.
        #[serde(default)]
        ceil_mode: bool,
        /// PyTorch's `count_include_pad`.
        #[serde(default = "yes")]
        count_include_pad: bool,
    },
    /// Adaptive average pooling to a fixed output size.
    #[serde(rename = "adaptive_avgpool2d")]
    AdaptiveAvgpool2d {
        /// Output size.
        output: Pair,
    },
    /// Flatten everything but the batch dimension.
    Flatten,
    /// The identity (also for dropout in evaluation mode).
    #[serde(alias = "dropout")]
    Identity,
    /// Zero padding of the last axes.
    Pad {
        /// `[before, after]` for each of the last axes.
        pads: Vec<[usize; 2]>,
    },
    /// Elementwise sum of the inputs.
    Add,
    /// Concatenation along a per-sample axis.
    Concat {
        /// The per-sample axis (0 = channels).
        #[serde(default)]
        axis: usize,
    },
    /// Elementwise product of two inputs.
    Mul,
}

/// One node of an [`Architecture`]: a [`LayerSpec`] with an optional `"name"` (default: the
/// weight tensor's prefix, `"layer1.0.conv1"` for `"layer1.0.conv1.weight"`, else the
/// node's index) and optional `"inputs"`, the names of the nodes it reads (default: the node
/// before it; `"input"` is the network input). Names are what errors, per-node results and
/// composites (`Selector::Name`, `Selector::Pattern`) use.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NodeSpec {
    /// The node's name, if given.
    pub name: Option<String>,
    /// The names of the nodes it reads, if given.
    pub inputs: Option<Vec<String>>,
    /// What it computes.
    pub layer: LayerSpec,
}

impl<'de> Deserialize<'de> for NodeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let name = match map.remove("name") {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "\"name\" must be a string, got {other}"
                )))
            }
        };
        let inputs = match map.remove("inputs") {
            None => None,
            Some(v) => Some(Vec::<String>::deserialize(v).map_err(D::Error::custom)?),
        };
        let layer = LayerSpec::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(NodeSpec { name, inputs, layer })
    }
}

/// The architecture description that goes with a safetensors weights file: the per-sample
/// input shape and the nodes in order — a chain of layers, or any graph whose nodes name
/// their inputs.
///
/// In JSON (`models/digits.json` is a complete example):
///
/// ```json
/// {
///   "format": "relevance-architecture",
///   "version": 1,
///   "input_shape": [1, 28, 28],
///   "layers": [
///     {"type": "conv2d", "weight": "conv1.weight", "bias": "conv1.bias", "padding": 1},
///     {"type": "relu"},
///     {"type": "maxpool2d", "kernel": 2},
///     {"type": "flatten"},
///     {"type": "dense", "weight": "fc.weight", "bias": "fc.bias"}
///   ],
///   "classes": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
/// }
/// ```
///
/// A residual block names its inputs (see [`NodeSpec`]):
///
/// ```json
///   {"type": "conv2d", "name": "block.conv", "weight": "block.conv.weight", "padding": 1},
///   {"type": "add", "name": "block.add", "inputs": ["block.conv", "input"]},
/// ```
///
/// `format`, `version` (1), `description`, `classes` and `output` (default: the last node)
/// are optional; other top-level keys and unknown keys inside a layer are errors (so that a
/// misspelt `"paddding"` does not silently become 0).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Architecture {
    /// `"relevance-architecture"` if given.
    #[serde(default)]
    pub format: Option<String>,
    /// Format version; 1 if given.
    #[serde(default)]
    pub version: Option<u32>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Per-sample input shape, e.g. `[1, 28, 28]` (no batch dimension).
    pub input_shape: Vec<usize>,
    /// The nodes, in order (each after the nodes it reads).
    pub layers: Vec<NodeSpec>,
    /// The name of the output node (default: the last node).
    #[serde(default)]
    pub output: Option<String>,
    /// Optional class names, one per output.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
}

impl Architecture {
    /// Parses an architecture description from JSON text.
    ///
    /// # Errors
    /// [`Error::Format`] for invalid JSON, a missing or unknown field, or a wrong
    /// `format`/`version`.
    pub fn from_json(text: &str) -> Result<Self> {
        let arch: Architecture = serde_json::from_str(text).map_err(|e| Error::Format {
            what: "architecture description".into(),
            reason: e.to_string(),
        })?;
        if let Some(f) = &arch.format {
            if f != "relevance-architecture" {
                return Err(Error::Format {
                    what: "architecture description".into(),
                    reason: format!("format {f:?} is not \"relevance-architecture\""),
                });
            }
        }
        if let Some(v) = arch.version {
            if v != 1 {
                return Err(Error::Format {
                    what: "architecture description".into(),
                    reason: format!("version {v} (only version 1 is known)"),
                });
            }
        }
        Ok(arch)
    }

    /// Reads an architecture description from a JSON file.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; as [`Architecture::from_json`] otherwise.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let bytes = read_file(path.as_ref())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::Format {
            what: format!("architecture description {}", path.as_ref().display()),
            reason: "not UTF-8 text".into(),
        })?;
        Self::from_json(text)
    }
}

/// Loads a network from an architecture description (JSON) and a safetensors weights file.
///
/// ```
/// use relevance::io::{load_safetensors, Digits};
/// # fn main() -> relevance::Result<()> {
/// let dir = env!("CARGO_MANIFEST_DIR");
/// let net = load_safetensors::<f32>(
///     format!("{dir}/models/digits.json"),
///     format!("{dir}/models/digits.safetensors"),
/// )?;
/// assert_eq!((net.input_shape(), net.output_shape()), (&[1, 28, 28][..], &[10][..]));
/// let digits = Digits::load(format!("{dir}/data/digits_test.bin"))?;
/// let logits = net.forward(&digits.images(&[0])?)?;
/// assert_eq!(logits.shape(), &[1, 10]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`Architecture::load`] and [`from_safetensors`].
pub fn load_safetensors<F: Float>(
    architecture: impl AsRef<Path>,
    weights: impl AsRef<Path>,
) -> Result<Network<F>> {
    load_safetensors_with(architecture, weights, LoadOptions::default())
}

/// [`load_safetensors`] with options.
///
/// # Errors
/// As [`load_safetensors`].
pub fn load_safetensors_with<F: Float>(
    architecture: impl AsRef<Path>,
    weights: impl AsRef<Path>,
    options: LoadOptions,
) -> Result<Network<F>> {
    let arch = Architecture::load(architecture)?;
    from_safetensors_with(&arch, &read_file(weights.as_ref())?, options)
}

/// Builds a network from an [`Architecture`] and the bytes of a safetensors file, with
/// every batch norm that directly follows a convolution or dense layer merged into it
/// (zennit's canonizer, [`Network::merge_batch_norm`]); see [`from_safetensors_with`] to
/// keep them.
///
/// Tensors may be stored as float32 or float64 and are converted to `F`; tensors the
/// description does not mention are ignored.
///
/// # Errors
/// [`Error::Format`] for a corrupt safetensors file, a tensor of another dtype, or an input
/// that names no earlier node; [`Error::MissingTensor`] for a named tensor that is not in
/// the file; [`Error::AtNode`] (node `layer i (type tensor)`) for a tensor of the wrong rank
/// or shape, an invalid setting, or shapes that do not fit.
pub fn from_safetensors<F: Float>(architecture: &Architecture, weights: &[u8]) -> Result<Network<F>> {
    from_safetensors_with(architecture, weights, LoadOptions::default())
}

/// [`from_safetensors`] with options.
///
/// # Errors
/// As [`from_safetensors`].
pub fn from_safetensors_with<F: Float>(
    architecture: &Architecture,
    weights: &[u8],
    options: LoadOptions,
) -> Result<Network<F>> {
    let tensors = ::safetensors::SafeTensors::deserialize(weights).map_err(|e| Error::Format {
        what: "safetensors file".into(),
        reason: e.to_string(),
    })?;
    if architecture.layers.is_empty() {
        return Err(Error::EmptyNetwork);
    }
    let mut builder = Builder::<F>::new(&architecture.input_shape)?;
    for (i, spec) in architecture.layers.iter().enumerate() {
        let label = label(i, &spec.layer);
        let op = to_op(&tensors, &spec.layer, &label)?;
        let name = spec
            .name
            .clone()
            .or_else(|| weight_prefix(&spec.layer))
            .unwrap_or_else(|| i.to_string());
        builder.push(Spec {
            node: name,
            label,
            op,
            inputs: spec.inputs.clone().unwrap_or_default(),
        })?;
    }
    if let Some(output) = &architecture.output {
        builder.set_output(output)?;
    }
    if let Some(classes) = &architecture.classes {
        let out: usize = builder.shape().iter().product();
        if classes.len() != out {
            return Err(Error::Format {
                what: "architecture description".into(),
                reason: format!("{} class names for {out} outputs", classes.len()),
            });
        }
    }
    builder.finish(!options.merge_batch_norm)
}

/// `"layer1.0.conv1"` for a layer whose weight is `"layer1.0.conv1.weight"`.
fn weight_prefix(spec: &LayerSpec) -> Option<String> {
    let w = match spec {
        LayerSpec::Conv2d { weight, .. } | LayerSpec::Dense { weight, .. } => weight,
        LayerSpec::Batchnorm2d { mean, .. } => return mean.strip_suffix(".running_mean").map(str::to_string),
        _ => return None,
    };
    w.strip_suffix(".weight").map(str::to_string)
}

/// How a node is named in errors.
fn label(i: usize, spec: &LayerSpec) -> String {
    match spec {
        LayerSpec::Conv2d { weight, .. } => format!("layer {i} (conv2d {weight})"),
        LayerSpec::Dense { weight, .. } => format!("layer {i} (dense {weight})"),
        LayerSpec::Batchnorm2d { mean, .. } => format!("layer {i} (batchnorm2d {mean})"),
        other => {
            let kind = format!("{other:?}");
            let kind = kind.split([' ', '{']).next().unwrap_or("layer").to_lowercase();
            format!("layer {i} ({kind})")
        }
    }
}

fn check_pair(node: &str, what: &str, p: Pair) -> Result<(usize, usize)> {
    if p.0 > MAX_DIM || p.1 > MAX_DIM {
        return Err(Error::Format {
            what: node.to_string(),
            reason: format!("{what} {:?} is larger than {MAX_DIM}", p.tuple()),
        });
    }
    Ok(p.tuple())
}

fn to_op<F: Float>(tensors: &::safetensors::SafeTensors<'_>, spec: &LayerSpec, node: &str) -> Result<Op<F>> {
    let layer = |l: Box<dyn Layer<F>>| Ok(Op::Layer(l));
    let vector = |name: &str| -> Result<Array1<F>> { into_rank(tensor(tensors, name, node)?, node, name) };
    match spec {
        LayerSpec::Conv2d {
            weight,
            bias,
            stride,
            padding,
            dilation,
            groups,
            padding_end,
        } => {
            if *groups > MAX_DIM {
                return Err(Error::Format {
                    what: node.to_string(),
                    reason: format!("groups {groups} is larger than {MAX_DIM}"),
                });
            }
            let config = Conv2dConfig {
                stride: check_pair(node, "stride", *stride)?,
                padding: check_pair(node, "padding", *padding)?,
                dilation: check_pair(node, "dilation", *dilation)?,
                groups: *groups,
                padding_end: padding_end
                    .map(|p| check_pair(node, "padding_end", p))
                    .transpose()?,
            };
            let w: Array4<F> = into_rank(tensor(tensors, weight, node)?, node, weight)?;
            Ok(Op::Conv {
                weight: w,
                bias: bias_tensor(tensors, bias.as_deref(), node)?,
                config,
            })
        }
        LayerSpec::Dense { weight, bias } => {
            let w: Array2<F> = into_rank(tensor(tensors, weight, node)?, node, weight)?;
            Ok(Op::Dense {
                weight: w,
                bias: bias_tensor(tensors, bias.as_deref(), node)?,
            })
        }
        LayerSpec::Batchnorm2d {
            mean,
            var,
            weight,
            bias,
            eps,
        } => {
            let (mean, var) = (vector(mean)?, vector(var)?);
            let weight = weight
                .as_deref()
                .map(vector)
                .transpose()?
                .unwrap_or_else(|| Array1::ones(mean.len()));
            let bias = bias
                .as_deref()
                .map(vector)
                .transpose()?
                .unwrap_or_else(|| Array1::zeros(mean.len()));
            layer(Box::new(
                BatchNorm2d::new(mean, var, weight, bias, *eps).map_err(at_node(node))?,
            ))
        }
        LayerSpec::Relu => Ok(Op::Relu),
        LayerSpec::Relu6 => layer(Box::new(Clip::relu6())),
        LayerSpec::Clip { min, max } => layer(Box::new(Clip::new(*min, *max).map_err(at_node(node))?)),
        LayerSpec::LeakyRelu { slope } => layer(Box::new(LeakyRelu::new(*slope).map_err(at_node(node))?)),
        LayerSpec::Sigmoid => layer(Box::new(Sigmoid)),
        LayerSpec::Tanh => layer(Box::new(Tanh)),
        LayerSpec::Hardsigmoid => layer(Box::<HardSigmoid>::default()),
        LayerSpec::Hardswish => layer(Box::new(HardSwish)),
        LayerSpec::Silu => layer(Box::new(Silu)),
        LayerSpec::Elu { alpha } => layer(Box::new(Elu::new(*alpha).map_err(at_node(node))?)),
        LayerSpec::Gelu { approximate } => match approximate.as_deref() {
            None | Some("none") => layer(Box::new(Gelu::new())),
            Some("tanh") => layer(Box::new(Gelu::tanh())),
            Some(other) => Err(Error::Format {
                what: node.to_string(),
                reason: format!("approximate {other:?} (\"none\" or \"tanh\")"),
            }),
        },
        LayerSpec::Maxpool2d {
            kernel,
            stride,
            padding,
            ceil_mode,
        } => {
            let (kernel, stride, padding) = (
                check_pair(node, "kernel", *kernel)?,
                check_pair(node, "stride", stride.unwrap_or(*kernel))?,
                check_pair(node, "padding", *padding)?,
            );
            if !ceil_mode {
                return Ok(Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                });
            }
            let pool = MaxPool2d::new(kernel, stride, padding).map_err(at_node(node))?;
            layer(Box::new(pool.with_ceil_mode(true)))
        }
        LayerSpec::Avgpool2d {
            kernel,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
        } => {
            let pool = AvgPool2d::new(
                check_pair(node, "kernel", *kernel)?,
                check_pair(node, "stride", stride.unwrap_or(*kernel))?,
                check_pair(node, "padding", *padding)?,
            )
            .map_err(at_node(node))?;
            layer(Box::new(
                pool.with_ceil_mode(*ceil_mode)
                    .with_count_include_pad(*count_include_pad),
            ))
        }
        LayerSpec::AdaptiveAvgpool2d { output } => layer(Box::new(
            AvgPool2d::adaptive(check_pair(node, "output", *output)?).map_err(at_node(node))?,
        )),
        LayerSpec::Flatten => Ok(Op::Flatten),
        LayerSpec::Identity => layer(Box::new(Identity)),
        LayerSpec::Pad { pads } => {
            if pads.iter().flatten().any(|&p| p > MAX_DIM) || pads.len() > 8 {
                return Err(Error::Format {
                    what: node.to_string(),
                    reason: format!("pads {pads:?}: at most 8 axes, each at most {MAX_DIM}"),
                });
            }
            let pads: Vec<(usize, usize)> = pads.iter().map(|p| (p[0], p[1])).collect();
            layer(Box::new(Pad::new(&pads)))
        }
        LayerSpec::Add => Ok(Op::Merge(Box::new(Add::new()))),
        LayerSpec::Concat { axis } => Ok(Op::Merge(Box::new(Concat::new(*axis)))),
        LayerSpec::Mul => Ok(Op::Merge(Box::new(Mul::new()))),
    }
}

/// A tensor as an array of rank `D`, or a rank error naming the node and tensor.
fn into_rank<F: Float, D: Dimension>(t: ArrayD<F>, node: &str, name: &str) -> Result<Array<F, D>> {
    let shape = t.shape().to_vec();
    t.into_dimensionality::<D>().map_err(|_| Error::AtNode {
        node: node.to_string(),
        source: Box::new(Error::Rank {
            what: format!("tensor {name}"),
            expected: D::NDIM.unwrap_or(0),
            got: shape.len(),
            shape,
        }),
    })
}

fn bias_tensor<F: Float>(
    tensors: &::safetensors::SafeTensors<'_>,
    name: Option<&str>,
    node: &str,
) -> Result<Option<Array1<F>>> {
    name.map(|b| into_rank(tensor(tensors, b, node)?, node, b))
        .transpose()
}

/// One tensor of the file as an array of `F`.
fn tensor<F: Float>(tensors: &::safetensors::SafeTensors<'_>, name: &str, node: &str) -> Result<ArrayD<F>> {
    use ::safetensors::Dtype;
    let view = tensors.tensor(name).map_err(|_| Error::MissingTensor {
        tensor: name.to_string(),
        node: node.to_string(),
    })?;
    let shape = view.shape().to_vec();
    let what = format!("tensor {name}");
    let n = checked_count(&what, &shape, usize::MAX)?;
    let data = view.data();
    let size = match view.dtype() {
        Dtype::F32 => 4,
        Dtype::F64 => 8,
        other => {
            return Err(Error::Format {
                what,
                reason: format!("dtype {other:?} is not supported (F32 or F64)"),
            })
        }
    };
    if Some(data.len()) != n.checked_mul(size) {
        return Err(Error::Format {
            what,
            reason: format!("shape {shape:?} does not match {} data bytes", data.len()),
        });
    }
    let values: Vec<F> = if size == 4 {
        data.chunks_exact(4)
            .map(|b| super::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|b| {
                super::from_f64(f64::from_le_bytes([
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                ]))
            })
            .collect()
    };
    ArrayD::from_shape_vec(IxDyn(&shape), values)
        .map_err(|e| Error::Format {
            what,
            reason: e.to_string(),
        })
        .map_err(at_node(node))
}
