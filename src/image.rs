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

use crate::error::{Error, Result};
use crate::float::Float;
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
        let expand = |values: &[f64], what: &str| {
            match values.len() {
            1 => Ok(vec![values[0]; channels]),
            n if n == channels => Ok(values.to_vec()),
            n => Err(invalid(format!(
                "the {} preprocessing has {n} {what} values, which do not fit an input of {channels} channel(s): give one value, or one per channel",
                self.name
            ))),        }
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
    let (w1, h1) = resize_target(original, (width, height), pre.resize_ratio);
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

/// An 8-bit image, interleaved channels (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA).
struct Pixels {
    width: usize,
    height: usize,
    channels: usize,
    data: Vec<u8>,
}

/// Whether a decoded size is within [`MAX_SIDE`] and [`MAX_IMAGE_PIXELS`].
fn size_ok(width: usize, height: usize) -> std::result::Result<(), String> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_IMAGE_PIXELS
    {
        return Err(format!(
            "{width}×{height} pixels: sides must be 1 to {MAX_SIDE}, at most {MAX_IMAGE_PIXELS} pixels"
        ));
    }
    Ok(())
}

impl Pixels {
    fn checked(
        width: usize,
        height: usize,
        channels: usize,
        data: Vec<u8>,
    ) -> std::result::Result<Pixels, String> {
        size_ok(width, height)?;
        if !(1..=4).contains(&channels) || data.len() != width * height * channels {
            return Err(format!("{} bytes for {width}×{height}×{channels}", data.len()));
        }
        Ok(Pixels {
            width,
            height,
            channels,
            data,
        })
    }

    /// PIL's `convert("L")`: ITU-R 601-2 luma in 16-bit fixed point.
    fn to_grey(&self) -> Pixels {
        let data = match self.channels {
            1 | 2 => self.data.chunks_exact(self.channels).map(|p| p[0]).collect(),
            _ => self
                .data
                .chunks_exact(self.channels)
                .map(|p| {
                    let [r, g, b] = [p[0], p[1], p[2]].map(u32::from);
                    ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
                })
                .collect(),
        };
        Pixels {
            width: self.width,
            height: self.height,
            channels: 1,
            data,
        }
    }

    /// PIL's `convert("RGB")`: grey replicated, alpha dropped.
    fn to_rgb(&self) -> Pixels {
        let data = self
            .data
            .chunks_exact(self.channels)
            .flat_map(|p| match self.channels {
                1 | 2 => [p[0]; 3],
                _ => [p[0], p[1], p[2]],
            })
            .collect();
        Pixels {
            width: self.width,
            height: self.height,
            channels: 3,
            data,
        }
    }

    /// PIL's `Image.resize(size, BILINEAR)`, which torchvision's `Resize` calls on PIL
    /// images: a separable triangle filter whose support grows with the reduction
    /// (antialiasing), fixed-point coefficients, the horizontal pass then the vertical, each
    /// rounded to 8 bits; a pass whose size does not change is skipped (Pillow's
    /// `src/libImaging/Resample.c`, `ImagingResampleInner`).
    fn resize(&self, width: usize, height: usize) -> Pixels {
        let c = self.channels;
        let mut img = Pixels {
            width: self.width,
            height: self.height,
            channels: c,
            data: self.data.clone(),
        };
        if width != img.width {
            let coeffs = Coefficients::new(img.width, width);
            let mut out = vec![0u8; width * img.height * c];
            for y in 0..img.height {
                let row = &img.data[y * img.width * c..(y + 1) * img.width * c];
                for x in 0..width {
                    let (start, k) = coeffs.at(x);
                    for ch in 0..c {
                        let sum = k.iter().enumerate().fold(ROUNDING, |s, (j, &w)| {
                            s + i64::from(row[(start + j) * c + ch]) * i64::from(w)
                        });
                        out[(y * width + x) * c + ch] = clip8(sum);
                    }
                }
            }
            img.width = width;
            img.data = out;
        }
        if height != img.height {
            let coeffs = Coefficients::new(img.height, height);
            let stride = img.width * c;
            let mut out = vec![0u8; stride * height];
            for y in 0..height {
                let (start, k) = coeffs.at(y);
                for i in 0..stride {
                    let sum = k.iter().enumerate().fold(ROUNDING, |s, (j, &w)| {
                        s + i64::from(img.data[(start + j) * stride + i]) * i64::from(w)
                    });
                    out[y * stride + i] = clip8(sum);
                }
            }
            img.height = height;
            img.data = out;
        }
        img
    }

    fn crop(&self, left: usize, top: usize, width: usize, height: usize) -> Pixels {
        let c = self.channels;
        let mut data = Vec::with_capacity(width * height * c);
        for y in top..top + height {
            let from = (y * self.width + left) * c;
            data.extend_from_slice(&self.data[from..from + width * c]);
        }
        Pixels {
            width,
            height,
            channels: c,
            data,
        }
    }
}

