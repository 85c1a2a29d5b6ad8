//! Images in: PNG and JPEG decoding, torchvision's `Resize` + `CenterCrop`, scaling to
//! [0, 1], mean/std normalisation with presets (ImageNet, MNIST), the z^B bounds that
//! normalisation implies, and `.npy` arrays of `uint8` pixels. Cargo feature `image`.
//!
//! The recipe is torchvision's evaluation transform, so an image gives the model the same
//! input as in PyTorch (within 1/255 per pixel before normalisation; tested against
//! torchvision on the same file, `tools/gen_image_fixtures.py`):
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

use crate::error::{Error, Result};
use crate::float::Float;
use ::image::imageops::FilterType;
use ::image::{DynamicImage, GrayImage, ImageReader, Limits};
use ndarray::{Array3, ArrayD, Axis, IxDyn};
use std::io::Cursor;
use std::path::Path;

/// The largest side of an image [`decode_image`] accepts, and of a model input it makes.
pub const MAX_SIDE: usize = 1 << 15;
/// The most pixels an image may have, decoded or resized (2²⁶, 64 Mpx).
pub const MAX_IMAGE_PIXELS: usize = 1 << 26;

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        rule: "Preprocess",
        reason: reason.into(),
    }
}

/// Mean/std normalisation applied after scaling pixels to [0, 1], `x' = (x − mean) / std`
/// per channel, and the resize ratio of torchvision's evaluation transform.
///
/// One mean or std value applies to every channel.
///
/// ```
/// use relevance::image::Preprocess;
/// # fn main() -> relevance::Result<()> {
/// let p = Preprocess::parse("mean=0.5,0.5,0.5,std=0.25,0.25,0.25")?;
/// assert_eq!(p.mean(), &[0.5, 0.5, 0.5]);
/// assert_eq!(Preprocess::parse("imagenet")?, Preprocess::imagenet());
/// assert!(Preprocess::new(&[0.5], &[0.0]).is_err()); // std must be positive
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    name: String,
    mean: Vec<f64>,
    std: Vec<f64>,
    resize_ratio: f64,
}

