//! 8-bit pixels: PNG and JPEG decoding, PIL's colour conversions and Pillow's bilinear
//! resampling.

use super::{MAX_IMAGE_PIXELS, MAX_SIDE};
use std::io::Cursor;

/// An 8-bit image, interleaved channels (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA).
pub(super) struct Pixels {
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) channels: usize,
    pub(super) data: Vec<u8>,
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
    pub(super) fn checked(
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
    pub(super) fn to_grey(&self) -> Pixels {
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
    pub(super) fn to_rgb(&self) -> Pixels {
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
    pub(super) fn resize(&self, width: usize, height: usize) -> Pixels {
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
                        out[(y * width + x) * c + ch] = weighted(k, |j| row[(start + j) * c + ch]);
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
                    out[y * stride + i] = weighted(k, |j| img.data[(start + j) * stride + i]);
                }
            }
            img.height = height;
            img.data = out;
        }
        img
    }

    pub(super) fn crop(&self, left: usize, top: usize, width: usize, height: usize) -> Pixels {
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

/// `Σ_j k[j] · sample(j)` in fixed point, rounded and clamped to 0..=255 (Pillow's
/// `clip8`): one output value of a resampling pass.
fn weighted(k: &[i32], sample: impl Fn(usize) -> u8) -> u8 {
    let sum = k
        .iter()
        .enumerate()
        .fold(ROUNDING, |s, (j, &w)| s + i64::from(sample(j)) * i64::from(w));
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
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

pub(super) fn decode_png(bytes: &[u8]) -> std::result::Result<Pixels, String> {
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

pub(super) fn decode_jpeg(bytes: &[u8]) -> std::result::Result<Pixels, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
