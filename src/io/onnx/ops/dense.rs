//! Dense layers: `Gemm`, and `MatMul` of features by a constant matrix, each with the bias
//! of a constant `Add` after it folded in.

use super::conv::constant_weights;
use super::{Ctx, Registry};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::graph::is_default_domain;
use crate::io::onnx::import::Importer;
use crate::io::onnx::proto::NodeProto;
use crate::io::onnx::values::Value;
use crate::io::onnx::view::Data;
use crate::io::Op;
use ndarray::{Array1, Array2};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op("Gemm", "Dense (transB, alpha, beta; constant B and C)")
        .build(gemm)
        .check(|p| {
            if p.attrs.int("transA", 0).ok() != Some(0) {
                return Some("transA = 1 on data (it would transpose the batch)".into());
            }
            constant_weights(p)
        });
    reg.op(
        "MatMul",
        "Dense (features [K] times a constant [K, M]); a following constant Add is its bias",
    )
    .build(matmul)
    .check(matmul_operands);
}

/// A matrix product is a layer when data is multiplied by a constant matrix.
fn matmul_operands(p: &Pre<'_>) -> Option<String> {
    match (p.is_data(0), p.is_data(1)) {
        (true, true) => {
            Some("of two computed tensors (only a product of data by a constant matrix is a layer)".into())
        }
        (false, true) => Some("a constant times data (only data times a constant matrix is a layer)".into()),
        _ => None,
    }
}

fn gemm<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let attrs = &n.attrs;
    attrs.only(&["alpha", "beta", "transA", "transB"])?;
    if attrs.int("transA", 0)? != 0 {
        return Err(n.refuse("transA = 1 on data (it would transpose the batch)"));
    }
    let alpha = F::lit(f64::from(attrs.float("alpha", 1.0)?));
    let beta = F::lit(f64::from(attrs.float("beta", 1.0)?));
    let b = matrix(imp, n, 1)?;
    let w = if attrs.int("transB", 0)? != 0 {
        b
    } else {
        b.t().to_owned()
    };
    let w = w.mapv(|v| v * alpha);
    let out_features = w.nrows();
    let mut bias = match imp.const_arg(n, 2)? {
        Some(c) => {
            let c = c.floats()?;
            let v: Vec<F> = c.iter().map(|&v| v * beta).collect();
            Some(match (c.shape(), v.len()) {
                (_, k) if k == out_features && c.shape().iter().filter(|&&d| d != 1).count() <= 1 => {
                    Array1::from(v)
                }
                (_, 1) => Array1::from_elem(out_features, v[0]),
                (s, _) => return Err(n.refuse(format!("C of shape {s:?} (a bias per output expected)"))),
            })
        }
        None => None,
    };
    let x = imp.node_arg(n, 0)?;
    let mut add = None;
    if bias.is_none() {
        if let Some((b, a)) = bias_after(imp, n.node, out_features, 1)? {
            bias = Some(b);
            add = Some(a);
        }
    }
    let out = imp.layer(n.label, Op::Dense { weight: w, bias }, &[x])?;
    finish_bias(imp, add, &out);
    imp.out(n, out)
}

/// Input `pos`, a constant matrix.
fn matrix<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>, pos: usize) -> Result<Array2<F>> {
    let c = imp.required_const(n, pos)?.floats()?;
    let shape = c.shape().to_vec();
    c.into_dimensionality().map_err(|_| Error::Rank {
        what: format!("{} weight", n.op()),
        expected: 2,
        got: shape.len(),
        shape,
    })
}

fn matmul<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    if d.shape.len() != 1 {
        return Err(n.refuse(format!(
            "data of per-sample shape {:?} (a matrix product per sample of features [K] only)",
            d.shape
        )));
    }
    let b = matrix(imp, n, 1)?; // [K, M]
    let w = b.t().to_owned();
    let x = imp.materialize(&d, n.label)?;
    let (bias, add) = match bias_after(imp, n.node, w.nrows(), 1)? {
        Some((b, a)) => (Some(b), Some(a)),
        None => (None, None),
    };
    let out = imp.layer(n.label, Op::Dense { weight: w, bias }, &[x])?;
    finish_bias(imp, add, &out);
    imp.out(n, out)
}

/// A constant `Add` right after `node` (its only reader) whose operand is one value per
/// output channel: returns the bias and marks the `Add` as handled, its output an alias.
pub(super) fn bias_after<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    node: &'a NodeProto,
    channels: usize,
    rank: usize,
) -> Result<Option<(Array1<F>, &'a NodeProto)>> {
    let g = imp.g;
    let Some(out) = node.output.first() else {
        return Ok(None);
    };
    if out == g.output {
        return Ok(None);
    }
    let readers = g.readers.get(out.as_str()).map(Vec::as_slice).unwrap_or_default();
    let [r] = readers else { return Ok(None) };
    let add = &g.proto.node[*r];
    if add.op_type != "Add" || add.input.len() != 2 || !is_default_domain(add) {
        return Ok(None);
    }
    let other = if add.input[0] == *out { 1 } else { 0 };
    if add.input[1 - other] != *out || add.input[other] == *out {
        return Ok(None);
    }
    let Ok(v) = imp.get(add.input[other].as_str(), &add.name) else {
        return Ok(None);
    };
    let Value::Const(c) = v.as_ref() else {
        return Ok(None);
    };
    let Ok(b) = c.floats() else { return Ok(None) };
    // [C], [1, C] for dense; [C, 1, 1], [1, C, 1, 1] for convolutions
    let shape = b.shape().to_vec();
    let fits = match rank {
        1 => matches!(shape.as_slice(), [c] | [1, c] if *c == channels),
        _ => {
            let mut s: Vec<usize> = shape.clone();
            if s.len() == rank + 1 && s[0] == 1 {
                s.remove(0);
            }
            s.len() == rank && s[0] == channels && s[1..].iter().all(|&d| d == 1)
        }
    };
    if !fits {
        return Ok(None);
    }
    imp.absorbed.insert(*r);
    let bias = b.into_shape_with_order(channels).expect("one value per channel");
    Ok(Some((bias, add)))
}

/// Sets the output of an `Add` absorbed as a bias.
pub(super) fn finish_bias<'a, F: Float>(imp: &mut Importer<'a, F>, add: Option<&'a NodeProto>, d: &Data) {
    if let Some(add) = add {
        imp.set(add, 0, Value::Data(d.clone()));
    }
}
