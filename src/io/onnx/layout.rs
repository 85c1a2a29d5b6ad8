//! Tensors whose batch axis is not (only) the first: the layout of a data tensor as the
//! axes of its node's output regrouped and reordered.
//!
//! A network node's output is `[N, ...]`, batch first. `nn.MultiheadAttention` as both
//! PyTorch exporters write it (torchvision's ViT) moves the batch: `[N, T, E]` is
//! transposed to `[T, N, E]`, projected, reshaped to `[T, N·heads, d]`, transposed to
//! `[N·heads, T, d]`, …, and merged back as `[T·N, E]` before the output projection. Each
//! such tensor is the node's values seen differently: the node's per-sample values are a
//! sequence of *atoms* (its axes, split where a reshape splits them) in memory order, and
//! the tensor's axes are groups of atoms — and of the batch — in some order. Reshapes
//! regroup, transposes reorder, and nothing is computed until a layer needs the tensor
//! batch-first (then a `Reshape`/`Permute` is built, `view.rs`) or can act on the atoms
//! where they are (a dense layer on trailing atoms, a selection along one atom).
//!
//! A [`Layout`] is kept canonical: atoms of size 1 are dropped (an axis of size 1 is an
//! empty group) and atoms are numbered in memory order.

use super::values::Sym;

/// The batch in a group of atoms.
pub(super) const BATCH_ATOM: usize = usize::MAX;

/// How a tensor is its node's output regrouped: per-sample atoms (sizes, in the node's
/// memory order: atom `i` is the `i`-th) and the tensor's axes as groups of atoms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Atom sizes, in memory order (each > 1).
    pub(super) sizes: Vec<usize>,
    /// The tensor's axes, each the atoms it merges (major first); [`BATCH_ATOM`] once.
    pub(super) axes: Vec<Vec<usize>>,
}

impl Layout {
    /// A node's output seen as it is: `[N, shape...]`.
    pub(super) fn of_node(shape: &[usize]) -> Self {
        Self::permuted(shape, &(0..shape.len()).collect::<Vec<_>>())
    }

    /// A node's output with its per-sample axes permuted (`perm` as `Permute`: the tensor's
    /// axis `i` is the node's axis `perm[i]`).
    pub(super) fn permuted(shape: &[usize], perm: &[usize]) -> Self {
        let mut axes = vec![vec![BATCH_ATOM]];
        axes.extend(perm.iter().map(|&p| vec![p]));
        Raw {
            sizes: shape.to_vec(),
            memory: (0..shape.len()).collect(),
            axes,
        }
        .canonical()
    }

    /// The tensor's full shape, the batch as a multiple of the batch size.
    pub(super) fn shape(&self) -> Vec<Sym> {
        self.axes
            .iter()
            .map(|axis| {
                let n: usize = axis
                    .iter()
                    .filter(|&&a| a != BATCH_ATOM)
                    .map(|&a| self.sizes[a])
                    .product();
                if axis.contains(&BATCH_ATOM) {
                    Sym::Batch(n as i64)
                } else {
                    Sym::Int(n as i64)
                }
            })
            .collect()
    }

    /// The axis that holds the batch.
    pub(super) fn batch_axis(&self) -> usize {
        self.axes
            .iter()
            .position(|a| a.contains(&BATCH_ATOM))
            .expect("a layout holds the batch")
    }

    /// Whether the batch is the first axis, alone: the tensor is `[N, ...]`.
    pub(super) fn batch_first(&self) -> bool {
        self.axes.first().is_some_and(|a| a == &[BATCH_ATOM])
    }

    /// The per-sample shape, when the batch is first and alone.
    pub(super) fn per_sample(&self) -> Option<Vec<usize>> {
        self.batch_first().then(|| {
            self.axes[1..]
                .iter()
                .map(|axis| axis.iter().map(|&a| self.sizes[a]).product())
                .collect()
        })
    }

    /// The atoms in the tensor's order, the batch left out.
    pub(super) fn order(&self) -> Vec<usize> {
        self.axes
            .iter()
            .flatten()
            .copied()
            .filter(|&a| a != BATCH_ATOM)
            .collect()
    }

    /// The tensor transposed: axis `i` of the result is axis `perm[i]`.
    pub(super) fn transpose(&self, perm: &[usize]) -> Self {
        Layout {
            sizes: self.sizes.clone(),
            axes: perm.iter().map(|&p| self.axes[p].clone()).collect(),
        }
    }

