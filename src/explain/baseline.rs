//! Baselines (reference inputs) for methods that explain a difference `f(x) − f(x̄)`:
//! zero, shared, per sample, a set of K (DeepLiftShap); their traced forward passes, and
//! the expansion of inputs, baselines and targets to one pair per row.

use crate::error::{Error, Result};
use crate::explain::Target;
use crate::float::Float;
use crate::network::{Network, Trace};
use crate::tensor::check_finite;
use ndarray::{ArrayD, Axis, IxDyn};
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

/// Inputs, baselines and targets expanded to one pair per row.
pub(crate) struct Pairs<F: Float> {
    pub x: ArrayD<F>,
    /// One baseline row per row of `x`; `None` if one baseline is shared by every row.
    pub baseline: Option<ArrayD<F>>,
    pub target: Target<F>,
    /// Baselines per sample.
    pub k: usize,
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
pub(crate) fn mean_groups<F: Float>(a: ArrayD<F>, k: usize) -> ArrayD<F> {
    if k == 1 {
        return a;
    }
    let mut shape = vec![a.shape()[0] / k, k];
    shape.extend_from_slice(crate::tensor::per_sample(a.shape()));
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
            || crate::tensor::per_sample(b.shape()) != self.input_shape()
            || b.shape()[0] != 1
        {
            return Err(self.baseline_shape_error("shared baseline", 1, b.shape()));
        }
        check_finite("shared baseline", &b.view())?;
        Ok(b)
    }

    /// The one-row trace of a baseline shared by the whole batch (`None` for per-sample
    /// baselines and distributions).
    pub(crate) fn shared_trace(&self, baseline: &Baseline<F>) -> Result<Option<Arc<Trace<F>>>> {
        Ok(match baseline {
            Baseline::Zero => Some(self.zero_input_trace()?),
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
    pub(crate) fn pairs(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        baseline: &Baseline<F>,
    ) -> Result<Pairs<F>> {
        let n = x.shape()[0];
        let sample = self.input_shape();
        let per_sample = |b: &ArrayD<F>, what: &str| -> Result<()> {
            if b.ndim() != sample.len() + 1 || crate::tensor::per_sample(b.shape()) != sample {
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
}
