//! Pixel flipping and region perturbation: MoRF and LeRF curves, AOPC and ABPC.

use super::curves::{OrderCurve, PerturbationCurves};
use super::invalid;
use super::regions::Regions;
use super::rng::{stream, SplitMix};
use crate::error::{Error, Result};
use crate::explain::Target;
use crate::float::Float;
use crate::network::Network;
use ndarray::{Array2, ArrayD, Axis, IxDyn};

/// What a perturbed region is replaced with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Perturbation<F: Float> {
    /// One value everywhere (0 is a black image for inputs in [0, 1]).
    Constant(F),
    /// The smallest value of the sample: Quantus' `perturb_baseline="black"` (the minimum
    /// of the sample being perturbed, which replacing by it never changes).
    SampleMin,
    /// The values of a reference image at the same places (a baseline, a mean image):
    /// the per-sample shape `[C, H, W]` for every sample, or the batch's shape.
    Reference(ArrayD<F>),
    /// Seeded noise, uniform in `[low, high)`, drawn once per sample (the same for every
    /// step and both orders; sample i's noise depends only on the seed and i).
    Uniform {
        /// Lower end.
        low: F,
        /// Upper end (at least `low`).
        high: F,
        /// The seed.
        seed: u64,
    },
    /// A local blur: the mean of the `(2r + 1)²` window around each pixel (cut off at the
    /// borders), per channel, of the unperturbed sample.
    Blur {
        /// The window's radius r (at least 1).
        radius: usize,
    },
}

/// The order in which regions are perturbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Most relevant first: the region with the largest summed relevance first (ties: the
    /// lower region index first).
    MoRF,
    /// Least relevant first: the smallest summed relevance first (ties: the lower index
    /// first).
    LeRF,
}

/// Which score of the target class the curves record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    /// The target logit (the network's output), Quantus' default (`softmax=False`).
    Logit,
    /// The softmax probability of the target class over the network's outputs.
    Probability,
}

/// Settings of pixel flipping (Bach et al. 2015) and region perturbation (Samek et al.
/// 2017): regions are ordered by their summed relevance and replaced by a
/// [`Perturbation`], a few per step, most relevant first (MoRF) and least relevant first
/// (LeRF); the target score is recorded before the first step and after each.
///
/// With `patch = 1`, `regions_per_step = s`, `Perturbation::SampleMin` and a one-channel
/// input the MoRF logit curve (without its first point) is Quantus 0.6.0's
/// `PixelFlipping(features_in_step=s, perturb_baseline="black")`; with `patch = k` and
/// `max_steps = Some(m)` the differences `f(x) − f(x_k)` of both curves are
/// `RegionPerturbation(patch_size=k, regions_evaluation=m, order="morf"/"lerf")` (the
/// region grid is [`Regions`]). Quantus breaks ties in relevance in NumPy's unstable sort
/// order; here ties go to the lower index.
///
/// ```
/// use ndarray::{array, Array4};
/// use relevance::eval::{Order, Perturbation, RegionPerturbation, Score};
/// use relevance::{Dense, Flatten, Network, Target};
/// # fn main() -> relevance::Result<()> {
/// // f(x) = 3·x0 + 1·x1 + 2·x2 + 0·x3 on a 1×2×2 image
/// let net = Network::<f64>::new(&[1, 2, 2], vec![
///     Box::new(Flatten),
///     Box::new(Dense::new(array![[3.0, 1.0, 2.0, 0.0]], None)?),
/// ])?;
/// let x = Array4::from_elem((1, 1, 2, 2), 1.0).into_dyn();
/// let r = array![[[[3.0, 1.0], [2.0, 0.0]]]].into_dyn(); // gradient × input
/// let settings = RegionPerturbation { perturbation: Perturbation::Constant(0.0), ..RegionPerturbation::pixel_flipping() };
/// let c = settings.evaluate(&net, &x, &r, &Target::Class(0))?;
/// assert_eq!(c.curve(Order::MoRF, Score::Logit).row(0).to_vec(), vec![6.0, 3.0, 1.0, 0.0, 0.0]);
/// assert_eq!(c.curve(Order::LeRF, Score::Logit).row(0).to_vec(), vec![6.0, 6.0, 5.0, 3.0, 0.0]);
/// // AOPC = mean over the 5 points of f(x) − f(x_k): (0 + 3 + 5 + 6 + 6) / 5
/// assert_eq!(c.aopc(Order::MoRF, Score::Logit)[0], 4.0);
/// assert_eq!(c.abpc(Score::Logit)[0], 4.0 - (0.0 + 0.0 + 1.0 + 3.0 + 6.0) / 5.0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RegionPerturbation<F: Float> {
    /// The side k of the square regions (1: single pixels).
    pub patch: usize,
    /// How many regions one step perturbs (Quantus' `features_in_step` for pixels).
    pub regions_per_step: usize,
    /// At most this many steps (Quantus' `regions_evaluation`); `None`: until every region
    /// is perturbed.
    pub max_steps: Option<usize>,
    /// What a perturbed region becomes.
    pub perturbation: Perturbation<F>,
    /// How many perturbed inputs at most go through one forward call (the steps of one
    /// sample are never split, so a call may be larger by one curve).
    pub batch_size: usize,
}

