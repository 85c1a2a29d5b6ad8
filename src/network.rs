//! [`Network`]: a chain of layers checked at construction, its forward pass and trace, and
//! the attribution loop.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Layer, Step};
use crate::rules::RuleSet;
use crate::tensor::{
    check_batch_shape, check_finite, concat_batch, concat_layers, per_sample_sum, split_batch,
};
use ndarray::{Array1, ArrayD, ArrayViewD, Axis, Slice};
use std::ops::Range;

/// The largest number of elements one sample may have at any layer (2³⁰), so that a
/// mistaken configuration (huge padding, say) is an error at construction rather than an
/// enormous allocation at the first forward pass.
pub const MAX_SAMPLE_LEN: usize = 1 << 30;

/// A feed-forward chain of layers with a fixed per-sample input shape.
///
/// The shapes chain is checked layer by layer when the network is built, so a network that
/// exists can run any batch of the right input shape.
///
/// ```
/// use ndarray::array;
/// use relevance::{Dense, LrpEpsilon, Network, Relu, Target};
/// # fn main() -> relevance::Result<()> {
/// let net = Network::<f64>::new(&[2], vec![
///     Box::new(Dense::new(array![[1.0, -1.0], [0.5, 2.0]], Some(array![0.0, 0.5]))?),
///     Box::new(Relu),
///     Box::new(Dense::new(array![[1.0, 1.0]], None)?),
/// ])?;
/// let x = array![[2.0, 1.0]].into_dyn();
/// assert_eq!(net.forward(&x)?, array![[4.5]].into_dyn()); // relu(1) + relu(3.5)
/// let a = net.attribute(&x, &Target::Class(0), &LrpEpsilon::new(0.0)?)?;
/// // the output 4.5 is redistributed; the bias 0.5 of the second unit keeps its share
/// assert!((a.relevance.sum() - (4.5 - 0.5)).abs() < 1e-12);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Network<F: Float = f32> {
    /// Unique per network built (traced baselines remember which network recorded them).
    id: u64,
    layers: Vec<Box<dyn Layer<F>>>,
    /// `shapes[k]` is the per-sample input shape of layer k; the last is the output shape.
    shapes: Vec<Vec<usize>>,
    /// The trace of the all-zero input, recorded by the first DeepLIFT call that needs it.
    pub(crate) zero_trace: ZeroTrace<F>,
}

/// The one-row trace of the all-zero input, recorded once per network by the first
/// DeepLIFT call with [`Baseline::Zero`](crate::Baseline::Zero) and kept: it depends only
/// on the network (layers are pure functions of their input), so later calls skip the
/// baseline's forward pass, with bit-identical results.
pub(crate) struct ZeroTrace<F: Float>(pub(crate) std::sync::OnceLock<std::sync::Arc<Trace<F>>>);

impl<F: Float> std::fmt::Debug for ZeroTrace<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ZeroTrace(recorded)"
        } else {
            "ZeroTrace(not recorded)"
        })
    }
}

/// Every activation of one forward pass: `activations[0]` is the input, `activations[k + 1]`
/// the output of layer k.
#[derive(Debug, Clone)]
pub struct Trace<F: Float = f32> {
    /// The recorded activations, `L + 1` of them.
    pub activations: Vec<ArrayD<F>>,
}

impl<F: Float> Trace<F> {
    /// The network output (the last activation).
    pub fn output(&self) -> &ArrayD<F> {
        self.activations.last().expect("a trace holds at least the input")
    }
}

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
}

/// How the starting relevance is made from a class target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seed {
    /// `R = f_c(x)` at the target class, 0 elsewhere (the default; captum's convention and
    /// zennit's `output * one_hot`). With it LRP-0 on a ReLU network equals gradient × input.
    #[default]
    Logit,
    /// `R = 1` at the target class, 0 elsewhere (zennit's usual `one_hot`).
    OneHot,
}

/// Options of [`Network::attribute_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// How the starting relevance is made.
    pub seed: Seed,
    /// Keep the relevance at every layer's input in [`Attribution::layers`].
    pub keep_layers: bool,
}

