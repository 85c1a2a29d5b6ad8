//! Normalisations: `BatchNormalization` (a [`BatchNorm2d`], merged into the convolution
//! before it by default), `LRN` and `ImageScaler` (an input normalisation, a per-channel
//! affine layer); the transformers' `LayerNormalization` (a [`LayerNorm`]) and
//! `RMSNormalization`/`SimplifiedLayerNormalization` (an [`RmsNorm`]) over the trailing axes
//! from `axis` on. Layer norms and RMS norms written out of elementary operators (older
//! exporters, Hugging Face's modules) become the same layers (`written.rs`).

mod written;

use super::conv::constant_weights;
use super::{Ctx, Registry};
use crate::error::Error;
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values;
use crate::io::onnx::view::Data;
use crate::io::Op;
use crate::layers::{BatchNorm2d, Layer, LayerNorm, LocalResponseNorm, RmsNorm};
use ndarray::{Array1, IxDyn};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "BatchNormalization",
        "BatchNorm2d, merged into the Conv/Gemm before it when that is its only reader (OnnxOptions::merge_batch_norm)",
    )
    .build(batch_norm)
    .check(|p| {
        if p.attrs.int("training_mode", 0).ok() != Some(0) || (1..p.node.output.len()).any(|k| p.graph.used(p.node, k)) {
            return Some("training mode (running statistics updated)".into());
        }
        constant_weights(p)
    });
    reg.op("LRN", "LocalResponseNorm (ONNX's channel window)")
        .build(lrn);
    reg.op(
        "ImageScaler",
        "a per-channel affine layer (BatchNorm2d::from_scale_shift)",
    )
    .build(image_scaler);
    reg.op(
        "LayerNormalization",
        "LayerNorm over the axes from axis on (epsilon, optional scale and bias)",
    )
    .build(row_norm)
    .check(statistics_unused);
    for op in ["RMSNormalization", "SimplifiedLayerNormalization"] {
        reg.op(op, "RmsNorm over the axes from axis on (epsilon, scale)")
            .build(row_norm)
            .check(statistics_unused);
    }
    reg.pattern("ReduceMean", written::decomposed_norm);
}

/// The mean and inverse standard deviation outputs are not computed.
fn statistics_unused(p: &Pre<'_>) -> Option<String> {
    (1..p.node.output.len())
        .any(|k| p.graph.used(p.node, k))
        .then(|| "its mean or inverse standard deviation output is used".into())
}

/// An epsilon stored as float32, read as the shortest decimal that rounds to it: PyTorch's
/// `1e-6` is written as the float32 nearest to it, and read back as `1e-6` (the float64
/// model's value) rather than `9.99999997e-7`.
pub(super) fn epsilon(stored: f32) -> f64 {
    format!("{stored}").parse().unwrap_or(f64::from(stored))
}

/// `LayerNormalization`, `RMSNormalization`, `SimplifiedLayerNormalization`: the
/// normalisation over the per-sample axes from `axis` on, with the scale (and bias)
/// broadcast to their shape.
fn row_norm<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    n.attrs.only(&["axis", "epsilon", "stash_type"])?;
    if (1..n.node.output.len()).any(|k| imp.g.used(n.node, k)) {
        return Err(n.refuse("its mean or inverse standard deviation output is used"));
    }
    let d = imp.data_arg(n, 0)?;
    let given = n.attrs.int("axis", -1)?;
    let eps = epsilon(n.attrs.float("epsilon", 1e-5)?);
    let scale = imp.const_arg(n, 1)?;
    let bias = if n.op() == "LayerNormalization" {
        imp.const_arg(n, 2)?
    } else {
        None
    };
    let layer = normalization(
        n.label,
        n.op() == "LayerNormalization",
        &d,
        given,
        scale,
        bias,
        eps,
    )
    .map_err(|e| match e {
        Error::UnsupportedOperator { reason, .. } => n.refuse(reason),
        e => e,
    })?;
    let x = imp.materialize(&d, n.label)?;
    let out = imp.layer(n.label, Op::Layer(layer), &[x])?;
    imp.out(n, out)
}