/// Pillow's fixed-point precision for 8-bit resampling: 32 − 8 − 2 bits.
const PRECISION_BITS: u32 = 22;
/// Half a unit of the last kept bit: the sums round to nearest.
const ROUNDING: i64 = 1 << (PRECISION_BITS - 1);

/// `v >> PRECISION_BITS`, clamped to 0..=255 (Pillow's `clip8`).
fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Per output position: the first input index and the fixed-point weights (Pillow's
/// `precompute_coeffs` with the bilinear filter, support 1, and `normalize_coeffs_8bpc`).
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

impl Coefficients {
    fn new(in_size: usize, out_size: usize) -> Coefficients {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // the bilinear filter's support is 1
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) truncates toward zero
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
            let count = xmax.saturating_sub(xmin).min(ksize);
            let k: Vec<f64> = (0..count)
                .map(|x| {
                    let t = ((x + xmin) as f64 - center + 0.5) * (1.0 / filterscale);
                    (1.0 - t.abs()).max(0.0)
                })
                .collect();
            let total: f64 = k.iter().sum();
            for (x, &w) in k.iter().enumerate() {
                let w = if total != 0.0 { w / total } else { w };
                let fixed = w * f64::from(1u32 << PRECISION_BITS);
                weights[xx * ksize + x] = if w < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            bounds.push((xmin, count));
        }
        Coefficients {
            bounds,
            ksize,
            weights,
        }
    }

    fn at(&self, i: usize) -> (usize, &[i32]) {
        let (start, count) = self.bounds[i];
        (start, &self.weights[i * self.ksize..i * self.ksize + count])
    }
}

fn decode_png(bytes: &[u8]) -> std::result::Result<Pixels, String> {
    let limits = png::Limits {
        bytes: 4 * MAX_IMAGE_PIXELS,
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let (w, h) = reader.info().size();
    let (w, h) = (w as usize, h as usize);
    size_ok(w, h)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "the image is too large".to_string())?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("a palette image was not expanded".into()),
    };
    if info.bit_depth != png::BitDepth::Eight {
        return Err(format!("{:?} bits per sample after conversion", info.bit_depth));
    }
    // rows may be longer than width × channels bytes
    let line = info.line_size;
    let data: Vec<u8> = if line == w * channels {
        buf.truncate(w * h * channels);
        buf
    } else {
        buf.chunks(line)
            .take(h)
            .flat_map(|row| row[..w * channels].iter().copied())
            .collect()
    };
    Pixels::checked(w, h, channels, data)
}

fn decode_jpeg(bytes: &[u8]) -> std::result::Result<Pixels, String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    // the end-of-image marker after the last start-of-scan (an EXIF thumbnail before it has
    // its own)
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap_or(0);
    if !bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9]) {
        // the decoder fills a truncated scan with grey (as libjpeg, where PIL refuses
        // "image file is truncated")
        return Err("truncated: no end-of-image marker".into());
    }
    let options = DecoderOptions::default()
        .set_max_width(MAX_SIDE)
        .set_max_height(MAX_SIDE)
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions().ok_or_else(|| "no image size".to_string())?;
    size_ok(w, h)?;
    let data = decoder.decode().map_err(|e| e.to_string())?;
    let channels = decoder.output_colorspace().map_or(3, |c| c.num_components());
    Pixels::checked(w, h, channels, data)
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
        let rgb = Pixels::checked(1, 1, 3, vec![200, 100, 50]).unwrap();
        // PIL: (200·19595 + 100·38470 + 50·7471 + 32768) >> 16 = 124
        assert_eq!(rgb.to_grey().data, vec![124]);
    }

    #[test]
    fn resampling_keeps_constants_and_equals_pillow() {
        let flat = Pixels::checked(7, 5, 1, vec![77; 35]).unwrap();
        for (w, h) in [(3, 2), (10, 9), (7, 1), (1, 5)] {
            let r = flat.resize(w, h);
            assert_eq!((r.width, r.height), (w, h));
            assert!(r.data.iter().all(|&v| v == 77), "{w}×{h}: {:?}", r.data);
        }
        // Pillow 12's Image.resize(.., BILINEAR) on the same rows
        let row = |v: &[u8]| Pixels::checked(v.len(), 1, 1, v.to_vec()).unwrap();
        assert_eq!(row(&[0, 200, 0, 200]).resize(2, 1).data, vec![86, 114]);
        assert_eq!(
            row(&[10, 20, 30, 40, 50, 60, 70]).resize(3, 1).data,
            vec![19, 40, 61]
        );
        assert_eq!(
            row(&[10, 250, 30]).resize(7, 1).data,
            vec![10, 44, 147, 250, 156, 61, 30]
        );
    }
}
