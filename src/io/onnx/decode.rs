//! Decoding ONNX tensors — float32/float64/float16/bfloat16 and integers, raw, typed or in
//! an external data file — and the graph input's shape, every size checked before any
//! allocation.

use super::proto::{
    TensorProto, ValueInfoProto, BFLOAT16, BOOL, DOUBLE, FLOAT, FLOAT16, INT32, INT64, INT8, UINT8,
};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::{checked_count, MAX_DIM};
use ndarray::{ArrayD, IxDyn};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The largest tensor the importer accepts: 2³¹ values (it must also be stored in full in
/// the file, or in its external data file).
pub(super) const MAX_TENSOR: usize = 1 << 31;

/// Where a model's external data files are: the folder of the model file, if the model was
/// read from a file.
#[derive(Debug, Clone, Default)]
pub(super) struct DataDir(pub(super) Option<PathBuf>);

/// The per-sample shape of the graph input (its first dimension is the batch), with
/// `override_shape` replacing it when given (for symbolic or missing dimensions). The
/// explained input may be a float tensor or integer token ids (`int64`, `int32`), which
/// the network takes as floats.
pub(super) fn input_shape(input: &ValueInfoProto, override_shape: Option<&[usize]>) -> Result<Vec<usize>> {
    let err = |reason: String| Error::Format {
        what: format!("ONNX graph input {}", input.name),
        reason,
    };
    if !is_int_input(input) {
        float_type(input).map_err(err)?;
    }
    if let Some(shape) = override_shape {
        if shape.is_empty() || shape.iter().any(|&d| d == 0 || d > MAX_DIM) {
            return Err(err(format!(
                "the given input shape {shape:?} has a zero or absurd dimension"
            )));
        }
        return Ok(shape.to_vec());
    }
    declared_shape(
        input,
        "give the per-sample input shape with OnnxOptions::input_shape",
    )
    .map_err(err)
}

/// The per-sample shape a held input (a graph input other than the explained one)
/// declares: every dimension after the batch a literal; `Err` says which one is not.
pub(super) fn held_input_shape(input: &ValueInfoProto) -> std::result::Result<Vec<usize>, String> {
    float_type(input)?;
    declared_shape(input, "a held input needs a fixed per-sample shape")
}

/// The per-sample shape of a graph input held at a value: its declared dimensions after
/// the batch, a named (symbolic) one taking the size of the explained input's dimension
/// of the same name; `Err` says which dimension is neither.
pub(super) fn fixed_input_shape(
    input: &ValueInfoProto,
    explained: &ValueInfoProto,
    explained_shape: &[usize],
) -> std::result::Result<Vec<usize>, String> {
    let dims = |v: &ValueInfoProto| {
        v.r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| s.dim.clone())
    };
    let own = dims(input).ok_or("its shape is not given; give its values with FixedInput::Values")?;
    let named: Vec<(String, usize)> = dims(explained)
        .unwrap_or_default()
        .iter()
        .skip(1)
        .zip(explained_shape)
        .filter_map(|(d, &size)| d.dim_param.clone().filter(|p| !p.is_empty()).map(|p| (p, size)))
        .collect();
    if own.is_empty() {
        return Err("rank 0 (a batch dimension expected)".into());
    }
    own[1..]
        .iter()
        .enumerate()
        .map(|(i, d)| match (d.dim_value, d.dim_param.as_deref()) {
            (Some(v), _) if v > 0 && v as u64 <= MAX_DIM as u64 => Ok(v as usize),
            (Some(v), _) => Err(format!("dimension {} is {v}", i + 1)),
            (None, Some(p)) => named
                .iter()
                .find(|(q, _)| q == p)
                .map(|&(_, size)| size)
                .ok_or_else(|| {
                    format!(
                        "dimension {} is symbolic ({p:?}) and the explained input has no dimension of that name; give its values with FixedInput::Values",
                        i + 1
                    )
                }),
            (None, None) => Err(format!(
                "dimension {} is not given; give its values with FixedInput::Values",
                i + 1
            )),
        })
        .collect()
}

/// Whether a graph input is declared as integers of any width or booleans (a held-fixed
/// input of such a type is folded as integers).
pub(super) fn is_integer_input(input: &ValueInfoProto) -> bool {
    input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .is_some_and(|t| matches!(t.elem_type, INT64 | INT32 | INT8 | UINT8 | BOOL))
}

/// Whether a graph input is declared as integers (`int64`, `int32`: token ids).
pub(super) fn is_int_input(input: &ValueInfoProto) -> bool {
    input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .is_some_and(|t| matches!(t.elem_type, INT64 | INT32))
}

