//! Sequence logos of attributions: at every position, the letters stacked with heights
//! proportional to their contributions, positive ones above the zero line and negative ones
//! below (the picture TF-MoDISco, logomaker and BPNet papers draw). Cargo feature `figure`.
//!
//! The letters are the embedded DejaVu Sans Mono glyphs, stretched to fill their boxes; the
//! colours are the field's usual ones (A green, C blue, G orange, T red, as logomaker's
//! `classic` scheme).

use super::figure::font;
use super::image::{RgbImage, MAX_PIXELS};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::checks::check_finite;
use ab_glyph::{Font, PxScale};
use ndarray::ArrayView2;

/// The DNA letters in the crate's one-hot order (A, C, G, T).
pub const DNA: [char; 4] = ['A', 'C', 'G', 'T'];

/// logomaker's `classic` colours for A, C, G, T.
pub const DNA_COLOURS: [[u8; 3]; 4] = [[0, 128, 0], [0, 0, 255], [255, 165, 0], [255, 0, 0]];

/// Draws attributions `[A, L]` (A letters, L positions) as a sequence logo.
///
/// At each position the positive contributions are stacked upwards from the zero line, the
/// largest on top, and the negative ones downwards, the largest magnitude at the bottom;
/// a letter's height is its contribution times the scale. By default the scale makes the
/// tallest positive stack and the deepest negative stack of the window fill the picture
/// together (each logo scaled on its own); [`SequenceLogo::scale`] fixes pixels per unit so
/// that logos of several sequences compare.
///
/// ```
/// use ndarray::array;
/// use relevance::heatmap::SequenceLogo;
/// # fn main() -> relevance::Result<()> {
/// // contributions of A, C, G, T (rows) at 3 positions (columns)
/// let c = array![[0.8, 0.0, 0.0], [0.0, -0.3, 0.0], [0.0, 0.0, 0.1], [0.0, 0.0, 0.5]];
/// let logo = SequenceLogo::new().base_width(20).height(80).render(&c.view())?;
/// assert_eq!((logo.width(), logo.height()), (60, 80));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SequenceLogo {
    base_width: usize,
    height: usize,
    letters: Vec<char>,
    colours: Vec<[u8; 3]>,
    scale: Option<f64>,
    zero: Option<f64>,
    background: [u8; 3],
    axis: Option<[u8; 3]>,
}

impl Default for SequenceLogo {
    fn default() -> Self {
        SequenceLogo::new()
    }
}

impl SequenceLogo {
    /// A DNA logo ([`DNA`], [`DNA_COLOURS`]): 16 pixels per position, 120 high, white
    /// background, a grey zero line, scaled to the window.
    pub fn new() -> SequenceLogo {
        SequenceLogo {
            base_width: 16,
            height: 120,
            letters: DNA.to_vec(),
            colours: DNA_COLOURS.to_vec(),
            scale: None,
            zero: None,
            background: [255, 255, 255],
            axis: Some([150, 150, 150]),
        }
    }

    /// Pixels per position (at least 1).
    pub fn base_width(mut self, pixels: usize) -> SequenceLogo {
        self.base_width = pixels;
        self
    }

    /// The picture's height in pixels.
    pub fn height(mut self, pixels: usize) -> SequenceLogo {
        self.height = pixels;
        self
    }

    /// Another alphabet (e.g. the 20 amino acids), one colour per letter; the rows of the
    /// attributions follow this order.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no letter or a number of colours different from the
    /// number of letters.
    pub fn alphabet(mut self, letters: &[char], colours: &[[u8; 3]]) -> Result<SequenceLogo> {
        if letters.is_empty() || letters.len() != colours.len() {
            return Err(Error::InvalidParameter {
                rule: "sequence logo alphabet",
                reason: format!("{} letters and {} colours", letters.len(), colours.len()),
            });
        }
        self.letters = letters.to_vec();
        self.colours = colours.to_vec();
        Ok(self)
    }

    /// Pixels per unit of contribution, fixed (instead of fitting each logo to its window):
    /// logos drawn with the same scale compare. Stacks taller than the picture are cut.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless the scale is finite and positive.
    pub fn scale(mut self, pixels_per_unit: f64) -> Result<SequenceLogo> {
        if !(pixels_per_unit.is_finite() && pixels_per_unit > 0.0) {
            return Err(Error::InvalidParameter {
                rule: "sequence logo scale",
                reason: format!("{pixels_per_unit} is not a finite positive number"),
            });
        }
        self.scale = Some(pixels_per_unit);
        Ok(self)
    }

