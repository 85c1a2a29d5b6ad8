//! Held inputs: extra inputs of a network that are given per call, identical for the
//! explained input and its baselines (references), and not attributed — e.g. the control
//! tracks `X_ctl` of bpnet-lite's `BPNet(n_control_tracks=2)` (`bpnetlite/bpnet.py`,
//! `forward(X, X_ctl)`), which tangermeme's `deep_lift_shap(model, X, args=(X_ctl,), ...)`
//! (`tangermeme/deep_lift_shap.py`) repeats unchanged for every reference of a sequence.
//!
//! A held input is a node without input ([`Op::Held`]); [`Network::bind`] returns the
//! network with each held input replaced by a constant ([`Op::Constant`]), every other node
//! shared.

use super::{Network, Node, Op};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::checks::check_finite;
use ndarray::{ArrayD, IxDyn};
use std::sync::Arc;

/// The per-sample shape of a one-row value `[1, shape...]`.
pub(super) fn check_row<F: Float>(value: &ArrayD<F>) -> Result<Vec<usize>> {
    if value.ndim() < 2 {
        return Err(Error::Rank {
            what: "one-row value [1, shape...]".into(),
            expected: 2,
            got: value.ndim(),
            shape: value.shape().to_vec(),
        });
    }
    if value.shape()[0] != 1 {
        let mut expected = value.shape().to_vec();
        expected[0] = 1;
        return Err(Error::Shape {
            what: "one-row value (batch axis of 1)".into(),
            expected,
            got: value.shape().to_vec(),
        });
    }
    Ok(value.shape()[1..].to_vec())
}

/// The one-row value `row` repeated for `n` rows.
pub(super) fn broadcast_rows<F: Float>(row: &ArrayD<F>, n: usize) -> Result<ArrayD<F>> {
    let mut shape = row.shape().to_vec();
    shape[0] = n;
    row.broadcast(IxDyn(&shape))
        .map(|v| v.to_owned())
        .ok_or_else(|| Error::Shape {
            what: "constant broadcast over the batch".into(),
            expected: shape,
            got: row.shape().to_vec(),
        })
}

impl<F: Float> Network<F> {
    /// The held inputs still without a value, in the order [`Network::bind`] takes their
    /// values: each one's name and per-sample shape (no batch axis). Empty for a network
    /// without held inputs, or once bound.
    pub fn held_inputs(&self) -> Vec<(&str, &[usize])> {
        self.held
            .iter()
            .map(|&k| (self.nodes[k].name(), self.shapes[k + 1].as_slice()))
            .collect()
    }

    /// The error for the first held input without a value, if any.
    pub(crate) fn check_bound(&self) -> Result<()> {
        match self.held.first() {
            None => Ok(()),
            Some(&k) => Err(Error::UnboundHeldInput {
                name: self.nodes[k].name.clone(),
            }),
        }
    }

