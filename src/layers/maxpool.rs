//! 2-D max pooling.

use super::{Class, Layer, Select, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::window::window_out;
use crate::pool::{output_buffer, written_zeros};
use ndarray::{Array4, ArrayD, ArrayViewD, Ix4};
use window_2x2::{dims_2x2, zero_outside_2x2};

/// Whether the passes of a pool over `len` values with general windows (the forward pass,
/// [`MaxPool2d::argmax`], [`MaxPool2d::route`]) split their planes across threads (feature
/// `parallel`): from 2^18
/// values, a quarter of the elementwise passes' threshold, since each value costs a window
/// scan, not one operation (ResNet's stem pool, 64 × 112 × 112, runs on two threads). Planes
/// are independent: the split changes no bit.
#[cfg(feature = "parallel")]
fn par_planes(len: usize) -> bool {
    len >= 1 << 18 && rayon::current_num_threads() > 1
}

mod cross_max;
mod window_2x2;
mod window_general;

/// 2-D max pooling, as `torch.nn.MaxPool2d` (padding with −∞, windows may overlap,
/// `ceil_mode` as PyTorch; the padding may differ per side, as ONNX's `MaxPool` or an
/// `F.pad` with −∞ before the pool).
///
/// LRP rules route the relevance of each output to the position of its window's maximum
/// (the gradient, as zennit and captum's LRP do); on ties the first maximum in row-major
/// order wins, as PyTorch. Overlapping windows add up.
///
/// # Shapes
/// Input `[N, C, H, W]`, output `[N, C, H', W']` with
/// `H' = ⌊(H + pad_top + pad_bottom − kh) / stride⌋ + 1` (likewise W'; rounded up with
/// [`MaxPool2d::with_ceil_mode`], as long as the last window starts inside the input or
/// its leading padding).
///
/// # Example
/// ```
/// use ndarray::Array;
/// use relevance::{Layer, MaxPool2d};
/// # fn main() -> relevance::Result<()> {
/// let pool = MaxPool2d::new((2, 2), (2, 2), (0, 0))?;
/// let x = Array::from_shape_vec((1, 1, 2, 2), vec![1.0_f64, 4.0, 3.0, 2.0]).unwrap();
/// assert_eq!(pool.forward(x.into_dyn().view())?.as_slice().unwrap(), &[4.0]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    kernel: (usize, usize),
    stride: (usize, usize),
    /// Padding before (top, left) and after (bottom, right).
    padding: (usize, usize),
    pad_end: (usize, usize),
    ceil_mode: bool,
}

