//! 2-D convolution through im2col/col2im and one matrix product, Winograd's F(2×2, 3×3) for
//! wide 3×3 stride-1 layers (F(4, 3) for 1×3 ones), one product per sample for 1×1 layers, or
//! a direct kernel for small ones.

use super::{affine_forward, affine_forward_relu, affine_gradient, Class, Fused, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::direct::Post;
use crate::kernels::im2col::Geometry;
use crate::kernels::window::window_out;
use crate::kernels::{winograd, winograd1d};
use crate::tensor::checks::check_finite;
use ndarray::{ArcArray, ArcArray1, Array1, Array4, ArrayD, ArrayView2, ArrayViewD, Ix4};
use transforms::Transformed;

mod affine;
#[cfg(test)]
pub(crate) use affine::STACK_MAX;
mod direct;
#[cfg(test)]
mod tests;
mod transforms;

/// Stride, zero padding, dilation and groups of a [`Conv2d`], sizes as (height, width).
///
/// The default is stride 1, padding 0, dilation 1, one group, as `torch.nn.Conv2d`.
/// Padding is the same at both ends of an axis unless `padding_end` says otherwise (ONNX
/// `pads` and TensorFlow's "same" padding can be asymmetric).
///
/// ```
/// use relevance::Conv2dConfig;
/// let c = Conv2dConfig::default().stride(2).padding(1);
/// assert_eq!((c.stride, c.padding, c.dilation, c.groups), ((2, 2), (1, 1), (1, 1), 1));
/// let depthwise = Conv2dConfig::default().padding(1).groups(32);
/// let asymmetric = Conv2dConfig::default().pads((0, 0), (1, 1)); // TensorFlow "same", stride 2
/// assert_eq!(asymmetric.pad_end(), (1, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Step between windows, (height, width).
    pub stride: (usize, usize),
    /// Zeros added before the input (top, left), and after it too unless `padding_end` is
    /// set.
    pub padding: (usize, usize),
    /// Spacing between kernel taps, (height, width).
    pub dilation: (usize, usize),
    /// Groups of channels convolved separately (PyTorch's `groups`; the number of input
    /// channels for a depthwise convolution).
    pub groups: usize,
    /// Zeros added after the input (bottom, right), if not `padding`.
    pub padding_end: Option<(usize, usize)>,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            padding_end: None,
        }
    }
}

impl Conv2dConfig {
    /// The same stride in both directions.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    /// The same zero padding on all sides.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = (p, p);
        self.padding_end = None;
        self
    }
    /// Zero padding (top, left) before and (bottom, right) after the input.
    pub fn pads(mut self, begin: (usize, usize), end: (usize, usize)) -> Self {
        self.padding = begin;
        self.padding_end = Some(end);
        self
    }
    /// The same dilation in both directions.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }
    /// Channels in `g` groups convolved separately (`g` = input channels: depthwise).
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// The padding after the input, (bottom, right).
    pub fn pad_end(&self) -> (usize, usize) {
        self.padding_end.unwrap_or(self.padding)
    }
}

/// A 2-D convolution, as `torch.nn.Conv2d` (zero padding, grouped and depthwise included).
///
/// The weight is in PyTorch layout `[out, in / groups, kh, kw]`, shared rather than copied
/// when the layer is cloned or built with [`Conv2d::from_shared`]. The forward pass and its
/// transpose take one of these paths, chosen by the layer and the per-sample shape only (never
/// by the batch size, so that a sample gets the same bits alone and in a batch):
/// * 3×3 convolutions with stride 1, dilation 1, padding ≤ 2, at least 16 input and output
///   channels and at least 100 output positions: Winograd's F(2×2, 3×3) (Lavin & Gray 2016),
///   which needs 2.25× fewer multiplications (results agree with direct summation to about
///   1e-15 in f64); 1×3 kernels (stride 1, no vertical padding, at least 16 channels, rows of
///   at least 64 outputs): Winograd's F(4, 3);
/// * 1×1 convolutions with stride 1 and no padding: one matrix product per sample, reading
///   the input in place;
/// * small layers with stride 1 (at most 32 output channels and 512 taps per output channel)
///   on machines with AVX2 and FMA: a direct kernel, which in forward passes that keep no
///   values also applies a following ReLU and 2×2 max pool ([`Layer::forward_fused`]);
/// * otherwise im2col/col2im and one matrix product for the whole batch.
///
/// On the paths other than the direct kernel, a forward pass that keeps no values runs a
/// following ReLU in the bias pass, in place.
///
/// # Shapes
/// Input `[N, in, H, W]`, output `[N, out, H', W']` with
/// `H' = (H + pad_top + pad_bottom − dil·(kh − 1) − 1) / stride + 1` (likewise W').
/// With `groups = g`, output channels `[k·out/g, (k+1)·out/g)` see only input channels
/// `[k·in/g, (k+1)·in/g)`.
///
/// # Example
/// ```
/// use ndarray::{Array, Array4};
/// use relevance::{Conv2d, Conv2dConfig, Layer};
/// # fn main() -> relevance::Result<()> {
/// // One 2×2 kernel of ones: each output sums a 2×2 window.
/// let conv = Conv2d::new(Array4::<f64>::ones((1, 1, 2, 2)), None, Conv2dConfig::default())?;
/// let x = Array::from_shape_vec((1, 1, 2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
/// let y = conv.forward(x.into_dyn().view())?;
/// assert_eq!(y.shape(), &[1, 1, 1, 2]);
/// assert_eq!(y.as_slice().unwrap(), &[12.0, 16.0]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d<F: Float = f32> {
    /// In standard (C-order) layout.
    weight: ArcArray<F, Ix4>,
    bias: Option<ArcArray1<F>>,
    config: Conv2dConfig,
    /// The Winograd transforms of `weight` (F(4, 3) for 1×3 kernels, F(2×2, 3×3) for 3×3
    /// ones), shared by clones.
    transformed: std::sync::Arc<Transformed<F>>,
}

