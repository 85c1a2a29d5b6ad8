//! What a convolution keeps of its weight between calls: the Winograd transforms of its own
//! weight, and rule-modified copies of it with their transforms
//! ([`Network::keep_rule_weights`](crate::Network::keep_rule_weights)).

use super::Conv2d;
use crate::float::Float;
use crate::kernels::{winograd, winograd1d};
use crate::layers::KeptWeights;
use std::sync::{Arc, OnceLock};

/// The Winograd transforms of a layer's own weight, each made by the first call that needs
/// it and kept:
/// * 1×3 kernels, F(4, 3): for the convolution and its transpose (twice the weight's size
///   each): a DeepLIFT-SHAP run convolves with the same weight hundreds of times;
/// * 3×3 kernels, F(2×2, 3×3): for the forward convolution only (16/9 of the weight's size),
///   which every forward pass, trace and baseline runs. Transforming costs about as much
///   memory traffic as two reads of the weight, which a kept transform saves on every call
///   (on a 512-channel 14×14 layer at batch 1 it made Winograd slower than im2col).
///   Transposed passes read it too (`winograd::conv3x3_sum`); substituted weights (LRP's
///   rules) transform for their call.
///
/// With [`Network::keep_rule_weights`](crate::Network::keep_rule_weights) on, `kept` holds
/// rule-modified copies of the weight, and their transforms (made by the first call that
/// needs them) beside them: then LRP-γ's weights are modified and transformed once, not on
/// every call.
#[derive(Default)]
pub(super) struct Transformed<F> {
    forward: OnceLock<Vec<F>>,
    transposed: OnceLock<Vec<F>>,
    forward_3x3: OnceLock<Vec<F>>,
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

/// A weight transform: the layer's own (kept), a kept rule-modified weight's (shared with
/// the store, which may drop it while a call uses it), or one made for this call.
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

    /// The Winograd F(2×2, 3×3) transform of `w` (`[O, C, 3, 3]`, standard layout) for the
    /// forward convolution: kept when `w` is the layer's own weight or a kept rule-modified
    /// copy, else made for this call.
    pub(super) fn transformed_3x3(&self, s: &winograd::Shape, w: &[F]) -> Held<'_, F> {
        self.kept(w, &self.transformed.forward_3x3, 0, || {
            winograd::transformed_weight(s, w)
        })
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
