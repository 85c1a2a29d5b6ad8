//! NumPy `.npy` arrays: enough to exchange inputs and relevance maps with Python tools.

use super::{checked_count, read_file};
use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The largest array [`read_npy`] accepts: 2²⁸ values.
const MAX_VALUES: usize = 1 << 28;
/// The longest header [`read_npy`] accepts.
const MAX_HEADER: usize = 1 << 16;

fn npy_err(reason: impl Into<String>) -> Error {
    Error::Format {
        what: "npy array".into(),
        reason: reason.into(),
    }
}

/// The header text of a `.npy` file, where it starts and its length.
fn npy_header(bytes: &[u8]) -> Result<(&str, usize, usize)> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(npy_err("not an .npy file (bad magic)"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(npy_err(format!("format version {v} is not supported"))),
    };
    if header_len > MAX_HEADER || start + header_len > bytes.len() {
        return Err(npy_err(format!(
            "header of {header_len} bytes does not fit in the file"
        )));
    }
    let header =
        std::str::from_utf8(&bytes[start..start + header_len]).map_err(|_| npy_err("header is not text"))?;
    Ok((header, start, header_len))
}

/// The element type a `.npy` file declares (`"<f4"`, `"|u1"`, ...), to tell pixels stored
/// as `uint8` (0..=255) from preprocessed floats before [`read_npy`] converts both.
///
/// ```
/// use ndarray::array;
/// use relevance::io::{npy_element_type, write_npy};
/// # fn main() -> relevance::Result<()> {
/// assert_eq!(npy_element_type(&write_npy(&array![1.0_f32].into_dyn()))?, "<f4");
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Format`] for a bad magic or header.
pub fn npy_element_type(bytes: &[u8]) -> Result<String> {
    let (header, _, _) = npy_header(bytes)?;
    let descr = dict_value(header, "descr").ok_or_else(|| npy_err("header has no 'descr'"))?;
    Ok(descr.trim_matches(|c| c == '\'' || c == '"').to_string())
}

/// Decodes a `.npy` file held in memory (format versions 1–3) into an array of `F`.
///
/// Supported element types: little-endian `f4`, `f8`, `i4`, `i8`, and `u1`/`i1` (integers
/// are converted as they are, without scaling); C or Fortran order.
///
/// ```
/// use ndarray::array;
/// use relevance::io::{read_npy, write_npy};
/// # fn main() -> relevance::Result<()> {
/// let a = array![[1.0_f32, -2.5], [0.0, 4.0]].into_dyn();
/// let bytes = write_npy(&a);
/// assert_eq!(read_npy::<f32>(&bytes)?, a);
/// assert_eq!(read_npy::<f64>(&bytes)?[[0, 1]], -2.5);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Format`] for a bad magic or header, an unsupported element type, more than
/// 2²⁸ values, or a data section of the wrong length.
pub fn read_npy<F: Float>(bytes: &[u8]) -> Result<ArrayD<F>> {
    let (header, start, header_len) = npy_header(bytes)?;
    let descr = dict_value(header, "descr").ok_or_else(|| npy_err("header has no 'descr'"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = match dict_value(header, "fortran_order") {
        Some("True") => true,
        Some("False") => false,
        _ => return Err(npy_err("header has no valid 'fortran_order'")),
    };
    let shape_text = dict_value(header, "shape").ok_or_else(|| npy_err("header has no 'shape'"))?;
    let shape = parse_shape(shape_text)?;
    let n = checked_count("npy array", &shape, MAX_VALUES)?;
    let data = &bytes[start + header_len..];
    let (size, decode): (usize, fn(&[u8]) -> f64) = match descr {
        "<f4" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
        "<f8" => (8, |b| {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        }),
        "<i4" => (4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
        "<i8" => (8, |b| {
            i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64
        }),
        "|u1" => (1, |b| b[0] as f64),
        "|i1" => (1, |b| b[0] as i8 as f64),
        other => {
            return Err(npy_err(format!(
                "element type {other:?} is not supported (f4, f8, i4, i8, u1, i1, little-endian)"
            )))
        }
    };
    if data.len() != n * size {
        return Err(npy_err(format!(
            "shape {shape:?} of {descr} needs {} data bytes, the file has {}",
            n * size,
            data.len()
        )));
    }
    let values: Vec<F> = if size == 4 && descr == "<f4" {
        // exact for f32 → F
        data.chunks_exact(4)
            .map(|b| super::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect()
    } else {
        data.chunks_exact(size).map(|b| F::lit(decode(b))).collect()
    };
    let dim = IxDyn(&shape);
    let array = if fortran {
        ArrayD::from_shape_vec(dim.f(), values)
    } else {
        ArrayD::from_shape_vec(dim, values)
    };
    array.map_err(|e| npy_err(e.to_string()))
}

/// The text of `key`'s value in a Python dict literal (up to the next top-level comma).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[pos + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.checked_sub(1)?,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| npy_err(format!("shape {text:?} is not a tuple")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| npy_err(format!("shape {text:?} has a bad dimension {s:?}")))
        })
        .collect()
}

/// Reads a `.npy` file; see [`read_npy`].
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; as [`read_npy`] otherwise.
pub fn load_npy<F: Float>(path: impl AsRef<Path>) -> Result<ArrayD<F>> {
    read_npy(&read_file(path.as_ref())?)
}

/// Encodes an array as a `.npy` file (version 1, or 2 for a header beyond 64 KiB): `<f4` for
/// `f32`, `<f8` for `f64`, C order.
pub fn write_npy<F: Float>(array: &ArrayD<F>) -> Vec<u8> {
    let is_f32 = std::mem::size_of::<F>() == 4;
    let mut out = npy_preamble(array.shape(), is_f32);
    out.reserve(array.len() * if is_f32 { 4 } else { 8 });
    for &v in array.as_standard_layout().iter() {
        if is_f32 {
            out.extend_from_slice(&(v.as_f64() as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&v.as_f64().to_le_bytes());
        }
    }
    out
}

/// The magic, version, header and padding of a `.npy` file of `shape`: `<f4` if `is_f32`,
/// `<f8` otherwise, C order; the data follows.
pub(crate) fn npy_preamble(shape: &[usize], is_f32: bool) -> Vec<u8> {
    let shape = match shape {
        [d] => format!("({d},)"),
        dims => format!(
            "({})",
            dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let descr = if is_f32 { "<f4" } else { "<f8" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // version 1 stores the header length in 2 bytes; a longer header (tens of thousands of
    // axes) needs version 2 and its 4-byte length
    let v2 = 10 + header.len() + 64 > usize::from(u16::MAX);
    let preamble = if v2 { 12 } else { 10 };
    // pad so that the data starts at a multiple of 64 bytes, header ending in '\n'
    let unpadded = preamble + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(preamble + header.len());
    out.extend_from_slice(MAGIC);
    if v2 {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out
}

/// Writes an array to a `.npy` file; see [`write_npy`].
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn save_npy<F: Float>(path: impl AsRef<Path>, array: &ArrayD<F>) -> Result<()> {
    std::fs::write(path.as_ref(), write_npy(array)).map_err(|e| Error::Io {
        path: path.as_ref().display().to_string(),
        reason: e.to_string(),
    })
}
