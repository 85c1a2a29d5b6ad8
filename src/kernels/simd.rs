//! AVX2 vectors of `f32` and `f64` for the hand-vectorised kernels (the direct convolution,
//! small dense layers), and running code compiled for AVX2 + FMA where the machine has them.
//! The compiler's own vectorisation of generic code proved unreliable there (accumulators
//! spilled, loops left scalar), so these kernels say which vector operations they want.

/// Runs `op` compiled for AVX-512 or AVX2 and FMA where the machine has them (x86-64;
/// pulp's run-time dispatch), else as is. Everything `op` calls must be `#[inline(always)]`
/// to be compiled with them (a closure's body is not). The instruction set changes no
/// result: the kernels' own vectors are [`Lane`]'s AVX2 ones whatever the set (AVX-512
/// lends them twice the registers), and the compiler never reorders floating-point sums.
#[inline(always)]
pub(crate) fn vectorized<Op: pulp::WithSimd>(op: Op) -> Op::Output {
    #[cfg(target_arch = "x86_64")]
    if let Some(v4) = pulp::x86::V4::try_new() {
        return pulp::Simd::vectorize(v4, op);
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = pulp::x86::V3::try_new() {
        return pulp::Simd::vectorize(v3, op);
    }
    op.with_simd(pulp::Scalar)
}

/// A float type the vector kernels compute with: its AVX2 vector, mask, and the operations
/// used (each one instruction, with the scalar operation's rounding).
pub trait Lane: Copy + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + Sized {
    /// An AVX2 vector of this type.
    #[cfg(target_arch = "x86_64")]
    type V: Copy;
    /// A comparison's result, one lane mask per element.
    #[cfg(target_arch = "x86_64")]
    type M: Copy;
    /// Lanes per vector.
    const L: usize;
    #[cfg(target_arch = "x86_64")]
    fn vzero(s: pulp::x86::V3) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn splat(s: pulp::x86::V3, x: Self) -> Self::V;
    /// The first [`Lane::L`] elements of `x`.
    #[cfg(target_arch = "x86_64")]
    fn load(x: &[Self]) -> Self::V;
    /// Into the first [`Lane::L`] elements of `out`.
    #[cfg(target_arch = "x86_64")]
    fn store(v: Self::V, out: &mut [Self]);
    /// `a·b + c`, one rounding.
    #[cfg(target_arch = "x86_64")]
    fn fma(s: pulp::x86::V3, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn vadd(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn vsub(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn vmul(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn vdiv(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V;
    #[cfg(target_arch = "x86_64")]
    fn vabs(s: pulp::x86::V3, a: Self::V) -> Self::V;
    /// `a > b` per lane.
    #[cfg(target_arch = "x86_64")]
    fn vgt(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::M;
    /// `a < b` per lane.
    #[cfg(target_arch = "x86_64")]
    fn vlt(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::M;
    #[cfg(target_arch = "x86_64")]
    fn mand(s: pulp::x86::V3, a: Self::M, b: Self::M) -> Self::M;
    #[cfg(target_arch = "x86_64")]
    fn mnot(s: pulp::x86::V3, a: Self::M) -> Self::M;
    /// `if m { t } else { f }` per lane.
    #[cfg(target_arch = "x86_64")]
    fn vselect(s: pulp::x86::V3, m: Self::M, t: Self::V, f: Self::V) -> Self::V;
    /// `N` vectors from the first `N·L` elements of `x` (one bounds check).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn load_n<const N: usize>(x: &[Self]) -> [Self::V; N] {
        let x = &x[..N * Self::L];
        std::array::from_fn(|v| Self::load(&x[v * Self::L..(v + 1) * Self::L]))
    }
}

/// [`Lane`] for `f32` (`$v`, `$m`, `$l` lanes, pulp's `…_$s` methods) and `f64`.
macro_rules! lane {
    ($t:ty, $v:ty, $m:ty, $l:literal, $splat:ident, $fma:ident, $add:ident, $sub:ident,
     $mul:ident, $div:ident, $abs:ident, $gt:ident, $lt:ident, $and:ident, $not:ident, $select:ident) => {
        impl Lane for $t {
            #[cfg(target_arch = "x86_64")]
            type V = $v;
            #[cfg(target_arch = "x86_64")]
            type M = $m;
            const L: usize = $l;
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn vzero(s: pulp::x86::V3) -> Self::V {
                pulp::Simd::$splat(s, 0.0)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn splat(s: pulp::x86::V3, x: $t) -> Self::V {
                pulp::Simd::$splat(s, x)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn load(x: &[$t]) -> Self::V {
                let a: [$t; $l] = x[..$l].try_into().expect("one vector's lanes");
                pulp::bytemuck::cast(a)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn store(v: Self::V, out: &mut [$t]) {
                out[..$l].copy_from_slice(&pulp::bytemuck::cast::<_, [$t; $l]>(v));
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn fma(s: pulp::x86::V3, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
                pulp::Simd::$fma(s, a, b, c)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn vadd(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V {
                pulp::Simd::$add(s, a, b)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn vsub(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V {
                pulp::Simd::$sub(s, a, b)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn vmul(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V {
                pulp::Simd::$mul(s, a, b)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn vdiv(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::V {
                pulp::Simd::$div(s, a, b)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn vabs(s: pulp::x86::V3, a: Self::V) -> Self::V {
                pulp::Simd::$abs(s, a)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn vgt(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::M {
                pulp::Simd::$gt(s, a, b)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn vlt(s: pulp::x86::V3, a: Self::V, b: Self::V) -> Self::M {
                pulp::Simd::$lt(s, a, b)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn mand(s: pulp::x86::V3, a: Self::M, b: Self::M) -> Self::M {
                pulp::Simd::$and(s, a, b)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn mnot(s: pulp::x86::V3, a: Self::M) -> Self::M {
                pulp::Simd::$not(s, a)
            }
            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn vselect(s: pulp::x86::V3, m: Self::M, t: Self::V, f: Self::V) -> Self::V {
                pulp::Simd::$select(s, m, t, f)
            }
        }
    };
}

lane!(
    f32,
    pulp::f32x8,
    pulp::m32x8,
    8,
    splat_f32s,
    mul_add_e_f32s,
    add_f32s,
    sub_f32s,
    mul_f32s,
    div_f32s,
    abs_f32s,
    greater_than_f32s,
    less_than_f32s,
    and_m32s,
    not_m32s,
    select_f32s
);
lane!(
    f64,
    pulp::f64x4,
    pulp::m64x4,
    4,
    splat_f64s,
    mul_add_e_f64s,
    add_f64s,
    sub_f64s,
    mul_f64s,
    div_f64s,
    abs_f64s,
    greater_than_f64s,
    less_than_f64s,
    and_m64s,
    not_m64s,
    select_f64s
);

/// A float type as vectors of any width pulp dispatches to (`S::f32s`/`S::f64s`: AVX-512 on
/// machines with it, AVX2, or one scalar), for kernels whose lanes are independent outputs
/// (the direct convolution): there the width changes how many outputs one instruction
/// computes, never the operations or their order that make one output, so every width gives
/// the same bits. Reductions across lanes (the dense rows' dot products) keep [`Lane`]'s
/// fixed eight sums instead.
pub trait Wide: Copy + pulp::bytemuck::Pod {
    /// A vector of `S`'s width.
    type W<S: pulp::Simd>: Copy + pulp::bytemuck::Pod;
    /// All lanes zero.
    fn wzero<S: pulp::Simd>(s: S) -> Self::W<S>;
    /// All lanes `x`.
    fn wsplat<S: pulp::Simd>(s: S, x: Self) -> Self::W<S>;
    /// `a·b + c`, one rounding.
    fn wfma<S: pulp::Simd>(s: S, a: Self::W<S>, b: Self::W<S>, c: Self::W<S>) -> Self::W<S>;
    /// `a + b`.
    fn wadd<S: pulp::Simd>(s: S, a: Self::W<S>, b: Self::W<S>) -> Self::W<S>;
    /// Lanes per vector of `S`.
    #[inline(always)]
    fn width<S: pulp::Simd>() -> usize {
        std::mem::size_of::<Self::W<S>>() / std::mem::size_of::<Self>()
    }
    /// `N` vectors from the first `N` widths of `x` (one bounds check).
    #[inline(always)]
    fn wload_n<S: pulp::Simd, const N: usize>(x: &[Self]) -> [Self::W<S>; N] {
        let l = Self::width::<S>();
        let x: &[u8] = pulp::bytemuck::cast_slice(&x[..N * l]);
        let bytes = std::mem::size_of::<Self::W<S>>();
        // a loop over an array, not `array::from_fn`, whose guard kept the vectors in memory
        let mut out = [<Self::W<S> as pulp::bytemuck::Zeroable>::zeroed(); N];
        for (v, o) in out.iter_mut().enumerate() {
            *o = pulp::bytemuck::pod_read_unaligned(&x[v * bytes..(v + 1) * bytes]);
        }
        out
    }
    /// Into the first width of `out`.
    #[inline(always)]
    fn wstore<S: pulp::Simd>(v: Self::W<S>, out: &mut [Self]) {
        let l = Self::width::<S>();
        pulp::bytemuck::cast_slice_mut::<Self, u8>(&mut out[..l])
            .copy_from_slice(pulp::bytemuck::bytes_of(&v));
    }
}

/// [`Wide`] for `f32` (`S::f32s`, pulp's `…_f32s` methods) and `f64`.
macro_rules! wide {
    ($t:ty, $w:ident, $splat:ident, $fma:ident, $add:ident) => {
        impl Wide for $t {
            type W<S: pulp::Simd> = S::$w;
            #[inline(always)]
            fn wzero<S: pulp::Simd>(s: S) -> S::$w {
                s.$splat(0.0)
            }
            #[inline(always)]
            fn wsplat<S: pulp::Simd>(s: S, x: $t) -> S::$w {
                s.$splat(x)
            }
            #[inline(always)]
            fn wfma<S: pulp::Simd>(s: S, a: S::$w, b: S::$w, c: S::$w) -> S::$w {
                s.$fma(a, b, c)
            }
            #[inline(always)]
            fn wadd<S: pulp::Simd>(s: S, a: S::$w, b: S::$w) -> S::$w {
                s.$add(a, b)
            }
        }
    };
}

wide!(f32, f32s, splat_f32s, mul_add_e_f32s, add_f32s);
wide!(f64, f64s, splat_f64s, mul_add_e_f64s, add_f64s);