impl MaxPool2d {
    /// Builds the layer from kernel, stride and padding, each (height, width).
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a zero kernel or stride, or a padding above half the
    /// kernel (PyTorch's limit, which keeps every window partly inside the input).
    pub fn new(kernel: (usize, usize), stride: (usize, usize), padding: (usize, usize)) -> Result<Self> {
        if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
            return Err(Error::InvalidLayer {
                layer: "MaxPool2d",
                reason: format!("kernel {kernel:?} and stride {stride:?} must be positive"),
            });
        }
        if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
            return Err(Error::InvalidLayer {
                layer: "MaxPool2d",
                reason: format!("padding {padding:?} must be at most half the kernel {kernel:?}"),
            });
        }
        Ok(MaxPool2d {
            kernel,
            stride,
            padding,
            pad_end: padding,
            ceil_mode: false,
        })
    }

    /// The same pool padded by `begin` (top, left) and `end` (bottom, right), each at most
    /// the kernel size minus one, so that every window holds an input value.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a padding as large as the kernel.
    pub fn with_pads(mut self, begin: (usize, usize), end: (usize, usize)) -> Result<Self> {
        if [begin.0, end.0].iter().any(|&p| p >= self.kernel.0)
            || [begin.1, end.1].iter().any(|&p| p >= self.kernel.1)
        {
            return Err(Error::InvalidLayer {
                layer: "MaxPool2d",
                reason: format!(
                    "padding {begin:?}/{end:?} must be smaller than the kernel {:?}",
                    self.kernel
                ),
            });
        }
        (self.padding, self.pad_end) = (begin, end);
        Ok(self)
    }

    /// The padding before (top, left) and after (bottom, right).
    pub fn pads(&self) -> ((usize, usize), (usize, usize)) {
        (self.padding, self.pad_end)
    }

    /// The same pool with PyTorch's `ceil_mode`: output sizes rounded up, so that the
    /// windows cover the end of the input (the last window may be cut short).
    pub fn with_ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Whether output sizes are rounded up (PyTorch's `ceil_mode`).
    pub fn ceil_mode(&self) -> bool {
        self.ceil_mode
    }

    /// Whether this is the common 2×2 / stride-2 pool without padding whose windows tile
    /// an input of `h × w` exactly or leave the last row and column out (the one-pass paths).
    fn is_plain_2x2(&self, h: usize, w: usize) -> bool {
        (self.kernel, self.stride, self.padding, self.pad_end) == ((2, 2), (2, 2), (0, 0), (0, 0))
            && (!self.ceil_mode || (h % 2 == 0 && w % 2 == 0))
    }

    /// A square window whose stride equals its size, no padding (`nn.MaxPool2d(k)`).
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] if `k` is zero.
    pub fn square(k: usize) -> Result<Self> {
        Self::new((k, k), (k, k), (0, 0))
    }

    /// Kernel, stride and padding (before; see [`MaxPool2d::pads`]).
    pub fn params(&self) -> ((usize, usize), (usize, usize), (usize, usize)) {
        (self.kernel, self.stride, self.padding)
    }

    fn spatial_out(&self, input_shape: &[usize]) -> Result<(usize, usize)> {
        if input_shape.len() != 3 {
            return Err(Error::Rank {
                what: "MaxPool2d input (per sample, [C, H, W])".into(),
                expected: 3,
                got: input_shape.len(),
                shape: input_shape.to_vec(),
            });
        }
        let (begin, end) = (self.padding, self.pad_end);
        let ho = window_out(
            input_shape[1],
            self.kernel.0,
            self.stride.0,
            (begin.0, end.0),
            1,
            self.ceil_mode,
        );
        let wo = window_out(
            input_shape[2],
            self.kernel.1,
            self.stride.1,
            (begin.1, end.1),
            1,
            self.ceil_mode,
        );
        match (ho, wo) {
            (Some(ho), Some(wo)) => Ok((ho, wo)),
            _ => Err(Error::InvalidLayer {
                layer: "MaxPool2d",
                reason: format!(
                    "kernel {:?} does not fit the input {:?} padded by {:?}/{:?}",
                    self.kernel, input_shape, self.padding, self.pad_end
                ),
            }),
        }
    }

    /// For every output element, its value and the flat index (within its `[H, W]` plane)
    /// of the first maximum of its window.
    ///
    /// # Shapes
    /// `input` `[N, C, H, W]`; both results `[N, C, H', W']`.
    ///
    /// # Errors
    /// A rank or shape error if the input is not 4-D or too small.
    pub fn argmax<F: Float>(&self, input: &ArrayViewD<'_, F>) -> Result<(Array4<F>, Array4<usize>)> {
        let shape = input.shape().to_vec();
        let x = input
            .view()
            .into_dimensionality::<Ix4>()
            .map_err(|_| Error::Rank {
                what: "MaxPool2d input".into(),
                expected: 4,
                got: shape.len(),
                shape: shape.clone(),
            })?;
        let (ho, wo) = self.spatial_out(&shape[1..])?;
        let (n, c, h, w) = x.dim();
        let x = x.as_standard_layout();
        let src = crate::tensor::layout::standard(&x);
        let mut vals = Array4::<F>::zeros((n, c, ho, wo));
        let mut idx = Array4::<usize>::zeros((n, c, ho, wo));
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (ph, pw) = (self.padding.0 as isize, self.padding.1 as isize);
        let vbuf = crate::tensor::layout::standard_mut(&mut vals);
        let ibuf = crate::tensor::layout::standard_mut(&mut idx);
        let plain = self.is_plain_2x2(h, w);
        let windows = window_general::intervals(ho, h, kh, sh, self.padding.0)
            .zip(window_general::intervals(wo, w, kw, sw, self.padding.1));
        let fill = |(plane, (vout, iout)): (&[F], (&mut [F], &mut [usize]))| {
            if let (false, Some((rows, cols))) = (plain, &windows) {
                let mut scratch = window_general::Rows::new();
                window_general::pool_plane(plane, w, (rows, cols), &mut scratch, vout, Some(iout));
                return;
            }
            if plain {
                // the common 2×2 / stride 2 pool: straight-line code, same first-max order
                for oy in 0..ho {
                    let (r0, r1) = (&plane[2 * oy * w..], &plane[(2 * oy + 1) * w..]);
                    for ox in 0..wo {
                        let x0 = 2 * ox;
                        let (mut best, mut at) = (r0[x0], 2 * oy * w + x0);
                        for (v, pos) in [(r0[x0 + 1], at + 1), (r1[x0], at + w), (r1[x0 + 1], at + w + 1)] {
                            if v > best {
                                best = v;
                                at = pos;
                            }
                        }
                        vout[oy * wo + ox] = best;
                        iout[oy * wo + ox] = at;
                    }
                }
                return;
            }
            for oy in 0..ho {
                let y0 = oy as isize * sh as isize - ph;
                let (ylo, yhi) = (y0.max(0) as usize, ((y0 + kh as isize).min(h as isize)) as usize);
                for ox in 0..wo {
                    let x0 = ox as isize * sw as isize - pw;
                    let (xlo, xhi) = (x0.max(0) as usize, ((x0 + kw as isize).min(w as isize)) as usize);
                    // The first maximum in row-major order wins (strictly greater), as
                    // PyTorch. Inputs are finite (checked at the network input), so no NaN.
                    let mut at = ylo * w + xlo;
                    let mut best = plane[at];
                    for iy in ylo..yhi {
                        let start = iy * w + xlo;
                        for (k, &v) in plane[start..iy * w + xhi].iter().enumerate() {
                            if v > best {
                                best = v;
                                at = start + k;
                            }
                        }
                    }
                    vout[oy * wo + ox] = best;
                    iout[oy * wo + ox] = at;
                }
            }
        };
        // planes in parallel for large inputs (feature `parallel`)
        #[cfg(feature = "parallel")]
        if par_planes(src.len()) {
            use rayon::prelude::*;
            src.par_chunks_exact(h * w)
                .zip(
                    vbuf.par_chunks_exact_mut(ho * wo)
                        .zip(ibuf.par_chunks_exact_mut(ho * wo)),
                )
                .for_each(fill);
            return Ok((vals, idx));
        }
        src.chunks_exact(h * w)
            .zip(vbuf.chunks_exact_mut(ho * wo).zip(ibuf.chunks_exact_mut(ho * wo)))
            .for_each(fill);
        Ok((vals, idx))
    }

    /// Adds each value of `values` `[N, C, H', W']` at the input position `indices` names
    /// (as returned by [`MaxPool2d::argmax`]), into a zero array of `input_shape`
    /// `[N, C, H, W]`. This is the max-pool gradient, and LRP's winner-take-all routing.
    ///
    /// # Errors
    /// A shape error if `values` and `indices` disagree or do not fit `input_shape`.
    pub fn route<F: Float>(
        &self,
        input_shape: &[usize],
        indices: &Array4<usize>,
        values: &ArrayViewD<'_, F>,
    ) -> Result<ArrayD<F>> {
        if values.shape() != indices.shape()
            || input_shape.len() != 4
            || input_shape[..2] != indices.shape()[..2]
        {
            return Err(Error::Shape {
                what: "MaxPool2d relevance".into(),
                expected: indices.shape().to_vec(),
                got: values.shape().to_vec(),
            });
        }
        let plane = input_shape[2].checked_mul(input_shape[3]).unwrap_or(0);
        // per sample within the crate's activation limit (the input it was pooled from was)
        let per_sample = plane.checked_mul(input_shape[1]);
        let pooled = indices.shape()[2] * indices.shape()[3];
        if plane == 0 || pooled == 0 || per_sample.is_none_or(|t| t > crate::io::MAX_ACTIVATION) {
            return Err(Error::Shape {
                what:
                    "MaxPool2d relevance routing (non-empty planes, at most MAX_ACTIVATION values per sample)"
                        .into(),
                expected: indices.shape().to_vec(),
                got: input_shape.to_vec(),
            });
        }
        if let Some(&at) = indices.iter().find(|&&i| i >= plane) {
            return Err(Error::Shape {
                what: format!("MaxPool2d routing index {at} (outside the input plane of {plane} values)"),
                expected: input_shape.to_vec(),
                got: indices.shape().to_vec(),
            });
        }
        let dim = (input_shape[0], input_shape[1], input_shape[2], input_shape[3]);
        // scatter-adds read before they write: start from written zeros
        let mut out = crate::tensor::layout::shaped(dim, written_zeros(dim.0 * dim.1 * plane));
        let values = values.as_standard_layout();
        let vals = crate::tensor::layout::standard(&values);
        let idx = indices.as_standard_layout();
        let idx = crate::tensor::layout::standard(&idx);
        let buf = crate::tensor::layout::standard_mut(&mut out);
        let add = |(dst, (v, i)): (&mut [F], (&[F], &[usize]))| {
            for (&v, &at) in v.iter().zip(i) {
                dst[at] += v;
            }
        };
        #[cfg(feature = "parallel")]
        if par_planes(buf.len()) {
            use rayon::prelude::*;
            buf.par_chunks_exact_mut(plane)
                .zip(vals.par_chunks_exact(pooled).zip(idx.par_chunks_exact(pooled)))
                .for_each(add);
            return Ok(out.into_dyn());
        }
        buf.chunks_exact_mut(plane)
            .zip(vals.chunks_exact(pooled).zip(idx.chunks_exact(pooled)))
            .for_each(add);
        Ok(out.into_dyn())
    }

    /// Routes `values` (at the output) to the first maximum of each window of `input`.
    ///
    /// # Errors
    /// A shape error if the arrays do not fit.
    pub fn route_to_max<F: Float>(
        &self,
        input: &ArrayViewD<'_, F>,
        values: &ArrayViewD<'_, F>,
    ) -> Result<ArrayD<F>> {
        if input.ndim() == 4 && self.is_plain_2x2(input.shape()[2], input.shape()[3]) {
            if let Some(routed) = self.route_to_max_2x2(input, values) {
                return Ok(routed);
            }
        }
        let (_, idx) = self.argmax(input)?;
        self.route(input.shape(), &idx, values)
    }

    /// [`MaxPool2d::route_to_max`] for the common 2×2 / stride 2 pool in one pass, without
    /// index arrays (same first-maximum order as [`MaxPool2d::argmax`]). `None` if the
    /// shapes do not fit (the general path then reports the error).
    fn route_to_max_2x2<F: Float>(
        &self,
        input: &ArrayViewD<'_, F>,
        values: &ArrayViewD<'_, F>,
    ) -> Option<ArrayD<F>> {
        let [n, c, h, w, ho, wo] = dims_2x2(input, values)?;
        let input = input.as_standard_layout();
        let src = input.as_slice()?;
        let values = values.as_standard_layout();
        let vals = values.as_slice()?;
        // every element is written below
        let mut out =
            ArrayD::from_shape_vec(ndarray::IxDyn(&[n, c, h, w]), output_buffer(n * c * h * w)).ok()?;
        let buf = out.as_slice_mut()?;
        let fill = |((plane, dst), v): ((&[F], &mut [F]), &[F])| {
            crate::kernels::simd::vectorized(window_2x2::RoutePlane {
                plane,
                dst,
                v,
                h,
                w,
                wo,
            })
        };
        #[cfg(feature = "parallel")]
        if crate::kernels::elementwise::par_elems(src.len()) {
            use rayon::prelude::*;
            src.par_chunks_exact(h * w)
                .zip(buf.par_chunks_exact_mut(h * w))
                .zip(vals.par_chunks_exact(ho * wo))
                .for_each(fill);
            return Some(out);
        }
        src.chunks_exact(h * w)
            .zip(buf.chunks_exact_mut(h * w))
            .zip(vals.chunks_exact(ho * wo))
            .for_each(fill);
        Some(out)
    }
    /// DeepLIFT's cross-max rule (`rules::MaxPoolRule::CrossMax`) for the common 2×2 /
    /// stride 2 pool in one pass: no index arrays, no routed intermediates. For each window,
    /// with `y`, `ȳ` the maxima of `x` and `x̄` (first maximum wins), `ŷ = max(y, ȳ)` and
    /// `m` the output multiplier, the argmax of `x` gets `m·(ŷ − ȳ)` and the argmax of `x̄`
    /// gets `m·(y − ŷ)`; each input takes its sum over `Δx`, or the gradient (`m` at the
    /// argmax of `x`, else 0) where `|Δx| < threshold`. Same values, bit for bit, as the
    /// general path in `rules::deeplift`. `None` if the pool or the shapes do not fit
    /// (the general path then runs, and reports any error).
    ///
    /// `baseline` is `x`'s shape, or one row broadcast over the batch (stride 0).
    pub(crate) fn cross_max_2x2<F: Float>(
        &self,
        input: &ArrayViewD<'_, F>,
        baseline: &ArrayViewD<'_, F>,
        multiplier: &ArrayViewD<'_, F>,
        threshold: F,
    ) -> Option<ArrayD<F>> {
        if input.ndim() != 4
            || !self.is_plain_2x2(input.shape()[2], input.shape()[3])
            || baseline.shape() != input.shape()
        {
            return None;
        }
        let [n, c, h, w, ho, wo] = dims_2x2(input, multiplier)?;
        let input = input.as_standard_layout();
        let xs = input.as_slice()?;
        // a broadcast baseline row is read in place, not copied out over the batch
        let broadcast = n > 1 && baseline.strides()[0] == 0;
        let rows = if broadcast {
            baseline.index_axis(ndarray::Axis(0), 0)
        } else {
            baseline.view()
        };
        let rows = rows.as_standard_layout();
        let x0s = rows.as_slice()?;
        let x0_len = x0s.len();
        let multiplier = multiplier.as_standard_layout();
        let ms = multiplier.as_slice()?;
        // every element is written below
        let mut out =
            ArrayD::from_shape_vec(ndarray::IxDyn(&[n, c, h, w]), output_buffer(n * c * h * w)).ok()?;
        let buf = out.as_slice_mut()?;
        let fill = |(plane, dst): (usize, &mut [F])| {
            let px = &xs[plane * h * w..(plane + 1) * h * w];
            let at0 = (plane * h * w) % x0_len;
            let p0 = &x0s[at0..at0 + h * w];
            let pm = &ms[plane * ho * wo..(plane + 1) * ho * wo];
            zero_outside_2x2(dst, h, w);
            crate::kernels::simd::vectorized(window_2x2::CrossMaxPlane {
                px,
                p0,
                pm,
                dst,
                w,
                ho,
                wo,
                threshold,
            })
        };
        #[cfg(feature = "parallel")]
        if crate::kernels::elementwise::par_elems(buf.len()) {
            use rayon::prelude::*;
            buf.par_chunks_exact_mut(h * w).enumerate().for_each(fill);
            return Some(out);
        }
        buf.chunks_exact_mut(h * w).enumerate().for_each(fill);
        Some(out)
    }
}

