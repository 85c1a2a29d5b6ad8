//! Batch normalisation in evaluation mode: a per-channel affine map.

use super::{Class, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::checks::check_finite;
use ndarray::{ArcArray1, Array1, ArrayD, ArrayViewD, Axis, Zip};

/// Batch normalisation in evaluation mode, as `torch.nn.BatchNorm2d` (and `BatchNorm1d`)
/// after `model.eval()`: `y = (x − μ) / √(σ² + ε) · γ + β` per channel (axis 1), computed
/// as PyTorch's CPU kernel does, `y = x·scale + shift` with `scale = γ / √(σ² + ε)` and
/// `shift = β − μ·scale`. Any per-channel affine map (an input normalisation inside the
/// model, say) is one too: [`BatchNorm2d::from_scale_shift`].
///
/// LRP rules pass relevance through it (zennit's `Pass` for `types.BatchNorm`); better,
/// merge it into the convolution before it with
/// [`Network::merge_batch_norm`](crate::Network::merge_batch_norm), as zennit's
/// canonizers do. DeepLIFT's Rescale at this layer is its Linear rule.
///
/// # Shapes
/// Input `[N, C, ...]`, output the same.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{BatchNorm2d, Layer};
/// # fn main() -> relevance::Result<()> {
/// // mean 1, variance 4, weight 2, bias 0.5: y = (x − 1) / 2 · 2 + 0.5
/// let bn = BatchNorm2d::new(array![1.0], array![4.0], array![2.0], array![0.5], 0.0)?;
/// let y = bn.forward(array![[3.0_f64]].into_dyn().view())?;
/// assert_eq!(y, array![[2.5]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm2d<F: Float = f32> {
    /// Shared, not copied, when the layer is cloned.
    scale: ArcArray1<F>,
    shift: ArcArray1<F>,
}

impl<F: Float> BatchNorm2d<F> {
    /// From the running mean and variance, the weight γ, the bias β and ε, each per channel
    /// (PyTorch's `running_mean`, `running_var`, `weight`, `bias`, `eps`).
    ///
    /// # Errors
    /// [`Error::Shape`] if the four vectors differ in length or are empty;
    /// [`Error::NonFinite`] for NaN or ∞; [`Error::InvalidLayer`] for a negative ε or a
    /// variance with `σ² + ε ≤ 0`.
    pub fn new(
        mean: Array1<F>,
        var: Array1<F>,
        weight: Array1<F>,
        bias: Array1<F>,
        eps: f64,
    ) -> Result<Self> {
        let c = mean.len();
        for (what, v) in [("variance", &var), ("weight", &weight), ("bias", &bias)] {
            if v.len() != c || c == 0 {
                return Err(Error::Shape {
                    what: format!("BatchNorm2d {what} (one value per channel, as the mean)"),
                    expected: vec![c],
                    got: v.shape().to_vec(),
                });
            }
        }
        for (what, v) in [
            ("mean", &mean),
            ("variance", &var),
            ("weight", &weight),
            ("bias", &bias),
        ] {
            check_finite(&format!("BatchNorm2d {what}"), &v.view().into_dyn())?;
        }
        if !eps.is_finite() || eps < 0.0 {
            return Err(Error::InvalidLayer {
                layer: "BatchNorm2d",
                reason: format!("eps must be finite and non-negative, got {eps}"),
            });
        }
        let eps = F::lit(eps);
        if let Some(i) = var.iter().position(|&v| v + eps <= F::zero()) {
            return Err(Error::InvalidLayer {
                layer: "BatchNorm2d",
                reason: format!(
                    "variance + eps must be positive, channel {i} has {}",
                    var[i].as_f64()
                ),
            });
        }
        // PyTorch's batch_norm_cpu_transform_input: alpha = invstd·weight, beta = bias − mean·alpha
        let scale: Array1<F> = Zip::from(&var)
            .and(&weight)
            .map_collect(|&v, &w| F::one() / (v + eps).sqrt() * w);
        let shift = Zip::from(&bias)
            .and(&mean)
            .and(&scale)
            .map_collect(|&b, &m, &s| b - m * s);
        Self::from_scale_shift(scale, shift)
    }

    /// The per-channel affine map `y = x·scale[c] + shift[c]`.
    ///
    /// # Errors
    /// [`Error::Shape`] if the two differ in length or are empty, [`Error::NonFinite`] for
    /// NaN or ∞.
    pub fn from_scale_shift(scale: Array1<F>, shift: Array1<F>) -> Result<Self> {
        if scale.len() != shift.len() || scale.is_empty() {
            return Err(Error::Shape {
                what: "BatchNorm2d shift (one value per channel, as the scale)".into(),
                expected: vec![scale.len()],
                got: shift.shape().to_vec(),
            });
        }
        check_finite("BatchNorm2d scale", &scale.view().into_dyn())?;
        check_finite("BatchNorm2d shift", &shift.view().into_dyn())?;
        Ok(BatchNorm2d {
            scale: scale.into_shared(),
            shift: shift.into_shared(),
        })
    }

    /// The number of channels.
    pub fn channels(&self) -> usize {
        self.scale.len()
    }

    /// Applies `f(value, channel parameter)` along axis 1.
    fn per_channel(&self, a: &mut ArrayD<F>, p: &ArcArray1<F>, f: impl Fn(&mut F, F)) {
        for mut lane in a.axis_iter_mut(Axis(0)) {
            for (mut chan, &v) in lane.axis_iter_mut(Axis(0)).zip(p.iter()) {
                chan.map_inplace(|x| f(x, v));
            }
        }
    }

    fn check(&self, what: &str, a: &ArrayViewD<'_, F>) -> Result<()> {
        if a.ndim() < 2 || a.shape()[1] != self.channels() {
            return Err(Error::Shape {
                what: format!("BatchNorm2d {what} ([N, C, ...])"),
                expected: vec![a.shape().first().copied().unwrap_or(0), self.channels()],
                got: a.shape().to_vec(),
            });
        }
        Ok(())
    }
}

impl<F: Float> Layer<F> for BatchNorm2d<F> {
    fn name(&self) -> String {
        format!("BatchNorm2d({})", self.channels())
    }

    fn class(&self) -> Class<'_, F> {
        Class::BatchNorm(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if input_shape.first() != Some(&self.channels()) {
            return Err(Error::Shape {
                what: "BatchNorm2d input channels (per sample)".into(),
                expected: vec![self.channels()],
                got: input_shape.to_vec(),
            });
        }
        Ok(input_shape.to_vec())
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.check("input", &input)?;
        let mut y = input.as_standard_layout().into_owned();
        for mut lane in y.axis_iter_mut(Axis(0)) {
            for ((mut chan, &s), &t) in lane.axis_iter_mut(Axis(0)).zip(&self.scale).zip(&self.shift) {
                chan.map_inplace(|x| *x = *x * s + t);
            }
        }
        Ok(y)
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.check("output gradient", &grad_output)?;
        if grad_output.shape() != step.input.shape() {
            return Err(Error::Shape {
                what: "BatchNorm2d output gradient".into(),
                expected: step.input.shape().to_vec(),
                got: grad_output.shape().to_vec(),
            });
        }
        let mut g = grad_output.to_owned();
        self.per_channel(&mut g, &self.scale, |g, s| *g *= s);
        Ok(g)
    }

    fn channel_affine(&self) -> Option<(Array1<F>, Array1<F>)> {
        Some((self.scale.to_owned(), self.shift.to_owned()))
    }
}
