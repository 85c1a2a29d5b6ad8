//! Reading networks and data from files.
//!
//! * **safetensors + architecture JSON** (feature `safetensors`, on by default):
//!   [`load_safetensors`] reads PyTorch weights saved with `safetensors.torch.save_file`
//!   together with a small [`Architecture`] description (input shape and the ordered layer
//!   list, naming each layer's parameter tensors by their `state_dict` names).
//! * **ONNX** (feature `onnx`, on by default): [`load_onnx`] imports a sequential graph of
//!   `Conv`, `Gemm` (or `MatMul` + `Add`), `Relu`, `MaxPool` and `Flatten`/`Reshape`, as
//!   `torch.onnx.export` writes for an `nn.Sequential` of those layers.
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
use crate::layers::{Conv2d, Conv2dConfig, Dense, Flatten, Layer, MaxPool2d, Relu};
use crate::network::Network;
use ndarray::{Array1, Array2, Array4};
use std::path::Path;

mod digits;
mod npy;
#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "safetensors")]
mod safetensors;

pub use digits::Digits;
pub use npy::{load_npy, read_npy, save_npy, write_npy};
#[cfg(feature = "onnx")]
pub use onnx::{from_onnx, load_onnx};
#[cfg(feature = "safetensors")]
pub use safetensors::{from_safetensors, load_safetensors, Architecture, LayerSpec, Pair};

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

/// One layer read from a file, before it is built, with the name of the node (or
/// described layer) it came from.
#[derive(Debug)]
pub(crate) struct Spec<F: Float> {
    pub node: String,
    pub op: Op<F>,
}

#[derive(Debug)]
pub(crate) enum Op<F: Float> {
    Conv {
        weight: Array4<F>,
        bias: Option<Array1<F>>,
        config: Conv2dConfig,
    },
    Dense {
        weight: Array2<F>,
        bias: Option<Array1<F>>,
    },
    Relu,
    MaxPool {
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    },
    Flatten,
}

impl<F: Float> Op<F> {
    /// Builds the layer (checking its parameters).
    pub(crate) fn build(self) -> Result<Box<dyn Layer<F>>> {
        Ok(match self {
            Op::Conv { weight, bias, config } => Box::new(Conv2d::new(weight, bias, config)?),
            Op::Dense { weight, bias } => Box::new(Dense::new(weight, bias)?),
            Op::Relu => Box::new(Relu),
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => Box::new(MaxPool2d::new(kernel, stride, padding)?),
            Op::Flatten => Box::new(Flatten),
        })
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

/// Builds layers one by one, checking that the shapes chain and stay within the size
/// limits; every error names the node.
pub(crate) struct Builder<F: Float> {
    input_shape: Vec<usize>,
    shape: Vec<usize>,
    layers: Vec<Box<dyn Layer<F>>>,
}

impl<F: Float> Builder<F> {
    pub(crate) fn new(input_shape: &[usize]) -> Result<Self> {
        if input_shape.is_empty() || input_shape.contains(&0) {
            return Err(Error::Format {
                what: "network input".into(),
                reason: format!("input shape {input_shape:?} must be non-empty with positive dimensions"),
            });
        }
        check_activation("network input", "shape", input_shape)?;
        Ok(Builder {
            input_shape: input_shape.to_vec(),
            shape: input_shape.to_vec(),
            layers: Vec::new(),
        })
    }

    /// The current per-sample shape (the output of the last layer added).
    pub(crate) fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub(crate) fn push(&mut self, spec: Spec<F>) -> Result<()> {
        let node = spec.node;
        let conv_cols = match &spec.op {
            Op::Conv { weight, .. } => Some(weight.shape()[1..].iter().product::<usize>()),
            _ => None,
        };
        let layer = spec.op.build().map_err(at_node(&node))?;
        let next = layer.output_shape(&self.shape).map_err(at_node(&node))?;
        check_activation(&node, "output", &next)?;
        if let Some(cols) = conv_cols {
            // im2col unfolds [in·kh·kw, H'·W'] per sample
            let spatial: usize = next[1..].iter().product();
            check_activation(&node, "unfolded input", &[cols, spatial])?;
        }
        self.shape = next;
        self.layers.push(layer);
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Network<F>> {
        Network::new(&self.input_shape, self.layers)
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
