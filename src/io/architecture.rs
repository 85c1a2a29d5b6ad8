//! The JSON architecture description that goes with a safetensors weights file: the
//! per-sample input shape and the nodes (layers, merges) with their settings and the names
//! of their parameter tensors.

use super::read_file;
use crate::error::{Error, Result};
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
    pub(super) fn tuple(self) -> (usize, usize) {
        (self.0, self.1)
    }
}

pub(super) fn one() -> Pair {
    Pair(1, 1)
}

pub(super) fn zero() -> Pair {
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
/// | `"convtranspose2d"` | `weight` (`[in, out / groups, kh, kw]`), `bias` (none), `stride` (1), `padding` (0), `dilation` (1), `groups` (1), `output_padding` (0), `padding_end` (= `padding`) | `nn.ConvTranspose2d` |
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
    /// A 2-D transposed convolution, weight `[in, out / groups, kh, kw]`.
    #[serde(rename = "convtranspose2d")]
    ConvTranspose2d {
        /// Name of the weight tensor.
        weight: String,
        /// Name of the bias tensor `[out]`, if any.
        #[serde(default)]
        bias: Option<String>,
        /// Stride.
        #[serde(default = "one")]
        stride: Pair,
        /// Rows and columns removed at the start (and, unless `padding_end` is given, at the
        /// end) of the output.
        #[serde(default = "zero")]
        padding: Pair,
        /// Dilation.
        #[serde(default = "one")]
        dilation: Pair,
        /// Groups of channels convolved separately.
        #[serde(default = "one_usize")]
        groups: usize,
        /// Rows and columns added at the end of the output (smaller than the stride).
        #[serde(default = "zero")]
        output_padding: Pair,
        /// Rows and columns removed at the end of the output, if not `padding`.
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
