//! 2-D average pooling: fixed windows (`nn.AvgPool2d`), adaptive windows
//! (`nn.AdaptiveAvgPool2d`), and global average pooling.

use super::{Class, Layer, LinearMap, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::window::window_out;
use crate::pool::{output_buffer, written_zeros};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// How the windows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Windows {
    /// `nn.AvgPool2d`: kernel, stride, padding before and after, `ceil_mode`,
    /// `count_include_pad`.
    Fixed {
        kernel: (usize, usize),
        stride: (usize, usize),
        begin: (usize, usize),
        end: (usize, usize),
        ceil_mode: bool,
        count_include_pad: bool,
    },
    /// `nn.AdaptiveAvgPool2d(output_size)`.
    Adaptive((usize, usize)),
}

/// One window along one axis: input positions `lo..hi`, and the count it divides by.
#[derive(Debug, Clone, Copy)]
struct Span {
    lo: usize,
    hi: usize,
    count: usize,
}

/// 2-D average pooling, as `torch.nn.AvgPool2d` (kernel, stride, zero padding,
/// `ceil_mode`, `count_include_pad`), `torch.nn.AdaptiveAvgPool2d` ([`AvgPool2d::adaptive`],
/// PyTorch's windows `⌊i·H/H'⌋ .. ⌈(i+1)·H/H'⌉`) and global average pooling
/// ([`AvgPool2d::global`]).
///
/// Average pooling is a linear map without parameters: LRP rules apply zennit's `Norm`
/// here (relevance split in proportion to each input's share of the window sum, zennit's
/// rule for `types.AvgPool`), DeepLIFT its Linear rule.
///
/// # Shapes
/// Input `[N, C, H, W]`, output `[N, C, H', W']`.
///
/// # Example
/// ```
/// use ndarray::Array;
/// use relevance::{AvgPool2d, Layer};
/// # fn main() -> relevance::Result<()> {
/// let x = Array::from_shape_vec((1, 1, 2, 2), vec![1.0_f64, 2.0, 3.0, 6.0]).unwrap().into_dyn();
/// assert_eq!(AvgPool2d::global().forward(x.view())?.as_slice().unwrap(), &[3.0]);
/// assert_eq!(AvgPool2d::new((2, 1), (2, 1), (0, 0))?.forward(x.view())?.as_slice().unwrap(), &[2.0, 4.0]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d {
    windows: Windows,
}

