//! What the importer knows of each tensor of an ONNX graph: a constant (folded at load
//! time), or data computed from the input by the network being built; and the folding of
//! constant and shape arithmetic (`Shape`, `Gather`, `Slice`, `Concat`, ...) that exporters
//! write around the layers.

use super::view::Data;
use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, Axis, IxDyn, Slice};

mod reshape;
pub(super) use reshape::{
    per_sample_target, resolve_data_reshape, resolve_reshape, squeeze_shape, unsqueeze_shape,
};

/// The largest constant that folding may create (`ConstantOfShape`, `Expand`, `Tile`):
/// 2²⁴ values, so that a small file cannot make the loader allocate much.
pub(super) const MAX_FOLDED: usize = 1 << 24;
/// The most axes a constant evaluated at load time may have.
pub(super) const MAX_FOLDED_RANK: usize = 16;

/// One entry of an integer tensor: a number, or a multiple `k ≥ 1` of the batch size, which
/// is unknown when the file is read (`Shape` of an input-dependent tensor gives `Batch(1)`
/// at the batch axis, and `Batch(k)` at an axis that merges the batch with others, as
/// `nn.MultiheadAttention` writes `[N·heads, T, d]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sym {
    Int(i64),
    Batch(i64),
}

/// The batch size itself.
pub(super) const BATCH: Sym = Sym::Batch(1);

impl Sym {
    pub(super) fn int(self) -> Option<i64> {
        match self {
            Sym::Int(v) => Some(v),
            Sym::Batch(_) => None,
        }
    }
}

/// A constant tensor.
#[derive(Debug, Clone)]
pub(super) enum Const<F> {
    Float(ArrayD<F>),
    Int(ArrayD<Sym>),
}

/// What the importer knows of a tensor: a constant, or data computed by the network.
#[derive(Debug, Clone)]
pub(super) enum Value<F> {
    Const(Const<F>),
    Data(Data),
}

fn fold_err(reason: impl Into<String>) -> Error {
    Error::Format {
        what: "constant folding".into(),
        reason: reason.into(),
    }
}

impl<F: Float> Const<F> {
    pub(super) fn shape(&self) -> &[usize] {
        match self {
            Const::Float(a) => a.shape(),
            Const::Int(a) => a.shape(),
        }
    }

    /// As floats (integers converted; the batch size cannot be).
    pub(super) fn floats(&self) -> Result<ArrayD<F>> {
        match self {
            Const::Float(a) => Ok(a.clone()),
            Const::Int(a) => a
                .iter()
                .map(|s| s.int().map(|v| F::lit(v as f64)))
                .collect::<Option<Vec<F>>>()
                .map(|v| crate::tensor::layout::shaped(a.raw_dim(), v))
                .ok_or_else(|| fold_err("the batch size is used as a number")),
        }
    }

    /// As integers (floats must be whole numbers).
    pub(super) fn ints(&self) -> Result<ArrayD<Sym>> {
        match self {
            Const::Int(a) => Ok(a.clone()),
            Const::Float(a) => a
                .iter()
                .map(|&v| {
                    let f = v.as_f64();
                    (f.fract() == 0.0 && f.abs() < 9e15).then_some(Sym::Int(f as i64))
                })
                .collect::<Option<Vec<_>>>()
                .map(|v| crate::tensor::layout::shaped(a.raw_dim(), v))
                .ok_or_else(|| fold_err("a float constant used as integers is not whole")),
        }
    }

    /// A list of plain integers (a shape operand, axes, pads), of at most `limit` entries.
    pub(super) fn int_list(&self, limit: usize) -> Result<Vec<i64>> {
        let a = self.ints()?;
        if a.len() > limit {
            return Err(fold_err(format!(
                "{} entries where at most {limit} make sense",
                a.len()
            )));
        }
        a.iter()
            .map(|s| s.int())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fold_err("the batch size where a number is needed"))
    }

    /// The element type kept: the same kind as `self`, for a result built from `self`.
    fn map_same(
        &self,
        f: impl Fn(ArrayD<F>) -> ArrayD<F>,
        g: impl Fn(ArrayD<Sym>) -> ArrayD<Sym>,
    ) -> Const<F> {
        match self {
            Const::Float(a) => Const::Float(f(a.clone())),
            Const::Int(a) => Const::Int(g(a.clone())),
        }
    }
}

