//! The DeepLIFT entry point [`Network::deeplift`]: baselines (zero, shared, per sample, a
//! set of K for DeepLiftShap), the paired trace of input and baseline, and the backward
//! loop of multipliers with RevealCancel's state between a linear layer and the activation
//! above it.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{MergeStep, Step};
use crate::network::{target_rows, Network, Op, Seed, Target, Trace};
use crate::rules::deeplift::{reveal_cancel, split_forward, split_transpose};
use crate::rules::DeepLift;
use crate::tensor::batch::{concat_batch, concat_layers, split_batch};
use crate::tensor::checks::{check_batch_shape, check_finite};
use crate::tensor::numerics::per_sample_sum;
use ndarray::{Array1, ArrayD, ArrayViewD, Axis, IxDyn, Slice};
use std::sync::Arc;

/// The reference input(s) `x̄` that DeepLIFT explains the difference `f(x) − f(x̄)` against.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Baseline<F: Float = f32> {
    /// All zeros (captum's default). Its forward pass is recorded by the first call that
    /// uses it and kept by the network (one sample's activations, as a
    /// [`Baseline::Traced`] holds), so later calls skip it, with bit-identical results.
    Zero,
    /// One baseline for the whole batch, of the per-sample input shape (or with a leading
    /// batch dimension of 1).
    Shared(ArrayD<F>),
    /// One baseline per sample, `[N, input_shape...]`.
    PerSample(ArrayD<F>),
    /// K baselines `[K, input_shape...]`; every sample is explained against each and the
    /// attributions are averaged — captum's `DeepLiftShap` (inputs `repeat_interleave(K)`,
    /// baselines `repeat(N)`, mean over K). K = 1 is allowed and equals `Shared`.
    Distribution(ArrayD<F>),
    /// A zero or shared baseline together with its recorded forward pass, made by
    /// [`Network::trace_baseline`]: calls that reuse it skip the baseline's forward pass
    /// (for one image through VGG16, about a quarter of the time of a DeepLIFT call). The network
    /// keeps the zero baseline's pass by itself; this matters for shared baselines.
    Traced(TracedBaseline<F>),
}

/// A baseline's forward pass through one network, recorded once by
/// [`Network::trace_baseline`] and reused by every [`Network::deeplift`] call given
/// [`Baseline::Traced`]. Cheap to clone (the trace is shared).
#[derive(Debug, Clone)]
pub struct TracedBaseline<F: Float = f32> {
    /// The network that recorded it ([`Network::deeplift`] rejects it on any other).
    network: u64,
    /// The baseline's trace, batch size 1.
    trace: Arc<Trace<F>>,
}

impl<F: Float> TracedBaseline<F> {
    /// The baseline input, `[1, input_shape...]`.
    pub fn input(&self) -> &ArrayD<F> {
        &self.trace.activations[0]
    }

    /// The network output on the baseline, `[1, outputs...]`.
    pub fn output(&self) -> &ArrayD<F> {
        self.trace.output()
    }
}

impl<F: Float> PartialEq for TracedBaseline<F> {
    /// Equal if recorded by the same network on the same baseline input.
    fn eq(&self, other: &Self) -> bool {
        self.network == other.network
            && (Arc::ptr_eq(&self.trace, &other.trace) || self.input() == other.input())
    }
}

/// Options of [`Network::deeplift_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DeepLiftOptions {
    /// Keep the contributions at every layer's input in [`DeepLiftAttribution::layers`].
    pub keep_layers: bool,
}

impl DeepLiftOptions {
    /// Options that keep the per-layer contributions.
    pub fn keep_layers() -> Self {
        DeepLiftOptions { keep_layers: true }
    }
}

