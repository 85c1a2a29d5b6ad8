//! `Einsum` where it is a matrix product: of two computed tensors with the same leading
//! (batch) letters and one letter summed over their last two axes (`bhqd,bhkd->bhqk`,
//! `bij,bjk->bik`, `...ij,...jk->...ik`; either operand, or the output, transposed), a
//! [`MatMul`](crate::layers::MatMul) node after `Permute`s where needed; of data by a
//! constant matrix on its last axis (`bij,jk->bik`, `bij,kj->bik`, the constant first or
//! second), a `Dense` layer (a following constant `Add` its bias). Any other equation is refused, named.

use super::{bias_after, dense_on, finish_bias, matrix, product};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::ops::Ctx;
use crate::io::onnx::values::Value;

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
pub(super) fn einsum<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
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
    // the operands commute: a constant first is taken second
    let first_const = matches!(imp.required_arg(n, 0)?.as_ref(), Value::Const(_));
    let (dpos, opos, ta, tb) = if first_const {
        (1, 0, tb, ta)
    } else {
        (0, 1, ta, tb)
    };
    let a = match imp.required_arg(n, dpos)?.as_ref() {
        Value::Data(a) => a.clone(),
        Value::Const(_) => return Err(refuse()),
    };
    let rank_a = a.shape.len() + 1;
    let la = einsum_term(ta, rank_a).ok_or_else(refuse)?;
    match imp.required_arg(n, opos)?.as_ref() {
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
            let w = matrix(imp, n, opos, !stored_mk)?;
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
