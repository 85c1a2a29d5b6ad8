//! PyTorch's `Softplus` threshold as the dynamo exporter writes it on data:
//! `Where(Greater(x, t), x, Softplus(x))` (ONNX's `Softplus` has no threshold) becomes one
//! [`Softplus`] layer with threshold `t`. `Greater` and `Where` of data are refused elsewhere.

use super::Ctx;
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::graph::{is_default_domain, Graph};
use crate::io::onnx::import::Importer;
use crate::io::onnx::proto::NodeProto;
use crate::io::onnx::values::Value;
use crate::layers::Softplus;

/// The `Greater` and `Softplus` nodes of the pattern whose `Where` is `w`, if it is one.
fn pattern<'g>(g: &Graph<'g>, w: &NodeProto) -> Option<(&'g NodeProto, &'g NodeProto)> {
    let [cond, x, soft] = w.input.as_slice() else {
        return None;
    };
    let is = |n: &NodeProto, op: &str| n.op_type == op && is_default_domain(n) && n.input.first() == Some(x);
    let greater = g
        .readers_of(x)
        .find(|n| is(n, "Greater") && n.input.len() == 2 && n.output.first() == Some(cond))?;
    let softplus = g
        .readers_of(x)
        .find(|n| is(n, "Softplus") && n.output.first() == Some(soft))?;
    // the comparison feeds this Where and nothing else
    let only_where = g.readers_of(cond).count() == 1 && cond != g.output;
    only_where.then_some((greater, softplus))
}

/// First pass of `Greater`: on data only as part of the pattern, with a literal threshold.
pub(super) fn check_greater(p: &Pre<'_>) -> Option<String> {
    if !p.is_data(0) && !p.is_data(1) {
        return None;
    }
    let out = p.node.output.first()?;
    let fits = p.scalar(1).is_some()
        && p.graph.readers_of(out).any(|w| {
            w.op_type == "Where" && pattern(p.graph, w).is_some_and(|(g, _)| std::ptr::eq(g, p.node))
        });
    (!fits).then(|| {
        "on data only as PyTorch's Softplus threshold, Where(Greater(x, t), x, Softplus(x)), with a literal t".into()
    })
}

/// First pass of `Where`: on data only as the pattern.
pub(super) fn check_where(p: &Pre<'_>) -> Option<String> {
    if !(0..3).any(|pos| p.is_data(pos)) || pattern(p.graph, p.node).is_some() {
        return None;
    }
    Some("on data only as PyTorch's Softplus threshold, Where(Greater(x, t), x, Softplus(x))".into())
}

/// `Greater` of data in the pattern: nothing to build (its `Where` builds the layer); its
/// output stands for `x` for that `Where` alone.
pub(super) fn greater<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    imp.set(n.node, 0, Value::Data(d));
    Ok(())
}

/// `Where` of the pattern: a [`Softplus`] with the threshold of its `Greater` (the
/// `Softplus` node with no threshold that it replaces is left unread and dropped).
pub(super) fn where_softplus<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let (greater, _) = pattern(imp.g, n.node).ok_or_else(|| n.refuse("not PyTorch's Softplus threshold"))?;
    let t = match imp.get(greater.input[1].as_str(), n.label)?.as_ref() {
        Value::Const(c) => {
            let t = c.floats()?;
            match t.len() {
                1 => t.iter().next().map(|v| v.as_f64()),
                _ => None,
            }
        }
        Value::Data(_) => None,
    }
    .ok_or_else(|| n.refuse("the threshold is not one constant"))?;
    let x = imp.data_arg(n, 1)?;
    let out = imp.elementwise(n.label, Box::new(Softplus::new(1.0, t)?), &x)?;
    imp.out(n, out)
}
