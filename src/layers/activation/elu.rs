//! The exponential linear unit.

use super::{elementwise_layer, finite};
use crate::error::Result;
use crate::float::Float;

/// `x` for `x > 0`, `α·(eˣ − 1)` otherwise, as `torch.nn.ELU(alpha)`; derivative
/// `α·eˣ` for `x ≤ 0`.
///
/// ```
/// use ndarray::array;
/// use relevance::{Elu, Layer};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Elu::default(), array![[0.0, 2.0]].into_dyn().view())?;
/// assert_eq!(y, array![[0.0, 2.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elu {
    alpha: f64,
}

impl Elu {
    /// ELU with the given α (PyTorch's default is 1).
    ///
    /// # Errors
    /// [`Error::InvalidLayer`](crate::Error::InvalidLayer) for an α that is not finite.
    pub fn new(alpha: f64) -> Result<Self> {
        finite("Elu", "alpha", alpha)?;
        Ok(Elu { alpha })
    }

    /// The α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    fn describe(&self) -> String {
        format!("ELU({})", self.alpha)
    }

    fn value<F: Float>(&self, x: F) -> F {
        if x > F::zero() {
            x
        } else {
            F::lit(self.alpha) * x.exp_m1()
        }
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        if x > F::zero() {
            F::one()
        } else {
            F::lit(self.alpha) * x.exp()
        }
    }
}

impl Default for Elu {
    /// α = 1, as PyTorch.
    fn default() -> Self {
        Elu { alpha: 1.0 }
    }
}

elementwise_layer!(Elu, gate = false);
