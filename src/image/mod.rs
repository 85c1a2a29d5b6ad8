//! Images in: PNG and JPEG decoding, torchvision's `Resize` + `CenterCrop`, scaling to
//! [0, 1], mean/std normalisation with presets (ImageNet, MNIST), the z^B bounds that
//! normalisation implies, and `.npy` arrays of `uint8` pixels. Cargo feature `image`.
//!
//! The recipe is torchvision's evaluation transform, so an image gives the model the same
//! input as in PyTorch: Pillow's bilinear resampling is re-implemented, so a PNG gives the
//! same bytes as torchvision; a JPEG is within 2/255 per pixel (zune-jpeg and libjpeg-turbo
//! round the inverse DCT differently). Tested against torchvision on the same files
//! (`tools/gen_image_fixtures.py`, `tests/suite/images.rs`):
//!
//! ```text
//! Resize(round(max(H, W) · resize_ratio))  # shorter side; ImageNet: 256 for a 224 crop
//! CenterCrop((H, W))
//! ToTensor()                               # [C, H, W] in [0, 1]; grey as PIL's convert("L")
//! Normalize(mean, std)
//! ```
//!
//! ```
//! use relevance::image::{load_image, Preprocess};
//! use relevance::{Composite, Float};
//! # fn main() -> relevance::Result<()> {
//! let pre = Preprocess::imagenet();
//! // the normalised images of black and white pixels, per channel: z^B's bounds
//! let (low, high) = pre.bounds::<f32>(&[3, 224, 224])?;
//! assert_eq!(low.shape(), &[3, 1, 1]);
//! assert!((low[[0, 0, 0]] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
//! let rules = Composite::<f32>::epsilon_gamma_box(low, high)?;
//!
//! // a 28×28 grey model input from a PNG digit (MNIST: no resize, mean 0.1307, std 0.3081)
//! let img = load_image::<f32>(
//!     concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/seven.png"),
//!     &[1, 28, 28],
//!     &Preprocess::mnist(),
//! )?;
//! assert_eq!(img.input.shape(), &[1, 28, 28]);
//! assert!(img.pixels.iter().all(|&p| (0.0..=1.0).contains(&p)));
//! # let _ = rules; Ok(()) }
//! ```

mod pixels;
mod preprocess;

pub use preprocess::Preprocess;

use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{Array3, ArrayD};
use pixels::{decode_jpeg, decode_png};
use std::path::Path;

/// The largest side of an image [`decode_image`] accepts, and of a model input it makes.
pub const MAX_SIDE: usize = 1 << 15;
/// The most pixels an image may have, decoded or resized (2²⁶, 64 Mpx).
pub const MAX_IMAGE_PIXELS: usize = 1 << 26;

/// An image made into a model input by [`load_image`] or [`decode_image`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage<F: Float> {
    /// The model input `[C, H, W]`, normalised.
    pub input: ArrayD<F>,
    /// The same pixels in [0, 1] before normalisation (to draw overlays on).
    pub pixels: ArrayD<F>,
    /// The decoded image's width and height.
    pub original: (usize, usize),
    /// The size it was resized to before the centre crop, if the resize changed its size
    /// (with ratio 1 an image of the input's size is taken as it is; with the ImageNet ratio a
    /// 224×224 image is resized to 256×256 and cropped, as torchvision does).
    pub resized: Option<(usize, usize)>,
}

/// The per-sample shape `[C, H, W]` of an image input, checked.
fn image_shape(shape: &[usize]) -> Result<(usize, usize, usize)> {
    match *shape {
        [c @ (1 | 3), h, w] if (1..=MAX_SIDE).contains(&h) && (1..=MAX_SIDE).contains(&w) => Ok((c, h, w)),
        _ => Err(Error::Image {
            what: format!("model input {shape:?}"),
            reason: format!(
                "an image input is [C, H, W] with 1 (grey) or 3 (RGB) channels and sides of 1 to {MAX_SIDE}; give other inputs as arrays (.npy)"
            ),
        }),
    }
}

