//! Rearrangements of each sample: any reshape, and a permutation of the axes.

use super::{Class, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// Reshapes each sample (C order, as `x.reshape(N, *shape)` in PyTorch). A rearrangement:
/// relevance goes back to where it came from, under every rule. ([`Flatten`](crate::Flatten)
/// is the reshape to one axis.)
///
/// # Shapes
/// `[N, in...]` → `[N, shape...]`, with as many elements per sample.
///
/// ```
/// use ndarray::Array2;
/// use relevance::{Layer, Reshape};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f32>::forward(&Reshape::new(&[2, 3]), Array2::<f32>::zeros((4, 6)).into_dyn().view())?;
/// assert_eq!(y.shape(), &[4, 2, 3]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reshape {
    shape: Vec<usize>,
}

impl Reshape {
    /// A reshape of each sample to `shape` (no batch dimension).
    pub fn new(shape: &[usize]) -> Self {
        Reshape {
            shape: shape.to_vec(),
        }
    }

    /// The per-sample output shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}

/// `a` (with a batch axis) reshaped to `[N, shape...]` in C order.
fn reshape_rows<F: Float>(what: &str, a: ArrayViewD<'_, F>, shape: &[usize]) -> Result<ArrayD<F>> {
    let mut full = vec![a.shape().first().copied().unwrap_or(0)];
    full.extend_from_slice(shape);
    let got = a.shape().to_vec();
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(&full))
        .map_err(|_| Error::Shape {
            what: what.into(),
            expected: full,
            got,
        })
}

impl<F: Float> Layer<F> for Reshape {
    fn name(&self) -> String {
        format!("Reshape({:?})", self.shape)
    }

    fn class(&self) -> Class<'_, F> {
        Class::Reshape(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let count = |s: &[usize]| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count(input_shape).is_none() || count(input_shape) != count(&self.shape) {
            return Err(Error::Shape {
                what: "Reshape input (as many elements per sample as the target)".into(),
                expected: self.shape.clone(),
                got: input_shape.to_vec(),
            });
        }
        Ok(self.shape.clone())
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        reshape_rows("Reshape input", input, &self.shape)
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        reshape_rows(
            "Reshape output relevance",
            grad_output,
            crate::tensor::per_sample(step.input.shape()),
        )
    }
}

/// Permutes the axes of each sample, as `x.permute(0, *[p + 1 for p in perm])` in PyTorch
/// (the batch axis stays first): an NHWC input turned NCHW is `Permute::new(&[2, 0, 1])`,
/// ShuffleNet's channel shuffle a reshape, a permutation and a reshape. A rearrangement:
/// relevance goes back to where it came from, under every rule.
///
/// # Shapes
/// `[N, d_0, ..., d_k]` → `[N, d_perm[0], ..., d_perm[k]]`.
///
/// ```
/// use ndarray::Array4;
/// use relevance::{Layer, Permute};
/// # fn main() -> relevance::Result<()> {
/// let nhwc = Array4::<f32>::zeros((1, 28, 28, 3)).into_dyn();
/// let y = Layer::<f32>::forward(&Permute::new(&[2, 0, 1])?, nhwc.view())?;
/// assert_eq!(y.shape(), &[1, 3, 28, 28]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permute {
    perm: Vec<usize>,
}

impl Permute {
    /// A permutation of the per-sample axes.
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] if `perm` is not a permutation of `0..perm.len()`.
    pub fn new(perm: &[usize]) -> Result<Self> {
        let mut seen = vec![false; perm.len()];
        for &p in perm {
            if p >= perm.len() || std::mem::replace(&mut seen[p], true) {
                return Err(Error::InvalidLayer {
                    layer: "Permute",
                    reason: format!("{perm:?} is not a permutation of 0..{}", perm.len()),
                });
            }
        }
        Ok(Permute { perm: perm.to_vec() })
    }

    /// The permutation of the per-sample axes.
    pub fn perm(&self) -> &[usize] {
        &self.perm
    }

    /// The permutation of all axes (batch first) and its inverse.
    fn full(&self) -> (Vec<usize>, Vec<usize>) {
        let full: Vec<usize> = std::iter::once(0)
            .chain(self.perm.iter().map(|p| p + 1))
            .collect();
        let mut inverse = vec![0; full.len()];
        for (i, &p) in full.iter().enumerate() {
            inverse[p] = i;
        }
        (full, inverse)
    }

    fn apply<F: Float>(what: &str, a: ArrayViewD<'_, F>, axes: &[usize]) -> Result<ArrayD<F>> {
        if a.ndim() != axes.len() {
            return Err(Error::Rank {
                what: what.into(),
                expected: axes.len(),
                got: a.ndim(),
                shape: a.shape().to_vec(),
            });
        }
        Ok(a.permuted_axes(IxDyn(axes)).as_standard_layout().into_owned())
    }
}