/// Input and output channels from which a 3×3 stride-1 convolution takes the Winograd path.
const WINOGRAD_MIN_CHANNELS: usize = 16;

/// Output positions per sample and channel (Ho·Wo) from which a 3×3 stride-1 convolution
/// takes the Winograd path. Transforming the weights costs about as much memory traffic as
/// reading them twice, which only pays off over enough output positions: the forward pass
/// keeps its transform, so that it pays from 10×10 (ResNet's 256- and 512-channel 14×14
/// layers: 1.4× and 1.2× faster at batch 8, even at batch 1; at 7×7 it is 2× slower at
/// batch 1, since the products, 16 columns wide, are bound by reading the transform).
const WINOGRAD_MIN_OUTPUTS: usize = 100;

/// Output positions per row from which a 1×3 stride-1 convolution takes the Winograd F(4, 3)
/// path (below that the six small products and the transforms cost more than they save).
const WINOGRAD_1D_MIN_OUTPUTS: usize = 64;

impl<F: Float> Conv2d<F> {
    /// Builds the layer from a weight `[out, in / groups, kh, kw]`, an optional bias
    /// `[out]` and the stride, padding, dilation and groups.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a zero dimension, stride, dilation or group count, or
    /// output channels not divisible by the groups; [`Error::Shape`] for a bias of the
    /// wrong length; [`Error::NonFinite`] for NaN or infinite parameters.
    pub fn new(weight: Array4<F>, bias: Option<Array1<F>>, config: Conv2dConfig) -> Result<Self> {
        Self::from_shared(weight.into_shared(), bias.map(Array1::into_shared), config)
    }

