//! Cascading model-parameter randomisation (Adebayo et al. 2018).

use super::rng::{stream, SplitMix};
use super::similarity::{spearman, ssim};
use crate::error::{Error, Result};
use crate::explain::Target;
use crate::float::Float;
use crate::layers::{Affine, Layer};
use crate::network::{GraphBuilder, Network, NodeId, Op};
use ndarray::{Array1, Array2, ArrayD, Axis, IxDyn};
use std::sync::Arc;

/// Settings of the cascading model-parameter randomisation test (Adebayo et al. 2018,
/// "Sanity checks for saliency maps"; Quantus' `MPRT` with `layer_order="top_down"`).
///
/// The dense and convolutional layers are re-initialised one after another from the output
/// down, each step keeping the earlier steps' random layers (cascading); after each step
/// the explanation is recomputed for the same target and compared with the original one.
/// A layer is re-initialised as PyTorch's `reset_parameters` does it (which is what
/// Quantus calls): weight and bias uniform in `±1/√fan_in`, `fan_in` the number of inputs
/// of one output unit (the layer's own scale), seeded per layer (the same network for the
/// same seed, whatever the batch).
///
/// An explanation that stays similar while the weights it explains are destroyed fails
/// the check: it shows the input (edges, the digit's shape), not the model.
///
/// ```
/// use ndarray::{array, Array4};
/// use relevance::eval::CascadingRandomisation;
/// use relevance::{Dense, Flatten, Network, LrpEpsilon, Relu, Target};
/// use std::sync::Arc;
/// # fn main() -> relevance::Result<()> {
/// let net = Arc::new(Network::<f64>::new(&[1, 3, 3], vec![
///     Box::new(Flatten),
///     Box::new(Dense::new(Array4::from_shape_fn((4, 1, 3, 3), |(o, _, i, j)| ((o + 2 * i + j) % 5) as f64 - 2.0)
///         .into_shape_with_order((4, 9)).unwrap(), None)?),
///     Box::new(Relu),
///     Box::new(Dense::new(array![[1.0, -1.0, 0.5, 2.0]], None)?),
/// ])?);
/// let x = Array4::from_shape_fn((2, 1, 3, 3), |(n, _, i, j)| (n + i * 3 + j) as f64 / 9.0).into_dyn();
/// let rule = LrpEpsilon::new(1e-6)?;
/// let result = CascadingRandomisation::default().run(&net, &x, &Target::Class(0), |net, x, t| {
///     Ok(net.attribute(x, t, &rule)?.relevance)
/// })?;
/// assert_eq!(result.layers, vec!["3".to_string(), "1".to_string()]); // top down
/// assert_eq!(result.spearman_abs.shape(), &[2, 2]); // [steps, samples]
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CascadingRandomisation {
    /// The seed of the random weights.
    pub seed: u64,
    /// The SSIM window (odd; made smaller, to the largest odd size that fits, for maps
    /// smaller than it).
    pub ssim_window: usize,
}

impl Default for CascadingRandomisation {
    /// Seed 42 (Quantus' default), SSIM window 7 (scikit-image's default).
    fn default() -> Self {
        CascadingRandomisation {
            seed: 42,
            ssim_window: 7,
        }
    }
}

/// What [`CascadingRandomisation::run`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomisationResult<F: Float> {
    /// The names of the re-initialised nodes in the order they were randomised (top down);
    /// step k has `layers[..=k]` random.
    pub layers: Vec<String>,
    /// The explanation of the trained network, `[N, ...]`.
    pub original: ArrayD<F>,
    /// The explanation after each step, `[N, ...]` each.
    pub randomised: Vec<ArrayD<F>>,
    /// Spearman rank correlation of |R| with the original |R|, `[steps, N]` (Quantus'
    /// default, `abs=True`).
    pub spearman_abs: Array2<f64>,
    /// Spearman rank correlation of R with the original R, `[steps, N]` (Adebayo et al.
    /// report both: with signs, a flipped map counts as dissimilar).
    pub spearman: Array2<f64>,
    /// SSIM of the maps `Σ_c |R|` (one `[H, W]` image per sample, each divided by its largest
    /// value, as Quantus normalises), `[steps, N]`. Adebayo et al. compare images, as here;
    /// Quantus flattens the maps first (call [`ssim`] on flattened maps for its number).
    pub ssim: Array2<f64>,
}