/// The result of [`Network::deeplift`]. For [`Baseline::Distribution`] every field is the
/// mean over the K baselines.
#[derive(Debug, Clone)]
pub struct DeepLiftAttribution<F: Float = f32> {
    /// Contributions at the input, `multipliers ⊙ (x − x̄)`, shape `[N, input_shape...]`.
    pub attribution: ArrayD<F>,
    /// Multipliers at the input (captum's `multiply_by_inputs=False` result).
    pub multipliers: ArrayD<F>,
    /// The network output `f(x)`, `[N, outputs...]`.
    pub output: ArrayD<F>,
    /// The network output on the baseline `f(x̄)`.
    pub baseline_output: ArrayD<F>,
    /// The difference to explain per sample, `Σ seed ⊙ (f(x) − f(x̄))` (`f_c(x) − f_c(x̄)`
    /// for a class target).
    pub total: Array1<F>,
    /// Summation-to-delta gap per sample, `total − Σ attribution`, the same sign as
    /// [`Attribution::delta`](crate::Attribution::delta) (captum's convergence delta has the
    /// opposite sign: `Σ attribution − total`). Zero up to rounding for Rescale, RevealCancel
    /// and cross-max; not for a kept [`Softmax`](crate::Softmax).
    pub delta: Array1<F>,
    /// When asked for: the contributions `m ⊙ (a − ā)` at every value, numbered as in a
    /// [`Trace`]: `layers[0] == attribution`, `layers[k + 1]` at the output of node `k`, the
    /// last `seed ⊙ (f(x) − f(x̄))`. For a chain `layers[k]` is at the input of layer `k`
    /// and each sums to `total` per sample; in a graph, so does every set of values that
    /// cuts all paths from the input to the output.
    pub layers: Option<Vec<ArrayD<F>>>,
}

/// Inputs, baselines and targets expanded to one pair per row.
struct Pairs<F: Float> {
    x: ArrayD<F>,
    /// One baseline row per row of `x`; `None` if one baseline is shared by every row.
    baseline: Option<ArrayD<F>>,
    target: Target<F>,
    /// Baselines per sample.
    k: usize,
}

fn repeat_interleave<F: Float>(a: &ArrayD<F>, k: usize) -> ArrayD<F> {
    let rows: Vec<_> = a
        .axis_iter(Axis(0))
        .flat_map(|r| std::iter::repeat_n(r, k))
        .collect();
    ndarray::stack(Axis(0), &rows).expect("rows of one array")
}

fn tile<F: Float>(a: &ArrayD<F>, n: usize) -> ArrayD<F> {
    let rows: Vec<_> = (0..n).flat_map(|_| a.axis_iter(Axis(0))).collect();
    ndarray::stack(Axis(0), &rows).expect("rows of one array")
}

/// Mean over groups of `k` consecutive rows: `[N·k, ...]` → `[N, ...]`.
fn mean_groups<F: Float>(a: ArrayD<F>, k: usize) -> ArrayD<F> {
    if k == 1 {
        return a;
    }
    let mut shape = vec![a.shape()[0] / k, k];
    shape.extend_from_slice(&a.shape()[1..]);
    let grouped = a.into_shape_with_order(IxDyn(&shape)).expect("N·k rows");
    grouped.mean_axis(Axis(1)).expect("k ≥ 1")
}

impl<F: Float> Network<F> {
    fn baseline_shape_error(&self, what: &str, lead: usize, got: &[usize]) -> Error {
        let mut expected = vec![lead];
        expected.extend_from_slice(self.input_shape());
        Error::Shape {
            what: what.into(),
            expected,
            got: got.to_vec(),
        }
    }

    /// A shared baseline as one row `[1, input_shape...]`, checked.
    fn shared_row(&self, b: &ArrayD<F>) -> Result<ArrayD<F>> {
        let b = if b.shape() == self.input_shape() {
            b.clone().insert_axis(Axis(0))
        } else {
            b.clone()
        };
        if b.ndim() != self.input_shape().len() + 1
            || &b.shape()[1..] != self.input_shape()
            || b.shape()[0] != 1
        {
            return Err(self.baseline_shape_error("shared baseline", 1, b.shape()));
        }
        check_finite("shared baseline", &b.view())?;
        Ok(b)
    }

    /// The one-row trace of the all-zero input: recorded by the first call that needs it,
    /// then kept by the network (one sample's activations; see [`Baseline::Zero`]).
    fn zero_trace(&self) -> Result<Arc<Trace<F>>> {
        if let Some(t) = self.zero_trace.0.get() {
            return Ok(Arc::clone(t));
        }
        let mut shape = vec![1];
        shape.extend_from_slice(self.input_shape());
        let t = Arc::new(self.trace(&ArrayD::zeros(IxDyn(&shape)))?);
        // two threads may both record it; they record the same values, and one is kept
        Ok(Arc::clone(self.zero_trace.0.get_or_init(|| t)))
    }

