//! Reading networks and data from files.
//!
//! * **safetensors + architecture JSON** (feature `safetensors`, on by default):
//!   [`load_safetensors`] reads PyTorch weights saved with `safetensors.torch.save_file`
//!   together with a small [`Architecture`] description (input shape and the ordered layer
//!   list, naming each layer's parameter tensors by their `state_dict` names).
//! * **ONNX** (feature `onnx`, on by default): [`load_onnx`] imports any directed acyclic
//!   graph of the operators [`onnx_operators`] lists (residual additions, concatenations,
//!   gates), as PyTorch's exporters, TensorFlow's and CoreML's converters write them: the
//!   constant and shape arithmetic around the layers is evaluated when the file is read,
//!   batch norms are merged into the convolutions before them, transposes that cancel out
//!   build nothing, and a trailing softmax is removed so that the logits are explained.
//! * **Text** (feature `tokenizers`): `Tokenizer` reads a Hugging Face `tokenizer.json`
//!   and turns text into token ids (and the tokens' own strings for text heatmaps).
//! * **Arrays and digits** (always available): [`read_npy`]/[`write_npy`] for NumPy's
//!   `.npy` files, and [`Digits`] for the bundled test digits (`data/digits_test.bin`).
//!
//! Every loader is generic over the crate's [`Float`]: weights stored as float32 load into
//! an `f64` network exactly (and float64 weights round into an `f32` one).
//!
//! Nothing here trusts the file: a truncated or corrupt file, a tensor whose stored size
//! does not match its shape, an absurd dimension, an unsupported operator or a missing
//! tensor is a typed [`Error`] naming the node or tensor — never a panic, and never an
//! allocation larger than the file itself or the size limits below.

// The layer builder below serves the model loaders only.
#![cfg_attr(not(any(feature = "onnx", feature = "safetensors")), allow(dead_code))]

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{
    Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Dense, Flatten,
    Layer, MaxPool2d, Merge, Relu,
};
use crate::network::{GraphBuilder, Network, NodeId, Op as NodeOp};
use ndarray::{ArcArray, ArcArray1, ArcArray2, Ix3, Ix4};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "safetensors")]
mod architecture;
mod digits;
mod npy;
#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "safetensors")]
mod safetensors;
#[cfg(feature = "tokenizers")]
mod tokenizer;

#[cfg(feature = "safetensors")]
pub use architecture::{Architecture, LayerSpec, NodeSpec, Pair};
pub use digits::Digits;
#[cfg(feature = "genomics-io")]
pub(crate) use npy::npy_preamble;
pub use npy::{load_npy, npy_element_type, read_npy, save_npy, write_npy};
#[cfg(feature = "onnx")]
pub use onnx::{
    from_onnx, from_onnx_with, load_onnx, load_onnx_with, onnx_operators, FixedInput, OnnxModel,
    OnnxOperator, OnnxOptions,
};
#[cfg(feature = "safetensors")]
pub use safetensors::{from_safetensors, from_safetensors_with, load_safetensors, load_safetensors_with};
#[cfg(feature = "tokenizers")]
pub use tokenizer::{Encoding, Tokenizer};

/// The largest file a loader reads: 2 GiB (also protobuf's own limit for an ONNX model).
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// The largest per-sample activation (input, or any layer's output, or a convolution's
/// unfolded input) a loaded network may have: 2²⁶ values (64 Mi, 256 MiB as `f32`).
pub const MAX_ACTIVATION: usize = 1 << 26;

/// The largest single dimension, stride, padding, dilation or kernel size a model file
/// may state: 2²⁰.
pub const MAX_DIM: usize = 1 << 20;

/// Reads a whole file, refusing files above [`MAX_FILE_BYTES`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    let io_err = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::Io {
            path: path.display().to_string(),
            reason: format!("{} bytes is more than the limit of {MAX_FILE_BYTES}", meta.len()),
        });
    }
    std::fs::read(path).map_err(io_err)
}

/// The product of `dims`, or a [`Error::Format`] naming `what` if it overflows or exceeds
/// `limit`.
pub(crate) fn checked_count(what: &str, dims: &[usize], limit: usize) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= limit)
        .ok_or_else(|| Error::Format {
            what: what.to_string(),
            reason: format!("shape {dims:?} holds more than {limit} values"),
        })
}

/// One node read from a file, before it is built: its name, what it computes, and the
/// names of the nodes it reads (empty: the node before it, or the input).
#[derive(Debug)]
#[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // what the JSON loader uses
pub(crate) struct Spec<F: Float> {
    /// The node's name in the network.
    pub node: String,
    /// How errors name the node.
    pub label: String,
    pub op: Op<F>,
    pub inputs: Vec<String>,
}

