//! 2-D transposed convolution (`torch.nn.ConvTranspose2d`, ONNX `ConvTranspose`) as the
//! adjoint of a [`Conv2d`]: its forward pass is that convolution's transpose (col2im) and its
//! transpose is that convolution's forward pass (im2col and one matrix product), so it runs
//! on the same kernels and needs no loop of its own.

use super::{affine_forward, affine_gradient, Affine, Class, Conv2d, Conv2dConfig, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::checks::{check_finite, per_sample};
use ndarray::{ArcArray, ArcArray1, Array1, Array4, ArrayD, ArrayView1, ArrayViewD, Ix4};

/// Stride, padding, dilation, groups and output padding of a [`ConvTranspose2d`], sizes as
/// (height, width).
///
/// The default is stride 1, padding 0, dilation 1, one group, no output padding, as
/// `torch.nn.ConvTranspose2d`. Padding removes rows and columns from the output (ONNX `pads`,
/// possibly different at both ends); `output_padding` adds rows and columns at the end, and
/// must be smaller than the stride.
///
/// ```
/// use relevance::ConvTranspose2dConfig;
/// let c = ConvTranspose2dConfig::default().stride(2).padding(1).output_padding(1);
/// assert_eq!((c.stride, c.padding, c.output_padding), ((2, 2), (1, 1), (1, 1)));
/// assert_eq!(c.pad_end(), (1, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dConfig {
    /// Step between the input positions' places in the output, (height, width).
    pub stride: (usize, usize),
    /// Rows and columns removed at the start (top, left) of the output, and at its end too
    /// unless `padding_end` is set.
    pub padding: (usize, usize),
    /// Rows and columns removed at the end (bottom, right), if not `padding`.
    pub padding_end: Option<(usize, usize)>,
    /// Spacing between kernel taps, (height, width).
    pub dilation: (usize, usize),
    /// Groups of channels convolved separately (PyTorch's `groups`).
    pub groups: usize,
    /// Rows and columns added at the end of the output (PyTorch's `output_padding`, ONNX
    /// `output_padding`); each smaller than the stride.
    pub output_padding: (usize, usize),
}

impl Default for ConvTranspose2dConfig {
    fn default() -> Self {
        ConvTranspose2dConfig {
            stride: (1, 1),
            padding: (0, 0),
            padding_end: None,
            dilation: (1, 1),
            groups: 1,
            output_padding: (0, 0),
        }
    }
}

impl ConvTranspose2dConfig {
    /// The same stride in both directions.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    /// The same padding on all sides.
    pub fn padding(mut self, p: usize) -> Self {
        (self.padding, self.padding_end) = ((p, p), None);
        self
    }
    /// Padding (top, left) at the start and (bottom, right) at the end of the output.
    pub fn pads(mut self, begin: (usize, usize), end: (usize, usize)) -> Self {
        (self.padding, self.padding_end) = (begin, Some(end));
        self
    }
    /// The same dilation in both directions.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }
    /// Channels in `g` groups convolved separately.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// The same output padding in both directions.
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = (p, p);
        self
    }
    /// The padding at the end of the output, (bottom, right).
    pub fn pad_end(&self) -> (usize, usize) {
        self.padding_end.unwrap_or(self.padding)
    }
}