impl CascadingRandomisation {
    /// Randomises `net`'s dense and convolutional layers from the top down and compares
    /// `explain`'s result on each randomised network with its result on `net`.
    ///
    /// `net` is not changed: each randomised network shares `net`'s other nodes (hence the
    /// `Arc`) and owns only its random layers.
    ///
    /// # Shapes
    /// `x` `[N, ...]` (images `[N, C, H, W]`); `explain` must return `x`'s shape.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a network without dense or convolutional layers that can
    /// be rebuilt with new parameters; [`Error::Shape`] when `explain` returns another shape;
    /// [`Error::NonFinite`] when it returns NaN or ∞; whatever `explain` reports.
    pub fn run<F, E>(
        &self,
        net: &Arc<Network<F>>,
        x: &ArrayD<F>,
        target: &Target<F>,
        explain: E,
    ) -> Result<RandomisationResult<F>>
    where
        F: Float,
        E: Fn(&Network<F>, &ArrayD<F>, &Target<F>) -> Result<ArrayD<F>>,
    {
        let order = randomisable(net);
        if order.is_empty() {
            return Err(Error::Unsupported {
                rule: "cascading randomisation".into(),
                reason: "the network has no dense or convolutional layer to re-initialise".into(),
            });
        }
        let original = checked(explain(net, x, target)?, x)?;
        let n = x.shape()[0];
        let steps = order.len();
        let mut result = RandomisationResult {
            layers: order.iter().map(|&k| net.nodes()[k].name().to_string()).collect(),
            original,
            randomised: Vec::with_capacity(steps),
            spearman_abs: Array2::zeros((steps, n)),
            spearman: Array2::zeros((steps, n)),
            ssim: Array2::zeros((steps, n)),
        };
        let orig_maps = ssim_maps(&result.original);
        for step in 0..steps {
            let random = randomised_network(net, step + 1, self.seed)?;
            let r = checked(explain(&random, x, target)?, x)?;
            let maps = ssim_maps(&r);
            for i in 0..n {
                let (a, b) = (result.original.index_axis(Axis(0), i), r.index_axis(Axis(0), i));
                result.spearman[[step, i]] = spearman(&a, &b)?;
                result.spearman_abs[[step, i]] =
                    spearman(&a.mapv(|v| v.abs()).view(), &b.mapv(|v| v.abs()).view())?;
                let (ma, mb) = (orig_maps.index_axis(Axis(0), i), maps.index_axis(Axis(0), i));
                let win = ma
                    .shape()
                    .iter()
                    .map(|&s| if s % 2 == 1 { s } else { s - 1 })
                    .fold(self.ssim_window, usize::min);
                result.ssim[[step, i]] = ssim(&ma, &mb, win.max(1))?;
            }
            result.randomised.push(r);
        }
        Ok(result)
    }
}

impl CascadingRandomisation {
    /// `net` with its top `count` dense and convolutional layers re-initialised, as step
    /// `count − 1` of [`CascadingRandomisation::run`] sees it (`count = 0`: a network that
    /// computes exactly what `net` computes). Every other node is `net`'s own, shared.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `count` larger than the number of dense and
    /// convolutional layers; whatever rebuilding a layer reports.
    pub fn randomised<F: Float>(&self, net: &Arc<Network<F>>, count: usize) -> Result<Network<F>> {
        randomised_network(net, count, self.seed)
    }
}

/// Checks an explanation's shape and values.
fn checked<F: Float>(r: ArrayD<F>, x: &ArrayD<F>) -> Result<ArrayD<F>> {
    if r.shape() != x.shape() {
        return Err(Error::Shape {
            what: "explanation (the input's shape)".into(),
            expected: x.shape().to_vec(),
            got: r.shape().to_vec(),
        });
    }
    crate::tensor::checks::check_finite("explanation", &r.view())?;
    Ok(r)
}

