//! 2-D convolution through im2col/col2im and one matrix product, or Winograd's F(2×2, 3×3)
//! for wide 3×3 stride-1 layers.

use super::{affine_forward, affine_gradient, winograd, Affine, Category, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::rules::Rule;
use crate::tensor::{check_finite, gemm, output_buffer, with_scratch, written_zeros};
use ndarray::{
    Array1, Array2, Array4, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, CowArray, Ix2,
    Ix4,
};

/// Stride, zero padding and dilation of a [`Conv2d`], each as (height, width).
///
/// The default is stride 1, padding 0, dilation 1, as `torch.nn.Conv2d`.
///
/// ```
/// use relevance::Conv2dConfig;
/// let c = Conv2dConfig::default().stride(2).padding(1);
/// assert_eq!((c.stride, c.padding, c.dilation), ((2, 2), (1, 1), (1, 1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Step between windows, (height, width).
    pub stride: (usize, usize),
    /// Zeros added on each side, (height, width).
    pub padding: (usize, usize),
    /// Spacing between kernel taps, (height, width).
    pub dilation: (usize, usize),
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
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
        self
    }
    /// The same dilation in both directions.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }
}

/// Output size of one spatial axis of a window operation (convolution or pooling), or
/// `None` if the (padded) input is smaller than the dilated window.
pub(crate) fn window_out(len: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Option<usize> {
    // checked: absurd configurations are errors, not overflows
    let span = dil.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    let padded = pad.checked_mul(2)?.checked_add(len)?;
    (padded >= span && stride > 0).then(|| (padded - span) / stride + 1)
}

/// A 2-D convolution, as `torch.nn.Conv2d` (groups = 1, zero padding).
///
/// The weight is in PyTorch layout `[out, in, kh, kw]`. The forward pass and its transpose
/// run through im2col/col2im and one matrix product for the whole batch; 3×3 convolutions with
/// stride 1, dilation 1, padding ≤ 2, at least 16 input and output channels and at least 400
/// output positions use Winograd's F(2×2, 3×3) instead (Lavin & Gray 2016), which needs 2.25×
/// fewer multiplications (results agree with direct summation to about 1e-15 in f64).
///
/// # Shapes
/// Input `[N, in, H, W]`, output `[N, out, H', W']` with
/// `H' = (H + 2·pad − dil·(kh − 1) − 1) / stride + 1` (likewise W').
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
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
}

