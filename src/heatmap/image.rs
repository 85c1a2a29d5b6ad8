//! The in-memory RGB image and what can be done to it: upscaling, overlay, grids.

use ndarray::{ArrayViewD, Axis, Ix2, Ix3};

use crate::{Error, Float, Result};

/// The largest image this module makes: 2²⁸ pixels (768 MiB of RGB), a guard against
/// unbounded allocation from a huge upscaling factor or grid.
pub const MAX_PIXELS: usize = 1 << 28;

/// An 8-bit RGB image in memory, row-major: pixel `(x, y)` is
/// `data()[3·(y·width + x) .. 3·(y·width + x) + 3]`.
///
/// Width and height are at least 1 and at most [`MAX_PIXELS`] pixels in all; the fields are
/// private so that `data` always has `3·width·height` bytes.
///
/// ```
/// use relevance::heatmap::RgbImage;
/// # fn main() -> relevance::Result<()> {
/// let img = RgbImage::filled(2, 1, [10, 20, 30])?.upscale(3)?;
/// assert_eq!((img.width(), img.height()), (6, 3));
/// assert_eq!(img.pixel(5, 2), Some([10, 20, 30]));
/// assert_eq!(img.pixel(6, 0), None);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

fn checked_size(width: usize, height: usize) -> Result<usize> {
    let err = |reason: String| Error::Image {
        what: "image size".into(),
        reason,
    };
    if width == 0 || height == 0 {
        return Err(err(format!("{width}×{height} is empty")));
    }
    match width.checked_mul(height) {
        Some(n) if n <= MAX_PIXELS => Ok(n),
        _ => Err(err(format!(
            "{width}×{height} exceeds the limit of {MAX_PIXELS} pixels"
        ))),
    }
}

impl RgbImage {
    /// The pixel bytes, mutable (for drawing in this crate: the figures).
    #[cfg(feature = "figure")]
    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Copies `other` into this image with its top-left corner at `(x, y)`; what falls
    /// outside is cut off.
    ///
    /// ```
    /// use relevance::heatmap::RgbImage;
    /// # fn main() -> relevance::Result<()> {
    /// let mut canvas = RgbImage::filled(3, 2, [255, 255, 255])?;
    /// canvas.paste(&RgbImage::filled(2, 2, [0, 0, 0])?, 2, 1);
    /// assert_eq!(canvas.pixel(2, 1), Some([0, 0, 0]));
    /// assert_eq!(canvas.pixel(1, 1), Some([255, 255, 255]));
    /// # Ok(()) }
    /// ```
    pub fn paste(&mut self, other: &RgbImage, x: usize, y: usize) {
        if x >= self.width || y >= self.height {
            return;
        }
        let w = other.width.min(self.width - x);
        for (dy, row) in other
            .data
            .chunks_exact(3 * other.width)
            .take(self.height - y)
            .enumerate()
        {
            let start = 3 * ((y + dy) * self.width + x);
            self.data[start..start + 3 * w].copy_from_slice(&row[..3 * w]);
        }
    }

    /// An image of one colour.
    ///
    /// # Errors
    /// [`Error::Image`] if a side is 0 or the image exceeds [`MAX_PIXELS`].
    pub fn filled(width: usize, height: usize, color: [u8; 3]) -> Result<RgbImage> {
        let n = checked_size(width, height)?;
        Ok(RgbImage {
            width,
            height,
            data: color.repeat(n),
        })
    }

    /// Wraps raw row-major RGB bytes.
    ///
    /// # Errors
    /// [`Error::Image`] if a side is 0 or the image exceeds [`MAX_PIXELS`];
    /// [`Error::Shape`] if `data` does not hold exactly `3·width·height` bytes.
    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Result<RgbImage> {
        let n = checked_size(width, height)?;
        if data.len() != 3 * n {
            return Err(Error::Shape {
                what: "RGB image data".into(),
                expected: vec![3 * n],
                got: vec![data.len()],
            });
        }
        Ok(RgbImage { width, height, data })
    }

