//! Layer norms and RMS norms written out of elementary operators, found from their (first)
//! `ReduceMean` (`pattern.rs`): the TorchScript exporter below opset 17 writes
//! `nn.LayerNorm` as `ReduceMean`, `Sub`, `Pow(2)`, `ReduceMean`, `Add(ε)`, `Sqrt`, `Div`,
//! `Mul(weight)`, `Add(bias)`, and BERT's TF-style module, T5's and LLaMA's RMS norms
//! (`x · rsqrt(mean(x²) + ε) · w`, with float casts in Hugging Face's own classes) come out
//! alike at any opset, the axes an attribute before opset 18 and an input since. Squares are
//! `Pow(d, 2)` or `Mul(d, d)`; the division `Div(d, √v)` or `Mul(d, 1/√v)` (`Reciprocal`,
//! `Div(1, ·)` or `Pow(v, −½)`). Each becomes the layer `LayerNormalization` or
//! `RMSNormalization` builds (`normalization`), over the trailing axes the means reduce.
//!
//! A subgraph of this shape with one thing off — an exponent other than 2, an epsilon
//! computed from data or not a literal, the mean and the variance over different axes, the
//! mean of another tensor subtracted, an intermediate tensor read elsewhere — is refused
//! as a whole with the reason; a `ReduceMean` whose mean is not subtracted and whose input
//! is no square is not this family's (`None`).

use super::{epsilon, normalization, Ctx};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::onnx::graph::{is_default_domain, node_label};
use crate::io::onnx::import::Importer;
use crate::io::onnx::pattern::{Around, Found, Group};
use crate::io::onnx::proto::NodeProto;
use crate::io::onnx::values::{self, Const, Value};
use crate::io::Op;

/// A step of matching a written-out normalisation, or why the subgraph is refused.
type Seen<T> = std::result::Result<T, String>;

/// The label errors give node `k`.
fn label(p: &Around<'_, '_>, k: usize) -> String {
    node_label(k, p.node(k))
}

/// Whether node `n` is operator `op` of the default domain.
fn is(n: &NodeProto, op: &str) -> bool {
    n.op_type == op && is_default_domain(n)
}

