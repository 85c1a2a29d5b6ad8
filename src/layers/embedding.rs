//! Token inputs: a lookup of integer ids in a constant table (`torch.nn.Embedding`, ONNX
//! `Gather` of an initializer by a graph input).

use super::{Class, Layer, Step};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::checks::check_finite;
use ndarray::{ArcArray2, Array2, ArrayD, ArrayViewD, Axis};

/// `y[..., :] = table[ids[...], :]`: each integer id (held in the network's float type)
/// replaced by its row of a `[vocabulary, D]` table, as `torch.nn.Embedding`. A network
/// that starts with it takes token ids `[N, T]` and gives `[N, T, D]` to the rest.
///
/// Ids are checked on every pass: a value that is not an integer in `0..vocabulary` is
/// [`Error::TokenId`], naming its position.
///
/// Relevance: an id is not a quantity that can be varied, so what arrives at the
/// embeddings is summed per token ([`Rule::embedding`](crate::Rule::embedding)): the
/// relevance of input position `t` is `Σ_d R[t, d]` (LRP conserves it). DeepLIFT's
/// multiplier is that sum of contributions `Σ_d m ⊙ (e − ē)` divided by the id's
/// difference, so that `m · Δid` is the token's contribution (0 where the token equals
/// the baseline's). The gradient with respect to an id is 0.
///
/// # Shapes
/// `[N, ...]` → `[N, ..., D]`.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{Embedding, Layer};
/// # fn main() -> relevance::Result<()> {
/// let emb = Embedding::new(array![[0.0_f64, 1.0], [2.0, 3.0], [4.0, 5.0]])?;
/// let y = emb.forward(array![[2.0, 0.0]].into_dyn().view())?;
/// assert_eq!(y, array![[[4.0, 5.0], [0.0, 1.0]]].into_dyn());
/// assert!(emb.forward(array![[3.0]].into_dyn().view()).is_err()); // out of range
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Embedding<F: Float = f32> {
    table: ArcArray2<F>,
}

impl<F: Float> Embedding<F> {
    /// The lookup in `table` (`[vocabulary, D]`, `torch.nn.Embedding.weight`).
    ///
    /// # Errors
    /// [`Error::InvalidLayer`] for an empty table, [`Error::NonFinite`] for NaN or infinity
    /// in it.
    pub fn new(table: Array2<F>) -> Result<Self> {
        Self::from_shared(table.into_shared())
    }

    /// [`Embedding::new`] with a table other layers may share (a tied output layer).
    ///
    /// # Errors
    /// As [`Embedding::new`].
    pub fn from_shared(table: ArcArray2<F>) -> Result<Self> {
        if table.is_empty() {
            return Err(Error::InvalidLayer {
                layer: "Embedding",
                reason: format!("table of shape {:?} is empty", table.shape()),
            });
        }
        check_finite("Embedding table", &table.view().into_dyn())?;
        let table = if table.is_standard_layout() {
            table
        } else {
            table.as_standard_layout().into_owned().into_shared()
        };
        Ok(Embedding { table })
    }

    /// The number of rows (ids `0..vocabulary` are valid).
    pub fn vocabulary(&self) -> usize {
        self.table.nrows()
    }

    /// The length of each embedding.
    pub fn dim(&self) -> usize {
        self.table.ncols()
    }

    /// The table.
    pub fn table(&self) -> ndarray::ArrayView2<'_, F> {
        self.table.view()
    }

    /// The row of every id, checked.
    pub(crate) fn rows(&self, ids: &ArrayViewD<'_, F>) -> Result<Vec<usize>> {
        let vocab = self.vocabulary();
        ids.indexed_iter()
            .map(|(pos, &v)| {
                let f = v.to_f64().unwrap_or(f64::NAN);
                if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && (f as usize) < vocab {
                    Ok(f as usize)
                } else {
                    Err(Error::TokenId {
                        position: ndarray::Dimension::slice(&pos).to_vec(),
                        value: f,
                        vocabulary: vocab,
                    })
                }
            })
            .collect()
    }

    /// `Σ_d a[..., d]` over the embedding axis, checked against the ids' shape.
    pub(crate) fn per_token(&self, what: &str, a: &ArrayViewD<'_, F>, ids: &[usize]) -> Result<ArrayD<F>> {
        let mut expected = ids.to_vec();
        expected.push(self.dim());
        if a.shape() != expected.as_slice() {
            return Err(Error::Shape {
                what: what.into(),
                expected,
                got: a.shape().to_vec(),
            });
        }
        Ok(a.sum_axis(Axis(a.ndim() - 1)))
    }
}

impl<F: Float> Layer<F> for Embedding<F> {
    fn name(&self) -> String {
        format!("Embedding({}×{})", self.vocabulary(), self.dim())
    }

    fn class(&self) -> Class<'_, F> {
        Class::Embedding(self)
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(input_shape.iter().copied().chain([self.dim()]).collect())
    }

    fn forward(&self, input: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let rows = self.rows(&input)?;
        let d = self.dim();
        let table = self.table.as_slice().expect("standard layout");
        let mut out = Vec::with_capacity(rows.len() * d);
        for r in rows {
            out.extend_from_slice(&table[r * d..(r + 1) * d]);
        }
        let shape: Vec<usize> = input.shape().iter().copied().chain([d]).collect();
        Ok(ArrayD::from_shape_vec(shape, out).expect("one row per id"))
    }

    /// Zero: an id cannot be varied continuously.
    fn gradient(&self, step: &Step<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        self.per_token("Embedding output gradient", &grad_output, step.input.shape())?;
        Ok(ArrayD::zeros(step.input.raw_dim()))
    }
}
