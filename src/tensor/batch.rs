//! Batches split into blocks of samples (run on several threads with the `parallel`
//! feature) and joined again.

use crate::error::Result;
use crate::float::Float;
use ndarray::{ArrayD, Axis};

/// Samples per block when a batch is processed block by block: small enough that a block's
/// im2col matrices stay in cache, large enough to keep the matrix products efficient.
const BATCH_BLOCK: usize = 4;

/// Runs `f` on consecutive row ranges (blocks of at most [`BATCH_BLOCK`] samples, and at
/// least one per thread) of a batch of `n` samples — in parallel with the `parallel`
/// feature — and returns the results in order.
pub(crate) fn split_batch<T: Send>(
    n: usize,
    f: impl Fn(std::ops::Range<usize>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    #[cfg(feature = "parallel")]
    let threads = rayon::current_num_threads();
    #[cfg(not(feature = "parallel"))]
    let threads = 1;
    let parts = threads.max(n.div_ceil(BATCH_BLOCK)).min(n).max(1);
    let range = |t: usize| t * n / parts..(t + 1) * n / parts;
    #[cfg(feature = "parallel")]
    if parts > 1 {
        use rayon::prelude::*;
        return (0..parts)
            .into_par_iter()
            .map(|t| f(range(t)).map_err(|e| e.in_batch_from(range(t).start)))
            .collect();
    }
    (0..parts)
        .map(|t| f(range(t)).map_err(|e| e.in_batch_from(range(t).start)))
        .collect()
}

/// Concatenates the per-layer arrays of consecutive parts of a batch, layer by layer
/// (`None` if the parts kept no layers).
pub(crate) fn concat_layers<F: Float>(parts: &[Option<&Vec<ArrayD<F>>>]) -> Option<Vec<ArrayD<F>>> {
    let first = parts.first().copied().flatten()?;
    Some(
        (0..first.len())
            .map(|k| concat_batch(parts.iter().flatten().map(|p| p[k].clone()).collect()))
            .collect(),
    )
}

/// Concatenates arrays along the batch axis (a single part is returned as is).
pub(crate) fn concat_batch<F: Float>(mut parts: Vec<ArrayD<F>>) -> ArrayD<F> {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("parts of one batch")
}