/// A [`LayerNorm`] (`center`) or [`RmsNorm`] of data over its per-sample axes from `axis`
/// (of the full tensor) on, the scale and bias broadcast to those axes.
pub(super) fn normalization<F: Float>(
    label: &str,
    center: bool,
    d: &Data,
    axis: i64,
    scale: Option<crate::io::onnx::values::Const<F>>,
    bias: Option<crate::io::onnx::values::Const<F>>,
    eps: f64,
) -> Result<Box<dyn Layer<F>>> {
    let rank = d.shape.len() + 1;
    let ax = values::axis(axis, rank).map_err(|_| Error::Format {
        what: label.to_string(),
        reason: format!("normalisation axis {axis} is out of range for a tensor of rank {rank}"),
    })?;
    let op = if center {
        "LayerNormalization"
    } else {
        "RMSNormalization"
    };
    if ax == 0 {
        return Err(crate::io::onnx::import::unsupported(
            label,
            op,
            "a normalisation over the batch axis",
        ));
    }
    let shape = d.shape[ax - 1..].to_vec();
    let flat = |c: Option<crate::io::onnx::values::Const<F>>, what: &str| -> Result<Option<Array1<F>>> {
        let Some(c) = c else { return Ok(None) };
        let a = c.floats()?;
        let fits = a.ndim() <= shape.len()
            && a.shape()
                .iter()
                .rev()
                .zip(shape.iter().rev())
                .all(|(&c, &s)| c == s || c == 1);
        if !fits {
            return Err(crate::io::onnx::import::unsupported(
                label,
                op,
                format!("a {what} of shape {:?} for normalised axes {shape:?}", a.shape()),
            ));
        }
        let full = crate::tensor::layout::broadcast(&a, IxDyn(&shape))
            .iter()
            .copied()
            .collect();
        Ok(Some(Array1::from_vec(full)))
    };
    let (w, b) = (flat(scale, "scale")?, flat(bias, "bias")?);
    Ok(if center {
        Box::new(LayerNorm::new(&shape, w, b, eps)?)
    } else {
        Box::new(RmsNorm::with_bias(&shape, w, b, eps)?)
    })
}

fn batch_norm<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    n.attrs
        .only(&["epsilon", "momentum", "training_mode", "spatial"])?;
    if n.attrs.int("training_mode", 0)? != 0 || (1..n.node.output.len()).any(|p| imp.g.used(n.node, p)) {
        return Err(n.refuse("training mode (running statistics updated)"));
    }
    let d = imp.data_arg(n, 0)?;
    let mut v = |pos: usize| -> Result<Array1<F>> {
        let c = imp.required_const(n, pos)?.floats()?;
        let k = c.len();
        c.into_shape_with_order(k)
            .map_err(|_| n.refuse("a parameter that is not a vector"))
    };
    let (scale, bias, mean, var) = (v(1)?, v(2)?, v(3)?, v(4)?);
    let eps = f64::from(n.attrs.float("epsilon", 1e-5)?);
    let layer = BatchNorm2d::new(mean, var, scale, bias, eps)?;
    let out = imp.affine_along(n.label, &d, 0, layer)?;
    imp.out(n, out)
}

fn lrn<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let attrs = &n.attrs;
    attrs.only(&["size", "alpha", "beta", "bias"])?;
    let size = usize::try_from(attrs.int("size", 0)?).map_err(|_| n.refuse("a negative size"))?;
    let lrn = LocalResponseNorm::onnx(
        size,
        f64::from(attrs.float("alpha", 1e-4)?),
        f64::from(attrs.float("beta", 0.75)?),
        f64::from(attrs.float("bias", 1.0)?),
    )?;
    let x = imp.node_arg(n, 0)?;
    let out = imp.layer(n.label, Op::Layer(Box::new(lrn)), &[x])?;
    imp.out(n, out)
}

fn image_scaler<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    let scale = n.attrs.float("scale", 1.0)?;
    let bias = n.attrs.get("bias").map(|a| a.floats.clone()).unwrap_or_default();
    let c = d.shape.first().copied().unwrap_or(0);
    if bias.len() != c {
        return Err(n.refuse(format!("{} biases for {c} channels", bias.len())));
    }
    let layer = BatchNorm2d::from_scale_shift(
        Array1::from_elem(c, F::lit(f64::from(scale))),
        bias.iter().map(|&b| F::lit(f64::from(b))).collect(),
    )?;
    let out = imp.affine_along(n.label, &d, 0, layer)?;
    imp.out(n, out)
}