impl<F: Float> Default for RegionPerturbation<F> {
    fn default() -> Self {
        RegionPerturbation::pixel_flipping()
    }
}

impl<F: Float> RegionPerturbation<F> {
    /// Pixel flipping: one pixel per step until all are replaced by the sample's minimum
    /// (Quantus' "black").
    pub fn pixel_flipping() -> Self {
        RegionPerturbation::patches(1)
    }

    /// Region perturbation with `k × k` patches, one per step, every region, replaced by
    /// the sample's minimum.
    pub fn patches(k: usize) -> Self {
        RegionPerturbation {
            patch: k,
            regions_per_step: 1,
            max_steps: None,
            perturbation: Perturbation::SampleMin,
            batch_size: 4096,
        }
    }

    /// Perturbs `x` in the order `attribution` gives and records the target score.
    ///
    /// # Shapes
    /// `x` and `attribution` `[N, C, H, W]` (also `[N, H, W]`, or `[N, D]` as one row of D
    /// pixels); the curves are `[N, L + 1]` for L steps.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero patch, a patch larger than the image, zero
    /// regions per step, zero steps, a zero batch size, `low > high` or a zero blur radius;
    /// [`Error::Shape`]/[`Error::Rank`] for an attribution or reference of another shape;
    /// [`Error::NonFinite`] for NaN or ∞ in the attribution or reference;
    /// [`Error::Unsupported`] for [`Target::Relevance`]; whatever [`Network::forward`]
    /// reports for an input it cannot take; target errors as [`Network::attribute`].
    pub fn evaluate(
        &self,
        net: &Network<F>,
        x: &ArrayD<F>,
        attribution: &ArrayD<F>,
        target: &Target<F>,
    ) -> Result<PerturbationCurves<F>> {
        let m = self.measure(net, x, attribution, target, &[Order::MoRF, Order::LeRF])?;
        let [(morf, morf_probability), (lerf, lerf_probability)]: [(Array2<F>, Array2<F>); 2] =
            m.curves.try_into().expect("two orders measured");
        Ok(PerturbationCurves {
            morf,
            lerf,
            morf_probability,
            lerf_probability,
            perturbed: m.perturbed,
            regions: m.regions,
        })
    }