impl Preprocess {
    /// torchvision's ImageNet recipe: `Resize(256)`, `CenterCrop(224)` (ratio 256/224),
    /// mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    pub fn imagenet() -> Preprocess {
        Preprocess {
            name: "imagenet".into(),
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
            resize_ratio: 256.0 / 224.0,
        }
    }

    /// The usual MNIST normalisation, mean 0.1307 and std 0.3081, no extra resize margin.
    pub fn mnist() -> Preprocess {
        Preprocess {
            name: "mnist".into(),
            mean: vec![0.1307],
            std: vec![0.3081],
            resize_ratio: 1.0,
        }
    }

    /// Pixels in [0, 1], not normalised (the bundled digits model's input).
    pub fn none() -> Preprocess {
        Preprocess {
            name: "none".into(),
            mean: vec![0.0],
            std: vec![1.0],
            resize_ratio: 1.0,
        }
    }

    /// A custom normalisation (one value per channel, or one for all), resize ratio 1.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for empty lists, non-finite values, a std that is not
    /// positive, or two lists of different lengths neither of which has one value.
    pub fn new(mean: &[f64], std: &[f64]) -> Result<Preprocess> {
        if mean.is_empty() || std.is_empty() {
            return Err(invalid("mean and std need at least one value each"));
        }
        if mean.iter().chain(std).any(|v| !v.is_finite()) {
            return Err(invalid(format!("mean {mean:?} and std {std:?} must be finite")));
        }
        if std.iter().any(|&s| s <= 0.0) {
            return Err(invalid(format!("every std must be positive, got {std:?}")));
        }
        if mean.len() != std.len() && mean.len() != 1 && std.len() != 1 {
            return Err(invalid(format!(
                "mean has {} values and std {}: give one per channel (or one for all)",
                mean.len(),
                std.len()
            )));
        }
        Ok(Preprocess {
            name: "custom".into(),
            mean: mean.to_vec(),
            std: std.to_vec(),
            resize_ratio: 1.0,
        })
    }

    /// The same normalisation with another resize ratio: the shorter side is resized to
    /// `round(max(H, W) · ratio)` before the centre crop to `H × W` (1: no margin).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `1 ≤ ratio ≤ 16`.
    pub fn with_resize_ratio(mut self, ratio: f64) -> Result<Preprocess> {
        if !(1.0..=16.0).contains(&ratio) {
            return Err(invalid(format!("resize ratio {ratio} must be in [1, 16]")));
        }
        self.resize_ratio = ratio;
        Ok(self)
    }

    /// Parses `imagenet`, `mnist`, `none`, or `mean=M1,M2,..,std=S1,S2,..` (values for
    /// pixels in [0, 1]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the choices for anything else.
    pub fn parse(text: &str) -> Result<Preprocess> {
        match text.trim() {
            "imagenet" => return Ok(Preprocess::imagenet()),
            "mnist" => return Ok(Preprocess::mnist()),
            "none" => return Ok(Preprocess::none()),
            _ => {}
        }
        let usage =
            "choose imagenet, mnist, none, or give mean=M1,M2,M3,std=S1,S2,S3 (values for pixels in [0, 1])";
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        let mut current: Option<&mut Vec<f64>> = None;
        for token in text.split(',') {
            let token = token.trim();
            let value = if let Some(v) = token.strip_prefix("mean=") {
                current = Some(&mut mean);
                v
            } else if let Some(v) = token.strip_prefix("std=") {
                current = Some(&mut std);
                v
            } else {
                token
            };
            let list = current
                .as_deref_mut()
                .ok_or_else(|| invalid(format!("unknown preset {text:?}; {usage}")))?;
            let v: f64 = value
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| invalid(format!("{value:?} is not a number; {usage}")))?;
            list.push(v);
        }
        if mean.is_empty() || std.is_empty() {
            return Err(invalid(format!("both mean= and std= are needed; {usage}")));
        }
        Preprocess::new(&mean, &std)
    }

    /// The preset's name: `imagenet`, `mnist`, `none` or `custom`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The means as given (one per channel, or one for all).
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The standard deviations as given.
    pub fn std(&self) -> &[f64] {
        &self.std
    }

    /// The resize ratio (see [`with_resize_ratio`](Self::with_resize_ratio)).
    pub fn resize_ratio(&self) -> f64 {
        self.resize_ratio
    }

    /// Mean and std for each of `channels` channels.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if a list has neither one value nor one per channel.
    pub fn per_channel(&self, channels: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        let expand = |values: &[f64], what: &str| match values.len() {
            1 => Ok(vec![values[0]; channels]),
            n if n == channels => Ok(values.to_vec()),
            n => Err(invalid(format!(
                "preprocessing {}: {n} {what} values for an input of {channels} channels",
                self.name
            ))),
        };
        Ok((expand(&self.mean, "mean")?, expand(&self.std, "std")?))
    }

    /// z^B's bounds for this normalisation: the normalised images of pixel values 0 and 1,
    /// `(0 − mean)/std` and `(1 − mean)/std`, shaped `[C, 1, 1]` for a per-sample input
    /// shape `[C, H, W]` (they broadcast over the image), else scalars (one mean and std).
    /// Pass them to [`Composite::epsilon_gamma_box`](crate::Composite::epsilon_gamma_box)
    /// or [`LrpZBox`](crate::LrpZBox).
    ///
    /// # Errors
    /// As [`per_channel`](Self::per_channel).
    pub fn bounds<F: Float>(&self, input_shape: &[usize]) -> Result<(ArrayD<F>, ArrayD<F>)> {
        let image = input_shape.len() == 3;
        let channels = if image { input_shape[0] } else { 1 };
        let (mean, std) = self.per_channel(channels)?;
        let shape = if image {
            IxDyn(&[channels, 1, 1])
        } else {
            IxDyn(&[])
        };
        let make = |pixel: f64| {
            ArrayD::from_shape_vec(
                shape.clone(),
                (0..channels)
                    .map(|c| F::lit((pixel - mean[c]) / std[c]))
                    .collect(),
            )
            .expect("one value per channel")
        };
        Ok((make(0.0), make(1.0)))
    }

    /// Normalises pixel values in [0, 1] in place: `x` is one sample `[C, H, W]`, a batch
    /// `[N, C, H, W]`, or any other shape with one mean and std.
    ///
    /// # Errors
    /// As [`per_channel`](Self::per_channel) for the channel count of `x`.
    pub fn normalize<F: Float>(&self, x: &mut ArrayD<F>) -> Result<()> {
        self.affine(x, |v, m, s| (v - m) / s)
    }

    /// Undoes [`normalize`](Self::normalize) (to show a model input as an image).
    ///
    /// # Errors
    /// As [`normalize`](Self::normalize).
    pub fn denormalize<F: Float>(&self, x: &mut ArrayD<F>) -> Result<()> {
        self.affine(x, |v, m, s| v * s + m)
    }

    fn affine<F: Float>(&self, x: &mut ArrayD<F>, f: impl Fn(F, F, F) -> F) -> Result<()> {
        let channel_axis = match x.ndim() {
            3 => Some(0),
            4 => Some(1),
            _ => None,
        };
        let channels = channel_axis.map_or(1, |a| x.shape()[a]);
        let (mean, std) = self.per_channel(channels)?;
        let (mean, std): (Vec<F>, Vec<F>) = (
            mean.iter().map(|&v| F::lit(v)).collect(),
            std.iter().map(|&v| F::lit(v)).collect(),
        );
        match channel_axis {
            Some(a) => {
                for (c, mut plane) in x.axis_iter_mut(Axis(a)).enumerate() {
                    plane.mapv_inplace(|v| f(v, mean[c], std[c]));
                }
            }
            None => x.mapv_inplace(|v| f(v, mean[0], std[0])),
        }
        Ok(())
    }
}

