//! Activations: each becomes its layer, applied to the values where they are (a pending
//! permutation of a channels-last graph is kept, see `view.rs`). GELU written out —
//! `x·½(1 + erf(x/√2))` (the form both PyTorch exporters write below opset 20, with the
//! products in either order) or the tanh form `x·½(1 + tanh(√(2/π)(x + 0.044715x³)))` — is
//! one [`Gelu`] (`pattern.rs`), found from its `Erf` or `Tanh`.

use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::pattern::{Around, Found, Group};
use crate::io::onnx::values::{Const, Sym};
use crate::layers::{
    Clip, Elu, Exp, Gelu, HardSigmoid, HardSwish, Layer, LeakyRelu, Log, Relu, Sigmoid, Softplus, Tanh,
};
use std::f64::consts::{FRAC_1_SQRT_2, PI, SQRT_2};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    for (op, becomes) in [
        ("Relu", "Relu"),
        (
            "Clip",
            "Clip (Relu for [0, ∞), nothing for no bounds; ReLU6 is Clip(0, 6))",
        ),
        ("LeakyRelu", "LeakyRelu"),
        ("Sigmoid", "Sigmoid (a gate where a Mul reads it)"),
        (
            "Tanh",
            "Tanh; in x·½(1 + tanh(√(2/π)(x + 0.044715·x³))): Gelu::tanh()",
        ),
        ("HardSigmoid", "HardSigmoid (a gate where a Mul reads it)"),
        ("HardSwish", "HardSwish"),
        ("Elu", "Elu"),
        ("Gelu", "Gelu (exact, or the tanh approximation)"),
        ("Softplus", "Softplus (ONNX's, without PyTorch's threshold)"),
        ("Exp", "Exp"),
        (
            "Log",
            "Log (ChromBPNet's log(exp(a) + exp(b)) of two count heads)",
        ),
    ] {
        let r = reg.op(op, becomes);
        r.build(activation_node);
        if op == "Clip" {
            // of a constant (a mask's count clamped away from zero): evaluated
            r.fold(fold_clip);
        }
    }
    reg.op(
        "Erf",
        "of constants evaluated when the file is read; in x·½(1 + erf(x/√2)) (Div or Mul by a constant, products in any order): Gelu",
    )
    .fold(fold_erf)
    .build(|_, n| Err(n.refuse(LONE_ERF)))
    .check(|p| p.is_data(0).then(|| LONE_ERF.into()));
    reg.pattern("Erf", gelu_erf);
    reg.pattern("Tanh", gelu_tanh);
}

const LONE_ERF: &str = "an Erf of data outside GELU's x·½(1 + erf(x/√2)) (only the whole GELU is a layer)";

fn fold_erf<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let a = imp.required_const(n, 0)?.floats()?;
    imp.folded(n, 0, Const::Float(a.mapv(|v| F::lit(libm::erf(v.as_f64())))))
}

/// GELU's exact form around its `Erf` node `k`: `u = x / √2` (or `x · (1/√2)`),
/// `erf(u)`, `+ 1`, and the products by `x` and `½` in any order.
fn gelu_erf<'a, F: Float>(p: &Around<'a, '_>, k: usize) -> Option<Found<'a, F>> {
    let erf = p.node(k);
    let u = erf.input.first()?;
    let (ku, scale) = p
        .producer(u, "Div")
        .filter(|(_, d)| d.input.len() == 2 && p.is_value(&d.input[1], SQRT_2))
        .map(|(kd, d)| (kd, d.input[0].as_str()))
        .or_else(|| {
            let (km, m) = p.producer(u, "Mul")?;
            let c = m.input.iter().find(|i| p.is_value(i, FRAC_1_SQRT_2))?;
            Some((km, Around::other(m, c)?))
        })?;
    let x = scale;
    if !p.is_data(x) || p.sole_reader(u).map(|r| r.0) != Some(k) {
        return None;
    }
    let (mut nodes, last) = gelu_tail(p, Around::out(erf), x)?;
    nodes.extend([ku, k]);
    Some(Found::Group(gelu_group(nodes, last, x, false)))
}

