//! Cutting and joining along an axis: `Slice`, `Split` and `Concat`. Of constants (shape
//! arithmetic) they are evaluated when the file is read; of data along a per-sample axis
//! they are [`Narrow`] layers (step 1) and [`Concat`] nodes.

use super::{to_shape, Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values::{self, Value};
use crate::io::Op;
use crate::layers::{Concat, Narrow};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op("Slice", "Narrow (step 1, per-sample axes), one per axis cut")
        .fold(fold_slice)
        .build(slice);
    reg.op("Split", "Narrow, one per part (per-sample axes)")
        .fold(fold_split)
        .build(split);
    reg.op("Concat", "a Concat node (per-sample axes)")
        .fold(fold_concat)
        .build(concat);
}

/// `starts`, `ends`, `axes`, `steps`: attributes before opset 10, inputs since.
#[allow(clippy::type_complexity)]
fn slice_args<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
) -> Result<(Vec<i64>, Vec<i64>, Option<Vec<i64>>, Option<Vec<i64>>)> {
    if imp.g.opset < 10 {
        let get = |name: &str| n.attrs.get(name).map(|a| a.ints.clone());
        Ok((
            get("starts").unwrap_or_default(),
            get("ends").unwrap_or_default(),
            get("axes"),
            None,
        ))
    } else {
        Ok((
            imp.int_arg(n, 1, 64)?.unwrap_or_default(),
            imp.int_arg(n, 2, 64)?.unwrap_or_default(),
            imp.int_arg(n, 3, 64)?,
            imp.int_arg(n, 4, 64)?,
        ))
    }
}

fn fold_slice<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let data = imp.required_const(n, 0)?;
    let (starts, ends, axes, steps) = slice_args(imp, n)?;
    let value = values::slice(&data, &starts, &ends, axes.as_deref(), steps.as_deref())?;
    imp.folded(n, 0, value)
}

/// `Slice` of data with step 1 along per-sample axes: one [`Narrow`] per axis cut.
fn slice<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    let rank = d.shape.len() + 1;
    let (starts, ends, axes, steps) = slice_args(imp, n)?;
    if starts.len() != ends.len() {
        return Err(n.refuse("starts and ends differ in length"));
    }
    let mut out = d;
    for k in 0..starts.len() {
        let ax = match &axes {
            Some(a) => values::axis(*a.get(k).ok_or_else(|| n.refuse("too few axes"))?, rank)?,
            None => k,
        };
        let step = steps.as_ref().and_then(|s| s.get(k).copied()).unwrap_or(1);
        let dim = if ax == 0 {
            i64::MAX
        } else {
            out.shape[ax - 1] as i64
        };
        let clamp = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
        let (s, e) = (clamp(starts[k]), clamp(ends[k]));
        if ax == 0 {
            if s == 0 && e == dim {
                continue;
            }
            return Err(n.refuse("a slice of the batch"));
        }
        if step != 1 {
            return Err(n.refuse(format!("step {step} on data (only 1)")));
        }
        if s == 0 && e == dim {
            continue;
        }
        if s >= e {
            return Err(n.refuse("an empty slice"));
        }
        let x = imp.materialize(&out, n.label)?;
        let narrow = Narrow::new(ax - 1, s as usize, (e - s) as usize);
        out = imp.layer(n.label, Op::Layer(Box::new(narrow)), &[x])?;
    }
    imp.out(n, out)
}

fn fold_split<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let data = imp.const_arg(n, 0)?.ok_or_else(|| n.refuse("no input"))?;
    let ax = values::axis(n.attrs.int("axis", 0)?, data.shape().len())?;
    let len = data.shape()[ax];
    let outs = n.node.output.len();
    let sizes: Vec<usize> = match (n.attrs.get("split"), imp.const_arg(n, 1)?) {
        (Some(a), _) => to_shape(&a.ints)?,
        (None, Some(c)) => to_shape(&c.int_list(64)?)?,
        (None, None) if outs > 0 && len % outs == 0 => vec![len / outs; outs],
        _ => return Err(n.refuse("sizes cannot be inferred")),
    };
    let total = sizes.iter().try_fold(0usize, |t, &s| t.checked_add(s));
    if total != Some(len) || sizes.len() != outs {
        return Err(n.refuse(format!("sizes {sizes:?} for length {len}")));
    }
    let mut start = 0;
    for (pos, &s) in sizes.iter().enumerate() {
        let part = values::take_rows(&data, ax, start, s);
        imp.set(n.node, pos, Value::Const(part));
        start += s;
    }
    Ok(())
}

