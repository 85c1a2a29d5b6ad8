//! What a convolution keeps of its weight between calls: the Winograd transforms of its own
//! weight, and rule-modified copies of it with their transforms
//! ([`Network::keep_rule_weights`](crate::Network::keep_rule_weights)).

use super::Conv2d;
use crate::float::Float;
use crate::kernels::{winograd, winograd1d};
use crate::layers::KeptWeights;
use std::sync::{Arc, OnceLock};

/// The Winograd transforms of a layer's own weight:
/// * 1×3 kernels, F(4, 3): for the convolution and its transpose (twice the weight's size
///   each), made by the first call that needs them and kept: a DeepLIFT-SHAP run convolves
///   with the same weight hundreds of times;
/// * 3×3 kernels, F(2×2, 3×3): for the forward convolution (16/9 of the weight's size),
///   which every forward pass, trace and baseline runs; transposed passes read it too
///   (`winograd::conv3x3_sum`). Kept only with
///   [`Network::keep_rule_weights`](crate::Network::keep_rule_weights) on (and dropped by the
///   first call after it is switched off): a ResNet-50's 3×3 layers would hold 24 MB more,
///   as much as a fifth of the memory of one explanation beyond its weights and recorded
///   activations. Otherwise each call transforms into a recycled buffer (no page faults),
///   which costs about as much memory traffic as two reads of the weight.
///
/// With [`Network::keep_rule_weights`](crate::Network::keep_rule_weights) on, `kept` holds
/// rule-modified copies of the weight, and their transforms (made by the first call that
/// needs them) beside them: then LRP-γ's weights are modified and transformed once, not on
/// every call.
#[derive(Default)]
pub(super) struct Transformed<F> {
    forward: OnceLock<Vec<F>>,
    transposed: OnceLock<Vec<F>>,
    forward_3x3: std::sync::Mutex<Option<Arc<Vec<F>>>>,
    /// The weight packed for the direct kernel (small layers only), made by the first
    /// forward pass on the direct path.
    pub(super) packed: OnceLock<crate::kernels::direct::Packed<F>>,
    pub(super) kept: KeptWeights<F>,
}

impl<F> std::fmt::Debug for Transformed<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transformed")
            .field("forward", &self.forward.get().is_some())
            .field("transposed", &self.transposed.get().is_some())
            .finish()
    }
}

/// A weight transform: the layer's own (kept), a kept one (shared with the store, which may
/// drop it while a call uses it), or one made for this call.
pub(super) enum Held<'a, F> {
    Borrowed(&'a [F]),
    Shared(Arc<Vec<F>>),
    Owned(Vec<F>),
}

impl<F> std::ops::Deref for Held<'_, F> {
    type Target = [F];
    fn deref(&self) -> &[F] {
        match self {
            Held::Borrowed(u) => u,
            Held::Shared(u) => u,
            Held::Owned(u) => u,
        }
    }
}

