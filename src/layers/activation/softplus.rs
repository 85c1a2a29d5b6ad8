//! Softplus, the exponential, the logarithm and `log(1 + x)` (genomics count heads, bias models
//! and control tracks use them; ChromBPNet combines its two count heads as
//! `log(exp(a) + exp(b))`).

use super::sigmoid::logistic;
use super::{elementwise_layer, finite};
use crate::error::{Error, Result};
use crate::float::Float;

/// `log(1 + e^(β·x)) / β`, and `x` where `β·x > threshold`, as `torch.nn.Softplus(beta,
/// threshold)` (PyTorch's defaults β = 1, threshold = 20); derivative `σ(β·x)` (1 above the
/// threshold).
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Softplus};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Softplus::default(), array![[0.0, 30.0]].into_dyn().view())?;
/// assert_eq!(y, array![[std::f64::consts::LN_2, 30.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Softplus {
    beta: f64,
    threshold: f64,
}

impl Softplus {
    /// Softplus with the given β and threshold.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a β that is not finite and positive, or a threshold
    /// that is not finite.
    pub fn new(beta: f64, threshold: f64) -> Result<Self> {
        finite("Softplus", "beta", beta)?;
        finite("Softplus", "threshold", threshold)?;
        if beta <= 0.0 {
            return Err(Error::InvalidLayer {
                layer: "Softplus",
                reason: format!("beta must be positive, got {beta}"),
            });
        }
        Ok(Softplus { beta, threshold })
    }

    /// β and the threshold.
    pub fn params(&self) -> (f64, f64) {
        (self.beta, self.threshold)
    }

    fn describe(&self) -> String {
        format!("Softplus(β {}, threshold {})", self.beta, self.threshold)
    }

    fn value<F: Float>(&self, x: F) -> F {
        let bx = x * F::lit(self.beta);
        if bx > F::lit(self.threshold) {
            x
        } else {
            bx.exp().ln_1p() / F::lit(self.beta)
        }
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        let bx = x * F::lit(self.beta);
        if bx > F::lit(self.threshold) {
            F::one()
        } else {
            logistic(bx)
        }
    }
}

impl Default for Softplus {
    /// β = 1, threshold = 20, as PyTorch.
    fn default() -> Self {
        Softplus {
            beta: 1.0,
            threshold: 20.0,
        }
    }
}

elementwise_layer!(Softplus, gate = false);

/// The exponential `eˣ`, as `torch.exp` (ONNX `Exp`); its own derivative.
///
/// ```
/// use ndarray::array;
/// use relevance::{Exp, Layer};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Exp, array![[0.0, 1.0]].into_dyn().view())?;
/// assert_eq!(y, array![[1.0, std::f64::consts::E]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exp;

impl Exp {
    fn describe(&self) -> String {
        "Exp".into()
    }

    fn value<F: Float>(&self, x: F) -> F {
        x.exp()
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        x.exp()
    }
}

elementwise_layer!(Exp, gate = false);

/// The natural logarithm `ln x`, as `torch.log` (ONNX `Log`); derivative `1/x`. Defined for
/// `x > 0`: `ln 0 = −∞` and the logarithm of a negative number is NaN, as in PyTorch (a
/// network's forward pass reports either as [`Error::NonFiniteResult`](crate::Error::NonFiniteResult)).
///
/// ChromBPNet (bpnet-lite's `ChromBPNet`, `bpnetlite/chrombpnet.py`) combines the count
/// heads of its bias and accessibility models as `log(exp(a) + exp(b))` with `_Exp` and
/// `_Log` modules, to which bpnet-lite's `deep_lift_shap` (`bpnetlite/attribute.py`)
/// gives tangermeme's Rescale rule, as DeepLIFT does here to every activation.
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Log};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Log, array![[1.0, std::f64::consts::E]].into_dyn().view())?;
/// assert_eq!(y, array![[0.0, 1.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Log;

impl Log {
    fn describe(&self) -> String {
        "Log".into()
    }

    fn value<F: Float>(&self, x: F) -> F {
        x.ln()
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        F::one() / x
    }
}

elementwise_layer!(Log, gate = false);

/// `log(1 + x)`, as `torch.log1p` (and `torch.log(x + 1)`, which bpnet-lite's BPNet applies
/// to the summed control tracks, `bpnetlite/bpnet.py`); derivative `1 / (1 + x)`. Defined
/// for `x > −1`: below, the forward pass gives NaN or −∞ (a
/// [`NonFiniteResult`](crate::Error::NonFiniteResult) error naming the node).
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Log1p};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Log1p, array![[0.0, 1.0]].into_dyn().view())?;
/// assert_eq!(y, array![[0.0, std::f64::consts::LN_2]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Log1p;

impl Log1p {
    fn describe(&self) -> String {
        "Log1p".into()
    }

    fn value<F: Float>(&self, x: F) -> F {
        x.ln_1p()
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        F::one() / (F::one() + x)
    }
}

elementwise_layer!(Log1p, gate = false);