    /// The one-row trace of a baseline shared by the whole batch (`None` for per-sample
    /// baselines and distributions).
    fn shared_trace(&self, baseline: &Baseline<F>) -> Result<Option<Arc<Trace<F>>>> {
        Ok(match baseline {
            Baseline::Zero => Some(self.zero_trace()?),
            Baseline::Shared(b) => Some(Arc::new(self.trace(&self.shared_row(b)?)?)),
            Baseline::Traced(t) if t.network == self.id() => Some(Arc::clone(&t.trace)),
            Baseline::Traced(_) => {
                return Err(Error::Unsupported {
                    rule: "DeepLift".into(),
                    reason: "the traced baseline was recorded by another network; trace it with this one"
                        .into(),
                })
            }
            Baseline::PerSample(_) | Baseline::Distribution(_) => None,
        })
    }

    /// Records the forward pass of a zero or shared baseline once, so that DeepLIFT calls
    /// that reuse it ([`Baseline::Traced`]) skip the baseline's forward pass. The result
    /// is bit for bit the same as with the untraced baseline.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Baseline, DeepLift, Dense, Network, Relu, Target};
    /// # fn main() -> relevance::Result<()> {
    /// let net = Network::<f64>::new(&[2], vec![
    ///     Box::new(Dense::new(array![[1.0, -1.0], [1.0, 0.0]], Some(array![0.5, -0.5]))?),
    ///     Box::new(Relu),
    ///     Box::new(Dense::new(array![[-1.0, 1.0]], None)?),
    /// ])?;
    /// let traced = net.trace_baseline(&Baseline::Zero)?;
    /// for x in [array![[3.0, 1.0]], array![[0.5, 2.0]]] {
    ///     let x = x.into_dyn();
    ///     let fresh = net.deeplift(&x, &Target::Class(0), &DeepLift::rescale(), &Baseline::Zero)?;
    ///     let reused = net.deeplift(&x, &Target::Class(0), &DeepLift::rescale(), &traced)?;
    ///     assert_eq!(fresh.attribution, reused.attribution);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// For [`Baseline::Shared`] as [`Network::deeplift`] for a bad baseline;
    /// [`Error::Unsupported`] for per-sample baselines and distributions (their rows depend
    /// on the batch) and for a baseline traced by another network. A traced baseline of
    /// this network is returned as it is.
    pub fn trace_baseline(&self, baseline: &Baseline<F>) -> Result<Baseline<F>> {
        match self.shared_trace(baseline)? {
            Some(trace) => Ok(Baseline::Traced(TracedBaseline {
                network: self.id(),
                trace,
            })),
            None => Err(Error::Unsupported {
                rule: "DeepLift".into(),
                reason: "only a zero or shared baseline can be traced once for every batch".into(),
            }),
        }
    }

    /// Checks the baseline and expands inputs, baselines and targets to one pair per row.
    fn pairs(&self, x: &ArrayD<F>, target: &Target<F>, baseline: &Baseline<F>) -> Result<Pairs<F>> {
        let n = x.shape()[0];
        let sample = self.input_shape();
        let per_sample = |b: &ArrayD<F>, what: &str| -> Result<()> {
            if b.ndim() != sample.len() + 1 || &b.shape()[1..] != sample {
                return Err(self.baseline_shape_error(
                    what,
                    b.shape().first().copied().unwrap_or(1),
                    b.shape(),
                ));
            }
            check_finite(what, &b.view())
        };
        let (b, k) = match baseline {
            Baseline::Zero | Baseline::Traced(_) => (None, 1),
            Baseline::Shared(b) => {
                self.shared_row(b)?;
                (None, 1)
            }
            Baseline::PerSample(b) => {
                per_sample(b, "per-sample baselines")?;
                if b.shape()[0] != n {
                    return Err(Error::BatchMismatch {
                        what: "per-sample baselines".into(),
                        batch: n,
                        got: b.shape()[0],
                    });
                }
                (Some(b.clone()), 1)
            }
            Baseline::Distribution(b) => {
                per_sample(b, "baseline distribution")?;
                let k = b.shape()[0];
                if k == 0 {
                    return Err(self.baseline_shape_error(
                        "baseline distribution (at least one)",
                        1,
                        b.shape(),
                    ));
                }
                (Some(tile(b, n)), k)
            }
        };
        // checked against the input's batch before the batch is expanded or split
        self.check_target(n, target)?;
        let target = match target {
            Target::PerSample(v) if k > 1 => {
                Target::PerSample(v.iter().flat_map(|&c| std::iter::repeat_n(c, k)).collect())
            }
            Target::Relevance(r) if r.ndim() > 0 && r.shape()[0] == n && k > 1 => {
                Target::Relevance(repeat_interleave(r, k))
            }
            t => t.clone(),
        };
        let x = if k > 1 { repeat_interleave(x, k) } else { x.clone() };
        Ok(Pairs {
            x,
            baseline: b,
            target,
            k,
        })
    }

