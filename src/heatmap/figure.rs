//! Figures that explain themselves: a grid of images with column titles, row captions,
//! an optional title and a colour bar, lettered with an embedded font (DejaVu Sans Mono,
//! through `ab_glyph`). Cargo feature `figure` (default).

use super::image::RgbImage;
use super::palette::Palette;
use crate::error::{Error, Result};
use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

/// DejaVu Sans Mono (Bitstream Vera licence, see NOTICE).
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSansMono.ttf");

pub(super) fn font() -> FontRef<'static> {
    FontRef::try_from_slice(FONT).expect("the embedded font parses")
}

/// The width in pixels of one line of `text` drawn by [`draw_text`] at `size` pixels
/// (clamped as there).
pub fn text_width(text: &str, size: f32) -> usize {
    let size = if size.is_finite() {
        size.clamp(1.0, MAX_FONT_SIZE)
    } else {
        1.0
    };
    let font = font();
    let scaled = font.as_scaled(PxScale::from(size));
    let mut width = 0.0f32;
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            width += scaled.kern(p, id);
        }
        width += scaled.h_advance(id);
        previous = Some(id);
    }
    width.ceil() as usize
}

/// The height of one line at `size` pixels (ascent − descent + line gap).
fn line_height(size: f32) -> usize {
    let scaled = font().into_scaled(PxScale::from(size));
    (scaled.ascent() - scaled.descent() + scaled.line_gap()).ceil() as usize
}

/// The largest letter size [`draw_text`] draws, in pixels.
pub const MAX_FONT_SIZE: f32 = 1024.0;

/// Draws one line of `text` with its top-left corner at `(x, y)`, blending the glyphs'
/// coverage into the image; what falls outside is cut off. `size` (pixels) is clamped to
/// 1..=[`MAX_FONT_SIZE`]; a non-finite size draws nothing.
pub fn draw_text(image: &mut RgbImage, text: &str, (x, y): (usize, usize), size: f32, color: [u8; 3]) {
    if !size.is_finite() {
        return;
    }
    let size = size.clamp(1.0, MAX_FONT_SIZE);
    if x >= image.width() || y >= image.height() {
        return;
    }
    let font = font();
    let scale = PxScale::from(size);
    let scaled = font.as_scaled(scale);
    let baseline = y as f32 + scaled.ascent();
    let mut caret = x as f32;
    let mut previous = None;
    let (width, height) = (image.width(), image.height());
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scale, ab_glyph::point(caret, baseline));
        caret += scaled.h_advance(id);
        previous = Some(id);
        if let Some(outlined) = font.outline_glyph(glyph) {
            let bounds = outlined.px_bounds();
            if bounds.min.x >= width as f32
                || bounds.min.y >= height as f32
                || bounds.max.x < 0.0
                || bounds.max.y < 0.0
            {
                continue;
            }
            outlined.draw(|gx, gy, coverage| {
                let px = bounds.min.x as i64 + i64::from(gx);
                let py = bounds.min.y as i64 + i64::from(gy);
                if px < 0 || py < 0 || px as usize >= width || py as usize >= height {
                    return;
                }
                let at = (py as usize * width + px as usize) * 3;
                let a = coverage.clamp(0.0, 1.0);
                let data = image.data_mut();
                for k in 0..3 {
                    let old = f32::from(data[at + k]);
                    data[at + k] = (old + (f32::from(color[k]) - old) * a).round() as u8;
                }
            });
        }
    }
}

