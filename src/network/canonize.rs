//! zennit's batch-norm canonizer: a batch normalisation that directly follows a dense or
//! convolutional layer is folded into that layer's weight and bias.

use super::{GraphBuilder, Network, NodeId, Op};
use crate::error::Result;
use crate::float::Float;
use crate::layers::Layer;
use ndarray::{Array1, ArrayD, Axis};

impl<F: Float> Network<F> {
    /// Folds every batch normalisation (any layer with a
    /// [`channel_affine`](Layer::channel_affine) map) whose input comes straight from a
    /// dense or convolutional layer, and is that layer's only reader, into the layer:
    /// `W' = W·scale` per output channel, `b' = (b − μ)·scale + β` with
    /// `scale = γ / √(σ² + ε)`. This is zennit's `MergeBatchNorm` canonizer
    /// (`canonizers.py`, as `SequentialMergeBatchNorm`, `VGGCanonizer` and
    /// `ResNetCanonizer` apply it) with zennit's current semantics: the batch norm is
    /// removed entirely (zennit 0.5.1 leaves it dividing by `√(1 + ε)`, a relative error of
    /// `ε/2`).
    ///
    /// The output is unchanged up to rounding; what changes is the explanation: LRP rules
    /// then see the batch norm as part of the affine layer (as zennit's canonizers intend),
    /// instead of passing relevance through it. DeepLIFT is unaffected (both forms are
    /// linear). The merged layer keeps the name of the dense or convolutional node; the
    /// batch-norm node is gone. A batch norm that cannot be merged (one after a
    /// concatenation or an activation, as in DenseNet) stays, and LRP passes relevance
    /// through it, as zennit does.
    ///
    /// ```
    /// use ndarray::{array, Array1};
    /// use relevance::{BatchNorm2d, Dense, GraphBuilder, Relu};
    /// # fn main() -> relevance::Result<()> {
    /// let mut g = GraphBuilder::<f64>::new(&[2])?;
    /// let fc = g.add("fc", Dense::new(array![[1.0, 2.0], [3.0, 4.0]], None)?, g.input())?;
    /// let bn = g.add("bn", BatchNorm2d::new(array![0.5, -1.0], array![4.0, 1.0], array![1.0, 2.0], array![0.0, 0.1], 0.0)?, fc)?;
    /// let out = g.add("relu", Relu, bn)?;
    /// let net = g.build(out)?;
    /// let x = array![[1.0, -1.0]].into_dyn();
    /// let before = net.forward(&x)?;
    /// let merged = net.merge_batch_norm()?;
    /// assert_eq!(merged.nodes().len(), 2); // fc (with the batch norm inside) and relu
    /// assert!((merged.forward(&x)? - before).iter().all(|d| d.abs() < 1e-12));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Whatever rebuilding the merged layers reports (it does not fail for the built-in
    /// layers).
    pub fn merge_batch_norm(self) -> Result<Network<F>> {
        // node b (a batch norm) merges into node a when a is affine and b its only reader
        let mut into: Vec<Option<usize>> = vec![None; self.nodes.len()];
        let mut merged: Vec<Option<Box<dyn Layer<F>>>> = (0..self.nodes.len()).map(|_| None).collect();
        for (b, node) in self.nodes.iter().enumerate() {
            let Some((scale, shift)) = node.layer().and_then(|l| l.channel_affine()) else {
                continue;
            };
            let u = node.inputs[0];
            if u == 0 || self.consumers[u] != [b] {
                continue;
            }
            let a = u - 1;
            let Some(affine) = self.nodes[a].layer().and_then(|l| l.as_affine()) else {
                continue;
            };
            let w = affine.weight();
            if w.ndim() < 1 || w.shape()[0] != scale.len() {
                continue;
            }
            let mut weight: ArrayD<F> = w.to_owned();
            for (mut row, &s) in weight.axis_iter_mut(Axis(0)).zip(scale.iter()) {
                row.mapv_inplace(|v| v * s);
            }
            let bias: Array1<F> = match affine.bias() {
                Some(b) => &b * &scale + &shift,
                None => shift.clone(),
            };
            if let Some(layer) = affine.with_parameters(weight, bias) {
                merged[a] = Some(layer?);
                into[b] = Some(a);
            }
        }
        let (input_shape, nodes) = self.into_nodes();
        let mut g = GraphBuilder::new(&input_shape)?;
        let mut ids: Vec<NodeId> = vec![g.input()];
        for (k, node) in nodes.into_iter().enumerate() {
            if let Some(a) = into[k] {
                // the batch norm's output is the merged layer's
                ids.push(ids[a + 1]);
                continue;
            }
            let inputs: Vec<NodeId> = node.inputs.iter().map(|&u| ids[u]).collect();
            let id = match (merged[k].take(), node.op) {
                (Some(layer), _) => g.add_boxed(&node.name, layer, inputs[0])?,
                (None, Op::Layer(layer)) => g.add_shared(&node.name, layer, inputs[0])?,
                (None, Op::Merge(m)) => g.merge_shared(&node.name, m, &inputs)?,
            };
            ids.push(id);
        }
        let out = *ids.last().expect("the input at least");
        g.build(out)
    }
}
