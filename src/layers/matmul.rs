//! The matrix product of two computed tensors: attention scores `Q·Kᵀ` and the weighted
//! values `softmax(·)·V` of a transformer (`torch.matmul`, ONNX `MatMul`, `Einsum` of a
//! batched product).

use super::{Merge, MergeClass, MergeStep};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::gemm::{gemm_acc, gemm_seq};
use ndarray::{ArrayD, ArrayViewD};

/// `y = a · b` over the last two axes, as `torch.matmul` of two tensors of rank ≥ 3 (batch
/// included): `a` `[N, ..., m, k]`, `b` `[N, ..., k, n]` → `[N, ..., m, n]`, the leading
/// axes broadcast as in NumPy (the batch must agree, or be 1 on one side).
///
/// It is of class [`MergeClass::MatMul`]; rules reach it through
/// [`Rule::matmul`](crate::Rule::matmul): LRP applies AttnLRP's ε-rule followed by the
/// uniform split (half of each output's relevance to each factor, Achtibat et al. 2024,
/// Proposition 3.3); CP-LRP sends everything to the factor that is not attention weights;
/// DeepLIFT splits the difference exactly, `Δ(ab) = Δa·(b + b̄)/2 + (a + ā)/2·Δb`.
///
/// # Example
/// ```
/// use ndarray::array;
/// use relevance::{MatMul, Merge};
/// # fn main() -> relevance::Result<()> {
/// let a = array![[[1.0_f64, 2.0]]].into_dyn(); // [1, 1, 2]
/// let b = array![[[3.0_f64], [4.0]]].into_dyn(); // [1, 2, 1]
/// assert_eq!(MatMul::new().forward(&[a.view(), b.view()])?, array![[[11.0]]].into_dyn());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatMul;

impl MatMul {
    /// The product of its two inputs.
    pub fn new() -> Self {
        MatMul
    }
}

/// How the matrices of a batched product line up: for every output matrix, the matrices
/// of `a` and `b` it multiplies, and the sizes `m, k, n`.
pub(crate) struct Plan {
    pairs: Vec<(usize, usize)>,
    m: usize,
    k: usize,
    n: usize,
    out_shape: Vec<usize>,
}

