//! Normalisation over the trailing axes of each sample: layer normalisation
//! (`torch.nn.LayerNorm`, ONNX `LayerNormalization`) and RMS normalisation
//! (`torch.nn.RMSNorm`, ONNX `SimplifiedLayerNormalization`/`RMSNormalization`), the
//! normalisations of transformers.
//!
//! Both compute, per row `x` of the trailing axes (`n` values),
//! `c = x − mean(x)` (layer norm; RMS norm: `c = x`), `v = mean(c²)`, `s = 1/√(v + eps)`,
//! `y = w ⊙ c · s + b`. They are of class [`Class::Normalization`]: rules reach them
//! through [`Rule::normalization`](crate::Rule::normalization) and the [`Normalize`] trait.

use super::{Class, Layer, Normalize, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::checks::check_finite;
use ndarray::{ArcArray1, ArrayD, ArrayViewD};

/// The row computation shared by [`LayerNorm`] and [`RmsNorm`].
#[derive(Debug, Clone)]
struct RowNorm<F: Float> {
    /// The normalised trailing per-sample shape.
    shape: Vec<usize>,
    weight: Option<ArcArray1<F>>,
    bias: Option<ArcArray1<F>>,
    eps: f64,
    /// Subtract the mean (layer norm) or not (RMS norm).
    center: bool,
}

/// One row's statistics: the centred values `c` (or `x`), and `s = 1/√(mean(c²) + eps)`.
struct Stats<F> {
    c: Vec<F>,
    v: F,
    s: F,
}

impl<F: Float> RowNorm<F> {
    fn new(
        layer: &'static str,
        shape: Vec<usize>,
        weight: Option<ArcArray1<F>>,
        bias: Option<ArcArray1<F>>,
        eps: f64,
        center: bool,
    ) -> Result<Self> {
        let n: usize = shape.iter().product();
        if shape.is_empty() || n == 0 {
            return Err(Error::InvalidLayer {
                layer,
                reason: format!("normalised shape {shape:?} is empty or has a zero dimension"),
            });
        }
        if !(eps.is_finite() && eps >= 0.0 && F::lit(eps).is_finite()) {
            return Err(Error::InvalidLayer {
                layer,
                reason: format!("eps = {eps:e} must be finite and ≥ 0"),
            });
        }
        for (what, p) in [("weight", &weight), ("bias", &bias)] {
            if let Some(p) = p {
                if p.len() != n {
                    return Err(Error::Shape {
                        what: format!("{layer} {what} (one value per normalised element)"),
                        expected: shape.clone(),
                        got: p.shape().to_vec(),
                    });
                }
                check_finite(&format!("{layer} {what}"), &p.view().into_dyn())?;
            }
        }
        Ok(RowNorm {
            shape,
            weight,
            bias,
            eps,
            center,
        })
    }

    fn len(&self) -> usize {
        self.shape.iter().product()
    }

    fn check_shape(&self, name: &str, per_sample: &[usize]) -> Result<()> {
        let k = self.shape.len();
        if per_sample.len() < k || per_sample[per_sample.len() - k..] != self.shape[..] {
            return Err(Error::Shape {
                what: format!("{name} input (per sample; its trailing axes are normalised)"),
                expected: self.shape.clone(),
                got: per_sample.to_vec(),
            });
        }
        Ok(())
    }

    fn stats(&self, x: &[F]) -> Stats<F> {
        let n = F::lit(x.len() as f64);
        let mean = if self.center {
            x.iter().fold(F::zero(), |a, &v| a + v) / n
        } else {
            F::zero()
        };
        let c: Vec<F> = x.iter().map(|&v| v - mean).collect();
        let v = c.iter().fold(F::zero(), |a, &v| a + v * v) / n;
        let s = F::one() / (v + F::lit(self.eps)).sqrt();
        Stats { c, v, s }
    }

    fn w(&self, j: usize) -> F {
        self.weight.as_ref().map_or(F::one(), |w| w[j])
    }

    fn b(&self, j: usize) -> F {
        self.bias.as_ref().map_or(F::zero(), |b| b[j])
    }

    /// `mean(u)` if centring, else 0.
    fn mean_if_centred(&self, u: &[F]) -> F {
        if self.center {
            u.iter().fold(F::zero(), |a, &v| a + v) / F::lit(u.len() as f64)
        } else {
            F::zero()
        }
    }

    /// Applies `f(row of each array)` over the rows of equally shaped arrays, writing the
    /// row of the result.
    fn rows<const K: usize>(
        &self,
        name: &str,
        arrays: [&ArrayViewD<'_, F>; K],
        mut f: impl FnMut([&[F]; K], &mut [F]),
    ) -> Result<ArrayD<F>> {
        let shape = arrays[0].shape().to_vec();
        if shape.is_empty() {
            return Err(Error::Rank {
                what: format!("{name} input (batch first)"),
                expected: self.shape.len() + 1,
                got: 0,
                shape,
            });
        }
        self.check_shape(name, &shape[1..])?;
        for a in &arrays[1..] {
            if a.shape() != shape.as_slice() {
                return Err(Error::Shape {
                    what: format!("{name}: arrays of a relevance pass"),
                    expected: shape.clone(),
                    got: a.shape().to_vec(),
                });
            }
        }
        let std: Vec<_> = arrays.iter().map(|a| a.as_standard_layout()).collect();
        let slices: Vec<&[F]> = std
            .iter()
            .map(|a| a.as_slice().expect("standard layout"))
            .collect();
        let n = self.len();
        let total = slices[0].len();
        let mut out = vec![F::zero(); total];
        for (r, o) in out.chunks_exact_mut(n).enumerate() {
            let rows: [&[F]; K] = std::array::from_fn(|k| &slices[k][r * n..(r + 1) * n]);
            f(rows, o);
        }
        Ok(ArrayD::from_shape_vec(shape, out).expect("shape of the input"))
    }

    fn forward(&self, name: &str, x: &ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.rows(name, [x], |[x], y| {
            let st = self.stats(x);
            for (j, y) in y.iter_mut().enumerate() {
                *y = self.w(j) * st.c[j] * st.s + self.b(j);
            }
        })
    }

    /// The exact vector-Jacobian product:
    /// `s · (u − mean(u) − ĉ · mean(u ⊙ ĉ))` with `u = w ⊙ g` and `ĉ = c·s` (RMS norm: no
    /// `mean(u)`).
    fn gradient(&self, name: &str, x: &ArrayViewD<'_, F>, g: &ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.rows(name, [x, g], |[x, g], out| {
            let st = self.stats(x);
            let u: Vec<F> = g.iter().enumerate().map(|(j, &g)| g * self.w(j)).collect();
            let mu = self.mean_if_centred(&u);
            let n = F::lit(u.len() as f64);
            let uc = u
                .iter()
                .zip(&st.c)
                .fold(F::zero(), |a, (&u, &c)| a + u * c * st.s)
                / n;
            for ((o, &u), &c) in out.iter_mut().zip(&u).zip(&st.c) {
                *o = st.s * (u - mu - c * st.s * uc);
            }
        })
    }

    /// `Jᵀ t` with the normalising factor `s` held at its recorded value:
    /// `s · (u − mean(u))`, `u = w ⊙ t` (RMS norm: `s · u`).
    fn frozen_transpose(
        &self,
        name: &str,
        x: &ArrayViewD<'_, F>,
        t: &ArrayViewD<'_, F>,
    ) -> Result<ArrayD<F>> {
        self.rows(name, [x, t], |[x, t], out| {
            let st = self.stats(x);
            let u: Vec<F> = t.iter().enumerate().map(|(j, &t)| t * self.w(j)).collect();
            let mu = self.mean_if_centred(&u);
            for (o, &u) in out.iter_mut().zip(&u) {
                *o = st.s * (u - mu);
            }
        })
    }

    /// DeepLIFT's multipliers through the layer's own graph (see [`Normalize`]).
    fn difference_multipliers(
        &self,
        name: &str,
        x: &ArrayViewD<'_, F>,
        x0: &ArrayViewD<'_, F>,
        m: &ArrayViewD<'_, F>,
        threshold: F,
    ) -> Result<ArrayD<F>> {
        let half = F::lit(0.5);
        let eps = F::lit(self.eps);
        self.rows(name, [x, x0, m], |[x, x0, m], out| {
            let (a, b) = (self.stats(x), self.stats(x0));
            let n = F::lit(x.len() as f64);
            let s_mid = half * (a.s + b.s);
            // Δ(c·s) = ½(s + s̄)Δc + ½(c + c̄)Δs: the direct part and m_s = Σ m_y w ½(c + c̄)
            let mut m_s = F::zero();
            for (j, o) in out.iter_mut().enumerate() {
                let mw = m[j] * self.w(j);
                *o = mw * s_mid;
                m_s += mw * half * (a.c[j] + b.c[j]);
            }
            // Δv = mean((c + c̄) ⊙ Δc) (the Shapley split of c ⊙ c, exact), Δs = r·Δv
            let dv =
                a.c.iter()
                    .zip(&b.c)
                    .fold(F::zero(), |acc, (&c, &c0)| acc + (c + c0) * (c - c0))
                    / n;
            let r = if dv.abs() < threshold {
                // the derivative of (v + eps)^(-1/2) at the midpoint
                let vm = half * (a.v + b.v) + eps;
                -half / (vm * vm.sqrt())
            } else {
                (a.s - b.s) / dv
            };
            let m_v = m_s * r;
            for (j, o) in out.iter_mut().enumerate() {
                *o += m_v * (a.c[j] + b.c[j]) / n;
            }
            // back through the centring, a symmetric projection
            let mu = self.mean_if_centred(out);
            for o in out.iter_mut() {
                *o -= mu;
            }
        })
    }
}

