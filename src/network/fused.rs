//! Layers run inside the layer before them in forward passes that keep no values
//! ([`Layer::forward_fused`](crate::Layer::forward_fused)): a convolution's ReLU and 2×2
//! max pool applied as it stores its outputs.

use super::{Network, Op};
use crate::error::Result;
use crate::float::Float;
use ndarray::ArrayD;

impl<F: Float> Network<F> {
    /// The layers after node `k` that may run fused into it ([`Layer::forward_fused`]):
    /// each the next node, a layer whose only input is the node before it and which is that
    /// node's only reader (so the network's output is never fused away). At most two.
    fn fusable(&self, k: usize) -> Vec<crate::layers::Fused> {
        let mut then = Vec::new();
        let mut at = k;
        while then.len() < 2 && at + 1 < self.nodes.len() {
            let next = &self.nodes[at + 1];
            let fused = match &next.op {
                Op::Layer(l) if *next.inputs == [at + 1] && self.consumers[at + 1] == [at + 1] => {
                    l.as_fused(&self.shapes[at + 1])
                }
                _ => None,
            };
            match fused {
                Some(f) => then.push(f),
                None => break,
            }
            at += 1;
        }
        then
    }

    /// Node `k`'s output, with the longest chain of layers after it that it runs fused, and
    /// the last node that output belongs to (`k` if none).
    pub(super) fn forward_fused<'v>(
        &self,
        k: usize,
        n: usize,
        value: impl Fn(usize) -> ndarray::ArrayViewD<'v, F>,
    ) -> Result<(ArrayD<F>, usize)>
    where
        F: 'v,
    {
        let node = &self.nodes[k];
        if let Op::Layer(l) = &node.op {
            let then = self.fusable(k);
            for len in (1..=then.len()).rev() {
                if let Some(out) = l.forward_fused(value(node.inputs[0]), &then[..len]) {
                    let out = out.map_err(self.at(k))?;
                    return Ok((self.promised(k + len, n, out)?, k + len));
                }
            }
        }
        Ok((self.forward_node_with(k, n, value)?, k))
    }
}
