//! The models `relevance serve` explains: loaded once at start, each with its preprocessing,
//! class names and what the page may do with it (draw on it, or drop images).

use crate::input::Preprocess;
use crate::model::load_model;
use crate::{Failure, ModelArgs};
use ndarray::{ArrayD, Axis};
use relevance::io::{from_onnx, Digits};
use relevance::Network;
use std::path::PathBuf;

/// The bundled digits model and its 500 held-out test digits, inside the binary: the
/// server reads no file but the models it is given.
const DIGITS_ONNX: &[u8] = include_bytes!("../../../models/digits.onnx");
const DIGITS_TEST: &[u8] = include_bytes!("../../../data/digits_test.bin");

/// One model as the server holds it.
pub struct ServedModel {
    /// Shown in the model picker: the file name, or "digits (bundled)".
    pub name: String,
    pub net: Network<f32>,
    pub preprocess: Preprocess,
    /// Class names (one per output; numbers where none were given).
    pub labels: Vec<String>,
    /// z^B's bounds: the normalised images of pixel values 0 and 1.
    pub bounds: Option<(ArrayD<f32>, ArrayD<f32>)>,
    /// A mean input (the mean test digit for the bundled model), DeepLIFT's "mean" baseline;
    /// without one the input's own per-channel mean is used.
    pub mean_input: Option<ArrayD<f32>>,
    /// Example inputs (pixels in [0, 1], per-sample shape) the page can pick from.
    pub samples: Vec<(String, ArrayD<f32>)>,
    /// Importer notes printed at start.
    pub notes: Vec<String>,
}

impl ServedModel {
    /// The per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        self.net.input_shape()
    }

    /// Whether a drawing can be its input: one-channel images `[1, H, W]`.
    pub fn drawable(&self) -> bool {
        matches!(self.input_shape(), [1, _, _])
    }

    /// Whether images (PNG, JPEG) can be its input: `[1 | 3, H, W]`.
    pub fn takes_images(&self) -> bool {
        matches!(self.input_shape(), [1 | 3, _, _])
    }

    /// The number of classes (outputs per sample).
    pub fn classes(&self) -> usize {
        self.net.output_shape().iter().product()
    }

    /// The bundled digits CNN (28 × 28 grey digits in [0, 1]), with ten test digits as
    /// examples and the mean of the 500 test digits.
    pub fn bundled_digits() -> Result<ServedModel, Failure> {
        let net = from_onnx::<f32>(DIGITS_ONNX)
            .map_err(|e| Failure::Run(format!("the bundled digits model does not load: {e}")))?;
        let digits = Digits::from_bytes(DIGITS_TEST)
            .map_err(|e| Failure::Run(format!("the bundled test digits do not load: {e}")))?;
        let all = digits.all_images::<f32>();
        let mean_input = all.mean_axis(Axis(0));
        let samples = (0..10u8)
            .filter_map(|c| digits.labels().iter().position(|&l| l == c))
            .map(|i| {
                let img = all.index_axis(Axis(0), i).to_owned();
                (format!("test digit {i} (a {})", digits.labels()[i]), img)
            })
            .collect();
        let preprocess = Preprocess::none();
        let bounds = preprocess.bounds::<f32>(net.input_shape()).ok();
        Ok(ServedModel {
            name: "digits (bundled CNN, 28×28)".into(),
            labels: (0..10).map(|c| c.to_string()).collect(),
            net,
            preprocess,
            bounds,
            mean_input,
            samples,
            notes: Vec::new(),
        })
    }

    /// A model from a file, with its preprocessing and optional class names.
    pub fn load(
        args: &ModelArgs,
        preprocess: Preprocess,
        labels: Option<&PathBuf>,
    ) -> Result<ServedModel, Failure> {
        let model = load_model(args, None)?;
        let net = model.net;
        let classes: usize = net.output_shape().iter().product();
        let mut names: Vec<String> = match labels {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("cannot read the labels {}: {e}", path.display())))?
                .lines()
                .map(|l| l.trim().to_string())
                .collect(),
            None => Vec::new(),
        };
        names.truncate(classes);
        names.extend((names.len()..classes).map(|c| c.to_string()));
        let bounds = if matches!(net.input_shape(), [1 | 3, _, _]) {
            preprocess.bounds::<f32>(net.input_shape()).ok()
        } else {
            None
        };
        let name = args.model.file_name().map_or_else(
            || args.model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(ServedModel {
            name,
            net,
            preprocess,
            labels: names,
            bounds,
            mean_input: None,
            samples: Vec::new(),
            notes: model.notes,
        })
    }
}
