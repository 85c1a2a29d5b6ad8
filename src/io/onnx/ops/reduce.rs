//! Sums over every per-sample axis: `ReduceSum` becomes a [`Dense`] layer of ones (after
//! a [`Flatten`](crate::Flatten) for a tensor of several per-sample axes), and
//! `ReduceLogSumExp` the chain [`Exp`], that sum, [`Log`] — what
//! `torch.logsumexp(torch.cat([a, b], dim=-1), dim=-1, keepdim=True)` of two count heads
//! exports to (both PyTorch exporters write one `ReduceLogSumExp` node), and what
//! `torch.sum(X_ctl[:, :, a:b], dim=(1, 2))` of bpnet-lite's `BPNet.forward(X, X_ctl)`
//! (`bpnetlite/bpnet.py`, the control tracks' total in the count head) exports to. As a
//! chain of elementwise layers around a linear one, DeepLIFT gives it the Rescale rule at
//! `exp` and at `log`, which is how bpnet-lite's `deep_lift_shap` (`bpnetlite/attribute.py`)
//! explains ChromBPNet's `log(exp(a) + exp(b))` (its `_Exp` and `_Log` modules with
//! tangermeme's `_nonlinear`).
//!
//! ONNX (`ReduceSum`, opset 13; `ReduceLogSumExp`, opset 18): the axes are an attribute
//! before, input 1 since; `keepdims` (default 1) keeps each reduced axis as 1, else removes
//! it. Without `keepdims` the result is one value per sample (per-sample shape `[]`), which
//! the importer holds in a node of shape `[1]` until an `Unsqueeze`, `Reshape` or `Flatten`
//! reads it (`view.rs`, `View::Scalar`). A `ReduceSum` over some per-sample axes only (the
//! token axis of `[N, T, D]`: the mean pooling of a sentence encoder) moves the summed axes
//! last (a [`Permute`](crate::Permute)), merges them (a [`Reshape`](crate::Reshape)) and
//! sums them with a [`Dense`] layer of ones on the last axis. A sum over the batch axis is
//! refused. `ReduceSum` of a constant (the count of a fixed attention mask) is evaluated
//! when the file is read.
//!
//! The chain is not stabilised by the maximum (ONNX's definition is
//! `log(Σ exp(x))` and onnxruntime computes it stabilised): a feature above ~88 in float32
//! (~709 in float64) overflows, which the network's forward pass reports as
//! [`Error::NonFiniteResult`](crate::Error::NonFiniteResult). Log counts are far below that.

use super::{reshape, Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values;
use crate::io::onnx::view::{Data, View};
use crate::io::Op;
use crate::layers::{Dense, Exp, Log, Permute, Reshape};
use ndarray::{Array2, Axis};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "ReduceSum",
        "over per-sample axes: a Dense layer of ones (after a Flatten, or a Permute and Reshape that put the summed axes last); of a constant: evaluated when the file is read",
    )
    .fold(fold_sum)
    .build(reduce);
    reg.op(
        "ReduceLogSumExp",
        "over every per-sample axis: Exp, a Dense layer of ones (after a Flatten), Log",
    )
    .build(reduce);
}

/// `ReduceSum` or `ReduceLogSumExp` of data over every per-sample axis: `[N, 1, ..., 1]`
/// with `keepdims`, one value per sample without.
fn reduce<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    let rank = d.shape.len() + 1;
    // opset 18 (13 for ReduceSum) moved the axes from an attribute to input 1
    let axes: Vec<usize> = match sum_axes(imp, n, rank)? {
        Some(a) => a,
        None if n.attrs.int("noop_with_empty_axes", 0)? != 0 => return imp.pass(n),
        None => (0..rank).collect(),
    };
    let keepdims = n.attrs.int("keepdims", 1)? != 0;
    if n.op() == "ReduceSum" && !axes.is_empty() && axes[0] > 0 && axes.len() < rank - 1 {
        return sum_some(imp, n, &d, &axes, keepdims);
    }
    if axes != (1..rank).collect::<Vec<_>>() {
        return Err(n.refuse(format!(
            "over axes {axes:?} of a tensor of per-sample shape {:?} (only over every per-sample axis, 1 to {})",
            d.shape,
            rank - 1
        )));
    }
    let k: usize = d.shape.iter().product();
    let ones = Dense::new(Array2::from_elem((1, k), F::one()), None)?;
    // the sum does not depend on the order of the values: the node of a pending
    // permutation is summed as it is (a pending padding is applied)
    let mut x = match d.view {
        View::Permuted { .. } => d.id,
        _ => imp.materialize(&d, n.label)?,
    };
    let log = n.op() == "ReduceLogSumExp";
    if log {
        x = imp
            .layer(&format!("{}/exp", n.label), Op::Layer(Box::new(Exp)), &[x])?
            .id;
    }
    if imp.builder.shape_of(x).len() > 1 {
        x = imp.layer(&format!("{}/flatten", n.label), Op::Flatten, &[x])?.id;
    }
    let mut out = imp.layer(&format!("{}/sum", n.label), Op::Layer(Box::new(ones)), &[x])?;
    if log {
        out = imp.layer(n.label, Op::Layer(Box::new(Log)), &[out.id])?;
    }
    let out = if !keepdims {
        Data {
            shape: Vec::new(),
            view: View::Scalar,
            ..out
        }
    } else if rank > 2 {
        reshape::reshape_to(imp, &format!("{}/keepdims", n.label), &out, &vec![1; rank - 1])?
    } else {
        out
    };
    imp.out(n, out)
}

