//! Normalisations: `BatchNormalization` (a [`BatchNorm2d`], merged into the convolution
//! before it by default), `LRN` and `ImageScaler` (an input normalisation, a per-channel
//! affine layer).

use super::conv::constant_weights;
use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::Op;
use crate::layers::{BatchNorm2d, LocalResponseNorm};
use ndarray::Array1;

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
