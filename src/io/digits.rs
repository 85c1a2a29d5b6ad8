//! The bundled test digits, `data/digits_test.bin`.

use super::read_file;
use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{Array3, Array4, ArrayD, Axis};
use std::path::Path;

const MAGIC: &[u8; 8] = b"RLVDIGIT";
const HEADER: usize = 24;

/// A set of labelled greyscale images, as in `data/digits_test.bin` (500 held-out MNIST
/// digits, written by `tools/train_digits.py`).
///
/// # File format
/// All integers little-endian:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `b"RLVDIGIT"` |
/// | 8 | 4 | `u32` version, 1 |
/// | 12 | 4 | `u32` count N |
/// | 16 | 4 | `u32` rows |
/// | 20 | 4 | `u32` cols |
/// | 24 | N·rows·cols | `u8` pixels, image after image, row-major (`round(255 · intensity)`) |
/// | … | N | `u8` labels |
///
/// The file must be exactly that long.
///
/// ```
/// use relevance::io::Digits;
/// # fn main() -> relevance::Result<()> {
/// let digits = Digits::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits_test.bin"))?;
/// assert_eq!(digits.len(), 500);
/// let x = digits.images::<f32>(&[0, 1, 2])?; // [3, 1, 28, 28], values in [0, 1]
/// assert_eq!(x.shape(), &[3, 1, 28, 28]);
/// assert!(digits.labels()[0] < 10);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digits {
    /// The pixels, `[N, rows, cols]`.
    pixels: Array3<u8>,
    /// One label per image.
    labels: Vec<u8>,
}

fn format_err(reason: String) -> Error {
    Error::Format {
        what: "digits file".into(),
        reason,
    }
}

impl Digits {
    /// Reads a digits file.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; as [`Digits::from_bytes`] otherwise.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_bytes(&read_file(path.as_ref())?)
    }

    /// Decodes a digits file held in memory.
    ///
    /// # Errors
    /// [`Error::Format`] for a wrong magic or version, a zero dimension, or a length that is
    /// not exactly header + pixels + labels.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER {
            return Err(format_err(format!(
                "{} bytes is shorter than the {HEADER}-byte header",
                bytes.len()
            )));
        }
        if &bytes[..8] != MAGIC {
            return Err(format_err("wrong magic (expected RLVDIGIT)".into()));
        }
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
        let (version, n, rows, cols) = (word(8), word(12), word(16), word(20));
        if version != 1 {
            return Err(format_err(format!("version {version} (only version 1 is known)")));
        }
        if rows == 0 || cols == 0 {
            return Err(format_err(format!(
                "image size {rows}×{cols} has a zero dimension"
            )));
        }
        let pixels = n
            .checked_mul(rows)
            .and_then(|p| p.checked_mul(cols))
            .ok_or_else(|| format_err(format!("{n} images of {rows}×{cols} overflow")))?;
        let expected = pixels.checked_add(n).and_then(|p| p.checked_add(HEADER));
        if expected != Some(bytes.len()) {
            return Err(format_err(format!(
                "{n} images of {rows}×{cols} need {} bytes, the file has {}",
                expected.map_or_else(|| "too many".to_string(), |e| e.to_string()),
                bytes.len()
            )));
        }
        let body = &bytes[HEADER..];
        let pixels = Array3::from_shape_vec((n, rows, cols), body[..pixels].to_vec())
            .map_err(|e| format_err(e.to_string()))?;
        let labels = body[n * rows * cols..].to_vec();
        Ok(Digits { pixels, labels })
    }

    /// Digits from pixels `[N, rows, cols]` and one label per image.
    ///
    /// # Errors
    /// [`Error::Shape`] if the counts differ or an image has a zero dimension.
    pub fn new(pixels: Array3<u8>, labels: Vec<u8>) -> Result<Self> {
        let (n, rows, cols) = pixels.dim();
        if labels.len() != n || rows == 0 || cols == 0 {
            return Err(Error::Shape {
                what: "digits (one label per image, non-empty images)".into(),
                expected: vec![labels.len(), rows.max(1), cols.max(1)],
                got: vec![n, rows, cols],
            });
        }
        Ok(Digits { pixels, labels })
    }

    /// The pixels, `[N, rows, cols]`.
    pub fn pixels(&self) -> &Array3<u8> {
        &self.pixels
    }

    /// One label per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images at `indices` as a batch `[k, 1, rows, cols]` with values `u8 / 255`
    /// computed in `f32` (as PyTorch's `tensor.float() / 255`) and then converted to `F`.
    ///
    /// # Errors
    /// [`Error::Shape`] if an index is out of range.
    pub fn images<F: Float>(&self, indices: &[usize]) -> Result<ArrayD<F>> {
        let (n, rows, cols) = self.pixels.dim();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(Error::Shape {
                what: format!("digit index {bad}"),
                expected: vec![n],
                got: vec![bad],
            });
        }
        let mut out = Array4::<F>::zeros((indices.len(), 1, rows, cols));
        for (mut dst, &i) in out.axis_iter_mut(Axis(0)).zip(indices) {
            let src = self.pixels.index_axis(Axis(0), i);
            dst.index_axis_mut(Axis(0), 0)
                .zip_mut_with(&src, |d, &p| *d = super::from_f32(p as f32 / 255.0));
        }
        Ok(out.into_dyn())
    }

    /// Every image, `[N, 1, rows, cols]`, as [`Digits::images`].
    pub fn all_images<F: Float>(&self) -> ArrayD<F> {
        let all: Vec<usize> = (0..self.len()).collect();
        self.images(&all).unwrap_or_else(|_| ArrayD::zeros(vec![0]))
    }
}
