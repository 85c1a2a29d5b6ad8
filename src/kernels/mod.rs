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