/// The one node reading `t` (what `what` names), or why not.
fn only_reader(p: &Around<'_, '_>, t: &str, what: &str) -> Seen<usize> {
    match p.readers(t) {
        (_, true) => Err(format!("{what} {t:?} is also the explained output")),
        (&[k], false) => Ok(k),
        (&[], false) => Err(format!("{what} {t:?} is read by no node")),
        (list, false) => Err(format!(
            "{what} {t:?} is also read by {}",
            list.iter()
                .skip(1)
                .map(|&k| format!("{:?}", label(p, k)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether node `n` is a `Cast` to a floating-point type (float32, float16, float64,
/// bfloat16): the importer computes in one float type, where such a cast is nothing.
fn float_cast(n: &NodeProto) -> bool {
    is(n, "Cast")
        && n.attribute
            .iter()
            .any(|a| a.name == "to" && [1, 10, 11, 16].contains(&a.i))
}

/// `t`, or the output of the float casts that are its only readers, one after the other
/// (Hugging Face's `.to(torch.float32)` inside its RMS norms): their nodes pushed on `nodes`.
fn skip_casts<'a>(p: &Around<'a, '_>, mut t: &'a str, nodes: &mut Vec<usize>) -> &'a str {
    while let Some((k, c)) = p.sole_reader(t).filter(|(_, c)| float_cast(c)) {
        if nodes.contains(&k) {
            break;
        }
        nodes.push(k);
        t = Around::out(c);
    }
    t
}

/// The tensor `t` is a float cast of (through every such cast), or `t`.
fn uncast<'a>(p: &Around<'a, '_>, mut t: &'a str) -> &'a str {
    for _ in 0..8 {
        match p.graph.producer_of(t) {
            Some((_, c)) if float_cast(c) && c.input.len() == 1 => t = c.input[0].as_str(),
            _ => break,
        }
    }
    t
}

/// The axes a `ReduceMean` averages over as the file gives them (the attribute before
/// opset 18, input 1 since), with `keepdims` 1.
fn mean_axes(p: &Around<'_, '_>, k: usize) -> Seen<Vec<i64>> {
    let n = p.node(k);
    let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
    if attr("keepdims").is_some_and(|a| a.i != 1) {
        return Err(format!("{:?} drops the averaged axes (keepdims 0)", label(p, k)));
    }
    if let Some(a) = attr("axes") {
        return Ok(a.ints.clone());
    }
    match n.input.get(1).filter(|i| !i.is_empty()) {
        Some(t) => p
            .ints(t)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("the axes of {:?} are not a literal list", label(p, k))),
        None => Err(format!(
            "{:?} averages over every axis (the batch's too)",
            label(p, k)
        )),
    }
}

/// If `t` is a square — `Pow(a, e)` or `Mul(a, a)` — its node, `a`, and the exponent's
/// check (2 for a product).
fn square<'a>(p: &Around<'a, '_>, t: &str) -> Option<(usize, &'a str, Seen<()>)> {
    if let Some((k, pow)) = p.producer(t, "Pow") {
        let e = pow.input.get(1)?;
        let ok = match p.scalar(e) {
            _ if p.is_data(e) => Err(format!("the exponent of {:?} is computed from data", label(p, k))),
            Some(2.0) => Ok(()),
            Some(v) => Err(format!(
                "{:?} raises to the exponent {v} (a variance needs 2)",
                label(p, k)
            )),
            None => Err(format!(
                "the exponent of {:?} is not a literal value",
                label(p, k)
            )),
        };
        return Some((k, pow.input.first()?.as_str(), ok));
    }
    let (k, mul) = p.producer(t, "Mul")?;
    match mul.input.as_slice() {
        [a, b] if a == b => Some((k, a.as_str(), Ok(()))),
        _ => None,
    }
}

/// The common end from `v`, the mean of the squares: `+ ε`, then `÷ √(·)` or
/// `· 1/√(·)` (`Reciprocal`, or `Div` of 1, or `Pow` of −½) of a numerator. Returns ε,
/// the numerator, the node dividing it and its output; pushes the nodes walked on `nodes`.
fn variance_tail<'a>(
    p: &Around<'a, '_>,
    v: &'a str,
    nodes: &mut Vec<usize>,
) -> Seen<(f64, &'a str, usize, &'a str)> {
    let v = skip_casts(p, v, nodes);
    let ka = only_reader(p, v, "the mean of squares")?;
    let add = p.node(ka);
    let eps = match (is(add, "Add"), Around::other(add, v)) {
        (true, Some(e)) => e,
        _ => {
            return Err(format!(
                "the mean of squares {v:?} is read by {:?}, not + epsilon",
                label(p, ka)
            ))
        }
    };
    nodes.push(ka);
    if p.is_data(eps) {
        return Err(format!("the epsilon of {:?} is computed from data", label(p, ka)));
    }
    let eps = p
        .scalar(eps)
        .ok_or_else(|| format!("the epsilon of {:?} is not a single literal value", label(p, ka)))?;
    // the float32 nearest to PyTorch's 1e-5 is read as 1e-5 (`epsilon`)
    #[allow(clippy::cast_possible_truncation)]
    let eps = if f64::from(eps as f32) == eps {
        epsilon(eps as f32)
    } else {
        eps
    };
    let ve = skip_casts(p, Around::out(add), nodes);
    // the square root, or its reciprocal directly
    let ks = only_reader(p, ve, "variance + epsilon")?;
    let sq = p.node(ks);
    let half = |n: &NodeProto, want: f64| {
        is(n, "Pow")
            && n.input.first().map(String::as_str) == Some(ve)
            && n.input.get(1).is_some_and(|e| p.is_value(e, want))
    };
    nodes.push(ks);
    let rs = if is(sq, "Sqrt") || half(sq, 0.5) {
        let s = skip_casts(p, Around::out(sq), nodes);
        let kd = only_reader(p, s, "the standard deviation")?;
        let d = p.node(kd);
        match d.input.as_slice() {
            [num, den] if is(d, "Div") && den == s && !p.is_value(num, 1.0) => {
                nodes.push(kd);
                return Ok((eps, num.as_str(), kd, Around::out(d)));
            }
            // 1 / s, a reciprocal
            [_, den] if is(d, "Div") && den == s => {}
            [a] if is(d, "Reciprocal") && a == s => {}
            _ => {
                return Err(format!(
                    "the standard deviation {s:?} is read by {:?}, not a division",
                    label(p, kd)
                ))
            }
        }
        nodes.push(kd);
        Around::out(d)
    } else if half(sq, -0.5) {
        Around::out(sq)
    } else {
        return Err(format!(
            "variance + epsilon {ve:?} is read by {:?}, not a square root",
            label(p, ks)
        ));
    };
    let rs = skip_casts(p, rs, nodes);
    let km = only_reader(p, rs, "the inverse standard deviation")?;
    let m = p.node(km);
    match Around::other(m, rs) {
        Some(num) if is(m, "Mul") => {
            nodes.push(km);
            Ok((eps, num, km, Around::out(m)))
        }
        _ => Err(format!(
            "the inverse standard deviation {rs:?} is read by {:?}, not a product",
            label(p, km)
        )),
    }
}