/// The result of an attribution.
#[derive(Debug, Clone)]
pub struct Attribution<F: Float = f32> {
    /// Relevance at the input, with the input's shape `[N, ...]`.
    pub relevance: ArrayD<F>,
    /// The network output `[N, ...]`.
    pub output: ArrayD<F>,
    /// Total starting relevance per sample `[N]`.
    pub total: Array1<F>,
    /// Conservation gap per sample `[N]`: starting total minus the sum of input relevance.
    /// Zero for conservative rules without biases; biases and stabilisers absorb the rest.
    pub delta: Array1<F>,
    /// When asked for: `layers[k]` is the relevance at the input of layer k (so
    /// `layers[0] == relevance`), and `layers[L]` the starting relevance.
    pub layers: Option<Vec<ArrayD<F>>>,
}

impl<F: Float> Network<F> {
    /// Builds a network from its per-sample input shape (no batch dimension, e.g.
    /// `[1, 28, 28]` or `[784]`) and its layers, checking that the shapes chain.
    ///
    /// # Errors
    /// [`Error::EmptyNetwork`] for no layers; [`Error::AtLayer`] wrapping the shape error of
    /// the first layer that cannot take its input.
    pub fn new(input_shape: &[usize], layers: Vec<Box<dyn Layer<F>>>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::EmptyNetwork);
        }
        let len = input_shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if input_shape.is_empty() || input_shape.contains(&0) || len.is_none_or(|n| n > MAX_SAMPLE_LEN) {
            return Err(Error::Shape {
                what: "network input shape (per sample, no batch dimension)".into(),
                expected: vec![],
                got: input_shape.to_vec(),
            });
        }
        let mut shapes = vec![input_shape.to_vec()];
        for (i, layer) in layers.iter().enumerate() {
            let next = layer
                .output_shape(shapes.last().expect("non-empty"))
                .map_err(|e| e.at_layer(i, &layer.name()))?;
            if next.is_empty()
                || next.contains(&0)
                || next
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .is_none_or(|n| n > MAX_SAMPLE_LEN)
            {
                return Err(Error::Shape {
                    what: format!("layer output (per sample; at most {MAX_SAMPLE_LEN} elements, none zero)"),
                    expected: vec![],
                    got: next,
                }
                .at_layer(i, &layer.name()));
            }
            shapes.push(next);
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Network {
            id,
            layers,
            shapes,
            zero_trace: ZeroTrace(std::sync::OnceLock::new()),
        })
    }

    /// This network's unique identity (for traced baselines).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer<F>>] {
        &self.layers
    }

    /// The per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.shapes[0]
    }

    /// The per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        self.shapes.last().expect("non-empty")
    }

    /// The per-sample input shape of every layer, then the output shape (`L + 1` shapes).
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    fn check_input(&self, x: &ArrayD<F>) -> Result<()> {
        check_batch_shape("network input", &x.view(), self.input_shape())?;
        check_finite("network input", &x.view())
    }

    /// The forward pass.
    ///
    /// # Shapes
    /// `[N, input_shape...]` → `[N, output_shape...]`.
    ///
    /// # Errors
    /// A shape or rank error for an input of the wrong shape, [`Error::NonFinite`] for NaN
    /// or ∞ in it, [`Error::EmptyBatch`] for N = 0.
    pub fn forward(&self, x: &ArrayD<F>) -> Result<ArrayD<F>> {
        self.check_input(x)?;
        // Samples are independent: split the batch across threads (feature `parallel`).
        let parts = split_batch(x.shape()[0], |rows| {
            // keep only the current activation, not the whole trace
            let mut a = x.slice_axis(Axis(0), Slice::from(rows)).to_owned();
            for (i, layer) in self.layers.iter().enumerate() {
                let next = layer
                    .forward(a.view())
                    .map_err(|e| e.at_layer(i, &layer.name()))?;
                // the spent activation's buffer serves a later layer's output
                crate::tensor::recycle(std::mem::replace(&mut a, next));
            }
            Ok(a)
        })?;
        Ok(concat_batch(parts))
    }

    /// The forward pass, keeping every activation.
    ///
    /// # Errors
    /// As [`Network::forward`].
    pub fn trace(&self, x: &ArrayD<F>) -> Result<Trace<F>> {
        self.check_input(x)?;
        let mut activations = Vec::with_capacity(self.layers.len() + 1);
        activations.push(x.clone());
        for (i, layer) in self.layers.iter().enumerate() {
            let next = layer
                .forward(activations[i].view())
                .map_err(|e| e.at_layer(i, &layer.name()))?;
            activations.push(next);
        }
        Ok(Trace { activations })
    }

    /// The starting relevance for `target` at `output`.
    pub(crate) fn seed(&self, output: &ArrayD<F>, target: &Target<F>, seed: Seed) -> Result<ArrayD<F>> {
        let n = output.shape()[0];
        self.check_target(n, target)?;
        let per_sample: Vec<usize> = match target {
            Target::Relevance(r) => return Ok(r.clone()),
            Target::Class(c) => vec![*c; n],
            Target::PerSample(v) => v.clone(),
        };
        let mut r = ArrayD::<F>::zeros(output.raw_dim());
        for (&class, (mut rs, os)) in per_sample
            .iter()
            .zip(r.axis_iter_mut(Axis(0)).zip(output.axis_iter(Axis(0))))
        {
            let rs = rs.as_slice_mut().expect("fresh array is contiguous");
            let os = os.as_standard_layout();
            rs[class] = match seed {
                Seed::Logit => os.as_slice().expect("standard layout")[class],
                Seed::OneHot => F::one(),
            };
        }
        Ok(r)
    }

    /// Explains `x` for `target` under `rules` (one rule or a [`Composite`](crate::Composite)),
    /// starting from the target logit.
    ///
    /// # Shapes
    /// `x` `[N, input_shape...]`; `Attribution::relevance` has the same shape.
    ///
    /// # Errors
    /// As [`Network::forward`]; [`Error::TargetOutOfRange`] or [`Error::BatchMismatch`] for
    /// a wrong target; [`Error::AtLayer`] for an error inside a rule.
    pub fn attribute<R>(&self, x: &ArrayD<F>, target: &Target<F>, rules: &R) -> Result<Attribution<F>>
    where
        R: RuleSet<F> + ?Sized,
    {
        self.attribute_with(x, target, rules, Options::default())
    }

    /// [`Network::attribute`] with options: the seed and whether to keep every layer's
    /// relevance.
    ///
    /// # Errors
    /// As [`Network::attribute`].
    pub fn attribute_with<R>(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rules: &R,
        options: Options,
    ) -> Result<Attribution<F>>
    where
        R: RuleSet<F> + ?Sized,
    {
        self.check_input(x)?;
        self.check_target(x.shape()[0], target)?;
        // Samples are independent: split the batch across threads (feature `parallel`).
        let parts = split_batch(x.shape()[0], |rows| {
            let xs = x.slice_axis(Axis(0), Slice::from(rows.clone())).to_owned();
            self.attribute_rows(&xs, &target_rows(target, rows), rules, options)
        })?;
        Ok(Attribution::concat(parts))
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
                check_finite("target relevance", &r.view())
            }
            Target::Class(_) => Ok(()),
        }
    }

    /// [`Network::attribute_with`] on one part of a batch, on the calling thread.
    fn attribute_rows<R>(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rules: &R,
        options: Options,
    ) -> Result<Attribution<F>>
    where
        R: RuleSet<F> + ?Sized,
    {
        let trace = self.trace(x)?;
        let layers: Vec<&dyn Layer<F>> = self.layers.iter().map(|l| l.as_ref()).collect();
        let per_layer = rules.resolve(&layers);
        if let Some(i) = per_layer.iter().position(|r| r.needs_baseline()) {
            return Err(Error::Unsupported {
                rule: per_layer[i].name(),
                reason: "this rule needs a baseline; use the DeepLIFT entry point".into(),
            }
            .at_layer(i, &layers[i].name()));
        }
        let start = self.seed(trace.output(), target, options.seed)?;
        let total = per_sample_sum(&start.view());
        let mut kept = options.keep_layers.then(Vec::new);
        let mut r = start;
        for i in (0..self.layers.len()).rev() {
            // an identity pass (LRP at a ReLU) hands the relevance on without a copy
            if layers[i].relevance_is_activation()
                && per_layer[i].activation_is_identity()
                && r.shape() == trace.activations[i].shape()
            {
                if let Some(k) = kept.as_mut() {
                    k.push(r.clone());
                }
                continue;
            }
            let step = Step::new(
                i,
                trace.activations[i].view(),
                trace.activations[i + 1].view(),
                r.view(),
            );
            let next = layers[i]
                .relevance(per_layer[i], &step)
                .map_err(|e| e.at_layer(i, &layers[i].name()))?;
            if let Some(k) = kept.as_mut() {
                k.push(std::mem::replace(&mut r, next));
            } else {
                crate::tensor::recycle(std::mem::replace(&mut r, next));
            }
        }
        let delta = &total - &per_sample_sum(&r.view());
        let layers = kept.map(|mut k| {
            k.push(r.clone());
            k.reverse();
            k
        });
        let mut activations = trace.activations;
        let output = activations.pop().expect("non-empty");
        activations.into_iter().for_each(crate::tensor::recycle);
        Ok(Attribution {
            relevance: r,
            output,
            total,
            delta,
            layers,
        })
    }

    /// The gradient of the target's starting relevance (`Σ R_out ⊙ f(x)` with the seed
    /// taken as constant) with respect to the input.
    ///
    /// # Errors
    /// As [`Network::attribute`].
    pub fn gradient(&self, x: &ArrayD<F>, target: &Target<F>) -> Result<ArrayD<F>> {
        self.check_input(x)?;
        self.check_target(x.shape()[0], target)?;
        let parts = split_batch(x.shape()[0], |rows| {
            let xs = x.slice_axis(Axis(0), Slice::from(rows.clone())).to_owned();
            self.gradient_rows(&xs, &target_rows(target, rows))
        })?;
        Ok(concat_batch(parts))
    }

    /// [`Network::gradient`] on one part of a batch, on the calling thread.
    fn gradient_rows(&self, x: &ArrayD<F>, target: &Target<F>) -> Result<ArrayD<F>> {
        let trace = self.trace(x)?;
        let mut g = self.seed(trace.output(), target, Seed::OneHot)?;
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let step = Step::new(
                i,
                trace.activations[i].view(),
                trace.activations[i + 1].view(),
                g.view(),
            );
            g = layer
                .gradient(&step, g.view())
                .map_err(|e| e.at_layer(i, &layer.name()))?;
        }
        trace.activations.into_iter().for_each(crate::tensor::recycle);
        Ok(g)
    }
}