/// Normalises an axis of a tensor of rank `rank` (negative counts from the end).
pub(super) fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v >= r {
        return Err(fold_err(format!("axis {a} for rank {rank}")));
    }
    Ok(v as usize)
}

/// `Shape` of a tensor whose per-sample shape is `shape` (the batch first, symbolic).
pub(super) fn shape_of_data<F: Float>(shape: &[usize], start: i64, end: Option<i64>) -> Result<Const<F>> {
    let full: Vec<Sym> = std::iter::once(BATCH)
        .chain(shape.iter().map(|&d| Sym::Int(d as i64)))
        .collect();
    slice_list(&full, start, end).map(|v| Const::Int(crate::tensor::layout::shaped(IxDyn(&[v.len()]), v)))
}

/// `Shape` of a data tensor of full shape `full` (the batch a multiple of the batch size).
pub(super) fn shape_of_full<F: Float>(full: &[Sym], start: i64, end: Option<i64>) -> Result<Const<F>> {
    slice_list(full, start, end).map(|v| Const::Int(crate::tensor::layout::shaped(IxDyn(&[v.len()]), v)))
}

/// `Shape` of a constant.
pub(super) fn shape_of_const<F: Float>(c: &Const<F>, start: i64, end: Option<i64>) -> Result<Const<F>> {
    let full: Vec<Sym> = c.shape().iter().map(|&d| Sym::Int(d as i64)).collect();
    slice_list(&full, start, end).map(|v| Const::Int(crate::tensor::layout::shaped(IxDyn(&[v.len()]), v)))
}

/// `list[start:end]` with ONNX's clamping of `Shape`'s `start`/`end` attributes.
fn slice_list(list: &[Sym], start: i64, end: Option<i64>) -> Result<Vec<Sym>> {
    let r = list.len() as i64;
    let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
    let (s, e) = (clamp(start), clamp(end.unwrap_or(r)));
    Ok(if s < e {
        list[s as usize..e as usize].to_vec()
    } else {
        vec![]
    })
}

/// `Gather` along `axis` with integer indices.
pub(super) fn gather<F: Float>(data: &Const<F>, indices: &Const<F>, ax: i64) -> Result<Const<F>> {
    let ax = axis(ax, data.shape().len())?;
    let idx = indices.ints()?;
    let len = data.shape()[ax] as i64;
    // the indices' shape replaces the gathered axis: bound the result before building it
    let mut out_shape: Vec<usize> = data.shape()[..ax].to_vec();
    out_shape.extend_from_slice(idx.shape());
    out_shape.extend_from_slice(&data.shape()[ax + 1..]);
    check_size(&out_shape)?;
    let flat: Vec<usize> = idx
        .iter()
        .map(|s| match s.int() {
            Some(i) if (-len..len).contains(&i) => Ok(if i < 0 { i + len } else { i } as usize),
            _ => Err(fold_err(format!(
                "Gather index {s:?} out of range for length {len}"
            ))),
        })
        .collect::<Result<_>>()?;
    fn take<T: Clone>(a: &ArrayD<T>, ax: usize, flat: &[usize], idx_shape: &[usize]) -> ArrayD<T> {
        let picked = a.select(Axis(ax), flat);
        // the indices' shape replaces the gathered axis
        let mut shape: Vec<usize> = a.shape()[..ax].to_vec();
        shape.extend_from_slice(idx_shape);
        shape.extend_from_slice(&a.shape()[ax + 1..]);
        picked
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(&shape))
            .expect("same length")
    }
    Ok(match data {
        Const::Float(a) => Const::Float(take(a, ax, &flat, idx.shape())),
        Const::Int(a) => Const::Int(take(a, ax, &flat, idx.shape())),
    })
}

