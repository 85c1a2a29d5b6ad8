//! Fully connected layer.

use super::{affine_forward, affine_gradient, Affine, Class, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::gemm::{dense_forward_small, dense_transpose_small, gemm, SMALL_DENSE_WORK};
use crate::pool::output_buffer;
use crate::tensor::checks::check_finite;
use ndarray::{
    ArcArray1, ArcArray2, Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, CowArray, Ix2,
};

/// A fully connected layer `y = x Wᵀ + b`, as `torch.nn.Linear`.
///
/// The weight is in PyTorch layout `[out, in]`, so `linear.weight` exported from PyTorch
/// loads without a transpose. Parameters are shared, not copied: cloning the layer, or
/// building several layers from one weight with [`Dense::from_shared`], stores the weight
/// once.
///
/// # Shapes
/// Input `[N, in]`, output `[N, out]`; or, as `torch.nn.Linear` on tokens, `[N, ..., in]` →
/// `[N, ..., out]` (the layer applied to the last axis of every position).
///
/// # Example
/// ```
/// use ndarray::{array, Array2};
/// use relevance::{Dense, Layer};
/// # fn main() -> relevance::Result<()> {
/// let dense = Dense::new(array![[1.0_f64, 2.0], [0.0, -1.0]], Some(array![0.5, 0.0]))?;
/// let y = dense.forward(array![[1.0, 1.0]].into_dyn().view())?;
/// assert_eq!(y, array![[3.5, -1.0]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Dense<F: Float = f32> {
    /// In standard (C-order) layout.
    weight: ArcArray2<F>,
    bias: Option<ArcArray1<F>>,
    /// Rule-modified copies of `weight`, when kept; shared by clones.
    kept: std::sync::Arc<super::KeptWeights<F>>,
}

impl<F: Float> Dense<F> {
    /// Builds the layer from a weight `[out, in]` and an optional bias `[out]`.
    ///
    /// # Errors
    /// [`Error::Shape`] if the bias length is not `out`, [`Error::InvalidLayer`] if a
    /// dimension is zero, [`Error::NonFinite`] if a parameter is NaN or infinite.
    pub fn new(weight: Array2<F>, bias: Option<Array1<F>>) -> Result<Self> {
        Self::from_shared(weight.into_shared(), bias.map(Array1::into_shared))
    }

