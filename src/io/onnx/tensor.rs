//! Decoding ONNX tensors (float32/float64/int32/int64, raw or typed) and the graph input's
//! shape, every size checked before any allocation.

use super::proto::{TensorProto, ValueInfoProto, DOUBLE, FLOAT, INT32, INT64};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::{checked_count, MAX_DIM};
use ndarray::{Array1, ArrayD, IxDyn};

/// The largest tensor the importer accepts: 2³¹ values (it must also be stored in full in
/// the file).
const MAX_TENSOR: usize = 1 << 31;

/// The per-sample shape of the graph input (its first dimension is the batch).
pub(super) fn input_shape(input: &ValueInfoProto) -> Result<Vec<usize>> {
    let err = |reason: String| Error::Format {
        what: format!("ONNX graph input {}", input.name),
        reason,
    };
    let tensor = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| err("not a tensor".into()))?;
    if !matches!(tensor.elem_type, FLOAT | DOUBLE) {
        return Err(err(format!(
            "element type {} (float or double expected)",
            tensor.elem_type
        )));
    }
    let dims = &tensor
        .shape
        .as_ref()
        .ok_or_else(|| err("its shape is not given".into()))?
        .dim;
    if dims.len() < 2 {
        return Err(err(format!(
            "rank {} (a batch dimension and at least one more expected)",
            dims.len()
        )));
    }
    dims[1..]
        .iter()
        .enumerate()
        .map(|(i, d)| match d.dim_value {
            Some(v) if v > 0 && v as u64 <= MAX_DIM as u64 => Ok(v as usize),
            Some(v) => Err(err(format!("dimension {} is {v}", i + 1))),
            None => Err(err(format!(
                "dimension {} is symbolic ({:?}); only the batch dimension may be",
                i + 1,
                d.dim_param.as_deref().unwrap_or("")
            ))),
        })
        .collect()
}

/// A tensor's dimensions, checked.
pub(super) fn dims(t: &TensorProto, name: &str) -> Result<(Vec<usize>, usize)> {
    let what = format!("tensor {name}");
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(Error::Format {
            what,
            reason: "external data is not supported; save the model with its weights inside".into(),
        });
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| Error::Format {
                what: what.clone(),
                reason: format!("negative dimension {d} in {:?}", t.dims),
            })
        })
        .collect::<Result<_>>()?;
    let n = checked_count(&what, &dims, MAX_TENSOR)?;
    Ok((dims, n))
}

fn stored_len_err(name: &str, dims: &[usize], found: usize, unit: &str) -> Error {
    Error::Format {
        what: format!("tensor {name}"),
        reason: format!("shape {dims:?} does not match the {found} {unit} stored"),
    }
}

/// A float32 or float64 tensor as an array of `F`.
pub(super) fn float_tensor<F: Float>(t: &TensorProto, name: &str) -> Result<ArrayD<F>> {
    let (shape, n) = dims(t, name)?;
    let raw = &t.raw_data;
    let values: Vec<F> = match t.data_type {
        FLOAT if !raw.is_empty() => {
            if raw.len() != n * 4 {
                return Err(stored_len_err(name, &shape, raw.len(), "raw bytes"));
            }
            raw.chunks_exact(4)
                .map(|b| crate::io::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect()
        }
        FLOAT => {
            if t.float_data.len() != n {
                return Err(stored_len_err(name, &shape, t.float_data.len(), "floats"));
            }
            t.float_data.iter().map(|&v| crate::io::from_f32(v)).collect()
        }
        DOUBLE if !raw.is_empty() => {
            if raw.len() != n * 8 {
                return Err(stored_len_err(name, &shape, raw.len(), "raw bytes"));
            }
            raw.chunks_exact(8)
                .map(|b| {
                    crate::io::from_f64(f64::from_le_bytes([
                        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                    ]))
                })
                .collect()
        }
        DOUBLE => {
            if t.double_data.len() != n {
                return Err(stored_len_err(name, &shape, t.double_data.len(), "doubles"));
            }
            t.double_data.iter().map(|&v| crate::io::from_f64(v)).collect()
        }
        other => {
            return Err(Error::Format {
                what: format!("tensor {name}"),
                reason: format!("data type {other} is not supported (1 float or 11 double)"),
            })
        }
    };
    ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| Error::Format {
        what: format!("tensor {name}"),
        reason: e.to_string(),
    })
}

/// A 1-D float tensor (a bias).
pub(super) fn vector<F: Float>(t: &TensorProto, name: &str, node: &str) -> Result<Array1<F>> {
    let a = float_tensor::<F>(t, name)?;
    let shape = a.shape().to_vec();
    a.into_dimensionality().map_err(|_| Error::AtNode {
        node: node.to_string(),
        source: Box::new(Error::Rank {
            what: format!("tensor {name}"),
            expected: 1,
            got: shape.len(),
            shape,
        }),
    })
}

/// An int64 or int32 tensor as a flat list (a shape operand).
pub(super) fn int_tensor(t: &TensorProto, name: &str) -> Result<Vec<i64>> {
    let (shape, n) = dims(t, name)?;
    let raw = &t.raw_data;
    let values: Vec<i64> = match t.data_type {
        INT64 if !raw.is_empty() => {
            if raw.len() != n * 8 {
                return Err(stored_len_err(name, &shape, raw.len(), "raw bytes"));
            }
            raw.chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect()
        }
        INT64 => t.int64_data.clone(),
        INT32 if !raw.is_empty() => {
            if raw.len() != n * 4 {
                return Err(stored_len_err(name, &shape, raw.len(), "raw bytes"));
            }
            raw.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect()
        }
        INT32 => t.int32_data.iter().map(|&v| v as i64).collect(),
        other => {
            return Err(Error::Format {
                what: format!("tensor {name}"),
                reason: format!("data type {other} is not an integer type (6 int32 or 7 int64)"),
            })
        }
    };
    if values.len() != n {
        return Err(stored_len_err(name, &shape, values.len(), "integers"));
    }
    Ok(values)
}