/// Sum of an array's values per sample (over all but the first axis).
pub fn sum_per_sample<F: Float>(a: &ArrayViewD<'_, F>) -> Array1<F> {
    per_sample_sum(a)
}

/// The rows `rows` of a target, for one part of a split batch.
pub(crate) fn target_rows<F: Float>(target: &Target<F>, rows: Range<usize>) -> Target<F> {
    match target {
        Target::Class(c) => Target::Class(*c),
        Target::PerSample(v) => Target::PerSample(v[rows].to_vec()),
        Target::Relevance(r) => Target::Relevance(r.slice_axis(Axis(0), Slice::from(rows)).to_owned()),
    }
}

impl<F: Float> Attribution<F> {
    /// Joins the attributions of consecutive parts of a batch.
    fn concat(mut parts: Vec<Attribution<F>>) -> Self {
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        let cat1 = |f: fn(&Attribution<F>) -> &Array1<F>| {
            let views: Vec<_> = parts.iter().map(|p| f(p).view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("parts of one batch")
        };
        let total = cat1(|a| &a.total);
        let delta = cat1(|a| &a.delta);
        let layers = concat_layers(&parts.iter().map(|p| p.layers.as_ref()).collect::<Vec<_>>());
        let output = concat_batch(parts.iter().map(|p| p.output.clone()).collect());
        let relevance = concat_batch(parts.into_iter().map(|p| p.relevance).collect());
        Attribution {
            relevance,
            output,
            total,
            delta,
            layers,
        }
    }
}
