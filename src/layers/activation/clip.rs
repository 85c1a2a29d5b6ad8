//! Clipping to an interval: ReLU6, hard tanh, ONNX `Clip`.

use super::elementwise_layer;
use crate::error::{Error, Result};
use crate::float::Float;

/// `min(max(x, low), high)` elementwise: `torch.nn.ReLU6` is `Clip::relu6()`,
/// `torch.nn.Hardtanh` is `Clip::new(-1.0, 1.0)`, ONNX `Clip` with any bounds.
///
/// The derivative is 1 strictly inside `(low, high)` and 0 elsewhere, as PyTorch's
/// `hardtanh_backward`.
///
/// ```
/// use ndarray::array;
/// use relevance::{Clip, Layer};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Clip::relu6(), array![[-1.0, 3.0, 7.0]].into_dyn().view())?;
/// assert_eq!(y, array![[0.0, 3.0, 6.0]].into_dyn());
/// assert!(Clip::new(1.0, 0.0).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clip {
    low: f64,
    high: f64,
}

impl Clip {
    /// Clipping to `[low, high]`; either bound may be infinite (no bound).
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a NaN bound or `low > high`.
    pub fn new(low: f64, high: f64) -> Result<Self> {
        if low.is_nan() || high.is_nan() || low > high {
            return Err(Error::InvalidLayer {
                layer: "Clip",
                reason: format!("bounds must satisfy low ≤ high, got [{low}, {high}]"),
            });
        }
        Ok(Clip { low, high })
    }

    /// ReLU6: clipping to `[0, 6]`.
    pub fn relu6() -> Self {
        Clip { low: 0.0, high: 6.0 }
    }

    /// The bounds `(low, high)`.
    pub fn bounds(&self) -> (f64, f64) {
        (self.low, self.high)
    }

    fn describe(&self) -> String {
        if (self.low, self.high) == (0.0, 6.0) {
            "ReLU6".into()
        } else {
            format!("Clip({}, {})", self.low, self.high)
        }
    }

    fn value<F: Float>(&self, x: F) -> F {
        let (lo, hi) = (F::lit(self.low), F::lit(self.high));
        if x < lo {
            lo
        } else if x > hi {
            hi
        } else {
            x
        }
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        if x > F::lit(self.low) && x < F::lit(self.high) {
            F::one()
        } else {
            F::zero()
        }
    }
}

elementwise_layer!(Clip, gate = false);
