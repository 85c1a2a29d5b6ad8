//! LRP (and the gradient as a rule set) through the one backward loop: trace, one rule per
//! node, the starting relevance, the loop, and the conservation gap.

use super::backward::Recorded;
use super::{target_rows, Attribution, Options, Seed, Target};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::network::Network;
use crate::rules::{Rule, RuleSet};
use crate::tensor::batch::split_batch;
use crate::tensor::numerics::per_sample_sum;
use ndarray::{ArrayD, Axis, Slice};

impl<F: Float> Network<F> {
    /// One rule per node from a rule set, checked.
    pub(crate) fn resolve<'r, R>(&self, rules: &'r R) -> Result<Vec<&'r dyn Rule<F>>>
    where
        R: RuleSet<F> + ?Sized,
    {
        let per_node = rules.resolve(&self.node_infos());
        if per_node.len() != self.nodes().len() {
            return Err(Error::Graph {
                node: "rule set".into(),
                reason: format!(
                    "the rule set gave {} rules for {} nodes",
                    per_node.len(),
                    self.nodes().len()
                ),
            });
        }
        for (k, r) in per_node.iter().enumerate() {
            r.check_parameters().map_err(self.at(k))?;
        }
        Ok(per_node)
    }

    /// LRP under `rules` with `seed` (resolved: not [`Seed::Method`]), the batch split
    /// across threads.
    pub(crate) fn lrp<R>(
        &self,
        x: &ArrayD<F>,
        target: &Target<F>,
        rules: &R,
        seed: Seed,
        keep_layers: bool,
    ) -> Result<Attribution<F>>
    where
        R: RuleSet<F> + ?Sized,
    {
        self.check_input(x)?;
        self.check_target(x.shape()[0], target)?;
        let options = Options { seed, keep_layers };
        // Samples are independent: split the batch across threads (feature `parallel`).
        let parts = split_batch(x.shape()[0], |rows| {
            let xs = crate::pool::copied(&x.slice_axis(Axis(0), Slice::from(rows.clone())));
            self.lrp_rows(xs, &target_rows(target, rows), rules, options)
        })?;
        Ok(Attribution::concat(parts))
    }

    /// LRP on one part of a batch, on the calling thread.
    fn lrp_rows<R>(
        &self,
        x: ArrayD<F>,
        target: &Target<F>,
        rules: &R,
        options: Options,
    ) -> Result<Attribution<F>>
    where
        R: RuleSet<F> + ?Sized,
    {
        // the part's input becomes the trace's first value (kept to the end of the call)
        let trace = self.trace_owned(x)?;
        let per_node = self.resolve(rules)?;
        let plan = self.plan(&per_node);
        let start = self.seed(trace.output(), target, options.seed)?;
        let total = per_sample_sum(&start.view());
        let mut rec = Recorded::new(trace, None);
        let same = |_: usize, r: &ArrayD<F>, _: &Recorded<'_, F>| r.clone();
        let keep_start = (!options.keep_layers).then(|| start.clone());
        let report = options
            .keep_layers
            .then_some(&same as super::backward::Report<'_, F>);
        let (mut r, layers) = self.backward(&mut rec, &per_node, &plan, start, report)?;
        if rules.times_input() {
            r *= rec.act(0);
        }
        // a non-finite relevance names the node nearest the output where it appeared (the
        // loop released the trace as it went: the pass runs again on a new one)
        self.check_backward("relevance pass", &r, || match (&layers, keep_start) {
            (Some(l), _) => Ok(Some(l.clone())),
            (None, Some(start)) => {
                let mut again = Recorded::new(self.trace(rec.act(0))?, None);
                Ok(self.backward(&mut again, &per_node, &plan, start, Some(&same))?.1)
            }
            (None, None) => Ok(None),
        })?;
        let delta = &total - &per_sample_sum(&r.view());
        let output = rec.into_output();
        Ok(Attribution {
            relevance: r,
            output,
            total,
            delta,
            layers,
            multipliers: None,
            baseline_output: None,
        })
    }
}