/// `Slice` with `starts`, `ends`, `axes`, `steps` (ONNX's clamping).
pub(super) fn slice<F: Float>(
    data: &Const<F>,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Const<F>> {
    let rank = data.shape().len();
    if starts.len() != ends.len() {
        return Err(fold_err("Slice starts and ends differ in length"));
    }
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?,
        None => (0..starts.len()).collect(),
    };
    if axes.len() != starts.len() || axes.iter().any(|&a| a >= rank) {
        return Err(fold_err(format!(
            "Slice of {} axes with {} starts for rank {rank}",
            axes.len(),
            starts.len()
        )));
    }
    let mut out = data.clone();
    for (k, &ax) in axes.iter().enumerate() {
        let dim = out.shape()[ax] as i64;
        let step = steps.map_or(1, |s| s.get(k).copied().unwrap_or(1));
        if step == 0 {
            return Err(fold_err("Slice step 0"));
        }
        let clamp = |v: i64, lo: i64, hi: i64| {
            let v = if v < 0 { v + dim } else { v };
            v.clamp(lo, hi)
        };
        let (s, e) = if step > 0 {
            (clamp(starts[k], 0, dim), clamp(ends[k], 0, dim))
        } else {
            (clamp(starts[k], -1, dim - 1), clamp(ends[k], -1, dim - 1))
        };
        let idx: Vec<usize> = if step > 0 {
            (s..e).step_by(step as usize).map(|v| v as usize).collect()
        } else {
            let mut v = Vec::new();
            let mut i = s;
            while i > e {
                v.push(i as usize);
                i += step;
            }
            v
        };
        out = out.map_same(|a| a.select(Axis(ax), &idx), |a| a.select(Axis(ax), &idx));
    }
    Ok(out)
}

/// `Concat` of constants along `axis`.
pub(super) fn concat<F: Float>(parts: &[&Const<F>], ax: i64) -> Result<Const<F>> {
    let rank = parts.first().map_or(0, |p| p.shape().len());
    let ax = axis(ax, rank)?;
    let mismatch = || fold_err("Concat of constants of different shapes");
    if parts.iter().any(|p| p.shape().len() != rank) {
        return Err(mismatch());
    }
    if parts.iter().all(|p| matches!(p, Const::Float(_))) {
        let arrays: Vec<ArrayD<F>> = parts.iter().map(|p| p.floats()).collect::<Result<_>>()?;
        let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
        return ndarray::concatenate(Axis(ax), &views)
            .map(Const::Float)
            .map_err(|_| mismatch());
    }
    let arrays: Vec<ArrayD<Sym>> = parts.iter().map(|p| p.ints()).collect::<Result<_>>()?;
    let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(ax), &views)
        .map(Const::Int)
        .map_err(|_| mismatch())
}

/// A reshape of a constant to `shape`.
pub(super) fn reshape_const<F: Float>(c: &Const<F>, shape: &[usize]) -> Result<Const<F>> {
    let bad = || fold_err(format!("reshape of {:?} to {shape:?}", c.shape()));
    Ok(match c {
        Const::Float(a) => Const::Float(
            a.as_standard_layout()
                .into_owned()
                .into_shape_with_order(IxDyn(shape))
                .map_err(|_| bad())?,
        ),
        Const::Int(a) => Const::Int(
            a.as_standard_layout()
                .into_owned()
                .into_shape_with_order(IxDyn(shape))
                .map_err(|_| bad())?,
        ),
    })
}

/// `Transpose` of a constant.
pub(super) fn transpose_const<F: Float>(c: &Const<F>, perm: Option<&[i64]>) -> Result<Const<F>> {
    let rank = c.shape().len();
    let perm: Vec<usize> = match perm {
        Some(p) => p.iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
        return Err(fold_err(format!("Transpose perm {perm:?} for rank {rank}")));
    }
    Ok(c.map_same(
        |a| a.permuted_axes(IxDyn(&perm)).as_standard_layout().into_owned(),
        |a| a.permuted_axes(IxDyn(&perm)).as_standard_layout().into_owned(),
    ))
}

