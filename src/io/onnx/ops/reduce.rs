//! Sums over the features of a flat tensor `[N, K]`: `ReduceSum` becomes a [`Dense`] layer
//! of ones, and `ReduceLogSumExp` the chain [`Exp`], that sum, [`Log`] — what
//! `torch.logsumexp(torch.cat([a, b], dim=-1), dim=-1, keepdim=True)` of two count heads
//! exports to (both PyTorch exporters write one `ReduceLogSumExp` node). As a chain of
//! elementwise layers around a linear one, DeepLIFT gives it the Rescale rule at `exp` and at
//! `log`, which is how bpnet-lite's `deep_lift_shap` (`bpnetlite/attribute.py`) explains
//! ChromBPNet's `log(exp(a) + exp(b))` (its `_Exp` and `_Log` modules with tangermeme's
//! `_nonlinear`).
//!
//! The chain is not stabilised by the maximum (ONNX's definition is
//! `log(Σ exp(x))` and onnxruntime computes it stabilised): a feature above ~88 in float32
//! (~709 in float64) overflows, which the network's forward pass reports as
//! [`Error::NonFiniteResult`](crate::Error::NonFiniteResult). Log counts are far below that.

use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values;
use crate::io::Op;
use crate::layers::{Dense, Exp, Log};
use ndarray::Array2;

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "ReduceSum",
        "over the features of [N, K], keepdims: a Dense layer of ones",
    )
    .build(reduce);
    reg.op(
        "ReduceLogSumExp",
        "over the features of [N, K], keepdims: Exp, a Dense layer of ones, Log",
    )
    .build(reduce);
}

/// `ReduceSum` or `ReduceLogSumExp` of data `[N, K]` over axis 1, keeping it: `[N, 1]`.
fn reduce<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    let rank = d.shape.len() + 1;
    // opset 18 (13 for ReduceSum) moved the axes from an attribute to input 1
    let axes: Option<Vec<i64>> = match (n.attrs.get("axes"), imp.const_arg(n, 1)?) {
        (Some(a), _) => Some(a.ints.clone()),
        (None, Some(c)) => Some(c.int_list(8)?),
        (None, None) => None,
    };
    let axes: Vec<usize> = match axes.filter(|a| !a.is_empty()) {
        Some(a) => a.iter().map(|&a| values::axis(a, rank)).collect::<Result<_>>()?,
        None if n.attrs.int("noop_with_empty_axes", 0)? != 0 => return imp.pass(n),
        None => (0..rank).collect(),
    };
    let keepdims = n.attrs.int("keepdims", 1)? != 0;
    let [k] = d.shape.as_slice() else {
        return Err(n.refuse(format!(
            "of a tensor of per-sample shape {:?} (only the features of a flat [N, K] tensor are summed)",
            d.shape
        )));
    };
    if axes != [1] || !keepdims {
        return Err(n.refuse(format!(
            "over axes {axes:?} with keepdims {} (only over axis 1 of [N, K], kept: [N, 1])",
            u8::from(keepdims)
        )));
    }
    let ones = Dense::new(Array2::from_elem((1, *k), F::one()), None)?;
    let mut x = imp.materialize(&d, n.label)?;
    let log = n.op() == "ReduceLogSumExp";
    if log {
        x = imp
            .layer(&format!("{}/exp", n.label), Op::Layer(Box::new(Exp)), &[x])?
            .id;
    }
    let mut out = imp.layer(&format!("{}/sum", n.label), Op::Layer(Box::new(ones)), &[x])?;
    if log {
        out = imp.layer(n.label, Op::Layer(Box::new(Log)), &[out.id])?;
    }
    imp.out(n, out)
}
