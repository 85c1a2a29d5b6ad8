//! 1-D max and average pooling over the length axis (`[N, C, L]`), as 2-D pools of height 1.

use super::length::{lift, lift_shape, lift_step, lower, lower_shape};
use super::{AvgPool2d, Class, Layer, LinearMap, MaxPool2d, Select, Step};
use crate::error::Result;
use crate::float::Float;
use ndarray::{ArrayD, ArrayViewD};

/// 1-D max-pooling, as `torch.nn.MaxPool1d` (kernel, stride, zero padding, `ceil_mode`): a
/// [`MaxPool2d`] of height 1 on the view `[N, C, 1, L]`, so LRP routes relevance to the
/// maximum and DeepLIFT applies its cross-max rule, as at a 2-D max-pool.
///
/// # Shapes
/// Input `[N, C, L]`, output `[N, C, L']` with `L' = ⌊(L + pad_begin + pad_end − k) / stride⌋ + 1`.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{Layer, MaxPool1d};
/// # fn main() -> relevance::Result<()> {
/// let pool = MaxPool1d::new(2, 2, 0)?;
/// let y = Layer::<f64>::forward(&pool, array![[[1.0, 4.0, 3.0, 2.0]]].into_dyn().view())?;
/// assert_eq!(y, array![[[4.0, 3.0]]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool1d {
    inner: MaxPool2d,
}

impl MaxPool1d {
    /// Builds the layer from kernel, stride and padding (PyTorch's `MaxPool1d(k, stride,
    /// padding)`).
    ///
    /// # Errors
    /// As [`MaxPool2d::new`]: a zero kernel or stride, or a padding above half the kernel.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        Ok(MaxPool1d {
            inner: MaxPool2d::new((1, kernel), (1, stride), (0, padding))?,
        })
    }

    /// The same pool padded by `begin` before and `end` after the input (ONNX `pads`).
    ///
    /// # Errors
    /// As [`MaxPool2d::with_pads`]: a padding as large as the kernel.
    pub fn with_pads(self, begin: usize, end: usize) -> Result<Self> {
        Ok(MaxPool1d {
            inner: self.inner.with_pads((0, begin), (0, end))?,
        })
    }

    /// The same pool with PyTorch's `ceil_mode`.
    pub fn with_ceil_mode(self, ceil_mode: bool) -> Self {
        MaxPool1d {
            inner: self.inner.with_ceil_mode(ceil_mode),
        }
    }

    /// Kernel, stride and padding before the input.
    pub fn params(&self) -> (usize, usize, usize) {
        let (k, s, p) = self.inner.params();
        (k.1, s.1, p.1)
    }

    /// The same pool as a [`MaxPool2d`] of height 1, for inputs `[N, C, 1, L]`.
    pub fn as_pool2d(&self) -> &MaxPool2d {
        &self.inner
    }
}

impl<F: Float> Layer<F> for MaxPool1d {
    fn name(&self) -> String {
        let (k, s, _) = self.params();
        format!("MaxPool1d({k}, stride {s})")
    }

    fn class(&self) -> Class<'_, F> {
        Class::MaxPool(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let shape = lift_shape("MaxPool1d input", input_shape)?;
        Ok(lower_shape(Layer::<F>::output_shape(&self.inner, &shape)?))
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Ok(lower(self.inner.forward(lift("MaxPool1d input", input)?)?))
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let step = lift_step("MaxPool1d", step)?;
        Ok(lower(self.inner.gradient(
            &step,
            lift("MaxPool1d output gradient", grad_output)?,
        )?))
    }
}

impl<F: Float> Select<F> for MaxPool1d {
    fn route(&self, input: &ArrayViewD<'_, F>, values: &ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let input = lift("MaxPool1d input", input.clone())?;
        let values = lift("MaxPool1d output values", values.clone())?;
        Ok(lower(Select::route(&self.inner, &input, &values)?))
    }
}

