//! Resizing the spatial axes by interpolation (ONNX `Resize`, `torch.nn.functional.interpolate`):
//! a fixed linear map, separable along each axis.

use super::{Class, Layer, LinearMap, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

/// How an output coordinate maps to an input coordinate (ONNX `Resize`'s
/// `coordinate_transformation_mode`; `scale = out / in`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Coordinates {
    /// `x_in = (x + 0.5) / scale − 0.5` (PyTorch's `align_corners=False`; ONNX's default).
    HalfPixel,
    /// As `HalfPixel`, but `0` when the output has length 1.
    PytorchHalfPixel,
    /// `x_in = x · (in − 1) / (out − 1)` (PyTorch's `align_corners=True`).
    AlignCorners,
    /// `x_in = x / scale`.
    Asymmetric,
}

/// How values between input samples are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Interpolation {
    /// The nearest input sample; `round_half_down`: ties go to the lower index (ONNX's
    /// default `round_prefer_floor`), else to the upper; `floor` (ONNX `floor`, PyTorch's
    /// `nearest`) overrides the rounding.
    Nearest {
        /// Take `floor(x_in)` (ONNX `nearest_mode = floor`).
        floor: bool,
        /// On a tie, the lower index (`round_prefer_floor`) rather than the upper.
        round_half_down: bool,
    },
    /// Linear between the two neighbours (bilinear in 2-D).
    Linear,
    /// Cubic convolution on four neighbours with coefficient `a` (ONNX `cubic_coeff_a`,
    /// −0.75 by default and in PyTorch's `bicubic`; Keys 1981).
    Cubic {
        /// The kernel's coefficient.
        a: f64,
    },
}

/// The weights of a 1-D resize from `len_in` to `len_out` samples: per output sample,
/// `(input index, weight)` pairs, indices clamped to the edges (ONNX's reference
/// implementation `onnx/reference/ops/op_resize.py` pads with the edge values and
/// `exclude_outside = 0`).
pub(crate) fn weights_1d(
    len_in: usize,
    len_out: usize,
    interpolation: Interpolation,
    coordinates: Coordinates,
) -> Vec<Vec<(usize, f64)>> {
    let scale = len_out as f64 / len_in as f64;
    let last = len_in as i64 - 1;
    let clamp = |i: i64| i.clamp(0, last) as usize;
    (0..len_out)
        .map(|x| {
            let x = x as f64;
            let x_in = match coordinates {
                Coordinates::HalfPixel => (x + 0.5) / scale - 0.5,
                Coordinates::PytorchHalfPixel if len_out > 1 => (x + 0.5) / scale - 0.5,
                Coordinates::PytorchHalfPixel => 0.0,
                Coordinates::AlignCorners if len_out == 1 => 0.0,
                Coordinates::AlignCorners => x * (len_in as f64 - 1.0) / (len_out as f64 - 1.0),
                Coordinates::Asymmetric => x / scale,
            };
            let base = x_in.floor();
            let r = x_in - base;
            let b = base as i64;
            match interpolation {
                Interpolation::Nearest {
                    floor,
                    round_half_down,
                } => {
                    let i = if floor || r < 0.5 || (r == 0.5 && round_half_down) {
                        b
                    } else {
                        b + 1
                    };
                    vec![(clamp(i), 1.0)]
                }
                Interpolation::Linear if r == 0.0 => vec![(clamp(b), 1.0)],
                Interpolation::Linear => vec![(clamp(b), 1.0 - r), (clamp(b + 1), r)],
                Interpolation::Cubic { .. } if r == 0.0 => vec![(clamp(b), 1.0)],
                Interpolation::Cubic { a } => {
                    // Keys' kernel at distances 1 + r, r, 1 − r, 2 − r
                    let near = |t: f64| ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
                    let far = |t: f64| ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a;
                    vec![
                        (clamp(b - 1), far(1.0 + r)),
                        (clamp(b), near(r)),
                        (clamp(b + 1), near(1.0 - r)),
                        (clamp(b + 2), far(2.0 - r)),
                    ]
                }
            }
        })
        .collect()
}