    /// Explains `f(x) − f(x̄)` for `target` with DeepLIFT (Shrikumar et al. 2017).
    ///
    /// The network traces `x` and the baseline `x̄`, then carries multipliers from the
    /// output down: the seed is one-hot at the target (captum's), so the attribution of a
    /// sample sums to `f_c(x) − f_c(x̄)`. Affine layers use the Linear rule, activations
    /// Rescale or RevealCancel, max-pools cross-max or the gradient, as `rule` says.
    ///
    /// ```
    /// use ndarray::array;
    /// use relevance::{Baseline, DeepLift, Dense, Network, Relu, Target};
    /// # fn main() -> relevance::Result<()> {
    /// // The paper's "min" network o = i1 − relu(i1 − i2), at (3, 1) against zero.
    /// let net = Network::<f64>::new(&[2], vec![
    ///     Box::new(Dense::new(array![[1.0, -1.0], [1.0, 0.0]], None)?),
    ///     Box::new(Relu),
    ///     Box::new(Dense::new(array![[-1.0, 1.0]], None)?),
    /// ])?;
    /// let x = array![[3.0, 1.0]].into_dyn();
    /// let r = net.deeplift(&x, &Target::Class(0), &DeepLift::rescale(), &Baseline::Zero)?;
    /// assert_eq!(r.attribution, array![[0.0, 1.0]].into_dyn());
    /// let rc = net.deeplift(&x, &Target::Class(0), &DeepLift::reveal_cancel(), &Baseline::Zero)?;
    /// assert!((&rc.attribution - &array![[0.5, 0.5]].into_dyn()).iter().all(|d| d.abs() < 1e-12));
    /// assert!(rc.delta[0].abs() < 1e-12); // f(x) − f(0) = 1 = 0.5 + 0.5
    /// # Ok(()) }
    /// ```
    ///
    /// # Shapes
    /// `x` `[N, input_shape...]`; `attribution` and `multipliers` have the same shape.
    ///
    /// # Errors
    /// As [`Network::forward`] for `x`; for the baseline [`Error::Shape`] or
    /// [`Error::Rank`] if it does not have the input's per-sample shape,
    /// [`Error::BatchMismatch`] for per-sample baselines of another batch size,
    /// [`Error::NonFinite`] for NaN or ∞ in it; [`Error::TargetOutOfRange`] or
    /// [`Error::BatchMismatch`] for a wrong target (a [`Target::Relevance`] must have the
    /// input's batch); [`Error::NonFiniteResult`] inside [`Error::AtLayer`] if a value
    /// overflowed (naming the node); [`Error::InvalidParameter`] for a threshold the float
    /// type cannot hold.
    pub fn deeplift(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rule: &DeepLift,
        baseline: &Baseline<F>,
    ) -> Result<DeepLiftAttribution<F>> {
        self.deeplift_with(x, target, rule, baseline, DeepLiftOptions::default())
    }

    /// [`Network::deeplift`] with options (per-layer contributions).
    ///
    /// # Errors
    /// As [`Network::deeplift`].
    pub fn deeplift_with(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rule: &DeepLift,
        baseline: &Baseline<F>,
        options: DeepLiftOptions,
    ) -> Result<DeepLiftAttribution<F>> {
        let d = self.deeplift_unchecked(x, target, rule, baseline, options)?;
        // a non-finite contribution names the node nearest the output where it appeared
        self.check_backward("DeepLIFT pass", &d.attribution, || match &d.layers {
            Some(l) => Ok(Some(l.clone())),
            None => Ok(self
                .deeplift_unchecked(x, target, rule, baseline, DeepLiftOptions::keep_layers())?
                .layers),
        })?;
        Ok(d)
    }