/// Decodes a PNG or JPEG (told apart by content) into a model input of per-sample shape
/// `[C, H, W]` (C = 1: grey as PIL's `convert("L")`; C = 3: RGB): resized as torchvision's
/// `Resize(round(max(H, W) · ratio))` (the shorter side; PIL's antialiased bilinear),
/// centre-cropped as `CenterCrop((H, W))`, scaled to [0, 1] and normalised.
///
/// 16-bit PNGs are reduced to 8 bits by their high byte (Pillow opens 16-bit grey as
/// `I;16`, whose `convert("L")` clips instead: such files can differ from torchvision).
///
/// # Errors
/// [`Error::Image`] for a shape that is not an image, bytes that are no PNG or JPEG, a
/// corrupt or truncated file, or an image (decoded or resized) beyond [`MAX_SIDE`] or
/// [`MAX_IMAGE_PIXELS`]; the preprocessing's errors for a channel mismatch.
pub fn decode_image<F: Float>(bytes: &[u8], shape: &[usize], pre: &Preprocess) -> Result<LoadedImage<F>> {
    decode_named(bytes, shape, pre, "image")
}

/// [`decode_image`] of a file.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; as [`decode_image`] (naming the file).
pub fn load_image<F: Float>(
    path: impl AsRef<Path>,
    shape: &[usize],
    pre: &Preprocess,
) -> Result<LoadedImage<F>> {
    let path = path.as_ref();
    let bytes = crate::io::read_file(path)?;
    decode_named(&bytes, shape, pre, &path.display().to_string())
}

fn decode_named<F: Float>(
    bytes: &[u8],
    shape: &[usize],
    pre: &Preprocess,
    name: &str,
) -> Result<LoadedImage<F>> {
    let (channels, height, width) = image_shape(shape)?;
    let err = |reason: String| Error::Image {
        what: name.to_string(),
        reason,
    };
    let decoded = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes).map_err(|e| err(format!("cannot decode the PNG: {e}")))?
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(bytes).map_err(|e| err(format!("cannot decode the JPEG: {e}")))?
    } else {
        return Err(err("not a PNG or JPEG file".into()));
    };
    let original = (decoded.width, decoded.height);
    // PIL's convert("L") or convert("RGB") (an alpha channel is dropped, as PIL does)
    let img = if channels == 1 {
        decoded.to_grey()
    } else {
        decoded.to_rgb()
    };
    // torchvision's Resize, skipped (as Pillow skips it) when it keeps the size, then CenterCrop
    let (w1, h1) = resize_target(original, (width, height), pre.resize_ratio());
    if w1.saturating_mul(h1) > MAX_IMAGE_PIXELS || w1 > MAX_SIDE || h1 > MAX_SIDE {
        return Err(err(format!(
            "resizing {}×{} to a shorter side of {} gives {w1}×{h1}, more than {MAX_IMAGE_PIXELS} pixels or a side beyond {MAX_SIDE}",
            original.0,
            original.1,
            w1.min(h1)
        )));
    }
    let resized = ((w1, h1) != original).then_some((w1, h1));
    let img = if resized.is_some() {
        img.resize(w1, h1)
    } else {
        img
    };
    let img = if (w1, h1) == (width, height) {
        img
    } else {
        img.crop(crop_offset(w1 - width), crop_offset(h1 - height), width, height)
    };
    let scale = F::lit(1.0 / 255.0);
    let pixels = Array3::from_shape_fn((channels, height, width), |(c, y, x)| {
        F::lit(f64::from(img.data[(y * width + x) * channels + c])) * scale
    })
    .into_dyn();
    let mut input = pixels.clone();
    pre.normalize(&mut input)?;
    Ok(LoadedImage {
        input,
        pixels,
        original,
        resized,
    })
}

/// torchvision's `Resize(side)` on a `(w, h)` image: the shorter side becomes
/// `side = round(max(H, W) · ratio)`, the longer `int(side · long / short)`; never smaller
/// than the crop.
fn resize_target((w0, h0): (usize, usize), (width, height): (usize, usize), ratio: f64) -> (usize, usize) {
    let side = ((width.max(height) as f64 * ratio).round() as usize).max(1);
    let (w1, h1) = if w0 <= h0 {
        (side, side.saturating_mul(h0) / w0)
    } else {
        (side.saturating_mul(w0) / h0, side)
    };
    (w1.max(width), h1.max(height))
}

/// torchvision's `CenterCrop` offset `int(round(extra / 2))`, Python's round: half to even.
fn crop_offset(extra: usize) -> usize {
    let k = extra / 2;
    if extra % 2 == 1 && k % 2 == 1 {
        k + 1
    } else {
        k
    }
}

/// A `.npy` model input read by [`read_npy_input`].
#[derive(Debug, Clone, PartialEq)]
pub struct NpyInput<F: Float> {
    /// The array, normalised if it held `uint8` pixels, as stored otherwise.
    pub input: ArrayD<F>,
    /// Whether it held `uint8` pixels (scaled by 1/255 and normalised).
    pub scaled_uint8: bool,
}