    /// The tensor reshaped to `target` (every entry resolved, the batch as a multiple of
    /// the batch size), regrouping the atoms in the tensor's order and splitting an atom
    /// where a group ends inside it; `None` if the target does not regroup them (the batch
    /// would be split, or mixed into a plain number).
    pub(super) fn reshape(&self, target: &[Sym]) -> Option<Self> {
        let mut raw = Raw::from(self);
        let mut order: Vec<usize> = raw.axes.concat();
        let mut pos = 0;
        let mut axes = Vec::with_capacity(target.len());
        for &t in target {
            let (want_batch, want) = match t {
                Sym::Int(d) => (false, usize::try_from(d).ok()?),
                Sym::Batch(k) => (true, usize::try_from(k).ok()?),
            };
            if want == 0 {
                return None;
            }
            let (mut axis, mut prod, mut got_batch) = (Vec::new(), 1usize, false);
            while prod != want || got_batch != want_batch {
                let &a = order.get(pos)?;
                if a == BATCH_ATOM {
                    if !want_batch || got_batch {
                        return None;
                    }
                    got_batch = true;
                } else {
                    let s = raw.sizes[a];
                    let next = prod.checked_mul(s)?;
                    if want % next != 0 {
                        // the group ends inside this atom: split it
                        let need = want / prod;
                        if want % prod != 0 || need <= 1 || s % need != 0 {
                            return None;
                        }
                        let rest = raw.split(a, need);
                        order.insert(pos + 1, rest);
                        prod = want;
                    } else {
                        prod = next;
                    }
                }
                axis.push(a);
                pos += 1;
            }
            axes.push(axis);
        }
        if pos != order.len() {
            return None;
        }
        raw.axes = axes;
        Some(raw.canonical())
    }

    /// The layout after atom `atom` is narrowed to `len` entries (a selection along it);
    /// with `drop_axis`, the tensor axis `axis` (that atom alone) disappears.
    pub(super) fn narrowed(&self, atom: usize, len: usize, drop_axis: Option<usize>) -> Self {
        let mut raw = Raw::from(self);
        raw.sizes[atom] = len;
        if let Some(axis) = drop_axis {
            raw.axes.remove(axis);
        }
        raw.canonical()
    }

    /// The layout after the trailing atoms `last` (in memory order) are replaced by one
    /// atom of size `m` (a dense layer on the last axis), that axis holding it alone.
    pub(super) fn dense(&self, last_axis: usize, m: usize) -> Self {
        let mut raw = Raw::from(self);
        let gone = raw.axes[last_axis].clone();
        raw.memory.retain(|a| !gone.contains(a));
        let id = raw.sizes.len();
        raw.sizes.push(m);
        raw.memory.push(id);
        raw.axes[last_axis] = vec![id];
        raw.canonical()
    }

    /// The same tensor over a node whose memory holds the atoms in the tensor's order (the
    /// batch first): what a `Permute` by [`Layout::order`] makes of the node.
    pub(super) fn rebased(&self) -> Self {
        let order = self.order();
        let mut rank = vec![0; self.sizes.len()];
        for (i, &a) in order.iter().enumerate() {
            rank[a] = i;
        }
        Layout {
            sizes: order.iter().map(|&a| self.sizes[a]).collect(),
            axes: self
                .axes
                .iter()
                .map(|axis| {
                    axis.iter()
                        .map(|&a| if a == BATCH_ATOM { a } else { rank[a] })
                        .collect()
                })
                .collect(),
        }
    }
}

/// A layout being rewritten: atoms by id, with their memory order apart.
struct Raw {
    sizes: Vec<usize>,
    memory: Vec<usize>,
    axes: Vec<Vec<usize>>,
}

impl From<&Layout> for Raw {
    fn from(l: &Layout) -> Self {
        Raw {
            sizes: l.sizes.clone(),
            memory: (0..l.sizes.len()).collect(),
            axes: l.axes.clone(),
        }
    }
}

impl Raw {
    /// Splits atom `a` into `(first, size / first)`: `a` keeps the major part, the new atom
    /// (returned) follows it in memory.
    fn split(&mut self, a: usize, first: usize) -> usize {
        let id = self.sizes.len();
        self.sizes.push(self.sizes[a] / first);
        self.sizes[a] = first;
        let at = self
            .memory
            .iter()
            .position(|&m| m == a)
            .expect("an atom in memory");
        self.memory.insert(at + 1, id);
        id
    }

    /// Atoms of size 1 dropped, the rest numbered in memory order.
    fn canonical(self) -> Layout {
        let mut id = vec![usize::MAX; self.sizes.len()];
        let mut sizes = Vec::new();
        for &m in &self.memory {
            if self.sizes[m] != 1 {
                id[m] = sizes.len();
                sizes.push(self.sizes[m]);
            }
        }
        let axes = self
            .axes
            .iter()
            .map(|axis| {
                axis.iter()
                    .filter_map(|&a| match a {
                        BATCH_ATOM => Some(BATCH_ATOM),
                        a if self.sizes[a] == 1 => None,
                        a => Some(id[a]),
                    })
                    .collect()
            })
            .collect();
        Layout { sizes, axes }
    }
}