    /// [`Network::deeplift_with`] without the check of the result.
    fn deeplift_unchecked(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rule: &DeepLift,
        baseline: &Baseline<F>,
        options: DeepLiftOptions,
    ) -> Result<DeepLiftAttribution<F>> {
        // input errors first, with the input's own batch size
        check_batch_shape("network input", &x.view(), self.input_shape())?;
        check_finite("network input", &x.view())?;
        crate::rules::Rule::<F>::check_parameters(rule)?;
        let pairs = self.pairs(x, target, baseline)?;
        let kk = pairs.k;
        // One sample against a zero or shared baseline, through a large network: its two
        // forward passes run side by side (one forward pass does not keep two threads busy;
        // on a small network, waking a thread costs more than it saves).
        #[cfg(feature = "parallel")]
        if pairs.x.shape()[0] == 1
            && match baseline {
                Baseline::Zero => self.zero_trace.0.get().is_none(),
                Baseline::Shared(_) => true,
                _ => false,
            }
            && self
                .shapes()
                .iter()
                .map(|s| s.iter().product::<usize>())
                .sum::<usize>()
                >= 1 << 18
        {
            let (shared, tx) = rayon::join(|| self.shared_trace(baseline), || self.trace(&pairs.x));
            let shared = shared?.expect("zero and shared baselines are traced");
            return self.deeplift_rows(&pairs, Some(tx?), Some(&shared), rule, options);
        }
        // A baseline shared by the whole batch is traced once, for one row (or not at all
        // when it comes traced).
        let shared = self.shared_trace(baseline)?;
        // Samples are independent: split the batch across threads (feature `parallel`), at
        // whole groups of K baseline rows.
        let parts = split_batch(x.shape()[0], |samples| {
            let rows = samples.start * kk..samples.end * kk;
            let part = Pairs {
                x: pairs.x.slice_axis(Axis(0), Slice::from(rows.clone())).to_owned(),
                baseline: pairs
                    .baseline
                    .as_ref()
                    .map(|b| b.slice_axis(Axis(0), Slice::from(rows.clone())).to_owned()),
                target: target_rows(&pairs.target, rows),
                k: kk,
            };
            self.deeplift_rows(&part, None, shared.as_deref(), rule, options)
        })?;
        Ok(DeepLiftAttribution::concat(parts))
    }

