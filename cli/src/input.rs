//! Inputs through the library's `relevance::image`: images (PNG, JPEG) resized,
//! centre-cropped, scaled to [0, 1] and normalised by a mean/std preset, and `.npy` arrays
//! (uint8 ones scaled to [0, 1] with a note). This file only adds the CLI's messages.

use ndarray::ArrayD;
pub use relevance::image::Preprocess;
use relevance::image::{fit_shape, load_image, read_npy_input};
use std::path::Path;

/// A loaded input: the per-sample array the model takes, and what happened on the way.
pub struct Input {
    /// The model input for one sample (per-sample shape), normalised.
    pub x: ArrayD<f32>,
    /// The pixels in [0, 1] before normalisation, if it came from an image or a uint8 array.
    pub pixels: Option<ArrayD<f32>>,
    /// Warnings to print.
    pub notes: Vec<String>,
}

/// The library's message for a bad preprocessing value, without the error kind's prefix.
fn reason(e: relevance::Error) -> String {
    match e {
        relevance::Error::InvalidParameter { reason, .. } => reason,
        e => e.to_string(),
    }
}

/// Parses `--preprocess` (clap's value parser).
pub fn parse_preprocess(text: &str) -> Result<Preprocess, String> {
    Preprocess::parse(text).map_err(reason)
}

/// The z^B bounds of `pre` for a per-sample input shape, as a usage error naming the flag.
pub fn bounds(pre: &Preprocess, shape: &[usize]) -> Result<(ArrayD<f32>, ArrayD<f32>), String> {
    pre.bounds::<f32>(shape)
        .map_err(|e| format!("--preprocess {}: {}", pre.name(), reason(e)))
}

/// Reads a `.npy` input of the per-sample shape `shape` (a leading batch axis of 1, or a
/// missing channel axis of 1, is accepted). Float arrays are taken as they are (already
/// preprocessed); a uint8 array is scaled to [0, 1] and normalised with `pre`, with a note.
pub fn load_npy_input(path: &Path, shape: &[usize], pre: &Preprocess) -> Result<Input, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    // scaled (uint8) but not yet normalised: the shape is fixed first, so a wrong shape is
    // reported as such and not as a channel mismatch of the preprocessing
    let read = read_npy_input::<f32>(&bytes, &Preprocess::none())
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let read_shape = read.input.shape().to_vec();
    let mut x = fit_shape(read.input, shape).map_err(|_| {
        format!(
            "{shown}: an array of shape {:?} does not fit the model's input {shape:?} (a leading batch axis of 1 is allowed); resize it, or give the shape with --input-shape if the model's is symbolic",
            read_shape
        )
    })?;
    let mut notes = Vec::new();
    let pixels = if read.scaled_uint8 {
        notes.push(format!(
            "{shown}: uint8 array taken as pixels: scaled to [0, 1] and normalised with --preprocess {}",
            pre.name()
        ));
        let p = x.clone();
        pre.normalize(&mut x)
            .map_err(|e| format!("{shown}: --preprocess {}: {}", pre.name(), reason(e)))?;
        Some(p)
    } else {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        if max > 10.0 && pre.name() != "none" {
            notes.push(format!(
                "{shown}: values up to {max}; float arrays are taken as already preprocessed (--preprocess {} is not applied)",
                pre.name()
            ));
        }
        None
    };
    Ok(Input { x, pixels, notes })
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
            if !matches!(shape, [1 | 3, _, _]) {
                return Err(format!(
                    "{}: the model's input {shape:?} is not an image [C, H, W] with 1 or 3 channels; give a .npy array of that shape",
                    path.display()
                ));
            }
            let img = load_image::<f32>(path, shape, pre).map_err(|e| match e {
                relevance::Error::InvalidParameter { reason, .. } => {
                    format!("{}: --preprocess {}: {reason}", path.display(), pre.name())
                }
                e => e.to_string(),
            })?;
            let mut notes = Vec::new();
            if let Some((w, h)) = img.resized {
                notes.push(format!(
                    "{}: resized from {}×{} to {w}×{h} and centre-cropped to {}×{}",
                    path.display(),
                    img.original.0,
                    img.original.1,
                    shape[2],
                    shape[1]
                ));
            }
            Ok(Input {
                x: img.input,
                pixels: Some(img.pixels),
                notes,
            })
        }
        _ => Err(format!(
            "{}: unknown input type; give a .png, .jpg/.jpeg image or a .npy array",
            path.display()
        )),
    }
}
