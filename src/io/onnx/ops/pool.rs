//! Pooling: `MaxPool` and `AveragePool` (any padding, `ceil_mode`), global pools, and
//! `ReduceMean` over the two spatial axes (a global average pool, also of a channels-last
//! tensor kept as a pending permutation) or over the length of a sequence.

use super::conv::{pads_of, pads_of_1d};
use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values;
use crate::io::onnx::view::{Data, Fill, View};
use crate::io::Op;
use crate::layers::{AvgPool1d, AvgPool2d, Layer, MaxPool1d, MaxPool2d};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "MaxPool",
        "MaxPool2d, MaxPool1d on sequences (pads, ceil_mode); a Pad of −∞ (or −FLT_MAX) before it joins its padding",
    )
    .build(pool)
    .check(|p| (p.graph.used(p.node, 1)).then(|| "the indices output is used".into()));
    reg.op(
        "AveragePool",
        "AvgPool2d, AvgPool1d on sequences (pads, ceil_mode, count_include_pad)",
    )
    .build(pool);
    reg.op(
        "GlobalAveragePool",
        "AvgPool2d::global(), AvgPool1d::global() on sequences",
    )
    .build(global);
    reg.op(
        "GlobalMaxPool",
        "MaxPool2d over the whole image, MaxPool1d over the whole sequence",
    )
    .build(global);
    reg.op(
        "ReduceMean",
        "AvgPool2d::global() when over the two spatial axes (of NCHW, or NHWC behind a Transpose), AvgPool1d::global() over the length of [N, C, L]",
    )
    .build(reduce_mean);
}

fn pool<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let (op, attrs) = (n.op(), &n.attrs);
    attrs.only(&[
        "kernel_shape",
        "strides",
        "pads",
        "dilations",
        "ceil_mode",
        "auto_pad",
        "storage_order",
        "count_include_pad",
    ])?;
    if op == "MaxPool" && imp.g.used(n.node, 1) {
        return Err(n.refuse("the indices output is used"));
    }
    let d = imp.data_arg(n, 0)?;
    if d.shape.len() == 2 {
        return pool1d(imp, n, d);
    }
    if d.shape.len() != 3 {
        return Err(n.refuse(format!(
            "input of per-sample shape {:?} (images [C, H, W] or sequences [C, L] only)",
            d.shape
        )));
    }
    let kernel = match attrs.ints("kernel_shape")?.as_deref() {
        Some([h, w]) => (*h, *w),
        k => return Err(n.refuse(format!("kernel_shape {k:?} is not 2-D"))),
    };
    if attrs.pair("dilations", 1)? != (1, 1) {
        return Err(n.refuse("dilations other than 1"));
    }
    let stride = attrs.pair("strides", 1)?;
    let ceil = attrs.int("ceil_mode", 0)? != 0;
    let (mut begin, mut end) = pads_of(n, &d.shape[1..], kernel, stride, (1, 1))?;
    let mut input = d.clone();
    if let (
        View::Padded {
            pads,
            fill: Fill::NegInf,
        },
        "MaxPool",
    ) = (&d.view, op)
    {
        // padding never wins a max: a Pad of −∞ is the pool's own padding
        begin = (begin.0 + pads[1].0, begin.1 + pads[2].0);
        end = (end.0 + pads[1].1, end.1 + pads[2].1);
        input.view = View::Same;
        imp.notes.push(format!(
            "folded a Pad of −∞ into the padding of MaxPool {:?}",
            n.label
        ));
    }
    let x = imp.materialize(&input, n.label)?;
    let layer: Box<dyn Layer<F>> = if op == "MaxPool" {
        Box::new(
            MaxPool2d::new(kernel, stride, (0, 0))?
                .with_pads(begin, end)?
                .with_ceil_mode(ceil),
        )
    } else {
        let include = attrs.int("count_include_pad", 0)? != 0;
        Box::new(
            AvgPool2d::new(kernel, stride, (0, 0))?
                .with_pads(begin, end)?
                .with_ceil_mode(ceil)
                .with_count_include_pad(include),
        )
    };
    let out = imp.layer(n.label, Op::Layer(layer), &[x])?;
    imp.out(n, out)
}