    /// Perturbs `x` in one order only: half the work of [`evaluate`](Self::evaluate) when
    /// only one curve is wanted (Quantus' `PixelFlipping` measures MoRF only).
    ///
    /// ```
    /// use ndarray::{array, Array4};
    /// use relevance::eval::{Order, Perturbation, RegionPerturbation, Score};
    /// use relevance::{Dense, Flatten, Network, Target};
    /// # fn main() -> relevance::Result<()> {
    /// let net = Network::<f64>::new(&[1, 2, 2], vec![
    ///     Box::new(Flatten),
    ///     Box::new(Dense::new(array![[3.0, 1.0, 2.0, 0.0]], None)?),
    /// ])?;
    /// let x = Array4::from_elem((1, 1, 2, 2), 1.0).into_dyn();
    /// let r = array![[[[3.0, 1.0], [2.0, 0.0]]]].into_dyn();
    /// let settings = RegionPerturbation { perturbation: Perturbation::Constant(0.0), ..RegionPerturbation::pixel_flipping() };
    /// let morf = settings.evaluate_order(&net, &x, &r, &Target::Class(0), Order::MoRF)?;
    /// assert_eq!(morf.curve(Score::Logit).row(0).to_vec(), vec![6.0, 3.0, 1.0, 0.0, 0.0]);
    /// assert_eq!(morf.aopc(Score::Logit)[0], 4.0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`evaluate`](Self::evaluate).
    pub fn evaluate_order(
        &self,
        net: &Network<F>,
        x: &ArrayD<F>,
        attribution: &ArrayD<F>,
        target: &Target<F>,
        order: Order,
    ) -> Result<OrderCurve<F>> {
        let mut m = self.measure(net, x, attribution, target, &[order])?;
        let (logit, probability) = m.curves.pop().expect("one order measured");
        Ok(OrderCurve {
            order,
            logit,
            probability,
            perturbed: m.perturbed,
            regions: m.regions,
        })
    }