impl<F: Float> Conv2d<F> {
    /// The Winograd F(4, 3) transform of `w` (`[O, C·3]`, standard layout) for the
    /// convolution or, with `transposed`, its transpose: kept when `w` is the layer's own
    /// weight or a kept rule-modified copy, else made for this call.
    pub(super) fn transformed_1x3(&self, w: &[F], transposed: bool) -> Held<'_, F> {
        let (o, c) = (self.out_channels(), self.in_channels());
        let make = || {
            winograd1d::transformed_weight(
                if transposed { c } else { o },
                if transposed { o } else { c },
                w,
                transposed,
            )
        };
        let cell = if transposed {
            &self.transformed.transposed
        } else {
            &self.transformed.forward
        };
        self.kept(w, cell, usize::from(transposed), make)
    }

    /// Runs `f` on the Winograd F(2×2, 3×3) transforms of the weights `ws` (each
    /// `[O, C, 3, 3]`, standard layout) for the forward convolution: kept ones where the layer
    /// keeps them (its own weight with
    /// [`Network::keep_rule_weights`](crate::Network::keep_rule_weights) on, kept
    /// rule-modified copies), the others made into this thread's scratch memory for the
    /// call (not the buffer pool, whose buffers a trace keeps).
    pub(super) fn with_transforms_3x3<R>(
        &self,
        s: &winograd::Shape,
        ws: &[&[F]],
        f: impl FnOnce(&[&[F]]) -> R,
    ) -> R {
        let held: Vec<Option<Held<'_, F>>> = ws.iter().map(|w| self.kept_3x3(s, w)).collect();
        let len = 16 * s.o * s.c;
        let made = held.iter().filter(|h| h.is_none()).count();
        crate::pool::with_scratch(made * len, |buf: &mut [F]| {
            let to_make = ws.iter().zip(&held).filter(|(_, h)| h.is_none());
            for (u, (w, _)) in buf.chunks_exact_mut(len).zip(to_make) {
                winograd::transform_weight(s, w, u);
            }
            let mut fresh = buf.chunks_exact(len);
            let us: Vec<&[F]> = held
                .iter()
                .filter_map(|h| match h {
                    Some(u) => Some(&u[..]),
                    None => fresh.next(),
                })
                .collect();
            f(&us)
        })
    }

    /// The kept transform of `w` (see [`Conv2d::with_transforms_3x3`]), if the layer keeps
    /// one: the first call after keeping is switched on makes the layer's own, and the first
    /// call after it is switched off drops it.
    fn kept_3x3(&self, s: &winograd::Shape, w: &[F]) -> Option<Held<'_, F>> {
        let make = || winograd::transformed_weight(s, w);
        if !self.is_own_weight(w) {
            let (set, i) = self.transformed.kept.find(w)?;
            let cell = set.derived(i, 0)?;
            return Some(Held::Shared(Arc::clone(filled(cell, || Arc::new(make())))));
        }
        // a poisoned lock only means a call panicked: the slot is still a valid cache
        let slot = || {
            self.transformed
                .forward_3x3
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        if !self.transformed.kept.is_on() {
            slot().take();
            return None;
        }
        if let Some(u) = slot().as_ref() {
            return Some(Held::Shared(Arc::clone(u)));
        }
        // made outside the lock (see `filled`); if another thread stored one meanwhile, that
        // one is kept
        let made = Arc::new(make());
        Some(Held::Shared(Arc::clone(slot().get_or_insert(made))))
    }

    /// Whether `w` is the layer's own weight (the same memory, not equal values).
    fn is_own_weight(&self, w: &[F]) -> bool {
        self.weight.as_slice().is_some_and(|own| std::ptr::eq(own, w))
    }

    /// `make()`, kept in `cell` if `w` is the layer's own weight, or in derived cell
    /// `derived` of a kept rule-modified copy if `w` is one.
    fn kept<'a>(
        &'a self,
        w: &[F],
        cell: &'a OnceLock<Vec<F>>,
        derived: usize,
        make: impl Fn() -> Vec<F>,
    ) -> Held<'a, F> {
        if self.is_own_weight(w) {
            return Held::Borrowed(filled(cell, make).as_slice());
        }
        let shared = self.transformed.kept.find(w).and_then(|(set, i)| {
            let cell = set.derived(i, derived)?;
            Some(Arc::clone(filled(cell, || Arc::new(make()))))
        });
        match shared {
            Some(u) => Held::Shared(u),
            None => Held::Owned(make()),
        }
    }
}

/// The value of `cell`, made by `make` if it has none. Made outside the cell's lock: a
/// transform runs on the thread pool, where this thread may take up another part of the
/// same batch that reaches this layer (a re-entrant `get_or_init` deadlocks); two threads
/// may both make it, and one result is kept.
fn filled<T>(cell: &OnceLock<T>, make: impl FnOnce() -> T) -> &T {
    if let Some(v) = cell.get() {
        return v;
    }
    let made = make();
    // if another thread set it meanwhile, that value is kept and `made` dropped
    cell.get_or_init(|| made)
}