/// A 2-D transposed convolution, as `torch.nn.ConvTranspose2d` (and ONNX `ConvTranspose`):
/// each input position adds its kernel-weighted values into a window of the output.
///
/// The weight is in PyTorch layout `[in, out / groups, kh, kw]` (axis 1 is the output
/// channel). The layer is the transpose (adjoint) of the [`Conv2d`] that reads the same
/// tensor as `[out' = in, in' / groups = out / groups, kh, kw]` with the same stride,
/// padding, dilation and groups: its forward pass is that convolution's transpose and its
/// transpose is that convolution, on the same im2col/col2im kernels. It is
/// [`Class::Convolution`], so composites treat it as a convolution, as zennit does
/// (`zennit.types.Convolution` includes `ConvTranspose2d`), and every rule works through
/// its [`Affine`] pair unchanged.
///
/// # Shapes
/// Input `[N, in, H, W]`, output `[N, out, H', W']` with
/// `H' = (H − 1)·stride − pad_top − pad_bottom + dil·(kh − 1) + output_padding + 1`
/// (likewise W'), as in the PyTorch documentation of `ConvTranspose2d` and the ONNX
/// operator specification of `ConvTranspose`:
/// `output_shape[i] = stride[i] * (input_size[i] - 1) + output_padding[i] +
/// ((kernel_shape[i] - 1) * dilations[i] + 1) - pads[start_i] - pads[end_i]`.
///
/// # Example
/// ```
/// use ndarray::{array, Array4};
/// use relevance::{ConvTranspose2d, ConvTranspose2dConfig, Layer};
/// # fn main() -> relevance::Result<()> {
/// // A 2×2 kernel of ones with stride 2: each input value fills its own 2×2 block.
/// let up = ConvTranspose2d::new(Array4::<f64>::ones((1, 1, 2, 2)), None, ConvTranspose2dConfig::default().stride(2))?;
/// let y = up.forward(array![[[[1.0, 2.0]]]].into_dyn().view())?;
/// assert_eq!(y, array![[[[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConvTranspose2d<F: Float = f32> {
    /// The convolution whose transpose this layer is (same weight, no bias).
    adjoint: Conv2d<F>,
    bias: Option<ArcArray1<F>>,
    config: ConvTranspose2dConfig,
}

fn invalid(reason: String) -> Error {
    Error::InvalidLayer {
        layer: "ConvTranspose2d",
        reason,
    }
}

impl<F: Float> ConvTranspose2d<F> {
    /// Builds the layer from a weight `[in, out / groups, kh, kw]`, an optional bias `[out]`
    /// and the stride, padding, dilation, groups and output padding.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a zero dimension, stride, dilation or group count, input
    /// channels not divisible by the groups, or an output padding not smaller than the
    /// stride; [`Error::Shape`] for a bias of the wrong length; [`Error::NonFinite`] for NaN
    /// or infinite parameters.
    pub fn new(weight: Array4<F>, bias: Option<Array1<F>>, config: ConvTranspose2dConfig) -> Result<Self> {
        Self::from_shared(weight.into_shared(), bias.map(Array1::into_shared), config)
    }

