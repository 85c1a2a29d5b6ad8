//! `ConvTranspose` becomes a [`ConvTranspose2d`](crate::ConvTranspose2d) (2-D only), with the
//! bias of a per-channel `Add` after it folded in.
//!
//! Padding follows the ONNX operator specification (ConvTranspose, opset 11 and later):
//! explicit `pads`, or — with `output_shape` or `auto_pad` SAME_UPPER / SAME_LOWER — the
//! total padding `stride·(in − 1) + output_padding + (k − 1)·dilation + 1 − out`, split with
//! the odd one at the beginning, except for SAME_UPPER where it goes at the end.

use super::conv::constant_weights;
use super::dense::{bias_after, finish_bias};
use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::{Op, MAX_DIM};
use crate::layers::ConvTranspose2dConfig;
use ndarray::{ArcArray, Array1, Ix4};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "ConvTranspose",
        "ConvTranspose2d (2-D; any group, pads, dilations, output_padding, output_shape, auto_pad); a following per-channel Add is its bias",
    )
    .build(conv_transpose)
    .check(constant_weights);
}

fn conv_transpose<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let attrs = &n.attrs;
    attrs.only(&[
        "kernel_shape",
        "strides",
        "pads",
        "dilations",
        "group",
        "auto_pad",
        "output_padding",
        "output_shape",
    ])?;
    let d = imp.data_arg(n, 0)?;
    let w = imp
        .weight(n.node, 1, n.label, false)?
        .ok_or_else(|| n.refuse("no weight"))?;
    let wshape = w.shape().to_vec();
    let w: ArcArray<F, Ix4> = w.into_dimensionality().map_err(|_| {
        n.refuse(format!(
            "weight of shape {wshape:?}: only 2-D transposed convolutions (a 4-D weight) are supported"
        ))
    })?;
    if let Some(k) = attrs.ints("kernel_shape")? {
        if k.as_slice() != &wshape[2..] {
            return Err(n.refuse(format!(
                "kernel_shape {k:?} does not match the weight's {:?}",
                &wshape[2..]
            )));
        }
    }
    let groups = attrs.int("group", 1)?;
    if groups < 1 || groups as u64 > MAX_DIM as u64 {
        return Err(attrs.bad(format!("group {groups}")));
    }
    let groups = groups as usize;
    if wshape[0] % groups != 0 {
        return Err(n.refuse(format!(
            "group {groups} does not divide the weight's {} input channels",
            wshape[0]
        )));
    }
    if d.shape.len() != 3 {
        return Err(n.refuse(format!(
            "input of per-sample shape {:?} (images [C, H, W] only)",
            d.shape
        )));
    }
    if d.shape[0] != wshape[0] {
        return Err(n.refuse(format!(
            "input of {} channels for a weight of {} input channels",
            d.shape[0], wshape[0]
        )));
    }
    let stride = attrs.pair("strides", 1)?;
    let dilation = attrs.pair("dilations", 1)?;
    let output_padding = attrs.pair("output_padding", 0)?;
    if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
        return Err(n.refuse(format!(
            "strides {stride:?} and dilations {dilation:?} must be positive"
        )));
    }
    if output_padding.0 >= stride.0 || output_padding.1 >= stride.1 {
        return Err(n.refuse(format!(
            "output_padding {output_padding:?} must be smaller than the strides {stride:?}"
        )));
    }
    let (begin, end) = pads(
        n,
        &d.shape[1..],
        (wshape[2], wshape[3]),
        stride,
        dilation,
        output_padding,
    )?;
    let x = imp.materialize(&d, n.label)?;
    let out_channels = wshape[1] * groups;
    let mut bias = imp
        .const_arg(n, 2)?
        .map(|b| b.floats().map(|b| b.iter().copied().collect::<Array1<F>>()))
        .transpose()?;
    let mut add = None;
    if bias.is_none() {
        if let Some((b, a)) = bias_after(imp, n.node, out_channels, 3)? {
            bias = Some(b);
            add = Some(a);
        }
    }
    let config = ConvTranspose2dConfig {
        stride,
        dilation,
        groups,
        output_padding,
        ..ConvTranspose2dConfig::default().pads(begin, end)
    };
    let op = Op::ConvTranspose {
        weight: w,
        bias: bias.map(Array1::into_shared),
        config,
    };
    let out = imp.layer(n.label, op, &[x])?;
    finish_bias(imp, add, &out);
    imp.out(n, out)
}

/// The padding (begin, end) per axis: `pads`, or the total implied by `output_shape` or by
/// `auto_pad` SAME_* (output = input·stride), split as the ONNX specification says.
fn pads(
    n: &Ctx<'_, '_>,
    spatial: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
    output_padding: (usize, usize),
) -> Result<((usize, usize), (usize, usize))> {
    let auto_pad = n.attrs.string("auto_pad")?;
    let upper = match auto_pad.as_str() {
        "" | "NOTSET" => false,
        "SAME_UPPER" => true,
        "SAME_LOWER" | "VALID" => false,
        other => return Err(n.refuse(format!("auto_pad {other}"))),
    };
    let wanted: Option<Vec<usize>> = match n.attrs.ints("output_shape")? {
        // [H, W], or a full [N, C, H, W] as some converters write it
        Some(s) if s.len() == 2 => Some(s),
        Some(s) if s.len() == 4 => Some(s[2..].to_vec()),
        Some(s) => return Err(n.refuse(format!("output_shape {s:?} is not 2-D"))),
        None if auto_pad.starts_with("SAME") => Some(vec![
            spatial[0].saturating_mul(stride.0),
            spatial[1].saturating_mul(stride.1),
        ]),
        None => None,
    };
    let Some(wanted) = wanted else {
        return match (auto_pad.as_str(), n.attrs.ints("pads")?) {
            ("VALID", _) | (_, None) => Ok(((0, 0), (0, 0))),
            (_, Some(p)) if p.len() == 4 => Ok(((p[0], p[1]), (p[2], p[3]))),
            (_, Some(p)) => Err(n.refuse(format!("pads {p:?} are not 2-D"))),
        };
    };
    let k = [kernel.0, kernel.1];
    let (s, dl, op) = (
        [stride.0, stride.1],
        [dilation.0, dilation.1],
        [output_padding.0, output_padding.1],
    );
    let mut b = [0; 2];
    let mut e = [0; 2];
    for a in 0..2 {
        // the full output without padding: stride·(in − 1) + output_padding + (k − 1)·dil + 1
        let full = spatial[a]
            .checked_sub(1)
            .and_then(|v| v.checked_mul(s[a]))
            .and_then(|v| v.checked_add(op[a]))
            .and_then(|v| v.checked_add((k[a] - 1).checked_mul(dl[a])?))
            .and_then(|v| v.checked_add(1));
        let total = full.and_then(|f| f.checked_sub(wanted[a])).ok_or_else(|| {
            n.refuse(format!(
                "output_shape {wanted:?} is larger than the transposed convolution makes without padding (or overflows)"
            ))
        })?;
        (b[a], e[a]) = if upper {
            (total / 2, total - total / 2)
        } else {
            (total - total / 2, total / 2)
        };
    }
    Ok(((b[0], b[1]), (e[0], e[1])))
}
