//! Local response normalisation across channels (AlexNet, CaffeNet, GoogLeNet v1).

#[cfg(doc)]
use super::Category; // doc links
use super::{Class, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, ArrayViewD, Axis};

/// `y_c = x_c / (k + α/n · Σ_{j ∈ W(c)} x_j²)^β` over a window `W(c)` of channels around `c`
/// (PyTorch's `nn.LocalResponseNorm(n, α, β, k)`, ONNX `LRN`).
///
/// PyTorch's window is `[c − ⌊n/2⌋, c + ⌊(n−1)/2⌋]` ([`LocalResponseNorm::new`]); ONNX's is
/// `[c − ⌊(n−1)/2⌋, c + ⌈(n−1)/2⌉]` ([`LocalResponseNorm::onnx`]); they differ only for an
/// even `n`. Channels outside `[0, C)` count as zero (the divisor stays `n`).
///
/// A normalisation, like an unmerged batch norm ([`Category::BatchNorm`](crate::Category::BatchNorm)): the LRP rules pass
/// relevance through it (conserving) and DeepLIFT applies Rescale (conserving). zennit and
/// captum have no rule for it and take its gradient; select
/// [`Gradient`](crate::Gradient) for it by name to reproduce them.
///
/// # Shapes
/// `[N, C, ...]` → the same.
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, LocalResponseNorm};
/// # fn main() -> relevance::Result<()> {
/// let lrn = LocalResponseNorm::new(2, 1.0, 1.0, 1.0)?;
/// // channel 0 sees channel 0 only (the window [c − 1, c]): 2 / (1 + 4/2)
/// let y = Layer::<f64>::forward(&lrn, array![[2.0, 0.0]].into_dyn().view())?;
/// assert_eq!(y, array![[2.0 / 3.0, 0.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalResponseNorm {
    size: usize,
    front: usize,
    back: usize,
    alpha: f64,
    beta: f64,
    k: f64,
}

impl LocalResponseNorm {
    /// PyTorch's `nn.LocalResponseNorm(size, alpha, beta, k)`.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a zero size, non-finite parameters, or `k ≤ 0` (the
    /// divisor must stay positive).
    pub fn new(size: usize, alpha: f64, beta: f64, k: f64) -> Result<Self> {
        Self::with_window(size, size / 2, (size.max(1) - 1) / 2, alpha, beta, k)
    }

    /// ONNX's `LRN(size, alpha, beta, bias)`.
    ///
    /// # Errors
    /// As [`LocalResponseNorm::new`].
    pub fn onnx(size: usize, alpha: f64, beta: f64, bias: f64) -> Result<Self> {
        let front = (size.max(1) - 1) / 2;
        Self::with_window(size, front, size.max(1) - 1 - front, alpha, beta, bias)
    }

    fn with_window(size: usize, front: usize, back: usize, alpha: f64, beta: f64, k: f64) -> Result<Self> {
        let valid =
            size != 0 && alpha.is_finite() && alpha >= 0.0 && beta.is_finite() && k.is_finite() && k > 0.0;
        if !valid {
            return Err(Error::InvalidLayer {
                layer: "LocalResponseNorm",
                reason: format!(
                    "size {size} ≥ 1, alpha {alpha} ≥ 0, beta {beta} finite and k {k} > 0 required"
                ),
            });
        }
        Ok(LocalResponseNorm {
            size,
            front,
            back,
            alpha,
            beta,
            k,
        })
    }

    /// `D_c = k + α/n Σ_{W(c)} x²` for every position.
    fn divisor<F: Float>(&self, x: &ArrayViewD<'_, F>) -> ArrayD<F> {
        let c = x.shape()[1];
        let sq = x.mapv(|v| v * v);
        let mut d = ArrayD::from_elem(x.raw_dim(), F::lit(self.k));
        let scale = F::lit(self.alpha / self.size as f64);
        for ch in 0..c {
            let lo = ch.saturating_sub(self.front);
            let hi = (ch + self.back).min(c - 1);
            let mut out = d.index_axis_mut(Axis(1), ch);
            for j in lo..=hi {
                out.zip_mut_with(&sq.index_axis(Axis(1), j), |o, &s| *o += scale * s);
            }
        }
        d
    }

    fn check<F: Float>(&self, what: &str, a: &ArrayViewD<'_, F>) -> Result<()> {
        if a.ndim() < 2 || a.shape()[1] == 0 {
            return Err(Error::Shape {
                what: format!("LocalResponseNorm {what} ([N, C, ...])"),
                expected: vec![],
                got: a.shape().to_vec(),
            });
        }
        Ok(())
    }
}

impl<F: Float> Layer<F> for LocalResponseNorm {
    fn name(&self) -> String {
        format!(
            "LocalResponseNorm({}, α {}, β {}, k {})",
            self.size, self.alpha, self.beta, self.k
        )
    }

    fn class(&self) -> Class<'_, F> {
        Class::BatchNorm(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if input_shape.is_empty() {
            return Err(Error::Shape {
                what: "LocalResponseNorm input (channels first)".into(),
                expected: vec![],
                got: input_shape.to_vec(),
            });
        }
        Ok(input_shape.to_vec())
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.check("input", &input)?;
        let d = self.divisor(&input);
        let beta = F::lit(self.beta);
        let mut y = input.to_owned();
        y.zip_mut_with(&d, |v, &dv| *v /= dv.powf(beta));
        Ok(y)
    }

    /// `∂L/∂x_i = g_i D_i^{−β} − 2αβ/n · x_i Σ_{c: i ∈ W(c)} g_c x_c D_c^{−β−1}`.
    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.check("input", &step.input)?;
        if grad_output.shape() != step.input.shape() {
            return Err(Error::Shape {
                what: "LocalResponseNorm output gradient".into(),
                expected: step.input.shape().to_vec(),
                got: grad_output.shape().to_vec(),
            });
        }
        let x = &step.input;
        let d = self.divisor(x);
        let beta = F::lit(self.beta);
        let one = F::one();
        // t_c = g_c x_c D_c^{−β−1}
        let mut t = grad_output.to_owned();
        t.zip_mut_with(x, |v, &xv| *v *= xv);
        t.zip_mut_with(&d, |v, &dv| *v /= dv.powf(beta + one));
        let mut g = grad_output.to_owned();
        g.zip_mut_with(&d, |v, &dv| *v /= dv.powf(beta));
        let c = x.shape()[1];
        let factor = F::lit(2.0 * self.alpha * self.beta / self.size as f64);
        for i in 0..c {
            // c with i ∈ W(c): c − front ≤ i ≤ c + back
            let lo = i.saturating_sub(self.back);
            let hi = (i + self.front).min(c - 1);
            let mut s = ArrayD::<F>::zeros(t.index_axis(Axis(1), 0).raw_dim());
            for ch in lo..=hi {
                s.zip_mut_with(&t.index_axis(Axis(1), ch), |a, &b| *a += b);
            }
            let xi = x.index_axis(Axis(1), i);
            let mut gi = g.index_axis_mut(Axis(1), i);
            ndarray::Zip::from(&mut gi)
                .and(&xi)
                .and(&s)
                .for_each(|gv, &xv, &sv| *gv -= factor * xv * sv);
        }
        Ok(g)
    }
}