/// A layer norm (`center`: the mean subtracted) or RMS norm written out, found from its
/// (first) `ReduceMean` `k` (module docs).
pub(super) fn decomposed_norm<'a, F: Float>(p: &Around<'a, '_>, k: usize) -> Option<Found<'a, F>> {
    let r = p.node(k);
    let t = r.input.first()?.as_str();
    if !p.is_data(t) {
        return None;
    }
    let m = Around::out(r);
    let (readers, _) = p.readers(m);
    let subs: Vec<usize> = readers
        .iter()
        .copied()
        .filter(|&j| is(p.node(j), "Sub") && p.node(j).input.get(1).map(String::as_str) == Some(m))
        .collect();
    let mut nodes = vec![k];
    let mut variance = m;
    let found = if subs.is_empty() {
        // RMS norm: the mean of the square of data
        let (ksq, x, exponent) = square(p, t)?;
        if !p.is_data(x) || p.readers(Around::out(p.node(ksq))).0 != [k] {
            return None;
        }
        nodes.push(ksq);
        rms_norm(p, k, x, exponent, &mut nodes)
    } else {
        let diffs: Vec<&str> = subs.iter().map(|&j| Around::out(p.node(j))).collect();
        // the square of a difference, averaged
        let (ksq, var_k) = diffs.iter().find_map(|d| {
            p.readers(d).0.iter().find_map(|&j| {
                let (ksq, a, _) = square(p, Around::out(p.node(j))).filter(|&(ks, _, _)| ks == j)?;
                let kv = p
                    .readers(Around::out(p.node(ksq)))
                    .0
                    .iter()
                    .copied()
                    .find(|&kv| is(p.node(kv), "ReduceMean"))?;
                diffs.contains(&a).then_some((ksq, kv))
            })
        })?;
        nodes.extend(&subs);
        nodes.extend([ksq, var_k]);
        variance = Around::out(p.node(var_k));
        layer_norm(p, k, t, &subs, &diffs, ksq, var_k, &mut nodes)
    };
    Some(match found {
        Ok(g) => Found::Group(g),
        Err(reason) => {
            // the rest of the usual chain is refused with it (not listed on its own)
            let mut t = variance;
            for ops in [&["Add"][..], &["Sqrt", "Pow"], &["Div", "Reciprocal", "Mul"]] {
                let Some(&j) = p
                    .readers(t)
                    .0
                    .iter()
                    .find(|&&j| ops.iter().any(|op| is(p.node(j), op)))
                else {
                    break;
                };
                if !nodes.contains(&j) {
                    nodes.push(j);
                }
                t = Around::out(p.node(j));
            }
            Found::Refused { nodes, reason }
        }
    })
}

/// RMS norm from `ReduceMean` `k` of `x` squared (`exponent`: that square's check).
fn rms_norm<'a, F: Float>(
    p: &Around<'a, '_>,
    k: usize,
    x: &'a str,
    exponent: Seen<()>,
    nodes: &mut Vec<usize>,
) -> Seen<Group<'a, F>> {
    exponent?;
    let axes = mean_axes(p, k)?;
    let (eps, num, kd, y) = variance_tail(p, Around::out(p.node(k)), nodes)?;
    if uncast(p, num) != uncast(p, x) {
        return Err(format!(
            "{:?} divides {num:?} by the root mean square of {x:?} (the mean of a different tensor)",
            label(p, kd)
        ));
    }
    Ok(affine(p, x, kd, y, axes, eps, false, nodes))
}

/// Layer norm from `ReduceMean` `k` of `x`: `subs` subtract the mean (giving `diffs`),
/// `ksq` squares one, `var_k` averages that.
#[allow(clippy::too_many_arguments)]
fn layer_norm<'a, F: Float>(
    p: &Around<'a, '_>,
    k: usize,
    x: &'a str,
    subs: &[usize],
    diffs: &[&'a str],
    ksq: usize,
    var_k: usize,
    nodes: &mut Vec<usize>,
) -> Seen<Group<'a, F>> {
    for &j in subs {
        let from = p.node(j).input[0].as_str();
        if uncast(p, from) != uncast(p, x) {
            return Err(format!(
                "{:?} subtracts the mean of {x:?} from {from:?} (the mean of a different tensor)",
                label(p, j)
            ));
        }
    }
    let m = Around::out(p.node(k));
    if let Some(&j) = p.readers(m).0.iter().find(|j| !subs.contains(j)) {
        return Err(format!("the mean {m:?} is also read by {:?}", label(p, j)));
    }
    if p.readers(m).1 {
        return Err(format!("the mean {m:?} is also the explained output"));
    }
    square(p, Around::out(p.node(ksq))).map_or(Ok(()), |(_, _, e)| e)?;
    only_reader(p, Around::out(p.node(ksq)), "the squared difference")?;
    let axes = mean_axes(p, k)?;
    let var_axes = mean_axes(p, var_k)?;
    if axes != var_axes {
        return Err(format!(
            "the mean {:?} is over axes {axes:?} but the variance {:?} over axes {var_axes:?}",
            label(p, k),
            label(p, var_k)
        ));
    }
    let (eps, num, kd, y) = variance_tail(p, Around::out(p.node(var_k)), nodes)?;
    if !diffs.contains(&num) {
        return Err(format!(
            "{:?} divides {num:?}, not the difference from the mean, by the standard deviation",
            label(p, kd)
        ));
    }
    // the differences are read by the square and the division only
    for d in diffs {
        let (list, out) = p.readers(d);
        if let Some(&j) = list.iter().find(|&&j| j != ksq && j != kd) {
            return Err(format!(
                "the difference from the mean {d:?} is also read by {:?}",
                label(p, j)
            ));
        }
        if out {
            return Err(format!(
                "the difference from the mean {d:?} is also the explained output"
            ));
        }
    }
    Ok(affine(p, x, kd, y, axes, eps, true, nodes))
}

