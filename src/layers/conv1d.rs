//! 1-D convolution over the length axis (`[N, C, L]`, as genomics models use on one-hot DNA),
//! as a [`Conv2d`] of height 1.

use super::length::{lift, lift_shape, lower, lower_shape};
use super::{Affine, Class, Conv2d, Conv2dConfig, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArcArray, ArcArray1, Array1, Array3, ArrayD, ArrayView1, ArrayViewD, Axis, Ix3};

/// Stride, zero padding, dilation and groups of a [`Conv1d`].
///
/// The default is stride 1, padding 0, dilation 1, one group, as `torch.nn.Conv1d`.
/// [`Conv1dConfig::same`] is PyTorch's `padding="same"` (stride 1): `dilation·(k − 1)` zeros
/// in all, the odd one after the input.
///
/// ```
/// use relevance::Conv1dConfig;
/// let c = Conv1dConfig::default().dilation(4).same();
/// assert_eq!((c.stride, c.dilation, c.groups), (1, 4, 1));
/// assert_eq!(c.pads_for(3), (4, 4)); // a kernel of 3 taps, 4 apart
/// assert_eq!(Conv1dConfig::default().same().pads_for(4), (1, 2));
/// assert_eq!(Conv1dConfig::default().pads(2, 0).pads_for(5), (2, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dConfig {
    /// Step between windows.
    pub stride: usize,
    /// Zeros added before the input, and after it too unless `padding_end` is set.
    pub padding: usize,
    /// Zeros added after the input, if not `padding`.
    pub padding_end: Option<usize>,
    /// PyTorch's `padding="same"`: the padding follows from the kernel and the dilation
    /// (and `padding`, `padding_end` are ignored).
    pub same: bool,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Groups of channels convolved separately (PyTorch's `groups`).
    pub groups: usize,
}

impl Default for Conv1dConfig {
    fn default() -> Self {
        Conv1dConfig {
            stride: 1,
            padding: 0,
            padding_end: None,
            same: false,
            dilation: 1,
            groups: 1,
        }
    }
}

impl Conv1dConfig {
    /// The step between windows.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }
    /// The same zero padding at both ends.
    pub fn padding(mut self, p: usize) -> Self {
        (self.padding, self.padding_end, self.same) = (p, None, false);
        self
    }
    /// Zero padding before and after the input (ONNX `pads`).
    pub fn pads(mut self, begin: usize, end: usize) -> Self {
        (self.padding, self.padding_end, self.same) = (begin, Some(end), false);
        self
    }
    /// PyTorch's `padding="same"` (stride 1 only): the output is as long as the input.
    pub fn same(mut self) -> Self {
        self.same = true;
        self
    }
    /// The spacing between kernel taps.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }
    /// Channels in `g` groups convolved separately (`g` = input channels: depthwise).
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// The padding (before, after) for a kernel of `k` taps.
    pub fn pads_for(&self, k: usize) -> (usize, usize) {
        if self.same {
            let total = self.dilation.saturating_mul(k.saturating_sub(1));
            (total / 2, total - total / 2)
        } else {
            (self.padding, self.padding_end.unwrap_or(self.padding))
        }
    }
}

/// A 1-D convolution, as `torch.nn.Conv1d` (zero padding, `padding="same"`, dilation,
/// groups): a [`Conv2d`] of height 1 on the view `[N, C, 1, L]`, so every rule and DeepLIFT
/// treat it as they treat a 2-D convolution (its class is `Convolution`).
///
/// # Shapes
/// Weight `[out, in / groups, k]`; input `[N, in, L]`, output `[N, out, L']` with
/// `L' = (L + pad_begin + pad_end − dil·(k − 1) − 1) / stride + 1`.
///
/// # Example
/// ```
/// use ndarray::{array, Array3};
/// use relevance::{Conv1d, Conv1dConfig, Layer};
/// # fn main() -> relevance::Result<()> {
/// // Two taps 4 apart, "same" padding: y[l] = x[l − 2] + x[l + 2], zeros outside.
/// let conv = Conv1d::new(Array3::<f64>::ones((1, 1, 2)), None, Conv1dConfig::default().dilation(4).same())?;
/// let y = conv.forward(array![[[1.0, 2.0, 3.0, 4.0, 5.0]]].into_dyn().view())?;
/// assert_eq!(y, array![[[3.0, 4.0, 6.0, 2.0, 3.0]]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Conv1d<F: Float = f32> {
    /// The weight `[out, in / groups, 1, k]`.
    inner: Conv2d<F>,
    config: Conv1dConfig,
}

impl<F: Float> Conv1d<F> {
    /// Builds the layer from a weight `[out, in / groups, k]`, an optional bias `[out]` and
    /// the stride, padding, dilation and groups.
    ///
    /// # Errors
    /// As [`Conv2d::new`]; also [`Error::InvalidLayer`] for `same` padding with a stride
    /// other than 1 (PyTorch refuses it too).
    pub fn new(weight: Array3<F>, bias: Option<Array1<F>>, config: Conv1dConfig) -> Result<Self> {
        Self::from_shared(weight.into_shared(), bias.map(Array1::into_shared), config)
    }

    /// [`Conv1d::new`] with parameters that other layers may share (the layer keeps a
    /// reference, as [`Conv2d::from_shared`]).
    ///
    /// # Errors
    /// As [`Conv1d::new`].
    pub fn from_shared(
        weight: ArcArray<F, Ix3>,
        bias: Option<ArcArray1<F>>,
        config: Conv1dConfig,
    ) -> Result<Self> {
        if config.same && config.stride != 1 {
            return Err(Error::InvalidLayer {
                layer: "Conv1d",
                reason: format!("padding \"same\" needs stride 1, got {}", config.stride),
            });
        }
        let (begin, end) = config.pads_for(weight.shape()[2]);
        let config2 = Conv2dConfig {
            stride: (1, config.stride),
            padding: (0, begin),
            dilation: (1, config.dilation),
            groups: config.groups,
            padding_end: Some((0, end)),
        };
        let inner = Conv2d::from_shared(weight.insert_axis(Axis(2)), bias, config2)?;
        Ok(Conv1d { inner, config })
    }