/// A labelled grid of images: column titles over the columns, a caption left of each row,
/// an optional title and an optional horizontal colour bar with labels under the grid.
///
/// ```
/// use relevance::heatmap::{Figure, Palette, RgbImage};
/// # fn main() -> relevance::Result<()> {
/// let cell = RgbImage::filled(28, 28, [200, 200, 200])?;
/// let mut figure = Figure::new(["input", "LRP-0"]).title("digit 7");
/// figure.row("label 7, predicted 7 (logit 9.1)", vec![cell.clone(), cell])?;
/// let figure = figure.colour_bar(&Palette::bwr(), ["against", "0", "for"]);
/// let picture = figure.render()?;
/// assert!(picture.width() > 2 * 28 && picture.height() > 28);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Figure {
    columns: Vec<String>,
    rows: Vec<(String, Vec<RgbImage>)>,
    title: Option<String>,
    bar: Option<(Palette, [String; 3])>,
    font_size: f32,
    padding: usize,
    background: [u8; 3],
    ink: [u8; 3],
}

impl Figure {
    /// A figure with these column titles (one per image of a row).
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Figure {
        Figure {
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            title: None,
            bar: None,
            font_size: 14.0,
            padding: 6,
            background: [255, 255, 255],
            ink: [0, 0, 0],
        }
    }

    /// A title over the figure.
    pub fn title(mut self, title: impl Into<String>) -> Figure {
        self.title = Some(title.into());
        self
    }

    /// A colour bar under the grid: the palette from index 0 (left) to 255 (right), with
    /// labels under its left end, middle and right end (e.g. `["−max", "0", "+max"]`).
    pub fn colour_bar<S: Into<String>>(mut self, palette: &Palette, labels: [S; 3]) -> Figure {
        self.bar = Some((palette.clone(), labels.map(Into::into)));
        self
    }

    /// The letter size in pixels (default 14; clamped to 6..=96).
    pub fn font_size(mut self, pixels: f32) -> Figure {
        self.font_size = if pixels.is_finite() {
            pixels.clamp(6.0, 96.0)
        } else {
            14.0
        };
        self
    }

    /// The space around and between cells in pixels (default 6; at most 256).
    pub fn padding(mut self, pixels: usize) -> Figure {
        self.padding = pixels.min(256);
        self
    }

    /// Adds a row: its caption (lines separated by `\n`) and one image per column.
    ///
    /// # Errors
    /// [`Error::Image`] if the number of images is not the number of columns.
    pub fn row(&mut self, caption: impl Into<String>, images: Vec<RgbImage>) -> Result<&mut Figure> {
        if images.len() != self.columns.len() {
            return Err(Error::Image {
                what: "figure row".into(),
                reason: format!(
                    "{} images for {} columns ({:?})",
                    images.len(),
                    self.columns.len(),
                    self.columns
                ),
            });
        }
        self.rows.push((caption.into(), images));
        Ok(self)
    }

