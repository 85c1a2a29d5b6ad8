//! The shape arithmetic of the importer: the output shapes of `Unsqueeze` and `Squeeze`, and
//! the targets of `Reshape` resolved (`0` copies an entry, `-1` is inferred), for constants
//! and for data whose shape holds the batch size symbolically.

use super::{axis, fold_err, Sym};
use crate::error::Result;
use ndarray::ArrayD;

/// `Unsqueeze`: new axes of length 1 at `axes` (of the output).
pub(in crate::io::onnx) fn unsqueeze_shape(shape: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    let rank = shape.len() + axes.len();
    let mut axes: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?;
    axes.sort_unstable();
    let mut out = shape.to_vec();
    for a in axes {
        out.insert(a, 1);
    }
    Ok(out)
}

/// `Squeeze`: removes `axes` (all axes of length 1 if none are given).
pub(in crate::io::onnx) fn squeeze_shape(shape: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>> {
    let remove: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| axis(a, shape.len())).collect::<Result<_>>()?,
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
    };
    if remove.iter().any(|&a| shape[a] != 1) {
        return Err(fold_err(format!("Squeeze of an axis that is not 1 in {shape:?}")));
    }
    Ok(shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !remove.contains(i))
        .map(|(_, &d)| d)
        .collect())
}

/// The target of a `Reshape` of a tensor with `total` elements (per sample for data, with
/// the leading entry the batch), resolved: `0` copies the input's dimension (unless
/// `allowzero`), `-1` is inferred.
pub(in crate::io::onnx) fn resolve_reshape(
    input: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>> {
    let total: usize = input.iter().product();
    let bad = |why: &str| fold_err(format!("Reshape of {input:?} to {target:?}: {why}"));
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            0 if !allowzero => *input
                .get(i)
                .ok_or_else(|| bad("0 copies a dimension that does not exist"))?,
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            t if t >= 0 && t as u64 <= crate::io::MAX_DIM as u64 => t as usize,
            _ => return Err(bad("invalid entry")),
        });
    }
    let known = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("overflow"))?;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(bad("-1 cannot be inferred"));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(bad("the number of values changes"));
    }
    Ok(out)
}

/// A slice of a 1-D `Sym` constant as a full per-sample target (for `Reshape` of data): the
/// leading entry must be the batch size (symbolic, `0`, `-1` with the rest known, or the
/// literal batch size the graph declares).
pub(in crate::io::onnx) fn per_sample_target(
    target: &ArrayD<Sym>,
    declared_batch: Option<i64>,
) -> Result<Vec<i64>> {
    let t: Vec<Sym> = target.iter().copied().collect();
    let first_is_batch = match t.first() {
        Some(Sym::Batch(1)) | Some(Sym::Int(0)) => true,
        Some(Sym::Batch(_)) => false,
        Some(Sym::Int(-1)) => t[1..].iter().all(|s| matches!(s, Sym::Int(v) if *v >= 0)),
        Some(Sym::Int(b)) => Some(*b) == declared_batch || *b == 1,
        None => false,
    };
    if !first_is_batch {
        return Err(fold_err(format!(
            "Reshape target {t:?} does not keep the batch dimension first"
        )));
    }
    t[1..]
        .iter()
        .map(|s| {
            s.int()
                .ok_or_else(|| fold_err("the batch size inside a per-sample shape"))
        })
        .collect()
}

/// The target of a `Reshape` of data of full shape `input` (one entry a multiple of the
/// batch size), resolved: `0` copies the input's entry (unless `allowzero`), `-1` is
/// inferred — a multiple of the batch size where no other entry is one.
pub(in crate::io::onnx) fn resolve_data_reshape(
    input: &[Sym],
    target: &[Sym],
    allowzero: bool,
) -> Result<Vec<Sym>> {
    let bad = |why: &str| fold_err(format!("Reshape of {input:?} to {target:?}: {why}"));
    let split = |shape: &[Sym]| -> Option<(u128, Option<u128>)> {
        // (product of the numbers, the batch's multiple)
        let mut p = 1u128;
        let mut k = None;
        for s in shape {
            match *s {
                Sym::Int(v) => p = p.checked_mul(u128::try_from(v).ok()?)?,
                Sym::Batch(m) if k.is_none() => k = Some(u128::try_from(m).ok()?),
                Sym::Batch(_) => return None,
            }
        }
        Some((p, k))
    };
    let (p_in, k_in) = split(input).ok_or_else(|| bad("the input's shape"))?;
    let total = p_in * k_in.ok_or_else(|| bad("the input does not hold the batch"))?;
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            Sym::Int(0) if !allowzero => *input
                .get(i)
                .ok_or_else(|| bad("0 copies a dimension that does not exist"))?,
            Sym::Int(-1) if infer.is_none() => {
                infer = Some(i);
                Sym::Int(1)
            }
            Sym::Int(v) if v >= 0 && v as u64 <= crate::io::MAX_DIM as u64 => t,
            Sym::Batch(k) if k >= 1 => t,
            _ => return Err(bad("invalid entry")),
        });
    }
    let (p, k) = split(&out).ok_or_else(|| bad("the batch twice"))?;
    match (infer, k) {
        (Some(i), Some(k)) => {
            let known = p * k;
            if known == 0 || total % known != 0 {
                return Err(bad("-1 cannot be inferred"));
            }
            out[i] = Sym::Int(i64::try_from(total / known).map_err(|_| bad("overflow"))?);
        }
        (Some(i), None) => {
            if p == 0 || total % p != 0 {
                return Err(bad("-1 cannot be inferred"));
            }
            out[i] = Sym::Batch(i64::try_from(total / p).map_err(|_| bad("overflow"))?);
        }
        (None, Some(k)) if p * k == total => {}
        _ => return Err(bad("the number of values changes")),
    }
    Ok(out)
}