impl Plan {
    /// The plan for full shapes (batch included, or per-sample shapes alike).
    pub(crate) fn new(a: &[usize], b: &[usize]) -> Result<Self> {
        // the second input's shape as it would fit the first, and what does not fit
        let bad = |reason: &str, expected: Vec<usize>| {
            Error::Shape {
            what: format!(
                "MatMul second input ([..., m, k] × [..., k, n], leading axes broadcasting; the first input is {a:?}): {reason}"
            ),
            expected,
            got: b.to_vec(),
        }
        };
        if a.len() < 2 || b.len() < 2 {
            let mut two = b.to_vec();
            two.resize(2, 1);
            return Err(bad(
                &format!("both need at least 2 axes (the first has {})", a.len()),
                two,
            ));
        }
        let (la, lb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
        let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
        let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
        if k != k2 {
            let mut fit = b.to_vec();
            fit[b.len() - 2] = k;
            return Err(bad(
                &format!("its axis −2 ({k2}) must equal the first input's last axis ({k})"),
                fit,
            ));
        }
        let lead = crate::tensor::broadcast::broadcast_shape(&[la, lb]).ok_or_else(|| {
            let mut fit = la.to_vec();
            fit.extend([k, n]);
            bad(
                &format!("its leading axes {lb:?} do not broadcast with the first input's {la:?}"),
                fit,
            )
        })?;
        let count: usize = lead.iter().product();
        let index = |shape: &[usize], o: usize| -> usize {
            // the flat index in `shape` (right-aligned, size-1 axes broadcast) of output o
            let off = lead.len() - shape.len();
            let (mut rest, mut flat, mut stride) = (o, 0, 1);
            for (axis, &d) in lead.iter().enumerate().rev() {
                let i = rest % d;
                rest /= d;
                if axis >= off {
                    let s = shape[axis - off];
                    if s != 1 {
                        flat += i * stride;
                    }
                    stride *= s;
                }
            }
            flat
        };
        let pairs = (0..count).map(|o| (index(la, o), index(lb, o))).collect();
        let mut out_shape = lead;
        out_shape.extend([m, n]);
        Ok(Plan {
            pairs,
            m,
            k,
            n,
            out_shape,
        })
    }

    /// Multiply-adds of one sample (the products of the leading axes after the batch): the
    /// kernel is chosen by it, so that a sample is computed by the same code whatever batch
    /// it is in.
    fn work(&self) -> usize {
        let batch = self.out_shape.first().copied().unwrap_or(1).max(1);
        (self.pairs.len() / batch).max(1) * self.m * self.k * self.n
    }

    /// Whether the products are independent tasks: several of them, each small enough
    /// that one thread per product beats threads inside one product. Chosen by the shapes
    /// only (never by the batch), and each product is computed by the same code either way.
    #[cfg(feature = "parallel")]
    fn by_pairs(&self) -> bool {
        self.pairs.len() > 1 && self.m * self.k * self.n < PAIR_WORK
    }

    /// Whether output `o` multiplies matrix `o` of `a` and of `b` (no broadcasting), so
    /// that the transposed products of different outputs write to different matrices.
    #[cfg(feature = "parallel")]
    fn one_to_one(&self) -> bool {
        self.pairs
            .iter()
            .enumerate()
            .all(|(o, &(ia, ib))| ia == o && ib == o)
    }

    /// `a · b`.
    pub(crate) fn product<F: Float>(&self, a: &ArrayViewD<'_, F>, b: &ArrayViewD<'_, F>) -> ArrayD<F> {
        let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
        let (a, b) = (a.as_slice().expect("standard"), b.as_slice().expect("standard"));
        let (m, k, n) = (self.m, self.k, self.n);
        let mut out = vec![F::zero(); self.pairs.len() * m * n];
        let work = self.work();
        let one = |(o, c): (usize, &mut [F]), seq: bool| {
            let (ia, ib) = self.pairs[o];
            let av = view2(&a[ia * m * k..(ia + 1) * m * k], m, k);
            let bv = view2(&b[ib * k * n..(ib + 1) * k * n], k, n);
            let mut ov = ndarray::ArrayViewMut2::from_shape((m, n), c).expect("sized above");
            if seq {
                gemm_seq(&av, &bv, &mut ov, work, false);
            } else {
                gemm_acc(&av, &bv, &mut ov, work, false);
            }
        };
        #[cfg(feature = "parallel")]
        if self.by_pairs() {
            use rayon::prelude::*;
            out.par_chunks_mut(m * n).enumerate().for_each(|p| one(p, true));
            return ArrayD::from_shape_vec(self.out_shape.clone(), out).expect("sized above");
        }
        out.chunks_mut(m * n).enumerate().for_each(|p| one(p, false));
        ArrayD::from_shape_vec(self.out_shape.clone(), out).expect("sized above")
    }

    /// The transposed products of an output-shaped `s`: `s · bᵀ` summed into `a`'s shape
    /// and `aᵀ · s` summed into `b`'s shape (with `a`, `b` any arrays of the factors'
    /// shapes: the factors for the gradient, their midpoints for DeepLIFT).
    pub(crate) fn transposes<F: Float>(
        &self,
        a: &ArrayViewD<'_, F>,
        b: &ArrayViewD<'_, F>,
        s: &ArrayViewD<'_, F>,
    ) -> Result<(ArrayD<F>, ArrayD<F>)> {
        if s.shape() != self.out_shape.as_slice() {
            return Err(Error::Shape {
                what: "relevance at a MatMul output".into(),
                expected: self.out_shape.clone(),
                got: s.shape().to_vec(),
            });
        }
        let (m, k, n) = (self.m, self.k, self.n);
        let (a, b, s) = (
            a.as_standard_layout(),
            b.as_standard_layout(),
            s.as_standard_layout(),
        );
        let (asl, bsl, ssl) = (
            a.as_slice().expect("standard"),
            b.as_slice().expect("standard"),
            s.as_slice().expect("standard"),
        );
        let mut ga = vec![F::zero(); asl.len()];
        let mut gb = vec![F::zero(); bsl.len()];
        let work = self.work();
        #[cfg(feature = "parallel")]
        if self.by_pairs() && self.one_to_one() {
            use rayon::prelude::*;
            ga.par_chunks_mut(m * k)
                .zip(gb.par_chunks_mut(k * n))
                .enumerate()
                .for_each(|(o, (ga, gb))| {
                    let av = view2(&asl[o * m * k..(o + 1) * m * k], m, k);
                    let bv = view2(&bsl[o * k * n..(o + 1) * k * n], k, n);
                    let sv = view2(&ssl[o * m * n..(o + 1) * m * n], m, n);
                    let mut gav = ndarray::ArrayViewMut2::from_shape((m, k), ga).expect("sized above");
                    gemm_seq(&sv, &bv.t(), &mut gav, work, true);
                    let mut gbv = ndarray::ArrayViewMut2::from_shape((k, n), gb).expect("sized above");
                    gemm_seq(&av.t(), &sv, &mut gbv, work, true);
                });
            return Ok((
                ArrayD::from_shape_vec(a.shape(), ga).expect("a's shape"),
                ArrayD::from_shape_vec(b.shape(), gb).expect("b's shape"),
            ));
        }
        for (o, &(ia, ib)) in self.pairs.iter().enumerate() {
            let av = view2(&asl[ia * m * k..(ia + 1) * m * k], m, k);
            let bv = view2(&bsl[ib * k * n..(ib + 1) * k * n], k, n);
            let sv = view2(&ssl[o * m * n..(o + 1) * m * n], m, n);
            let mut gav = ndarray::ArrayViewMut2::from_shape((m, k), &mut ga[ia * m * k..(ia + 1) * m * k])
                .expect("sized above");
            gemm_acc(&sv, &bv.t(), &mut gav, work, true);
            let mut gbv = ndarray::ArrayViewMut2::from_shape((k, n), &mut gb[ib * k * n..(ib + 1) * k * n])
                .expect("sized above");
            gemm_acc(&av.t(), &sv, &mut gbv, work, true);
        }
        Ok((
            ArrayD::from_shape_vec(a.shape(), ga).expect("a's shape"),
            ArrayD::from_shape_vec(b.shape(), gb).expect("b's shape"),
        ))
    }
}

/// Multiply-adds of one product below which the products of a batched matrix product run
/// one per thread (attention heads: 197×64×197 ≈ 2.5M in a ViT-B/16) rather than each on
/// all threads.
#[cfg(feature = "parallel")]
const PAIR_WORK: usize = 1 << 24;

fn view2<F>(s: &[F], r: usize, c: usize) -> ndarray::ArrayView2<'_, F> {
    ndarray::ArrayView2::from_shape((r, c), s).expect("sized by the plan")
}

