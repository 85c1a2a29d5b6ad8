//! Targets and seeds: which output is explained and the starting relevance made from it;
//! predictions (`predict`, `top_k`).

use crate::error::{Error, Result};
use crate::float::Float;
use crate::network::Network;
use crate::tensor::numerics::per_sample_sum;
use ndarray::{Array1, ArrayD, ArrayViewD, Axis, Slice};
use std::ops::Range;

/// Which output to explain.
#[derive(Debug, Clone, PartialEq)]
pub enum Target<F: Float = f32> {
    /// The same class for every sample of the batch.
    Class(usize),
    /// One class per sample.
    PerSample(Vec<usize>),
    /// The starting relevance itself, `[N, outputs]` (or the output's full shape); used as
    /// given, whatever [`Seed`] says.
    Relevance(ArrayD<F>),
    /// For each sample the class the network predicts (the first largest output, as
    /// `argmax`); [`Network::predict`] gives those classes.
    Predicted,
}

/// How the starting relevance is made from a class target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Seed {
    /// The method's own convention (the default): [`Seed::Logit`] for LRP rule sets
    /// (also [`Network::attribute`] with [`Gradient`](crate::Gradient) as a rule set), and
    /// [`Seed::OneHot`] for [`Method::Gradient`](crate::Method::Gradient),
    /// [`Method::GradientTimesInput`](crate::Method::GradientTimesInput) and DeepLIFT (whose
    /// attributions then sum to `f_c(x) − f_c(x̄)`).
    #[default]
    Method,
    /// `R = f_c(x)` at the target class, 0 elsewhere (captum's convention and zennit's
    /// `output * one_hot`; the LRP default). With it LRP-0 on a ReLU network equals
    /// gradient × input.
    Logit,
    /// `R = 1` at the target class, 0 elsewhere (zennit's usual `one_hot`).
    OneHot,
}

impl<F: Float> Network<F> {
    /// The starting relevance for `target` at `output`.
    pub(crate) fn seed(&self, output: &ArrayD<F>, target: &Target<F>, seed: Seed) -> Result<ArrayD<F>> {
        let n = output.shape()[0];
        self.check_target(n, target)?;
        let per_sample: Vec<usize> = match target {
            Target::Relevance(r) => return Ok(r.clone()),
            Target::Class(c) => vec![*c; n],
            Target::PerSample(v) => v.clone(),
            Target::Predicted => argmax_rows(output),
        };
        let mut r = ArrayD::<F>::zeros(output.raw_dim());
        for (&class, (mut rs, os)) in per_sample
            .iter()
            .zip(r.axis_iter_mut(Axis(0)).zip(output.axis_iter(Axis(0))))
        {
            let rs = crate::tensor::layout::standard_mut(&mut rs);
            let os = os.as_standard_layout();
            rs[class] = match seed {
                Seed::OneHot => F::one(),
                Seed::Logit | Seed::Method => crate::tensor::layout::standard(&os)[class],
            };
        }
        Ok(r)
    }

    /// Checks a target against a batch of `n` samples, before the batch is split.
    pub(crate) fn check_target(&self, n: usize, target: &Target<F>) -> Result<()> {
        let classes: usize = self.output_shape().iter().product();
        match target {
            Target::Class(c) if *c >= classes => Err(Error::TargetOutOfRange {
                sample: 0,
                class: *c,
                classes,
            }),
            Target::PerSample(v) if v.len() != n => Err(Error::BatchMismatch {
                what: "per-sample targets".into(),
                batch: n,
                got: v.len(),
            }),
            Target::PerSample(v) => match v.iter().position(|&c| c >= classes) {
                Some(sample) => Err(Error::TargetOutOfRange {
                    sample,
                    class: v[sample],
                    classes,
                }),
                None => Ok(()),
            },
            Target::Relevance(r) => {
                let mut expected = vec![n];
                expected.extend_from_slice(self.output_shape());
                if r.shape() != expected.as_slice() {
                    return Err(Error::Shape {
                        what: "target relevance (must have the output's shape)".into(),
                        expected,
                        got: r.shape().to_vec(),
                    });
                }
                crate::tensor::checks::check_finite("target relevance", &r.view())
            }
            Target::Class(_) | Target::Predicted => Ok(()),
        }
    }
}

