//! Compute kernels below the layers: matrix products, the convolution's im2col/col2im and
//! Winograd transforms (3×3 and 1×3), the direct convolution of small layers, sliding-window
//! sizes and elementwise passes. They work on slices and array views and know nothing of
//! layers, rules or networks.

pub(crate) mod direct;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod im2col;
pub(crate) mod simd;
pub(crate) mod window;
pub(crate) mod winograd;
pub(crate) mod winograd1d;

/// Uniform values in [−1, 1) from a seeded LCG, for the kernels' unit tests.
#[cfg(test)]
pub(crate) fn test_uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}
