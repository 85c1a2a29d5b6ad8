//! Data tensors and the rearrangements the importer keeps pending: a tensor of the ONNX
//! graph may be a network node's output *seen through* a padding or a permutation of its
//! axes that no layer applies yet.
//!
//! * A `Pad` that only convolutions (zeros) or max-pools (−∞, or −FLT_MAX as CoreML's
//!   converter writes it) read becomes their own padding, never a layer.
//! * A `Transpose` is kept as a permutation of the node's axes: a later `Transpose` composes
//!   with it, and elementwise layers, per-channel affine maps and max-pool-free reductions
//!   act on the node's own axes and keep it. So the transposes that channels-last exports
//!   (TensorFlow's converters) write around every per-channel `Mul`/`Add` cancel out, and
//!   a `Permute` layer is built only where something needs the tensor itself (a
//!   convolution reading a channels-last input: the network then takes that layout, as the
//!   file says).
//!
//! Permutations are per sample, as [`Permute`]: the tensor's axis `i` is the node's axis
//! `perm[i]`.

use super::import::Importer;
use super::layout::{atom_axes, Layout};
use super::values::Const;
use crate::error::Result;
use crate::float::Float;
use crate::io::Op;
use crate::layers::{BatchNorm2d, Layer, Pad, Permute, Reshape};
use crate::network::NodeId;

/// A tensor that depends on the input: the network node computing it, the tensor's own
/// per-sample shape, and how the tensor is obtained from the node's output.
#[derive(Debug, Clone)]
pub(super) struct Data {
    /// The node whose output holds the values.
    pub(super) id: NodeId,
    /// The tensor's per-sample shape (the ONNX graph's, after `view`).
    pub(super) shape: Vec<usize>,
    pub(super) view: View,
}

/// How a data tensor is obtained from its node's output.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum View {
    /// The node's output is the tensor.
    Same,
    /// The node's output padded by `(before, after)` per per-sample axis with `fill`: a
    /// `Pad` waiting for the convolutions or max-pools that read it.
    Padded { pads: Vec<(usize, usize)>, fill: Fill },
    /// The node's output with its per-sample axes permuted (`perm` as [`Permute`]); `from`
    /// names the layer if one must be built (the `Transpose` node).
    Permuted { perm: Vec<usize>, from: String },
    /// One value per sample (the tensor's per-sample shape is `[]`, a reduction over every
    /// per-sample axis without `keepdims`) held by a node of per-sample shape `[1]`: the
    /// network has no node of shape `[]`, so only reshapes (`Unsqueeze`, `Reshape`,
    /// `Flatten`), elementwise layers and elementwise operators with a constant (not two such
    /// tensors) read it, and as the explained output it is given
    /// as `[N, 1]`.
    Scalar,
    /// The node's output regrouped and reordered, the batch axis possibly elsewhere or
    /// merged with others (`layout.rs`): what `nn.MultiheadAttention`'s exports make of
    /// `[N, T, E]` on the way to `[N·heads, T, d]` and back. The tensor's `shape` is its
    /// per-sample shape when the batch is first and alone, else empty. Only the operators
    /// marked for it (`OpDef::layouts`) see such a tensor; any other gets it built
    /// batch-first (`Importer::materialize`), or refuses it if the batch is elsewhere.
    Layout(Box<Layout>),
}

/// The value a pending padding adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    /// Zeros, which a convolution's own padding adds.
    Zero,
    /// −∞ (or −FLT_MAX), which never wins a max: a max-pool's own padding.
    NegInf,
}

impl Data {
    /// Data that is its node's output.
    pub(super) fn node(id: NodeId, shape: Vec<usize>) -> Self {
        Data {
            id,
            shape,
            view: View::Same,
        }
    }

    /// The tensor's layout, if it is not a node's output seen batch-first.
    pub(super) fn layout(&self) -> Option<&Layout> {
        match &self.view {
            View::Layout(l) => Some(l),
            _ => None,
        }
    }

    /// The permutation under the tensor (the identity if none).
    fn perm(&self) -> Vec<usize> {
        match &self.view {
            View::Permuted { perm, .. } => perm.clone(),
            _ => (0..self.shape.len()).collect(),
        }
    }

    /// The pending permutation, if the tensor is one of its node's output.
    pub(super) fn pending_perm(&self) -> Option<&[usize]> {
        match &self.view {
            View::Permuted { perm, .. } => Some(perm),
            _ => None,
        }
    }

