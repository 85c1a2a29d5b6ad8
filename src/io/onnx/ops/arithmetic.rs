//! Elementwise arithmetic. On constants it is evaluated when the file is read (shape
//! arithmetic, weights scaled by the exporter). On data: `Add` and `Mul` of two computed
//! tensors are [`Add`] and [`Mul`] nodes (`Sum` of any number an [`Add`]); `Add`, `Sub`,
//! `Mul`, `Div` by a constant that varies along one axis only (an input normalisation, a
//! batch norm written out) are a per-channel affine [`BatchNorm2d`] layer, on whichever
//! axis the constant varies along (`view.rs`).

use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values::{self, Const, Sym, Value};
use crate::io::onnx::view::{per_axis, Data, View};
use crate::io::Op;
use crate::layers::{Add, BatchNorm2d, Merge, Mul};
use ndarray::Array1;

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    let affine =
        "by a constant varying along one axis: a per-channel affine layer (BatchNorm2d::from_scale_shift)";
    reg.op("Add", "of two computed tensors: an Add node; by a constant: a per-channel affine layer, or the bias of the Conv/Gemm/MatMul before it, or (any other constant: a positional embedding) an Add node with a constant node")
        .fold(fold_binary)
        .build(arithmetic)
        .check(two_operands);
    reg.op("Sub", affine)
        .fold(fold_binary)
        .build(arithmetic)
        .check(two_operands);
    reg.op(
        "Mul",
        "of two computed tensors (gates): a Mul node; by a constant: a per-channel affine layer",
    )
    .fold(fold_binary)
    .build(arithmetic)
    .check(two_operands);
    reg.op(
        "Div",
        "by a constant varying along one axis: a per-channel affine layer",
    )
    .fold(fold_binary)
    .build(arithmetic)
    .check(two_operands);
    reg.op("Sum", "of computed tensors (any number): an Add node")
        .fold(fold_binary)
        .build(arithmetic);
    for op in ["Pow", "Max", "Min", "Mod"] {
        reg.op(op, "evaluated when the file is read (constants only)")
            .fold(fold_binary);
    }
    for op in ["Neg", "Sqrt", "Reciprocal", "Abs", "Floor", "Ceil"] {
        reg.op(op, "evaluated when the file is read (constants only)")
            .fold(fold_unary);
    }
}

/// `Sub` and `Div` of two computed tensors, and a constant divided by data, are no layer.
fn two_operands(p: &Pre<'_>) -> Option<String> {
    let op = p.node.op_type.as_str();
    match (p.is_data(0), p.is_data(1), op) {
        (true, true, "Sub" | "Div") => Some("of two computed tensors (only Add and Mul are)".into()),
        (false, true, "Div") => Some("a constant divided by data".into()),
        _ => None,
    }
}

/// Binary (or variadic: `Sum`, `Max`, `Min`) arithmetic of constants, NumPy broadcasting.
pub(super) fn fold_binary<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let op = if n.op() == "Sum" { "Add" } else { n.op() };
    let mut acc = imp.required_const(n, 0)?;
    for pos in 1..n.node.input.len() {
        let b = imp.required_const(n, pos)?;
        acc = values::binary(op, &acc, &b)?;
    }
    imp.folded(n, 0, acc)
}

fn fold_unary<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let op = n.op();
    let value = match imp.required_const(n, 0)? {
        Const::Int(a) if op == "Neg" => Const::Int(a.mapv(|s| match s {
            Sym::Int(v) => Sym::Int(-v),
            b => b,
        })),
        Const::Int(a) if matches!(op, "Abs" | "Floor" | "Ceil") => Const::Int(a.mapv(|s| match s {
            Sym::Int(v) if op == "Abs" => Sym::Int(v.abs()),
            s => s,
        })),
        v => {
            let a = v.floats()?;
            Const::Float(a.mapv(|x| match op {
                "Neg" => -x,
                "Sqrt" => x.sqrt(),
                "Reciprocal" => F::one() / x,
                "Abs" => x.abs(),
                "Floor" => x.floor(),
                _ => x.ceil(),
            }))
        }
    };
    imp.folded(n, 0, value)
}

/// `Add`, `Sub`, `Mul`, `Div` with data on at least one side; `Sum` of any number of
/// computed tensors (older exporters' residual additions).
fn arithmetic<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let op = n.op();
    if op == "Sum" && n.node.input.len() != 2 {
        let mut ids = Vec::with_capacity(n.node.input.len());
        for pos in 0..n.node.input.len() {
            ids.push(imp.node_arg(n, pos)?);
        }
        return match ids.as_slice() {
            [] => Err(n.refuse("no inputs")),
            [_] => imp.pass(n),
            _ => {
                let out = imp.layer(n.label, Op::Merge(Box::new(Add::new())), &ids)?;
                imp.out(n, out)
            }
        };
    }
    let op = if op == "Sum" { "Add" } else { op };
    if n.node.input.len() != 2 {
        return Err(n.refuse(format!("{} inputs", n.node.input.len())));
    }
    let (a, b) = (imp.required_arg(n, 0)?, imp.required_arg(n, 1)?);
    let out = match (a.as_ref(), b.as_ref()) {
        (Value::Data(x), Value::Data(y)) => {
            let merge: Box<dyn Merge<F>> = match op {
                "Add" => Box::new(Add::new()),
                "Mul" => Box::new(Mul::new()),
                _ => return Err(n.refuse("of two computed tensors (only Add and Mul are)")),
            };
            merge_data(imp, n, merge, x, y)?
        }
        (Value::Data(d), Value::Const(c)) | (Value::Const(c), Value::Data(d)) => {
            let data_first = matches!(a.as_ref(), Value::Data(_));
            affine(imp, n, op, d, c, data_first)?
        }
        (Value::Const(_), Value::Const(_)) => return Err(n.refuse("of two constants, not folded")),
    };
    imp.out(n, out)
}

