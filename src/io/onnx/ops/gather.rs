//! `Gather`: of constants (shape arithmetic) evaluated when the file is read; rows of a
//! constant table selected by the integer graph input (token ids) an [`Embedding`]; and
//! entries of data selected by constant indices along a per-sample axis — the class token
//! of a ViT, `x[:, 0]`, or q, k and v out of a packed projection — [`Narrow`] layers
//! (joined by a [`Concat`] for indices that are not one run), in any layout (`layout.rs`).

use super::{Ctx, Registry};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::import::Importer;
use crate::io::onnx::layout::{atom_axes, BATCH_ATOM};
use crate::io::onnx::values::{self, Const, Value};
use crate::io::onnx::view::{show_shape, Data, View};
use crate::io::Op;
use crate::layers::{Concat, Embedding, Narrow};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "Gather",
        "of constants evaluated when the file is read; a constant table [V, D] by the integer graph input (token ids): Embedding; data by constant indices along a per-sample axis: Narrow (a single index drops the axis: the class token)",
    )
    .fold(fold)
    .build(build)
    .layouts()
    .check(check);
}

fn check(p: &Pre<'_>) -> Option<String> {
    match (p.is_data(0), p.is_data(1)) {
        (true, true) => Some("of computed data by computed indices".into()),
        (false, true) if !(p.graph.int_input && p.node.input.get(1) == Some(&p.graph.input.name)) => Some(
            "indices computed from the network input (only token ids, the integer graph input itself, select rows \
             of a table)"
                .into(),
        ),
        _ => None,
    }
}

fn fold<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let (data, idx) = (imp.required_const(n, 0)?, imp.required_const(n, 1)?);
    let value = values::gather(&data, &idx, n.attrs.int("axis", 0)?)?;
    imp.folded(n, 0, value)
}

fn build<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let (a, b) = (imp.required_arg(n, 0)?, imp.required_arg(n, 1)?);
    match (a.as_ref(), b.as_ref()) {
        (Value::Const(_), Value::Data(ids)) => embedding(imp, n, &ids.clone()),
        (Value::Data(d), Value::Const(idx)) => select(imp, n, &d.clone(), &idx.clone()),
        _ => Err(n.refuse("of computed data by computed indices")),
    }
}

/// Rows of a constant table `[V, D]` by the token ids of the graph input: an [`Embedding`]
/// (ids `[N, ...]` → `[N, ..., D]`; an id that is not an integer in `0..V` is
/// [`Error::TokenId`] when the network runs).
fn embedding<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>, ids: &Data) -> Result<()> {
    let input = imp.builder.input();
    if !(imp.g.int_input && ids.id == input && ids.view == View::Same) {
        return Err(n.refuse(
            "indices computed from the network input (only token ids, the integer graph input itself, select rows of \
             a table)",
        ));
    }
    if n.attrs.int("axis", 0)? != 0 {
        return Err(n.refuse("a table gathered along an axis other than 0 (rows are embeddings)"));
    }
    let table = imp
        .weight(n.node, 0, n.label, false)?
        .ok_or_else(|| n.refuse("input 0 is missing"))?;
    let shape = table.shape().to_vec();
    let table = table.into_dimensionality().map_err(|_| Error::Rank {
        what: "Gather table (embeddings [V, D])".into(),
        expected: 2,
        got: shape.len(),
        shape,
    })?;
    let layer = Embedding::from_shared(table)?;
    let out = imp.layer(n.label, Op::Layer(Box::new(layer)), &[input])?;
    imp.out(n, out)
}

/// Entries of data selected by constant indices (a scalar or a list) along a per-sample
/// axis that is one axis of the node (or of the node's values regrouped): `Narrow` layers,
/// the axis dropped for a scalar index.
fn select<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>, d: &Data, idx: &Const<F>) -> Result<()> {
    let (id, l) = imp.layout_of(n.label, d)?;
    let shape = l.shape();
    let ax = values::axis(n.attrs.int("axis", 0)?, shape.len())?;
    let group = l.axes[ax].clone();
    if group.contains(&BATCH_ATOM) {
        return Err(n.refuse(format!(
            "a selection along axis {ax} of {}, which holds the batch (N)",
            show_shape(&shape)
        )));
    }
    let dim: usize = group.iter().map(|&a| l.sizes[a]).product();
    let idx = idx.ints()?;
    if idx.ndim() > 1 {
        return Err(n.refuse(format!("indices of shape {:?} (a scalar or a list)", idx.shape())));
    }
    let picks: Vec<usize> = idx
        .iter()
        .map(|s| match s.int() {
            Some(i) if (-(dim as i64)..dim as i64).contains(&i) => {
                Ok(if i < 0 { i + dim as i64 } else { i } as usize)
            }
            _ => Err(Error::Format {
                what: n.label.to_string(),
                reason: format!("Gather index {s:?} out of range for an axis of length {dim}"),
            }),
        })
        .collect::<Result<_>>()?;
    let scalar = idx.ndim() == 0;
    if group.is_empty() {
        // an axis of 1: index 0 keeps it (a list) or drops it (a scalar)
        if !scalar && picks.len() != 1 {
            return Err(n.refuse("repeats entries of an axis of length 1"));
        }
        let mut out = l.clone();
        if scalar {
            out.axes.remove(ax);
        }
        let data = imp.data_of_layout(id, out, n.label);
        return imp.out(n, data);
    }
    let [atom] = group[..] else {
        return Err(n.refuse(format!(
            "a selection along axis {ax} of {}, which merges {} axes of the values",
            show_shape(&shape),
            group.len()
        )));
    };
    if picks.is_empty() {
        return Err(n.refuse("no indices"));
    }
    // the node's axis that is this atom (the node reshaped to its atoms if none is)
    let node_shape = imp.builder.shape_of(id).to_vec();
    let (node, axis) = match atom_axes(&node_shape, &l.sizes)[atom] {
        Some(axis) => (id, axis),
        None => (imp.atoms_node(id, &l, n.label)?, atom),
    };
    // runs of consecutive indices, one Narrow each
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &i in &picks {
        match runs.last_mut() {
            Some((start, len)) if *start + *len == i => *len += 1,
            _ => runs.push((i, 1)),
        }
    }
    let mut parts = Vec::with_capacity(runs.len());
    for &(start, len) in &runs {
        let narrow = Narrow::new(axis, start, len);
        parts.push(imp.layer(n.label, Op::Layer(Box::new(narrow)), &[node])?.id);
    }
    let out = if let [one] = parts[..] {
        one
    } else {
        imp.layer(n.label, Op::Merge(Box::new(Concat::new(axis))), &parts)?
            .id
    };
    let layout = l.narrowed(atom, picks.len(), scalar.then_some(ax));
    let data = imp.data_of_layout(out, layout, n.label);
    imp.out(n, data)
}
