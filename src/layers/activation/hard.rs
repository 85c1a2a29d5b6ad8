//! Hard sigmoid and hard swish (MobileNetV3).

use super::{elementwise_layer, finite};
use crate::error::{Error, Result};
use crate::float::Float;

/// `max(0, min(1, α·x + β))`: `torch.nn.Hardsigmoid` with the default α = 1/6, β = 1/2
/// (`relu6(x + 3) / 6`), ONNX `HardSigmoid` with its attributes (ONNX's default is
/// α = 0.2, β = 0.5). The derivative is α strictly inside the linear part, 0 elsewhere.
///
/// A hard sigmoid is a *gate* ([`Layer::is_gate`](crate::Layer::is_gate)), as in
/// MobileNetV3's squeeze-and-excitation blocks.
///
/// ```
/// use ndarray::array;
/// use relevance::{HardSigmoid, Layer};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&HardSigmoid::default(), array![[-4.0, 0.0, 4.0]].into_dyn().view())?;
/// assert_eq!(y, array![[0.0, 0.5, 1.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HardSigmoid {
    alpha: f64,
    beta: f64,
}

impl HardSigmoid {
    /// `max(0, min(1, α·x + β))` with α > 0.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for α ≤ 0 or parameters that are not finite.
    pub fn new(alpha: f64, beta: f64) -> Result<Self> {
        finite("HardSigmoid", "alpha", alpha)?;
        finite("HardSigmoid", "beta", beta)?;
        if alpha <= 0.0 {
            return Err(Error::InvalidLayer {
                layer: "HardSigmoid",
                reason: format!("alpha must be positive, got {alpha}"),
            });
        }
        Ok(HardSigmoid { alpha, beta })
    }

    /// `(α, β)`.
    pub fn params(&self) -> (f64, f64) {
        (self.alpha, self.beta)
    }

    fn is_torch(&self) -> bool {
        (self.alpha, self.beta) == (1.0 / 6.0, 0.5)
    }

    fn describe(&self) -> String {
        format!("HardSigmoid({}, {})", self.alpha, self.beta)
    }

    fn value<F: Float>(&self, x: F) -> F {
        if self.is_torch() {
            // PyTorch's own arithmetic: x / 6 + 1/2 inside (−3, 3)
            let three = F::lit(3.0);
            return if x <= -three {
                F::zero()
            } else if x >= three {
                F::one()
            } else {
                x / F::lit(6.0) + F::lit(0.5)
            };
        }
        let v = F::lit(self.alpha) * x + F::lit(self.beta);
        v.max(F::zero()).min(F::one())
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        let v = F::lit(self.alpha) * x + F::lit(self.beta);
        if v > F::zero() && v < F::one() {
            F::lit(self.alpha)
        } else {
            F::zero()
        }
    }
}

impl Default for HardSigmoid {
    /// PyTorch's `Hardsigmoid`: α = 1/6, β = 1/2.
    fn default() -> Self {
        HardSigmoid {
            alpha: 1.0 / 6.0,
            beta: 0.5,
        }
    }
}

elementwise_layer!(HardSigmoid, gate = true);

/// `x·relu6(x + 3) / 6`, as `torch.nn.Hardswish` and ONNX `HardSwish`; derivative
/// `x/3 + 1/2` on `(−3, 3)`, 0 up to −3 and 1 from 3 on, as PyTorch's
/// `hardswish_backward`.
///
/// ```
/// use ndarray::array;
/// use relevance::{HardSwish, Layer};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&HardSwish, array![[-4.0, 0.0, 1.0, 4.0]].into_dyn().view())?;
/// assert_eq!(y, array![[0.0, 0.0, 1.0 * 4.0 / 6.0, 4.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardSwish;

impl HardSwish {
    fn describe(&self) -> String {
        "HardSwish".into()
    }

    fn value<F: Float>(&self, x: F) -> F {
        let three = F::lit(3.0);
        if x <= -three {
            F::zero()
        } else if x >= three {
            x
        } else {
            x * (x + three) / F::lit(6.0)
        }
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        let three = F::lit(3.0);
        if x <= -three {
            F::zero()
        } else if x < three {
            x / three + F::lit(0.5)
        } else {
            F::one()
        }
    }
}

elementwise_layer!(HardSwish, gate = false);