    /// The curves of the given orders, in that order.
    fn measure(
        &self,
        net: &Network<F>,
        x: &ArrayD<F>,
        attribution: &ArrayD<F>,
        target: &Target<F>,
        orders: &[Order],
    ) -> Result<Measured<F>> {
        let (c, h, w) = image_dims(x)?;
        self.check()?;
        if attribution.shape() != x.shape() {
            return Err(Error::Shape {
                what: "attribution (the input's shape)".into(),
                expected: x.shape().to_vec(),
                got: attribution.shape().to_vec(),
            });
        }
        crate::tensor::checks::check_finite("attribution", &attribution.view())?;
        let n = x.shape()[0];
        let predicted;
        let target = match target {
            Target::Predicted => {
                predicted = Target::PerSample(net.predict(x)?);
                &predicted
            }
            t => t,
        };
        let classes = class_targets(net, target, n)?;
        let regions = Regions::new(h, w, self.patch)?;
        let steps = regions.len().div_ceil(self.regions_per_step);
        let steps = self.max_steps.map_or(steps, |m| m.min(steps));
        let replacement = self.replacements(x, (c, h, w))?;
        let d = c * h * w;

        // every (sample, order) is one curve of steps + 1 inputs
        let xs = x.as_standard_layout();
        let xs = crate::tensor::layout::standard(&xs);
        let a = attribution.as_standard_layout();
        let a = crate::tensor::layout::standard(&a);
        let jobs: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (0..orders.len()).map(move |o| (i, o)))
            .collect();
        let points = steps + 1;
        let mut curves: Vec<(Array2<F>, Array2<F>)> = orders
            .iter()
            .map(|_| (Array2::zeros((n, points)), Array2::zeros((n, points))))
            .collect();
        let per_call = (self.batch_size / points).max(1);
        let mut shape = x.shape().to_vec();
        for group in jobs.chunks(per_call) {
            // a step that changes nothing (a region that already holds its replacement, as
            // the black background of a digit) reuses the previous input's row: the output
            // of a sample does not depend on its batch, so the curve is the same
            let mut buffer: Vec<F> = Vec::with_capacity(group.len() * points * d);
            let mut rows: Vec<usize> = Vec::with_capacity(group.len() * points);
            for &(i, o) in group {
                let sample = &xs[i * d..(i + 1) * d];
                let ranked = rank_regions(&regions, &a[i * d..(i + 1) * d], (c, h, w), orders[o]);
                let mut current = sample.to_vec();
                buffer.extend_from_slice(&current);
                rows.push(buffer.len() / d - 1);
                for step in ranked.chunks(self.regions_per_step).take(steps) {
                    let mut changed = false;
                    for &r in step {
                        let cols = regions.cols(r);
                        for ch in 0..c {
                            for row in regions.rows(r) {
                                let at = ch * h * w + row * w;
                                let (from, to) = (at + cols.start, at + cols.end);
                                if current[from..to] != replacement[i][from..to] {
                                    current[from..to].copy_from_slice(&replacement[i][from..to]);
                                    changed = true;
                                }
                            }
                        }
                    }
                    if changed {
                        buffer.extend_from_slice(&current);
                    }
                    rows.push(buffer.len() / d - 1);
                }
            }
            shape[0] = buffer.len() / d;
            let batch = crate::tensor::layout::shaped(IxDyn(&shape), buffer);
            let out = net.forward(&batch)?;
            let out = out
                .into_shape_with_order((shape[0], classes.len_outputs))
                .map_err(|_| Error::Shape {
                    what: "network output".into(),
                    expected: vec![shape[0], classes.len_outputs],
                    got: vec![],
                })?;
            for (g, &(i, o)) in group.iter().enumerate() {
                let t = classes.per_sample[i];
                let (logit, prob) = &mut curves[o];
                for k in 0..points {
                    let row = out.row(rows[g * points + k]);
                    logit[[i, k]] = row[t];
                    prob[[i, k]] = softmax_at(crate::tensor::layout::standard(&row), t);
                }
            }
        }
        Ok(Measured {
            curves,
            perturbed: (0..points)
                .map(|k| (k * self.regions_per_step).min(regions.len()))
                .collect(),
            regions: regions.len(),
        })
    }

    fn check(&self) -> Result<()> {
        let what = "RegionPerturbation";
        if self.patch == 0 {
            return Err(invalid(what, "patch must be at least 1"));
        }
        if self.regions_per_step == 0 {
            return Err(invalid(what, "regions_per_step must be at least 1"));
        }
        if self.max_steps == Some(0) {
            return Err(invalid(what, "max_steps must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid(what, "batch_size must be at least 1"));
        }
        match &self.perturbation {
            Perturbation::Uniform { low, high, .. }
                if low > high || !low.is_finite() || !high.is_finite() =>
            {
                Err(invalid(
                    what,
                    format!("uniform noise needs finite low <= high, got [{low}, {high})"),
                ))
            }
            Perturbation::Constant(v) if !v.is_finite() => {
                Err(invalid(what, format!("constant {v} is not finite")))
            }
            Perturbation::Blur { radius: 0 } => Err(invalid(what, "the blur radius must be at least 1")),
            _ => Ok(()),
        }
    }

    /// Per sample, the values a perturbed region takes, flat `[C·H·W]`.
    fn replacements(&self, x: &ArrayD<F>, (c, h, w): (usize, usize, usize)) -> Result<Vec<Vec<F>>> {
        let n = x.shape()[0];
        let d = c * h * w;
        let samples = x
            .axis_iter(Axis(0))
            .map(|s| s.iter().copied().collect::<Vec<F>>());
        Ok(match &self.perturbation {
            Perturbation::Constant(v) => vec![vec![*v; d]; n],
            Perturbation::SampleMin => samples
                .map(|s| vec![s.iter().copied().fold(F::infinity(), F::min); d])
                .collect(),
            Perturbation::Reference(r) => {
                crate::tensor::checks::check_finite("perturbation reference", &r.view())?;
                if r.shape() == x.shape() {
                    r.axis_iter(Axis(0))
                        .map(|s| s.iter().copied().collect())
                        .collect()
                } else if r.shape() == crate::tensor::checks::per_sample(x.shape()) {
                    vec![r.iter().copied().collect(); n]
                } else {
                    return Err(Error::Shape {
                        what: "perturbation reference (one sample's shape or the batch's)".into(),
                        expected: x.shape()[1..].to_vec(),
                        got: r.shape().to_vec(),
                    });
                }
            }
            Perturbation::Uniform { low, high, seed } => (0..n)
                .map(|i| {
                    let mut g = SplitMix::new(stream(*seed, i as u64));
                    (0..d)
                        .map(|_| *low + (*high - *low) * F::lit(g.uniform()))
                        .collect()
                })
                .collect(),
            Perturbation::Blur { radius } => samples.map(|s| box_blur(&s, (c, h, w), *radius)).collect(),
        })
    }
}

/// What `measure` returns: per order, the logit and probability curves.
struct Measured<F: Float> {
    curves: Vec<(Array2<F>, Array2<F>)>,
    perturbed: Vec<usize>,
    regions: usize,
}

/// `(C, H, W)` of a batch `[N, C..., H, W]`, `[N, H, W]` or `[N, D]`.
fn image_dims<F: Float>(x: &ArrayD<F>) -> Result<(usize, usize, usize)> {
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::Rank {
            what: "input to perturb ([N, C, H, W], [N, H, W] or [N, D])".into(),
            expected: 4,
            got: s.len(),
            shape: s.to_vec(),
        });
    }
    if s[0] == 0 {
        return Err(Error::EmptyBatch);
    }
    Ok(match s.len() {
        2 => (1, 1, s[1]),
        r => (s[1..r - 2].iter().product(), s[r - 2], s[r - 1]),
    })
}

