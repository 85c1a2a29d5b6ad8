//! Convolutions: `Conv` becomes a [`Conv2d`](crate::Conv2d), with the padding of a zero
//! `Pad` before it and the bias of a per-channel `Add` after it folded in.

use super::dense::{bias_after, finish_bias};
use super::{Ctx, Registry};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::import::Importer;
use crate::io::onnx::view::{Fill, View};
use crate::io::{Op, MAX_DIM};
use crate::layers::Conv2dConfig;
use ndarray::{Array1, Array4};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "Conv",
        "Conv2d (any group, pads, auto_pad); a following per-channel Add is its bias, a zero Pad before it joins its padding",
    )
    .build(conv)
    .check(constant_weights);
}

/// Weights and biases must be constants (a layer's parameters).
pub(super) fn constant_weights(p: &Pre<'_>) -> Option<String> {
    (1..p.node.input.len()).find(|&pos| p.is_data(pos)).map(|pos| {
        format!(
            "input {pos} (a weight) is computed from the network input: only constant weights make a layer"
        )
    })
}

fn conv<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let attrs = &n.attrs;
    attrs.only(&[
        "kernel_shape",
        "strides",
        "pads",
        "dilations",
        "group",
        "auto_pad",
    ])?;
    let d = imp.data_arg(n, 0)?;
    let w = imp
        .const_arg(n, 1)?
        .ok_or_else(|| n.refuse("no weight"))?
        .floats()?;
    let wshape = w.shape().to_vec();
    let w: Array4<F> = w.into_dimensionality().map_err(|_| {
        n.refuse(format!(
            "weight of shape {wshape:?}: only 2-D convolutions are supported"
        ))
    })?;
    if let Some(k) = attrs.ints("kernel_shape")? {
        if k.as_slice() != &wshape[2..] {
            return Err(Error::Shape {
                what: "Conv kernel_shape (must match the weight)".into(),
                expected: wshape[2..].to_vec(),
                got: k,
            });
        }
    }
    let groups = attrs.int("group", 1)?;
    if groups < 1 || groups as u64 > MAX_DIM as u64 {
        return Err(attrs.bad(format!("group {groups}")));
    }
    let stride = attrs.pair("strides", 1)?;
    let dilation = attrs.pair("dilations", 1)?;
    if d.shape.len() != 3 {
        return Err(n.refuse(format!(
            "input of per-sample shape {:?} (images [C, H, W] only)",
            d.shape
        )));
    }
    let kernel = (wshape[2], wshape[3]);
    let (mut begin, mut end) = pads_of(n, &d.shape[1..], kernel, stride, dilation)?;
    // a zero Pad right before, folded into the convolution's own padding
    let mut input = d.clone();
    if let View::Padded {
        pads,
        fill: Fill::Zero,
    } = &d.view
    {
        if pads.len() == 3 && pads[0] == (0, 0) {
            begin = (begin.0 + pads[1].0, begin.1 + pads[2].0);
            end = (end.0 + pads[1].1, end.1 + pads[2].1);
            input.view = View::Same;
            imp.notes.push(format!(
                "folded a zero Pad into the padding of Conv {:?}",
                n.label
            ));
        }
    }
    let x = imp.materialize(&input, n.label)?;
    let mut bias = imp
        .const_arg(n, 2)?
        .map(|b| b.floats().map(|b| b.iter().copied().collect::<Array1<F>>()))
        .transpose()?;
    let mut add = None;
    if bias.is_none() {
        if let Some((b, a)) = bias_after(imp, n.node, wshape[0], 3)? {
            bias = Some(b);
            add = Some(a);
        }
    }
    let config = Conv2dConfig {
        stride,
        dilation,
        groups: groups as usize,
        ..Conv2dConfig::default().pads(begin, end)
    };
    let out = imp.layer(
        n.label,
        Op::Conv {
            weight: w,
            bias,
            config,
        },
        &[x],
    )?;
    finish_bias(imp, add, &out);
    imp.out(n, out)
}

/// `pads` `[top, left, bottom, right]` or `auto_pad` of a 2-D window, as (begin, end).
pub(super) fn pads_of(
    n: &Ctx<'_, '_>,
    spatial: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
) -> Result<((usize, usize), (usize, usize))> {
    let auto_pad = n.attrs.string("auto_pad")?;
    match auto_pad.as_str() {
        "" | "NOTSET" => match n.attrs.ints("pads")?.as_deref() {
            None => Ok(((0, 0), (0, 0))),
            Some([t, l, b, r]) => Ok(((*t, *l), (*b, *r))),
            Some(v) => Err(n.refuse(format!("pads {v:?} are not 2-D"))),
        },
        "VALID" => Ok(((0, 0), (0, 0))),
        "SAME_UPPER" | "SAME_LOWER" => {
            // the output is ⌈in / stride⌉; the extra padding goes at the end (UPPER) or
            // at the beginning (LOWER)
            let total = |len: usize, k: usize, s: usize, d: usize| {
                let out = len.div_ceil(s);
                ((out - 1) * s + (k - 1) * d + 1).saturating_sub(len)
            };
            let (th, tw) = (
                total(spatial[0], kernel.0, stride.0.max(1), dilation.0),
                total(spatial[1], kernel.1, stride.1.max(1), dilation.1),
            );
            let split = |t: usize| {
                if auto_pad == "SAME_UPPER" {
                    (t / 2, t - t / 2)
                } else {
                    (t - t / 2, t / 2)
                }
            };
            let ((hb, he), (wb, we)) = (split(th), split(tw));
            Ok(((hb, wb), (he, we)))
        }
        other => Err(n.refuse(format!("auto_pad {other}"))),
    }
}
