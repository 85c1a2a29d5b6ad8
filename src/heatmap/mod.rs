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
#[cfg(feature = "figure")]
mod logo;
mod normalize;
mod palette;
#[cfg(feature = "png")]
mod png;
mod text;

pub use self::image::{grid, overlay, RgbImage, MAX_PIXELS};
#[cfg(feature = "figure")]
pub use figure::{draw_text, text_width, Figure, MAX_FONT_SIZE};
#[cfg(feature = "figure")]
pub use logo::{SequenceLogo, DNA, DNA_COLOURS};
pub use normalize::{normalize, percentile_threshold, reduce_channels, Normalization, Reduction};
pub use palette::Palette;
pub use text::TokenRelevance;

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

    /// The rendered map over `background` (an image `scale` times the map's size, e.g. the
    /// input through [`RgbImage::from_array`], [`RgbImage::to_grayscale`] and
    /// [`RgbImage::upscale`]), with an opacity that grows with |R|: `alpha` where the
    /// relevance is largest, about 0 where it is zero (`alpha` times the square root of the
    /// palette index's distance from the middle, 127.5, over 127.5), so that the input stays visible where nothing is relevant.
    /// [`overlay`] blends with one opacity everywhere.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::heatmap::{Heatmap, RgbImage};
    /// # fn main() -> relevance::Result<()> {
    /// let r = array![[1.0, 0.0]].into_dyn();
    /// let bg = RgbImage::filled(2, 1, [0, 0, 0])?;
    /// let over = Heatmap::default().render_over(&r.view(), &bg, 1.0)?;
    /// assert_eq!(over.pixel(0, 0), Some([255, 0, 0])); // the largest relevance: the heatmap
    /// assert!(over.pixel(1, 0).unwrap()[0] < 20); // zero relevance: about the background
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Heatmap::render`]; [`Error::Shape`](crate::Error::Shape) if the background's
    /// size differs from the rendered map's; [`Error::Image`](crate::Error::Image) if
    /// `alpha` is outside `[0, 1]`.
    pub fn render_over<T: Float>(
        &self,
        relevance: &ArrayViewD<'_, T>,
        background: &RgbImage,
        alpha: f64,
    ) -> Result<RgbImage> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(crate::Error::Image {
                what: "overlay alpha".into(),
                reason: format!("must lie in [0, 1], got {alpha}"),
            });
        }
        let indices = self.indices(relevance)?;
        let heat = colorize(&indices.view(), &self.palette)?.upscale(self.scale.max(1))?;
        let (w, h) = (heat.width(), heat.height());
        if (background.width(), background.height()) != (w, h) {
            return Err(crate::Error::Shape {
                what: "overlay background [height, width]".into(),
                expected: vec![h, w],
                got: vec![background.height(), background.width()],
            });
        }
        let scale = self.scale.max(1);
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let k = indices.get((y / scale, x / scale)).copied().unwrap_or(128);
                let strength = ((f64::from(k) - 127.5).abs() / 127.5).min(1.0);
                let a = alpha * strength.sqrt();
                let (bg, fg) = (
                    background.pixel(x, y).unwrap_or_default(),
                    heat.pixel(x, y).unwrap_or_default(),
                );
                for c in 0..3 {
                    data.push((f64::from(bg[c]) * (1.0 - a) + f64::from(fg[c]) * a).round() as u8);
                }
            }
        }
        RgbImage::from_raw(w, h, data)
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
