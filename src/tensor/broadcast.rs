//! NumPy broadcasting: the common shape of several operands, and the sum back down to an
//! operand's shape (the gradient of a broadcast).

use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, Axis};

/// The shape that `shapes` broadcast to under NumPy's rules (aligned at the last axis; a 1
/// stretches), or `None` if they do not.
pub(crate) fn broadcast_shape(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max()?;
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (o, &d) in out[rank - s.len()..].iter_mut().zip(s.iter()) {
            match (*o, d) {
                (a, b) if a == b => {}
                (1, b) => *o = b,
                (_, 1) => {}
                _ => return None,
            }
        }
    }
    Some(out)
}

/// Sums `a` down to `shape`, which broadcasts to `a`'s shape: the gradient of a
/// broadcast. Returns `a` itself when the shapes agree.
///
/// # Errors
/// [`Error::Shape`] if `shape` does not broadcast to `a`'s shape.
pub(crate) fn sum_to_shape<F: Float>(a: ArrayD<F>, shape: &[usize]) -> Result<ArrayD<F>> {
    if a.shape() == shape {
        return Ok(a);
    }
    let full = a.shape().to_vec();
    let err = || Error::Shape {
        what: "broadcast operand (must broadcast to the output)".into(),
        expected: full.clone(),
        got: shape.to_vec(),
    };
    if shape.len() > a.ndim() {
        return Err(err());
    }
    let lead = a.ndim() - shape.len();
    let mut r = a;
    // leading axes the operand does not have are summed away
    for _ in 0..lead {
        r = r.sum_axis(Axis(0));
    }
    for (axis, &d) in shape.iter().enumerate() {
        let have = r.shape()[axis];
        if d == have {
            continue;
        }
        if d != 1 {
            return Err(err());
        }
        r = r.sum_axis(Axis(axis)).insert_axis(Axis(axis));
    }
    Ok(r)
}