    /// Stride, padding, dilation and groups.
    pub fn config(&self) -> Conv1dConfig {
        self.config
    }

    /// The same convolution as a [`Conv2d`] of height 1 (weight `[out, in / groups, 1, k]`),
    /// for inputs `[N, C, 1, L]`.
    pub fn as_conv2d(&self) -> &Conv2d<F> {
        &self.inner
    }

    /// A 3-D weight `[out, in / groups, k]` as the inner layer's 4-D one.
    fn lift_weight<'a>(&self, w: ArrayViewD<'a, F>) -> Result<ArrayViewD<'a, F>> {
        if w.ndim() != 3 {
            return Err(Error::Shape {
                what: "Conv1d substituted weight".into(),
                expected: Affine::weight(self).shape().to_vec(),
                got: w.shape().to_vec(),
            });
        }
        Ok(w.insert_axis(Axis(2)))
    }
}

impl<F: Float> Layer<F> for Conv1d<F> {
    fn name(&self) -> String {
        let w = Affine::weight(self);
        let extra = match (self.config.dilation, self.config.groups) {
            (1, 1) => String::new(),
            (d, 1) => format!(", dilation {d}"),
            (1, g) => format!(", {g} groups"),
            (d, g) => format!(", dilation {d}, {g} groups"),
        };
        format!(
            "Conv1d({}→{}, k {}{extra})",
            w.shape()[1] * self.config.groups,
            w.shape()[0],
            w.shape()[2]
        )
    }

    fn class(&self) -> Class<'_, F> {
        Class::Convolution(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let shape = lift_shape("Conv1d input", input_shape)?;
        Ok(lower_shape(self.inner.output_shape(&shape)?))
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Ok(lower(self.inner.forward(lift("Conv1d input", input)?)?))
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let step = super::length::lift_step("Conv1d", step)?;
        Ok(lower(
            self.inner
                .gradient(&step, lift("Conv1d output gradient", grad_output)?)?,
        ))
    }

    fn scratch_len(&self, input_shape: &[usize]) -> usize {
        lift_shape("Conv1d input", input_shape).map_or(0, |s| self.inner.scratch_len(&s))
    }
}

impl<F: Float> Affine<F> for Conv1d<F> {
    /// `[out, in / groups, k]`.
    fn weight(&self) -> ArrayViewD<'_, F> {
        Affine::weight(&self.inner).index_axis_move(Axis(2), 0)
    }

    fn bias(&self) -> Option<ArrayView1<'_, F>> {
        Affine::bias(&self.inner)
    }

    fn apply_with(&self, x: ArrayViewD<'_, F>, w: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let (x, w) = (lift("Conv1d input", x)?, self.lift_weight(w)?);
        Ok(lower(self.inner.apply_with(x, w)?))
    }

    fn apply_transpose(
        &self,
        s: ArrayViewD<'_, F>,
        w: ArrayViewD<'_, F>,
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        let (s, w) = (lift("Conv1d output relevance", s)?, self.lift_weight(w)?);
        let shape = lift_shape("Conv1d input", input_shape)?;
        Ok(lower(self.inner.apply_transpose(s, w, &shape)?))
    }

    fn weight_columns_are_input_channels(&self) -> bool {
        self.inner.weight_columns_are_input_channels()
    }

    /// The inner convolution's: a kept `[out, in / groups, k]` weight is the same memory as
    /// its `[out, in / groups, 1, k]` one.
    fn kept_weights(&self) -> Option<&crate::layers::KeptWeights<F>> {
        self.inner.kept_weights()
    }

    fn apply_ones(&self, w: ArrayViewD<'_, F>, input_shape: &[usize]) -> Result<ArrayD<F>> {
        let shape = lift_shape("Conv1d input", input_shape)?;
        Ok(lower(self.inner.apply_ones(self.lift_weight(w)?, &shape)?))
    }

    fn apply_many(&self, x: ArrayViewD<'_, F>, ws: &[ArrayViewD<'_, F>]) -> Result<Vec<ArrayD<F>>> {
        let x = lift("Conv1d input", x)?;
        let ws = ws
            .iter()
            .map(|w| self.lift_weight(w.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.inner.apply_many(x, &ws)?.into_iter().map(lower).collect())
    }

    fn with_parameters(&self, weight: ArrayD<F>, bias: Array1<F>) -> Option<Result<Box<dyn Layer<F>>>> {
        let shape = weight.shape().to_vec();
        Some(match weight.into_dimensionality::<Ix3>() {
            Ok(w) => Conv1d::new(w, Some(bias), self.config).map(|c| Box::new(c) as Box<dyn Layer<F>>),
            Err(_) => Err(Error::Shape {
                what: "Conv1d weight".into(),
                expected: Affine::weight(self).shape().to_vec(),
                got: shape,
            }),
        })
    }

    fn apply_transpose_sum(
        &self,
        terms: &[(ArrayViewD<'_, F>, ArrayViewD<'_, F>)],
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        let terms = terms
            .iter()
            .map(|(s, w)| {
                Ok((
                    lift("Conv1d output relevance", s.clone())?,
                    self.lift_weight(w.clone())?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let shape = lift_shape("Conv1d input", input_shape)?;
        Ok(lower(self.inner.apply_transpose_sum(&terms, &shape)?))
    }
}