/// `x + y` or `x · y` of two computed tensors: on their nodes' own axes when both are the
/// same pending permutation of equally shaped nodes (which the result keeps).
fn merge_data<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
    merge: Box<dyn Merge<F>>,
    x: &Data,
    y: &Data,
) -> Result<Data> {
    let Some(shape) = crate::tensor::broadcast::broadcast_shape(&[&x.shape, &y.shape]) else {
        return Err(n.refuse(format!(
            "of computed tensors of per-sample shapes {:?} and {:?}, which do not broadcast",
            x.shape, y.shape
        )));
    };
    if x.pending_perm().is_some() && x.pending_perm() == y.pending_perm() && x.shape == y.shape {
        let out = imp.layer(n.label, Op::Merge(merge), &[x.id, y.id])?;
        return Ok(Data {
            shape,
            ..x.with_node(out.id)
        });
    }
    let (p, q) = (imp.materialize(x, n.label)?, imp.materialize(y, n.label)?);
    imp.layer(n.label, Op::Merge(merge), &[p, q])
}

/// Data and a constant that varies along one axis at most: an affine map along that axis.
fn affine<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
    op: &str,
    d: &Data,
    c: &Const<F>,
    data_first: bool,
) -> Result<Data> {
    if d.view == View::Scalar {
        // a constant of rank 2 or more would broadcast the [N] tensor to [1, …, N]: the
        // batch would no longer be the first axis
        if c.shape().len() > 1 {
            return Err(n.refuse(format!(
                "of one value per sample and a constant of shape {:?} (the result would move the batch axis)",
                c.shape()
            )));
        }
        // one value per sample, in a node of shape [1]: the map on that node, same view
        let inner = Data::node(d.id, vec![1]);
        let out = affine(imp, n, op, &inner, c, data_first)?;
        return Ok(Data {
            view: View::Scalar,
            shape: Vec::new(),
            ..out
        });
    }
    let Some((axis, v)) = per_axis(c, &d.shape, matches!(op, "Mul" | "Div")) else {
        // any other constant (a positional embedding [1, T, D]): added as a constant node,
        // which absorbs its share of the relevance as a bias does
        return match (op, data_first) {
            ("Add", _) | ("Sub", true) => {
                let c = if op == "Sub" {
                    Const::Float(c.floats()?.mapv(|v| -v))
                } else {
                    c.clone()
                };
                let name = n.node.input[usize::from(data_first)].clone();
                let k = imp.constant_node(&name, &c, &d.shape)?.map_err(|why| {
                    n.refuse(format!("{why}, added to data of per-sample shape {:?}", d.shape))
                })?;
                let x = imp.materialize(d, n.label)?;
                imp.layer(n.label, Op::Merge(Box::new(Add::new())), &[x, k])
            }
            _ => Err(n.refuse(format!(
                "with a constant of shape {:?} that is not one value per channel (or per entry of one other axis) \
                 of the data {:?}",
                c.shape(),
                d.shape
            ))),
        };
    };
    // one value for all: along the axis that is the node's channel axis
    let (axis, v) = match axis {
        Some(axis) => (axis, v),
        None => {
            let axis = match &d.view {
                View::Permuted { perm, .. } => perm.iter().position(|&p| p == 0).unwrap_or(0),
                _ => 0,
            };
            (axis, vec![v[0]; d.shape[axis]])
        }
    };
    let (one, zero) = (F::one(), F::zero());
    let (scale, shift): (Vec<F>, Vec<F>) = match (op, data_first) {
        ("Add", _) => (vec![one; v.len()], v),
        ("Sub", true) => (vec![one; v.len()], v.iter().map(|&x| -x).collect()),
        ("Sub", false) => (vec![-one; v.len()], v),
        ("Mul", _) => (v.clone(), vec![zero; v.len()]),
        ("Div", true) => {
            if v.contains(&zero) {
                return Err(n.refuse("division by zero"));
            }
            (v.iter().map(|&x| one / x).collect(), vec![zero; v.len()])
        }
        _ => return Err(n.refuse("a constant divided by data")),
    };
    let layer = BatchNorm2d::from_scale_shift(Array1::from(scale), Array1::from(shift))?;
    imp.affine_along(n.label, d, axis, layer)
}