/// An image made into a model input by [`load_image`] or [`decode_image`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage<F: Float> {
    /// The model input `[C, H, W]`, normalised.
    pub input: ArrayD<F>,
    /// The same pixels in [0, 1] before normalisation (to draw overlays on).
    pub pixels: ArrayD<F>,
    /// The decoded image's width and height.
    pub original: (usize, usize),
    /// The size it was resized to before the centre crop, if it was resized (an image of
    /// exactly the input's size is taken as it is).
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
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    if !matches!(
        reader.format(),
        Some(::image::ImageFormat::Png | ::image::ImageFormat::Jpeg)
    ) {
        return Err(err("not a PNG or JPEG file".into()));
    }
    if reader.format() == Some(::image::ImageFormat::Jpeg) && !bytes.windows(2).any(|w| w == [0xFF, 0xD9]) {
        // the JPEG decoder fills a truncated scan with grey without an error (as libjpeg,
        // where PIL refuses "image file is truncated")
        return Err(err("truncated JPEG: no end-of-image marker".into()));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE as u32);
    limits.max_image_height = Some(MAX_SIDE as u32);
    limits.max_alloc = Some(16 * MAX_IMAGE_PIXELS as u64);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| err(format!("cannot decode: {e}")))?;
    let original = (img.width() as usize, img.height() as usize);
    if original.0 * original.1 > MAX_IMAGE_PIXELS {
        return Err(err(format!(
            "{}×{} pixels is more than the limit of {MAX_IMAGE_PIXELS}",
            original.0, original.1
        )));
    }
    let img = if channels == 1 {
        DynamicImage::ImageLuma8(grey_like_pil(&img))
    } else {
        DynamicImage::ImageRgb8(img.to_rgb8())
    };
    let (img, resized) = if original == (width, height) {
        (img, None)
    } else {
        let (w1, h1) = resize_target(original, (width, height), pre.resize_ratio);
        if w1.saturating_mul(h1) > MAX_IMAGE_PIXELS {
            return Err(err(format!(
                "resizing {}×{} to a shorter side of {} gives {w1}×{h1}, more than {MAX_IMAGE_PIXELS} pixels",
                original.0,
                original.1,
                w1.min(h1)
            )));
        }
        let resized = img.resize_exact(w1 as u32, h1 as u32, FilterType::Triangle);
        let (left, top) = (crop_offset(w1 - width), crop_offset(h1 - height));
        (
            resized.crop_imm(left as u32, top as u32, width as u32, height as u32),
            Some((w1, h1)),
        )
    };
    let pixels = to_array::<F>(&img, channels);
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

/// PIL's `convert("L")` (ITU-R 601-2 luma in 16-bit fixed point).
fn grey_like_pil(img: &DynamicImage) -> GrayImage {
    match img {
        DynamicImage::ImageLuma8(g) => g.clone(),
        _ => {
            let rgb = img.to_rgb8();
            GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
                let [r, g, b] = rgb.get_pixel(x, y).0.map(u32::from);
                ::image::Luma([((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8])
            })
        }
    }
}

fn to_array<F: Float>(img: &DynamicImage, channels: usize) -> ArrayD<F> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let scale = |v: u8| F::lit(f64::from(v) / 255.0);
    if channels == 1 {
        let grey = img.to_luma8();
        Array3::from_shape_fn((1, h, w), |(_, y, x)| {
            scale(grey.get_pixel(x as u32, y as u32).0[0])
        })
        .into_dyn()
    } else {
        let rgb = img.to_rgb8();
        Array3::from_shape_fn((3, h, w), |(c, y, x)| {
            scale(rgb.get_pixel(x as u32, y as u32).0[c])
        })
        .into_dyn()
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

    #[test]
    fn grey_uses_pils_weights() {
        let rgb = DynamicImage::ImageRgb8(::image::RgbImage::from_pixel(1, 1, ::image::Rgb([200, 100, 50])));
        // PIL: (200·19595 + 100·38470 + 50·7471 + 32768) >> 16 = 124
        assert_eq!(grey_like_pil(&rgb).get_pixel(0, 0).0[0], 124);
    }
}