/// `Err` for a graph input of a declared element type that is not a float type.
fn float_type(input: &ValueInfoProto) -> std::result::Result<(), String> {
    match input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) {
        Some(t) if !matches!(t.elem_type, FLOAT | DOUBLE | FLOAT16 | BFLOAT16 | 0) => {
            Err(format!("element type {} (a float type expected)", t.elem_type))
        }
        _ => Ok(()),
    }
}

/// The per-sample shape a graph input declares (the dimensions after the batch), each a
/// positive literal; `Err` says which one is not, with `hint` for a symbolic or missing one.
fn declared_shape(input: &ValueInfoProto, hint: &str) -> std::result::Result<Vec<usize>, String> {
    let dims = &input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .ok_or_else(|| format!("its shape is not given; {hint}"))?
        .dim;
    if dims.len() < 2 {
        return Err(format!(
            "rank {} (a batch dimension and at least one more expected)",
            dims.len()
        ));
    }
    dims[1..]
        .iter()
        .enumerate()
        .map(|(i, d)| match d.dim_value {
            Some(v) if v > 0 && v as u64 <= MAX_DIM as u64 => Ok(v as usize),
            Some(v) => Err(format!("dimension {} is {v}", i + 1)),
            None => Err(format!(
                "dimension {} is symbolic ({:?}); {hint}",
                i + 1,
                d.dim_param.as_deref().unwrap_or("")
            )),
        })
        .collect()
}

/// The batch size the graph input declares, if it is a literal (static exports).
pub(super) fn declared_batch(input: &ValueInfoProto) -> Option<i64> {
    let t = input.r#type.as_ref()?.tensor_type.as_ref()?;
    t.shape.as_ref()?.dim.first()?.dim_value.filter(|&v| v > 0)
}

/// A tensor's dimensions, checked.
pub(super) fn dims(t: &TensorProto, name: &str) -> Result<(Vec<usize>, usize)> {
    let what = format!("tensor {name}");
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
    if dims.len() > 8 {
        return Err(Error::Format {
            what,
            reason: format!("rank {} (at most 8)", dims.len()),
        });
    }
    let n = checked_count(&what, &dims, MAX_TENSOR)?;
    Ok((dims, n))
}

fn stored_len_err(name: &str, dims: &[usize], found: usize, unit: &str) -> Error {
    Error::Format {
        what: format!("tensor {name}"),
        reason: format!("shape {dims:?} does not match the {found} {unit} stored"),
    }
}

/// The bytes of a tensor stored in an external data file (`location`, `offset`, `length`
/// relative to the model's folder), checked against the file before anything is read.
fn external(t: &TensorProto, name: &str, dir: &DataDir, want: usize) -> Result<Vec<u8>> {
    let what = format!("tensor {name} (external data)");
    let bad = |reason: String| Error::Format {
        what: what.clone(),
        reason,
    };
    let get = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = get("location").ok_or_else(|| bad("no location".into()))?;
    let number = |key: &str| -> Result<Option<u64>> {
        get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{key} {v:?} is not a number")))
            })
            .transpose()
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let dir = dir.0.as_ref().ok_or_else(|| {
        bad(
            "the model's weights are in an external file: load the model from its path (load_onnx) so that \
             the file can be found next to it"
                .into(),
        )
    })?;
    let rel = Path::new(location);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(bad(format!(
            "location {location:?} must be a plain path inside the model's folder"
        )));
    }
    let path = dir.join(rel);
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    // the file must really be inside the folder (no symbolic link out of it)
    let (canon_dir, canon) = (dir.canonicalize().map_err(io)?, path.canonicalize().map_err(io)?);
    if !canon.starts_with(&canon_dir) {
        return Err(bad(format!(
            "location {location:?} leads outside the model's folder"
        )));
    }
    let size = std::fs::metadata(&canon).map_err(io)?.len();
    let length = length.unwrap_or(size.saturating_sub(offset));
    if length != want as u64 {
        return Err(bad(format!(
            "length {length} does not match the {want} bytes its shape needs"
        )));
    }
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(bad(format!(
            "offset {offset} + length {length} is past the end of {location:?} ({size} bytes)"
        )));
    }
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(&canon).map_err(io)?;
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = vec![0u8; want];
    f.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// The tensor's raw little-endian bytes (`raw_data` or external data) if it has some,
/// checked to hold `n` elements of `size` bytes.
fn raw<'t>(
    t: &'t TensorProto,
    name: &str,
    dir: &DataDir,
    shape: &[usize],
    n: usize,
    size: usize,
) -> Result<Option<Cow<'t, [u8]>>> {
    let want = n
        .checked_mul(size)
        .ok_or_else(|| stored_len_err(name, shape, 0, "bytes"))?;
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Ok(Some(Cow::Owned(external(t, name, dir, want)?)));
    }
    if t.raw_data.is_empty() {
        return Ok(None);
    }
    if t.raw_data.len() != want {
        return Err(stored_len_err(name, shape, t.raw_data.len(), "raw bytes"));
    }
    Ok(Some(Cow::Borrowed(&t.raw_data)))
}

