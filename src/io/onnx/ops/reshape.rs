//! Reshapes and transposes. Of constants (weights reshaped or transposed by the exporter)
//! they are evaluated when the file is read; of data they are [`Flatten`] and [`Reshape`]
//! layers (none where the shape does not change), and a `Transpose` is a pending
//! permutation (`view.rs`) that becomes a [`Permute`](crate::Permute) only where something
//! needs the tensor itself. A `Transpose` or `Reshape` that moves the batch axis (or merges
//! it with another, as `nn.MultiheadAttention`'s exports do) makes a layout (`layout.rs`):
//! nothing is built until the batch is first again or a layer needs the tensor.

use super::{Ctx, Registry};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values::{self, Sym};
use crate::io::onnx::view::{is_permutation, show_shape, Data};
use crate::io::Op;
use crate::layers::Reshape;

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "Reshape",
        "Flatten or Reshape of data (batch axis kept); of constants evaluated when the file is read",
    )
    .fold(fold_reshape)
    .build(reshape)
    .layouts();
    reg.op("Flatten", "Flatten (any axis that keeps samples apart)")
        .fold(fold_flatten)
        .build(flatten);
    for op in ["Squeeze", "Unsqueeze"] {
        reg.op(
            op,
            "Reshape of data (batch axis kept), nothing if the shape stays",
        )
        .fold(fold_squeeze)
        .build(squeeze)
        .layouts();
    }
    reg.op(
        "Transpose",
        "a pending permutation: cancels against another Transpose, else Permute (batch axis kept)",
    )
    .fold(fold_transpose)
    .build(transpose)
    .layouts();
}

fn fold_reshape<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let data = imp.required_const(n, 0)?;
    let target = imp.int_arg(n, 1, 64)?.unwrap_or_default();
    let shape = values::resolve_reshape(data.shape(), &target, n.attrs.int("allowzero", 0)? != 0)?;
    let value = values::reshape_const(&data, &shape)?;
    imp.folded(n, 0, value)
}

fn reshape<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let target = imp
        .const_arg(n, 1)?
        .ok_or_else(|| n.refuse("no target shape"))?
        .ints()?;
    let d = imp.data_arg(n, 0)?;
    let allowzero = n.attrs.int("allowzero", 0)? != 0;
    // batch first on both sides: a reshape per sample
    if d.layout().is_none() {
        let per_sample = values::per_sample_target(&target, imp.batch)
            .and_then(|t| values::resolve_reshape(&d.shape, &t, allowzero));
        if let Ok(shape) = per_sample {
            let out = reshape_to(imp, n.label, &d, &shape)?;
            return imp.out(n, out);
        }
    }
    // the batch moved or merged: a regrouping of the layout
    let target: Vec<Sym> = target.iter().copied().collect();
    let out = regroup(imp, n, &d, &target, allowzero)?;
    imp.out(n, out)
}

/// Data reshaped to a full `target` (the batch anywhere, as `Reshape`'s entries): the
/// layout regrouped, nothing built.
fn regroup<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
    d: &Data,
    target: &[Sym],
    allowzero: bool,
) -> Result<Data> {
    let (id, l) = imp.layout_of(n.label, d)?;
    let shape = l.shape();
    let full =
        values::resolve_data_reshape(&shape, target, allowzero).map_err(|e| n.refuse(e.to_string()))?;
    let regrouped = l.reshape(&full).ok_or_else(|| {
        n.refuse(format!(
            "of data {} to {} (N the batch size): the batch axis would be split, or mixed with axes that are not              next to it",
            show_shape(&shape),
            show_shape(&full)
        ))
    })?;
    Ok(imp.data_of_layout(id, regrouped, n.label))
}

fn fold_flatten<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let data = imp.required_const(n, 0)?;
    let ax = values::axis(n.attrs.int("axis", 1)?, data.shape().len() + 1)?;
    let (a, b): (usize, usize) = (
        data.shape()[..ax].iter().product(),
        data.shape()[ax..].iter().product(),
    );
    let value = values::reshape_const(&data, &[a, b])?;
    imp.folded(n, 0, value)
}

fn flatten<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    let rank = d.shape.len() + 1;
    let ax = values::axis(n.attrs.int("axis", 1)?, rank + 1)?;
    let kept: usize = d.shape.iter().take(ax.saturating_sub(1)).product();
    if ax == 0 || kept != 1 {
        return Err(n.refuse(format!(
            "axis {ax} of per-sample shape {:?} mixes samples",
            d.shape
        )));
    }
    let x = imp.in_order(n.label, &d)?;
    let out = imp.layer(n.label, Op::Flatten, &[x])?;
    imp.out(n, out)
}

/// The `axes` of `Squeeze`/`Unsqueeze`: an attribute before opset 13, an input since.
fn squeeze_axes<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<Option<Vec<i64>>> {
    if imp.g.opset < 13 {
        Ok(n.attrs.get("axes").map(|a| a.ints.clone()))
    } else {
        imp.int_arg(n, 1, 64)
    }
}