/// Options of the loaders ([`load_safetensors_with`], and the ONNX loader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Merge every batch norm that directly follows a convolution or dense layer into it
    /// (zennit's canonizer, [`Network::merge_batch_norm`]). Default `true`: that is how
    /// zennit's `VGGCanonizer` and `ResNetCanonizer` explain such networks.
    pub merge_batch_norm: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            merge_batch_norm: true,
        }
    }
}

impl LoadOptions {
    /// Options that keep batch norms as layers (LRP then passes relevance through them).
    pub fn keep_batch_norm() -> Self {
        LoadOptions {
            merge_batch_norm: false,
        }
    }
}

/// A node read from a file. Parameters are shared: a tensor that several nodes read is
/// stored once.
#[derive(Debug)]
pub(crate) enum Op<F: Float> {
    Conv {
        weight: ArcArray<F, Ix4>,
        bias: Option<ArcArray1<F>>,
        config: Conv2dConfig,
    },
    #[cfg_attr(not(feature = "onnx"), allow(dead_code))] // what the ONNX importer uses
    Conv1d {
        weight: ArcArray<F, Ix3>,
        bias: Option<ArcArray1<F>>,
        config: Conv1dConfig,
    },
    ConvTranspose {
        weight: ArcArray<F, Ix4>,
        bias: Option<ArcArray1<F>>,
        config: ConvTranspose2dConfig,
    },
    Dense {
        weight: ArcArray2<F>,
        bias: Option<ArcArray1<F>>,
    },
    #[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // what the JSON loader uses
    Relu,
    #[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // what the JSON loader uses
    MaxPool {
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    },
    Flatten,
    /// Any other one-input layer, built.
    Layer(Box<dyn Layer<F>>),
    /// A node with several inputs, built.
    Merge(Box<dyn Merge<F>>),
}

impl<F: Float> Op<F> {
    /// Builds the node (checking its parameters).
    pub(crate) fn build(self) -> Result<NodeOp<F>> {
        Ok(NodeOp::Layer(match self {
            Op::Conv { weight, bias, config } => Arc::new(Conv2d::from_shared(weight, bias, config)?),
            Op::Conv1d { weight, bias, config } => Arc::new(Conv1d::from_shared(weight, bias, config)?),
            Op::ConvTranspose { weight, bias, config } => {
                Arc::new(ConvTranspose2d::from_shared(weight, bias, config)?)
            }
            Op::Dense { weight, bias } => Arc::new(Dense::from_shared(weight, bias)?),
            Op::Relu => Arc::new(Relu),
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => Arc::new(MaxPool2d::new(kernel, stride, padding)?),
            Op::Flatten => Arc::new(Flatten),
            Op::Layer(l) => Arc::from(l),
            Op::Merge(m) => return Ok(NodeOp::Merge(Arc::from(m))),
        }))
    }
}

/// Wraps an error with the node it happened at.
pub(crate) fn at_node(node: &str) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e {
        e @ (Error::AtNode { .. }
        | Error::UnsupportedOperator { .. }
        | Error::MissingTensor { .. }
        | Error::Format { .. }) => e,
        e => Error::AtNode {
            node: node.to_string(),
            source: Box::new(e),
        },
    }
}

/// Checks a per-sample shape against [`MAX_ACTIVATION`].
pub(crate) fn check_activation(node: &str, what: &str, shape: &[usize]) -> Result<()> {
    checked_count(&format!("{node}: {what}"), shape, MAX_ACTIVATION).map(|_| ())
}

/// Builds a network node by node, checking that the shapes fit and stay within the size
/// limits; every error names the node. Inputs are found by name; a node without named
/// inputs reads the node added before it (or the input).
pub(crate) struct Builder<F: Float> {
    graph: GraphBuilder<F>,
    #[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // what the JSON loader uses
    ids: HashMap<String, NodeId>,
    last: NodeId,
    /// How many more weight values the layers may hold (see [`Builder::limit_weights`]).
    weights_left: usize,
    /// The parameter arrays already counted (by address: a shared tensor counts once; the
    /// layers holding them live as long as the builder, so no address is reused).
    counted: HashSet<usize>,
}

/// The weight values a loaded network may hold beyond what its file stores (2²⁴), for
/// weights computed at load time (folded constants, scaled or transposed weights). A tensor
/// that several layers share is held, and counted, once.
pub const WEIGHT_SLACK: usize = 1 << 24;