/// GELU's tanh form around its `Tanh` node `k`: `x³` (`Pow(x, 3)` or products of `x`),
/// `· 0.044715`, `+ x`, `· √(2/π)`, `tanh`, then as the exact form.
fn gelu_tanh<'a, F: Float>(p: &Around<'a, '_>, k: usize) -> Option<Found<'a, F>> {
    let t = p.node(k);
    let u = t.input.first()?;
    // u = v · √(2/π)
    let (ku, m) = p.producer(u, "Mul")?;
    let c = m.input.iter().find(|i| p.is_value(i, (2.0 / PI).sqrt()))?;
    let v = Around::other(m, c)?;
    // v = x + w, w = x³ · 0.044715
    let (kv, add) = p.producer(v, "Add")?;
    let (x, w, kw, cube) = add.input.iter().find_map(|w| {
        let (kw, mw) = p.producer(w, "Mul")?;
        let c = mw.input.iter().find(|i| p.is_value(i, 0.044715))?;
        let cube = Around::other(mw, c)?;
        Some((Around::other(add, w)?, w.as_str(), kw, cube))
    })?;
    let mut nodes = vec![ku, kv, kw, k];
    // x³: Pow(x, 3), or x·x·x in either grouping
    if let Some((kp, pow)) = p.producer(cube, "Pow") {
        if pow.input.first().map(String::as_str) != Some(x) || !p.is_value(&pow.input[1], 3.0) {
            return None;
        }
        nodes.push(kp);
    } else {
        let (k3, m3) = p.producer(cube, "Mul")?;
        let sq = Around::other(m3, x)?;
        let (k2, m2) = p.producer(sq, "Mul")?;
        if m2.input.iter().any(|i| i != x) || p.sole_reader(sq).map(|r| r.0) != Some(k3) {
            return None;
        }
        nodes.extend([k3, k2]);
    }
    let internal = [cube, w, v, u.as_str()];
    if !p.is_data(x) || internal.iter().any(|t| p.sole_reader(t).is_none()) {
        return None;
    }
    let (tail, last) = gelu_tail(p, Around::out(t), x)?;
    nodes.extend(tail);
    Some(Found::Group(gelu_group(nodes, last, x, true)))
}

/// The common end of both forms from `g` (the `erf` or `tanh` output): `g + 1`, then
/// `x · (g + 1) · ½` in any order, or `(½ · x) · (g + 1)`: the nodes and the last one.
fn gelu_tail(p: &Around<'_, '_>, g: &str, x: &str) -> Option<(Vec<usize>, usize)> {
    let (ka, add) = p.next(g, "Add")?;
    if !p.by_value(add, g, 1.0) {
        return None;
    }
    let s = Around::out(add);
    let (km, m) = p.next(s, "Mul")?;
    let other = Around::other(m, s)?;
    let h = Around::out(m);
    if other == x {
        // x · (1 + g), then · ½
        let (k2, m2) = p.next(h, "Mul")?;
        return p.by_value(m2, h, 0.5).then_some((vec![ka, km, k2], k2));
    }
    if p.is_value(other, 0.5) {
        // ½ · (1 + g), then · x
        let (k2, m2) = p.next(h, "Mul")?;
        return (Around::other(m2, h) == Some(x)).then_some((vec![ka, km, k2], k2));
    }
    // (x · ½) · (1 + g)
    let (kh, half) = p.producer(other, "Mul")?;
    let ok = p.by_value(half, x, 0.5) && p.sole_reader(other).map(|r| r.0) == Some(km);
    ok.then_some((vec![kh, ka, km], km))
}

fn gelu_group<'a, F: Float>(nodes: Vec<usize>, last: usize, x: &'a str, tanh: bool) -> Group<'a, F> {
    Group {
        nodes,
        last,
        input: x,
        flag: tanh,
        params: [None, None],
        axes: Vec::new(),
        value: 0.0,
        build: build_gelu,
    }
}

fn build_gelu<'a, F: Float>(imp: &mut Importer<'a, F>, g: &Group<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let d = imp.group_input(g, n.label)?;
    let layer: Box<dyn Layer<F>> = if g.flag {
        Box::new(Gelu::tanh())
    } else {
        Box::new(Gelu::new())
    };
    let out = imp.elementwise(n.label, layer, &d)?;
    imp.out(n, out)
}