    /// [`Network::deeplift_with`] on expanded pairs, on the calling thread.
    /// `tx` is the trace of `pairs.x` if already recorded; `shared` the one-row trace of a
    /// baseline shared by every row (then `pairs.baseline` is `None`).
    fn deeplift_rows(
        &self,
        pairs: &Pairs<F>,
        tx: Option<Trace<F>>,
        shared: Option<&Trace<F>>,
        rule: &DeepLift,
        options: DeepLiftOptions,
    ) -> Result<DeepLiftAttribution<F>> {
        let tx = match tx {
            Some(t) => t,
            None => self.trace(&pairs.x)?,
        };
        let own = match (shared, &pairs.baseline) {
            (None, Some(b)) => Some(self.trace(b)?),
            _ => None,
        };
        let tb = match (shared, &own) {
            (Some(t), _) => t,
            (None, Some(t)) => t,
            (None, None) => unreachable!("pairs() keeps the rows of an unshared baseline"),
        };
        // the baseline's activation k with the shape of x's (a shared row is broadcast)
        let base = |k: usize| -> ArrayViewD<'_, F> {
            tb.activations[k]
                .broadcast(tx.activations[k].raw_dim())
                .expect("a baseline row broadcasts over the batch")
        };
        let seed = self.seed(tx.output(), &pairs.target, Seed::OneHot)?;
        let threshold = F::lit(rule.threshold());
        let acts = &tx.activations;
        let delta_at = |k: usize| &acts[k] - &base(k);
        let values = self.shapes().len();
        let out = values - 1;
        let mut kept: Option<Vec<ArrayD<F>>> = options
            .keep_layers
            .then(|| vec![ArrayD::zeros(IxDyn(&[])); values]);
        let mut slots: Vec<Option<ArrayD<F>>> = (0..values).map(|_| None).collect();
        slots[out] = Some(seed.clone());
        for k in (0..self.nodes().len()).rev() {
            // a node handled together with the activation above it has nothing left here
            let Some(m) = slots[k + 1].take() else { continue };
            if let Some(kl) = kept.as_mut() {
                kl[k + 1] = &m * &delta_at(k + 1);
            }
            let node = &self.nodes()[k];
            if let Some(j) = rule.reveal_cancel_below(self, k) {
                // RevealCancel: Δx⁺/Δx⁻ forward from the affine node j below, m⁺/m⁻ back to it.
                let below = self.nodes()[j].layer().expect("an affine layer");
                let affine = below.as_affine().expect("an affine layer");
                let u = self.nodes()[j].inputs()[0];
                let layer = node.layer().expect("an activation");
                let step = Step::new(k, acts[j + 1].view(), acts[k + 1].view(), m.view())
                    .with_baseline(base(j + 1), base(k + 1));
                let dx = delta_at(u);
                let (dpos, dneg) = split_forward(affine, &dx).map_err(self.at(j))?;
                let (mp, mn) = reveal_cancel(layer, &step, &dpos, &dneg, threshold).map_err(self.at(k))?;
                let next = split_transpose(affine, &dx, &mp, &mn).map_err(self.at(j))?;
                if let Some(kl) = kept.as_mut() {
                    kl[j + 1] = &mp * &dpos + &mn * &dneg;
                }
                self.deposit(j, &mut slots, u, next, acts[u].shape())?;
                continue;
            }
            let parts = match node.op() {
                Op::Layer(layer) => {
                    let u = node.inputs()[0];
                    let step = Step::new(k, acts[u].view(), acts[k + 1].view(), m.view())
                        .with_baseline(base(u), base(k + 1));
                    vec![layer.relevance(rule, &step).map_err(self.at(k))?]
                }
                Op::Merge(merge) => {
                    let inputs = node.inputs().iter().map(|&u| acts[u].view()).collect();
                    let baselines = node.inputs().iter().map(|&u| base(u)).collect();
                    let step = MergeStep::new(k, inputs, acts[k + 1].view(), m.view())
                        .with_baseline(baselines, base(k + 1))
                        .with_gates(self.gates(k).to_vec());
                    merge.relevance(rule, &step).map_err(self.at(k))?
                }
            };
            crate::pool::recycle(m);
            if parts.len() != node.inputs().len() {
                return Err(Error::Graph {
                    node: node.name().to_string(),
                    reason: format!("{} multipliers for {} inputs", parts.len(), node.inputs().len()),
                });
            }
            for (&u, part) in node.inputs().iter().zip(parts) {
                self.deposit(k, &mut slots, u, part, acts[u].shape())?;
            }
        }
        let m = slots[0]
            .take()
            .unwrap_or_else(|| ArrayD::zeros(acts[0].raw_dim()));
        if let Some(kl) = kept.as_mut() {
            kl[0] = &m * &delta_at(0);
        }
        let attribution = &m * &delta_at(0);
        let total = per_sample_sum(&(&seed * &delta_at(out)).view());
        let kk = pairs.k;
        let mean1 = |a: Array1<F>| mean_groups(a.into_dyn(), kk).into_dimensionality().expect("1-D");
        let total = mean1(total);
        let attribution = mean_groups(attribution, kk);
        let delta = &total - &per_sample_sum(&attribution.view());
        let every_kth = |a: &ArrayD<F>| -> ArrayD<F> {
            let rows: Vec<usize> = (0..a.shape()[0]).step_by(kk).collect();
            a.select(Axis(0), &rows)
        };
        let result = DeepLiftAttribution {
            attribution,
            multipliers: mean_groups(m, kk),
            output: every_kth(tx.output()),
            baseline_output: mean_groups(base(out).to_owned(), kk),
            total,
            delta,
            layers: kept.map(|v| v.into_iter().map(|a| mean_groups(a, kk)).collect()),
        };
        // the traces recorded here are done with (a shared baseline's is kept by its owner)
        tx.activations.into_iter().for_each(crate::pool::recycle);
        if let Some(t) = own {
            t.activations.into_iter().for_each(crate::pool::recycle);
        }
        Ok(result)
    }
}

impl<F: Float> DeepLiftAttribution<F> {
    /// Joins the results of consecutive parts of a batch.
    fn concat(mut parts: Vec<Self>) -> Self {
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        let cat = |f: fn(&Self) -> ArrayD<F>| concat_batch(parts.iter().map(f).collect());
        let attribution = cat(|p| p.attribution.clone());
        let multipliers = cat(|p| p.multipliers.clone());
        let output = cat(|p| p.output.clone());
        let baseline_output = cat(|p| p.baseline_output.clone());
        let total = cat(|p| p.total.clone().into_dyn())
            .into_dimensionality()
            .expect("1-D");
        let delta = cat(|p| p.delta.clone().into_dyn())
            .into_dimensionality()
            .expect("1-D");
        let layers = concat_layers(&parts.iter().map(|p| p.layers.as_ref()).collect::<Vec<_>>());
        DeepLiftAttribution {
            attribution,
            multipliers,
            output,
            baseline_output,
            total,
            delta,
            layers,
        }
    }
}