    /// The same view of another node's output of the same shape (an elementwise layer
    /// applied to the node's axes).
    pub(super) fn with_node(&self, id: NodeId) -> Data {
        Data {
            id,
            shape: self.shape.clone(),
            view: self.view.clone(),
        }
    }
}

/// `b` after `a`: permuting by `a`, then by `b`, is permuting by the result.
pub(super) fn compose(a: &[usize], b: &[usize]) -> Vec<usize> {
    b.iter().map(|&i| a[i]).collect()
}

/// The inverse permutation.
pub(super) fn inverse(p: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; p.len()];
    for (i, &j) in p.iter().enumerate() {
        inv[j] = i;
    }
    inv
}

/// Whether `p` is a permutation of `0..p.len()`.
pub(super) fn is_permutation(p: &[usize]) -> bool {
    let mut seen = vec![false; p.len()];
    p.iter()
        .all(|&i| i < p.len() && !std::mem::replace(&mut seen[i], true))
}

fn is_identity(p: &[usize]) -> bool {
    p.iter().enumerate().all(|(i, &j)| i == j)
}

/// The permutation of a node's axes that a batch-first layout is, if each of its axes is
/// one node axis (an atom alone, or an axis of size 1).
fn axis_permutation(node_shape: &[usize], l: &Layout) -> Option<Vec<usize>> {
    let of_atom = atom_axes(node_shape, &l.sizes);
    let mut ones = (0..node_shape.len()).filter(|&a| node_shape[a] == 1);
    let perm = l.axes[1..]
        .iter()
        .map(|axis| match axis.as_slice() {
            [] => ones.next(),
            [a] => of_atom[*a],
            _ => None,
        })
        .collect::<Option<Vec<usize>>>()?;
    is_permutation(&perm).then_some(perm)
}

/// The error for a tensor whose batch axis is not first where it must be.
pub(super) fn batch_elsewhere(label: &str, op: &str, l: &Layout) -> crate::Error {
    super::import::unsupported(
        label,
        op,
        format!(
            "reads a tensor of shape {} whose batch axis is at position {} (after a Transpose or Reshape that moved              it): only Transpose, Reshape, Squeeze, Unsqueeze, Gather, MatMul/Gemm by a constant, Softmax and              elementwise operators with a scalar act on such a tensor, the rest needs the batch first",
            show_shape(&l.shape()),
            l.batch_axis()
        ),
    )
}