fn activation_node<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let layer = activation(imp, n)?;
    let d = imp.data_arg(n, 0)?;
    let out = match layer {
        Some(layer) => imp.elementwise(n.label, layer, &d)?,
        None => d,
    };
    imp.out(n, out)
}

/// The activation a node describes (`None`: the identity, e.g. an unbounded `Clip`).
fn activation<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<Option<Box<dyn Layer<F>>>> {
    let attrs = &n.attrs;
    let f = |name: &str, default: f32| attrs.float(name, default).map(f64::from);
    Ok(Some(match n.op() {
        "Relu" => Box::new(Relu),
        "Sigmoid" => Box::new(Sigmoid),
        "Tanh" => Box::new(Tanh),
        "HardSwish" => Box::new(HardSwish),
        // ONNX's Softplus is log(exp(x) + 1) everywhere: no threshold
        "Softplus" => Box::new(Softplus::new(1.0, f64::MAX)?),
        "Exp" => Box::new(Exp),
        "Log" => Box::new(Log),
        "LeakyRelu" => Box::new(LeakyRelu::new(f("alpha", 0.01)?)?),
        "Elu" => Box::new(Elu::new(f("alpha", 1.0)?)?),
        "HardSigmoid" => {
            let (a, b) = (f("alpha", 0.2)?, f("beta", 0.5)?);
            // PyTorch's Hardsigmoid exports as alpha = 1/6 in float32
            if (a - 1.0 / 6.0).abs() < 1e-7 && b == 0.5 {
                Box::new(HardSigmoid::default())
            } else {
                Box::new(HardSigmoid::new(a, b)?)
            }
        }
        "Gelu" => match attrs.string("approximate")?.as_str() {
            "" | "none" => Box::new(Gelu::new()),
            "tanh" => Box::new(Gelu::tanh()),
            other => return Err(n.refuse(format!("approximate {other:?}"))),
        },
        "Clip" => {
            let (lo, hi) = if imp.g.opset < 11 {
                (f("min", f32::MIN)?, f("max", f32::MAX)?)
            } else {
                let mut bound = |pos: usize, default: f64| -> Result<f64> {
                    Ok(match imp.const_arg(n, pos)? {
                        Some(c) => c.floats()?.iter().next().map_or(default, |v| v.as_f64()),
                        None => default,
                    })
                };
                (bound(1, f64::NEG_INFINITY)?, bound(2, f64::INFINITY)?)
            };
            let (lo, hi) = (
                if lo <= f64::from(f32::MIN) {
                    f64::NEG_INFINITY
                } else {
                    lo
                },
                if hi >= f64::from(f32::MAX) {
                    f64::INFINITY
                } else {
                    hi
                },
            );
            match (lo, hi) {
                (l, h) if l == f64::NEG_INFINITY && h == f64::INFINITY => return Ok(None),
                (0.0, h) if h == f64::INFINITY => Box::new(Relu),
                (l, h) => Box::new(Clip::new(l, h)?),
            }
        }
        other => return Err(n.refuse(format!("{other} is not an activation"))),
    }))
}

/// `Clip` of a constant, e.g. `torch.clamp(mask.sum(1), min=1e-9)` of a sentence encoder's
/// mean pooling with a fixed attention mask.
fn fold_clip<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let c = imp.required_const(n, 0)?;
    let bound = |imp: &mut Importer<'a, F>, pos: usize, name: &str, default: f64| -> Result<f64> {
        if imp.g.opset < 11 {
            return Ok(n.attrs.float(name, default as f32)?.into());
        }
        Ok(match imp.const_arg(n, pos)? {
            Some(c) => c.floats()?.iter().next().map_or(default, |v| v.as_f64()),
            None => default,
        })
    };
    let lo = bound(imp, 1, "min", f64::NEG_INFINITY)?;
    let hi = bound(imp, 2, "max", f64::INFINITY)?;
    let a = c.floats()?.mapv(|v| {
        let v = v.as_f64().max(lo).min(hi);
        F::lit(v)
    });
    let value = match c {
        Const::Int(_) => Const::Int(a.mapv(|v| Sym::Int(v.as_f64().round() as i64))),
        Const::Float(_) => Const::Float(a),
    };
    imp.folded(n, 0, value)
}