    /// [`ConvTranspose2d::new`] with parameters that other layers may share (the layer keeps
    /// a reference, as [`Conv2d::from_shared`]).
    ///
    /// # Errors
    /// As [`ConvTranspose2d::new`].
    pub fn from_shared(
        weight: ArcArray<F, Ix4>,
        bias: Option<ArcArray1<F>>,
        config: ConvTranspose2dConfig,
    ) -> Result<Self> {
        let shape = weight.shape().to_vec();
        if shape.contains(&0) {
            return Err(invalid(format!("weight shape {shape:?} has a zero dimension")));
        }
        let ConvTranspose2dConfig {
            stride,
            dilation,
            groups,
            output_padding,
            ..
        } = config;
        if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
            return Err(invalid(format!(
                "stride {stride:?} and dilation {dilation:?} must be positive"
            )));
        }
        if groups == 0 || shape[0] % groups != 0 {
            return Err(invalid(format!(
                "{groups} groups must be positive and divide the {} input channels",
                shape[0]
            )));
        }
        if output_padding.0 >= stride.0 || output_padding.1 >= stride.1 {
            return Err(invalid(format!(
                "output padding {output_padding:?} must be smaller than the stride {stride:?}"
            )));
        }
        check_finite("ConvTranspose2d weight", &weight.view().into_dyn())?;
        let out = shape[1]
            .checked_mul(groups)
            .ok_or_else(|| invalid("too many channels".into()))?;
        if let Some(b) = &bias {
            if b.len() != out {
                return Err(Error::Shape {
                    what: "ConvTranspose2d bias".into(),
                    expected: vec![out],
                    got: b.shape().to_vec(),
                });
            }
            check_finite("ConvTranspose2d bias", &b.view().into_dyn())?;
        }
        let conv = Conv2dConfig {
            stride,
            dilation,
            groups,
            ..Conv2dConfig::default().pads(config.padding, config.pad_end())
        };
        let adjoint = Conv2d::from_shared(weight, None, conv)?;
        Ok(ConvTranspose2d {
            adjoint,
            bias,
            config,
        })
    }

    /// Stride, padding, dilation, groups and output padding.
    pub fn config(&self) -> ConvTranspose2dConfig {
        self.config
    }

    /// The convolution this layer is the transpose of: the same weight read as
    /// `[in, out / groups, kh, kw]` = Conv2d's `[out', in' / groups, kh, kw]`, no bias.
    pub fn adjoint(&self) -> &Conv2d<F> {
        &self.adjoint
    }

    fn in_channels(&self) -> usize {
        Affine::weight(&self.adjoint).shape()[0]
    }

    fn out_channels(&self) -> usize {
        Affine::weight(&self.adjoint).shape()[1] * self.config.groups
    }

    /// Checks a substituted weight against the layer's own shape.
    fn check_weight(&self, w: &ArrayViewD<'_, F>) -> Result<()> {
        let own = Affine::weight(&self.adjoint);
        if w.shape() != own.shape() {
            return Err(Error::Shape {
                what: "ConvTranspose2d substituted weight".into(),
                expected: own.shape().to_vec(),
                got: w.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// Checks a batch-first array against a per-sample shape.
    fn check_batch(what: &str, a: &ArrayViewD<'_, F>, per_sample: &[usize]) -> Result<()> {
        if a.ndim() != 4 || a.shape()[1..] != *per_sample {
            return Err(Error::Shape {
                what: what.into(),
                expected: std::iter::once(0).chain(per_sample.iter().copied()).collect(),
                got: a.shape().to_vec(),
            });
        }
        if a.shape()[0] == 0 {
            return Err(Error::EmptyBatch);
        }
        Ok(())
    }
}

impl<F: Float> Layer<F> for ConvTranspose2d<F> {
    fn name(&self) -> String {
        let w = Affine::weight(&self.adjoint);
        let groups = match self.config.groups {
            1 => String::new(),
            g => format!(", {g} groups"),
        };
        format!(
            "ConvTranspose2d({}→{}, {}×{}{groups})",
            self.in_channels(),
            self.out_channels(),
            w.shape()[2],
            w.shape()[3]
        )
    }

    fn class(&self) -> Class<'_, F> {
        Class::Convolution(self)
    }

    /// `[out, H', W']` for an input `[in, H, W]` (formula in the type's docs).
    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if input_shape.len() != 3 {
            return Err(Error::Rank {
                what: "ConvTranspose2d input (per sample, [C, H, W])".into(),
                expected: 3,
                got: input_shape.len(),
                shape: input_shape.to_vec(),
            });
        }
        if input_shape[0] != self.in_channels() {
            return Err(Error::Shape {
                what: "ConvTranspose2d input channels (per sample)".into(),
                expected: vec![self.in_channels(), input_shape[1], input_shape[2]],
                got: input_shape.to_vec(),
            });
        }
        let c = &self.config;
        let w = Affine::weight(&self.adjoint);
        let end = c.pad_end();
        // PyTorch ConvTranspose2d docs / ONNX ConvTranspose spec:
        // out = (in − 1)·stride − pad_begin − pad_end + dilation·(k − 1) + output_padding + 1
        let size = |len: usize, s: usize, d: usize, k: usize, op: usize, pb: usize, pe: usize| {
            len.checked_sub(1)?
                .checked_mul(s)?
                .checked_add(d.checked_mul(k - 1)?)?
                .checked_add(op + 1)?
                .checked_sub(pb.checked_add(pe)?)
                .filter(|&o| o > 0)
        };
        let ho = size(
            input_shape[1],
            c.stride.0,
            c.dilation.0,
            w.shape()[2],
            c.output_padding.0,
            c.padding.0,
            end.0,
        );
        let wo = size(
            input_shape[2],
            c.stride.1,
            c.dilation.1,
            w.shape()[3],
            c.output_padding.1,
            c.padding.1,
            end.1,
        );
        match (ho, wo) {
            (Some(ho), Some(wo)) => Ok(vec![self.out_channels(), ho, wo]),
            _ => Err(invalid(format!(
                "input {input_shape:?} gives no output: padding {:?} and {end:?} remove all of it (or the size overflows)",
                c.padding
            ))),
        }
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        affine_forward(self, input)
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        affine_gradient(self, step, grad_output)
    }

    /// The adjoint convolution's unfolded columns over this layer's output.
    fn scratch_len(&self, input_shape: &[usize]) -> usize {
        self.output_shape(input_shape)
            .map_or(0, |out| self.adjoint.scratch_len(&out))
    }
}

impl<F: Float> Affine<F> for ConvTranspose2d<F> {
    /// `[in, out / groups, kh, kw]` (PyTorch's layout for transposed convolutions).
    fn weight(&self) -> ArrayViewD<'_, F> {
        Affine::weight(&self.adjoint)
    }

    /// One value per output channel, `[out]`.
    fn bias(&self) -> Option<ArrayView1<'_, F>> {
        self.bias.as_ref().map(|b| b.view())
    }

    /// The transposed convolution: the adjoint convolution's transpose.
    fn apply_with(&self, x: ArrayViewD<'_, F>, w: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.check_weight(&w)?;
        let per = per_sample(x.shape()).to_vec();
        let out = self.output_shape(&per)?;
        Self::check_batch("ConvTranspose2d input", &x, &per)?;
        self.adjoint.apply_transpose(x, w, &out)
    }

    /// The adjoint convolution's forward pass on `s` (`[N, out, H', W']`).
    fn apply_transpose(
        &self,
        s: ArrayViewD<'_, F>,
        w: ArrayViewD<'_, F>,
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        self.check_weight(&w)?;
        let out = self.output_shape(input_shape)?;
        Self::check_batch("ConvTranspose2d output relevance", &s, &out)?;
        let back = self.adjoint.apply_with(s, w)?;
        // output padding < stride: the convolution maps H' back onto H exactly
        debug_assert_eq!(&back.shape()[1..], input_shape);
        Ok(back)
    }

    /// One im2col of the output-side arrays for all terms is not possible (each term has
    /// its own `s`); the terms go through the adjoint convolution one by one.
    fn apply_transpose_sum(
        &self,
        terms: &[(ArrayViewD<'_, F>, ArrayViewD<'_, F>)],
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        let mut sum: Option<ArrayD<F>> = None;
        for (s, w) in terms {
            let c = self.apply_transpose(s.clone(), w.clone(), input_shape)?;
            match sum.as_mut() {
                None => sum = Some(c),
                Some(acc) => *acc += &c,
            }
        }
        sum.ok_or_else(|| Error::Unsupported {
            rule: "ConvTranspose2d".into(),
            reason: "a sum of transposed maps needs at least one term".into(),
        })
    }

    fn with_parameters(&self, weight: ArrayD<F>, bias: Array1<F>) -> Option<Result<Box<dyn Layer<F>>>> {
        let shape = weight.shape().to_vec();
        Some(match weight.into_dimensionality::<Ix4>() {
            Ok(w) => {
                ConvTranspose2d::new(w, Some(bias), self.config).map(|c| Box::new(c) as Box<dyn Layer<F>>)
            }
            Err(_) => Err(Error::Shape {
                what: "ConvTranspose2d weight".into(),
                expected: Affine::weight(self).shape().to_vec(),
                got: shape,
            }),
        })
    }

    /// Output channel `k·out/g + j` is column `j` of the rows of group `k`.
    fn scale_output_channels(&self, scale: ArrayView1<'_, F>) -> Option<ArrayD<F>> {
        if scale.len() != self.out_channels() {
            return None;
        }
        let mut w = Affine::weight(self).to_owned();
        let (rows, per) = (self.in_channels() / self.config.groups, w.shape()[1]);
        for (i, mut row) in w.outer_iter_mut().enumerate() {
            let k = i / rows;
            for (j, mut col) in row.outer_iter_mut().enumerate() {
                let s = scale[k * per + j];
                col.mapv_inplace(|v| v * s);
            }
        }
        Some(w)
    }
}
