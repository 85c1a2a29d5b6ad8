//! DeepLIFT (Shrikumar et al. 2017) through the one backward loop: the paired traces of
//! the input and the baseline, multipliers carried from the output down by the DeepLIFT
//! rule at every node, contributions `m ⊙ (x − x̄)`, the mean over K baselines
//! (DeepLiftShap); and the [`DeepLiftAttribution`] view of the result.

use super::backward::{Recorded, Report};
use super::baseline::{mean_groups, Pairs};
use super::{target_rows, Attribution, Baseline, Seed, Target};
use crate::error::Result;
use crate::float::Float;
use crate::network::{Network, Trace};
use crate::rules::{DeepLift, DeepLiftRule, Rule};
use crate::tensor::batch::{concat_batch, concat_layers, split_batch};
use crate::tensor::numerics::per_sample_sum;
use ndarray::{Array1, ArrayD, Axis, Slice};

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

/// The result of [`Network::deeplift`]: the DeepLIFT view of an [`Attribution`] (what
/// [`Network::explain`] returns for [`Method::DeepLift`](crate::Method::DeepLift)), with the
/// fields named as DeepLIFT names them. For [`Baseline::Distribution`] every field is the
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
    /// [`Attribution::delta`] (captum's convergence delta has the
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

impl<F: Float> From<Attribution<F>> for DeepLiftAttribution<F> {
    /// The DeepLIFT view of a DeepLIFT explanation (an attribution of another method has
    /// no multipliers and no baseline output: they are taken as the relevance and zeros).
    fn from(a: Attribution<F>) -> Self {
        let zeros = || ArrayD::zeros(a.output.raw_dim());
        DeepLiftAttribution {
            multipliers: a.multipliers.unwrap_or_else(|| a.relevance.clone()),
            baseline_output: a.baseline_output.unwrap_or_else(zeros),
            attribution: a.relevance,
            output: a.output,
            total: a.total,
            delta: a.delta,
            layers: a.layers,
        }
    }
}

impl<F: Float> Network<F> {
    /// DeepLIFT with `rule` against `baseline`, starting from `seed` (resolved: not
    /// [`Seed::Method`]); the batch split across threads at whole groups of K baseline rows.
    /// The result is checked: a non-finite contribution names the node nearest the output
    /// where it appeared.
    pub(crate) fn deeplift_method(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rule: &DeepLift,
        baseline: &Baseline<F>,
        seed: Seed,
        keep_layers: bool,
    ) -> Result<Attribution<F>> {
        let a = self.deeplift_unchecked(x, target, rule, baseline, seed, keep_layers)?;
        self.check_backward("DeepLIFT pass", &a.relevance, || match &a.layers {
            Some(l) => Ok(Some(l.clone())),
            None => Ok(self
                .deeplift_unchecked(x, target, rule, baseline, seed, true)?
                .layers),
        })?;
        Ok(a)
    }

    /// DeepLIFT of every row of `rows` against one recorded row `shared` (the trace of a
    /// one-row input) that all of them share, from a one-hot seed at `target`: what
    /// [`Baseline::Shared`] computes, with the shared row's forward pass given. Used by
    /// [`crate::genomics::deep_lift_shap`], which passes the references as `rows` and the
    /// sequence as `shared` so that the sequence's forward pass is run once, not once per
    /// reference.
    pub(crate) fn deeplift_against_trace(
        &self,
        rows: &ArrayD<F>,
        target: &Target<F>,
        rule: &DeepLift,
        shared: &Trace<F>,
    ) -> Result<Attribution<F>> {
        self.check_input(rows)?;
        let rule = DeepLiftRule(*rule);
        Rule::<F>::check_parameters(&rule)?;
        self.check_target(rows.shape()[0], target)?;
        let pairs = Pairs {
            x: rows.clone(),
            baseline: None,
            target: target.clone(),
            k: 1,
        };
        let run = Run {
            rule: &rule,
            seed: Seed::OneHot,
            keep_layers: false,
        };
        let a = self.deeplift_rows(&pairs, None, Some(shared), &run)?;
        self.check_backward("DeepLIFT pass", &a.relevance, || {
            let run = Run {
                keep_layers: true,
                ..run
            };
            Ok(self.deeplift_rows(&pairs, None, Some(shared), &run)?.layers)
        })?;
        Ok(a)
    }