/// The target class per sample, checked.
pub(crate) struct Classes {
    pub(crate) per_sample: Vec<usize>,
    pub(crate) len_outputs: usize,
}

/// The class of each sample of a batch of `n`, checked against the network's outputs.
pub(crate) fn class_targets<F: Float>(net: &Network<F>, target: &Target<F>, n: usize) -> Result<Classes> {
    let len_outputs: usize = net.output_shape().iter().product();
    let per_sample = match target {
        Target::Class(c) => vec![*c; n],
        Target::PerSample(v) if v.len() == n => v.clone(),
        Target::PerSample(v) => {
            return Err(Error::BatchMismatch {
                what: "per-sample targets".into(),
                batch: n,
                got: v.len(),
            })
        }
        Target::Relevance(_) | Target::Predicted => {
            return Err(Error::Unsupported {
                rule: "perturbation evaluation".into(),
                reason: "needs a target class per sample, not a starting relevance".into(),
            })
        }
    };
    if let Some((sample, &class)) = per_sample.iter().enumerate().find(|&(_, &c)| c >= len_outputs) {
        return Err(Error::TargetOutOfRange {
            sample,
            class,
            classes: len_outputs,
        });
    }
    Ok(Classes {
        per_sample,
        len_outputs,
    })
}

/// Region indices in perturbation order: by summed relevance (over channels and the
/// region), descending for MoRF, ascending for LeRF, ties by index (a stable sort).
fn rank_regions<F: Float>(
    regions: &Regions,
    a: &[F],
    (c, h, w): (usize, usize, usize),
    order: Order,
) -> Vec<usize> {
    let sums: Vec<F> = (0..regions.len())
        .map(|r| {
            let mut s = F::zero();
            for ch in 0..c {
                for row in regions.rows(r) {
                    let at = ch * h * w + row * w;
                    s += a[at + regions.cols(r).start..at + regions.cols(r).end]
                        .iter()
                        .fold(F::zero(), |t, &v| t + v);
                }
            }
            s
        })
        .collect();
    let mut idx: Vec<usize> = (0..regions.len()).collect();
    // finite sums (the attribution was checked), so partial_cmp never fails
    match order {
        Order::MoRF => {
            idx.sort_by(|&p, &q| sums[q].partial_cmp(&sums[p]).unwrap_or(std::cmp::Ordering::Equal))
        }
        Order::LeRF => {
            idx.sort_by(|&p, &q| sums[p].partial_cmp(&sums[q]).unwrap_or(std::cmp::Ordering::Equal))
        }
    }
    idx
}

/// The softmax probability of class `t` over one row of outputs.
fn softmax_at<F: Float>(row: &[F], t: usize) -> F {
    let max = row.iter().copied().fold(F::neg_infinity(), F::max);
    let sum = row.iter().fold(F::zero(), |s, &v| s + (v - max).exp());
    (row[t] - max).exp() / sum
}

/// The mean over the `(2r + 1)²` window of each pixel, cut off at the borders, per channel.
fn box_blur<F: Float>(s: &[F], (c, h, w): (usize, usize, usize), r: usize) -> Vec<F> {
    let mut out = vec![F::zero(); s.len()];
    for ch in 0..c {
        let img = &s[ch * h * w..(ch + 1) * h * w];
        for i in 0..h {
            for j in 0..w {
                let (rows, cols) = (
                    i.saturating_sub(r)..(i + r + 1).min(h),
                    j.saturating_sub(r)..(j + r + 1).min(w),
                );
                let count = F::lit((rows.len() * cols.len()) as f64);
                let total = rows
                    .flat_map(|y| img[y * w + cols.start..y * w + cols.end].iter().copied())
                    .fold(F::zero(), |t, v| t + v);
                out[ch * h * w + i * w + j] = total / count;
            }
        }
    }
    out
}