/// Reads a `.npy` model input. A `uint8` array is taken as pixels: scaled to [0, 1] and
/// normalised with `pre` (`scaled_uint8` says so). Float arrays are taken as they are
/// (already preprocessed).
///
/// ```
/// use ndarray::Array3;
/// use relevance::image::{read_npy_input, Preprocess};
/// use relevance::io::write_npy;
/// # fn main() -> relevance::Result<()> {
/// let floats = write_npy(&Array3::<f32>::from_elem((1, 2, 2), 0.5).into_dyn());
/// let x = read_npy_input::<f32>(&floats, &Preprocess::mnist())?;
/// assert!(!x.scaled_uint8 && x.input[[0, 0, 0]] == 0.5);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`read_npy`](crate::io::read_npy); [`Error::Format`] for other integer arrays
/// (`int8`, `int32`, `int64`), which are neither pixels nor preprocessed values — save
/// pixels as `uint8`, preprocessed inputs as floats.
pub fn read_npy_input<F: Float>(bytes: &[u8], pre: &Preprocess) -> Result<NpyInput<F>> {
    let kind = crate::io::npy_element_type(bytes)?;
    let mut input = crate::io::read_npy::<F>(bytes)?;
    match kind.as_str() {
        "|u1" => {
            let scale = F::lit(1.0 / 255.0);
            input.mapv_inplace(|v| v * scale);
            pre.normalize(&mut input)?;
            Ok(NpyInput {
                input,
                scaled_uint8: true,
            })
        }
        "<f4" | "<f8" => Ok(NpyInput {
            input,
            scaled_uint8: false,
        }),
        other => Err(Error::Format {
            what: "npy model input".into(),
            reason: format!(
                "element type {other} is ambiguous: save pixels (0..=255) as uint8, which are scaled to [0, 1] and normalised, or preprocessed inputs as float32/float64"
            ),
        }),
    }
}

/// An array `x` made to have the per-sample shape `shape`: as it is, without a leading
/// batch axis of 1 (`[1, C, H, W]` for `[C, H, W]`), or with a missing channel axis of 1
/// (`[H, W]` for `[1, H, W]`).
///
/// ```
/// use ndarray::ArrayD;
/// use relevance::image::fit_shape;
/// let x = ArrayD::<f32>::zeros(ndarray::IxDyn(&[1, 3, 2, 2]));
/// assert_eq!(fit_shape(x, &[3, 2, 2]).unwrap().shape(), &[3, 2, 2]);
/// let grey = ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 2]));
/// assert_eq!(fit_shape(grey, &[1, 2, 2]).unwrap().shape(), &[1, 2, 2]);
/// assert!(fit_shape(ArrayD::<f32>::zeros(ndarray::IxDyn(&[5])), &[3, 2, 2]).is_err());
/// ```
///
/// # Errors
/// [`Error::Shape`] if the array has another shape.
pub fn fit_shape<F: Float>(x: ArrayD<F>, shape: &[usize]) -> Result<ArrayD<F>> {
    if x.shape() == shape {
        return Ok(x);
    }
    if x.ndim() == shape.len() + 1 && x.shape()[0] == 1 && &x.shape()[1..] == shape {
        return Ok(x.index_axis_move(ndarray::Axis(0), 0));
    }
    if shape.len() == 3 && shape[0] == 1 && x.shape() == &shape[1..] {
        return Ok(x.insert_axis(ndarray::Axis(0)));
    }
    Err(Error::Shape {
        what: "model input (a leading batch axis of 1 or a missing channel axis of 1 is allowed)".into(),
        expected: shape.to_vec(),
        got: x.shape().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_target_and_crop_offsets_follow_torchvision() {
        // Resize(37) on 64×48: shorter side 37, longer int(37 · 64 / 48) = 49
        assert_eq!(resize_target((64, 48), (32, 32), 256.0 / 224.0), (49, 37));
        assert_eq!(resize_target((48, 64), (32, 32), 256.0 / 224.0), (37, 49));
        // round(17 / 2) = round(8.5) = 8 (half to even); round(5 / 2) = round(2.5) = 2
        assert_eq!(
            (crop_offset(17), crop_offset(5), crop_offset(3), crop_offset(4)),
            (8, 2, 2, 2)
        );
    }
}
