//! Inputs: images (PNG, JPEG) resized, centre-cropped, scaled to [0, 1] and normalised by a
//! mean/std preset, and `.npy` arrays (uint8 ones scaled to [0, 1] with a warning).

use image::imageops::FilterType;
use image::DynamicImage;
use ndarray::{Array3, ArrayD, Axis, IxDyn};
use std::path::Path;

/// Mean/std normalisation applied after scaling pixels to [0, 1]: `x' = (x − mean) / std`
/// per channel (one value applies to every channel).
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// The preset's name (`imagenet`, `mnist`, `none`, `custom`).
    pub name: String,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Resize the shorter side to `crop × resize_ratio` before centre-cropping
    /// (torchvision's `Resize(256)` + `CenterCrop(224)` for ImageNet: 256/224).
    pub resize_ratio: f32,
}

impl Preprocess {
    /// Parses `imagenet`, `mnist`, `none` or `mean=M1,M2,..,std=S1,S2,..`.
    pub fn parse(text: &str) -> Result<Preprocess, String> {
        let preset = |name: &str, mean: Vec<f32>, std: Vec<f32>, resize_ratio: f32| Preprocess {
            name: name.into(),
            mean,
            std,
            resize_ratio,
        };
        match text.trim() {
            "imagenet" => {
                return Ok(preset(
                    "imagenet",
                    vec![0.485, 0.456, 0.406],
                    vec![0.229, 0.224, 0.225],
                    256.0 / 224.0,
                ))
            }
            "mnist" => return Ok(preset("mnist", vec![0.1307], vec![0.3081], 1.0)),
            "none" => return Ok(preset("none", vec![0.0], vec![1.0], 1.0)),
            _ => {}
        }
        let usage =
            "choose imagenet, mnist, none, or give mean=M1,M2,M3,std=S1,S2,S3 (values for pixels in [0, 1])";
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        let mut current: Option<&mut Vec<f32>> = None;
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
                .ok_or_else(|| format!("unknown preset; {usage}"))?;
            let v: f32 = value
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| format!("{value:?} is not a number; {usage}"))?;
            list.push(v);
        }
        if mean.is_empty() || std.is_empty() {
            return Err(format!("both mean= and std= are needed; {usage}"));
        }
        if mean.len() != std.len() && mean.len() != 1 && std.len() != 1 {
            return Err(format!(
                "mean has {} values and std {}; give one per channel (or one for all)",
                mean.len(),
                std.len()
            ));
        }
        if std.iter().any(|&s| s <= 0.0) {
            return Err("every std must be positive".to_string());
        }
        Ok(preset("custom", mean, std, 1.0))
    }

    fn channel_values(&self, values: &[f32], channels: usize) -> Result<Vec<f32>, String> {
        match values.len() {
            1 => Ok(vec![values[0]; channels]),
            n if n == channels => Ok(values.to_vec()),
            n => Err(format!(
                "--preprocess {}: it has {n} values per channel list but the model's input has {channels} channels",
                self.name
            )),
        }
    }

    /// Per-channel mean and std for `channels` channels.
    pub fn for_channels(&self, channels: usize) -> Result<(Vec<f32>, Vec<f32>), String> {
        Ok((
            self.channel_values(&self.mean, channels)?,
            self.channel_values(&self.std, channels)?,
        ))
    }

    /// The z^B bounds: the normalised images of pixel values 0 and 1, `(0 − mean)/std` and
    /// `(1 − mean)/std`, per channel (`[C, 1, 1]`) for an image input `[C, H, W]`, else a
    /// scalar (then mean and std must have one value).
    pub fn bounds(&self, input_shape: &[usize]) -> Result<(ArrayD<f32>, ArrayD<f32>), String> {
        let channels = if input_shape.len() == 3 { input_shape[0] } else { 1 };
        let (mean, std) = self.for_channels(channels)?;
        let shape = if input_shape.len() == 3 {
            IxDyn(&[channels, 1, 1])
        } else {
            IxDyn(&[])
        };
        let low = ArrayD::from_shape_vec(
            shape.clone(),
            (0..channels).map(|c| (0.0 - mean[c]) / std[c]).collect(),
        )
        .map_err(|e| e.to_string())?;
        let high = ArrayD::from_shape_vec(shape, (0..channels).map(|c| (1.0 - mean[c]) / std[c]).collect())
            .map_err(|e| e.to_string())?;
        Ok((low, high))
    }

    /// Normalises `[C, H, W]` (or any shape whose first axis is the channel when C > 1)
    /// pixel values in [0, 1] in place.
    pub fn normalise(&self, x: &mut ArrayD<f32>) -> Result<(), String> {
        let channels = if x.ndim() == 3 { x.shape()[0] } else { 1 };
        let (mean, std) = self.for_channels(channels)?;
        if x.ndim() == 3 {
            for (c, mut plane) in x.axis_iter_mut(Axis(0)).enumerate() {
                plane.mapv_inplace(|v| (v - mean[c]) / std[c]);
            }
        } else {
            x.mapv_inplace(|v| (v - mean[0]) / std[0]);
        }
        Ok(())
    }

    /// Undoes [`Preprocess::normalise`] (for the overlay's background).
    pub fn denormalise(&self, x: &ArrayD<f32>) -> Result<ArrayD<f32>, String> {
        let mut x = x.clone();
        let channels = if x.ndim() == 3 { x.shape()[0] } else { 1 };
        let (mean, std) = self.for_channels(channels)?;
        if x.ndim() == 3 {
            for (c, mut plane) in x.axis_iter_mut(Axis(0)).enumerate() {
                plane.mapv_inplace(|v| v * std[c] + mean[c]);
            }
        } else {
            x.mapv_inplace(|v| v * std[0] + mean[0]);
        }
        Ok(x)
    }
}