    fn deeplift_unchecked(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rule: &DeepLift,
        baseline: &Baseline<F>,
        seed: Seed,
        keep_layers: bool,
    ) -> Result<Attribution<F>> {
        // input errors first, with the input's own batch size
        self.check_input(x)?;
        let rule = DeepLiftRule(*rule);
        Rule::<F>::check_parameters(&rule)?;
        let pairs = self.pairs(x, target, baseline)?;
        let kk = pairs.k;
        let run = Run {
            rule: &rule,
            seed,
            keep_layers,
        };
        // One sample against a zero or shared baseline, through a large network: its two
        // forward passes run side by side (one forward pass does not keep two threads busy;
        // on a small network, waking a thread costs more than it saves).
        #[cfg(feature = "parallel")]
        if pairs.x.shape()[0] == 1
            && match baseline {
                Baseline::Zero => self.zero_input.0.get().is_none(),
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
            return self.deeplift_rows(&pairs, Some(tx?), Some(&shared), &run);
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
            self.deeplift_rows(&part, None, shared.as_deref(), &run)
        })?;
        Ok(Attribution::concat(parts))
    }

    /// DeepLIFT on expanded pairs, on the calling thread. `tx` is the trace of `pairs.x` if
    /// already recorded; `shared` the one-row trace of a baseline shared by every row (then
    /// `pairs.baseline` is `None`).
    fn deeplift_rows(
        &self,
        pairs: &Pairs<F>,
        tx: Option<Trace<F>>,
        shared: Option<&Trace<F>>,
        run: &Run<'_>,
    ) -> Result<Attribution<F>> {
        let tx = match tx {
            Some(t) => t,
            None => self.trace(&pairs.x)?,
        };
        let own = match (shared, &pairs.baseline) {
            (None, Some(b)) => Some(self.trace(b)?),
            _ => None,
        };
        let tb = match (shared, &own) {
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => unreachable!("pairs() keeps the rows of an unshared baseline"),
        };
        let seed = self.seed(tx.output(), &pairs.target, run.seed)?;
        let mut rec = Recorded::new(tx, Some(&tb.activations));
        // the contribution `m ⊙ (a − ā)` at value v
        let contribution = |v: usize, m: &ArrayD<F>, rec: &Recorded<'_, F>| {
            let base = rec.base(v).expect("a baseline row broadcasts over the batch");
            m * &(rec.act(v) - &base)
        };
        let rules = vec![run.rule as &dyn Rule<F>; self.nodes().len()];
        let plan = self.plan(&rules);
        let report = run.keep_layers.then_some(&contribution as Report<'_, F>);
        let (m, kept) = self.backward(&mut rec, &rules, &plan, seed.clone(), report)?;
        let out = self.shapes().len() - 1;
        let kk = pairs.k;
        let total = mean_groups(
            per_sample_sum(&contribution(out, &seed, &rec).view()).into_dyn(),
            kk,
        )
        .into_dimensionality()
        .expect("1-D");
        let relevance = mean_groups(contribution(0, &m, &rec), kk);
        let delta = &total - &per_sample_sum(&relevance.view());
        let every_kth = |a: &ArrayD<F>| -> ArrayD<F> {
            let rows: Vec<usize> = (0..a.shape()[0]).step_by(kk).collect();
            a.select(Axis(0), &rows)
        };
        let result = Attribution {
            relevance,
            multipliers: Some(mean_groups(m, kk)),
            output: every_kth(rec.output()),
            baseline_output: Some(mean_groups(
                rec.base(out)
                    .expect("a baseline row broadcasts over the batch")
                    .to_owned(),
                kk,
            )),
            total,
            delta,
            layers: kept.map(|v| v.into_iter().map(|a| mean_groups(a, kk)).collect()),
        };
        // the traces recorded here are done with (a shared baseline's is kept by its owner)
        drop(rec.into_output());
        if let Some(t) = own {
            t.recycle();
        }
        Ok(result)
    }
}

/// What every part of a split batch runs with.
struct Run<'r> {
    rule: &'r DeepLiftRule,
    seed: Seed,
    keep_layers: bool,
}

impl<F: Float> Attribution<F> {
    /// Joins the attributions of consecutive parts of a batch.
    pub(crate) fn concat(mut parts: Vec<Self>) -> Self {
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        let cat = |f: fn(&Self) -> ArrayD<F>| concat_batch(parts.iter().map(f).collect());
        let cat_opt = |f: fn(&Self) -> Option<ArrayD<F>>| -> Option<ArrayD<F>> {
            parts.iter().map(f).collect::<Option<Vec<_>>>().map(concat_batch)
        };
        let one_d = |a: ArrayD<F>| crate::tensor::layout::one_axis(a);
        Attribution {
            relevance: cat(|p| p.relevance.clone()),
            output: cat(|p| p.output.clone()),
            total: one_d(cat(|p| p.total.clone().into_dyn())),
            delta: one_d(cat(|p| p.delta.clone().into_dyn())),
            layers: concat_layers(&parts.iter().map(|p| p.layers.as_ref()).collect::<Vec<_>>()),
            multipliers: cat_opt(|p| p.multipliers.clone()),
            baseline_output: cat_opt(|p| p.baseline_output.clone()),
        }
    }
}