/// `MaxPool` or `AveragePool` of sequences `[C, L]`: a [`MaxPool1d`] or an [`AvgPool1d`].
fn pool1d<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>, d: Data) -> Result<()> {
    let (op, attrs) = (n.op(), &n.attrs);
    let single = |name: &str| -> Result<usize> {
        match attrs.ints(name)?.as_deref() {
            None => Ok(1),
            Some([v]) => Ok(*v),
            Some(v) => Err(n.refuse(format!("{name} {v:?} is not 1-D"))),
        }
    };
    let kernel = match attrs.ints("kernel_shape")?.as_deref() {
        Some([k]) => *k,
        k => return Err(n.refuse(format!("kernel_shape {k:?} is not 1-D"))),
    };
    if single("dilations")? != 1 {
        return Err(n.refuse("dilations other than 1"));
    }
    let stride = single("strides")?;
    let ceil = attrs.int("ceil_mode", 0)? != 0;
    let (mut begin, mut end) = pads_of_1d(n, d.shape[1], kernel, stride, 1)?;
    let mut input = d.clone();
    if let (
        View::Padded {
            pads,
            fill: Fill::NegInf,
        },
        "MaxPool",
    ) = (&d.view, op)
    {
        (begin, end) = (begin + pads[1].0, end + pads[1].1);
        input.view = View::Same;
        imp.notes.push(format!(
            "folded a Pad of −∞ into the padding of MaxPool {:?}",
            n.label
        ));
    }
    let x = imp.materialize(&input, n.label)?;
    let layer: Box<dyn Layer<F>> = if op == "MaxPool" {
        Box::new(
            MaxPool1d::new(kernel, stride, 0)?
                .with_pads(begin, end)?
                .with_ceil_mode(ceil),
        )
    } else {
        let include = attrs.int("count_include_pad", 0)? != 0;
        Box::new(
            AvgPool1d::new(kernel, stride, 0)?
                .with_pads(begin, end)?
                .with_ceil_mode(ceil)
                .with_count_include_pad(include),
        )
    };
    let out = imp.layer(n.label, Op::Layer(layer), &[x])?;
    imp.out(n, out)
}

fn global<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    let x = imp.materialize(&d, n.label)?;
    let layer: Box<dyn Layer<F>> = match (n.op(), d.shape.as_slice()) {
        ("GlobalAveragePool", [_, _, _]) => Box::new(AvgPool2d::global()),
        ("GlobalAveragePool", [_, _]) => Box::new(AvgPool1d::global()),
        ("GlobalMaxPool", [_, l]) => Box::new(MaxPool1d::new(*l, *l, 0)?),
        ("GlobalMaxPool", [_, h, w]) => Box::new(MaxPool2d::new((*h, *w), (*h, *w), (0, 0))?),
        _ => {
            return Err(n.refuse(format!(
                "input of per-sample shape {:?} (images [C, H, W] or sequences [C, L] only)",
                d.shape
            )))
        }
    };
    let out = imp.layer(n.label, Op::Layer(layer), &[x])?;
    imp.out(n, out)
}

/// `ReduceMean` over the spatial axes: global average pooling.
fn reduce_mean<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    let rank = d.shape.len() + 1;
    let axes: Vec<i64> = match (n.attrs.get("axes"), imp.const_arg(n, 1)?) {
        (Some(a), _) => a.ints.clone(),
        (None, Some(c)) => c.int_list(8)?,
        (None, None) => (0..rank as i64).collect(),
    };
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| values::axis(a, rank))
        .collect::<Result<_>>()?;
    axes.sort_unstable();
    let refuse = || {
        n.refuse(format!(
            "over axes {axes:?} of a rank-{rank} tensor (only the spatial axes of an image)"
        ))
    };
    if rank == 3 && axes == [2] {
        // the mean over the length of a sequence [C, L] (`x.mean(dim=2)`)
        let x = imp.materialize(&d, n.label)?;
        let pooled = imp.layer(n.label, Op::Layer(Box::new(AvgPool1d::global())), &[x])?;
        let out = if n.attrs.int("keepdims", 1)? != 0 {
            pooled
        } else {
            imp.layer(&format!("{}/squeeze", n.label), Op::Flatten, &[pooled.id])?
        };
        return imp.out(n, out);
    }
    if rank != 4 || axes.len() != 2 || axes[0] == 0 {
        return Err(refuse());
    }
    // the axes of the node computing the tensor (a channels-last tensor may be a pending
    // permutation of a channels-first node)
    let per_sample: Vec<usize> = axes.iter().map(|a| a - 1).collect();
    let (x, mut node_axes) = imp.node_axes(n.label, &d, &per_sample)?;
    node_axes.sort_unstable();
    if node_axes != [1, 2] {
        return Err(refuse());
    }
    let pooled = imp.layer(n.label, Op::Layer(Box::new(AvgPool2d::global())), &[x])?;
    let out = if n.attrs.int("keepdims", 1)? != 0 {
        // the same view of [C, 1, 1]
        let mut shape = d.shape.clone();
        for &a in &per_sample {
            shape[a] = 1;
        }
        let view = match &d.view {
            View::Permuted { perm, .. } => View::Permuted {
                perm: perm.clone(),
                from: format!("{}/permute", n.label),
            },
            _ => View::Same,
        };
        Data {
            id: pooled.id,
            shape,
            view,
        }
    } else {
        // one axis is left: flattening [C, 1, 1] orders it the same through any view
        imp.layer(&format!("{}/squeeze", n.label), Op::Flatten, &[pooled.id])?
    };
    imp.out(n, out)
}