/// 1-D average pooling, as `torch.nn.AvgPool1d` and `AdaptiveAvgPool1d`: an [`AvgPool2d`] of
/// height 1 on the view `[N, C, 1, L]` (a parameter-free linear map: zennit's `Norm` under LRP,
/// the Linear rule under DeepLIFT).
///
/// # Shapes
/// Input `[N, C, L]`, output `[N, C, L']`; [`AvgPool1d::global`] gives `[N, C, 1]`.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{AvgPool1d, Layer};
/// # fn main() -> relevance::Result<()> {
/// let x = array![[[1.0_f64, 3.0, 5.0, 7.0]]].into_dyn();
/// assert_eq!(AvgPool1d::global().forward(x.view())?, array![[[4.0]]].into_dyn());
/// assert_eq!(AvgPool1d::new(2, 2, 0)?.forward(x.view())?, array![[[2.0, 6.0]]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool1d {
    inner: AvgPool2d,
}

impl AvgPool1d {
    /// Fixed windows from kernel, stride and padding, with PyTorch's defaults
    /// `ceil_mode = false`, `count_include_pad = true`.
    ///
    /// # Errors
    /// As [`AvgPool2d::new`]: a zero kernel or stride, or a padding above half the kernel.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        Ok(AvgPool1d {
            inner: AvgPool2d::new((1, kernel), (1, stride), (0, padding))?,
        })
    }

    /// Windows whose output length is `len` whatever the input length, as
    /// `torch.nn.AdaptiveAvgPool1d`.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`](crate::Error::InvalidLayer) for a zero length.
    pub fn adaptive(len: usize) -> Result<Self> {
        Ok(AvgPool1d {
            inner: AvgPool2d::adaptive((1, len))?,
        })
    }

    /// The mean over the length axis, `[N, C, 1]` (`AdaptiveAvgPool1d(1)`, ONNX
    /// `GlobalAveragePool` on 3-D tensors; `x.mean(dim=2)` followed by a flatten).
    pub fn global() -> Self {
        AvgPool1d {
            inner: AvgPool2d::global(),
        }
    }

    /// The same pool with PyTorch's `ceil_mode` (no effect on adaptive pooling).
    pub fn with_ceil_mode(self, ceil: bool) -> Self {
        AvgPool1d {
            inner: self.inner.with_ceil_mode(ceil),
        }
    }

    /// The same pool with PyTorch's `count_include_pad` (no effect on adaptive pooling).
    pub fn with_count_include_pad(self, include: bool) -> Self {
        AvgPool1d {
            inner: self.inner.with_count_include_pad(include),
        }
    }

    /// The same pool padded by `begin` before and `end` after the input (ONNX `pads`).
    ///
    /// # Errors
    /// As [`AvgPool2d::with_pads`]: a padding above half the kernel.
    pub fn with_pads(self, begin: usize, end: usize) -> Result<Self> {
        Ok(AvgPool1d {
            inner: self.inner.with_pads((0, begin), (0, end))?,
        })
    }

    /// The same pool as an [`AvgPool2d`] of height 1, for inputs `[N, C, 1, L]`.
    pub fn as_pool2d(&self) -> &AvgPool2d {
        &self.inner
    }
}

impl<F: Float> Layer<F> for AvgPool1d {
    fn name(&self) -> String {
        Layer::<F>::name(&self.inner).replace("2d", "1d")
    }

    fn class(&self) -> Class<'_, F> {
        Class::AvgPool(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let shape = lift_shape("AvgPool1d input", input_shape)?;
        Ok(lower_shape(Layer::<F>::output_shape(&self.inner, &shape)?))
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Ok(lower(self.inner.forward(lift("AvgPool1d input", input)?)?))
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let step = lift_step("AvgPool1d", step)?;
        Ok(lower(self.inner.gradient(
            &step,
            lift("AvgPool1d output gradient", grad_output)?,
        )?))
    }
}

impl<F: Float> LinearMap<F> for AvgPool1d {
    fn transpose(&self, s: ArrayViewD<'_, F>, input_shapes: &[&[usize]]) -> Result<Vec<ArrayD<F>>> {
        let s = lift("AvgPool1d output relevance", s)?;
        let shapes = input_shapes
            .iter()
            .map(|s| lift_shape("AvgPool1d input", s))
            .collect::<Result<Vec<_>>>()?;
        let shapes: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
        Ok(LinearMap::transpose(&self.inner, s, &shapes)?
            .into_iter()
            .map(lower)
            .collect())
    }
}