impl AvgPool2d {
    /// Fixed windows from kernel, stride and padding, each (height, width), with PyTorch's
    /// defaults `ceil_mode = false`, `count_include_pad = true`.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a zero kernel or stride, or a padding above half the
    /// kernel (PyTorch's limit).
    pub fn new(kernel: (usize, usize), stride: (usize, usize), padding: (usize, usize)) -> Result<Self> {
        if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
            return Err(Error::InvalidLayer {
                layer: "AvgPool2d",
                reason: format!("kernel {kernel:?} and stride {stride:?} must be positive"),
            });
        }
        if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
            return Err(Error::InvalidLayer {
                layer: "AvgPool2d",
                reason: format!("padding {padding:?} must be at most half the kernel {kernel:?}"),
            });
        }
        Ok(AvgPool2d {
            windows: Windows::Fixed {
                kernel,
                stride,
                begin: padding,
                end: padding,
                ceil_mode: false,
                count_include_pad: true,
            },
        })
    }

    /// Windows whose output size is `(H', W')` whatever the input size, as
    /// `torch.nn.AdaptiveAvgPool2d`.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a zero output size.
    pub fn adaptive(output: (usize, usize)) -> Result<Self> {
        if output.0 == 0 || output.1 == 0 {
            return Err(Error::InvalidLayer {
                layer: "AvgPool2d",
                reason: format!("adaptive output size {output:?} must be positive"),
            });
        }
        Ok(AvgPool2d {
            windows: Windows::Adaptive(output),
        })
    }

    /// Global average pooling: the mean of each channel, `[N, C, 1, 1]`
    /// (`AdaptiveAvgPool2d(1)`, ONNX `GlobalAveragePool`).
    pub fn global() -> Self {
        AvgPool2d {
            windows: Windows::Adaptive((1, 1)),
        }
    }

    /// The same pool with PyTorch's `ceil_mode` (no effect on adaptive pooling).
    pub fn with_ceil_mode(mut self, ceil: bool) -> Self {
        if let Windows::Fixed { ceil_mode, .. } = &mut self.windows {
            *ceil_mode = ceil;
        }
        self
    }

    /// The same pool with PyTorch's `count_include_pad`: whether the padding counts in
    /// the divisor (no effect on adaptive pooling).
    pub fn with_count_include_pad(mut self, include: bool) -> Self {
        if let Windows::Fixed {
            count_include_pad, ..
        } = &mut self.windows
        {
            *count_include_pad = include;
        }
        self
    }

    /// The same pool with different padding before (top, left) and after (bottom, right)
    /// the input, as ONNX's `pads` can have (no effect on adaptive pooling).
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for a padding above half the kernel.
    pub fn with_pads(mut self, pad_begin: (usize, usize), pad_end: (usize, usize)) -> Result<Self> {
        if let Windows::Fixed {
            kernel, begin, end, ..
        } = &mut self.windows
        {
            if [pad_begin.0, pad_end.0].iter().any(|&p| p > kernel.0 / 2)
                || [pad_begin.1, pad_end.1].iter().any(|&p| p > kernel.1 / 2)
            {
                return Err(Error::InvalidLayer {
                    layer: "AvgPool2d",
                    reason: format!(
                        "padding {pad_begin:?}/{pad_end:?} must be at most half the kernel {kernel:?}"
                    ),
                });
            }
            *begin = pad_begin;
            *end = pad_end;
        }
        Ok(self)
    }

    /// The windows along one axis (0: height, 1: width) of an input of length `len`.
    fn spans(&self, axis: usize, len: usize) -> Option<Vec<Span>> {
        let pick = |p: (usize, usize)| if axis == 0 { p.0 } else { p.1 };
        match self.windows {
            Windows::Fixed {
                kernel,
                stride,
                begin,
                end,
                ceil_mode,
                count_include_pad,
            } => {
                let (k, s, pb, pe) = (pick(kernel), pick(stride), pick(begin), pick(end));
                let out = window_out(len, k, s, (pb, pe), 1, ceil_mode)?;
                Some(
                    (0..out)
                        .map(|o| {
                            // PyTorch's avg_pool2d: the window is cut at the padded end, and
                            // then at the input for the sum
                            let start = (o * s) as isize - pb as isize;
                            let stop = (start + k as isize).min((len + pe) as isize);
                            let (lo, hi) = (start.max(0) as usize, (stop.min(len as isize)).max(0) as usize);
                            let count = if count_include_pad {
                                (stop - start) as usize
                            } else {
                                hi - lo
                            };
                            Span { lo, hi, count }
                        })
                        .collect(),
                )
            }
            Windows::Adaptive(size) => {
                let out = pick(size);
                Some(
                    (0..out)
                        .map(|o| {
                            let lo = o * len / out;
                            let hi = ((o + 1) * len).div_ceil(out);
                            Span {
                                lo,
                                hi,
                                count: hi - lo,
                            }
                        })
                        .collect(),
                )
            }
        }
    }

    /// The windows of both axes for a per-sample input shape `[C, H, W]`.
    fn geometry(&self, input_shape: &[usize]) -> Result<(Vec<Span>, Vec<Span>)> {
        if input_shape.len() != 3 {
            return Err(Error::Rank {
                what: "AvgPool2d input (per sample, [C, H, W])".into(),
                expected: 3,
                got: input_shape.len(),
                shape: input_shape.to_vec(),
            });
        }
        match (self.spans(0, input_shape[1]), self.spans(1, input_shape[2])) {
            (Some(ys), Some(xs))
                if input_shape[1] > 0 && input_shape[2] > 0 && !ys.is_empty() && !xs.is_empty() =>
            {
                Ok((ys, xs))
            }
            _ => Err(Error::InvalidLayer {
                layer: "AvgPool2d",
                reason: format!("the windows do not fit the input {input_shape:?}"),
            }),
        }
    }

    fn check4<'a, F>(what: &str, a: &ArrayViewD<'a, F>) -> Result<()> {
        if a.ndim() != 4 {
            return Err(Error::Rank {
                what: what.to_string(),
                expected: 4,
                got: a.ndim(),
                shape: a.shape().to_vec(),
            });
        }
        Ok(())
    }
}

