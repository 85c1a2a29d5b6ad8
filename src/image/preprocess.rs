//! Mean/std normalisation presets, the resize ratio and the z^B bounds they imply.

use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, Axis, IxDyn};

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        rule: "Preprocess",
        reason: reason.into(),
    }
}

/// Mean/std normalisation applied after scaling pixels to [0, 1], `x' = (x − mean) / std`
/// per channel, and the resize ratio of torchvision's evaluation transform.
///
/// One mean or std value applies to every channel.
///
/// ```
/// use relevance::image::Preprocess;
/// # fn main() -> relevance::Result<()> {
/// let p = Preprocess::parse("mean=0.5,0.5,0.5,std=0.25,0.25,0.25")?;
/// assert_eq!(p.mean(), &[0.5, 0.5, 0.5]);
/// assert_eq!(Preprocess::parse("imagenet")?, Preprocess::imagenet());
/// assert!(Preprocess::new(&[0.5], &[0.0]).is_err()); // std must be positive
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    name: String,
    mean: Vec<f64>,
    std: Vec<f64>,
    resize_ratio: f64,
}

impl Preprocess {
    /// torchvision's ImageNet recipe: `Resize(256)`, `CenterCrop(224)` (ratio 256/224),
    /// mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    pub fn imagenet() -> Preprocess {
        Preprocess {
            name: "imagenet".into(),
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
            resize_ratio: 256.0 / 224.0,
        }
    }

    /// The usual MNIST normalisation, mean 0.1307 and std 0.3081, no extra resize margin.
    pub fn mnist() -> Preprocess {
        Preprocess {
            name: "mnist".into(),
            mean: vec![0.1307],
            std: vec![0.3081],
            resize_ratio: 1.0,
        }
    }

    /// Pixels in [0, 1], not normalised (the bundled digits model's input).
    pub fn none() -> Preprocess {
        Preprocess {
            name: "none".into(),
            mean: vec![0.0],
            std: vec![1.0],
            resize_ratio: 1.0,
        }
    }

    /// A custom normalisation (one value per channel, or one for all), resize ratio 1.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for empty lists, non-finite values, a std that is not
    /// positive, or two lists of different lengths neither of which has one value.
    pub fn new(mean: &[f64], std: &[f64]) -> Result<Preprocess> {
        if mean.is_empty() || std.is_empty() {
            return Err(invalid("mean and std need at least one value each"));
        }
        if mean.iter().chain(std).any(|v| !v.is_finite()) {
            return Err(invalid(format!("mean {mean:?} and std {std:?} must be finite")));
        }
        if std.iter().any(|&s| s <= 0.0) {
            return Err(invalid(format!("every std must be positive, got {std:?}")));
        }
        if mean.len() != std.len() && mean.len() != 1 && std.len() != 1 {
            return Err(invalid(format!(
                "mean has {} values and std {}: give one per channel (or one for all)",
                mean.len(),
                std.len()
            )));
        }
        Ok(Preprocess {
            name: "custom".into(),
            mean: mean.to_vec(),
            std: std.to_vec(),
            resize_ratio: 1.0,
        })
    }

    /// The same normalisation with another resize ratio: the shorter side is resized to
    /// `round(max(H, W) · ratio)` before the centre crop to `H × W` (1: no margin).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `1 ≤ ratio ≤ 16`.
    pub fn with_resize_ratio(mut self, ratio: f64) -> Result<Preprocess> {
        if !(1.0..=16.0).contains(&ratio) {
            return Err(invalid(format!("resize ratio {ratio} must be in [1, 16]")));
        }
        self.resize_ratio = ratio;
        Ok(self)
    }

    /// Parses `imagenet`, `mnist`, `none`, or `mean=M1,M2,..,std=S1,S2,..` (values for
    /// pixels in [0, 1]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the choices for anything else.
    pub fn parse(text: &str) -> Result<Preprocess> {
        match text.trim() {
            "imagenet" => return Ok(Preprocess::imagenet()),
            "mnist" => return Ok(Preprocess::mnist()),
            "none" => return Ok(Preprocess::none()),
            _ => {}
        }
        let usage =
            "choose imagenet, mnist, none, or give mean=M1,M2,M3,std=S1,S2,S3 (values for pixels in [0, 1])";
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        let mut current: Option<&mut Vec<f64>> = None;
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
                .ok_or_else(|| invalid(format!("unknown preset {text:?}; {usage}")))?;
            let v: f64 = value
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| invalid(format!("{value:?} is not a number; {usage}")))?;
            list.push(v);
        }
        if mean.is_empty() || std.is_empty() {
            return Err(invalid(format!("both mean= and std= are needed; {usage}")));
        }
        Preprocess::new(&mean, &std)
    }

    /// The preset's name: `imagenet`, `mnist`, `none` or `custom`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The means as given (one per channel, or one for all).
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The standard deviations as given.
    pub fn std(&self) -> &[f64] {
        &self.std
    }

    /// The resize ratio (see [`with_resize_ratio`](Self::with_resize_ratio)).
    pub fn resize_ratio(&self) -> f64 {
        self.resize_ratio
    }

    /// Mean and std for each of `channels` channels.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if a list has neither one value nor one per channel.
    pub fn per_channel(&self, channels: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        let expand = |values: &[f64], what: &str| {
            match values.len() {
            1 => Ok(vec![values[0]; channels]),
            n if n == channels => Ok(values.to_vec()),
            n => Err(invalid(format!(
                "the {} preprocessing has {n} {what} values, which do not fit an input of {channels} channel(s): give one value, or one per channel",
                self.name
            ))),        }
        };
        Ok((expand(&self.mean, "mean")?, expand(&self.std, "std")?))
    }

    /// z^B's bounds for this normalisation: the normalised images of pixel values 0 and 1,
    /// `(0 − mean)/std` and `(1 − mean)/std`, shaped `[C, 1, 1]` for a per-sample input
    /// shape `[C, H, W]` (they broadcast over the image), else scalars (one mean and std).
    /// Pass them to [`Composite::epsilon_gamma_box`](crate::Composite::epsilon_gamma_box)
    /// or [`LrpZBox`](crate::LrpZBox).
    ///
    /// # Errors
    /// As [`per_channel`](Self::per_channel).
    pub fn bounds<F: Float>(&self, input_shape: &[usize]) -> Result<(ArrayD<F>, ArrayD<F>)> {
        let image = input_shape.len() == 3;
        let channels = if image { input_shape[0] } else { 1 };
        let (mean, std) = self.per_channel(channels)?;
        let shape = if image {
            IxDyn(&[channels, 1, 1])
        } else {
            IxDyn(&[])
        };
        let make = |pixel: f64| {
            ArrayD::from_shape_vec(
                shape.clone(),
                (0..channels)
                    .map(|c| F::lit((pixel - mean[c]) / std[c]))
                    .collect(),
            )
            .expect("one value per channel")
        };
        Ok((make(0.0), make(1.0)))
    }

    /// Normalises pixel values in [0, 1] in place: `x` is one sample `[C, H, W]`, a batch
    /// `[N, C, H, W]`, or any other shape with one mean and std.
    ///
    /// # Errors
    /// As [`per_channel`](Self::per_channel) for the channel count of `x`.
    pub fn normalize<F: Float>(&self, x: &mut ArrayD<F>) -> Result<()> {
        self.affine(x, |v, m, s| (v - m) / s)
    }

    /// Undoes [`normalize`](Self::normalize) (to show a model input as an image).
    ///
    /// # Errors
    /// As [`normalize`](Self::normalize).
    pub fn denormalize<F: Float>(&self, x: &mut ArrayD<F>) -> Result<()> {
        self.affine(x, |v, m, s| v * s + m)
    }

    fn affine<F: Float>(&self, x: &mut ArrayD<F>, f: impl Fn(F, F, F) -> F) -> Result<()> {
        let channel_axis = match x.ndim() {
            3 => Some(0),
            4 => Some(1),
            _ => None,
        };
        let channels = channel_axis.map_or(1, |a| x.shape()[a]);
        let (mean, std) = self.per_channel(channels)?;
        let (mean, std): (Vec<F>, Vec<F>) = (
            mean.iter().map(|&v| F::lit(v)).collect(),
            std.iter().map(|&v| F::lit(v)).collect(),
        );
        match channel_axis {
            Some(a) => {
                for (c, mut plane) in x.axis_iter_mut(Axis(a)).enumerate() {
                    plane.mapv_inplace(|v| f(v, mean[c], std[c]));
                }
            }
            None => x.mapv_inplace(|v| f(v, mean[0], std[0])),
        }
        Ok(())
    }
}