    /// An input image (what the network saw) as RGB, for [`overlay`] and [`grid`].
    ///
    /// `image` is `[H, W]` or `[1, H, W]` (grayscale, repeated into R, G and B) or `[3, H,
    /// W]` (RGB), the layout of one sample of an NCHW batch. Values map linearly from
    /// `range = (lo, hi)` to 0..=255 with zennit's truncation `uint8(clip(255·(x − lo)/(hi −
    /// lo), 0, 255))`; `range = None` takes the array's own min and max (a constant image
    /// is then black).
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::heatmap::RgbImage;
    /// # fn main() -> relevance::Result<()> {
    /// let gray = array![[0.0, 0.5, 1.0]];
    /// let img = RgbImage::from_array(&gray.view().into_dyn(), Some((0.0, 1.0)))?;
    /// assert_eq!(img.data(), &[0, 0, 0, 127, 127, 127, 255, 255, 255]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Rank`] / [`Error::Shape`] for another shape, [`Error::NonFinite`] for NaN
    /// or infinite values, [`Error::Image`] for an empty image or a range with `lo ≥ hi`.
    pub fn from_array<T: Float>(image: &ArrayViewD<'_, T>, range: Option<(T, T)>) -> Result<RgbImage> {
        if let Some((index, value)) = image.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "input image".into(),
                index,
                value: value.as_f64(),
            });
        }
        let chw = match image.ndim() {
            2 => image
                .view()
                .into_dimensionality::<Ix2>()
                .map(|m| m.insert_axis(Axis(0)))
                .ok(),
            3 => image.view().into_dimensionality::<Ix3>().ok(),
            _ => None,
        }
        .ok_or_else(|| Error::Rank {
            what: "input image ([H, W], [1, H, W] or [3, H, W])".into(),
            expected: 3,
            got: image.ndim(),
            shape: image.shape().to_vec(),
        })?;
        let (c, h, w) = chw.dim();
        if c != 1 && c != 3 {
            return Err(Error::Shape {
                what: "input image (1 or 3 channels)".into(),
                expected: vec![3, h, w],
                got: vec![c, h, w],
            });
        }
        checked_size(w, h)?;
        let (lo, hi) = match range {
            Some((lo, hi)) if !lo.is_finite() || !hi.is_finite() || lo >= hi => {
                return Err(Error::Image {
                    what: "input image range".into(),
                    reason: format!("needs lo < hi, got ({}, {})", lo.as_f64(), hi.as_f64()),
                })
            }
            Some(r) => r,
            None => (
                chw.fold(T::infinity(), |m, &v| m.min(v)),
                chw.fold(T::neg_infinity(), |m, &v| m.max(v)),
            ),
        };
        let scale = T::lit(255.0);
        let to_u8 = |v: T| {
            if hi > lo {
                ((v - lo) / (hi - lo) * scale).max(T::zero()).min(scale).as_f64() as u8
            } else {
                0
            }
        };
        let mut data = Vec::with_capacity(3 * w * h);
        for y in 0..h {
            for x in 0..w {
                for ch in 0..3 {
                    data.push(to_u8(chw[[if c == 1 { 0 } else { ch }, y, x]]));
                }
            }
        }
        RgbImage::from_raw(w, h, data)
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The row-major RGB bytes (`3·width·height` of them).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The RGB bytes, consuming the image.
    pub fn into_raw(self) -> Vec<u8> {
        self.data
    }

    /// The colour at column `x`, row `y`, or `None` outside the image.
    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = 3 * (y * self.width + x);
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }

    /// Nearest-neighbour upscaling: every pixel becomes a `factor × factor` block.
    ///
    /// # Errors
    /// [`Error::Image`] if `factor` is 0 or the result would exceed [`MAX_PIXELS`].
    pub fn upscale(&self, factor: usize) -> Result<RgbImage> {
        if factor == 0 {
            return Err(Error::Image {
                what: "upscale factor".into(),
                reason: "must be at least 1".into(),
            });
        }
        let too_big = || Error::Image {
            what: "upscale factor".into(),
            reason: format!(
                "{}×{} times {factor} exceeds {MAX_PIXELS} pixels",
                self.width, self.height
            ),
        };
        let width = self.width.checked_mul(factor).ok_or_else(too_big)?;
        let height = self.height.checked_mul(factor).ok_or_else(too_big)?;
        checked_size(width, height).map_err(|_| too_big())?;
        let mut data = Vec::with_capacity(3 * width * height);
        for row in self.data.chunks_exact(3 * self.width) {
            let mut scaled = Vec::with_capacity(3 * width);
            for px in row.chunks_exact(3) {
                for _ in 0..factor {
                    scaled.extend_from_slice(px);
                }
            }
            for _ in 0..factor {
                data.extend_from_slice(&scaled);
            }
        }
        Ok(RgbImage { width, height, data })
    }

    /// The image in gray: every pixel becomes the rounded mean of its R, G and B (captum
    /// shows its overlay background this way, `np.mean(image, axis=2)`).
    ///
    /// ```
    /// use relevance::heatmap::RgbImage;
    /// # fn main() -> relevance::Result<()> {
    /// let img = RgbImage::from_raw(1, 1, vec![255, 0, 1])?;
    /// assert_eq!(img.to_grayscale().data(), &[85, 85, 85]);
    /// # Ok(()) }
    /// ```
    pub fn to_grayscale(&self) -> RgbImage {
        let data = self
            .data
            .chunks_exact(3)
            .flat_map(|p| {
                let g = ((p[0] as u16 + p[1] as u16 + p[2] as u16 + 1) / 3) as u8;
                [g, g, g]
            })
            .collect();
        RgbImage {
            width: self.width,
            height: self.height,
            data,
        }
    }
}