/// Per sample, `Σ_c |R|` as an `[H, W]` map (or the flat map for `[N, D]`), divided by its
/// largest value (left as is when that is 0).
fn ssim_maps<F: Float>(r: &ArrayD<F>) -> ArrayD<f64> {
    let s = r.shape();
    let abs = r.mapv(|v| v.as_f64().abs());
    let mut maps = if s.len() >= 4 {
        let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
        let c: usize = s[1..s.len() - 2].iter().product();
        abs.into_shape_with_order(IxDyn(&[s[0], c, h, w]))
            .expect("contiguous")
            .sum_axis(Axis(1))
    } else {
        abs
    };
    for mut m in maps.axis_iter_mut(Axis(0)) {
        let max = m.iter().copied().fold(0.0, f64::max);
        if max > 0.0 {
            m.mapv_inplace(|v| v / max);
        }
    }
    maps
}

/// The nodes that can be re-initialised (dense and convolutional layers that can be
/// rebuilt with new parameters), from the output down.
fn randomisable<F: Float>(net: &Network<F>) -> Vec<usize> {
    (0..net.nodes().len())
        .rev()
        .filter(|&k| {
            net.nodes()[k]
                .layer()
                .and_then(|l| l.class().affine())
                .is_some_and(|a| {
                    a.with_parameters(a.weight().to_owned(), Array1::zeros(a.weight().shape()[0]))
                        .is_some()
                })
        })
        .collect()
}

/// See [`CascadingRandomisation::randomised`]: PyTorch's `reset_parameters` (weight and
/// bias uniform in `±1/√fan_in`), seeded per node.
fn randomised_network<F: Float>(net: &Arc<Network<F>>, count: usize, seed: u64) -> Result<Network<F>> {
    let order = randomisable(net);
    if count > order.len() {
        return Err(super::invalid(
            "cascading randomisation",
            format!("{count} layers asked for, the network has {}", order.len()),
        ));
    }
    let random = &order[..count];
    let mut g = GraphBuilder::new(net.input_shape())?;
    let mut ids: Vec<NodeId> = vec![g.input()];
    for (k, node) in net.nodes().iter().enumerate() {
        let inputs: Vec<NodeId> = node.inputs().iter().map(|&u| ids[u]).collect();
        let id = match node.op() {
            Op::Layer(layer) if random.contains(&k) => {
                let affine = layer.class().affine().expect("randomisable nodes are affine");
                g.add_boxed(
                    node.name(),
                    reinitialised(affine, stream(seed, k as u64))?,
                    inputs[0],
                )?
            }
            // every other node is the original's, shared
            Op::Layer(layer) => g.add_shared(node.name(), layer.clone(), inputs[0])?,
            Op::Merge(merge) => g.merge_shared(node.name(), merge.clone(), &inputs)?,
            Op::Held => g.held_input(node.name(), &net.shapes()[k + 1])?,
            Op::Constant(value) => g.constant_shared(node.name(), value.clone())?,
        };
        ids.push(id);
    }
    g.build(*ids.last().expect("the input at least"))
}

/// The layer rebuilt with PyTorch's default initialisation.
fn reinitialised<F: Float>(affine: &dyn Affine<F>, seed: u64) -> Result<Box<dyn Layer<F>>> {
    let shape = affine.weight().shape().to_vec();
    let fan_in: usize = shape[1..].iter().product();
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let mut g = SplitMix::new(seed);
    let mut draw = || F::lit(bound * (2.0 * g.uniform() - 1.0));
    let weight = ArrayD::from_shape_simple_fn(IxDyn(&shape), &mut draw);
    let bias = Array1::from_shape_simple_fn(shape[0], &mut draw);
    affine.with_parameters(weight, bias).unwrap_or_else(|| {
        Err(Error::Unsupported {
            rule: "cascading randomisation".into(),
            reason: format!("{} cannot be rebuilt with new parameters", affine.name()),
        })
    })
}
