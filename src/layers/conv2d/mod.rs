//! 2-D convolution through im2col/col2im and one matrix product, or Winograd's F(2×2, 3×3)
//! for wide 3×3 stride-1 layers.

use super::window::window_out;
use super::{affine_forward, affine_gradient, winograd, Affine, Category, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::rules::Rule;
use crate::tensor::{check_finite, gemm, gemm_acc, output_buffer, with_scratch};
use ndarray::{
    Array1, Array2, Array4, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, CowArray, Ix2,
    Ix4,
};

#[cfg(test)]
mod tests;
mod unfold;

use unfold::swap_plane_axes;

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
/// The weight is in PyTorch layout `[out, in / groups, kh, kw]`. The forward pass and its transpose
/// run through im2col/col2im and one matrix product for the whole batch; 3×3 convolutions with
/// stride 1, dilation 1, padding ≤ 2, at least 16 input and output channels and at least 400
/// output positions use Winograd's F(2×2, 3×3) instead (Lavin & Gray 2016), which needs 2.25×
/// fewer multiplications (results agree with direct summation to about 1e-15 in f64).
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
    weight: Array4<F>,
    bias: Option<Array1<F>>,
    config: Conv2dConfig,
}

/// Elements above which im2col and col2im run in parallel (feature `parallel`).
#[cfg(feature = "parallel")]
const PAR_LEN: usize = 1 << 18;

/// Input and output channels from which a 3×3 stride-1 convolution takes the Winograd path.
const WINOGRAD_MIN_CHANNELS: usize = 16;

/// Output positions per sample and channel (Ho·Wo) from which a 3×3 stride-1 convolution
/// takes the Winograd path. Transforming the weights costs about as much memory traffic as
/// reading them twice, which only pays off over enough output positions (on VGG16: a gain
/// at 28×28, a loss at 14×14).
const WINOGRAD_MIN_OUTPUTS: usize = 400;

/// Sizes of one convolution call.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    /// Input channels (all groups).
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
}

impl<F: Float> Conv2d<F> {
    /// Builds the layer from a weight `[out, in / groups, kh, kw]`, an optional bias
    /// `[out]` and the stride, padding, dilation and groups.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a zero dimension, stride, dilation or group count, or
    /// output channels not divisible by the groups; [`Error::Shape`] for a bias of the
    /// wrong length; [`Error::NonFinite`] for NaN or infinite parameters.
    pub fn new(weight: Array4<F>, bias: Option<Array1<F>>, config: Conv2dConfig) -> Result<Self> {
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
        Ok(Conv2d { weight, bias, config })
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

    fn as_batch4<'a>(what: &str, a: ArrayViewD<'a, F>) -> Result<ndarray::ArrayView4<'a, F>> {
        let shape = a.shape().to_vec();
        a.into_dimensionality::<Ix4>().map_err(|_| Error::Rank {
            what: what.to_string(),
            expected: 4,
            got: shape.len(),
            shape,
        })
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

    fn category(&self) -> Category {
        Category::Convolution
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let (ho, wo) = self.spatial_out(input_shape)?;
        Ok(vec![self.out_channels(), ho, wo])
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        affine_forward(self, input)
    }

    fn relevance(&self, rule: &dyn Rule<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        rule.affine(self, step)
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        affine_gradient(self, step, grad_output)
    }

    fn as_affine(&self) -> Option<&dyn Affine<F>> {
        Some(self)
    }
}

impl<F: Float> Conv2d<F> {
    /// `[O, N·Ho·Wo]` → `[N, O, Ho, Wo]` (no copy for a single sample).
    fn unfold_output(out: Array2<F>, g: &Geometry) -> ArrayD<F> {
        let o = out.nrows();
        if g.n == 1 {
            return out
                .into_shape_with_order((1, o, g.ho, g.wo))
                .expect("sizes agree")
                .into_dyn();
        }
        // one plane copy per (sample, channel); the spent product's buffer is recycled
        let mut dst = output_buffer(g.n * o * g.ho * g.wo);
        swap_plane_axes(
            out.as_slice().expect("fresh array is contiguous"),
            o,
            g.n,
            &mut dst,
        );
        crate::tensor::recycle(out.into_dyn());
        ArrayD::from_shape_vec(vec![g.n, o, g.ho, g.wo], dst).expect("length matches the shape")
    }

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

impl<F: Float> Affine<F> for Conv2d<F> {
    fn weight(&self) -> ArrayViewD<'_, F> {
        self.weight.view().into_dyn()
    }

