//! zennit's batch-norm canonizer: a batch normalisation that directly follows a dense or
//! convolutional layer is folded into that layer's weight and bias.

use super::{Network, Op};
use crate::error::Result;
use crate::float::Float;
use crate::layers::Layer;
use ndarray::Array1;

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
            let Some(affine) = self.nodes[a].affine() else {
                continue;
            };
            let w = affine.weight();
            // a dense layer on tokens ([N, T, D]) has its outputs on the last axis, not the
            // batch norm's channel axis
            if w.ndim() == 2 && self.shapes[u].len() != 1 {
                continue;
            }
            // per output channel: axis 0 of dense and conv weights, axis 1 (per group) of a
            // transposed convolution's (zennit's canonizer likewise indexes dim 1 there)
            let Some(weight) = affine.scale_output_channels(scale.view()) else {
                continue;
            };
            let bias: Array1<F> = match affine.bias() {
                Some(b) => &b * &scale + &shift,
                None => shift.clone(),
            };
            if let Some(layer) = affine.with_parameters(weight, bias) {
                merged[a] = Some(layer?);
                into[b] = Some(a);
            }
        }
        if into.iter().all(Option::is_none) {
            return Ok(self);
        }
        // Rebuilt in place: a merged batch norm's node and value are dropped (its readers
        // read the affine node's value instead), the affine node takes the merged layer.
        // Both have the batch norm's output shape.
        let Network { nodes, shapes, .. } = self;
        let mut renumber: Vec<usize> = Vec::with_capacity(shapes.len());
        renumber.push(0);
        let mut kept_nodes = Vec::with_capacity(nodes.len());
        let mut kept_shapes = Vec::with_capacity(shapes.len());
        let mut shapes = shapes.into_iter();
        kept_shapes.extend(shapes.next());
        for (k, (mut node, shape)) in nodes.into_iter().zip(shapes).enumerate() {
            if let Some(a) = into[k] {
                renumber.push(renumber[a + 1]);
                continue;
            }
            node.inputs.iter_mut().for_each(|u| *u = renumber[*u]);
            if let Some(layer) = merged[k].take() {
                let input = &kept_shapes[node.inputs[0]];
                let out = layer.output_shape(input)?;
                if out != shape {
                    return Err(crate::Error::Shape {
                        what: format!("{} merged with its batch norm", layer.name()),
                        expected: shape,
                        got: out,
                    });
                }
                node.op = Op::Layer(layer.into());
            }
            kept_nodes.push(node);
            kept_shapes.push(shape);
            renumber.push(kept_nodes.len());
        }
        Ok(Network::from_parts(kept_nodes, kept_shapes))
    }
}
