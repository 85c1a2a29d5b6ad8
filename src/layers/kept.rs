//! Rule-modified copies of an affine layer's weight (LRP-γ's `W + γW⁺`, z⁺'s `W⁺`, ...),
//! kept between calls when asked to ([`Network::keep_rule_weights`](crate::Network::keep_rule_weights)),
//! with whatever the layer derives from them (a convolution's Winograd transforms).

use crate::float::Float;
use crate::rules::engine::Param;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The most sets of modified weights one layer keeps. A rule needs one set per layer (LRP-γ
/// its two weights, z^B its two); a fifth rule with other parameters (another γ) modifies
/// the weight for its call, as when nothing is kept.
pub const KEPT_SETS_MAX: usize = 4;

/// Storage an affine layer offers for the rule-modified copies of its weight, so that a
/// rule applied to many inputs modifies (and a convolution transforms) the weight once
/// rather than on every call.
///
/// Off until [`Network::keep_rule_weights`](crate::Network::keep_rule_weights) switches it
/// on (it costs memory: LRP-γ keeps two copies of each weight it applies to). A layer
/// offers it through [`Affine::kept_weights`](crate::Affine::kept_weights); a custom
/// affine layer can hold one (`KeptWeights::default()`) and return it, and the rules use
/// it the same way.
///
/// The modified copies are made from the layer's weight when first needed, so a layer must
/// not change its weight while they are kept (the layers of this crate never do: their
/// weights are immutable).
///
/// ```
/// use ndarray::array;
/// use relevance::{Affine, Dense, KeptWeights};
/// # fn main() -> relevance::Result<()> {
/// let dense = Dense::new(array![[1.0_f64, -2.0]], None)?;
/// let kept: &KeptWeights<f64> = dense.kept_weights().expect("dense layers keep weights");
/// assert!(!kept.is_on());
/// assert_eq!(kept.bytes(), 0);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct KeptWeights<F> {
    on: AtomicBool,
    sets: Mutex<Vec<Arc<KeptSet<F>>>>,
}

impl<F> std::fmt::Debug for KeptWeights<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptWeights")
            .field("on", &self.is_on())
            .field("sets", &self.lock().len())
            .finish()
    }
}

/// The modified weights of one rule on one layer, stored one after the other (so that a
/// sum of their transposed products may read them as one matrix), with what the layer
/// derives from each.
pub(crate) struct KeptSet<F> {
    /// The modification of each weight, in storage order.
    params: Vec<Param>,
    /// Elements per weight.
    each: usize,
    /// The weights, `params.len() · each` elements.
    data: Vec<F>,
    /// Per weight, two cells for forms the layer derives from it (a convolution's Winograd
    /// transforms: the forward one in cell 0, the transposed one in cell 1).
    derived: Vec<[OnceLock<Arc<Vec<F>>>; 2]>,
}

impl<F> KeptSet<F> {
    /// The index of the weight modified by `param`.
    pub(crate) fn index_of(&self, param: Param) -> Option<usize> {
        self.params.iter().position(|&p| p == param)
    }

    /// Weight `i` (standard layout of the layer's weight).
    pub(crate) fn weight(&self, i: usize) -> &[F] {
        &self.data[i * self.each..(i + 1) * self.each]
    }

    /// Weights `i .. i + count` as one slice (`count · each` elements).
    pub(crate) fn span(&self, i: usize, count: usize) -> &[F] {
        &self.data[i * self.each..(i + count) * self.each]
    }

    /// Cell `cell` (0 or 1) of weight `i`'s derived forms.
    pub(crate) fn derived(&self, i: usize, cell: usize) -> Option<&OnceLock<Arc<Vec<F>>>> {
        self.derived.get(i)?.get(cell)
    }

    /// Bytes held: the weights and their derived forms.
    fn bytes(&self) -> usize {
        let derived: usize = self
            .derived
            .iter()
            .flatten()
            .filter_map(|c| c.get().map(|v| v.len()))
            .sum();
        (self.data.len() + derived) * std::mem::size_of::<F>()
    }
}

impl<F> KeptWeights<F> {
    /// Whether modified weights are kept (see
    /// [`Network::keep_rule_weights`](crate::Network::keep_rule_weights)).
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Switches keeping on or off; off also drops what was kept.
    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
        if !on {
            // calls under way keep their sets alive until they finish
            self.lock().clear();
        }
    }

    /// The bytes held now: the modified weights and the forms derived from them.
    pub fn bytes(&self) -> usize {
        self.lock().iter().map(|s| s.bytes()).sum()
    }

    /// The sets, even if a thread panicked while holding them (they stay consistent: a set
    /// is only added whole).
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<KeptSet<F>>>> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The set holding weight `w` (the same memory, not equal values) and its index.
    pub(crate) fn find(&self, w: &[F]) -> Option<(Arc<KeptSet<F>>, usize)> {
        if !self.is_on() || w.is_empty() {
            return None;
        }
        self.lock().iter().find_map(|s| {
            (0..s.params.len())
                .find(|&i| std::ptr::eq(s.weight(i), w))
                .map(|i| (Arc::clone(s), i))
        })
    }

    /// The set holding the weights `ws` one after the other (each the same memory as the
    /// set's weights `i, i + 1, …`), and the first index `i`.
    pub(crate) fn find_run(&self, ws: &[&[F]]) -> Option<(Arc<KeptSet<F>>, usize)> {
        let (set, first) = self.find(ws.first()?)?;
        let consecutive = ws
            .iter()
            .enumerate()
            .all(|(k, w)| first + k < set.params.len() && std::ptr::eq(set.weight(first + k), *w));
        consecutive.then_some((set, first))
    }
}

impl<F: Float> KeptWeights<F> {
    /// The set of the weights modified by `params` (distinct, none [`Param::Keep`]) from the
    /// layer's weight `w` (standard layout): kept from an earlier call, or made now and
    /// kept. `None` when keeping is off, or the layer keeps [`KEPT_SETS_MAX`] other sets.
    pub(crate) fn get_or_make(&self, params: &[Param], w: &[F]) -> Option<Arc<KeptSet<F>>> {
        if !self.is_on() || params.is_empty() {
            return None;
        }
        let mut sets = self.lock();
        if let Some(s) = sets.iter().find(|s| s.params == params && s.each == w.len()) {
            return Some(Arc::clone(s));
        }
        if sets.len() >= KEPT_SETS_MAX {
            return None;
        }
        let mut data = vec![F::zero(); params.len() * w.len()];
        for (p, dst) in params.iter().zip(data.chunks_exact_mut(w.len().max(1))) {
            p.apply_into(w, dst);
        }
        let set = Arc::new(KeptSet {
            params: params.to_vec(),
            each: w.len(),
            data,
            derived: params.iter().map(|_| Default::default()).collect(),
        });
        sets.push(Arc::clone(&set));
        Some(set)
    }
}