/// Alpha-blends a heatmap over a background of the same size: every channel becomes
/// `round((1 − alpha)·background + alpha·heatmap)`.
///
/// `alpha = 0` gives the background, `1` the heatmap; captum uses 0.5 over the grayscale
/// image. Make the background with [`RgbImage::from_array`] (grayscale or RGB input) and,
/// to keep the heatmap's colours readable on a colour photo, [`RgbImage::to_grayscale`].
///
/// ```
/// use relevance::heatmap::{overlay, RgbImage};
/// # fn main() -> relevance::Result<()> {
/// let bg = RgbImage::filled(2, 2, [0, 0, 0])?;
/// let heat = RgbImage::filled(2, 2, [255, 100, 0])?;
/// assert_eq!(overlay(&bg, &heat, 0.5)?.pixel(1, 1), Some([128, 50, 0]));
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Shape`] if the sizes differ; [`Error::Image`] if `alpha` is outside `[0, 1]`.
pub fn overlay(background: &RgbImage, heatmap: &RgbImage, alpha: f64) -> Result<RgbImage> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::Image {
            what: "overlay alpha".into(),
            reason: format!("must lie in [0, 1], got {alpha}"),
        });
    }
    if (background.width, background.height) != (heatmap.width, heatmap.height) {
        return Err(Error::Shape {
            what: "overlay heatmap [height, width]".into(),
            expected: vec![background.height, background.width],
            got: vec![heatmap.height, heatmap.width],
        });
    }
    let data = background
        .data
        .iter()
        .zip(&heatmap.data)
        .map(|(&b, &h)| ((1.0 - alpha) * b as f64 + alpha * h as f64).round() as u8)
        .collect();
    Ok(RgbImage {
        width: background.width,
        height: background.height,
        data,
    })
}

/// Lays images out in a `rows × cols` grid, row by row, with `padding` pixels of `fill`
/// between the cells and around the border.
///
/// Every cell is as large as the largest image; smaller images sit in the top-left corner of
/// their cell, and cells without an image stay `fill`. The result is `cols·cell_w +
/// (cols + 1)·padding` wide and `rows·cell_h + (rows + 1)·padding` high.
///
/// ```
/// use relevance::heatmap::{grid, RgbImage};
/// # fn main() -> relevance::Result<()> {
/// let a = RgbImage::filled(4, 3, [255, 0, 0])?;
/// let g = grid(&[a.clone(), a.clone(), a], 2, 2, 1, [255, 255, 255])?;
/// assert_eq!((g.width(), g.height()), (2 * 4 + 3, 2 * 3 + 3));
/// assert_eq!(g.pixel(1, 1), Some([255, 0, 0])); // first image, after one pixel of padding
/// assert_eq!(g.pixel(7, 5), Some([255, 255, 255])); // the empty fourth cell
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Image`] if there are no images, `rows` or `cols` is 0, more images than cells,
/// or the grid would exceed [`MAX_PIXELS`].
pub fn grid(
    images: &[RgbImage],
    rows: usize,
    cols: usize,
    padding: usize,
    fill: [u8; 3],
) -> Result<RgbImage> {
    let err = |reason: String| Error::Image {
        what: "grid".into(),
        reason,
    };
    if images.is_empty() || rows == 0 || cols == 0 {
        return Err(err(format!(
            "needs images and rows, cols ≥ 1; got {} images, {rows}×{cols}",
            images.len()
        )));
    }
    if images.len() > rows.saturating_mul(cols) {
        return Err(err(format!(
            "{} images do not fit {rows}×{cols} cells",
            images.len()
        )));
    }
    let cell_w = images.iter().map(|i| i.width).max().unwrap_or(1);
    let cell_h = images.iter().map(|i| i.height).max().unwrap_or(1);
    let side = |n: usize, cell: usize| {
        n.checked_mul(cell)?
            .checked_add(n.checked_add(1)?.checked_mul(padding)?)
    };
    let too_big = || {
        err(format!(
            "{rows}×{cols} cells of {cell_w}×{cell_h} exceed {MAX_PIXELS} pixels"
        ))
    };
    let width = side(cols, cell_w).ok_or_else(too_big)?;
    let height = side(rows, cell_h).ok_or_else(too_big)?;
    let mut out = RgbImage::filled(width, height, fill).map_err(|_| too_big())?;
    for (k, img) in images.iter().enumerate() {
        let x0 = padding + (k % cols) * (cell_w + padding);
        let y0 = padding + (k / cols) * (cell_h + padding);
        for (y, row) in img.data.chunks_exact(3 * img.width).enumerate() {
            let start = 3 * ((y0 + y) * width + x0);
            out.data[start..start + row.len()].copy_from_slice(row);
        }
    }
    Ok(out)
}