    /// [`Conv2d::new`] with parameters that other layers may share: the layer keeps a
    /// reference, so a weight given to many layers is stored once (a weight not in
    /// standard layout is copied into it once).
    ///
    /// # Errors
    /// As [`Conv2d::new`].
    pub fn from_shared(
        weight: ArcArray<F, Ix4>,
        bias: Option<ArcArray1<F>>,
        config: Conv2dConfig,
    ) -> Result<Self> {
        if weight.shape().contains(&0) {
            return Err(Error::InvalidLayer {
                layer: "Conv2d",
                reason: format!("weight shape {:?} has a zero dimension", weight.shape()),
            });
        }
        let Conv2dConfig {
            stride,
            dilation,
            groups,
            ..
        } = config;
        if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
            return Err(Error::InvalidLayer {
                layer: "Conv2d",
                reason: format!("stride {stride:?} and dilation {dilation:?} must be positive"),
            });
        }
        if groups == 0 || weight.shape()[0] % groups != 0 {
            return Err(Error::InvalidLayer {
                layer: "Conv2d",
                reason: format!(
                    "{groups} groups must be positive and divide the {} output channels",
                    weight.shape()[0]
                ),
            });
        }
        check_finite("Conv2d weight", &weight.view().into_dyn())?;
        if let Some(b) = &bias {
            if b.len() != weight.shape()[0] {
                return Err(Error::Shape {
                    what: "Conv2d bias".into(),
                    expected: vec![weight.shape()[0]],
                    got: b.shape().to_vec(),
                });
            }
            check_finite("Conv2d bias", &b.view().into_dyn())?;
        }
        let weight = if weight.is_standard_layout() {
            weight
        } else {
            weight.as_standard_layout().into_owned().into_shared()
        };
        Ok(Conv2d {
            weight,
            bias,
            config,
            transformed: Default::default(),
        })
    }

    /// Stride, padding and dilation.
    pub fn config(&self) -> Conv2dConfig {
        self.config
    }

    fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Input channels per group (the weight's axis 1).
    fn in_channels(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Input channels of all groups.
    fn all_in_channels(&self) -> usize {
        self.weight.shape()[1] * self.config.groups
    }

    /// Checks a per-sample input shape `[C, H, W]` and returns `(Ho, Wo)`.
    fn spatial_out(&self, input_shape: &[usize]) -> Result<(usize, usize)> {
        if input_shape.len() != 3 {
            return Err(Error::Rank {
                what: "Conv2d input (per sample, [C, H, W])".into(),
                expected: 3,
                got: input_shape.len(),
                shape: input_shape.to_vec(),
            });
        }
        if input_shape[0] != self.all_in_channels() {
            return Err(Error::Shape {
                what: "Conv2d input channels (per sample)".into(),
                expected: vec![self.all_in_channels(), input_shape[1], input_shape[2]],
                got: input_shape.to_vec(),
            });
        }
        let c = &self.config;
        let (kh, kw) = (self.weight.shape()[2], self.weight.shape()[3]);
        let end = c.pad_end();
        let ho = window_out(
            input_shape[1],
            kh,
            c.stride.0,
            (c.padding.0, end.0),
            c.dilation.0,
            false,
        );
        let wo = window_out(
            input_shape[2],
            kw,
            c.stride.1,
            (c.padding.1, end.1),
            c.dilation.1,
            false,
        );
        match (ho, wo) {
            (Some(ho), Some(wo)) => Ok((ho, wo)),
            _ => Err(Error::InvalidLayer {
                layer: "Conv2d",
                reason: format!(
                    "kernel {kh}×{kw} with dilation {:?} does not fit the input {:?} padded by {:?} and {:?}",
                    c.dilation, input_shape, c.padding, end
                ),
            }),
        }
    }

    fn geometry(&self, n: usize, input_shape: &[usize]) -> Result<Geometry> {
        let (ho, wo) = self.spatial_out(input_shape)?;
        Ok(Geometry {
            n,
            c: input_shape[0],
            h: input_shape[1],
            w: input_shape[2],
            kh: self.weight.shape()[2],
            kw: self.weight.shape()[3],
            ho,
            wo,
            stride: self.config.stride,
            padding: self.config.padding,
            dilation: self.config.dilation,
        })
    }

    fn weight_matrix<'a>(&self, w: ArrayViewD<'a, F>) -> Result<ArrayView2<'a, F>> {
        if w.shape() != self.weight.shape() {
            return Err(Error::Shape {
                what: "Conv2d substituted weight".into(),
                expected: self.weight.shape().to_vec(),
                got: w.shape().to_vec(),
            });
        }
        let rows = self.out_channels();
        let cols = w.len() / rows;
        let w = w
            .into_shape_with_order((rows, cols))
            .map_err(|_| Error::Unsupported {
                rule: "Conv2d".into(),
                reason: "substituted weight must be in standard (C-order) layout".into(),
            })?;
        Ok(w)
    }

    /// Whether the forward pass on `g` is a plain matrix product per sample: a 1×1 kernel,
    /// stride 1, no padding, one group.
    fn is_pointwise(&self, g: &Geometry) -> bool {
        let c = &self.config;
        (g.kh, g.kw) == (1, 1)
            && c.stride == (1, 1)
            && c.padding == (0, 0)
            && c.pad_end() == (0, 0)
            && c.groups == 1
            && (g.ho, g.wo) == (g.h, g.w)
    }

    /// The Winograd shape of the forward pass on `g`, if this layer takes the Winograd path:
    /// 3×3 kernel, stride 1, dilation 1, equal padding ≤ 2 on both axes, at least
    /// [`WINOGRAD_MIN_CHANNELS`] input and output channels (below that the 16 small matrix
    /// products lose more than the transforms save) and [`WINOGRAD_MIN_OUTPUTS`] output
    /// positions. The choice depends on the layer and the per-sample shape only, never on
    /// the batch size, so a sample gets the same bits alone and in a batch.
    fn winograd_shape(&self, g: &Geometry) -> Option<winograd::Shape> {
        let c = &self.config;
        let o = self.out_channels();
        let eligible = (g.kh, g.kw) == (3, 3)
            && c.stride == (1, 1)
            && c.dilation == (1, 1)
            && c.groups == 1
            && c.pad_end() == c.padding
            && c.padding.0 == c.padding.1
            && c.padding.0 <= 2
            && g.c >= WINOGRAD_MIN_CHANNELS
            && o >= WINOGRAD_MIN_CHANNELS
            && g.ho * g.wo >= WINOGRAD_MIN_OUTPUTS;
        eligible.then_some(winograd::Shape {
            n: g.n,
            c: g.c,
            o,
            h: g.h,
            w: g.w,
            pad: c.padding.0,
        })
    }

    /// The shape of the forward pass on `g` for Winograd's F(4, 3) along the width, if this
    /// layer takes that path: a 1×3 kernel (a [`Conv1d`](crate::Conv1d) of three taps), stride
    /// 1, any dilation, no padding along the height, one group, at least
    /// [`WINOGRAD_MIN_CHANNELS`] input and output channels and [`WINOGRAD_1D_MIN_OUTPUTS`]
    /// output positions per row. As for [`Conv2d::winograd_shape`], the choice depends on the
    /// layer and the per-sample shape only.
    fn winograd1d_shape(&self, g: &Geometry) -> Option<winograd1d::Shape> {
        let c = &self.config;
        let o = self.out_channels();
        let eligible = (g.kh, g.kw) == (1, 3)
            && c.stride == (1, 1)
            && c.groups == 1
            && c.padding.0 == 0
            && c.pad_end().0 == 0
            && g.c >= WINOGRAD_MIN_CHANNELS
            && o >= WINOGRAD_MIN_CHANNELS
            && g.wo >= WINOGRAD_1D_MIN_OUTPUTS;
        eligible.then_some(winograd1d::Shape {
            n: g.n,
            c: g.c,
            o,
            h: g.h,
            w: g.w,
            wo: g.wo,
            dil: c.dilation.1,
            lo: -(c.padding.1 as isize),
        })
    }

    /// `a` as a non-empty batch `[N, C, H, W]`.
    fn as_batch4<'a>(what: &str, a: ArrayViewD<'a, F>) -> Result<ndarray::ArrayView4<'a, F>> {
        let shape = a.shape().to_vec();
        let a = a.into_dimensionality::<Ix4>().map_err(|_| Error::Rank {
            what: what.to_string(),
            expected: 4,
            got: shape.len(),
            shape,
        })?;
        if a.shape()[0] == 0 {
            return Err(Error::EmptyBatch);
        }
        Ok(a)
    }
}

