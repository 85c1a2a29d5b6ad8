//! Dense layers: `Gemm`, and `MatMul` of data by a constant matrix (on the last axis of
//! data of any rank, also where the batch axis has moved: `layout.rs`), each with the bias
//! of a constant `Add` after it folded in; and `MatMul` of two computed tensors (attention
//! scores and weighted values), a [`MatMul`] node.

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
        "a batched matrix product (bhqd,bhkd->bhqk, bij,bjk->bik, ...ij,...jk->...ik; either operand transposed): a MatMul node; data times a constant matrix (bij,jk->bik, bij,kj->bik): Dense",
    )
    .build(einsum);
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

/// A term of an `Einsum` equation: its letters, `...` expanded to `rank` letters (placeholders
/// `A`, `B`, ... that the equation's lowercase letters cannot collide with).
fn einsum_term(term: &str, rank: usize) -> Option<Vec<char>> {
    let explicit: Vec<char> = term.replace("...", "").chars().collect();
    if !explicit.iter().all(char::is_ascii_alphabetic) {
        return None;
    }
    let mut letters = Vec::with_capacity(rank);
    if let Some((head, tail)) = term.split_once("...") {
        let fill = rank.checked_sub(explicit.len()).filter(|&f| f <= 26)?;
        letters.extend(head.chars());
        letters.extend((b'A'..).take(fill).map(char::from));
        letters.extend(tail.chars());
        if explicit.iter().any(char::is_ascii_uppercase) {
            return None;
        }
    } else {
        letters = explicit;
    }
    let unique = letters.iter().enumerate().all(|(k, c)| !letters[..k].contains(c));
    (letters.len() == rank && unique).then_some(letters)
}

/// How an `Einsum` equation of two computed tensors is a matrix product.
struct EinsumPlan {
    /// The product's factors are `b` then `a` (the output is `(a·b)ᵀ = bᵀ·aᵀ`).
    swap: bool,
    /// For `a` and `b`: their last two axes exchanged first.
    transpose: [bool; 2],
}

/// Data `a` (letters `p..., x, y`) times data `b` (`p..., u, v`) giving `p..., m, n`, with
/// one letter summed: the plan, or `None`.
fn batched_plan(a: &[char], b: &[char], out: &[char]) -> Option<EinsumPlan> {
    let r = a.len();
    if r < 3 || b.len() != r || out.len() != r || a[..r - 2] != b[..r - 2] || a[..r - 2] != out[..r - 2] {
        return None;
    }
    let (ta, tb, to) = (&a[r - 2..], &b[r - 2..], &out[r - 2..]);
    let c = *ta.iter().find(|c| tb.contains(c))?;
    let m = *ta.iter().find(|&&x| x != c)?;
    let n = *tb.iter().find(|&&x| x != c)?;
    if m == n || to.contains(&c) || a[..r - 2].contains(&m) || a[..r - 2].contains(&n) {
        return None;
    }
    // x · y with x = [.., p, c] and y = [.., c, q]
    let swap = match to {
        [o1, o2] if *o1 == m && *o2 == n => false,
        [o1, o2] if *o1 == n && *o2 == m => true,
        _ => return None,
    };
    // a is the left factor unless swapped: c last there, first otherwise
    let (a_c_last, b_c_first) = (ta[1] == c, tb[0] == c);
    Some(EinsumPlan {
        swap,
        transpose: if swap {
            [a_c_last, b_c_first]
        } else {
            [!a_c_last, !b_c_first]
        },
    })
}

/// `Einsum` of two tensors where it is a matrix product (`batched_plan`), or data times a
/// constant matrix on its last axis (`[p..., c]` times `[c, n]` or `[n, c]` giving
/// `[p..., n]`); any other equation is refused, named.
fn einsum<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    n.attrs.only(&["equation"])?;
    let equation: String = n
        .attrs
        .string("equation")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let refuse = || {
        n.refuse(format!(
            "equation {equation:?}: only a batched matrix product of two tensors (bhqd,bhkd->bhqk, bij,bjk->bik, \
             ...ij,...jk->...ik, either operand transposed) or data times a constant matrix (bij,jk->bik) is imported"
        ))
    };
    let Some((inputs, output)) = equation.split_once("->") else {
        return Err(refuse());
    };
    let terms: Vec<&str> = inputs.split(',').collect();
    let ([ta, tb], 2) = (terms.as_slice(), n.node.input.len()) else {
        return Err(refuse());
    };
    let a = imp.data_arg(n, 0)?;
    let rank_a = a.shape.len() + 1;
    let la = einsum_term(ta, rank_a).ok_or_else(refuse)?;
    match imp.required_arg(n, 1)?.as_ref() {
        Value::Data(b) => {
            let b = b.clone();
            let lb = einsum_term(tb, b.shape.len() + 1).ok_or_else(refuse)?;
            let lo = einsum_term(output, rank_a).ok_or_else(refuse)?;
            let plan = batched_plan(&la, &lb, &lo).ok_or_else(refuse)?;
            let mut ops = Vec::with_capacity(2);
            for (d, t) in [(&a, plan.transpose[0]), (&b, plan.transpose[1])] {
                let k = d.shape.len();
                let d = if t {
                    let mut per: Vec<usize> = (0..k).collect();
                    per.swap(k - 2, k - 1);
                    imp.permuted(n.label, d, &per)?
                } else {
                    d.clone()
                };
                ops.push(d);
            }
            if plan.swap {
                ops.swap(0, 1);
            }
            product(imp, n, &ops[0], &ops[1])
        }
        Value::Const(c) => {
            let lb = einsum_term(tb, c.shape().len()).ok_or_else(refuse)?;
            let lo = einsum_term(output, rank_a).ok_or_else(refuse)?;
            let r = la.len();
            let (cl, p) = (la[r - 1], &la[..r - 1]);
            let stored_mk = match lb.as_slice() {
                [x, y] if *x == cl && !la.contains(y) && lo[..r - 1] == *p && lo[r - 1] == *y => false,
                [y, x] if *x == cl && !la.contains(y) && lo[..r - 1] == *p && lo[r - 1] == *y => true,
                _ => return Err(refuse()),
            };
            let w = matrix(imp, n, 1, !stored_mk)?;
            let (bias, add) = match bias_after(imp, n.node, w.nrows(), 1)? {
                Some((b, add)) => (Some(b.into_shared()), Some(add)),
                None => (None, None),
            };
            let out = dense_on(imp, n, &a, w, bias)?;
            finish_bias(imp, add, &out);
            imp.out(n, out)
        }
    }
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
