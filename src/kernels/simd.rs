//! AVX2 vectors of `f32` and `f64` for the hand-vectorised kernels (the direct convolution,
//! small dense layers), and running code compiled for AVX2 + FMA where the machine has them.
//! The compiler's own vectorisation of generic code proved unreliable there (accumulators
//! spilled, loops left scalar), so these kernels say which vector operations they want.

/// Runs `op` compiled for AVX2 and FMA where the machine has them (x86-64; pulp's run-time
/// dispatch), else as is. Everything `op` calls must be `#[inline(always)]` to be compiled
/// with them (a closure's body is not).
#[inline(always)]
pub(crate) fn vectorized<Op: pulp::WithSimd>(op: Op) -> Op::Output {
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = pulp::x86::V3::try_new() {
        return pulp::Simd::vectorize(v3, op);
    }
    op.with_simd(pulp::Scalar)
}

/// A float type the vector kernel computes with: its AVX2 vector and the operations used.
pub trait Lane: Copy + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + Sized {
    /// An AVX2 vector of this type.
    #[cfg(target_arch = "x86_64")]
    type V: Copy;
    /// Lanes per vector.
    const L: usize;
    #[cfg(target_arch = "x86_64")]
    fn vzero(s: pulp::x86::V3) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn splat(s: pulp::x86::V3, x: Self) -> Self::V;
    /// The first [`Lane::L`] elements of `x`.
    #[cfg(target_arch = "x86_64")]
    fn load(x: &[Self]) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn store(v: Self::V, out: &mut [Self]);
    /// `a·b + c`, one rounding.
    #[cfg(target_arch = "x86_64")]
    fn fma(s: pulp::x86::V3, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn vadd(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn vmul(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V;
    /// `N` vectors from the first `N·L` elements of `x` (one bounds check).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn load_n<const N: usize>(x: &[Self]) -> [Self::V; N] {
        let x = &x[..N * Self::L];
        std::array::from_fn(|v| Self::load(&x[v * Self::L..(v + 1) * Self::L]))
    }
}

impl Lane for f32 {
    #[cfg(target_arch = "x86_64")]
    type V = pulp::f32x8;
    const L: usize = 8;
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn vzero(s: pulp::x86::V3) -> Self::V {
        pulp::Simd::splat_f32s(s, 0.0)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn splat(s: pulp::x86::V3, x: f32) -> Self::V {
        pulp::Simd::splat_f32s(s, x)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn load(x: &[f32]) -> Self::V {
        let a: [f32; 8] = x[..8].try_into().expect("eight lanes");
        pulp::bytemuck::cast(a)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn store(v: Self::V, out: &mut [f32]) {
        out[..8].copy_from_slice(&pulp::bytemuck::cast::<_, [f32; 8]>(v));
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn fma(s: pulp::x86::V3, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        pulp::Simd::mul_add_e_f32s(s, a, b, c)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn vadd(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V {
        pulp::Simd::add_f32s(s, a, b)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn vmul(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V {
        pulp::Simd::mul_f32s(s, a, b)
    }
}

impl Lane for f64 {
    #[cfg(target_arch = "x86_64")]
    type V = pulp::f64x4;
    const L: usize = 4;
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn vzero(s: pulp::x86::V3) -> Self::V {
        pulp::Simd::splat_f64s(s, 0.0)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn splat(s: pulp::x86::V3, x: f64) -> Self::V {
        pulp::Simd::splat_f64s(s, x)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn load(x: &[f64]) -> Self::V {
        let a: [f64; 4] = x[..4].try_into().expect("four lanes");
        pulp::bytemuck::cast(a)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn store(v: Self::V, out: &mut [f64]) {
        out[..4].copy_from_slice(&pulp::bytemuck::cast::<_, [f64; 4]>(v));
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn fma(s: pulp::x86::V3, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        pulp::Simd::mul_add_e_f64s(s, a, b, c)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn vadd(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V {
        pulp::Simd::add_f64s(s, a, b)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn vmul(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V {
        pulp::Simd::mul_f64s(s, a, b)
    }
}
