//! `Softmax` and `LogSoftmax`. At the output they are removed, so that the logits are
//! explained (what zennit and captum users do), or a `Softmax` kept as a [`Softmax`] layer
//! on request; a `Softmax` inside the network (attention) is a [`Softmax`] layer on its
//! axis (of the node's own axes where the tensor is a pending transpose of them).

use super::{Ctx, Registry};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values;
use crate::io::onnx::view::View;
use crate::io::Op;
use crate::layers::Softmax;

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "Softmax",
        "inside the network (attention): a Softmax layer on its axis; at the output removed (the logits are explained; OnnxModel::notes says so), or a Softmax layer with OnnxOptions::keep_softmax",
    )
    .build(softmax)
    .check(trailing);
    reg.op("LogSoftmax", "removed at the output (the logits are explained)")
        .build(softmax)
        .check(trailing);
}

fn trailing(p: &Pre<'_>) -> Option<String> {
    let op = p.node.op_type.as_str();
    match (op, p.graph.trailing(p.node)) {
        ("LogSoftmax", false) => Some(INSIDE_LOG.into()),
        ("LogSoftmax", true) if p.opts.keep_softmax => Some(KEPT_LOG.into()),
        _ => None,
    }
}

const INSIDE_LOG: &str =
    "a LogSoftmax inside the network (only one at the output is supported: it is removed)";
const KEPT_LOG: &str =
    "keeping a LogSoftmax (OnnxOptions::keep_softmax) is not supported (captum has no DeepLIFT \
                        rule for it): explain the logits";

fn softmax<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let op = n.op();
    let trailing = imp.g.trailing(n.node);
    if trailing && !imp.opts.keep_softmax {
        imp.notes.push(format!(
            "removed the trailing {op} node {:?}: the network explains the logits before it, as zennit and \
             captum users do",
            n.label
        ));
        return imp.pass(n);
    }
    if op == "LogSoftmax" {
        return Err(n.refuse(if trailing { KEPT_LOG } else { INSIDE_LOG }));
    }
    let d = imp.data_arg(n, 0)?;
    let rank = d.shape.len() + 1;
    let default = if imp.g.opset < 13 { 1 } else { -1 };
    let given = n.attrs.int("axis", default)?;
    let ax = values::axis(given, rank).map_err(|_| Error::Format {
        what: n.label.to_string(),
        reason: format!("Softmax axis {given} is out of range for a tensor of rank {rank}"),
    })?;
    // before opset 13 the softmax runs over all axes from `axis` on, flattened
    let flattened = imp.g.opset < 13 && d.shape[ax.max(1) - 1..].iter().skip(1).any(|&s| s != 1);
    if ax == 0 || flattened {
        return Err(n.refuse(format!(
            "a softmax over axis {ax} of a rank-{rank} tensor (only one per-sample axis)"
        )));
    }
    // along the node's own axis where the tensor is a pending permutation of it
    let out = match d.view {
        View::Permuted { .. } => {
            let (id, axes) = imp.node_axes(n.label, &d, &[ax - 1])?;
            let out = imp.layer(n.label, Op::Layer(Box::new(Softmax::new(axes[0]))), &[id])?;
            d.with_node(out.id)
        }
        _ => {
            let x = imp.materialize(&d, n.label)?;
            imp.layer(n.label, Op::Layer(Box::new(Softmax::new(ax - 1))), &[x])?
        }
    };
    imp.out(n, out)
}