    /// The network with every held input ([`GraphBuilder::held_input`](crate::GraphBuilder::held_input))
    /// given a value: `values[i]` is the value of the `i`-th of [`Network::held_inputs`],
    /// one row `[1, shape...]`, which every row of every batch then sees (broadcast). The
    /// held inputs become constants ([`Op::Constant`]) of the same names; every other node
    /// is shared with `self` (reference counts, no copy of the weights), so binding once
    /// per sequence is cheap. `self` is unchanged and can be bound again.
    ///
    /// # What explanations do with a held input
    /// A bound held input is a constant: the same for the input and for its baselines
    /// (references), as tangermeme passes `args` unchanged to every reference. It is not
    /// attributed. Whatever reaches it in a backward pass — LRP relevance, DeepLIFT
    /// multipliers, gradients — is dropped there, as at a bias:
    /// - DeepLIFT (and DeepLIFT-SHAP, [`crate::genomics`]): its difference to the baseline
    ///   is zero, so it takes no contribution and **summation-to-delta over the main input
    ///   holds exactly**: `Σ attribution = f(x, h) − f(x̄, h)`.
    /// - LRP: the relevance it absorbs is missing from the input's total, like a bias's
    ///   share; it shows in [`Attribution::delta`](crate::Attribution::delta).
    /// - Gradients: a gradient with respect to the main input only.
    ///
    /// # Example
    /// A count head reading a control track `c` next to the input:
    /// `y = w·x + log(1 + Σ c)`.
    /// ```
    /// use ndarray::{array, ArrayD};
    /// use relevance::{Baseline, Concat, Dense, DeepLift, Flatten, GraphBuilder, Log1p, Target};
    /// # fn main() -> relevance::Result<()> {
    /// let mut g = GraphBuilder::<f64>::new(&[2])?;
    /// let ctl = g.held_input("ctl", &[3])?;
    /// let total = g.add("ctl.sum", Dense::new(array![[1.0, 1.0, 1.0]], None)?, ctl)?;
    /// let log = g.add("ctl.log1p", Log1p, total)?;
    /// let both = g.merge("cat", Concat::new(0), &[g.input(), log])?;
    /// let head = g.add("linear", Dense::new(array![[2.0, -1.0, 1.0]], None)?, both)?;
    /// let net = g.build(head)?;
    /// assert_eq!(net.held_inputs(), vec![("ctl", &[3usize][..])]);
    ///
    /// let x = array![[1.0, 0.5]].into_dyn();
    /// assert!(net.forward(&x).is_err()); // not bound yet: Error::UnboundHeldInput
    /// let c: ArrayD<f64> = array![[1.0, 2.0, 4.0]].into_dyn(); // one row: [1, 3]
    /// let bound = net.bind(&[c])?;
    /// let y = bound.forward(&x)?;
    /// assert!((y[[0, 0]] - (2.0 - 0.5 + 8.0_f64.ln())).abs() < 1e-12);
    ///
    /// // DeepLIFT against a zero baseline: the control track is the same on both sides,
    /// // so the contributions of x add up to f(x, c) − f(0, c) exactly.
    /// let d = bound.deeplift(&x, &Target::Class(0), &DeepLift::rescale(), &Baseline::Zero)?;
    /// assert!((d.attribution.sum() - 1.5).abs() < 1e-12);
    /// assert!(d.delta[0].abs() < 1e-12);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::HeldInputCount`] if `values` does not have one value per held input;
    /// [`Error::HeldInput`] naming the held input, wrapping [`Error::Rank`] or
    /// [`Error::Shape`] (expected `[1, shape...]`, got the value's shape) for a value of
    /// the wrong shape or batch size, or [`Error::NonFinite`] for NaN or infinity in it.
    pub fn bind(&self, values: &[ArrayD<F>]) -> Result<Network<F>> {
        if values.len() != self.held.len() {
            return Err(Error::HeldInputCount {
                names: self.held_inputs().iter().map(|(n, _)| n.to_string()).collect(),
                got: values.len(),
            });
        }
        let mut bound: Vec<Option<Arc<ArrayD<F>>>> = vec![None; self.nodes.len()];
        for (&k, value) in self.held.iter().zip(values) {
            let name = &self.nodes[k].name;
            let wrap = |source: Error| Error::HeldInput {
                name: name.clone(),
                source: Box::new(source),
            };
            let shape = &self.shapes[k + 1];
            let mut expected = vec![1];
            expected.extend_from_slice(shape);
            if value.ndim() != expected.len() {
                return Err(wrap(Error::Rank {
                    what: format!("value of the held input (expected shape {expected:?})"),
                    expected: expected.len(),
                    got: value.ndim(),
                    shape: value.shape().to_vec(),
                }));
            }
            if value.shape() != expected.as_slice() {
                return Err(wrap(Error::Shape {
                    what: "value of the held input (one row: a batch axis of 1, then its shape)".into(),
                    expected,
                    got: value.shape().to_vec(),
                }));
            }
            check_finite("value of the held input", &value.view()).map_err(wrap)?;
            bound[k] = Some(Arc::new(value.as_standard_layout().into_owned()));
        }
        let nodes = self
            .nodes
            .iter()
            .zip(bound)
            .map(|(node, value)| Node {
                name: node.name.clone(),
                op: match value {
                    Some(v) => Op::Constant(v),
                    None => node.op.clone(),
                },
                inputs: node.inputs.clone(),
            })
            .collect();
        Ok(Network::from_parts(nodes, self.shapes.clone()))
    }
}