    /// [`Dense::new`] with parameters that other layers may share: the layer keeps a
    /// reference, so a weight given to many layers is stored once (a weight not in
    /// standard layout is copied into it once).
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Affine, Dense};
    /// # fn main() -> relevance::Result<()> {
    /// let w = array![[1.0_f64, 2.0], [0.0, -1.0]].into_shared();
    /// let (a, b) = (Dense::from_shared(w.clone(), None)?, Dense::from_shared(w.clone(), None)?);
    /// assert_eq!(a.weight().as_ptr(), b.weight().as_ptr()); // one weight in memory
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Dense::new`].
    pub fn from_shared(weight: ArcArray2<F>, bias: Option<ArcArray1<F>>) -> Result<Self> {
        let (out, inp) = weight.dim();
        if out == 0 || inp == 0 {
            return Err(Error::InvalidLayer {
                layer: "Dense",
                reason: format!("weight shape {:?} has a zero dimension", weight.shape()),
            });
        }
        check_finite("Dense weight", &weight.view().into_dyn())?;
        if let Some(b) = &bias {
            if b.len() != out {
                return Err(Error::Shape {
                    what: "Dense bias".into(),
                    expected: vec![out],
                    got: b.shape().to_vec(),
                });
            }
            check_finite("Dense bias", &b.view().into_dyn())?;
        }
        let weight = if weight.is_standard_layout() {
            weight
        } else {
            weight.as_standard_layout().into_owned().into_shared()
        };
        Ok(Dense {
            weight,
            bias,
            kept: Default::default(),
        })
    }

    /// The number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    /// The number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    /// `a` (`[N, ..., cols]`) as a matrix of its rows, `[N·..., cols]` (a copy only if `a` is
    /// not in standard layout).
    fn as_matrix<'a>(what: &str, a: &'a ArrayViewD<'a, F>, cols: usize) -> Result<CowArray<'a, F, Ix2>> {
        let shape = a.shape().to_vec();
        if shape.len() < 2 {
            return Err(Error::Rank {
                what: what.to_string(),
                expected: 2,
                got: shape.len(),
                shape,
            });
        }
        if shape[shape.len() - 1] != cols {
            let mut expected = shape.clone();
            *expected.last_mut().expect("rank ≥ 2") = cols;
            return Err(Error::Shape {
                what: what.to_string(),
                expected,
                got: shape,
            });
        }
        let rows = a.len() / cols;
        let std = a.as_standard_layout();
        Ok(std
            .into_shape_with_order((rows, cols))
            .expect("standard layout, sizes checked"))
    }

    /// A `[rows, cols]` result back in the leading shape of `like` (`[N, ..., cols]`).
    fn unflatten(out: Array2<F>, like: &[usize]) -> ArrayD<F> {
        if like.len() == 2 {
            return out.into_dyn();
        }
        let mut shape = like[..like.len() - 1].to_vec();
        shape.push(out.ncols());
        out.into_shape_with_order(shape)
            .expect("rows of the leading axes")
    }

    fn weight_view<'a>(w: &'a ArrayViewD<'a, F>) -> Result<ArrayView2<'a, F>> {
        let shape = w.shape().to_vec();
        w.view().into_dimensionality::<Ix2>().map_err(|_| Error::Rank {
            what: "Dense substituted weight".into(),
            expected: 2,
            got: shape.len(),
            shape,
        })
    }

    fn weight_matrix<'a>(&self, w: &'a ArrayViewD<'a, F>) -> Result<ArrayView2<'a, F>> {
        let m = Self::weight_view(w)?;
        if m.dim() != self.weight.dim() {
            return Err(Error::Shape {
                what: "Dense substituted weight".into(),
                expected: self.weight.shape().to_vec(),
                got: m.shape().to_vec(),
            });
        }
        Ok(m)
    }
}

impl<F: Float> Layer<F> for Dense<F> {
    fn name(&self) -> String {
        format!("Dense({}→{})", self.in_features(), self.out_features())
    }

    fn class(&self) -> Class<'_, F> {
        Class::Dense(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        match input_shape.split_last() {
            Some((&last, lead)) if last == self.in_features() => {
                Ok(lead.iter().copied().chain([self.out_features()]).collect())
            }
            _ => Err(Error::Shape {
                what: format!(
                    "Dense input (per sample: [..., in_features], its last axis the weight's {} input features)",
                    self.in_features()
                ),
                // the input as it would fit: its leading axes, then in_features
                expected: input_shape
                    .split_last()
                    .map_or(&[][..], |(_, lead)| lead)
                    .iter()
                    .copied()
                    .chain([self.in_features()])
                    .collect(),
                got: input_shape.to_vec(),
            }),
        }
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        affine_forward(self, input)
    }

    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        affine_gradient(self, step, grad_output)
    }
}

impl<F: Float> Affine<F> for Dense<F> {
    fn weight_columns_are_input_channels(&self) -> bool {
        true
    }

    fn kept_weights(&self) -> Option<&super::KeptWeights<F>> {
        Some(&self.kept)
    }

    fn with_parameters(&self, weight: ArrayD<F>, bias: Array1<F>) -> Option<Result<Box<dyn Layer<F>>>> {
        let shape = weight.shape().to_vec();
        Some(match weight.into_dimensionality::<Ix2>() {
            Ok(w) => Dense::new(w, Some(bias)).map(|d| Box::new(d) as Box<dyn Layer<F>>),
            Err(_) => Err(Error::Shape {
                what: "Dense weight".into(),
                expected: self.weight.shape().to_vec(),
                got: shape,
            }),
        })
    }

    fn weight(&self) -> ArrayViewD<'_, F> {
        self.weight.view().into_dyn()
    }

    fn bias(&self) -> Option<ArrayView1<'_, F>> {
        self.bias.as_ref().map(|b| b.view())
    }

    fn apply_with(&self, x: ArrayViewD<'_, F>, w: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let xm = Self::as_matrix("Dense input", &x, self.in_features())?;
        let w = self.weight_matrix(&w)?;
        if w.len() <= SMALL_DENSE_WORK {
            return Ok(Self::unflatten(dense_forward_small(&xm.view(), &w), x.shape()));
        }
        // overwritten by the product (never read)
        let mut out =
            crate::tensor::layout::shaped((xm.nrows(), w.nrows()), output_buffer(xm.nrows() * w.nrows()));
        // the work of one sample (all its tokens), so that a sample takes the same kernel
        // whatever batch it is in
        let per_sample = w.len() * (xm.nrows() / x.shape()[0].max(1));
        gemm(&xm.view(), &w.t(), &mut out.view_mut(), per_sample);
        Ok(Self::unflatten(out, x.shape()))
    }

    /// Along the last axis (the features of every token of a `[N, T, D]` input).
    fn add_bias(&self, out: &mut ArrayD<F>, bias: ArrayView1<'_, F>) {
        if out.ndim() == 2 {
            crate::kernels::elementwise::add_channel_bias(out, bias);
        } else {
            *out += &bias;
        }
    }

    fn apply_transpose(
        &self,
        s: ArrayViewD<'_, F>,
        w: ArrayViewD<'_, F>,
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        self.output_shape(input_shape)?;
        let sm = Self::as_matrix("Dense output relevance", &s, self.out_features())?;
        let w = self.weight_matrix(&w)?;
        let like: Vec<usize> = s.shape()[..s.ndim() - 1]
            .iter()
            .copied()
            .chain([self.in_features()])
            .collect();
        if w.len() <= SMALL_DENSE_WORK {
            return Ok(Self::unflatten(dense_transpose_small(&sm.view(), &w), &like));
        }
        let mut out = Array2::<F>::zeros((sm.nrows(), w.ncols()));
        let per_sample = w.len() * (sm.nrows() / s.shape()[0].max(1));
        gemm(&sm.view(), &w, &mut out.view_mut(), per_sample);
        Ok(Self::unflatten(out, &like))
    }
}