/// Elementwise binary arithmetic of constants (NumPy broadcasting): `Add`, `Sub`, `Mul`,
/// `Div`, `Pow`, `Equal`, `Less`, `Greater`, `Max`, `Min`, `Mod`.
pub(super) fn binary<F: Float>(op: &str, a: &Const<F>, b: &Const<F>) -> Result<Const<F>> {
    let shapes = [a.shape(), b.shape()];
    let shape = crate::tensor::broadcast::broadcast_shape(&shapes)
        .ok_or_else(|| fold_err(format!("{op} of {:?} and {:?}", a.shape(), b.shape())))?;
    if crate::io::checked_count("folded constant", &shape, MAX_FOLDED).is_err() {
        return Err(fold_err(format!("{op} would make a constant of shape {shape:?}")));
    }
    if let (Const::Int(x), Const::Int(y)) = (a, b) {
        let (x, y) = (
            crate::tensor::layout::broadcast(x, IxDyn(&shape)),
            crate::tensor::layout::broadcast(y, IxDyn(&shape)),
        );
        let v: Vec<Sym> = x
            .iter()
            .zip(y.iter())
            .map(|(&p, &q)| int_op(op, p, q))
            .collect::<Result<_>>()?;
        return Ok(Const::Int(crate::tensor::layout::shaped(IxDyn(&shape), v)));
    }
    let (x, y) = (a.floats()?, b.floats()?);
    let (x, y) = (
        crate::tensor::layout::broadcast(&x, IxDyn(&shape)),
        crate::tensor::layout::broadcast(&y, IxDyn(&shape)),
    );
    let one = F::one();
    let zero = F::zero();
    let v: Vec<F> = x
        .iter()
        .zip(y.iter())
        .map(|(&p, &q)| {
            Ok(match op {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                "Div" => p / q,
                "Pow" => p.powf(q),
                "Max" => p.max(q),
                "Min" => p.min(q),
                "Equal" => {
                    if p == q {
                        one
                    } else {
                        zero
                    }
                }
                "Less" => {
                    if p < q {
                        one
                    } else {
                        zero
                    }
                }
                "Greater" => {
                    if p > q {
                        one
                    } else {
                        zero
                    }
                }
                other => return Err(fold_err(format!("{other} of float constants"))),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Const::Float(crate::tensor::layout::shaped(IxDyn(&shape), v)))
}

fn int_op(op: &str, p: Sym, q: Sym) -> Result<Sym> {
    use Sym::{Batch, Int};
    let bool_ = |b: bool| Int(i64::from(b));
    let overflow = || fold_err(format!("{op} overflows"));
    Ok(match (op, p, q) {
        ("Add", Int(a), Int(b)) => Int(a.checked_add(b).ok_or_else(overflow)?),
        ("Sub", Int(a), Int(b)) => Int(a.checked_sub(b).ok_or_else(overflow)?),
        ("Mul", Int(a), Int(b)) => Int(a.checked_mul(b).ok_or_else(overflow)?),
        // integer division truncates, as in C (ONNX's Div of integers)
        ("Div", Int(a), Int(b)) if b != 0 => Int(a.checked_div(b).ok_or_else(overflow)?),
        ("Mod", Int(a), Int(b)) if b != 0 => Int(a.rem_euclid(b)),
        ("Max", Int(a), Int(b)) => Int(a.max(b)),
        ("Min", Int(a), Int(b)) => Int(a.min(b)),
        ("Equal", Int(a), Int(b)) => bool_(a == b),
        ("Less", Int(a), Int(b)) => bool_(a < b),
        ("Greater", Int(a), Int(b)) => bool_(a > b),
        // multiples of the batch size: what products and exact quotients keep
        ("Mul", Batch(k), Int(m)) | ("Mul", Int(m), Batch(k)) if m >= 1 => {
            Batch(k.checked_mul(m).ok_or_else(overflow)?)
        }
        ("Div", Batch(k), Int(m)) if m >= 1 && k % m == 0 => Batch(k / m),
        ("Div", Batch(k), Batch(m)) if k % m == 0 => Int(k / m),
        ("Add" | "Sub", Batch(k), Int(0)) | ("Add", Int(0), Batch(k)) => Batch(k),
        ("Max", Batch(k), Int(a)) | ("Max", Int(a), Batch(k)) if a <= k => Batch(k),
        ("Min", Batch(k), Int(a)) | ("Min", Int(a), Batch(k)) if a >= i64::MAX / 2 => Batch(k),
        ("Equal", Batch(k), Batch(m)) if k == m => Int(1),
        // a batch size is never 0 or negative
        ("Equal", Batch(k), Int(a)) | ("Equal", Int(a), Batch(k)) if a < k => Int(0),
        ("Less", Int(a), Batch(k)) if a < k => Int(1),
        ("Greater", Batch(k), Int(a)) if a < k => Int(1),
        _ => {
            return Err(fold_err(format!(
                "{op} of {p:?} and {q:?}: shape arithmetic on the batch size is not supported"
            )))
        }
    })
}

/// `Where(cond, a, b)` of constants.
pub(super) fn where_<F: Float>(cond: &Const<F>, a: &Const<F>, b: &Const<F>) -> Result<Const<F>> {
    let shape = crate::tensor::broadcast::broadcast_shape(&[cond.shape(), a.shape(), b.shape()])
        .ok_or_else(|| fold_err("Where of shapes that do not broadcast"))?;
    if crate::io::checked_count("folded constant", &shape, MAX_FOLDED).is_err() {
        return Err(fold_err(format!(
            "Where would make a constant of shape {shape:?}"
        )));
    }
    let c = cond.ints()?;
    let c = crate::tensor::layout::broadcast(&c, IxDyn(&shape));
    let picks: Vec<bool> = c.iter().map(|s| s.int().unwrap_or(1) != 0).collect();
    if let (Const::Int(x), Const::Int(y)) = (a, b) {
        return Ok(Const::Int(pick(&picks, x, y, &shape)));
    }
    Ok(Const::Float(pick(&picks, &a.floats()?, &b.floats()?, &shape)))
}

/// `x` where `picks` holds, `y` elsewhere, both broadcast to `shape` (checked by the caller).
fn pick<T: Clone>(picks: &[bool], x: &ArrayD<T>, y: &ArrayD<T>, shape: &[usize]) -> ArrayD<T> {
    let (x, y) = (
        crate::tensor::layout::broadcast(x, IxDyn(shape)),
        crate::tensor::layout::broadcast(y, IxDyn(shape)),
    );
    let v = picks
        .iter()
        .zip(x.iter().zip(y.iter()))
        .map(|(&p, (x, y))| if p { x.clone() } else { y.clone() })
        .collect();
    crate::tensor::layout::shaped(IxDyn(shape), v)
}

/// `Expand` of a constant to (the broadcast of its shape and) `shape`.
pub(super) fn expand<F: Float>(c: &Const<F>, shape: &[usize]) -> Result<Const<F>> {
    let out = crate::tensor::broadcast::broadcast_shape(&[c.shape(), shape])
        .ok_or_else(|| fold_err("Expand to a shape that does not broadcast"))?;
    if crate::io::checked_count("folded constant", &out, MAX_FOLDED).is_err() {
        return Err(fold_err(format!("Expand would make a constant of shape {out:?}")));
    }
    Ok(c.map_same(
        |a| crate::tensor::layout::broadcast(&a, IxDyn(&out)).to_owned(),
        |a| crate::tensor::layout::broadcast(&a, IxDyn(&out)).to_owned(),
    ))
}

/// `Range(start, limit, delta)` of integer constants.
pub(super) fn range<F: Float>(start: &Const<F>, limit: &Const<F>, delta: &Const<F>) -> Result<Const<F>> {
    let (s, l, d) = (start.int_list(1)?, limit.int_list(1)?, delta.int_list(1)?);
    let (Some(&s), Some(&l), Some(&d)) = (s.first(), l.first(), d.first()) else {
        return Err(fold_err("Range of empty operands"));
    };
    if d == 0 {
        return Err(fold_err("Range with delta 0"));
    }
    let n = ((l - s) as f64 / d as f64).ceil().max(0.0) as usize;
    if n > MAX_FOLDED {
        return Err(fold_err(format!("Range of {n} values")));
    }
    let v: Vec<Sym> = (0..n as i64).map(|i| Sym::Int(s + i * d)).collect();
    Ok(Const::Int(crate::tensor::layout::shaped(IxDyn(&[n]), v)))
}

/// Keeps `a` within [`MAX_FOLDED`] elements.
pub(super) fn check_size(shape: &[usize]) -> Result<()> {
    crate::io::checked_count("folded constant", shape, MAX_FOLDED).map(|_| ())
}

/// A slice along axis 0 of a constant (for `Split`).
pub(super) fn take_rows<F: Float>(c: &Const<F>, ax: usize, start: usize, len: usize) -> Const<F> {
    c.map_same(
        |a| a.slice_axis(Axis(ax), Slice::from(start..start + len)).to_owned(),
        |a| a.slice_axis(Axis(ax), Slice::from(start..start + len)).to_owned(),
    )
}
