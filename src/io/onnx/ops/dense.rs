//! Dense layers: `Gemm`, and `MatMul` of data by a constant matrix (on the last axis of
//! data of any rank, also where the batch axis has moved: `layout.rs`), each with the bias
//! of a constant `Add` after it folded in; and `MatMul` of two computed tensors (attention
//! scores and weighted values), a [`MatMul`] node; `Einsum` where it is one of these
//! (`einsum.rs`).

mod einsum;

use super::conv::constant_weights;
use super::{Ctx, Registry};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::check::Pre;
use crate::io::onnx::graph::is_default_domain;
use crate::io::onnx::import::Importer;
use crate::io::onnx::layout::BATCH_ATOM;
use crate::io::onnx::proto::NodeProto;
use crate::io::onnx::values::Value;
use crate::io::onnx::view::{show_shape, Data};
use crate::io::Op;
use crate::layers::MatMul;
use ndarray::{ArcArray1, ArcArray2, Array1};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    reg.op("Gemm", "Dense (transB, alpha, beta; constant B and C)")
        .build(gemm)
        .layouts()
        .check(|p| {
            if p.attrs.int("transA", 0).ok() != Some(0) {
                return Some("transA = 1 on data (it would transpose the batch)".into());
            }
            constant_weights(p)
        });
    reg.op(
        "MatMul",
        "data [..., K] times a constant [K, M]: Dense on the last axis (a following constant Add is its bias); of two computed tensors (attention): a MatMul node",
    )
    .build(matmul)
    .layouts()
    .check(matmul_operands);
    reg.op(
        "Einsum",
        "a batched matrix product (bhqd,bhkd->bhqk, bij,bjk->bik, ...ij,...jk->...ik; either operand transposed): a MatMul node; data times a constant matrix (bij,jk->bik, bij,kj->bik, jk,bij->bik): Dense",
    )
    .build(einsum::einsum);
}

/// A matrix product is a layer when data is multiplied by a constant matrix, or by data.
fn matmul_operands(p: &Pre<'_>) -> Option<String> {
    (!p.is_data(0) && p.is_data(1)).then(|| {
        "a constant times data (only data times a constant matrix, or data times data, is a layer)".into()
    })
}

fn gemm<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let attrs = &n.attrs;
    attrs.only(&["alpha", "beta", "transA", "transB"])?;
    if attrs.int("transA", 0)? != 0 {
        return Err(n.refuse("transA = 1 on data (it would transpose the batch)"));
    }
    let alpha = F::lit(f64::from(attrs.float("alpha", 1.0)?));
    let beta = F::lit(f64::from(attrs.float("beta", 1.0)?));
    // [out, in]: B itself with transB, else its transpose; shared where alpha is 1
    let w = matrix(imp, n, 1, attrs.int("transB", 0)? == 0)?;
    let w = if alpha == F::one() {
        w
    } else {
        w.mapv(|v| v * alpha).into_shared()
    };
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
    let x = imp.data_arg(n, 0)?;
    let mut add = None;
    if bias.is_none() {
        if let Some((b, a)) = bias_after(imp, n.node, out_features, 1)? {
            bias = Some(b);
            add = Some(a);
        }
    }
    let bias = bias.map(Array1::into_shared);
    let out = dense_on(imp, n, &x, w, bias)?;
    finish_bias(imp, add, &out);
    imp.out(n, out)
}

/// A dense layer (`weight` `[M, K]`) on the last axis of data: of the node itself (the
/// tensor built batch-first), or, where the batch axis has moved (`layout.rs`), of the
/// node's trailing values that the last axis is (the node permuted first if they are not
/// trailing), the layout kept.
fn dense_on<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
    d: &Data,
    weight: ArcArray2<F>,
    bias: Option<ArcArray1<F>>,
) -> Result<Data> {
    let (m, k) = weight.dim();
    let Some(l) = d.layout() else {
        let x = imp.materialize(d, n.label)?;
        return imp.layer(n.label, Op::Dense { weight, bias }, &[x]);
    };
    let last = l.axes.len() - 1;
    let atoms = l.axes[last].clone();
    let size: usize = atoms
        .iter()
        .filter(|&&a| a != BATCH_ATOM)
        .map(|&a| l.sizes[a])
        .product();
    if atoms.contains(&BATCH_ATOM) {
        return Err(n.refuse(format!(
            "data of shape {} times a constant [{k}, {m}]: the last axis holds the batch (N)",
            show_shape(&l.shape())
        )));
    }
    if size != k {
        return Err(Error::Shape {
            what: format!(
                "{} input (data of shape {}, N the batch size)",
                n.op(),
                show_shape(&l.shape())
            ),
            expected: vec![k],
            got: vec![size],
        });
    }
    let count = l.sizes.len();
    let trailing = atoms.iter().copied().eq(count - atoms.len()..count);
    let (id, l) = if trailing {
        (d.id, l.clone())
    } else {
        imp.rebase(d.id, l, n.label)?
    };
    let shape: Vec<usize> = l.sizes[..count - atoms.len()]
        .iter()
        .copied()
        .chain(std::iter::once(k))
        .collect();
    let x = imp.reshape_node(id, &shape, n.label)?;
    let out = imp.layer(n.label, Op::Dense { weight, bias }, &[x])?;
    Ok(imp.data_of_layout(out.id, l.dense(last, m), n.label))
}

/// Input `pos`, a constant matrix, `transposed` or as stored, shared (decoded once for
/// every node that reads it the same way).
fn matrix<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    n: &Ctx<'a, '_>,
    pos: usize,
    transposed: bool,
) -> Result<ArcArray2<F>> {
    let c = imp
        .weight(n.node, pos, n.label, transposed)?
        .ok_or_else(|| n.refuse(format!("input {pos} is missing")))?;
    let mut shape = c.shape().to_vec();
    c.into_dimensionality().map_err(|_| {
        if transposed {
            shape.reverse(); // the stored shape
        }
        Error::Rank {
            what: format!("{} weight", n.op()),
            expected: 2,
            got: shape.len(),
            shape,
        }
    })
}

fn matmul<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.data_arg(n, 0)?;
    if let Value::Data(e) = imp.required_arg(n, 1)?.as_ref() {
        return product(imp, n, &d, &e.clone());
    }
    let w = matrix(imp, n, 1, true)?; // Bᵀ of B [K, M]
    let (bias, add) = match bias_after(imp, n.node, w.nrows(), 1)? {
        Some((b, a)) => (Some(b), Some(a)),
        None => (None, None),
    };
    let bias = bias.map(Array1::into_shared);
    let out = dense_on(imp, n, &d, w, bias)?;
    finish_bias(imp, add, &out);
    imp.out(n, out)
}

/// `a · b` of two computed tensors, each batch-first with at least two per-sample axes:
/// a [`MatMul`] node (a pending transpose of `b`, e.g. `Kᵀ`, is built as a `Permute`).
fn product<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>, a: &Data, b: &Data) -> Result<()> {
    let mut ids = Vec::with_capacity(2);
    for d in [a, b] {
        let id = imp.materialize(d, n.label)?;
        if imp.builder.shape_of(id).len() < 2 {
            return Err(n.refuse(format!(
                "of computed tensors of per-sample shapes {:?} and {:?} (each needs at least two axes besides the \
                 batch: matrices, or stacks of them)",
                a.shape, b.shape
            )));
        }
        ids.push(id);
    }
    let out = imp.layer(n.label, Op::Merge(Box::new(MatMul::new())), &ids)?;
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