macro_rules! norm_layer {
    ($ty:ident, $label:literal) => {
        impl<F: Float> Layer<F> for $ty<F> {
            fn name(&self) -> String {
                format!("{}({:?}, eps {:e})", $label, self.0.shape, self.0.eps)
            }

            fn class(&self) -> Class<'_, F> {
                Class::Normalization(self)
            }

            fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
                self.0.check_shape($label, input_shape)?;
                Ok(input_shape.to_vec())
            }

            fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
                self.0.forward($label, &input)
            }

            fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
                self.0.gradient($label, &step.input, &grad_output)
            }
        }

        impl<F: Float> Normalize<F> for $ty<F> {
            fn frozen_transpose(
                &self,
                input: &ArrayViewD<'_, F>,
                t: &ArrayViewD<'_, F>,
            ) -> Result<ArrayD<F>> {
                self.0.frozen_transpose($label, input, t)
            }

            fn difference_multipliers(
                &self,
                input: &ArrayViewD<'_, F>,
                baseline_input: &ArrayViewD<'_, F>,
                multipliers: &ArrayViewD<'_, F>,
                threshold: F,
            ) -> Result<ArrayD<F>> {
                self.0
                    .difference_multipliers($label, input, baseline_input, multipliers, threshold)
            }
        }

        impl<F: Float> $ty<F> {
            /// The normalised trailing per-sample shape.
            pub fn normalized_shape(&self) -> &[usize] {
                &self.0.shape
            }

            /// The stabiliser added to the mean square.
            pub fn eps(&self) -> f64 {
                self.0.eps
            }
        }
    };
}