/// The axes of a `ReduceSum` node (attribute, or input 1 since opset 13) on a tensor of
/// `rank` axes, sorted; `None` for every axis.
fn sum_axes<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
    rank: usize,
) -> Result<Option<Vec<usize>>> {
    let axes: Option<Vec<i64>> = match (n.attrs.get("axes"), imp.const_arg(n, 1)?) {
        (Some(a), _) => Some(a.ints.clone()),
        (None, Some(c)) => Some(c.int_list(8)?),
        (None, None) => None,
    };
    let Some(axes) = axes.filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| values::axis(a, rank))
        .collect::<Result<_>>()?;
    axes.sort_unstable();
    axes.dedup();
    Ok(Some(axes))
}

/// `ReduceSum` of a constant (e.g. `mask.sum(1)` of a fixed attention mask).
fn fold_sum<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let c = imp.required_const(n, 0)?;
    let mut a = c.floats()?;
    let rank = a.ndim();
    let axes = match sum_axes(imp, n, rank)? {
        Some(axes) => axes,
        None if n.attrs.int("noop_with_empty_axes", 0)? != 0 => return imp.folded(n, 0, c),
        None => (0..rank).collect(),
    };
    let keepdims = n.attrs.int("keepdims", 1)? != 0;
    for &ax in axes.iter().rev() {
        a = a.sum_axis(Axis(ax));
        if keepdims {
            a = a.insert_axis(Axis(ax));
        }
    }
    let value = match c {
        values::Const::Int(_) => values::Const::Int(a.mapv(|v| values::Sym::Int(v.as_f64().round() as i64))),
        values::Const::Float(_) => values::Const::Float(a),
    };
    imp.folded(n, 0, value)
}

/// `ReduceSum` of data over some per-sample `axes` (sorted, none the batch): the summed axes
/// moved last and merged, then a [`Dense`] layer of ones on the last axis.
fn sum_some<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
    d: &Data,
    axes: &[usize],
    keepdims: bool,
) -> Result<()> {
    let per: Vec<usize> = axes.iter().map(|&a| a - 1).collect();
    let kept: Vec<usize> = (0..d.shape.len()).filter(|k| !per.contains(k)).collect();
    let mut x = imp.in_order(n.label, d)?;
    let order: Vec<usize> = kept.iter().chain(&per).copied().collect();
    if order.iter().enumerate().any(|(i, &k)| i != k) {
        let layer = Permute::new(&order)?;
        x = imp
            .layer(&format!("{}/permute", n.label), Op::Layer(Box::new(layer)), &[x])?
            .id;
    }
    let k: usize = per.iter().map(|&a| d.shape[a]).product();
    let mut merged: Vec<usize> = kept.iter().map(|&a| d.shape[a]).collect();
    merged.push(k);
    if imp.builder.shape_of(x) != merged.as_slice() {
        x = imp
            .layer(
                &format!("{}/merge", n.label),
                Op::Layer(Box::new(Reshape::new(&merged))),
                &[x],
            )?
            .id;
    }
    let ones = Dense::new(Array2::from_elem((1, k), F::one()), None)?;
    let out = imp.layer(&format!("{}/sum", n.label), Op::Layer(Box::new(ones)), &[x])?;
    let shape: Vec<usize> = if keepdims {
        (0..d.shape.len())
            .map(|a| if per.contains(&a) { 1 } else { d.shape[a] })
            .collect()
    } else {
        kept.iter().map(|&a| d.shape[a]).collect()
    };
    let out = reshape::reshape_to(imp, n.label, &out, &shape)?;
    imp.out(n, out)
}
