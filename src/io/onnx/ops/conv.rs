//! Convolutions: `Conv` becomes a [`Conv2d`](crate::Conv2d) (a [`Conv1d`](crate::Conv1d) for a
//! 3-D weight on sequences), with the padding of a zero
//! `Pad` before it and the bias of a per-channel `Add` after it folded in.

use super::dense::{bias_after, finish_bias};
use super::{Ctx, Registry};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::import::Importer;
use crate::io::onnx::view::{Data, Fill, View};
use crate::io::{Op, MAX_DIM};
use crate::layers::{Conv1dConfig, Conv2dConfig};
use ndarray::{ArcArray, Array1, Ix3, Ix4};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "Conv",
        "Conv2d, or Conv1d for a 3-D weight (any group, pads, auto_pad, dilations); a following per-channel Add is its bias, a zero Pad before it joins its padding",
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
    // shared: a weight many nodes read is decoded and stored once
    let w = imp
        .weight(n.node, 1, n.label, false)?
        .ok_or_else(|| n.refuse("no weight"))?;
    let wshape = w.shape().to_vec();
    if let Some(k) = attrs.ints("kernel_shape")? {
        if wshape.len() < 3 || k.as_slice() != &wshape[2..] {
            return Err(Error::Shape {
                what: "Conv kernel_shape (must match the weight)".into(),
                expected: wshape.get(2..).unwrap_or_default().to_vec(),
                got: k,
            });
        }
    }
    let groups = attrs.int("group", 1)?;
    if groups < 1 || groups as u64 > MAX_DIM as u64 {
        return Err(attrs.bad(format!("group {groups}")));
    }
    if wshape.len() == 3 {
        let w = w
            .into_dimensionality()
            .map_err(|_| n.refuse("weight is not 3-D"))?;
        return conv1d(imp, n, d, w, groups as usize);
    }
    let w: ArcArray<F, Ix4> = w.into_dimensionality().map_err(|_| {
        n.refuse(format!(
            "weight of shape {wshape:?}: only 1-D and 2-D convolutions are supported"
        ))
    })?;
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
            bias: bias.map(Array1::into_shared),
            config,
        },
        &[x],
    )?;
    finish_bias(imp, add, &out);
    imp.out(n, out)
}

/// A `Conv` with a 3-D weight `[out, in / group, k]` on sequences `[C, L]`: a [`Conv1d`], with
/// a zero `Pad` before it and a per-channel `Add` after it folded in as for 2-D.
fn conv1d<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
    d: Data,
    w: ArcArray<F, Ix3>,
    groups: usize,
) -> Result<()> {
    let single = |name: &str| -> Result<usize> {
        match n.attrs.ints(name)?.as_deref() {
            None => Ok(1),
            Some([v]) => Ok(*v),
            Some(v) => Err(n.refuse(format!("{name} {v:?} are not 1-D"))),
        }
    };
    let (stride, dilation) = (single("strides")?, single("dilations")?);
    if d.shape.len() != 2 {
        return Err(n.refuse(format!(
            "a 1-D convolution of per-sample shape {:?} (sequences [C, L] only)",
            d.shape
        )));
    }
    let (mut begin, mut end) = pads_of_1d(n, d.shape[1], w.shape()[2], stride, dilation)?;
    let mut input = d.clone();
    if let View::Padded {
        pads,
        fill: Fill::Zero,
    } = &d.view
    {
        if pads.len() == 2 && pads[0] == (0, 0) {
            (begin, end) = (begin + pads[1].0, end + pads[1].1);
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
        if let Some((b, a)) = bias_after(imp, n.node, w.shape()[0], 2)? {
            bias = Some(b);
            add = Some(a);
        }
    }
    let config = Conv1dConfig::default()
        .stride(stride)
        .dilation(dilation)
        .groups(groups)
        .pads(begin, end);
    let op = Op::Conv1d {
        weight: w,
        bias: bias.map(Array1::into_shared),
        config,
    };
    let out = imp.layer(n.label, op, &[x])?;
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
    let k = [kernel.0, kernel.1];
    let (s, d) = ([stride.0, stride.1], [dilation.0, dilation.1]);
    let (b, e) = pads_nd(n, &spatial[..2], &k, &s, &d)?;
    Ok(((b[0], b[1]), (e[0], e[1])))
}

/// `pads` `[begin, end]` or `auto_pad` of a 1-D window (along the length), as (begin, end).
pub(super) fn pads_of_1d(
    n: &Ctx<'_, '_>,
    len: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Result<(usize, usize)> {
    let (b, e) = pads_nd(n, &[len], &[kernel], &[stride], &[dilation])?;
    Ok((b[0], e[0]))
}

/// `pads` (all begins, then all ends) or `auto_pad` of a window over `spatial.len()` axes.
fn pads_nd(
    n: &Ctx<'_, '_>,
    spatial: &[usize],
    kernel: &[usize],
    stride: &[usize],
    dilation: &[usize],
) -> Result<(Vec<usize>, Vec<usize>)> {
    let rank = spatial.len();
    let auto_pad = n.attrs.string("auto_pad")?;
    match auto_pad.as_str() {
        "" | "NOTSET" => match n.attrs.ints("pads")? {
            None => Ok((vec![0; rank], vec![0; rank])),
            Some(v) if v.len() == 2 * rank => Ok((v[..rank].to_vec(), v[rank..].to_vec())),
            Some(v) => Err(n.refuse(format!("pads {v:?} are not {rank}-D"))),
        },
        "VALID" => Ok((vec![0; rank], vec![0; rank])),
        "SAME_UPPER" | "SAME_LOWER" => {
            // the output is ⌈in / stride⌉; the extra padding goes at the end (UPPER) or
            // at the beginning (LOWER)
            let total = |len: usize, k: usize, s: usize, d: usize| {
                let out = len.div_ceil(s);
                ((out - 1) * s + (k - 1) * d + 1).saturating_sub(len)
            };
            let (mut begin, mut end) = (Vec::with_capacity(rank), Vec::with_capacity(rank));
            for a in 0..rank {
                let t = total(spatial[a], kernel[a], stride[a].max(1), dilation[a]);
                let (b, e) = if auto_pad == "SAME_UPPER" {
                    (t / 2, t - t / 2)
                } else {
                    (t - t / 2, t / 2)
                };
                begin.push(b);
                end.push(e);
            }
            Ok((begin, end))
        }
        other => Err(n.refuse(format!("auto_pad {other}"))),
    }
}