/// Layer normalisation over the trailing axes of each sample, as `torch.nn.LayerNorm`
/// (biased variance, `eps` inside the square root) and ONNX `LayerNormalization`:
/// `y = w ⊙ (x − mean(x)) / √(var(x) + eps) + b`, per row of the normalised axes.
///
/// Transformers put it before (ViT, pre-LN) or after (BERT, post-LN) each block. Rules:
/// AttnLRP ([`AttnLrp`](crate::AttnLrp)) treats `1/σ` as a constant and applies the ε-rule
/// to the remaining linear map (Achtibat et al. 2024, Proposition 3.4); DeepLIFT
/// ([`DeepLift`](crate::DeepLift)) follows the layer's own graph with exact
/// summation-to-delta ([`Normalize::difference_multipliers`]).
///
/// # Shapes
/// `[N, ..., *normalized_shape]` → the same shape.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{Layer, LayerNorm};
/// # fn main() -> relevance::Result<()> {
/// let ln = LayerNorm::<f64>::new(&[2], None, None, 0.0)?;
/// let y = ln.forward(array![[[1.0, 3.0], [5.0, 5.5]]].into_dyn().view())?;
/// assert_eq!(y, array![[[-1.0, 1.0], [-1.0, 1.0]]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LayerNorm<F: Float = f32>(RowNorm<F>);

