//! PNG encoding (cargo feature `png`, on by default), with the `png` crate.

use std::path::Path;

use super::RgbImage;
use crate::{Error, Result};

impl RgbImage {
    /// Encodes the image as an 8-bit RGB PNG (no interlacing, default compression).
    ///
    /// ```
    /// use relevance::heatmap::RgbImage;
    /// # fn main() -> relevance::Result<()> {
    /// let png = RgbImage::filled(3, 2, [255, 0, 0])?.to_png()?;
    /// assert_eq!(&png[1..4], b"PNG");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Image`] if the encoder fails (a side above `u32::MAX` cannot occur within
    /// [`MAX_PIXELS`](super::MAX_PIXELS)).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let err = |e: &dyn std::fmt::Display| Error::Image {
            what: "PNG encoding".into(),
            reason: e.to_string(),
        };
        let width = u32::try_from(self.width()).map_err(|e| err(&e))?;
        let height = u32::try_from(self.height()).map_err(|e| err(&e))?;
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| err(&e))?;
        writer.write_image_data(self.data()).map_err(|e| err(&e))?;
        writer.finish().map_err(|e| err(&e))?;
        Ok(out)
    }

    /// Writes the image to `path` as a PNG (see [`to_png`](RgbImage::to_png)), replacing any
    /// file there.
    ///
    /// # Errors
    /// [`Error::Image`] naming the path if encoding or writing fails (a missing directory,
    /// no permission, a full disk).
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_png()?;
        std::fs::write(path, bytes).map_err(|e| Error::Image {
            what: format!("PNG file {}", path.display()),
            reason: e.to_string(),
        })
    }
}
