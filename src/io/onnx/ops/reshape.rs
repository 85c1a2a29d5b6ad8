//! Reshapes and transposes. Of constants (weights reshaped or transposed by the exporter)
//! they are evaluated when the file is read; of data they are [`Flatten`] and [`Reshape`]
//! layers (none where the shape does not change), and a `Transpose` is a pending
//! permutation (`view.rs`) that becomes a [`Permute`](crate::Permute) only where something
//! needs the tensor itself.

use super::{Ctx, Registry};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values;
use crate::io::onnx::view::{is_permutation, Data};
use crate::io::Op;
use crate::layers::Reshape;

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op(
        "Reshape",
        "Flatten or Reshape of data (batch axis kept); of constants evaluated when the file is read",
    )
    .fold(fold_reshape)
    .build(reshape);
    reg.op("Flatten", "Flatten (any axis that keeps samples apart)")
        .fold(fold_flatten)
        .build(flatten);
    for op in ["Squeeze", "Unsqueeze"] {
        reg.op(
            op,
            "Reshape of data (batch axis kept), nothing if the shape stays",
        )
        .fold(fold_squeeze)
        .build(squeeze);
    }
    reg.op(
        "Transpose",
        "a pending permutation: cancels against another Transpose, else Permute (batch axis kept)",
    )
    .fold(fold_transpose)
    .build(transpose)
    .check(|p| {
        let perm = p.attrs.get("perm").map(|a| a.ints.as_slice()).unwrap_or_default();
        let moves_batch = perm.first().is_some_and(|&a| a != 0 && a != -(perm.len() as i64));
        (p.is_data(0) && moves_batch).then(|| format!("perm {perm:?} moves the batch axis"))
    });
}

fn fold_reshape<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let data = imp.required_const(n, 0)?;
    let target = imp.int_arg(n, 1, 64)?.unwrap_or_default();
    let shape = values::resolve_reshape(data.shape(), &target, n.attrs.int("allowzero", 0)? != 0)?;
    let value = values::reshape_const(&data, &shape)?;
    imp.folded(n, 0, value)
}

fn reshape<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let target = imp.const_arg(n, 1)?.ok_or_else(|| n.refuse("no target shape"))?;
    let target = values::per_sample_target(&target.ints()?, imp.batch)?;
    let d = imp.data_arg(n, 0)?;
    let shape = values::resolve_reshape(&d.shape, &target, n.attrs.int("allowzero", 0)? != 0)
        .map_err(|e| n.refuse(e.to_string()))?;
    let out = reshape_to(imp, n.label, &d, &shape)?;
    imp.out(n, out)
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
    let mut full = vec![1usize];
    full.extend_from_slice(&d.shape);
    let is_batch = |a: i64, rank: usize| values::axis(a, rank).ok() == Some(0);
    let shape = if op == "Unsqueeze" {
        let axes = axes.unwrap_or_default();
        let shape = values::unsqueeze_shape(&full, &axes)?;
        if axes.iter().any(|&a| is_batch(a, shape.len())) {
            return Err(n.refuse("a new axis before the batch"));
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
    let rank = d.shape.len() + 1;
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
    if perm[0] != 0 {
        return Err(n.refuse(format!("perm {perm:?} moves the batch axis")));
    }
    let per: Vec<usize> = perm[1..].iter().map(|p| p - 1).collect();
    let out = imp.permuted(n.label, &d, &per)?;
    imp.out(n, out)
}
