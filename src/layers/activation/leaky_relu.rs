//! Leaky ReLU.

use super::{elementwise_layer, finite};
use crate::error::Result;
use crate::float::Float;

/// `x` for `x > 0`, `slope·x` otherwise, as `torch.nn.LeakyReLU(negative_slope)`
/// (derivative `slope` at 0, as PyTorch).
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, LeakyRelu};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&LeakyRelu::new(0.1)?, array![[-2.0, 3.0]].into_dyn().view())?;
/// assert_eq!(y, array![[-0.2, 3.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyRelu {
    slope: f64,
}

impl LeakyRelu {
    /// Leaky ReLU with the given negative slope (PyTorch's default is 0.01).
    ///
    /// # Errors
    /// [`Error::InvalidLayer`](crate::Error::InvalidLayer) for a slope that is not finite.
    pub fn new(slope: f64) -> Result<Self> {
        finite("LeakyRelu", "negative slope", slope)?;
        Ok(LeakyRelu { slope })
    }

    /// The negative slope.
    pub fn negative_slope(&self) -> f64 {
        self.slope
    }

    fn describe(&self) -> String {
        format!("LeakyReLU({})", self.slope)
    }

    fn value<F: Float>(&self, x: F) -> F {
        if x > F::zero() {
            x
        } else {
            x * F::lit(self.slope)
        }
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        if x > F::zero() {
            F::one()
        } else {
            F::lit(self.slope)
        }
    }
}

impl Default for LeakyRelu {
    /// PyTorch's default slope, 0.01.
    fn default() -> Self {
        LeakyRelu { slope: 0.01 }
    }
}

elementwise_layer!(LeakyRelu, gate = false);
