//! PyTorch weights in safetensors files, with a JSON architecture description.

use super::{at_node, checked_count, read_file, Builder, Op, Spec, MAX_DIM};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::Conv2dConfig;
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

/// One layer of an [`Architecture`]; in JSON an object with a `"type"` and the layer's
/// settings. Parameter tensors are named as in the PyTorch `state_dict` saved to the
/// safetensors file.
///
/// | `"type"` | fields (defaults) | PyTorch |
/// |---|---|---|
/// | `"conv2d"` | `weight`, `bias` (none), `stride` (1), `padding` (0), `dilation` (1) | `nn.Conv2d` |
/// | `"dense"` (or `"linear"`) | `weight`, `bias` (none) | `nn.Linear` |
/// | `"relu"` | | `nn.ReLU` |
/// | `"maxpool2d"` | `kernel`, `stride` (= kernel), `padding` (0) | `nn.MaxPool2d` |
/// | `"flatten"` | | `nn.Flatten` |
///
/// Sizes are one number or `[height, width]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum LayerSpec {
    /// A 2-D convolution, weight `[out, in, kh, kw]`.
    Conv2d {
        /// Name of the weight tensor.
        weight: String,
        /// Name of the bias tensor `[out]`, if any.
        #[serde(default)]
        bias: Option<String>,
        /// Stride.
        #[serde(default = "one")]
        stride: Pair,
        /// Zero padding on each side.
        #[serde(default = "zero")]
        padding: Pair,
        /// Dilation.
        #[serde(default = "one")]
        dilation: Pair,
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
    /// ReLU.
    Relu,
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
    },
    /// Flatten everything but the batch dimension.
    Flatten,
}

/// The architecture description that goes with a safetensors weights file: the per-sample
/// input shape and the ordered list of layers.
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
/// `format`, `version` (1), `description` and `classes` are optional; other top-level keys
/// and unknown keys inside a layer are errors (so that a misspelt `"paddding"` does not
/// silently become 0).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
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
    let arch = Architecture::load(architecture)?;
    from_safetensors(&arch, &read_file(weights.as_ref())?)
}

/// Builds a network from an [`Architecture`] and the bytes of a safetensors file.
///
/// Tensors may be stored as float32 or float64 and are converted to `F`; tensors the
/// description does not mention are ignored.
///
/// # Errors
/// [`Error::Format`] for a corrupt safetensors file or a tensor of another dtype;
/// [`Error::MissingTensor`] for a named tensor that is not in the file; [`Error::AtNode`]
/// (node `layer i (type tensor)`) for a tensor of the wrong rank or shape, an invalid
/// setting, or shapes that do not chain.
pub fn from_safetensors<F: Float>(architecture: &Architecture, weights: &[u8]) -> Result<Network<F>> {
    let tensors = ::safetensors::SafeTensors::deserialize(weights).map_err(|e| Error::Format {
        what: "safetensors file".into(),
        reason: e.to_string(),
    })?;
    if architecture.layers.is_empty() {
        return Err(Error::EmptyNetwork);
    }
    let mut builder = Builder::<F>::new(&architecture.input_shape)?;
    for (i, spec) in architecture.layers.iter().enumerate() {
        let node = node_name(i, spec);
        let op = to_op(&tensors, spec, &node)?;
        builder.push(Spec { node, op })?;
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
    builder.finish()
}

fn node_name(i: usize, spec: &LayerSpec) -> String {
    match spec {
        LayerSpec::Conv2d { weight, .. } => format!("layer {i} (conv2d {weight})"),
        LayerSpec::Dense { weight, .. } => format!("layer {i} (dense {weight})"),
        LayerSpec::Relu => format!("layer {i} (relu)"),
        LayerSpec::Maxpool2d { .. } => format!("layer {i} (maxpool2d)"),
        LayerSpec::Flatten => format!("layer {i} (flatten)"),
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
    Ok(match spec {
        LayerSpec::Conv2d {
            weight,
            bias,
            stride,
            padding,
            dilation,
        } => {
            let config = Conv2dConfig {
                stride: check_pair(node, "stride", *stride)?,
                padding: check_pair(node, "padding", *padding)?,
                dilation: check_pair(node, "dilation", *dilation)?,
                ..Conv2dConfig::default()
            };
            let w: Array4<F> = into_rank(tensor(tensors, weight, node)?, node, weight)?;
            Op::Conv {
                weight: w,
                bias: bias_tensor(tensors, bias.as_deref(), node)?,
                config,
            }
        }
        LayerSpec::Dense { weight, bias } => {
            let w: Array2<F> = into_rank(tensor(tensors, weight, node)?, node, weight)?;
            Op::Dense {
                weight: w,
                bias: bias_tensor(tensors, bias.as_deref(), node)?,
            }
        }
        LayerSpec::Relu => Op::Relu,
        LayerSpec::Maxpool2d {
            kernel,
            stride,
            padding,
        } => Op::MaxPool {
            kernel: check_pair(node, "kernel", *kernel)?,
            stride: check_pair(node, "stride", stride.unwrap_or(*kernel))?,
            padding: check_pair(node, "padding", *padding)?,
        },
        LayerSpec::Flatten => Op::Flatten,
    })
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
