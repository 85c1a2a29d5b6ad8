//! A trailing `Softmax` or `LogSoftmax`: removed, so that the logits are explained (what
//! zennit and captum users do), or a `Softmax` kept as a [`Softmax`] layer on request.

use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values;
use crate::io::Op;
use crate::layers::Softmax;

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "Softmax",
        "removed at the output (the logits are explained; OnnxModel::notes says so), or a Softmax layer with OnnxOptions::keep_softmax",
    )
    .build(softmax)
    .check(trailing);
    reg.op("LogSoftmax", "removed at the output (the logits are explained)")
        .build(softmax)
        .check(trailing);
}

fn trailing(p: &Pre<'_>) -> Option<String> {
    let op = p.node.op_type.as_str();
    if !p.graph.trailing(p.node) {
        return Some(INSIDE.into());
    }
    (op == "LogSoftmax" && p.opts.keep_softmax).then(|| KEPT_LOG.into())
}

const INSIDE: &str = "a softmax inside the network (only one at the output is supported: it is removed)";
const KEPT_LOG: &str =
    "keeping a LogSoftmax (OnnxOptions::keep_softmax) is not supported (captum has no DeepLIFT \
                        rule for it): explain the logits";

fn softmax<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let op = n.op();
    if !imp.g.trailing(n.node) {
        return Err(n.refuse(INSIDE));
    }
    if !imp.opts.keep_softmax {
        imp.notes.push(format!(
            "removed the trailing {op} node {:?}: the network explains the logits before it, as zennit and \
             captum users do",
            n.label
        ));
        return imp.pass(n);
    }
    if op == "LogSoftmax" {
        return Err(n.refuse(KEPT_LOG));
    }
    let d = imp.data_arg(n, 0)?;
    let rank = d.shape.len() + 1;
    let default = if imp.g.opset < 13 { 1 } else { -1 };
    let ax = values::axis(n.attrs.int("axis", default)?, rank)?;
    // before opset 13 the softmax runs over all axes from `axis` on, flattened
    if ax == 0 || (imp.g.opset < 13 && ax + 1 != rank) {
        return Err(n.refuse(format!(
            "a softmax over axis {ax} of a rank-{rank} tensor (only one per-sample axis)"
        )));
    }
    let x = imp.materialize(&d, n.label)?;
    let out = imp.layer(n.label, Op::Layer(Box::new(Softmax::new(ax - 1))), &[x])?;
    imp.out(n, out)
}