impl<F: Float> Layer<F> for AvgPool2d {
    fn name(&self) -> String {
        match self.windows {
            Windows::Fixed { kernel, stride, .. } => {
                format!("AvgPool2d({}×{}, stride {:?})", kernel.0, kernel.1, stride)
            }
            Windows::Adaptive((1, 1)) => "GlobalAvgPool2d".into(),
            Windows::Adaptive((h, w)) => format!("AdaptiveAvgPool2d({h}×{w})"),
        }
    }

    fn class(&self) -> Class<'_, F> {
        Class::AvgPool(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let (ys, xs) = self.geometry(input_shape)?;
        Ok(vec![input_shape[0], ys.len(), xs.len()])
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Self::check4("AvgPool2d input", &input)?;
        let (n, c, h, w) = (
            input.shape()[0],
            input.shape()[1],
            input.shape()[2],
            input.shape()[3],
        );
        let (ys, xs) = self.geometry(&[c, h, w])?;
        let x = input.as_standard_layout();
        let src = crate::tensor::layout::standard(&x);
        let (ho, wo) = (ys.len(), xs.len());
        let mut out = output_buffer::<F>(n * c * ho * wo); // every element is written
        for (plane, dst) in src.chunks_exact(h * w).zip(out.chunks_exact_mut(ho * wo)) {
            for (oy, sy) in ys.iter().enumerate() {
                for (ox, sx) in xs.iter().enumerate() {
                    let mut sum = F::zero();
                    for iy in sy.lo..sy.hi {
                        for &v in &plane[iy * w + sx.lo..iy * w + sx.hi] {
                            sum += v;
                        }
                    }
                    dst[oy * wo + ox] = sum / F::lit((sy.count * sx.count) as f64);
                }
            }
        }
        Ok(crate::tensor::layout::shaped(IxDyn(&[n, c, ho, wo]), out))
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let mut parts = LinearMap::transpose(
            self,
            grad_output,
            &[crate::tensor::checks::per_sample(step.input.shape())],
        )?;
        Ok(parts.pop().expect("one input"))
    }
}

impl<F: Float> LinearMap<F> for AvgPool2d {
    /// Each output's value, divided by its window's count, added to every input of its
    /// window.
    fn transpose(&self, s: ArrayViewD<'_, F>, input_shapes: &[&[usize]]) -> Result<Vec<ArrayD<F>>> {
        Self::check4("AvgPool2d output relevance", &s)?;
        let [shape] = input_shapes else {
            return Err(Error::Graph {
                node: "AvgPool2d".into(),
                reason: format!("one input, got {}", input_shapes.len()),
            });
        };
        let (ys, xs) = self.geometry(shape)?;
        let (n, c, h, w) = (s.shape()[0], shape[0], shape[1], shape[2]);
        let (ho, wo) = (ys.len(), xs.len());
        if s.shape()[1..] != [c, ho, wo] {
            return Err(Error::Shape {
                what: "AvgPool2d output relevance".into(),
                expected: vec![n, c, ho, wo],
                got: s.shape().to_vec(),
            });
        }
        let s = s.as_standard_layout();
        let src = crate::tensor::layout::standard(&s);
        // scatter-adds: start from written zeros
        let mut out = written_zeros::<F>(n * c * h * w);
        for (plane, dst) in src.chunks_exact(ho * wo).zip(out.chunks_exact_mut(h * w)) {
            for (oy, sy) in ys.iter().enumerate() {
                for (ox, sx) in xs.iter().enumerate() {
                    let v = plane[oy * wo + ox] / F::lit((sy.count * sx.count) as f64);
                    for iy in sy.lo..sy.hi {
                        for d in &mut dst[iy * w + sx.lo..iy * w + sx.hi] {
                            *d += v;
                        }
                    }
                }
            }
        }
        Ok(vec![crate::tensor::layout::shaped(IxDyn(&[n, c, h, w]), out)])
    }
}