fn fold_squeeze<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let data = imp.required_const(n, 0)?;
    let axes = squeeze_axes(imp, n)?;
    let shape = if n.op() == "Unsqueeze" {
        values::unsqueeze_shape(data.shape(), &axes.unwrap_or_default())?
    } else {
        values::squeeze_shape(data.shape(), axes.as_deref())?
    };
    let value = values::reshape_const(&data, &shape)?;
    imp.folded(n, 0, value)
}

fn squeeze<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let op = n.op();
    let axes = squeeze_axes(imp, n)?;
    let d = imp.data_arg(n, 0)?;
    if d.layout().is_some() {
        let out = squeeze_layout(imp, n, &d, axes)?;
        return imp.out(n, out);
    }
    let mut full = vec![1usize];
    full.extend_from_slice(&d.shape);
    let is_batch = |a: i64, rank: usize| values::axis(a, rank).ok() == Some(0);
    let shape = if op == "Unsqueeze" {
        let axes = axes.unwrap_or_default();
        let shape = values::unsqueeze_shape(&full, &axes)?;
        if axes.iter().any(|&a| is_batch(a, shape.len())) {
            // a new axis before the batch: the batch moves
            let out = squeeze_layout(imp, n, &d, Some(axes))?;
            return imp.out(n, out);
        }
        shape
    } else {
        match &axes {
            Some(a) if a.iter().any(|&a| is_batch(a, full.len())) => {
                return Err(n.refuse("squeezing the batch axis"));
            }
            Some(a) => values::squeeze_shape(&full, Some(a))?,
            // no axes: every 1 but the batch's
            None => std::iter::once(1)
                .chain(d.shape.iter().copied().filter(|&v| v != 1))
                .collect(),
        }
    };
    let out = reshape_to(imp, n.label, &d, &shape[1..])?;
    imp.out(n, out)
}

/// `Squeeze`/`Unsqueeze` of data in any layout: the full shape with axes of 1 added or
/// removed, a regrouping of the layout.
fn squeeze_layout<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
    d: &Data,
    axes: Option<Vec<i64>>,
) -> Result<Data> {
    let (_, l) = imp.layout_of(n.label, d)?;
    let mut shape = l.shape();
    let one = Sym::Int(1);
    if n.op() == "Unsqueeze" {
        let rank = shape.len() + axes.as_ref().map_or(0, Vec::len);
        let mut at: Vec<usize> = axes
            .unwrap_or_default()
            .iter()
            .map(|&a| values::axis(a, rank))
            .collect::<Result<_>>()?;
        at.sort_unstable();
        for a in at {
            shape.insert(a.min(shape.len()), one);
        }
    } else {
        let rank = shape.len();
        let gone: Vec<usize> = match &axes {
            Some(a) => a.iter().map(|&a| values::axis(a, rank)).collect::<Result<_>>()?,
            None => (0..rank).filter(|&a| shape[a] == one).collect(),
        };
        if gone.iter().any(|&a| shape[a] != one) {
            return Err(n.refuse(format!(
                "squeezing an axis that is not 1 of {}",
                show_shape(&shape)
            )));
        }
        shape = (0..rank)
            .filter(|a| !gone.contains(a))
            .map(|a| shape[a])
            .collect();
    }
    regroup(imp, n, d, &shape, true)
}

/// Data reshaped to a per-sample shape (no layer if it is already that shape).
pub(super) fn reshape_to<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    label: &str,
    d: &Data,
    shape: &[usize],
) -> Result<Data> {
    if shape == d.shape.as_slice() {
        return Ok(d.clone());
    }
    let x = imp.in_order(label, d)?;
    if imp.builder.shape_of(x) == shape {
        // the node holds the values in order, in this shape (e.g. one value per sample, a
        // node of shape [1], unsqueezed to [1])
        return Ok(Data::node(x, shape.to_vec()));
    }
    if shape.len() == 1 {
        return imp.layer(label, Op::Flatten, &[x]);
    }
    imp.layer(label, Op::Layer(Box::new(Reshape::new(shape))), &[x])
}

fn fold_transpose<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let data = imp.required_const(n, 0)?;
    let value = values::transpose_const(&data, n.attrs.get("perm").map(|a| a.ints.as_slice()))?;
    imp.folded(n, 0, value)
}

fn transpose<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    let rank = d.layout().map_or(d.shape.len() + 1, |l| l.axes.len());
    let perm: Vec<usize> = match n.attrs.get("perm") {
        Some(a) => a
            .ints
            .iter()
            .map(|&p| values::axis(p, rank))
            .collect::<Result<_>>()?,
        None => (0..rank).rev().collect(),
    };
    if perm.len() != rank || !is_permutation(&perm) {
        return Err(Error::Format {
            what: n.label.to_string(),
            reason: format!("Transpose perm {perm:?} is not a permutation of the {rank} axes"),
        });
    }
    if perm[0] != 0 || d.layout().is_some() {
        // the batch moves (or has moved): a reordering of the layout
        let (id, l) = imp.layout_of(n.label, &d)?;
        let out = imp.data_of_layout(id, l.transpose(&perm), n.label);
        return imp.out(n, out);
    }
    let per: Vec<usize> = perm[1..].iter().map(|p| p - 1).collect();
    let out = imp.permuted(n.label, &d, &per)?;
    imp.out(n, out)
}
