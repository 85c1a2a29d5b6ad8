//! `Pad` with a constant: zeros are a [`Pad`] layer, or the padding of the convolutions
//! that read it; −∞ (or −FLT_MAX, which CoreML's converter writes for it) is the padding
//! of the max-pools that read it, since padding never wins a max.

use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::import::Importer;
use crate::io::onnx::view::{Data, Fill, View};
use crate::io::{Op, MAX_DIM};
use crate::layers::Pad;

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "Pad",
        "Pad (constant zeros), or the padding of the Conv reading it; −∞ or −FLT_MAX: the padding of the MaxPool reading it",
    )
    .build(pad)
    .check(check_pad);
}

/// Whether a padding value is −∞ for a max-pool: −FLT_MAX or below.
fn is_neg_inf(value: f64) -> bool {
    value <= f64::from(f32::MIN)
}

/// Why a padding with `value` cannot be imported (`before_max_pool`: only max-pools read
/// the result).
fn fill_refusal(value: f64, before_max_pool: bool) -> Option<String> {
    if value == 0.0 {
        None
    } else if is_neg_inf(value) {
        (!before_max_pool).then(|| {
            format!(
                "constant value {value} read by something else than MaxPool (a padding of −∞ is only a max-pool's \
                 padding)"
            )
        })
    } else {
        Some(format!(
            "constant value {value} (only zeros, or −∞ before a MaxPool)"
        ))
    }
}

/// The mode, the axes input and a literal padding value.
fn check_pad(p: &Pre<'_>) -> Option<String> {
    let mode = p.attrs.string("mode").ok()?;
    if !matches!(mode.as_str(), "" | "constant") {
        return Some(format!("mode {mode}"));
    }
    if p.graph.opset >= 18 && p.node.input.get(3).is_some_and(|a| !a.is_empty()) {
        return Some("the axes input".into());
    }
    let value = if p.graph.opset < 11 {
        p.attrs.get("value").map_or(0.0, |a| f64::from(a.f))
    } else if p.node.input.get(2).is_none_or(|s| s.is_empty()) {
        0.0
    } else {
        // a computed value is checked when it is known
        p.scalar(2)?
    };
    fill_refusal(value, p.graph.only_read_by(p.node, "MaxPool"))
}

fn pad<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let mode = n.attrs.string("mode")?;
    if !matches!(mode.as_str(), "" | "constant") {
        return Err(n.refuse(format!("mode {mode}")));
    }
    let d = imp.data_arg(n, 0)?;
    let rank = d.shape.len() + 1;
    let (pads, value) = if imp.g.opset < 11 {
        (
            n.attrs.get("pads").map(|a| a.ints.clone()).unwrap_or_default(),
            n.attrs.get("value").map_or(0.0, |a| f64::from(a.f)),
        )
    } else {
        let pads = imp.int_arg(n, 1, 16)?.unwrap_or_default();
        let value = match imp.const_arg(n, 2)? {
            Some(c) => c.floats()?.iter().next().map_or(0.0, |v| v.as_f64()),
            None => 0.0,
        };
        (pads, value)
    };
    if imp.g.opset >= 18 && n.node.input.get(3).is_some_and(|a| !a.is_empty()) {
        return Err(n.refuse("the axes input"));
    }
    let before_max_pool = imp.g.only_read_by(n.node, "MaxPool");
    if let Some(reason) = fill_refusal(value, before_max_pool) {
        return Err(n.refuse(reason));
    }
    if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0 || p as u64 > MAX_DIM as u64) {
        return Err(n.refuse(format!("pads {pads:?} for rank {rank}")));
    }
    if pads[0] != 0 || pads[rank] != 0 {
        return Err(n.refuse("padding of the batch axis"));
    }
    let per: Vec<(usize, usize)> = (1..rank)
        .map(|a| (pads[a] as usize, pads[rank + a] as usize))
        .collect();
    let shape: Vec<usize> = d.shape.iter().zip(&per).map(|(&s, &(b, e))| s + b + e).collect();
    let pending = |id, fill| Data {
        id,
        shape: shape.clone(),
        view: View::Padded {
            pads: per.clone(),
            fill,
        },
    };
    let image = per.len() == 3 && per[0] == (0, 0);
    let out = if value != 0.0 {
        // −∞: the padding of the max-pools that read it
        if !image {
            return Err(n.refuse(format!(
                "a padding of −∞ of per-sample axes {per:?} (only height and width: a max-pool's padding)"
            )));
        }
        pending(imp.materialize(&d, n.label)?, Fill::NegInf)
    } else if let View::Permuted { perm, .. } = &d.view {
        // zeros around the node's own axes, the permutation kept
        let mut node_pads = vec![(0, 0); per.len()];
        for (i, &p) in per.iter().enumerate() {
            node_pads[perm[i]] = p;
        }
        let padded = imp.layer(n.label, Op::Layer(Box::new(Pad::new(&node_pads))), &[d.id])?;
        Data {
            id: padded.id,
            shape,
            view: d.view.clone(),
        }
    } else if imp.g.only_read_by(n.node, "Conv") && image {
        // a pad read only by convolutions is folded into their padding (no layer)
        pending(imp.materialize(&d, n.label)?, Fill::Zero)
    } else {
        let x = imp.materialize(&d, n.label)?;
        imp.layer(n.label, Op::Layer(Box::new(Pad::new(&per))), &[x])?
    };
    imp.out(n, out)
}