/// The group from the normalised `y` (output of node `ky`): a following product by a
/// constant (the scale) and sum with a constant (the bias) are taken in where the constant
/// has at most as many axes as are normalised.
#[allow(clippy::too_many_arguments)]
fn affine<'a, F: Float>(
    p: &Around<'a, '_>,
    x: &'a str,
    ky: usize,
    y: &'a str,
    axes: Vec<i64>,
    eps: f64,
    center: bool,
    nodes: &mut Vec<usize>,
) -> Group<'a, F> {
    let fits = |c: &str| {
        !p.is_data(c)
            && p.graph
                .initializers
                .get(c)
                .is_none_or(|t| t.dims.iter().skip_while(|&&d| d == 1).count() <= axes.len())
    };
    let (mut last, mut out, mut params) = (ky, y, [None, None]);
    for (slot, op) in [(0, "Mul"), (1, "Add")] {
        let mut casts = Vec::new();
        let t = skip_casts(p, out, &mut casts);
        if let Some(&kc) = casts.last() {
            nodes.extend(casts);
            (last, out) = (kc, t);
        }
        let Some((kn, n)) = p.next(out, op) else { continue };
        let Some(c) = Around::other(n, out).filter(|c| fits(c)) else {
            break;
        };
        params[slot] = Some(c);
        nodes.push(kn);
        (last, out) = (kn, Around::out(n));
    }
    Group {
        nodes: std::mem::take(nodes),
        last,
        input: x,
        flag: center,
        params,
        axes,
        value: eps,
        build: build_decomposed,
    }
}

/// Builds a decomposed layer norm or RMS norm: the layer `LayerNormalization` or
/// `RMSNormalization` builds, over the trailing axes the means reduce.
fn build_decomposed<'a, F: Float>(
    imp: &mut Importer<'a, F>,
    g: &Group<'a, F>,
    n: &Ctx<'a, '_>,
) -> Result<()> {
    let d = imp.group_input(g, n.label)?;
    let rank = d.shape.len() + 1;
    let what = if g.flag { "a layer norm" } else { "an RMS norm" };
    let refuse = |reason: String| {
        crate::io::onnx::import::unsupported(n.label, n.op(), format!("{what} written out: {reason}"))
    };
    let mut ax = Vec::with_capacity(g.axes.len());
    for &a in &g.axes {
        ax.push(
            values::axis(a, rank)
                .map_err(|_| refuse(format!("axes {:?} for a tensor of rank {rank}", g.axes)))?,
        );
    }
    ax.sort_unstable();
    ax.dedup();
    let first = ax.first().copied().unwrap_or(0);
    if first == 0 || ax != (first..rank).collect::<Vec<_>>() {
        return Err(refuse(format!(
            "over axes {:?} of a tensor of per-sample shape {:?} (only trailing per-sample axes are normalised)",
            g.axes, d.shape
        )));
    }
    let mut param = |name: Option<&'a str>| -> Result<Option<Const<F>>> {
        let Some(name) = name else { return Ok(None) };
        match imp.get(name, n.label)?.as_ref() {
            Value::Const(c) => Ok(Some(c.clone())),
            Value::Data(_) => Err(refuse(format!("{name:?} is computed from data"))),
        }
    };
    let (scale, bias) = (param(g.params[0])?, param(g.params[1])?);
    let layer =
        normalization(n.label, g.flag, &d, first as i64, scale, bias, g.value).map_err(|e| match e {
            Error::UnsupportedOperator { reason, .. } => refuse(reason),
            e => e,
        })?;
    let x = imp.materialize(&d, n.label)?;
    let out = imp.layer(n.label, Op::Layer(layer), &[x])?;
    imp.out(n, out)
}