/// `a` resized along `axis` to `len_out` samples with `weights` ([`weights_1d`]), or its
/// transpose (`len_out` is then the input length the weights were made for).
pub(crate) fn along<F: Float>(
    a: ArrayViewD<'_, F>,
    axis: usize,
    weights: &[Vec<(usize, f64)>],
    len_out: usize,
    transpose: bool,
) -> ArrayD<F> {
    let mut shape = a.shape().to_vec();
    shape[axis] = len_out;
    let mut out = ArrayD::<F>::zeros(IxDyn(&shape));
    for (o, row) in weights.iter().enumerate() {
        for &(i, w) in row {
            let w = F::lit(w);
            let (from, to) = if transpose { (o, i) } else { (i, o) };
            let src = a.index_axis(Axis(axis), from);
            let mut dst = out.index_axis_mut(Axis(axis), to);
            dst.zip_mut_with(&src, |d, &s| *d += w * s);
        }
    }
    out
}

/// Resizing of the spatial axes of `[N, C, spatial...]` to fixed sizes by interpolation,
/// as ONNX `Resize` (with `sizes`, `exclude_outside = 0`, no antialiasing) and PyTorch's
/// `F.interpolate(x, size)`: e.g. a segmentation or saliency decoder's final bilinear
/// upsampling to the image size.
///
/// It is a parameter-free linear map, of class [`Class::AvgPool`]: LRP rules redistribute
/// relevance in proportion to each input's contribution (zennit's `Norm` rule, as for
/// average pooling), DeepLIFT applies its Linear rule.
///
/// ```
/// use ndarray::array;
/// use relevance::{Coordinates, Interpolation, Layer, Resize};
/// # fn main() -> relevance::Result<()> {
/// let up = Resize::new(&[4], Interpolation::Linear, Coordinates::HalfPixel)?;
/// let x = array![[[0.0_f64, 4.0]]].into_dyn(); // [N, C, L]
/// assert_eq!(up.forward(x.view())?, array![[[0.0, 1.0, 3.0, 4.0]]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Resize {
    sizes: Vec<usize>,
    interpolation: Interpolation,
    coordinates: Coordinates,
}

impl Resize {
    /// Resizing the spatial axes (the axes after `[N, C]`) to `sizes`.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for no size, a zero size or a non-finite cubic coefficient.
    pub fn new(sizes: &[usize], interpolation: Interpolation, coordinates: Coordinates) -> Result<Self> {
        let bad = |reason: String| Error::InvalidLayer {
            layer: "Resize",
            reason,
        };
        if sizes.is_empty() || sizes.contains(&0) {
            return Err(bad(format!("output sizes {sizes:?}: at least one, none zero")));
        }
        if let Interpolation::Cubic { a } = interpolation {
            if !a.is_finite() {
                return Err(bad(format!("cubic coefficient {a}")));
            }
        }
        Ok(Resize {
            sizes: sizes.to_vec(),
            interpolation,
            coordinates,
        })
    }

    /// The spatial output sizes.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    fn check(&self, what: &str, shape: &[usize]) -> Result<()> {
        if shape.len() != self.sizes.len() + 2 {
            return Err(Error::Rank {
                what: what.to_string(),
                expected: self.sizes.len() + 2,
                got: shape.len(),
                shape: shape.to_vec(),
            });
        }
        Ok(())
    }

    /// Applies the map (or its transpose, from output-shaped `a` to `input_shape`).
    fn apply<F: Float>(&self, a: ArrayViewD<'_, F>, input_shape: &[usize], transpose: bool) -> ArrayD<F> {
        let mut cur = a.to_owned();
        for (k, &len_out) in self.sizes.iter().enumerate() {
            let axis = k + 2;
            let len_in = input_shape[axis];
            let w = weights_1d(len_in, len_out, self.interpolation, self.coordinates);
            let target = if transpose { len_in } else { len_out };
            cur = along(cur.view(), axis, &w, target, transpose);
        }
        cur
    }
}

