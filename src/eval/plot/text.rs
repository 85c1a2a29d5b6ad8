//! A drawing backend that draws the plots' text itself: plotters 0.3's `ab_glyph` text
//! drops each glyph's left-side bearing (it places the glyph's pixel box at the caret), so
//! narrow glyphs sit at the left of their cell and numbers and words read with gaps
//! ("14. 0", "LRP- 0"). Here every glyph is placed at the caret plus its bearing, as
//! `ab_glyph` lays it out; everything else is the wrapped backend's.

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters_backend::{
    text_anchor::{HPos, VPos},
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// `B` with its text drawn from `font` (the font every text style of the plots names).
pub(super) struct GlyphText<'f, B> {
    pub inner: B,
    pub font: &'f FontRef<'f>,
}

impl<B: DrawingBackend> DrawingBackend for GlyphText<'_, B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (iw, ih): (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, (iw, ih), src)
    }

    /// plotters' default text placement (anchor, rotation, its vertical convention), with
    /// every glyph at the caret plus its left-side bearing.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let size = style.size() as f32;
        let scaled = self.font.as_scaled(size);
        // the box plotters lays out: the advances, and size / 1.24 high
        let width = text
            .chars()
            .map(|c| scaled.h_advance(self.font.glyph_id(c)))
            .sum::<f32>() as i32;
        let height = (style.size() / 1.24) as i32;
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        let mut caret = 0.0f32;
        let mut previous = None;
        for c in text.chars() {
            let id = self.font.glyph_id(c);
            if let Some(p) = previous {
                caret += scaled.kern(p, id);
            }
            previous = Some(id);
            if let Some(outline) = self.font.outline_glyph(scaled.scaled_glyph(c)) {
                let rect = outline.px_bounds();
                let (x0, y0) = ((caret + rect.min.x) as i32, (size / 2.0 + rect.min.y) as i32);
                let mut pixels = Vec::new();
                outline.draw(|x, y, coverage| pixels.push((x as i32 + x0, y as i32 + y0, coverage)));
                for (x, y, coverage) in pixels {
                    let (x, y) = trans.transform(x + dx, y + dy);
                    let (x, y) = (pos.0 + x, pos.1 + y);
                    if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                        let alpha = color.alpha * f64::from(coverage);
                        self.inner.draw_pixel(
                            (x, y),
                            BackendColor {
                                alpha,
                                rgb: color.rgb,
                            },
                        )?;
                    }
                }
            }
            caret += scaled.h_advance(id);
        }
        Ok(())
    }
}
