//! The Gaussian error linear unit.

use super::elementwise_layer;
use crate::float::Float;

/// `x·Φ(x)` with Φ the standard normal distribution function, as `torch.nn.GELU()`
/// (`0.5·x·(1 + erf(x/√2))`), or PyTorch's tanh approximation
/// (`torch.nn.GELU(approximate="tanh")`, [`Gelu::tanh`]). Derivatives as PyTorch's
/// `gelu_backward`.
///
/// ```
/// use ndarray::array;
/// use relevance::{Gelu, Layer};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Gelu::default(), array![[0.0, 1.0]].into_dyn().view())?;
/// assert!((y[[0, 1]] - 0.8413447460685429).abs() < 1e-15);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gelu {
    tanh: bool,
}

/// √2/√π · 1/2 · 2 = √(2/π), PyTorch's `kBeta`.
const BETA: f64 = 0.797_884_560_802_865_4;
/// PyTorch's `kKappa`.
const KAPPA: f64 = 0.044715;

impl Gelu {
    /// The exact GELU (erf form), PyTorch's default.
    pub fn new() -> Self {
        Gelu { tanh: false }
    }

    /// The tanh approximation `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    pub fn tanh() -> Self {
        Gelu { tanh: true }
    }

    /// Whether this is the tanh approximation.
    pub fn is_tanh(&self) -> bool {
        self.tanh
    }

    fn describe(&self) -> String {
        if self.tanh {
            "GELU(tanh)".into()
        } else {
            "GELU".into()
        }
    }

    #[inline(always)]
    fn value<F: Float>(&self, x: F) -> F {
        let half = F::lit(0.5);
        if self.tanh {
            let inner = F::lit(BETA) * (x + F::lit(KAPPA) * x * x * x);
            return half * x * (F::one() + inner.tanh());
        }
        let erf = (x * F::lit(std::f64::consts::FRAC_1_SQRT_2)).erf();
        half * x * (F::one() + erf)
    }

    fn derivative<F: Float>(&self, x: F) -> F {
        let half = F::lit(0.5);
        if self.tanh {
            let x_sq = x * x;
            let inner = F::lit(BETA) * (x + F::lit(KAPPA) * x_sq * x);
            let t = inner.tanh();
            let left = half * x;
            let right = F::one() + t;
            let right_derivative =
                left * (F::one() - t * t) * F::lit(BETA) * (F::one() + F::lit(3.0 * KAPPA) * x_sq);
            return half * right + right_derivative;
        }
        let xf = x.as_f64();
        let cdf = 0.5 * (1.0 + libm::erf(xf * std::f64::consts::FRAC_1_SQRT_2));
        let pdf = (-0.5 * xf * xf).exp() * 0.398_942_280_401_432_7; // 1/√(2π)
        F::lit(cdf + xf * pdf)
    }
}

elementwise_layer!(Gelu, gate = false);