impl<F: Float> Layer<F> for Resize {
    fn name(&self) -> String {
        format!("Resize({:?}, {:?})", self.sizes, self.interpolation)
    }

    fn class(&self) -> Class<'_, F> {
        Class::AvgPool(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if input_shape.len() != self.sizes.len() + 1 {
            return Err(Error::Rank {
                what: "Resize input (per sample)".into(),
                expected: self.sizes.len() + 1,
                got: input_shape.len(),
                shape: input_shape.to_vec(),
            });
        }
        Ok(std::iter::once(input_shape[0])
            .chain(self.sizes.iter().copied())
            .collect())
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.check("Resize input", input.shape())?;
        Layer::<F>::output_shape(self, &input.shape()[1..])?;
        Ok(self.apply(input.view(), input.shape(), false))
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let shape = step.input.shape().to_vec();
        let mut out = LinearMap::transpose(self, grad_output, &[&shape[1..]])?;
        Ok(out.swap_remove(0))
    }
}

impl<F: Float> LinearMap<F> for Resize {
    fn transpose(&self, s: ArrayViewD<'_, F>, input_shapes: &[&[usize]]) -> Result<Vec<ArrayD<F>>> {
        let [per] = input_shapes else {
            return Err(Error::InvalidLayer {
                layer: "Resize",
                reason: format!("{} inputs (one expected)", input_shapes.len()),
            });
        };
        let expected: Vec<usize> = std::iter::once(s.shape().first().copied().unwrap_or(0))
            .chain(Layer::<F>::output_shape(self, per)?)
            .collect();
        if s.shape() != expected.as_slice() {
            return Err(Error::Shape {
                what: "Resize output relevance".into(),
                expected,
                got: s.shape().to_vec(),
            });
        }
        let input: Vec<usize> = std::iter::once(s.shape()[0]).chain(per.iter().copied()).collect();
        Ok(vec![self.apply(s, &input, true)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ⟨resize(x), s⟩ = ⟨x, resizeᵀ(s)⟩ for every interpolation.
    #[test]
    fn transpose_is_the_adjoint() {
        let x = ArrayD::from_shape_fn(IxDyn(&[2, 3, 5, 4]), |i| {
            (i[0] + 2 * i[1] + 3 * i[2] + 5 * i[3]) as f64 % 7.0 - 3.0
        });
        for interp in [
            Interpolation::Linear,
            Interpolation::Cubic { a: -0.75 },
            Interpolation::Nearest {
                floor: false,
                round_half_down: true,
            },
        ] {
            for coords in [
                Coordinates::HalfPixel,
                Coordinates::AlignCorners,
                Coordinates::Asymmetric,
            ] {
                let r = Resize::new(&[7, 3], interp, coords).unwrap();
                let y: ArrayD<f64> = r.forward(x.view()).unwrap();
                let s = ArrayD::from_shape_fn(IxDyn(y.shape()), |i| ((i[2] * 3 + i[3]) % 5) as f64 - 2.0);
                let t = LinearMap::transpose(&r, s.view(), &[&[3, 5, 4]])
                    .unwrap()
                    .remove(0);
                let (lhs, rhs) = ((&y * &s).sum(), (&x * &t).sum());
                assert!((lhs - rhs).abs() < 1e-12, "{interp:?} {coords:?}: {lhs} vs {rhs}");
            }
        }
    }

    /// The same size is the identity, and the weights of every output sum to 1.
    #[test]
    fn weights_sum_to_one_and_same_size_is_identity() {
        for interp in [Interpolation::Linear, Interpolation::Cubic { a: -0.75 }] {
            for (i, o) in [(37, 16), (16, 37), (5, 5), (1, 4)] {
                for row in weights_1d(i, o, interp, Coordinates::HalfPixel) {
                    let sum: f64 = row.iter().map(|&(_, w)| w).sum();
                    assert!((sum - 1.0).abs() < 1e-12);
                }
            }
            let w = weights_1d(6, 6, interp, Coordinates::HalfPixel);
            assert!(w.iter().enumerate().all(|(k, row)| row == &vec![(k, 1.0)]));
        }
    }
}
