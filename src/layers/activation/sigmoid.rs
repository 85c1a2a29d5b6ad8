//! The logistic sigmoid, SiLU (swish) and tanh.

use super::elementwise_layer;
use crate::float::Float;

/// `σ(x) = 1 / (1 + e^(−x))`, in a form that neither overflows nor loses precision.
pub(super) fn logistic<F: Float>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}

/// The logistic sigmoid `σ(x) = 1 / (1 + e^(−x))`, as `torch.nn.Sigmoid`.
///
/// A sigmoid is a *gate* ([`Layer::is_gate`](crate::Layer::is_gate)): where its output
/// multiplies another tensor ([`Mul`](crate::Mul), e.g. a squeeze-and-excitation block),
/// LRP sends all relevance to the other factor.
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Sigmoid};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Sigmoid, array![[0.0]].into_dyn().view())?;
/// assert_eq!(y[[0, 0]], 0.5);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sigmoid;

impl Sigmoid {
    fn describe(&self) -> String {
        "Sigmoid".into()
    }

    fn value<F: Float>(&self, x: F) -> F {
        logistic(x)
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        let s = logistic(x);
        s * (F::one() - s)
    }
}

elementwise_layer!(Sigmoid, gate = true);

/// SiLU (swish), `x·σ(x)`, as `torch.nn.SiLU`; derivative `σ(x)·(1 + x·(1 − σ(x)))`.
///
/// LRP passes relevance through it, as through any activation. (Written in a graph as
/// `Mul(x, Sigmoid(x))` instead, the product rule sends all relevance to `x`: the same.)
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Silu};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Silu, array![[0.0, 1.0]].into_dyn().view())?;
/// assert!((y[[0, 1]] - 0.7310585786300049).abs() < 1e-15);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Silu;

impl Silu {
    fn describe(&self) -> String {
        "SiLU".into()
    }

    fn value<F: Float>(&self, x: F) -> F {
        x * logistic(x)
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        let s = logistic(x);
        s * (F::one() + x * (F::one() - s))
    }
}

elementwise_layer!(Silu, gate = false);

/// The hyperbolic tangent, as `torch.nn.Tanh`; derivative `1 − tanh²(x)`.
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Tanh};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Tanh, array![[0.0]].into_dyn().view())?;
/// assert_eq!(y[[0, 0]], 0.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tanh;

impl Tanh {
    fn describe(&self) -> String {
        "Tanh".into()
    }

    fn value<F: Float>(&self, x: F) -> F {
        x.tanh()
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        let t = x.tanh();
        F::one() - t * t
    }
}

elementwise_layer!(Tanh, gate = false);
