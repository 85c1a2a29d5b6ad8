//! The grid of k×k regions over an image, laid out as Quantus lays it out.

use super::invalid;
use crate::error::Result;

/// The non-overlapping k×k regions of an `H × W` image, numbered row by row.
///
/// Where `k` does not divide a side, the grid overhangs the image by `k − side mod k`
/// pixels, split as evenly as possible with the smaller half before the image (Quantus'
/// `get_padding_size`, which pads the image that much): the regions at the borders are
/// then cut off. `k = 1` gives one region per pixel. A region spans all channels.
///
/// ```
/// use relevance::eval::Regions;
/// # fn main() -> relevance::Result<()> {
/// let g = Regions::new(6, 6, 4)?; // overhang 1 on each side: 3 + 3 rows
/// assert_eq!(g.len(), 4);
/// assert_eq!(g.rows(0), 0..3);
/// assert_eq!(g.rows(2), 3..6);
/// assert_eq!(g.cols(1), 3..6);
/// let g = Regions::new(5, 5, 2)?; // overhang 0 before, 1 after
/// assert_eq!((g.len(), g.rows(8)), (9, 4..5));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regions {
    height: usize,
    width: usize,
    patch: usize,
    pad_top: usize,
    pad_left: usize,
    grid_rows: usize,
    grid_cols: usize,
}

impl Regions {
    /// The grid of `patch × patch` regions over an `height × width` image.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) for a zero patch, an
    /// empty image or a patch larger than a side of the image.
    pub fn new(height: usize, width: usize, patch: usize) -> Result<Self> {
        if patch == 0 {
            return Err(invalid("region grid", "the patch size must be at least 1"));
        }
        if height == 0 || width == 0 {
            return Err(invalid("region grid", "the image is empty"));
        }
        if patch > height || patch > width {
            return Err(invalid(
                "region grid",
                format!("patch {patch}×{patch} is larger than the image ({height}×{width})"),
            ));
        }
        // the overhang before the image: floor(total / 2), as Quantus' get_padding_size
        let pad = |side: usize| (patch - side % patch) % patch / 2;
        Ok(Regions {
            height,
            width,
            patch,
            pad_top: pad(height),
            pad_left: pad(width),
            grid_rows: height.div_ceil(patch),
            grid_cols: width.div_ceil(patch),
        })
    }

    /// The number of regions.
    pub fn len(&self) -> usize {
        self.grid_rows * self.grid_cols
    }

    /// Whether there are no regions (never, for a grid that was built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The patch size k.
    pub fn patch(&self) -> usize {
        self.patch
    }

    /// The image rows region `r` covers.
    pub fn rows(&self, r: usize) -> std::ops::Range<usize> {
        let start = (r / self.grid_cols * self.patch).saturating_sub(self.pad_top);
        let end = ((r / self.grid_cols + 1) * self.patch - self.pad_top).min(self.height);
        start..end
    }

    /// The image columns region `r` covers.
    pub fn cols(&self, r: usize) -> std::ops::Range<usize> {
        let start = (r % self.grid_cols * self.patch).saturating_sub(self.pad_left);
        let end = ((r % self.grid_cols + 1) * self.patch - self.pad_left).min(self.width);
        start..end
    }
}
