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
//! reads it (`view.rs`, `View::Scalar`). A sum over some per-sample axes only, or over the
//! batch axis, is refused.
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
use crate::layers::{Dense, Exp, Log};
use ndarray::Array2;

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "ReduceSum",
        "over every per-sample axis: a Dense layer of ones (after a Flatten)",
    )
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
    let axes: Option<Vec<i64>> = match (n.attrs.get("axes"), imp.const_arg(n, 1)?) {
        (Some(a), _) => Some(a.ints.clone()),
        (None, Some(c)) => Some(c.int_list(8)?),
        (None, None) => None,
    };
    let mut axes: Vec<usize> = match axes.filter(|a| !a.is_empty()) {
        Some(a) => a.iter().map(|&a| values::axis(a, rank)).collect::<Result<_>>()?,
        None if n.attrs.int("noop_with_empty_axes", 0)? != 0 => return imp.pass(n),
        None => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    let keepdims = n.attrs.int("keepdims", 1)? != 0;
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
