//! Shape arithmetic, evaluated when the file is read: `Shape` and `Size` of any tensor
//! (of data too: its shape is known, its batch size symbolic), and what exporters compute
//! from them (`ConstantOfShape`, `Range`, `Expand`; `Gather` is in `gather.rs`).

use super::{to_shape, Ctx, Registry};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values::{self, Const, Sym, Value};
use ndarray::{ArrayD, IxDyn};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    let folded = "evaluated when the file is read (shape arithmetic)";
    reg.op(
        "Shape",
        "evaluated when the file is read, of data too (its batch size symbolic)",
    )
    .fold_always(shape)
    .layouts();
    reg.op(
        "Size",
        "evaluated when the file is read, of data too (if it does not depend on the batch size)",
    )
    .fold_always(shape)
    .layouts();
    reg.op("ConstantOfShape", folded).fold(constant_of_shape);
    reg.op("Range", folded).fold(range);
    reg.op(
        "Expand",
        "evaluated when the file is read (shape arithmetic); a constant expanded to the batch (a class token) is one row that every sample shares",
    )
    .fold(expand);
}

fn shape<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let start = n.attrs.int("start", 0)?;
    let end = n.attrs.get("end").map(|a| a.i);
    let shape = match imp.required_arg(n, 0)?.as_ref() {
        Value::Data(d) => match d.layout() {
            Some(l) => values::shape_of_full::<F>(&l.shape(), start, end)?,
            None => values::shape_of_data::<F>(&d.shape, start, end)?,
        },
        Value::Const(c) => values::shape_of_const(c, start, end)?,
    };
    let value = if n.op() == "Size" {
        Const::Int(ArrayD::from_elem(IxDyn(&[]), shape_product(&shape)?))
    } else {
        shape
    };
    imp.folded(n, 0, value)
}

/// The product of a shape's entries (symbolic if the batch is among them).
fn shape_product<F: Float>(shape: &Const<F>) -> Result<Sym> {
    let v = shape.ints()?;
    let mut acc = 1i64;
    for s in v.iter() {
        match s {
            Sym::Int(d) => acc = acc.saturating_mul(*d),
            Sym::Batch(_) => {
                return Err(Error::Format {
                    what: "constant folding".into(),
                    reason: "Size of a tensor whose size depends on the batch".into(),
                })
            }
        }
    }
    Ok(Sym::Int(acc))
}

fn constant_of_shape<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let shape = to_shape(&imp.int_arg(n, 0, 64)?.unwrap_or_default())?;
    values::check_size(&shape)?;
    let value = match n.attrs.get("value").and_then(|a| a.t.as_ref()) {
        Some(t) => match imp.decode(t, n.label)? {
            Const::Float(a) => {
                let x = *a.iter().next().unwrap_or(&F::zero());
                Const::Float(ArrayD::from_elem(IxDyn(&shape), x))
            }
            Const::Int(a) => {
                let x = *a.iter().next().unwrap_or(&Sym::Int(0));
                Const::Int(ArrayD::from_elem(IxDyn(&shape), x))
            }
        },
        None => Const::Float(ArrayD::zeros(IxDyn(&shape))),
    };
    imp.folded(n, 0, value)
}

fn range<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let (s, l, d) = (
        imp.required_const(n, 0)?,
        imp.required_const(n, 1)?,
        imp.required_const(n, 2)?,
    );
    let value = values::range(&s, &l, &d)?;
    imp.folded(n, 0, value)
}

/// `Expand` of a constant. A shape that starts with the batch size (the class token of a
/// ViT, `class_token.expand(N, -1, -1)`) expands it to one row, `[1, ...]`: constants
/// broadcast over the batch wherever they meet data, and a `Concat` with data makes the
/// row a constant node that every sample shares.
fn expand<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let data = imp.required_const(n, 0)?;
    let target = imp
        .const_arg(n, 1)?
        .map(|c| c.ints())
        .transpose()?
        .map(|a| a.iter().copied().collect::<Vec<Sym>>())
        .unwrap_or_default();
    if target.len() > 64 {
        return Err(n.refuse(format!("a shape of {} entries", target.len())));
    }
    let shape: Vec<i64> = target
        .iter()
        .enumerate()
        .map(|(i, s)| match *s {
            Sym::Int(v) => Ok(v),
            Sym::Batch(1) if i == 0 => Ok(1),
            _ => Err(n.refuse(format!(
                "expands to {target:?}: the batch size where a number is needed"
            ))),
        })
        .collect::<Result<_>>()?;
    let shape = to_shape(&shape)?;
    let value = values::expand(&data, &shape)?;
    imp.folded(n, 0, value)
}