/// The two inputs of a merge step, or the error.
pub(crate) fn two<'s, 'a, F>(step: &'s MergeStep<'a, F>) -> Result<[&'s ArrayViewD<'a, F>; 2]> {
    match step.inputs.as_slice() {
        [a, b] => Ok([a, b]),
        other => Err(Error::Graph {
            node: step.index.to_string(),
            reason: format!("a matrix product takes two inputs, got {}", other.len()),
        }),
    }
}

impl<F: Float> Merge<F> for MatMul {
    fn name(&self) -> String {
        "MatMul".into()
    }

    fn class(&self) -> MergeClass<'_, F> {
        MergeClass::MatMul(self)
    }

    fn output_shape(&self, input_shapes: &[&[usize]]) -> Result<Vec<usize>> {
        let [a, b] = input_shapes else {
            return Err(Error::Graph {
                node: "MatMul".into(),
                reason: format!("a matrix product takes two inputs, got {}", input_shapes.len()),
            });
        };
        Ok(Plan::new(a, b)?.out_shape)
    }

    fn forward(&self, inputs: &[ArrayViewD<'_, F>]) -> Result<ArrayD<F>> {
        let [a, b] = inputs else {
            return Err(Error::Graph {
                node: "MatMul".into(),
                reason: format!("a matrix product takes two inputs, got {}", inputs.len()),
            });
        };
        if a.ndim() < 3 || b.ndim() < 3 {
            return Err(Error::Rank {
                what: "MatMul input (batch first, then [..., rows, columns])".into(),
                expected: 3,
                got: a.ndim().min(b.ndim()),
                shape: if a.ndim() < 3 { a.shape() } else { b.shape() }.to_vec(),
            });
        }
        Ok(Plan::new(a.shape(), b.shape())?.product(a, b))
    }

    fn gradient(&self, step: &MergeStep<'_, F>, grad_output: ArrayViewD<'_, F>) -> Result<Vec<ArrayD<F>>> {
        let [a, b] = two(step)?;
        let (ga, gb) = Plan::new(a.shape(), b.shape())?.transposes(a, b, &grad_output)?;
        Ok(vec![ga, gb])
    }
}
