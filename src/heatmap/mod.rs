//! Heatmaps: relevance maps rendered as images.
//!
//! The pipeline, each step also usable on its own:
//! 1. [`reduce_channels`]: `[C, H, W]` → `[H, W]` by a [`Reduction`] (sum by default);
//! 2. [`normalize`]: `[H, W]` → palette indices 0..=255 by a [`Normalization`] (zennit's
//!    symmetric `imgify` by default, so zero relevance is index 127);
//! 3. [`colorize`]: indices → [`RgbImage`] through a 256-entry [`Palette`] (`bwr`, zennit's
//!    `coldnhot`, matplotlib's `seismic`, `gray`, or any zennit colour-map source);
//! 4. [`RgbImage::upscale`] (nearest neighbour), [`overlay`] on the input image (with an
//!    adjustable opacity), [`grid`] of several images or — with the default cargo feature
//!    `figure` — a `Figure` with column titles, row captions and a colour bar, and — with
//!    the default cargo feature `png` — [`RgbImage::save_png`].
//!
//! [`Heatmap`] bundles steps 1–4 (without the overlay and grid). Everything except PNG
//! encoding works without the `png` feature.
//!
//! ```
//! use ndarray::Array3;
//! use relevance::heatmap::{grid, Heatmap, Normalization, Palette};
//! # fn main() -> relevance::Result<()> {
//! // A [C = 2, H = 3, W = 4] relevance map: positive on the left, negative on the right.
//! let r = Array3::from_shape_fn((2, 3, 4), |(_, _, x)| 1.5 - x as f32);
//! let hm = Heatmap { scale: 2, ..Heatmap::default() }; // sum, symmetric, bwr
//! let img = hm.render(&r.view().into_dyn())?;
//! assert_eq!((img.width(), img.height()), (8, 6));
//! assert_eq!(img.pixel(0, 0), Some([255, 0, 0])); // +max: red
//! assert_eq!(img.pixel(7, 5), Some([0, 0, 255])); // -max: blue
//!
//! let hot = Heatmap { palette: Palette::coldnhot(), normalization: Normalization::Percentile(2.0), ..hm };
//! let both = grid(&[img, hot.render(&r.view().into_dyn())?], 1, 2, 2, [255, 255, 255])?;
//! assert_eq!((both.width(), both.height()), (2 * 8 + 3 * 2, 6 + 2 * 2));
//! # Ok(()) }
//! ```

#[cfg(feature = "figure")]
mod figure;
mod image;
mod normalize;
mod palette;
#[cfg(feature = "png")]
mod png;

pub use self::image::{grid, overlay, RgbImage, MAX_PIXELS};
#[cfg(feature = "figure")]
pub use figure::{draw_text, text_width, Figure, MAX_FONT_SIZE};
pub use normalize::{normalize, percentile_threshold, reduce_channels, Normalization, Reduction};
pub use palette::Palette;

use ndarray::{Array2, ArrayView2, ArrayViewD};

use crate::{Float, Result};

/// A heatmap recipe: channel reduction, normalisation, palette and upscaling factor.
///
/// Build it with struct-update syntax from [`Heatmap::default`] (sum, symmetric, `bwr`,
/// scale 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// How the channels of a `[C, H, W]` map are combined.
    pub reduction: Reduction,
    /// How values are mapped to palette indices.
    pub normalization: Normalization,
    /// The colours.
    pub palette: Palette,
    /// Nearest-neighbour upscaling factor (1 = one pixel per relevance value).
    pub scale: usize,
}

impl Default for Heatmap {
    fn default() -> Heatmap {
        Heatmap {
            reduction: Reduction::Sum,
            normalization: Normalization::Symmetric,
            palette: Palette::bwr(),
            scale: 1,
        }
    }
}

impl Heatmap {
    /// The palette indices of a relevance map: [`reduce_channels`] then [`normalize`].
    ///
    /// # Shapes
    /// `[C, H, W]` or `[H, W]` in, `[H, W]` out.
    ///
    /// # Errors
    /// As [`reduce_channels`] and [`normalize`].
    pub fn indices<T: Float>(&self, relevance: &ArrayViewD<'_, T>) -> Result<Array2<u8>> {
        let map = reduce_channels(relevance, self.reduction)?;
        if !map.iter().all(|v| v.is_finite()) && relevance.iter().all(|v| v.is_finite()) {
            // finite relevance whose channel sum overflows the float type (values near
            // ±f32::MAX): reduce and normalise in f64 instead
            let wide = relevance.mapv(|v| v.as_f64());
            let map = reduce_channels(&wide.view(), self.reduction)?;
            return normalize(&map.view(), self.normalization);
        }
        normalize(&map.view(), self.normalization)
    }

    /// Renders a relevance map: [`indices`](Heatmap::indices), [`colorize`], then
    /// [`RgbImage::upscale`] by `scale`.
    ///
    /// # Shapes
    /// `[C, H, W]` or `[H, W]` in; an image `scale·W` wide and `scale·H` high out.
    ///
    /// # Errors
    /// As [`reduce_channels`], [`normalize`] and [`RgbImage::upscale`] (a zero `scale`).
    pub fn render<T: Float>(&self, relevance: &ArrayViewD<'_, T>) -> Result<RgbImage> {
        let img = colorize(&self.indices(relevance)?.view(), &self.palette)?;
        if self.scale == 1 {
            Ok(img)
        } else {
            img.upscale(self.scale)
        }
    }
}

/// Looks every index up in the palette: `[H, W]` indices → an image `W` wide, `H` high.
///
/// ```
/// use ndarray::array;
/// use relevance::heatmap::{colorize, Palette};
/// # fn main() -> relevance::Result<()> {
/// let img = colorize(&array![[0u8, 127, 255]].view(), &Palette::bwr())?;
/// assert_eq!(img.data(), &[0, 0, 255, 253, 253, 255, 255, 0, 0]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Image`](crate::Error::Image) for an empty array or one above
/// [`MAX_PIXELS`].
pub fn colorize(indices: &ArrayView2<'_, u8>, palette: &Palette) -> Result<RgbImage> {
    let (h, w) = indices.dim();
    let data = indices.iter().flat_map(|&k| palette.color(k)).collect();
    RgbImage::from_raw(w, h, data)
}
