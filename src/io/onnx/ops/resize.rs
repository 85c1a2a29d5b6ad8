//! `Resize` (opset 10+; `scales` or `sizes`): on data, a [`Resize`] layer over the spatial
//! axes of `[N, C, spatial...]` (a decoder's upsampling); on a constant, evaluated when the
//! file is read along every axis whose size changes — Hugging Face's ViT and DINOv2 exports
//! resize their position embeddings (`interpolate_pos_encoding`, bicubic, e.g. a 37 × 37
//! grid to the 16 × 16 patches of a 224-pixel image).
//!
//! Interpolation as ONNX defines it (`onnx/reference/ops/op_resize.py`): `mode` nearest
//! (`round_prefer_floor`, `round_prefer_ceil`, `floor`), linear or cubic (`cubic_coeff_a`),
//! coordinates `half_pixel`, `pytorch_half_pixel`, `align_corners` or `asymmetric`, edge
//! samples repeated outside the input (`exclude_outside = 0`). Refused, naming the setting:
//! `tf_crop_and_resize`, `exclude_outside = 1`, `antialias = 1`, `nearest_mode = ceil`, the
//! `axes` attribute, a `keep_aspect_ratio_policy` other than `stretch`, scales that do not
//! give whole sizes, and (on data) a resize of the batch or channel axis.

use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values::{Const, Sym};
use crate::io::Op;
use crate::layers::{resize_along, resize_weights, Coordinates, Interpolation, Resize};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "Resize",
        "of data: Resize over the spatial axes (nearest, linear, cubic); of a constant (position embeddings): evaluated when the file is read",
    )
    .fold(fold_resize)
    .build(resize);
}

/// The node's interpolation and coordinate mapping.
fn settings(n: &Ctx<'_, '_>) -> Result<(Interpolation, Coordinates)> {
    let a = &n.attrs;
    for (name, ok) in [("exclude_outside", 0), ("antialias", 0)] {
        if a.int(name, 0)? != ok {
            return Err(n.refuse(format!("{name} = {}", a.int(name, 0)?)));
        }
    }
    if a.get("axes").is_some() {
        return Err(n.refuse("the axes attribute"));
    }
    match a.string("keep_aspect_ratio_policy")?.as_str() {
        "" | "stretch" => {}
        other => return Err(n.refuse(format!("keep_aspect_ratio_policy {other:?}"))),
    }
    let interpolation = match a.string("mode")?.as_str() {
        "" | "nearest" => match a.string("nearest_mode")?.as_str() {
            "" | "round_prefer_floor" => Interpolation::Nearest {
                floor: false,
                round_half_down: true,
            },
            "round_prefer_ceil" => Interpolation::Nearest {
                floor: false,
                round_half_down: false,
            },
            "floor" => Interpolation::Nearest {
                floor: true,
                round_half_down: true,
            },
            other => return Err(n.refuse(format!("nearest_mode {other:?}"))),
        },
        "linear" => Interpolation::Linear,
        "cubic" => Interpolation::Cubic {
            a: f64::from(a.float("cubic_coeff_a", -0.75)?),
        },
        other => return Err(n.refuse(format!("mode {other:?}"))),
    };
    let coordinates = match a.string("coordinate_transformation_mode")?.as_str() {
        "" | "half_pixel" => Coordinates::HalfPixel,
        "pytorch_half_pixel" => Coordinates::PytorchHalfPixel,
        "align_corners" => Coordinates::AlignCorners,
        "asymmetric" => Coordinates::Asymmetric,
        other => return Err(n.refuse(format!("coordinate_transformation_mode {other:?}"))),
    };
    Ok((interpolation, coordinates))
}

/// The output size of every axis: from `sizes` (the batch size where it is the batch
/// axis), else from `scales` (which must give whole sizes).
fn target<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>, shape: &[Sym]) -> Result<Vec<Sym>> {
    // opset 10: (X, scales); 11+: (X, roi, scales, sizes)
    let (scales, sizes) = if imp.g.opset < 11 {
        (imp.const_arg(n, 1)?, None)
    } else {
        (imp.const_arg(n, 2)?, imp.const_arg(n, 3)?)
    };
    let given = |c: &Option<Const<F>>| {
        c.as_ref()
            .is_some_and(|c| c.shape().iter().product::<usize>() > 0)
    };
    let out: Vec<Sym> = if given(&sizes) {
        sizes
            .map(|c| c.ints())
            .transpose()?
            .map(|a| a.iter().copied().collect())
            .unwrap_or_default()
    } else if given(&scales) {
        let scales = scales.map(|c| c.floats()).transpose()?.unwrap_or_default();
        scales
            .iter()
            .zip(shape)
            .map(|(s, &d)| match d {
                Sym::Int(d) => {
                    let v = s.as_f64() * d as f64;
                    if v.fract() != 0.0 || v < 1.0 {
                        Err(n.refuse(format!("scale {} of a size {d}: not a whole size", s.as_f64())))
                    } else {
                        Ok(Sym::Int(v as i64))
                    }
                }
                b if s.as_f64() == 1.0 => Ok(b),
                _ => Err(n.refuse("a scale of the batch axis")),
            })
            .collect::<Result<_>>()?
    } else {
        return Err(n.refuse("neither scales nor sizes given"));
    };
    if out.len() != shape.len() {
        return Err(n.refuse(format!(
            "{} output sizes for a tensor of rank {}",
            out.len(),
            shape.len()
        )));
    }
    if out
        .iter()
        .any(|s| matches!(s, Sym::Int(v) if *v < 1 || *v > 1 << 20))
    {
        return Err(n.refuse(format!("output sizes {out:?}")));
    }
    Ok(out)
}

fn fold_resize<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let (interpolation, coordinates) = settings(n)?;
    let x = imp.required_const(n, 0)?;
    let shape: Vec<Sym> = x.shape().iter().map(|&d| Sym::Int(d as i64)).collect();
    let out = target(imp, n, &shape)?;
    let sizes: Vec<usize> = out
        .iter()
        .map(|s| {
            s.int()
                .map(|v| v as usize)
                .ok_or_else(|| n.refuse("a constant resized to the batch size"))
        })
        .collect::<Result<_>>()?;
    crate::io::onnx::values::check_size(&sizes)?;
    let mut a = x.floats()?;
    for (axis, &len_out) in sizes.iter().enumerate() {
        let len_in = a.shape()[axis];
        if len_in != len_out {
            let w = resize_weights(len_in, len_out, interpolation, coordinates);
            a = resize_along(a.view(), axis, &w, len_out, false);
        }
    }
    imp.folded(n, 0, Const::Float(a))
}

fn resize<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let (interpolation, coordinates) = settings(n)?;
    let d = imp.data_arg(n, 0)?;
    let shape: Vec<Sym> = std::iter::once(Sym::Batch(1))
        .chain(d.shape.iter().map(|&v| Sym::Int(v as i64)))
        .collect();
    let out = target(imp, n, &shape)?;
    if d.shape.len() < 2 || out[0] != Sym::Batch(1) || out[1] != shape[1] {
        return Err(n.refuse(format!(
            "a resize of {shape:?} to {out:?}: only the spatial axes of [N, C, spatial...]"
        )));
    }
    let sizes: Vec<usize> = out[2..]
        .iter()
        .filter_map(|s| s.int().map(|v| v as usize))
        .collect();
    let layer = Resize::new(&sizes, interpolation, coordinates)?;
    let x = imp.materialize(&d, n.label)?;
    let y = imp.layer(n.label, Op::Layer(Box::new(layer)), &[x])?;
    imp.out(n, y)
}
