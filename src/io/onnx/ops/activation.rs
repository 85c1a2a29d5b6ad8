//! Activations: each becomes its layer, applied to the values where they are (a pending
//! permutation of a channels-last graph is kept, see `view.rs`).

use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::layers::{
    Clip, Elu, Exp, Gelu, HardSigmoid, HardSwish, Layer, LeakyRelu, Log, Relu, Sigmoid, Softplus, Tanh,
};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    for (op, becomes) in [
        ("Relu", "Relu"),
        (
            "Clip",
            "Clip (Relu for [0, ∞), nothing for no bounds; ReLU6 is Clip(0, 6))",
        ),
        ("LeakyRelu", "LeakyRelu"),
        ("Sigmoid", "Sigmoid (a gate where a Mul reads it)"),
        ("Tanh", "Tanh"),
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
        reg.op(op, becomes).build(activation_node);
    }
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