/// A shape with the batch written `N`.
pub(super) fn show_shape(shape: &[super::values::Sym]) -> String {
    let parts: Vec<String> = shape
        .iter()
        .map(|s| match s {
            super::values::Sym::Int(v) => v.to_string(),
            super::values::Sym::Batch(1) => "N".into(),
            super::values::Sym::Batch(k) => format!("N·{k}"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The values of a constant that broadcasts against data of per-sample shape `shape` (the
/// batch in front) without changing its shape and varies along at most one per-sample
/// axis: `(Some(axis), one value per entry of that axis)`, or `(None, [v])` for one value
/// everywhere. `None` if the constant is anything else.
///
/// With `collapse`, an axis of the data's size along which the constant does not vary
/// counts as one entry: for a scale (`Mul`, `Div`), e.g. an `Expand`ed mask `[1, T, D]` of
/// one value per token is `[1, T, 1]`. Not for a shift: a constant added that varies along
/// the tokens and the features (a token-type embedding row repeated over the tokens) stays a
/// constant node, which absorbs its share of the relevance as lxt's rules do, where a
/// per-channel shift would pass all of it to the data.
pub(super) fn per_axis<F: Float>(
    c: &Const<F>,
    shape: &[usize],
    collapse: bool,
) -> Option<(Option<usize>, Vec<F>)> {
    let a = c.floats().ok()?;
    let rank = shape.len() + 1;
    if a.ndim() > rank {
        return None;
    }
    // align to [1, ...shape]
    let mut full = vec![1usize; rank - a.ndim()];
    full.extend_from_slice(a.shape());
    if full[0] != 1 {
        return None;
    }
    let mut a = a.into_shape_with_order(ndarray::IxDyn(&full)).ok()?;
    // (collapse) an axis of the data's size along which the constant does not vary is one
    // entry; the result's shape is the data's either way
    for k in 1..rank {
        if collapse && full[k] > 1 && full[k] == shape[k - 1] {
            let first = a.index_axis(ndarray::Axis(k), 0).to_owned();
            if a.axis_iter(ndarray::Axis(k)).all(|s| s == first) {
                a = a
                    .slice_axis(ndarray::Axis(k), ndarray::Slice::from(0..1))
                    .to_owned();
                full[k] = 1;
            }
        }
    }
    let varying: Vec<usize> = (1..rank).filter(|&k| full[k] != 1).collect();
    match varying.as_slice() {
        [] => Some((None, vec![*a.iter().next()?])),
        // every other axis is 1: the values in order are the axis' entries
        [k] if full[*k] == shape[k - 1] => Some((Some(k - 1), a.iter().copied().collect())),
        _ => None,
    }
}

impl<'a, F: Float> Importer<'a, F> {
    /// The node computing a data tensor, building what its view still needs (a `Pad` or a
    /// `Permute` layer, named after the node that asked for it, built once per tensor).
    pub(super) fn materialize(&mut self, d: &Data, label: &str) -> Result<NodeId> {
        match &d.view {
            View::Same => Ok(d.id),
            View::Padded { pads, fill } => {
                if *fill == Fill::NegInf {
                    return Err(super::import::unsupported(
                        label,
                        "Pad",
                        "a padding with −∞ that is not a max-pool's",
                    ));
                }
                let layer = Box::new(Pad::new(pads));
                Ok(self.layer(&format!("{label}/pad"), Op::Layer(layer), &[d.id])?.id)
            }
            View::Scalar => Err(super::import::unsupported(
                label,
                "(one value per sample)",
                "reads one value per sample (a reduction over every per-sample axis without keepdims) where only \
                 Unsqueeze, Reshape, Flatten or an elementwise operator of it alone or with a constant can",
            )),
            View::Permuted { perm, from } => self.permute_node(d.id, perm, from),
            View::Layout(l) => {
                let Some(shape) = l.per_sample() else {
                    return Err(batch_elsewhere(label, "", l));
                };
                let ordered = self.ordered(d.id, l, label)?;
                self.reshape_node(ordered, &shape, label)
            }
        }
    }

    /// A `Permute` of a node (built once per node and permutation).
    fn permute_node(&mut self, id: NodeId, perm: &[usize], name: &str) -> Result<NodeId> {
        if is_identity(perm) {
            return Ok(id);
        }
        let key = (id, perm.to_vec());
        if let Some(&p) = self.permuted.get(&key) {
            return Ok(p);
        }
        let layer = Box::new(Permute::new(perm)?);
        let p = self.layer(name, Op::Layer(layer), &[id])?.id;
        self.permuted.insert(key, p);
        Ok(p)
    }

    /// A `Reshape` of a node to a per-sample shape (nothing if it has it; built once per
    /// node and shape).
    pub(super) fn reshape_node(&mut self, id: NodeId, shape: &[usize], label: &str) -> Result<NodeId> {
        if self.builder.shape_of(id) == shape {
            return Ok(id);
        }
        let key = (id, shape.to_vec());
        if let Some(&r) = self.reshaped.get(&key) {
            return Ok(r);
        }
        let layer = Box::new(Reshape::new(shape));
        let r = self
            .layer(&format!("{label}/reshape"), Op::Layer(layer), &[id])?
            .id;
        self.reshaped.insert(key, r);
        Ok(r)
    }

    /// The node of a layout with its shape the layout's atoms (a `Reshape` if it is not).
    pub(super) fn atoms_node(&mut self, id: NodeId, l: &Layout, label: &str) -> Result<NodeId> {
        if l.sizes.is_empty() {
            return Ok(id);
        }
        self.reshape_node(id, &l.sizes, label)
    }

    /// A node holding a layout's atoms in the tensor's order (the batch first): the atoms'
    /// node, permuted if the order is not the memory order.
    fn ordered(&mut self, id: NodeId, l: &Layout, label: &str) -> Result<NodeId> {
        let order = l.order();
        if is_identity(&order) {
            return Ok(id);
        }
        let atoms = self.atoms_node(id, l, label)?;
        self.permute_node(atoms, &order, &format!("{label}/permute"))
    }

    /// The same tensor over a node whose memory holds the atoms in the tensor's order:
    /// the node permuted where needed ([`Layout::rebased`]).
    pub(super) fn rebase(&mut self, id: NodeId, l: &Layout, label: &str) -> Result<(NodeId, Layout)> {
        Ok((self.ordered(id, l, label)?, l.rebased()))
    }

    /// A data tensor as its node and layout (a pending padding applied).
    pub(super) fn layout_of(&mut self, label: &str, d: &Data) -> Result<(NodeId, Layout)> {
        let base = self.unpadded(label, d)?;
        let node_shape = self.builder.shape_of(base.id).to_vec();
        Ok(match &base.view {
            View::Same | View::Padded { .. } => (base.id, Layout::of_node(&node_shape)),
            View::Permuted { perm, .. } => (base.id, Layout::permuted(&node_shape, perm)),
            // one value per sample, in a node of shape [1]
            View::Scalar => (
                base.id,
                Layout {
                    sizes: vec![],
                    axes: vec![vec![super::layout::BATCH_ATOM]],
                },
            ),
            View::Layout(l) => (base.id, (**l).clone()),
        })
    }

    /// The data tensor a node and a layout make: the node itself, or a pending permutation
    /// of it, where the layout is one; else the layout kept.
    pub(super) fn data_of_layout(&mut self, id: NodeId, l: Layout, label: &str) -> Data {
        let node_shape = self.builder.shape_of(id).to_vec();
        if let Some(shape) = l.per_sample() {
            if shape == node_shape && is_identity(&l.order()) {
                return Data::node(id, shape);
            }
            if shape.len() == node_shape.len() {
                if let Some(perm) = axis_permutation(&node_shape, &l) {
                    return Data {
                        id,
                        shape,
                        view: View::Permuted {
                            perm,
                            from: label.to_string(),
                        },
                    };
                }
            }
        }
        Data {
            id,
            shape: l.per_sample().unwrap_or_default(),
            view: View::Layout(Box::new(l)),
        }
    }

    /// The tensor with any pending padding applied (a pending permutation kept).
    fn unpadded(&mut self, label: &str, d: &Data) -> Result<Data> {
        Ok(match d.view {
            View::Padded { .. } => Data::node(self.materialize(d, label)?, d.shape.clone()),
            _ => d.clone(),
        })
    }

    /// A node whose output holds the tensor's values in the tensor's order (C order), for
    /// a reshape: the tensor's node itself where a pending permutation only moves axes of
    /// length 1 (e.g. `[C, 1, 1]` seen as `[1, 1, C]`), else the materialized tensor.
    pub(super) fn in_order(&mut self, label: &str, d: &Data) -> Result<NodeId> {
        if d.view == View::Scalar {
            // the one value per sample, in its node of shape [1]
            return Ok(d.id);
        }
        if let Some(perm) = d.pending_perm() {
            let node_shape = self.builder.shape_of(d.id);
            let moved: Vec<usize> = perm.iter().copied().filter(|&a| node_shape[a] != 1).collect();
            if moved.windows(2).all(|w| w[0] < w[1]) {
                return Ok(d.id);
            }
        }
        self.materialize(d, label)
    }

    /// A layer that acts on every value alike (an activation) applied to data: to the
    /// node's own axes if the tensor is a pending permutation of them (which it keeps).
    pub(super) fn elementwise(&mut self, label: &str, layer: Box<dyn Layer<F>>, d: &Data) -> Result<Data> {
        let base = self.unpadded(label, d)?;
        let out = self.layer(label, Op::Layer(layer), &[base.id])?;
        Ok(base.with_node(out.id))
    }

    /// The affine map `x·scale + shift` along per-sample axis `axis` of data (one value of
    /// each per entry of that axis), as a [`BatchNorm2d`]: directly where the axis is the
    /// node's channel axis (also through a pending permutation), else after a `Permute`
    /// that brings it first, the tensor then a pending permutation of that layer's output.
    pub(super) fn affine_along(
        &mut self,
        label: &str,
        d: &Data,
        axis: usize,
        layer: BatchNorm2d<F>,
    ) -> Result<Data> {
        let base = self.unpadded(label, d)?;
        let perm = base.perm();
        let node_axis = perm[axis];
        if node_axis == 0 {
            let out = self.layer(label, Op::Layer(Box::new(layer)), &[base.id])?;
            return Ok(base.with_node(out.id));
        }
        // bring the node's axis `node_axis` first, apply, and keep the way back pending
        let front: Vec<usize> = std::iter::once(node_axis)
            .chain((0..perm.len()).filter(|&a| a != node_axis))
            .collect();
        let moved = self.layer(
            &format!("{label}/permute"),
            Op::Layer(Box::new(Permute::new(&front)?)),
            &[base.id],
        )?;
        let out = self.layer(label, Op::Layer(Box::new(layer)), &[moved.id])?;
        let perm = compose(&inverse(&front), &perm);
        Ok(Data {
            id: out.id,
            shape: d.shape.clone(),
            view: if is_identity(&perm) {
                View::Same
            } else {
                View::Permuted {
                    perm,
                    from: format!("{label}/permute_back"),
                }
            },
        })
    }

    /// Data permuted by `per` (per sample): composed with a pending permutation, nothing
    /// built (a pending padding is applied first).
    pub(super) fn permuted(&mut self, label: &str, d: &Data, per: &[usize]) -> Result<Data> {
        let base = self.unpadded(label, d)?;
        let perm = compose(&base.perm(), per);
        let shape = per.iter().map(|&a| d.shape[a]).collect();
        Ok(Data {
            id: base.id,
            shape,
            view: if is_identity(&perm) {
                View::Same
            } else {
                View::Permuted {
                    perm,
                    from: label.to_string(),
                }
            },
        })
    }

    /// The node's axes that a tensor's per-sample axes `axes` are (through a pending
    /// permutation), and the node, for operations that only care which axes they act on.
    pub(super) fn node_axes(
        &mut self,
        label: &str,
        d: &Data,
        axes: &[usize],
    ) -> Result<(NodeId, Vec<usize>)> {
        match &d.view {
            View::Permuted { perm, .. } => Ok((d.id, axes.iter().map(|&a| perm[a]).collect())),
            _ => Ok((self.materialize(d, label)?, axes.to_vec())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn permutations_compose_like_permute_layers() {
        // NCHW → NHWC, then back: the identity
        let (to_last, to_first) = ([1, 2, 0], [2, 0, 1]);
        assert_eq!(compose(&to_last, &to_first), [0, 1, 2]);
        assert_eq!(inverse(&to_last), to_first);
        assert!(is_permutation(&[2, 0, 1]) && !is_permutation(&[0, 0, 1]) && !is_permutation(&[0, 3, 1]));
        // composing equals applying the two Permute layers one after the other
        let x = ArrayD::from_shape_fn(IxDyn(&[1, 2, 3, 4]), |i| (i[1] * 100 + i[2] * 10 + i[3]) as f64);
        let (a, b) = ([2, 0, 1], [0, 2, 1]);
        let two = Layer::<f64>::forward(
            &Permute::new(&b).unwrap(),
            Layer::<f64>::forward(&Permute::new(&a).unwrap(), x.view())
                .unwrap()
                .view(),
        )
        .unwrap();
        let one = Layer::<f64>::forward(&Permute::new(&compose(&a, &b)).unwrap(), x.view()).unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn per_axis_constants() {
        let c = |shape: &[usize], v: Vec<f64>| Const::Float(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap());
        // NHWC per-channel [1, 1, 1, C] against [H, W, C]
        assert_eq!(
            per_axis(&c(&[1, 1, 1, 3], vec![1.0, 2.0, 3.0]), &[4, 5, 3], false),
            Some((Some(2), vec![1.0, 2.0, 3.0]))
        );
        // NCHW [C, 1, 1]
        assert_eq!(
            per_axis(&c(&[3, 1, 1], vec![1.0, 2.0, 3.0]), &[3, 4, 5], false),
            Some((Some(0), vec![1.0, 2.0, 3.0]))
        );
        assert_eq!(
            per_axis(&c(&[], vec![7.0]), &[3, 4], false),
            Some((None, vec![7.0]))
        );
        // varying along two axes, broadcasting the data, or over the batch: no
        assert_eq!(
            per_axis(&c(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]), &[2, 2], false),
            None
        );
        // the same value along an axis of the data's size: one value per entry of the other
        // (for a scale only)
        let rows = c(&[1, 2, 3], vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        assert_eq!(per_axis(&rows, &[2, 3], true), Some((Some(0), vec![1.0, 2.0])));
        assert_eq!(per_axis(&rows, &[2, 3], false), None);
        assert_eq!(
            per_axis(&c(&[2, 2], vec![1.0; 4]), &[2, 2], true),
            Some((None, vec![1.0]))
        );
        assert_eq!(per_axis(&c(&[3], vec![1.0; 3]), &[4, 1], true), None);
        assert_eq!(per_axis(&c(&[2, 3], vec![1.0; 6]), &[3], true), None);
    }
}