/// IEEE half precision to single.
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: value f · 2^-24
            let v = f as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, f) => sign | 0x7fc0_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// A float tensor (float32, float64, float16 or bfloat16) as an array of `F`.
pub(super) fn float_tensor<F: Float>(t: &TensorProto, name: &str, dir: &DataDir) -> Result<ArrayD<F>> {
    let (shape, n) = dims(t, name)?;
    let from32 = crate::io::from_f32::<F>;
    let halves = |bits: &mut dyn Iterator<Item = u16>, bf: bool| -> Vec<F> {
        bits.map(|b| {
            if bf {
                from32(f32::from_bits(u32::from(b) << 16))
            } else {
                from32(f16_to_f32(b))
            }
        })
        .collect()
    };
    let values: Vec<F> = match t.data_type {
        FLOAT => match raw(t, name, dir, &shape, n, 4)? {
            Some(r) => r
                .chunks_exact(4)
                .map(|b| from32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            None if t.float_data.len() == n => t.float_data.iter().map(|&v| from32(v)).collect(),
            None => return Err(stored_len_err(name, &shape, t.float_data.len(), "floats")),
        },
        DOUBLE => match raw(t, name, dir, &shape, n, 8)? {
            Some(r) => r
                .chunks_exact(8)
                .map(|b| {
                    crate::io::from_f64(f64::from_le_bytes([
                        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                    ]))
                })
                .collect(),
            None if t.double_data.len() == n => {
                t.double_data.iter().map(|&v| crate::io::from_f64(v)).collect()
            }
            None => return Err(stored_len_err(name, &shape, t.double_data.len(), "doubles")),
        },
        FLOAT16 | BFLOAT16 => {
            let bf = t.data_type == BFLOAT16;
            match raw(t, name, dir, &shape, n, 2)? {
                Some(r) => halves(
                    &mut r.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])),
                    bf,
                ),
                // typed storage: one value per int32, in its low 16 bits
                None if t.int32_data.len() == n => halves(&mut t.int32_data.iter().map(|&v| v as u16), bf),
                None => return Err(stored_len_err(name, &shape, t.int32_data.len(), "halves")),
            }
        }
        INT32 | INT64 | INT8 | UINT8 | BOOL => int_tensor(t, name, dir)?
            .1
            .into_iter()
            .map(|v| F::lit(v as f64))
            .collect(),
        other => {
            return Err(Error::Format {
                what: format!("tensor {name}"),
                reason: format!(
                "data type {other} is not supported (float32, float64, float16, bfloat16 or an integer type)"
            ),
            })
        }
    };
    ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| Error::Format {
        what: format!("tensor {name}"),
        reason: e.to_string(),
    })
}

/// An integer (or boolean) tensor: its shape and its values in C order.
pub(super) fn int_tensor(t: &TensorProto, name: &str, dir: &DataDir) -> Result<(Vec<usize>, Vec<i64>)> {
    let (shape, n) = dims(t, name)?;
    let values: Vec<i64> = match t.data_type {
        INT64 => match raw(t, name, dir, &shape, n, 8)? {
            Some(r) => r
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            None => t.int64_data.clone(),
        },
        INT32 => match raw(t, name, dir, &shape, n, 4)? {
            Some(r) => r
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            None => t.int32_data.iter().map(|&v| i64::from(v)).collect(),
        },
        INT8 | UINT8 | BOOL => match raw(t, name, dir, &shape, n, 1)? {
            Some(r) => r
                .iter()
                .map(|&b| {
                    if t.data_type == INT8 {
                        i64::from(b as i8)
                    } else {
                        i64::from(b)
                    }
                })
                .collect(),
            None => t.int32_data.iter().map(|&v| i64::from(v)).collect(),
        },
        other => {
            return Err(Error::Format {
                what: format!("tensor {name}"),
                reason: format!("data type {other} is not an integer type"),
            })
        }
    };
    if values.len() != n {
        return Err(stored_len_err(name, &shape, values.len(), "integers"));
    }
    Ok((shape, values))
}

/// Whether a tensor holds integers (or booleans) rather than floats.
pub(super) fn is_int(t: &TensorProto) -> bool {
    matches!(t.data_type, INT32 | INT64 | INT8 | UINT8 | BOOL)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert!(f16_to_f32(0x7c00).is_infinite() && f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }
}