/// `Split` of data: one [`Narrow`] per output that something reads.
fn split<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    let rank = d.shape.len() + 1;
    let ax = values::axis(n.attrs.int("axis", 0)?, rank)?;
    if ax == 0 {
        return Err(n.refuse("a split of the batch"));
    }
    let len = d.shape[ax - 1];
    let outs = n.node.output.len();
    let from_input = if imp.g.opset >= 13 {
        imp.int_arg(n, 1, 4096)?
    } else {
        None
    };
    let sizes: Vec<i64> = match (n.attrs.get("split"), from_input) {
        (Some(a), _) => a.ints.clone(),
        (None, Some(v)) => v,
        (None, None) if outs > 0 => {
            // equal parts (the last one smaller with num_outputs, opset 18)
            let part = len.div_ceil(outs) as i64;
            let mut v = vec![part; outs];
            if let Some(last) = v.last_mut() {
                *last = len as i64 - part * (outs as i64 - 1);
            }
            v
        }
        _ => return Err(n.refuse("no outputs")),
    };
    let total = sizes.iter().try_fold(0i64, |t, &s| t.checked_add(s));
    if sizes.len() != outs || sizes.iter().any(|&s| s <= 0) || total != Some(len as i64) {
        return Err(n.refuse(format!("sizes {sizes:?} for length {len}")));
    }
    let x = imp.materialize(&d, n.label)?;
    let mut start = 0usize;
    for (pos, &size) in sizes.iter().enumerate() {
        let narrow = Narrow::new(ax - 1, start, size as usize);
        start += size as usize;
        if !imp.g.used(n.node, pos) {
            continue;
        }
        let part = imp.layer(n.label, Op::Layer(Box::new(narrow)), &[x])?;
        imp.set(n.node, pos, Value::Data(part));
    }
    Ok(())
}

fn fold_concat<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let mut parts = Vec::new();
    for pos in 0..n.node.input.len() {
        if let Some(p) = imp.const_arg(n, pos)? {
            parts.push(p);
        }
    }
    let refs: Vec<_> = parts.iter().collect();
    let value = values::concat(&refs, n.attrs.int("axis", 0)?)?;
    imp.folded(n, 0, value)
}

/// `Concat` of data along a per-sample axis; a constant among the parts (a ViT's class
/// token, expanded to the batch) becomes a constant node, one row every sample shares.
fn concat<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let mut shape = None;
    for pos in 0..n.node.input.len() {
        if let Some(Value::Data(d)) = imp.input(n.node, pos, n.label)?.as_deref() {
            shape = Some(d.shape.clone());
            break;
        }
    }
    let shape = shape.ok_or_else(|| n.refuse("no computed input"))?;
    let ax = values::axis(n.attrs.int("axis", 0)?, shape.len() + 1)?;
    if ax == 0 {
        return Err(n.refuse("concatenation along the batch axis"));
    }
    let mut ids = Vec::new();
    for pos in 0..n.node.input.len() {
        let id = match imp.required_arg(n, pos)?.as_ref() {
            Value::Data(_) => imp.node_arg(n, pos)?,
            Value::Const(c) => {
                // the constant's own size along the axis, the data's elsewhere
                let mut row = shape.clone();
                let full = c.shape();
                if full.len() != shape.len() + 1 {
                    return Err(n.refuse(format!(
                        "a constant of shape {full:?} concatenated with data of per-sample shape {shape:?}"
                    )));
                }
                row[ax - 1] = full[ax];
                let name = n.node.input[pos].clone();
                imp.constant_node(&name, c, &row)?
                    .map_err(|why| n.refuse(format!("{why}, concatenated with data")))?
            }
        };
        ids.push(id);
    }
    let out = imp.layer(n.label, Op::Merge(Box::new(Concat::new(ax - 1))), &ids)?;
    imp.out(n, out)
}