/// For each atom, the node axis (of a node of per-sample shape `shape`, whose memory holds
/// the atoms in order) that is that atom alone, if any.
pub(super) fn atom_axes(shape: &[usize], sizes: &[usize]) -> Vec<Option<usize>> {
    // an atom is a node axis alone when both start and end at the same place in memory
    let spans = |dims: &[usize]| -> Vec<(usize, usize)> {
        let mut at = 1usize;
        dims.iter()
            .map(|&d| {
                let start = at;
                at = at.saturating_mul(d);
                (start, at)
            })
            .collect()
    };
    let (nodes, atoms) = (spans(shape), spans(sizes));
    atoms
        .iter()
        .map(|span| nodes.iter().zip(shape).position(|(n, &d)| n == span && d > 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Sym::{Batch, Int};

    const B: usize = BATCH_ATOM;

    /// The legacy export of `nn.MultiheadAttention` on `[N, 197, 768]` with 12 heads, step by
    /// step (torchvision's ViT).
    #[test]
    fn multihead_attention_moves_the_batch_and_back() {
        // [N, T, E] -> transpose(1, 0) -> [T, N, E]
        let x = Layout::of_node(&[197, 768]).transpose(&[1, 0, 2]);
        assert_eq!(x.shape(), [Int(197), Batch(1), Int(768)]);
        assert!(!x.batch_first());
        // the packed projection on the last axis: [T, N, 3E]
        let p = x.dense(2, 2304);
        assert_eq!(p.axes, vec![vec![0], vec![B], vec![1]]);
        // [T, N, 3, E] -> unsqueeze(0) -> transpose(3, 1, 2, 0, 4) -> squeeze(3): [3, T, N, E]
        let p = p.reshape(&[Int(197), Batch(1), Int(3), Int(768)]).unwrap();
        assert_eq!(p.sizes, [197, 3, 768]);
        let p = p
            .reshape(&[Int(1), Int(197), Batch(1), Int(3), Int(768)])
            .unwrap()
            .transpose(&[3, 1, 2, 0, 4]);
        let p = p.reshape(&[Int(3), Int(197), Batch(1), Int(768)]).unwrap();
        assert_eq!(p.axes, vec![vec![1], vec![0], vec![B], vec![2]]);
        // select q (atom 1 narrowed to 1 entry, axis 0 gone): [T, N, E]
        let q = p.narrowed(1, 1, Some(0));
        assert_eq!(q.sizes, [197, 768]);
        assert_eq!(q.shape(), [Int(197), Batch(1), Int(768)]);
        // [T, N·12, 64] -> transpose(1, 0) -> [N·12, T, 64] -> [N, 12, T, 64]
        let q = q
            .reshape(&[Int(197), Batch(12), Int(64)])
            .unwrap()
            .transpose(&[1, 0, 2]);
        assert_eq!(q.shape(), [Batch(12), Int(197), Int(64)]);
        let q = q.reshape(&[Batch(1), Int(12), Int(197), Int(64)]).unwrap();
        assert!(q.batch_first());
        assert_eq!(q.per_sample(), Some(vec![12, 197, 64]));
        assert_eq!(q.order(), [1, 0, 2]); // memory [T, 12, 64] seen as [12, T, 64]
                                          // the context [N, 12, T, 64] -> transpose(2, 0, 1, 3) -> [T·N, 768]
        let c = Layout::of_node(&[12, 197, 64]).transpose(&[2, 0, 1, 3]);
        let c = c.reshape(&[Batch(197), Int(768)]).unwrap();
        assert_eq!(c.axes, vec![vec![1, B], vec![0, 2]]);
        // the projection needs (12, 64) trailing in memory: rebased, memory [T, 12, 64]
        let r = c.rebased();
        assert_eq!(r.sizes, [197, 12, 64]);
        assert_eq!(r.axes, vec![vec![0, B], vec![1, 2]]);
        let o = r
            .dense(1, 768)
            .reshape(&[Int(197), Batch(1), Int(768)])
            .unwrap()
            .transpose(&[1, 0, 2]);
        assert_eq!(o, Layout::of_node(&[197, 768]));
    }

    #[test]
    fn reshapes_that_do_not_regroup_are_refused() {
        let x = Layout::of_node(&[6, 4]);
        // the batch mixed into a number, or split
        assert!(x.reshape(&[Int(6), Int(4)]).is_none());
        assert!(x.reshape(&[Batch(2), Int(12)]).is_some());
        assert!(x.reshape(&[Batch(4), Int(6)]).is_none()); // 6·4 regrouped as 4·6 with B in front: no
        assert!(Layout::of_node(&[6, 4])
            .transpose(&[1, 0, 2])
            .reshape(&[Batch(4), Int(6)])
            .is_none());
        // sizes that do not divide
        assert!(x.reshape(&[Batch(1), Int(5), Int(5)]).is_none());
        // size-1 axes are free
        let y = x.reshape(&[Batch(1), Int(1), Int(6), Int(1), Int(4)]).unwrap();
        assert_eq!(y.axes, vec![vec![B], vec![], vec![0], vec![], vec![1]]);
    }

    #[test]
    fn atoms_found_on_node_axes() {
        assert_eq!(atom_axes(&[197, 1, 768], &[197, 768]), [Some(0), Some(2)]);
        assert_eq!(atom_axes(&[197, 2304], &[197, 3, 768]), [Some(0), None, None]);
        assert_eq!(atom_axes(&[12, 64, 5], &[768, 5]), [None, Some(2)]);
    }
}