impl<F: Float> Layer<F> for Permute {
    fn name(&self) -> String {
        format!("Permute({:?})", self.perm)
    }

    fn class(&self) -> Class<'_, F> {
        Class::Reshape(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if input_shape.len() != self.perm.len() {
            return Err(Error::Rank {
                what: "Permute input (per sample)".into(),
                expected: self.perm.len(),
                got: input_shape.len(),
                shape: input_shape.to_vec(),
            });
        }
        Ok(self.perm.iter().map(|&p| input_shape[p]).collect())
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Self::apply("Permute input", input, &self.full().0)
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let g = Self::apply("Permute output relevance", grad_output, &self.full().1)?;
        if g.shape() != step.input.shape() {
            return Err(Error::Shape {
                what: "Permute output relevance".into(),
                expected: step.input.shape().to_vec(),
                got: g.shape().to_vec(),
            });
        }
        Ok(g)
    }
}

/// A contiguous range of one per-sample axis, as `x.narrow(axis + 1, start, len)` in PyTorch
/// or an ONNX `Slice`/`Split` of data (ShuffleNet splits its channels in two). A
/// rearrangement: each kept value's relevance goes back to where it came from, the rest of
/// the input gets none.
///
/// # Shapes
/// `[N, ..., d_axis, ...]` → `[N, ..., len, ...]`.
///
/// ```
/// use ndarray::array;
/// use relevance::{Layer, Narrow};
/// # fn main() -> relevance::Result<()> {
/// let y = Layer::<f64>::forward(&Narrow::new(0, 1, 2), array![[1.0, 2.0, 3.0, 4.0]].into_dyn().view())?;
/// assert_eq!(y, array![[2.0, 3.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Narrow {
    axis: usize,
    start: usize,
    len: usize,
}

impl Narrow {
    /// Keeps `len` entries from `start` of per-sample axis `axis` (0: channels).
    pub fn new(axis: usize, start: usize, len: usize) -> Self {
        Narrow { axis, start, len }
    }
}

impl<F: Float> Layer<F> for Narrow {
    fn name(&self) -> String {
        format!(
            "Narrow(axis {}, {}..{})",
            self.axis,
            self.start,
            self.start + self.len
        )
    }

    fn class(&self) -> Class<'_, F> {
        Class::Reshape(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let fits = input_shape
            .get(self.axis)
            .is_some_and(|&d| self.len > 0 && self.start.checked_add(self.len).is_some_and(|e| e <= d));
        if !fits {
            return Err(Error::Shape {
                what: format!(
                    "Narrow input (axis {} must hold {}..{})",
                    self.axis,
                    self.start,
                    self.start.saturating_add(self.len)
                ),
                expected: vec![],
                got: input_shape.to_vec(),
            });
        }
        let mut out = input_shape.to_vec();
        out[self.axis] = self.len;
        Ok(out)
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Layer::<F>::output_shape(self, &input.shape()[1.min(input.ndim())..])?;
        Ok(input
            .slice_axis(
                ndarray::Axis(self.axis + 1),
                ndarray::Slice::from(self.start..self.start + self.len),
            )
            .to_owned())
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        if step.input.ndim() == 0 {
            return Err(Error::Rank {
                what: "Narrow input (batch first)".into(),
                expected: self.axis + 2,
                got: 0,
                shape: vec![],
            });
        }
        Layer::<F>::output_shape(self, crate::tensor::per_sample(step.input.shape()))?;
        let mut g = ArrayD::zeros(step.input.raw_dim());
        let mut part = g.slice_axis_mut(
            ndarray::Axis(self.axis + 1),
            ndarray::Slice::from(self.start..self.start + self.len),
        );
        if part.shape() != grad_output.shape() {
            return Err(Error::Shape {
                what: "Narrow output relevance".into(),
                expected: part.shape().to_vec(),
                got: grad_output.shape().to_vec(),
            });
        }
        part.assign(&grad_output);
        Ok(g)
    }
}