/// A loaded input: the per-sample array the model takes, and what happened on the way.
pub struct Input {
    /// The model input for one sample (per-sample shape), normalised.
    pub x: ArrayD<f32>,
    /// Whether it came from an image (or a uint8 array), so it can be shown as one.
    pub is_image: bool,
    /// Warnings to print.
    pub notes: Vec<String>,
}

/// Reads an image as `[C, H, W]` in [0, 1]: converted to grey (C = 1) or RGB (C = 3),
/// the shorter side resized to `round(max(H, W) · resize_ratio)` (bilinear with
/// antialiasing, as PIL), then centre-cropped to `H × W`. An image of exactly the size is
/// taken as it is.
pub fn load_image(
    path: &Path,
    shape: &[usize],
    resize_ratio: f32,
) -> Result<(ArrayD<f32>, Vec<String>), String> {
    let shown = path.display();
    if shape.len() != 3 || !(shape[0] == 1 || shape[0] == 3) {
        return Err(format!(
            "{shown}: the model's input {shape:?} is not an image [C, H, W] with 1 or 3 channels; give a .npy array of that shape"
        ));
    }
    let (channels, height, width) = (shape[0], shape[1] as u32, shape[2] as u32);
    let reader = image::ImageReader::open(path)
        .map_err(|e| format!("cannot open {shown}: {e}"))?
        .with_guessed_format()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let img = reader
        .decode()
        .map_err(|e| format!("cannot decode {shown} as PNG or JPEG: {e}"))?;
    let mut notes = Vec::new();
    let img = if (img.width(), img.height()) == (width, height) {
        img
    } else {
        // torchvision's Resize(side): the shorter side to `side`, the longer to
        // int(side · long / short); then CenterCrop with offsets int(round((size − crop) / 2))
        // (Python's round: half to even)
        let (w0, h0) = (u64::from(img.width()), u64::from(img.height()));
        let side = (width.max(height) as f32 * resize_ratio).round().max(1.0) as u64;
        let (w1, h1) = if w0 <= h0 {
            (side, side * h0 / w0)
        } else {
            (side * w0 / h0, side)
        };
        let (w1, h1) = ((w1 as u32).max(width), (h1 as u32).max(height));
        notes.push(format!(
            "{shown}: resized from {}×{} to {w1}×{h1} and centre-cropped to {width}×{height}",
            img.width(),
            img.height()
        ));
        let resized = img.resize_exact(w1, h1, FilterType::Triangle);
        let offset = |extra: u32| {
            let k = extra / 2;
            if extra % 2 == 1 && k % 2 == 1 {
                k + 1
            } else {
                k
            }
        };
        let (left, top) = (offset(w1 - width), offset(h1 - height));
        resized.crop_imm(left, top, width, height)
    };
    Ok((to_array(&img, channels), notes))
}

fn to_array(img: &DynamicImage, channels: usize) -> ArrayD<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if channels == 1 {
        let grey = img.to_luma32f();
        Array3::from_shape_fn((1, h, w), |(_, y, x)| grey.get_pixel(x as u32, y as u32).0[0]).into_dyn()
    } else {
        let rgb = img.to_rgb32f();
        Array3::from_shape_fn((3, h, w), |(c, y, x)| rgb.get_pixel(x as u32, y as u32).0[c]).into_dyn()
    }
}

/// The element type named in an `.npy` header (`<f4`, `|u1`, ...), if it can be found.
fn npy_descr(bytes: &[u8]) -> Option<String> {
    // the header is ASCII after the magic bytes and ends with a newline; the data need not be text
    let end = bytes.iter().take(1 << 17).position(|&b| b == b'\n')?;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let at = head.find("'descr'")?;
    let rest = &head[at + 7..];
    let start = rest.find('\'')? + 1;
    let end = rest[start..].find('\'')? + start;
    Some(rest[start..end].to_string())
}