impl<F: Float> Layer<F> for Conv2d<F> {
    fn name(&self) -> String {
        let groups = match self.config.groups {
            1 => String::new(),
            g => format!(", {g} groups"),
        };
        format!(
            "Conv2d({}→{}, {}×{}{groups})",
            self.all_in_channels(),
            self.out_channels(),
            self.weight.shape()[2],
            self.weight.shape()[3]
        )
    }

    fn class(&self) -> Class<'_, F> {
        Class::Convolution(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let (ho, wo) = self.spatial_out(input_shape)?;
        Ok(vec![self.out_channels(), ho, wo])
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        if let Some(out) = self.direct_run(&input, Post::default()) {
            return Ok(out);
        }
        affine_forward(self, input)
    }

    /// On the direct path, ReLU and the plain 2×2 max pool run as each output channel is
    /// stored (`kernels::direct::Post`); on the others a ReLU alone runs in the bias pass
    /// (in place: no second array).
    fn forward_fused(&self, input: ArrayViewD<'_, F>, then: &[Fused]) -> Option<Result<ArrayD<F>>> {
        let post = match then {
            [Fused::Relu] => Post {
                relu: true,
                pool_2x2: false,
            },
            [Fused::MaxPool2x2] => Post {
                relu: false,
                pool_2x2: true,
            },
            [Fused::Relu, Fused::MaxPool2x2] => Post {
                relu: true,
                pool_2x2: true,
            },
            _ => return None,
        };
        if let Some(out) = self.direct_run(&input, post) {
            return Some(Ok(out));
        }
        (then == [Fused::Relu]).then(|| affine_forward_relu(self, input))
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        affine_gradient(self, step, grad_output)
    }

    /// The unfolded input of im2col: `[C·kh·kw, Ho·Wo]` per sample.
    fn scratch_len(&self, input_shape: &[usize]) -> usize {
        let Ok((ho, wo)) = self.spatial_out(input_shape) else {
            return 0;
        };
        let w = self.weight.shape();
        self.in_channels()
            .saturating_mul(w[2])
            .saturating_mul(w[3])
            .saturating_mul(ho)
            .saturating_mul(wo)
    }
}

impl<F: Float> Conv2d<F> {
    /// Checks an output-side array `s` against the geometry for `input_shape`.
    fn output_side<'a>(
        &self,
        s: ArrayViewD<'a, F>,
        input_shape: &[usize],
    ) -> Result<(ndarray::ArrayView4<'a, F>, Geometry)> {
        let s4 = Self::as_batch4("Conv2d output relevance", s)?;
        let g = self.geometry(s4.shape()[0], input_shape)?;
        let o = self.out_channels();
        if s4.shape()[1..] != [o, g.ho, g.wo] {
            return Err(Error::Shape {
                what: "Conv2d output relevance".into(),
                expected: vec![g.n, o, g.ho, g.wo],
                got: s4.shape().to_vec(),
            });
        }
        Ok((s4, g))
    }
}