/// The first largest output of each sample (NaN never wins).
pub(crate) fn argmax_rows<F: Float>(output: &ArrayD<F>) -> Vec<usize> {
    output
        .axis_iter(Axis(0))
        .map(|row| {
            let mut best: Option<(usize, F)> = None;
            for (i, &v) in row.iter().enumerate() {
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some((i, v));
                }
            }
            best.map_or(0, |(i, _)| i)
        })
        .collect()
}

impl<F: Float> Network<F> {
    /// The class each sample is predicted as: the index of its first largest output.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Dense, Network};
    /// # fn main() -> relevance::Result<()> {
    /// let net = Network::new(&[2], vec![Box::new(Dense::new(array![[1.0, 0.0], [0.0, 1.0]], None)?)])?;
    /// assert_eq!(net.predict(&array![[0.2, 0.9], [3.0, -1.0]].into_dyn())?, vec![1, 0]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Network::forward`].
    pub fn predict(&self, x: &ArrayD<F>) -> Result<Vec<usize>> {
        Ok(argmax_rows(&self.forward(x)?))
    }

    /// The `k` most likely classes of each sample with their outputs, largest first (ties:
    /// the lower class first), as `torch.topk` on the logits. Explain the r-th of them with
    /// `Target::PerSample(top.iter().map(|t| t[r].0).collect())`.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Dense, Network};
    /// # fn main() -> relevance::Result<()> {
    /// let net = Network::new(&[3], vec![Box::new(Dense::new(array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], None)?)])?;
    /// let top = net.top_k(&array![[0.2, 0.9, 0.5]].into_dyn(), 2)?;
    /// assert_eq!(top, vec![vec![(1, 0.9), (2, 0.5)]]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `k` is 0 or more than the network's outputs; as
    /// [`Network::forward`].
    pub fn top_k(&self, x: &ArrayD<F>, k: usize) -> Result<Vec<Vec<(usize, F)>>> {
        let outputs: usize = self.output_shape().iter().product();
        if k == 0 || k > outputs {
            return Err(Error::InvalidParameter {
                rule: "top_k",
                reason: format!("k must be in 1..={outputs} (the network's outputs), got {k}"),
            });
        }
        let out = self.forward(x)?;
        let n = out.shape()[0];
        let flat = out.as_standard_layout();
        let flat = crate::tensor::layout::standard(&flat);
        Ok((0..n)
            .map(|i| {
                let row = &flat[i * outputs..(i + 1) * outputs];
                let mut idx: Vec<usize> = (0..outputs).collect();
                // finite outputs (forward checks), so the comparison is total
                idx.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap_or(std::cmp::Ordering::Equal));
                idx.into_iter().take(k).map(|c| (c, row[c])).collect()
            })
            .collect())
    }
}

/// The rows `rows` of a target, for one part of a split batch.
pub(crate) fn target_rows<F: Float>(target: &Target<F>, rows: Range<usize>) -> Target<F> {
    match target {
        Target::Class(c) => Target::Class(*c),
        Target::PerSample(v) => Target::PerSample(v[rows].to_vec()),
        Target::Relevance(r) => Target::Relevance(r.slice_axis(Axis(0), Slice::from(rows)).to_owned()),
        Target::Predicted => Target::Predicted,
    }
}

/// Sum of an array's values per sample (over all but the first axis).
pub fn sum_per_sample<F: Float>(a: &ArrayViewD<'_, F>) -> Array1<F> {
    per_sample_sum(a)
}