    fn bias(&self) -> Option<ArrayView1<'_, F>> {
        self.bias.as_ref().map(|b| b.view())
    }

    fn apply_with(&self, x: ArrayViewD<'_, F>, w: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Ok(self.apply_many(x, &[w])?.pop().expect("one weight, one result"))
    }

    /// True for one group (with several, weight column `k` meets a different input
    /// channel in each group).
    fn weight_columns_are_input_channels(&self) -> bool {
        self.config.groups == 1
    }

    fn with_parameters(&self, weight: ArrayD<F>, bias: Array1<F>) -> Option<Result<Box<dyn Layer<F>>>> {
        let shape = weight.shape().to_vec();
        Some(match weight.into_dimensionality::<Ix4>() {
            Ok(w) => Conv2d::new(w, Some(bias), self.config).map(|c| Box::new(c) as Box<dyn Layer<F>>),
            Err(_) => Err(Error::Shape {
                what: "Conv2d weight".into(),
                expected: self.weight.shape().to_vec(),
                got: shape,
            }),
        })
    }

    /// The convolution of an image of ones is, at each output position, the sum of the
    /// weight over the taps that fall inside the image: per output row the valid kernel rows
    /// are an interval, and so are the valid kernel columns per output column, so interior
    /// positions share one sum and no product is formed.
    fn apply_ones(&self, w: ArrayViewD<'_, F>, input_shape: &[usize]) -> Result<ArrayD<F>> {
        let g = self.geometry(1, input_shape)?;
        let wm = self.weight_matrix(w)?;
        let (o, taps, kw) = (self.out_channels(), g.kh * g.kw, g.kw);
        let c = self.config;
        // the kernel positions k with 0 ≤ out·stride + k·dilation − pad < len, an interval
        let valid = |out: usize, k: usize, stride: usize, pad: usize, dil: usize, len: usize| {
            // (pad is the leading padding; the trailing one only limits the output size)
            let at = |k: usize| (out * stride + k * dil) as isize - pad as isize;
            let lo = (0..k).find(|&i| at(i) >= 0).unwrap_or(k);
            let hi = (lo..k).find(|&i| at(i) >= len as isize).unwrap_or(k);
            (lo, hi)
        };
        // runs of output rows (columns) sharing their interval of valid kernel rows (columns)
        let runs = |n: usize, f: &dyn Fn(usize) -> (usize, usize)| {
            let mut runs: Vec<(std::ops::Range<usize>, (usize, usize))> = Vec::new();
            for i in 0..n {
                let v = f(i);
                match runs.last_mut() {
                    Some((range, last)) if *last == v => range.end = i + 1,
                    _ => runs.push((i..i + 1, v)),
                }
            }
            runs
        };
        let row_runs = runs(g.ho, &|oy| {
            valid(oy, g.kh, c.stride.0, c.padding.0, c.dilation.0, g.h)
        });
        let col_runs = runs(g.wo, &|ox| {
            valid(ox, g.kw, c.stride.1, c.padding.1, c.dilation.1, g.w)
        });
        let mut out = output_buffer(o * g.ho * g.wo); // every element is written below
        let mut kernel = vec![F::zero(); taps];
        let mut col_sums = vec![F::zero(); kw];
        let mut sums = vec![F::zero(); col_runs.len()];
        for (oc, plane) in out.chunks_mut(g.ho * g.wo).enumerate() {
            // Σ over input channels
            kernel.fill(F::zero());
            let w_row = wm.row(oc);
            for (t, k) in kernel.iter_mut().enumerate() {
                // the output channel's own group of input channels, all ones
                for ch in 0..self.in_channels() {
                    *k += w_row[ch * taps + t];
                }
            }
            for (rows, (i0, i1)) in &row_runs {
                // the run's sums, then its rows (short fills, no copies)
                col_sums.fill(F::zero());
                for i in *i0..*i1 {
                    for (s, v) in col_sums.iter_mut().zip(&kernel[i * kw..(i + 1) * kw]) {
                        *s += *v;
                    }
                }
                for (sum, (_, (j0, j1))) in sums.iter_mut().zip(&col_runs) {
                    *sum = col_sums[*j0..*j1].iter().fold(F::zero(), |a, &v| a + v);
                }
                for row in plane[rows.start * g.wo..rows.end * g.wo].chunks_mut(g.wo) {
                    for (&sum, (cols, _)) in sums.iter().zip(&col_runs) {
                        for y in &mut row[cols.clone()] {
                            *y = sum;
                        }
                    }
                }
            }
        }
        Ok(ArrayD::from_shape_vec(vec![1, o, g.ho, g.wo], out).expect("length matches the shape"))
    }

    /// One im2col matrix (or Winograd input transform) for every weight.
    fn apply_many(&self, x: ArrayViewD<'_, F>, ws: &[ArrayViewD<'_, F>]) -> Result<Vec<ArrayD<F>>> {
        let x4 = Self::as_batch4("Conv2d input", x)?;
        let g = self.geometry(x4.shape()[0], &x4.shape()[1..])?;
        let wms = ws
            .iter()
            .map(|w| self.weight_matrix(w.clone()))
            .collect::<Result<Vec<_>>>()?;
        let x4 = x4.as_standard_layout();
        let x = x4.as_slice().expect("standard layout");
        let o = self.out_channels();
        if let Some(shape) = self.winograd_shape(&g) {
            let std: Vec<_> = wms.iter().map(|w| w.as_standard_layout()).collect();
            let slices: Vec<&[F]> = std
                .iter()
                .map(|w| w.as_slice().expect("standard layout"))
                .collect();
            // the output transform overwrites every element
            let dim = (g.n, o, g.ho, g.wo);
            let mut outs: Vec<Array4<F>> = ws
                .iter()
                .map(|_| {
                    Array4::from_shape_vec(dim, output_buffer(g.n * o * g.ho * g.wo)).expect("length matches")
                })
                .collect();
            let mut ys: Vec<&mut [F]> = outs
                .iter_mut()
                .map(|a| a.as_slice_mut().expect("fresh array is contiguous"))
                .collect();
            winograd::conv3x3_many(x, &shape, &slices, false, &mut ys);
            return Ok(outs.into_iter().map(|a| a.into_dyn()).collect());
        }
        // [O, N·Ho·Wo] = W[O, C·kh·kw] · cols, for each W (block-diagonal with groups: group
        // k's outputs take group k's rows of the columns)
        let groups = self.config.groups;
        let rows = self.in_channels() * g.kh * g.kw;
        let ncols = g.n * g.ho * g.wo;
        let work = o * rows * g.ho * g.wo;
        Ok(with_scratch(rows * groups * ncols, |buf| {
            self.im2col(x, &g, buf);
            let cols = ArrayView2::from_shape((rows * groups, ncols), &*buf).expect("sizes agree");
            wms.iter()
                .map(|wm| {
                    // overwritten by the product (never read)
                    let mut out =
                        Array2::from_shape_vec((o, ncols), output_buffer(o * ncols)).expect("length matches");
                    let og = o / groups;
                    for k in 0..groups {
                        let block = |r: usize| ndarray::Slice::from(k * r..(k + 1) * r);
                        gemm(
                            &wm.slice_axis(Axis(0), block(og)),
                            &cols.slice_axis(Axis(0), block(rows)),
                            &mut out.slice_axis_mut(Axis(0), block(og)),
                            work / groups,
                        );
                    }
                    Self::unfold_output(out, &g)
                })
                .collect()
        }))
    }

    fn apply_transpose(
        &self,
        s: ArrayViewD<'_, F>,
        w: ArrayViewD<'_, F>,
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        self.apply_transpose_sum(&[(s, w)], input_shape)
    }

    /// One col2im (or Winograd output transform) for the whole sum.
    fn apply_transpose_sum(
        &self,
        terms: &[(ArrayViewD<'_, F>, ArrayViewD<'_, F>)],
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        let Some((first, _)) = terms.first() else {
            return Err(Error::Unsupported {
                rule: "Conv2d".into(),
                reason: "a sum of transposed maps needs at least one term".into(),
            });
        };
        let (_, g) = self.output_side(first.clone(), input_shape)?;
        let mut sides = Vec::with_capacity(terms.len());
        for (s, w) in terms {
            let (s4, gs) = self.output_side(s.clone(), input_shape)?;
            if gs.n != g.n {
                return Err(Error::BatchMismatch {
                    what: "Conv2d output relevance of a summed term".into(),
                    batch: g.n,
                    got: gs.n,
                });
            }
            sides.push((s4, self.weight_matrix(w.clone())?));
        }
        let o = self.out_channels();
        if let Some(ws) = self.winograd_shape(&g) {
            // the correlation of s with the kernel flipped in space, channels swapped, and
            // padding 2 − p (winograd module docs)
            let ts = winograd::Shape {
                n: g.n,
                c: o,
                o: g.c,
                h: g.ho,
                w: g.wo,
                pad: 2 - ws.pad,
            };
            let s_std: Vec<_> = sides.iter().map(|(s4, _)| s4.as_standard_layout()).collect();
            let w_std: Vec<_> = sides.iter().map(|(_, wm)| wm.as_standard_layout()).collect();
            let xs: Vec<&[F]> = s_std
                .iter()
                .map(|a| a.as_slice().expect("standard layout"))
                .collect();
            let wts: Vec<&[F]> = w_std
                .iter()
                .map(|a| a.as_slice().expect("standard layout"))
                .collect();
            // the output transform overwrites every element
            let mut out = Array4::from_shape_vec((g.n, g.c, g.h, g.w), output_buffer(g.n * g.c * g.h * g.w))
                .expect("length matches the shape");
            let y = out.as_slice_mut().expect("fresh array is contiguous");
            winograd::conv3x3_sum(&xs, &ts, &wts, true, y);
            return Ok(out.into_dyn());
        }
        // cols = Σ Wᵀ[C·kh·kw, O] · s2, with s2 = s as [O, N·Ho·Wo]
        let plane = g.ho * g.wo;
        let (rows, ncols) = (self.in_channels() * g.kh * g.kw, g.n * plane);
        let work = o * rows * plane;
        // s as [O, N·Ho·Wo]: a view for one sample, else written into `dst`
        let put = |s4: &ndarray::ArrayView4<'_, F>, mut dst: ArrayViewMut2<'_, F>| {
            let mut dst = dst
                .view_mut()
                .into_shape_with_order((o, g.n, g.ho, g.wo))
                .expect("sizes agree");
            match (s4.to_slice(), dst.as_slice_mut()) {
                // one plane copy per (channel, sample)
                (Some(src), Some(d)) => swap_plane_axes(src, g.n, o, d),
                _ => dst.assign(&s4.view().permuted_axes([1, 0, 2, 3])),
            }
        };
        let stacked = |sides: &[(ndarray::ArrayView4<'_, F>, ArrayView2<'_, F>)]| -> Array2<F> {
            let t = sides.len();
            // every element is written
            let mut s2 =
                Array2::from_shape_vec((t * o, ncols), output_buffer(t * o * ncols)).expect("length matches");
            for (k, (s4, _)) in sides.iter().enumerate() {
                put(
                    s4,
                    s2.slice_axis_mut(Axis(0), ndarray::Slice::from(k * o..(k + 1) * o)),
                );
            }
            s2
        };
        let groups = self.config.groups;
        if groups > 1 {
            // block-diagonal: group k's columns gather Σ_t W_t[k]ᵀ · s_t[k]
            let s2 = stacked(&sides);
            let og = o / groups;
            return Ok(with_scratch(rows * groups * ncols, |buf| {
                let mut cols =
                    ArrayViewMut2::from_shape((rows * groups, ncols), &mut *buf).expect("sizes agree");
                for k in 0..groups {
                    let mut ck = cols.slice_axis_mut(Axis(0), ndarray::Slice::from(k * rows..(k + 1) * rows));
                    for (t, (_, wm)) in sides.iter().enumerate() {
                        let wk = wm.slice_axis(Axis(0), ndarray::Slice::from(k * og..(k + 1) * og));
                        let sk = s2.slice_axis(
                            Axis(0),
                            ndarray::Slice::from(t * o + k * og..t * o + (k + 1) * og),
                        );
                        gemm_acc(&wk.t(), &sk, &mut ck, work / groups, t > 0);
                    }
                }
                self.col2im(buf, &g)
            })
            .into_dyn());
        }
        // several terms: one product of the stacked weights [W₁ᵀ | W₂ᵀ | …] and the stacked
        // [s₁; s₂; …], rather than one product per term accumulated into the columns
        let (wm, s2): (CowArray<'_, F, Ix2>, CowArray<'_, F, Ix2>) = match sides.as_slice() {
            [(s4, wm)] => (
                wm.view().into(),
                match s4.view().into_shape_with_order((o, ncols)) {
                    Ok(v) if g.n == 1 => v.into(),
                    _ => stacked(&sides).into(),
                },
            ),
            _ => {
                let ws: Vec<_> = sides.iter().map(|(_, wm)| wm.view()).collect();
                (
                    ndarray::concatenate(Axis(0), &ws).expect("same columns").into(),
                    stacked(&sides).into(),
                )
            }
        };
        Ok(with_scratch(rows * ncols, |buf| {
            let mut cols = ArrayViewMut2::from_shape((rows, ncols), &mut *buf).expect("sizes agree");
            gemm(&wm.t(), &s2.view(), &mut cols, work * sides.len());
            self.col2im(buf, &g)
        })
        .into_dyn())
    }
}
