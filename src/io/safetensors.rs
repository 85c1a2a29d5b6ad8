//! PyTorch weights in safetensors files, with a JSON architecture description
//! (`architecture.rs`).

use super::architecture::{Architecture, LayerSpec, Pair};
use super::{at_node, checked_count, read_file, Builder, LoadOptions, Op, Spec, MAX_DIM};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{
    Add, AvgPool2d, BatchNorm2d, Clip, Concat, Conv2dConfig, ConvTranspose2dConfig, Elu, Gelu, HardSigmoid,
    HardSwish, Identity, Layer, LeakyRelu, MaxPool2d, Mul, Pad, Sigmoid, Silu, Tanh,
};
use crate::network::Network;
use ndarray::{ArcArray, ArcArray1, Array, Array1, ArrayD, Dimension, Ix1, Ix2, Ix4, IxDyn};
use std::collections::HashMap;
use std::path::Path;

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
    builder.limit_weights(weights.len());
    let mut shared = Shared::new(&tensors);
    for (i, spec) in architecture.layers.iter().enumerate() {
        let label = label(i, &spec.layer);
        let op = to_op(&mut shared, &spec.layer, &label)?;
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
        LayerSpec::Conv2d { weight, .. }
        | LayerSpec::ConvTranspose2d { weight, .. }
        | LayerSpec::Dense { weight, .. } => weight,
        LayerSpec::Batchnorm2d { mean, .. } => return mean.strip_suffix(".running_mean").map(str::to_string),
        _ => return None,
    };
    w.strip_suffix(".weight").map(str::to_string)
}

/// How a node is named in errors.
fn label(i: usize, spec: &LayerSpec) -> String {
    match spec {
        LayerSpec::Conv2d { weight, .. } => format!("layer {i} (conv2d {weight})"),
        LayerSpec::ConvTranspose2d { weight, .. } => format!("layer {i} (convtranspose2d {weight})"),
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

/// The file's tensors, each decoded once and shared by every layer that names it.
struct Shared<'a, 'b, F: Float> {
    tensors: &'a ::safetensors::SafeTensors<'b>,
    decoded: HashMap<String, ArcArray<F, IxDyn>>,
}

impl<'a, 'b, F: Float> Shared<'a, 'b, F> {
    fn new(tensors: &'a ::safetensors::SafeTensors<'b>) -> Self {
        Shared {
            tensors,
            decoded: HashMap::new(),
        }
    }

    /// The tensor `name` as a shared array of rank `D`.
    fn get<D: Dimension>(&mut self, name: &str, node: &str) -> Result<ArcArray<F, D>> {
        let t = match self.decoded.get(name) {
            Some(t) => t.clone(),
            None => {
                let t = tensor(self.tensors, name, node)?.into_shared();
                self.decoded.insert(name.to_string(), t.clone());
                t
            }
        };
        let shape = t.shape().to_vec();
        t.into_dimensionality::<D>()
            .map_err(|_| rank_error::<D>(node, name, shape))
    }

    fn bias(&mut self, name: Option<&str>, node: &str) -> Result<Option<ArcArray1<F>>> {
        name.map(|b| self.get::<Ix1>(b, node)).transpose()
    }
}

fn to_op<F: Float>(shared: &mut Shared<'_, '_, F>, spec: &LayerSpec, node: &str) -> Result<Op<F>> {
    let tensors = shared.tensors;
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
            Ok(Op::Conv {
                weight: shared.get::<Ix4>(weight, node)?,
                bias: shared.bias(bias.as_deref(), node)?,
                config,
            })
        }
        LayerSpec::ConvTranspose2d {
            weight,
            bias,
            stride,
            padding,
            dilation,
            groups,
            output_padding,
            padding_end,
        } => {
            if *groups > MAX_DIM {
                return Err(Error::Format {
                    what: node.to_string(),
                    reason: format!("groups {groups} is larger than {MAX_DIM}"),
                });
            }
            let config = ConvTranspose2dConfig {
                stride: check_pair(node, "stride", *stride)?,
                padding: check_pair(node, "padding", *padding)?,
                dilation: check_pair(node, "dilation", *dilation)?,
                groups: *groups,
                output_padding: check_pair(node, "output_padding", *output_padding)?,
                padding_end: padding_end
                    .map(|p| check_pair(node, "padding_end", p))
                    .transpose()?,
            };
            Ok(Op::ConvTranspose {
                weight: shared.get::<Ix4>(weight, node)?,
                bias: shared.bias(bias.as_deref(), node)?,
                config,
            })
        }
        LayerSpec::Dense { weight, bias } => Ok(Op::Dense {
            weight: shared.get::<Ix2>(weight, node)?,
            bias: shared.bias(bias.as_deref(), node)?,
        }),
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
    t.into_dimensionality::<D>()
        .map_err(|_| rank_error::<D>(node, name, shape))
}

/// The error for tensor `name` of `shape` where rank `D` is expected.
fn rank_error<D: Dimension>(node: &str, name: &str, shape: Vec<usize>) -> Error {
    Error::AtNode {
        node: node.to_string(),
        source: Box::new(Error::Rank {
            what: format!("tensor {name}"),
            expected: D::NDIM.unwrap_or(0),
            got: shape.len(),
            shape,
        }),
    }
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