impl<F: Float> Layer<F> for MaxPool2d {
    fn name(&self) -> String {
        format!(
            "MaxPool2d({}×{}, stride {:?}{})",
            self.kernel.0,
            self.kernel.1,
            self.stride,
            if self.ceil_mode { ", ceil" } else { "" }
        )
    }

    fn class(&self) -> Class<'_, F> {
        Class::MaxPool(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let (ho, wo) = self.spatial_out(input_shape)?;
        Ok(vec![input_shape[0], ho, wo])
    }

    /// The plain 2×2 pool (as its one-pass forward) on `[C, H, W]` inputs of at least 2×2.
    fn as_fused(&self, input_shape: &[usize]) -> Option<super::Fused> {
        match *input_shape {
            [_, h, w] if h >= 2 && w >= 2 && self.is_plain_2x2(h, w) => Some(super::Fused::MaxPool2x2),
            _ => None,
        }
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        if input.ndim() == 4 && self.is_plain_2x2(input.shape()[2], input.shape()[3]) {
            let (n, c, h, w) = (
                input.shape()[0],
                input.shape()[1],
                input.shape()[2],
                input.shape()[3],
            );
            if h >= 2 && w >= 2 {
                // the common pool in one pass, without the index array of `argmax`
                let (ho, wo) = (h / 2, w / 2);
                let input = input.as_standard_layout();
                let src = crate::tensor::layout::standard(&input);
                // every element is written below
                let mut out = crate::tensor::layout::shaped((n, c, ho, wo), output_buffer(n * c * ho * wo));
                let buf = crate::tensor::layout::standard_mut(&mut out);
                let fill = |(plane, dst): (&[F], &mut [F])| {
                    crate::kernels::simd::vectorized(window_2x2::PoolPlane {
                        plane,
                        dst,
                        w,
                        ho,
                        wo,
                    })
                };
                #[cfg(feature = "parallel")]
                if crate::kernels::elementwise::par_elems(src.len()) {
                    use rayon::prelude::*;
                    src.par_chunks_exact(h * w)
                        .zip(buf.par_chunks_exact_mut(ho * wo))
                        .for_each(fill);
                    return Ok(out.into_dyn());
                }
                src.chunks_exact(h * w)
                    .zip(buf.chunks_exact_mut(ho * wo))
                    .for_each(fill);
                return Ok(out.into_dyn());
            }
        }
        if input.ndim() == 4 {
            let (ho, wo) = self.spatial_out(&input.shape()[1..])?;
            let window = ((ho, wo), self.kernel, self.stride, self.padding);
            if let Some(out) = window_general::pool_values(&input, window) {
                return Ok(out);
            }
        }
        Ok(self.argmax(&input)?.0.into_dyn())
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.route_to_max(&step.input, &grad_output)
    }
}

impl<F: Float> Select<F> for MaxPool2d {
    /// [`MaxPool2d::route_to_max`].
    fn route(&self, input: &ArrayViewD<'_, F>, values: &ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.route_to_max(input, values)
    }

    /// The one-pass cross-max of the common 2×2 / stride-2 pool; for other windows, the
    /// general form with each input's first maxima found once (`MaxPool2d::cross_max_indexed`).
    fn cross_max(
        &self,
        input: &ArrayViewD<'_, F>,
        baseline: &ArrayViewD<'_, F>,
        multiplier: &ArrayViewD<'_, F>,
        threshold: F,
    ) -> Option<ArrayD<F>> {
        self.cross_max_2x2(input, baseline, multiplier, threshold)
            .or_else(|| self.cross_max_indexed(input, baseline, multiplier, threshold))
    }
}