    /// Draws the figure.
    ///
    /// # Errors
    /// [`Error::Image`] for a figure without columns or rows, or one whose picture would
    /// exceed [`MAX_PIXELS`](super::MAX_PIXELS).
    pub fn render(&self) -> Result<RgbImage> {
        if self.columns.is_empty() || self.rows.is_empty() {
            return Err(Error::Image {
                what: "figure".into(),
                reason: format!(
                    "{} columns and {} rows: nothing to draw",
                    self.columns.len(),
                    self.rows.len()
                ),
            });
        }
        let (size, pad) = (self.font_size, self.padding);
        let line = line_height(size);
        let lines = |text: &str| text.lines().count().max(1);
        let widest = |text: &str| text.lines().map(|l| text_width(l, size)).max().unwrap_or(0);

        // column widths: the widest image or title; row heights: the tallest image or caption
        let col_w: Vec<usize> = (0..self.columns.len())
            .map(|c| {
                let images = self.rows.iter().map(|(_, im)| im[c].width()).max().unwrap_or(0);
                // titles keep a padding's distance from their neighbours
                images.max(widest(&self.columns[c]) + pad)
            })
            .collect();
        let row_h: Vec<usize> = self
            .rows
            .iter()
            .map(|(caption, im)| {
                let images = im.iter().map(RgbImage::height).max().unwrap_or(0);
                images.max(lines(caption) * line)
            })
            .collect();
        let caption_w = self.rows.iter().map(|(c, _)| widest(c)).max().unwrap_or(0);
        let header_h = self.columns.iter().map(|t| lines(t)).max().unwrap_or(1) * line;
        let title_h = self.title.as_ref().map_or(0, |t| lines(t) * line + pad);
        let bar_h = if self.bar.is_some() {
            pad + line + 2 + line
        } else {
            0
        };
        let left = pad + if caption_w > 0 { caption_w + pad } else { 0 };
        let grid_w = col_w.iter().sum::<usize>() + pad * (col_w.len() - 1);
        // the colour bar spans the grid (at most 512 px) and at least its three labels
        let labels_w = self.bar.as_ref().map_or(0, |(_, labels)| {
            labels.iter().map(|l| text_width(l, size)).sum::<usize>() + 4 * pad
        });
        let bar_w = grid_w.min(512).max(labels_w);
        let title_w = self.title.as_ref().map_or(0, |t| widest(t));
        let width = (left + grid_w.max(bar_w) + pad).max(title_w + 2 * pad);
        let height = pad
            + title_h
            + header_h
            + pad
            + row_h.iter().sum::<usize>()
            + pad * (row_h.len() - 1)
            + bar_h
            + pad;
        let mut out = RgbImage::filled(width, height, self.background)?;

        let mut y = pad;
        if let Some(title) = &self.title {
            for (k, l) in title.lines().enumerate() {
                let x = (width.saturating_sub(text_width(l, size))) / 2;
                draw_text(&mut out, l, (x, y + k * line), size, self.ink);
            }
            y += title_h;
        }
        // column titles, centred over their column
        let mut x = left;
        for (c, title) in self.columns.iter().enumerate() {
            for (k, l) in title.lines().enumerate() {
                let tx = x + (col_w[c].saturating_sub(text_width(l, size))) / 2;
                draw_text(&mut out, l, (tx, y + k * line), size, self.ink);
            }
            x += col_w[c] + pad;
        }
        y += header_h + pad;
        for (r, (caption, images)) in self.rows.iter().enumerate() {
            let text_top = y + (row_h[r].saturating_sub(lines(caption) * line)) / 2;
            for (k, l) in caption.lines().enumerate() {
                let tx = pad + caption_w.saturating_sub(text_width(l, size));
                draw_text(&mut out, l, (tx, text_top + k * line), size, self.ink);
            }
            let mut x = left;
            for (c, im) in images.iter().enumerate() {
                let (ox, oy) = ((col_w[c] - im.width()) / 2, (row_h[r] - im.height()) / 2);
                out.paste(im, x + ox, y + oy);
                x += col_w[c] + pad;
            }
            y += row_h[r] + pad;
        }
        if let Some((palette, labels)) = &self.bar {
            // centred under the grid (or, when wider, starting at the grid's left edge)
            let bx = left + grid_w.saturating_sub(bar_w) / 2;
            let data = out.data_mut();
            for dx in 0..bar_w {
                let k = if bar_w > 1 {
                    (dx * 255 + (bar_w - 1) / 2) / (bar_w - 1)
                } else {
                    127
                };
                let color = palette.color(k as u8);
                for dy in 0..line {
                    let at = ((y + dy) * width + bx + dx) * 3;
                    data[at..at + 3].copy_from_slice(&color);
                }
            }
            let ly = y + line + 2;
            let [low, mid, high] = labels;
            draw_text(&mut out, low, (bx, ly), size, self.ink);
            let mx = bx + (bar_w.saturating_sub(text_width(mid, size))) / 2;
            draw_text(&mut out, mid, (mx, ly), size, self.ink);
            let hx = (bx + bar_w).saturating_sub(text_width(high, size));
            draw_text(&mut out, high, (hx, ly), size, self.ink);
        }
        Ok(out)
    }
}