/// Reads a `.npy` input of the per-sample shape `shape` (a leading batch axis of 1, or a
/// missing channel axis of 1, is accepted). Float arrays are taken as they are (already
/// preprocessed); a uint8 array is scaled to [0, 1] and normalised with `pre`, with a note.
pub fn load_npy_input(path: &Path, shape: &[usize], pre: &Preprocess) -> Result<Input, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut x = relevance::io::read_npy::<f32>(&bytes).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut notes = Vec::new();
    let descr = npy_descr(&bytes).unwrap_or_default();
    let is_uint8 = descr.ends_with("u1");
    if x.shape() != shape {
        if x.ndim() == shape.len() + 1 && x.shape()[0] == 1 && &x.shape()[1..] == shape {
            x = x.index_axis_move(Axis(0), 0);
        } else if shape.len() == 3 && shape[0] == 1 && x.shape() == &shape[1..] {
            x = x.insert_axis(Axis(0));
        } else {
            return Err(format!(
                "{shown}: an array of shape {:?} does not fit the model's input {shape:?} (a leading batch axis of 1 is allowed); resize it, or give the shape with --input-shape if the model's is symbolic",
                x.shape()
            ));
        }
    }
    if is_uint8 {
        x.mapv_inplace(|v| v / 255.0);
        pre.normalise(&mut x)?;
        notes.push(format!(
            "{shown}: uint8 array taken as pixels: scaled to [0, 1] and normalised with --preprocess {}",
            pre.name
        ));
    } else {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        if max > 10.0 && descr.starts_with(['<', '>', '|', '=']) && !descr.contains('f') {
            notes.push(format!(
                "{shown}: integer array with values up to {max} taken as it is; if these are pixels 0..255 save them as uint8 or divide by 255"
            ));
        } else if max > 10.0 && pre.name != "none" {
            notes.push(format!(
                "{shown}: values up to {max}; float arrays are taken as already preprocessed (--preprocess {} is not applied)",
                pre.name
            ));
        }
    }
    Ok(Input {
        is_image: is_uint8,
        x,
        notes,
    })
}

/// Loads any input: `.npy`, or an image (PNG/JPEG, by content) scaled to [0, 1], resized
/// and normalised with `pre`.
pub fn load_input(path: &Path, shape: &[usize], pre: &Preprocess) -> Result<Input, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "npy" => load_npy_input(path, shape, pre),
        "png" | "jpg" | "jpeg" => {
            let (mut x, notes) = load_image(path, shape, pre.resize_ratio)?;
            pre.normalise(&mut x)?;
            Ok(Input {
                x,
                is_image: true,
                notes,
            })
        }
        _ => Err(format!(
            "{}: unknown input type; give a .png, .jpg/.jpeg image or a .npy array",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_bounds() {
        let p = Preprocess::parse("imagenet").unwrap();
        let (low, high) = p.bounds(&[3, 4, 4]).unwrap();
        assert_eq!(low.shape(), &[3, 1, 1]);
        assert!((low[[0, 0, 0]] - (-0.485 / 0.229)).abs() < 1e-6);
        assert!((high[[2, 0, 0]] - (1.0 - 0.406) / 0.225).abs() < 1e-6);
        let c = Preprocess::parse("mean=0.5,0.5,0.5,std=0.25,0.25,0.25").unwrap();
        assert_eq!(c.mean, vec![0.5; 3]);
        assert_eq!(c.std, vec![0.25; 3]);
        assert!(Preprocess::parse("fancy").unwrap_err().contains("unknown preset"));
        assert!(Preprocess::parse("mean=0.5,std=0").is_err());
        let n = Preprocess::parse("none").unwrap();
        let (low, high) = n.bounds(&[1, 2, 2]).unwrap();
        assert_eq!((low[[0, 0, 0]], high[[0, 0, 0]]), (0.0, 1.0));
    }

    /// torchvision's `Resize(37)` + `CenterCrop(32)` on a 64 × 48 image (PIL's antialiased
    /// bilinear), made by `tests/data/make_resize_fixture.py`: equal within 1/255 per pixel.
    #[test]
    fn resize_and_crop_match_torchvision() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let (x, notes) = load_image(&data.join("resize_src.png"), &[3, 32, 32], 256.0 / 224.0).unwrap();
        assert!(notes[0].contains("64×48 to 49×37"), "{notes:?}");
        let expected = image::open(data.join("resize_expected.png")).unwrap().to_rgb8();
        let mut worst = 0.0f32;
        for (c, y, xx) in itertools(3, 32, 32) {
            let e = f32::from(expected.get_pixel(xx as u32, y as u32).0[c]) / 255.0;
            worst = worst.max((x[[c, y, xx]] - e).abs());
        }
        assert!(
            worst <= 1.0 / 255.0 + 1e-6,
            "worst difference {} / 255",
            worst * 255.0
        );
    }

    fn itertools(c: usize, h: usize, w: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        (0..c).flat_map(move |c| (0..h).flat_map(move |y| (0..w).map(move |x| (c, y, x))))
    }

    #[test]
    fn npy_header() {
        let bytes = relevance::io::write_npy(&ndarray::arr1(&[1.0f32]).into_dyn());
        assert_eq!(npy_descr(&bytes).as_deref(), Some("<f4"));
    }
}