impl<F: Float> Builder<F> {
    pub(crate) fn new(input_shape: &[usize]) -> Result<Self> {
        if input_shape.is_empty() || input_shape.contains(&0) {
            return Err(Error::Format {
                what: "network input".into(),
                reason: format!("input shape {input_shape:?} must be non-empty with positive dimensions"),
            });
        }
        check_activation("network input", "shape", input_shape)?;
        let graph = GraphBuilder::new(input_shape)?;
        let last = graph.input();
        let ids = HashMap::from([("input".to_string(), last)]);
        Ok(Builder {
            graph,
            ids,
            last,
            weights_left: usize::MAX,
            counted: HashSet::new(),
        })
    }

    /// Limits the weight values of all layers together to what a file of `stored_bytes`
    /// bytes of tensor data can hold (at least 2 bytes per value: float16) plus
    /// [`WEIGHT_SLACK`] (weights computed at load time). A tensor that several layers share
    /// counts once: the layers hold one copy of it.
    pub(crate) fn limit_weights(&mut self, stored_bytes: usize) {
        self.weights_left = (stored_bytes / 2).saturating_add(WEIGHT_SLACK);
    }

    /// Takes the parameters `(address, values)` not counted yet from the budget.
    fn take_weights(&mut self, node: &str, parameters: &[(usize, usize)]) -> Result<()> {
        for &(address, n) in parameters {
            if !self.counted.insert(address) {
                continue;
            }
            self.weights_left = self.weights_left.checked_sub(n).ok_or_else(|| Error::Format {
                what: node.to_string(),
                reason: format!(
                    "the layers' weights add up to more values than the file stores (plus {WEIGHT_SLACK})"
                ),
            })?;
        }
        Ok(())
    }

    /// The per-sample output shape of the last node added.
    #[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // what the JSON loader uses
    pub(crate) fn shape(&self) -> &[usize] {
        self.graph.shape(self.last).expect("a node of this builder")
    }

    /// Makes the named node the output.
    #[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // what the JSON loader uses
    pub(crate) fn set_output(&mut self, name: &str) -> Result<()> {
        self.last = self.ids.get(name).copied().ok_or_else(|| Error::Format {
            what: "network output".into(),
            reason: format!("output {name:?} is not a node"),
        })?;
        Ok(())
    }

    #[cfg_attr(not(feature = "safetensors"), allow(dead_code))] // what the JSON loader uses
    pub(crate) fn push(&mut self, spec: Spec<F>) -> Result<()> {
        let inputs: Vec<NodeId> = if spec.inputs.is_empty() {
            vec![self.last]
        } else {
            spec.inputs
                .iter()
                .map(|name| {
                    self.ids.get(name).copied().ok_or_else(|| Error::Format {
                        what: spec.label.clone(),
                        reason: format!("input {name:?} is not an earlier node"),
                    })
                })
                .collect::<Result<_>>()?
        };
        let id = self.add(&spec.node, &spec.label, spec.op, &inputs)?;
        if spec.node != "input" {
            self.ids.insert(spec.node, id);
        }
        Ok(())
    }

    /// Whether a node of this name was added.
    #[cfg(feature = "onnx")]
    pub(crate) fn has_name(&self, name: &str) -> bool {
        self.graph.has_name(name)
    }

    /// Adds a held input (see [`GraphBuilder::held_input`]), checking its size as a
    /// node's output.
    #[cfg(feature = "onnx")]
    pub(crate) fn held_input(&mut self, name: &str, shape: &[usize]) -> Result<NodeId> {
        check_activation(name, "shape", shape)?;
        self.graph.held_input(name, shape)
    }

    /// Adds a constant node (see [`GraphBuilder::constant`]): one row `[1, ...]` that every
    /// sample shares, its values counted with the layers' weights.
    #[cfg(feature = "onnx")]
    pub(crate) fn constant(&mut self, name: &str, value: ndarray::ArrayD<F>) -> Result<NodeId> {
        let value = Arc::new(value);
        self.take_weights(name, &[(value.as_ptr() as usize, value.len())])?;
        let id = self.graph.constant_shared(name, value)?;
        check_activation(name, "output", self.graph.shape(id)?)?;
        Ok(id)
    }

    /// The network input.
    #[cfg_attr(not(feature = "onnx"), allow(dead_code))] // what the ONNX importer uses
    pub(crate) fn input(&self) -> NodeId {
        self.graph.input()
    }

