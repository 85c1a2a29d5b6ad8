//! Is an explanation faithful? Perturbation curves, AOPC/ABPC and the model-randomisation
//! sanity check, on the same [`Network`](crate::Network) that made the explanation.
//!
//! * [`RegionPerturbation`] — pixel flipping (Bach et al. 2015) and region perturbation
//!   (Samek et al. 2017): the input's regions (single pixels, or k×k patches summed over
//!   channels) are replaced step by step, most relevant first (MoRF) and least relevant
//!   first (LeRF), and the target score is recorded after each step; [`PerturbationCurves`]
//!   holds the curves (logit and softmax probability), the AOPC of both orders and the area
//!   between them (ABPC); [`RegionPerturbation::evaluate_order`] measures one order only
//!   ([`OrderCurve`]). All perturbed inputs of a batch of samples go through
//!   [`Network::forward`](crate::Network::forward) in a few large batches.
//! * [`CascadingRandomisation`] — Adebayo et al. (2018): the dense and convolutional layers
//!   are re-initialised from the top down, the explanation is recomputed after each, and its
//!   similarity to the original is reported ([`spearman`] of |R| and of R, [`ssim`]).
//! * [`random_attribution`] — the chance baseline every comparison should include (the
//!   plain gradient is [`Network::gradient`](crate::Network::gradient)).
//!
//! The curves, the region order and the similarity functions follow Quantus 0.6.0
//! (`PixelFlipping`, `RegionPerturbation`, `MPRT`, `similarity_func.py`) and are checked
//! against it (`tests/suite/eval.rs`, fixtures from `tools/gen_eval_fixtures.py`); where
//! Quantus and the papers differ the item's documentation says which one is followed.
//! [`Summary`] gives a mean with a 95 % confidence interval over samples.
//!
//! With the cargo feature `plot`, `eval::plot` draws the curves of several methods and the
//! randomisation result as PNG files.

mod curves;
mod perturbation;
#[cfg(feature = "plot")]
pub mod plot;
mod randomisation;
mod regions;
mod rng;
mod similarity;

pub use curves::{OrderCurve, PerturbationCurves};
pub use perturbation::{Order, Perturbation, RegionPerturbation, Score};
pub use randomisation::{CascadingRandomisation, RandomisationResult};
pub use regions::Regions;
pub use similarity::{spearman, ssim};

use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, IxDyn};

/// A seeded random attribution, uniform in [−1, 1), of the given shape (e.g. the input's
/// `[N, C, H, W]`): the chance level of every faithfulness comparison. The same seed gives
/// the same values on every platform.
///
/// ```
/// use relevance::eval::random_attribution;
/// let r = random_attribution::<f32>(&[2, 1, 4, 4], 7);
/// assert_eq!(r.shape(), &[2, 1, 4, 4]);
/// assert!(r.iter().all(|v| (-1.0..1.0).contains(v)));
/// assert_eq!(r, random_attribution::<f32>(&[2, 1, 4, 4], 7));
/// ```
pub fn random_attribution<F: Float>(shape: &[usize], seed: u64) -> ArrayD<F> {
    let mut rng = rng::SplitMix::new(seed);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || F::lit(2.0 * rng.uniform() - 1.0))
}

/// Mean and 95 % confidence interval of a per-sample score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The mean over samples.
    pub mean: f64,
    /// Half the width of the 95 % confidence interval of the mean (normal approximation:
    /// 1.96 × standard deviation / √n, with the n − 1 standard deviation); 0 for one
    /// sample.
    pub ci95: f64,
    /// How many samples.
    pub n: usize,
}

impl Summary {
    /// Summarises per-sample values.
    ///
    /// ```
    /// use relevance::eval::Summary;
    /// # fn main() -> relevance::Result<()> {
    /// let s = Summary::of([1.0_f64, 2.0, 3.0])?;
    /// assert_eq!(s.mean, 2.0);
    /// assert!((s.ci95 - 1.96 / 3f64.sqrt()).abs() < 1e-12);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::EmptyBatch`] for no values; [`Error::NonFinite`] for NaN or ∞ among them.
    pub fn of<F: Float>(values: impl IntoIterator<Item = F>) -> Result<Summary> {
        let v: Vec<f64> = values.into_iter().map(|x| x.as_f64()).collect();
        if v.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(Error::NonFinite {
                what: "summarised values".into(),
                index,
                value,
            });
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let ci95 = if n > 1 {
            let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
            1.96 * (var / n as f64).sqrt()
        } else {
            0.0
        };
        Ok(Summary { mean, ci95, n })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(3);
        write!(f, "{:.p$} ± {:.p$}", self.mean, self.ci95)
    }
}

/// An [`Error::InvalidParameter`] of one of this module's settings.
fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        rule: what,
        reason: reason.into(),
    }
}