impl<F: Float> Conv2d<F> {
    /// Builds the layer from a weight `[out, in, kh, kw]`, an optional bias `[out]` and the
    /// stride, padding and dilation.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a zero dimension, stride or dilation; [`Error::Shape`]
    /// for a bias of the wrong length; [`Error::NonFinite`] for NaN or infinite parameters.
    pub fn new(weight: Array4<F>, bias: Option<Array1<F>>, config: Conv2dConfig) -> Result<Self> {
        if weight.shape().contains(&0) {
            return Err(Error::InvalidLayer {
                layer: "Conv2d",
                reason: format!("weight shape {:?} has a zero dimension", weight.shape()),
            });
        }
        let Conv2dConfig { stride, dilation, .. } = config;
        if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
            return Err(Error::InvalidLayer {
                layer: "Conv2d",
                reason: format!("stride {stride:?} and dilation {dilation:?} must be positive"),
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

    fn in_channels(&self) -> usize {
        self.weight.shape()[1]
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
        if input_shape[0] != self.in_channels() {
            return Err(Error::Shape {
                what: "Conv2d input channels (per sample)".into(),
                expected: vec![self.in_channels(), input_shape[1], input_shape[2]],
                got: input_shape.to_vec(),
            });
        }
        let c = &self.config;
        let (kh, kw) = (self.weight.shape()[2], self.weight.shape()[3]);
        let ho = window_out(input_shape[1], kh, c.stride.0, c.padding.0, c.dilation.0);
        let wo = window_out(input_shape[2], kw, c.stride.1, c.padding.1, c.dilation.1);
        match (ho, wo) {
            (Some(ho), Some(wo)) => Ok((ho, wo)),
            _ => Err(Error::InvalidLayer {
                layer: "Conv2d",
                reason: format!(
                    "kernel {kh}×{kw} with dilation {:?} does not fit the input {:?} padded by {:?}",
                    c.dilation, input_shape, c.padding
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

    /// For a convolution with stride 1 whose output rows are as wide as its input rows
    /// (`Wo = W`), a table indexed by im2col row `(c·kh + i)·kw + j` of `(base, rows, lo..hi)`:
    /// output position `d = oy·W + ox` of the tap reads input offset `d + base` (within a
    /// sample), for the output rows `rows` whose tap row lies inside the input and the
    /// columns `lo..hi` whose tap column does. `None` for other convolutions. Tabulated once
    /// per call: each entry divides, and im2col/col2im look them up per plane.
    #[allow(clippy::type_complexity)]
    fn same_rows(&self, g: &Geometry) -> Option<Vec<(isize, std::ops::Range<usize>, (usize, usize))>> {
        let c = self.config;
        if c.stride != (1, 1) || g.wo != g.w {
            return None;
        }
        let (ph, pw) = (c.padding.0 as isize, c.padding.1 as isize);
        let (dh, dw) = (c.dilation.0 as isize, c.dilation.1 as isize);
        let (h, w, ho) = (g.h as isize, g.w as isize, g.ho as isize);
        let (kh, kw) = (g.kh, g.kw);
        let entry = |row: usize| {
            let (j, rest) = ((row % kw) as isize, row / kw);
            let (i, ch) = ((rest % kh) as isize, (rest / kh) as isize);
            let (dy, dx) = (i * dh - ph, j * dw - pw);
            let rows = (-dy).clamp(0, ho) as usize..(h - dy).clamp(0, ho) as usize;
            let (lo, hi) = ((-dx).clamp(0, w) as usize, (w - dx).clamp(0, w) as usize);
            let rows = if lo < hi { rows } else { 0..0 };
            ((ch * h + dy) * w + dx, rows, (lo, hi))
        };
        Some((0..g.c * kh * kw).map(entry).collect())
    }

    /// For im2col row `row = (c·kh + i)·kw + j` and every output row `oy` whose tap row
    /// falls inside the input, calls `f(oy, lo, hi, offset)`: the valid output columns
    /// `lo..hi` and the input offset (within one sample) of the tap at `lo`; consecutive
    /// columns step by the stride in the input.
    fn row_runs(&self, g: &Geometry, row: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        let c = &self.config;
        let (sh, sw) = c.stride;
        let (ph, pw) = c.padding;
        let (dh, dw) = c.dilation;
        let (j, rest) = (row % g.kw, row / g.kw);
        let (i, ch) = (rest % g.kh, rest / g.kh);
        // ix = ox·sw + j·dw − pw must lie in [0, w)
        let shift = (j * dw) as isize - pw as isize;
        let lo = if shift >= 0 {
            0
        } else {
            ((-shift) as usize).div_ceil(sw)
        };
        let hi = if (g.w as isize) > shift {
            (((g.w as isize - shift) as usize) - 1) / sw + 1
        } else {
            0
        }
        .min(g.wo);
        if lo >= hi {
            return;
        }
        let ix0 = (lo as isize * sw as isize + shift) as usize;
        for oy in 0..g.ho {
            let iy = (oy * sh + i * dh) as isize - ph as isize;
            if iy < 0 || iy >= g.h as isize {
                continue;
            }
            f(oy, lo, hi, (ch * g.h + iy as usize) * g.w + ix0);
        }
    }

    /// im2col: `[N, C, H, W]` → `[C·kh·kw, N·Ho·Wo]`, overwriting every element of `buf`
    /// (which may hold stale values). Rows are filled in parallel for large inputs
    /// (feature `parallel`).
    fn im2col(&self, x: &[F], g: &Geometry, buf: &mut [F]) {
        let plane = g.ho * g.wo;
        let sample = g.c * g.h * g.w;
        let ncols = g.n * plane;
        let sw = self.config.stride.1;
        let same = self.same_rows(g);
        let fill = |row: usize, dst_row: &mut [F]| {
            if let Some((base, rows, (lo, hi))) = same.as_ref().map(|t| t[row].clone()) {
                // One contiguous copy per sample: with stride 1 and Wo = W, output row oy of
                // the tap reads input row oy + dy at the same column shift, so the copy
                // wraps into the neighbouring row only at the `W − (hi − lo)` columns the
                // padding covers, which are then zeroed.
                let zero = F::zero();
                for s in 0..g.n {
                    let dst = &mut dst_row[s * plane..(s + 1) * plane];
                    let (d0, d1) = (
                        rows.start * g.w + lo,
                        (rows.end.max(rows.start + 1) - 1) * g.w + hi,
                    );
                    if rows.is_empty() {
                        dst.fill(zero);
                        continue;
                    }
                    dst[..d0].fill(zero);
                    let src = s * sample + d0;
                    let src = (src as isize + base) as usize;
                    dst[d0..d1].copy_from_slice(&x[src..src + (d1 - d0)]);
                    dst[d1..].fill(zero);
                    zero_columns(dst, g.w, rows.clone(), lo, hi);
                }
                return;
            }
            // zeros where the tap falls into the padding; one row is small enough to stay
            // in cache between this and the copies below
            dst_row.fill(F::zero());
            self.row_runs(g, row, |oy, lo, hi, offset| {
                let len = hi - lo;
                for s in 0..g.n {
                    let start = s * plane + oy * g.wo + lo;
                    let dst = &mut dst_row[start..start + len];
                    let src = &x[s * sample + offset..];
                    if sw == 1 {
                        dst.copy_from_slice(&src[..len]);
                    } else {
                        for (d, v) in dst.iter_mut().zip(src.iter().step_by(sw)) {
                            *d = *v;
                        }
                    }
                }
            })
        };
        #[cfg(feature = "parallel")]
        if buf.len() >= PAR_LEN {
            use rayon::prelude::*;
            buf.par_chunks_mut(ncols)
                .enumerate()
                .for_each(|(row, dst)| fill(row, dst));
            return;
        }
        for (row, dst) in buf.chunks_mut(ncols).enumerate() {
            fill(row, dst);
        }
    }

    /// col2im: `[C·kh·kw, N·Ho·Wo]` → `[N, C, H, W]`, adding overlapping taps. Planes are
    /// filled in parallel for large outputs (feature `parallel`).
    fn col2im(&self, src: &mut [F], g: &Geometry) -> Array4<F> {
        let plane = g.ho * g.wo;
        let ncols = g.n * plane;
        let sw = self.config.stride.1;
        let hw = g.h * g.w;
        let taps = g.kh * g.kw;
        let same = self.same_rows(g);
        if let Some(same) = &same {
            // Contiguous adds (see `im2col`): first zero the columns whose tap falls into the
            // padding, so that the adds may run across them.
            for (row, src_row) in src.chunks_mut(ncols).enumerate() {
                let (_, rows, (lo, hi)) = same[row].clone();
                for s in 0..g.n {
                    zero_columns(
                        &mut src_row[s * plane..(s + 1) * plane],
                        g.w,
                        rows.clone(),
                        lo,
                        hi,
                    );
                }
            }
        }
        let src = &*src;
        // gathered with `+=`: start from written zeros
        let mut out = Array4::from_shape_vec((g.n, g.c, g.h, g.w), written_zeros(g.n * g.c * g.h * g.w))
            .expect("length matches the shape");
        let buf = out.as_slice_mut().expect("fresh array is contiguous");
        // one (sample, channel) plane gathers the rows (channel, i, j) of its sample's columns
        let gather = |index: usize, dst: &mut [F]| {
            let (s, ch) = (index / g.c, index % g.c);
            for row in ch * taps..(ch + 1) * taps {
                if let Some(same) = &same {
                    let (base, rows, _) = same[row].clone();
                    if rows.is_empty() {
                        continue;
                    }
                    // output positions d0..d1 add into input offsets d + base
                    let (d0, d1) = (rows.start * g.w, rows.end * g.w);
                    let from = &src[row * ncols + s * plane + d0..row * ncols + s * plane + d1];
                    // clip to this channel's plane: the clipped columns are padding (zeroed)
                    let at = |d: usize| (d as isize + base) - (ch * hw) as isize;
                    let (skip, end) = (
                        (-at(d0)).max(0) as usize,
                        (d1 - d0).min((hw as isize - at(d0)) as usize),
                    );
                    let start = (at(d0) + skip as isize) as usize;
                    for (d, v) in dst[start..start + (end - skip)].iter_mut().zip(&from[skip..end]) {
                        *d += *v;
                    }
                    continue;
                }
                self.row_runs(g, row, |oy, lo, hi, offset| {
                    let len = hi - lo;
                    let start = row * ncols + s * plane + oy * g.wo + lo;
                    let from = &src[start..start + len];
                    let dst = &mut dst[offset - ch * hw..];
                    if sw == 1 {
                        for (d, v) in dst[..len].iter_mut().zip(from) {
                            *d += *v;
                        }
                    } else {
                        for (d, v) in dst.iter_mut().step_by(sw).zip(from) {
                            *d += *v;
                        }
                    }
                })
            }
        };
        #[cfg(feature = "parallel")]
        if src.len() >= PAR_LEN {
            use rayon::prelude::*;
            buf.par_chunks_mut(hw)
                .enumerate()
                .for_each(|(index, dst)| gather(index, dst));
            return out;
        }
        for (index, dst) in buf.chunks_mut(hw).enumerate() {
            gather(index, dst);
        }
        out
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

/// Zeros columns `..lo` and `hi..` of rows `rows` of a row-major plane `width` wide: a
/// column at a time, as strided stores (per-row `fill`s of one or two elements would each be
/// a `memset` call).
fn zero_columns<F: Float>(plane: &mut [F], width: usize, rows: std::ops::Range<usize>, lo: usize, hi: usize) {
    for j in (0..lo).chain(hi..width) {
        for oy in rows.clone() {
            plane[oy * width + j] = F::zero();
        }
    }
}

/// `[a, b, plane…]` → `[b, a, plane…]` for contiguous `src` and `dst`: one copy per plane.
fn swap_plane_axes<F: Float>(src: &[F], a: usize, b: usize, dst: &mut [F]) {
    let plane = src.len() / (a * b).max(1);
    if plane == 0 {
        return;
    }
    for (k, d) in dst.chunks_exact_mut(plane).enumerate() {
        let (j, i) = (k / a, k % a);
        d.copy_from_slice(&src[(i * b + j) * plane..(i * b + j + 1) * plane]);
    }
}

impl<F: Float> Layer<F> for Conv2d<F> {
    fn name(&self) -> String {
        format!(
            "Conv2d({}→{}, {}×{})",
            self.in_channels(),
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

    fn weight_columns_are_input_channels(&self) -> bool {
        true
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
                for ch in 0..g.c {
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
        // [O, N·Ho·Wo] = W[O, C·kh·kw] · cols, for each W
        let rows = self.in_channels() * g.kh * g.kw;
        let ncols = g.n * g.ho * g.wo;
        let work = o * rows * g.ho * g.wo;
        Ok(with_scratch(rows * ncols, |buf| {
            self.im2col(x, &g, buf);
            let cols = ArrayView2::from_shape((rows, ncols), &*buf).expect("sizes agree");
            wms.iter()
                .map(|wm| {
                    // overwritten by the product (never read)
                    let mut out =
                        Array2::from_shape_vec((o, ncols), output_buffer(o * ncols)).expect("length matches");
                    gemm(wm, &cols, &mut out.view_mut(), work);
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

#[cfg(test)]
mod tests {
    //! The Winograd path against plain loops (the im2col path is checked against zennit by
    //! the fixture tests; Winograd only runs on layers with ≥ 16 channels, which the fixture
    //! networks do not have).
    use super::*;
    use ndarray::Array4;

    fn rng(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
    }

    /// Direct loops: y[n,o,oy,ox] = Σ w[o,c,i,j]·x[n,c,oy+i−p,ox+j−p].
    fn naive(x: &Array4<f64>, w: &Array4<f64>, p: usize) -> Array4<f64> {
        let (n, c, h, wd) = x.dim();
        let o = w.shape()[0];
        let (ho, wo) = (h + 2 * p - 2, wd + 2 * p - 2);
        Array4::from_shape_fn((n, o, ho, wo), |(s, oc, oy, ox)| {
            let mut acc = 0.0;
            for ci in 0..c {
                for i in 0..3 {
                    for j in 0..3 {
                        let (yy, xx) = ((oy + i) as isize - p as isize, (ox + j) as isize - p as isize);
                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                            acc += w[[oc, ci, i, j]] * x[[s, ci, yy as usize, xx as usize]];
                        }
                    }
                }
            }
            acc
        })
    }

    /// Direct loops of the transpose: g[n,c,y,x] = Σ w[o,c,i,j]·s[n,o,y+p−i,x+p−j].
    fn naive_transpose(s: &Array4<f64>, w: &Array4<f64>, p: usize, h: usize, wd: usize) -> Array4<f64> {
        let (n, o, ho, wo) = s.dim();
        let c = w.shape()[1];
        Array4::from_shape_fn((n, c, h, wd), |(b, ci, yy, xx)| {
            let mut acc = 0.0;
            for oc in 0..o {
                for i in 0..3 {
                    for j in 0..3 {
                        let (oy, ox) = ((yy + p) as isize - i as isize, (xx + p) as isize - j as isize);
                        if oy >= 0 && ox >= 0 && (oy as usize) < ho && (ox as usize) < wo {
                            acc += w[[oc, ci, i, j]] * s[[b, oc, oy as usize, ox as usize]];
                        }
                    }
                }
            }
            acc
        })
    }

    fn max_rel(a: &ArrayD<f64>, b: &Array4<f64>) -> f64 {
        assert_eq!(a.shape(), b.shape());
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b.iter())
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    #[test]
    fn winograd_matches_direct_loops() {
        // (n, c, o, h, w, padding): even and odd sizes, every padding the path takes
        let cases = [
            (2, 16, 17, 20, 20, 1),
            (1, 16, 16, 21, 23, 1),
            (2, 18, 16, 23, 22, 0),
            (1, 16, 20, 19, 21, 2),
            (1, 17, 16, 1, 401, 1),
        ];
        for (k, &(n, c, o, h, wd, p)) in cases.iter().enumerate() {
            let mut r = rng(k as u64 + 1);
            let x = Array4::from_shape_fn((n, c, h, wd), |_| r());
            let w = Array4::from_shape_fn((o, c, 3, 3), |_| r());
            let layer = Conv2d::new(w.clone(), None, Conv2dConfig::default().padding(p)).unwrap();
            let g = layer.geometry(n, &[c, h, wd]).unwrap();
            assert!(
                layer.winograd_shape(&g).is_some(),
                "case {k} takes the Winograd path"
            );
            let y = layer.forward(x.view().into_dyn()).unwrap();
            let dev = max_rel(&y, &naive(&x, &w, p));
            assert!(dev < 1e-13, "case {k}: forward deviation {dev:e}");
            let s = Array4::from_shape_fn((n, o, g.ho, g.wo), |_| r());
            let t = layer
                .apply_transpose(s.view().into_dyn(), w.view().into_dyn(), &[c, h, wd])
                .unwrap();
            let dev = max_rel(&t, &naive_transpose(&s, &w, p, h, wd));
            assert!(dev < 1e-13, "case {k}: transpose deviation {dev:e}");
        }
    }

    /// Direct loops for any kernel, stride, padding and dilation: the forward
    /// y[n,o,oy,ox] = Σ w[o,c,i,j]·x[n,c,oy·sh+i·dh−ph, ox·sw+j·dw−pw], and the transpose
    /// g = Σ over the same taps of w·s, scattered back to x's positions.
    fn naive_any(
        x: &Array4<f64>,
        w: &Array4<f64>,
        s: &Array4<f64>,
        cfg: Conv2dConfig,
    ) -> (Array4<f64>, Array4<f64>) {
        let (n, c, h, wd) = x.dim();
        let (o, _, kh, kw) = w.dim();
        let (_, _, ho, wo) = s.dim();
        let mut y = Array4::zeros((n, o, ho, wo));
        let mut g = Array4::zeros((n, c, h, wd));
        for b in 0..n {
            for oc in 0..o {
                for oy in 0..ho {
                    for ox in 0..wo {
                        for ci in 0..c {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let yy = (oy * cfg.stride.0 + i * cfg.dilation.0) as isize
                                        - cfg.padding.0 as isize;
                                    let xx = (ox * cfg.stride.1 + j * cfg.dilation.1) as isize
                                        - cfg.padding.1 as isize;
                                    if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                                        let (yy, xx) = (yy as usize, xx as usize);
                                        y[[b, oc, oy, ox]] += w[[oc, ci, i, j]] * x[[b, ci, yy, xx]];
                                        g[[b, ci, yy, xx]] += w[[oc, ci, i, j]] * s[[b, oc, oy, ox]];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, g)
    }

    /// The im2col path (contiguous copies for stride-1 convolutions with Wo = W, short
    /// runs otherwise) against direct loops, forward and transpose.
    #[test]
    fn im2col_matches_direct_loops() {
        // (n, c, o, h, w, kernel, config)
        let d = Conv2dConfig::default;
        let cases = [
            (2, 3, 4, 7, 6, (3, 3), d().padding(1)),
            (1, 2, 3, 5, 9, (5, 5), d().padding(2)),
            (
                2,
                2,
                2,
                6,
                5,
                (1, 3),
                Conv2dConfig {
                    padding: (0, 1),
                    ..d()
                },
            ),
            (
                1,
                2,
                3,
                9,
                8,
                (3, 3),
                Conv2dConfig {
                    padding: (2, 2),
                    dilation: (2, 2),
                    ..d()
                },
            ),
            (
                2,
                1,
                3,
                6,
                7,
                (3, 3),
                Conv2dConfig {
                    padding: (0, 1),
                    ..d()
                },
            ),
            (1, 2, 2, 4, 1, (3, 3), d().padding(1)),
            (1, 2, 2, 3, 2, (5, 5), d().padding(2)),
            (2, 2, 3, 9, 8, (3, 3), d().padding(1).stride(2)),
            (1, 3, 2, 6, 7, (2, 3), d()),
        ];
        for (k, &(n, c, o, h, wd, (kh, kw), cfg)) in cases.iter().enumerate() {
            let mut r = rng(k as u64 + 11);
            let x = Array4::from_shape_fn((n, c, h, wd), |_| r());
            let w = Array4::from_shape_fn((o, c, kh, kw), |_| r());
            let layer = Conv2d::new(w.clone(), None, cfg).unwrap();
            let g = layer.geometry(n, &[c, h, wd]).unwrap();
            assert!(layer.winograd_shape(&g).is_none(), "case {k} takes im2col");
            let s = Array4::from_shape_fn((n, o, g.ho, g.wo), |_| r());
            let (y_ref, t_ref) = naive_any(&x, &w, &s, cfg);
            let y = layer.forward(x.view().into_dyn()).unwrap();
            let dev = max_rel(&y, &y_ref);
            assert!(dev < 1e-14, "case {k}: forward deviation {dev:e}");
            let t = layer
                .apply_transpose(s.view().into_dyn(), w.view().into_dyn(), &[c, h, wd])
                .unwrap();
            let dev = max_rel(&t, &t_ref);
            assert!(dev < 1e-14, "case {k}: transpose deviation {dev:e}");
        }
    }

    #[test]
    fn narrow_and_strided_layers_keep_im2col() {
        let w = Array4::<f64>::zeros((16, 8, 3, 3));
        let layer = Conv2d::new(w, None, Conv2dConfig::default().padding(1)).unwrap();
        assert!(layer
            .winograd_shape(&layer.geometry(1, &[8, 30, 30]).unwrap())
            .is_none());
        let w = Array4::<f64>::zeros((16, 16, 3, 3));
        let layer = Conv2d::new(w.clone(), None, Conv2dConfig::default().padding(1).stride(2)).unwrap();
        assert!(layer
            .winograd_shape(&layer.geometry(1, &[16, 40, 40]).unwrap())
            .is_none());
        let layer = Conv2d::new(w, None, Conv2dConfig::default().padding(1)).unwrap();
        assert!(layer
            .winograd_shape(&layer.geometry(1, &[16, 19, 20]).unwrap())
            .is_none());
        assert!(layer
            .winograd_shape(&layer.geometry(1, &[16, 20, 20]).unwrap())
            .is_some());
    }
}