    /// The per-sample shape of a node's output.
    #[cfg_attr(not(feature = "onnx"), allow(dead_code))] // what the ONNX importer uses
    pub(crate) fn shape_of(&self, id: NodeId) -> &[usize] {
        self.graph.shape(id).expect("a node of this builder")
    }

    /// Adds a node named `name` (errors name it `label`) reading `inputs`, checking that its
    /// output (and a convolution's unfolded input) stays within [`MAX_ACTIVATION`]; it becomes
    /// the last node.
    pub(crate) fn add(&mut self, name: &str, label: &str, op: Op<F>, inputs: &[NodeId]) -> Result<NodeId> {
        let node = label;
        let conv_cols = match &op {
            Op::Conv { weight, .. } => Some(weight.shape()[1..].iter().product::<usize>()),
            Op::Conv1d { weight, .. } => Some(weight.shape()[1..].iter().product::<usize>()),
            _ => None,
        };
        // a transposed convolution unfolds its output into [out·kh·kw, H·W] over its input
        let deconv_cols = match (&op, inputs.first()) {
            (Op::ConvTranspose { weight, config, .. }, Some(&u)) => {
                let s = self.graph.shape(u).map_err(at_node(node))?;
                Some((
                    weight.shape()[1..]
                        .iter()
                        .product::<usize>()
                        .saturating_mul(config.groups),
                    s.get(1..).unwrap_or_default().iter().product::<usize>(),
                ))
            }
            _ => None,
        };
        let op = op.build().map_err(at_node(node))?;
        // the layer's parameters, as (address, values)
        let parameters: Vec<(usize, usize)> = match &op {
            NodeOp::Layer(l) => l.class().affine().map_or_else(Vec::new, |a| {
                let w = a.weight();
                let mut p = vec![(w.as_ptr() as usize, w.len())];
                p.extend(a.bias().map(|b| (b.as_ptr() as usize, b.len())));
                p
            }),
            _ => Vec::new(),
        };
        self.take_weights(node, &parameters)?;
        let id = match op {
            NodeOp::Layer(layer) => {
                if inputs.len() != 1 {
                    return Err(Error::Format {
                        what: node.to_string(),
                        reason: format!("a layer reads one input, {} given", inputs.len()),
                    });
                }
                self.graph.add_shared(name, layer, inputs[0])
            }
            NodeOp::Merge(merge) => self.graph.merge_shared(name, merge, inputs),
            // the importer builds layers and merges only (held inputs: not imported yet)
            NodeOp::Held | NodeOp::Constant(_) => Err(Error::Format {
                what: node.to_string(),
                reason: "a node without input is not imported".into(),
            }),
        }
        .map_err(|e| match e {
            Error::AtLayer { source, .. } => at_node(node)(*source),
            e => at_node(node)(e),
        })?;
        let next = self.graph.shape(id)?.to_vec();
        check_activation(node, "output", &next)?;
        if let Some((cols, spatial)) = deconv_cols {
            check_activation(node, "unfolded output", &[cols, spatial])?;
        }
        if let Some(cols) = conv_cols {
            // im2col unfolds [in·kh·kw, H'·W'] per sample
            let spatial: usize = next[1..].iter().product();
            check_activation(node, "unfolded input", &[cols, spatial])?;
        }
        self.last = id;
        Ok(id)
    }

    /// The network with `output` as its output, batch norms merged unless `keep_batch_norm`.
    #[cfg_attr(not(feature = "onnx"), allow(dead_code))] // what the ONNX importer uses
    pub(crate) fn finish_at(mut self, output: NodeId, keep_batch_norm: bool) -> Result<Network<F>> {
        self.last = output;
        self.finish(keep_batch_norm)
    }

    /// The network, with the last node added as its output and every batch norm that
    /// follows an affine layer merged into it (zennit's canonizer; see
    /// [`Network::merge_batch_norm`]) unless `keep_batch_norm`.
    pub(crate) fn finish(self, keep_batch_norm: bool) -> Result<Network<F>> {
        let net = self.graph.build(self.last)?;
        if keep_batch_norm {
            Ok(net)
        } else {
            net.merge_batch_norm()
        }
    }
}

/// Converts stored float32 values to `F`.
pub(crate) fn from_f32<F: Float>(v: f32) -> F {
    F::from_f32(v).unwrap_or_else(F::nan)
}

/// Converts stored float64 values to `F`.
pub(crate) fn from_f64<F: Float>(v: f64) -> F {
    F::lit(v)
}