impl<F: Float> LayerNorm<F> {
    /// Normalises over the trailing axes of shape `normalized_shape`, with an optional
    /// elementwise `weight` and `bias` (flattened, one value per normalised element) and
    /// `eps` (PyTorch's default is 1e-5; ViT uses 1e-6, BERT 1e-12).
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for an empty shape or a negative or non-finite `eps`;
    /// [`Error::Shape`] for a weight or bias of another length; [`Error::NonFinite`].
    pub fn new(
        normalized_shape: &[usize],
        weight: Option<ndarray::Array1<F>>,
        bias: Option<ndarray::Array1<F>>,
        eps: f64,
    ) -> Result<Self> {
        Ok(LayerNorm(RowNorm::new(
            "LayerNorm",
            normalized_shape.to_vec(),
            weight.map(|w| w.into_shared()),
            bias.map(|b| b.into_shared()),
            eps,
            true,
        )?))
    }
}

/// RMS normalisation over the trailing axes of each sample, as `torch.nn.RMSNorm` (and
/// LLaMA's `LlamaRMSNorm`): `y = w ⊙ x / √(mean(x²) + eps) (+ b)`.
///
/// AttnLRP treats `1/rms` as a constant: with no bias, relevance passes through unchanged
/// (lxt's `rms_norm_identity`).
///
/// # Shapes
/// `[N, ..., *normalized_shape]` → the same shape.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{Layer, RmsNorm};
/// # fn main() -> relevance::Result<()> {
/// let rms = RmsNorm::<f64>::new(&[2], None, 0.0)?;
/// let y = rms.forward(array![[3.0, -4.0]].into_dyn().view())?; // rms = √12.5
/// assert!((y[[0, 0]] - 3.0 / 12.5_f64.sqrt()).abs() < 1e-15);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RmsNorm<F: Float = f32>(RowNorm<F>);

impl<F: Float> RmsNorm<F> {
    /// Normalises over the trailing axes of shape `normalized_shape` with an optional
    /// elementwise `weight` and stabiliser `eps`.
    ///
    /// # Errors
    /// As [`LayerNorm::new`].
    pub fn new(normalized_shape: &[usize], weight: Option<ndarray::Array1<F>>, eps: f64) -> Result<Self> {
        Self::with_bias(normalized_shape, weight, None, eps)
    }

    /// [`RmsNorm::new`] with a bias added after the scaling (ONNX
    /// `SimplifiedLayerNormalization` has none; some exporters add one).
    ///
    /// # Errors
    /// As [`LayerNorm::new`].
    pub fn with_bias(
        normalized_shape: &[usize],
        weight: Option<ndarray::Array1<F>>,
        bias: Option<ndarray::Array1<F>>,
        eps: f64,
    ) -> Result<Self> {
        Ok(RmsNorm(RowNorm::new(
            "RmsNorm",
            normalized_shape.to_vec(),
            weight.map(|w| w.into_shared()),
            bias.map(|b| b.into_shared()),
            eps,
            false,
        )?))
    }
}

norm_layer!(LayerNorm, "LayerNorm");
norm_layer!(RmsNorm, "RmsNorm");
