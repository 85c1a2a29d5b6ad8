//! `Constant`, and the operators that pass a tensor on unchanged (`Identity`, `Dropout` in
//! inference, `Cast` to a float type): no layer.

use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values::{Const, Sym, Value};
use ndarray::{ArrayD, IxDyn};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op("Constant", "its value (value, value_float(s), value_int(s))")
        .fold(constant);
    reg.op("Identity", "nothing").fold(pass_const).build(pass_data);
    reg.op("Dropout", "nothing (inference)")
        .fold(pass_const)
        .build(pass_data)
        .check(|p| {
            (p.is_data(0) && p.graph.used(p.node, 1)).then(|| "the dropout mask output is used".into())
        });
    reg.op(
        "Cast",
        "nothing (to a float type, of data); of constants evaluated when the file is read",
    )
    .fold(cast)
    .build(cast_data);
    reg.op("CastLike", "evaluated when the file is read (constants only)")
        .fold(cast);
}

/// A `Constant` node's value (stored as it is: a −∞ here may be a max-pool's padding).
fn constant<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let a = n
        .node
        .attribute
        .first()
        .ok_or_else(|| n.refuse("no value attribute"))?;
    let scalar =
        |v: Vec<Sym>, shape: &[usize]| Const::Int(ArrayD::from_shape_vec(IxDyn(shape), v).expect("shape"));
    let value = match a.name.as_str() {
        "value" => {
            let t = a.t.as_ref().ok_or_else(|| n.refuse("value without a tensor"))?;
            imp.decode(t, n.label)?
        }
        "value_float" => Const::Float(ArrayD::from_elem(IxDyn(&[]), F::lit(f64::from(a.f)))),
        "value_floats" => Const::Float(crate::tensor::layout::shaped(
            IxDyn(&[a.floats.len()]),
            a.floats.iter().map(|&v| F::lit(f64::from(v))).collect(),
        )),
        "value_int" => scalar(vec![Sym::Int(a.i)], &[]),
        "value_ints" => scalar(a.ints.iter().map(|&v| Sym::Int(v)).collect(), &[a.ints.len()]),
        other => return Err(n.refuse(format!("attribute {other:?}"))),
    };
    imp.set(n.node, 0, Value::Const(value));
    Ok(())
}

fn pass_const<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let v = imp.required_const(n, 0)?;
    imp.folded(n, 0, v)
}

fn pass_data<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    if n.op() == "Dropout" && imp.g.used(n.node, 1) {
        return Err(n.refuse("the dropout mask output is used"));
    }
    imp.pass(n)
}

fn cast<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let v = imp.required_const(n, 0)?;
    let to = if n.op() == "CastLike" {
        if matches!(imp.required_const(n, 1)?, Const::Int(_)) {
            7
        } else {
            1
        }
    } else {
        n.attrs.int("to", 1)? as i32
    };
    let value = match to {
        1 | 10 | 11 | 16 => Const::Float(v.floats()?),
        6 | 7 | 2 | 3 | 9 | 12 | 13 => match v {
            Const::Int(a) => Const::Int(a),
            Const::Float(a) => Const::Int(a.mapv(|f| Sym::Int(f.as_f64().trunc() as i64))),
        },
        other => return Err(n.refuse(format!("cast to data type {other}"))),
    };
    imp.folded(n, 0, value)
}

fn cast_data<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    match n.attrs.int("to", 1)? {
        1 | 10 | 11 | 16 => imp.pass(n),
        to => Err(n.refuse(format!("cast of data to type {to}"))),
    }
}