    /// Where the zero line is, as a fraction of the height from the top (0 top, 1 bottom),
    /// instead of where the window's tallest stacks put it: with [`SequenceLogo::scale`],
    /// logos of several sequences then share their zero line too.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `0 ≤ fraction ≤ 1`.
    pub fn zero_at(mut self, fraction: f64) -> Result<SequenceLogo> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(Error::InvalidParameter {
                rule: "sequence logo zero line",
                reason: format!("{fraction} is not between 0 and 1"),
            });
        }
        self.zero = Some(fraction);
        Ok(self)
    }

    /// The background colour (white by default).
    pub fn background(mut self, colour: [u8; 3]) -> SequenceLogo {
        self.background = colour;
        self
    }

    /// The colour of the zero line, or `None` for no line.
    pub fn axis(mut self, colour: Option<[u8; 3]>) -> SequenceLogo {
        self.axis = colour;
        self
    }

    /// Draws `contributions` `[A, L]` (A = the alphabet's size).
    ///
    /// # Errors
    /// [`Error::Shape`] if the rows are not the alphabet's letters; [`Error::Image`] for no
    /// position; [`Error::NonFinite`] for NaN or infinite values;
    /// [`Error::InvalidParameter`] for a zero width or height, or a picture of more than
    /// [`MAX_PIXELS`] pixels.
    pub fn render<F: Float>(&self, contributions: &ArrayView2<'_, F>) -> Result<RgbImage> {
        let (a, l) = contributions.dim();
        if a != self.letters.len() {
            return Err(Error::Shape {
                what: "sequence logo contributions (rows are the alphabet's letters)".into(),
                expected: vec![self.letters.len(), l],
                got: vec![a, l],
            });
        }
        if l == 0 {
            return Err(Error::Image {
                what: "sequence logo contributions".into(),
                reason: "no position to draw".into(),
            });
        }
        check_finite("sequence logo contributions", &contributions.into_dyn())?;
        if self.base_width == 0 || self.height == 0 {
            return Err(Error::InvalidParameter {
                rule: "sequence logo size",
                reason: format!("{} pixels per position, {} high", self.base_width, self.height),
            });
        }
        let width = l
            .checked_mul(self.base_width)
            .filter(|w| w.checked_mul(self.height).is_some_and(|p| p <= MAX_PIXELS));
        let Some(width) = width else {
            return Err(Error::InvalidParameter {
                rule: "sequence logo size",
                reason: format!(
                    "{l} positions × {} pixels by {} exceed {MAX_PIXELS} pixels",
                    self.base_width, self.height
                ),
            });
        };
        let value = |c: usize, p: usize| contributions[[c, p]].to_f64().unwrap_or(0.0);
        // the tallest stacks above and below zero
        let (mut up, mut down) = (0.0f64, 0.0f64);
        for p in 0..l {
            let (mut pos, mut neg) = (0.0, 0.0);
            for c in 0..a {
                let v = value(c, p);
                if v > 0.0 {
                    pos += v;
                } else {
                    neg -= v;
                }
            }
            up = up.max(pos);
            down = down.max(neg);
        }
        let h = self.height as f64;
        let (fitted_zero, per_unit) = match self.scale {
            Some(s) if up + down > 0.0 => ((h * up / (up + down)).round(), s),
            Some(s) => (h, s),
            None if up + down > 0.0 => ((h * up / (up + down)).round(), h / (up + down)),
            None => (h, 0.0),
        };
        let zero = self.zero.map_or(fitted_zero, |f| (h * f).round());
        let mut image = RgbImage::filled(width, self.height, self.background)?;
        let font = font();
        let mut order: Vec<usize> = (0..a).collect();
        for p in 0..l {
            let x0 = (p * self.base_width) as f64;
            // smallest first: stacked outward from the zero line, the largest ends outermost
            order.sort_by(|&i, &j| value(i, p).abs().total_cmp(&value(j, p).abs()));
            let (mut top, mut bottom) = (zero, zero);
            for &c in &order {
                let v = value(c, p);
                let extent = v.abs() * per_unit;
                if v > 0.0 {
                    self.letter(&mut image, &font, c, (x0, top - extent), extent);
                    top -= extent;
                } else if v < 0.0 {
                    self.letter(&mut image, &font, c, (x0, bottom), extent);
                    bottom += extent;
                }
            }
        }
        if let Some(colour) = self.axis {
            let y = (zero as usize).min(self.height - 1);
            let data = image.data_mut();
            for x in 0..width {
                let at = (y * width + x) * 3;
                data[at..at + 3].copy_from_slice(&colour);
            }
        }
        Ok(image)
    }

    /// Fills the box `[x, x + base_width) × [y, y + extent)` with letter `c`, stretched.
    fn letter(
        &self,
        image: &mut RgbImage,
        font: &ab_glyph::FontRef<'_>,
        c: usize,
        (x, y): (f64, f64),
        extent: f64,
    ) {
        if extent < 0.5 {
            return;
        }
        let id = font.glyph_id(self.letters[c]);
        let Some(bounds) = font.outline(id).map(|o| o.bounds) else {
            return;
        };
        // font units; the outline's y axis may point either way
        let (gw, gh) = (f64::from(bounds.width()).abs(), f64::from(bounds.height()).abs());
        if gw <= 0.0 || gh <= 0.0 {
            return;
        }
        // a PxScale of s draws the font's ascent − descent (in units) as s pixels
        let units = f64::from(font.height_unscaled());
        let bw = self.base_width as f64 * 0.92;
        let scale = PxScale {
            x: (bw * units / gw) as f32,
            y: (extent * units / gh) as f32,
        };
        let glyph = id.with_scale_and_position(scale, ab_glyph::point(0.0, 0.0));
        let Some(outlined) = font.outline_glyph(glyph) else {
            return;
        };
        let px = outlined.px_bounds();
        let (ow, oh) = (f64::from(px.width()).max(1.0), f64::from(px.height()).max(1.0));
        let (left, top) = (x + (self.base_width as f64 - ow) / 2.0, y + (extent - oh) / 2.0);
        let colour = self.colours[c];
        let (width, height) = (image.width(), image.height());
        let data = image.data_mut();
        outlined.draw(|gx, gy, coverage| {
            let xx = (left + f64::from(gx)).round();
            let yy = (top + f64::from(gy)).round();
            if xx < 0.0 || yy < 0.0 || xx >= width as f64 || yy >= height as f64 {
                return;
            }
            let at = (yy as usize * width + xx as usize) * 3;
            let alpha = coverage.clamp(0.0, 1.0);
            for k in 0..3 {
                let old = f32::from(data[at + k]);
                data[at + k] = (old + (f32::from(colour[k]) - old) * alpha).round() as u8;
            }
        });
    }
}
