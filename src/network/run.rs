//! The forward pass over the nodes of one part of a batch, keeping every value (a trace) or
//! each only until its last reader has run; in the latter, layers run inside the layer
//! before them where it offers it ([`Layer::forward_fused`](crate::Layer::forward_fused)):
//! a convolution's ReLU and 2×2 max pool applied as it stores its outputs; and a ReLU that
//! alone reads a node's output runs in place on it.

use super::{Network, Op};
use crate::error::Result;
use crate::float::Float;
use crate::layers::Fused;
use ndarray::{ArrayD, ArrayViewD};

impl<F: Float> Network<F> {
    /// The forward pass over one part of a batch; keeps every value if `keep`, else each
    /// value only until its last consumer has run, and runs layers fused where a layer
    /// offers it ([`Layer::forward_fused`]; their values are never made).
    pub(super) fn run(&self, x: ArrayD<F>, keep: bool) -> Result<Vec<Option<ArrayD<F>>>> {
        let n = x.shape()[0];
        self.run_on(Ok(x), n, keep)
    }

    /// [`run`](Self::run) on an owned input (`Ok`) or a borrowed one (`Err`, no copy of
    /// it; `values[0]` is then `None`), of `n` rows.
    pub(super) fn run_on(
        &self,
        x: std::result::Result<ArrayD<F>, ArrayViewD<'_, F>>,
        n: usize,
        keep: bool,
    ) -> Result<Vec<Option<ArrayD<F>>>> {
        let (owned, borrowed) = match x {
            Ok(a) => (Some(a), None),
            Err(v) => (None, Some(v)),
        };
        let mut values: Vec<Option<ArrayD<F>>> = Vec::with_capacity(self.shapes.len());
        values.push(owned);
        let last = self.shapes.len() - 1;
        let mut k = 0;
        while k < self.nodes.len() {
            let value = |u: usize| match (&values[u], &borrowed) {
                (Some(v), _) => v.view(),
                (None, Some(x)) if u == 0 => x.view(),
                _ => unreachable!("an input is computed before its consumers"),
            };
            if keep {
                let out = self.forward_node_with(k, n, value)?;
                values.push(Some(out));
                k += 1;
                continue;
            }
            let (out, end) = self.forward_fused(k, n, value)?;
            values.extend((k..end).map(|_| None));
            values.push(Some(out));
            // a spent value's buffer serves a later node's output
            for j in k..=end {
                for &u in &self.nodes[j].inputs {
                    if u != last && self.consumers[u].last() == Some(&j) {
                        if let Some(a) = values[u].take() {
                            crate::pool::recycle(a);
                        }
                    }
                }
            }
            k = end + 1;
        }
        Ok(values)
    }

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
        value: impl Fn(usize) -> ArrayViewD<'v, F>,
    ) -> Result<(ArrayD<F>, usize)>
    where
        F: 'v,
    {
        let node = &self.nodes[k];
        let then = self.fusable(k);
        if let Op::Layer(l) = &node.op {
            for len in (1..=then.len()).rev() {
                if let Some(out) = l.forward_fused(value(node.inputs[0]), &then[..len]) {
                    let out = out.map_err(self.at(k))?;
                    return Ok((self.promised(k + len, n, out)?, k + len));
                }
            }
        }
        let mut out = self.forward_node_with(k, n, value)?;
        if then.first() == Some(&Fused::Relu) {
            // a ReLU that alone reads this new array runs in place on it: the same function
            // of each element as `Relu::forward`, without a second array (a ResNet block's
            // sum and its ReLU, a dense layer and its ReLU)
            crate::kernels::elementwise::add_channel_bias_relu(&mut out, None);
            return Ok((self.promised(k + 1, n, out)?, k + 1));
        }
        Ok((out, k))
    }
}
