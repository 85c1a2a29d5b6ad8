//! The direct kernel against its scalar code and the layers it fuses, on every instruction
//! set the machine has.

use super::*;

/// The kernel's instruction sets: `None` for the scalar code.
#[derive(Debug, Clone, Copy)]
enum Isa {
    V3,
    V4,
}

/// Runs `job` with the instruction set `isa` (`None`: the scalar code); `None` if this
/// machine lacks it.
fn run_on<F: Float>(job: &mut Job<'_, '_, F>, isa: Option<Isa>) -> Option<()> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Some(Isa::V4) => vector_blocks(pulp::x86::V4::try_new()?, job),
        #[cfg(target_arch = "x86_64")]
        Some(Isa::V3) => vector_blocks(pulp::x86::V3::try_new()?, job),
        #[cfg(not(target_arch = "x86_64"))]
        Some(_) => return None,
        None => conv_scalar(job),
    }
    Some(())
}

/// The vector kernel (AVX2 and AVX-512, where the machine has them) and the scalar code
/// give the same bits (fused multiply-adds in one order), f32 and f64, with and without a
/// bias, blocks of one, two and four channels.
#[test]
fn vector_and_scalar_kernels_agree_bit_for_bit() {
    /// The outputs, or `None` if this machine lacks the instruction set.
    fn run<F: Float>(
        shape: &Shape,
        n: usize,
        x: &[F],
        w: &[F],
        bias: Option<&[F]>,
        vector: Option<Isa>,
    ) -> Option<Vec<F>> {
        let (ho, wo) = shape.out().expect("fits");
        let packed = Packed::forward(w, shape.o);
        let mut out = Vec::new();
        let mut job = Job {
            shape,
            n,
            sources: &[(x, shape.c)],
            packed: &packed,
            bias,
            post: Post::default(),
            half: Vec::new(),
            out: &mut out,
        };
        run_on(&mut job, vector)?;
        assert_eq!(out.len(), n * shape.o * ho * wo, "every output written once");
        Some(out)
    }
    let mut ran = 0;
    let mut next = crate::kernels::test_uniform(5);
    for (c, o, h, w, kh, kw, pad) in [
        (1, 8, 9, 13, 3, 3, [1, 1, 1, 1]),
        (3, 2, 5, 30, 3, 2, [0, 1, 2, 0]),
        (2, 1, 7, 6, 1, 3, [0, 1, 0, 1]),
        (4, 5, 4, 4, 3, 3, [2, 2, 2, 2]),
    ] {
        let shape = Shape {
            c,
            o,
            h,
            w,
            kh,
            kw,
            dilation: (1, 1),
            pad,
        };
        let n = 2;
        let x: Vec<f64> = (0..n * c * h * w).map(|_| next()).collect();
        let wt: Vec<f64> = (0..o * c * kh * kw).map(|_| next()).collect();
        let b: Vec<f64> = (0..o).map(|_| next()).collect();
        let (x32, w32, b32): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            x.iter().map(|&v| v as f32).collect(),
            wt.iter().map(|&v| v as f32).collect(),
            b.iter().map(|&v| v as f32).collect(),
        );
        for bias in [None, Some(&b[..])] {
            let b32 = bias.map(|_| &b32[..]);
            let bits = |v: Vec<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let bits32 = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let scalar = run(&shape, n, &x, &wt, bias, None).map(bits);
            let scalar32 = run(&shape, n, &x32, &w32, b32, None).map(bits32);
            for isa in [Isa::V3, Isa::V4] {
                if let Some(v) = run(&shape, n, &x, &wt, bias, Some(isa)) {
                    assert_eq!(Some(bits(v)), scalar, "f64 {isa:?} {shape:?}");
                    let v32 = run(&shape, n, &x32, &w32, b32, Some(isa)).map(bits32);
                    assert_eq!(v32, scalar32, "f32 {isa:?} {shape:?}");
                    ran += 1;
                }
            }
        }
    }
    // on x86-64 with AVX2 at least
    #[cfg(target_arch = "x86_64")]
    assert!(ran > 0 || !available(), "no vector kernel ran");
}

/// The fused steps give the bits of the layers run after the plain convolution: ReLU
/// (`−0` and NaN to `+0`), the 2×2 pool (odd sizes, ties and ±0 as the pool), both, on
/// every instruction set the machine has and in the scalar code.
#[test]
fn fused_steps_are_the_layers_after_the_convolution() {
    let mut next = crate::kernels::test_uniform(11);
    for (c, o, h, w, pad) in [(1, 8, 9, 13, [1, 1, 1, 1]), (3, 5, 6, 7, [0, 1, 2, 0])] {
        let shape = Shape {
            c,
            o,
            h,
            w,
            kh: 3,
            kw: 3,
            dilation: (1, 1),
            pad,
        };
        let (ho, wo) = shape.out().expect("fits");
        let n = 2;
        // a quarter of the inputs and weights zero, for ties, zeros and −0 sums
        let mut draw = || {
            let v: f64 = next();
            if v.abs() < 0.25 {
                0.0
            } else {
                v
            }
        };
        let x: Vec<f32> = (0..n * c * h * w).map(|_| draw() as f32).collect();
        let wt: Vec<f32> = (0..o * c * 9).map(|_| draw() as f32).collect();
        let mut x_nan = x.clone();
        x_nan[c * h * w + 4] = f32::NAN;
        let packed = Packed::forward(&wt, o);
        let conv_with = |x: &[f32], post: Post, isa: Option<Isa>| -> Option<Vec<f32>> {
            let mut out = Vec::new();
            let mut job = Job {
                shape: &shape,
                n,
                sources: &[(x, c)],
                packed: &packed,
                bias: None,
                post,
                half: Vec::new(),
                out: &mut out,
            };
            run_on(&mut job, isa)?;
            Some(out)
        };
        for x in [&x, &x_nan] {
            let plain = conv_with(x, Post::default(), None).expect("scalar code");
            for (relu_on, pool) in [(true, false), (false, true), (true, true)] {
                let post = Post {
                    relu: relu_on,
                    pool_2x2: pool,
                };
                // the layers after the plain convolution
                let act: Vec<f32> = plain.iter().map(|&v| if relu_on { relu(v) } else { v }).collect();
                let want: Vec<u32> = if pool {
                    let (hp, wq) = (ho / 2, wo / 2);
                    let mut v = Vec::new();
                    for plane in act.chunks_exact(ho * wo) {
                        for i in 0..hp {
                            for j in 0..wq {
                                let at = |y: usize, x: usize| plane[(2 * i + y) * wo + 2 * j + x];
                                v.push(max_2x2(at(0, 0), at(0, 1), at(1, 0), at(1, 1)).to_bits());
                            }
                        }
                    }
                    v
                } else {
                    act.iter().map(|v| v.to_bits()).collect()
                };
                for isa in [None, Some(Isa::V3), Some(Isa::V4)] {
                    if let Some(got) = conv_with(x, post, isa) {
                        let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                        assert_eq!(got, want, "{post:?} {isa:?} {shape:?}");
                    }
                }
            }
        }
    }
}

/// The transposed packing (nested loops) puts every weight where the formula says: the
/// term's kernel of (output channel, input channel), flipped in both axes.
#[test]
fn transposed_packing_follows_the_formula() {
    let mut next = crate::kernels::test_uniform(17);
    for (terms, o, c, kh, kw) in [
        (2, 16, 8, 3, 3),
        (1, 3, 1, 3, 2),
        (3, 5, 2, 1, 3),
        (1, 8, 9, 2, 2),
    ] {
        let ws: Vec<Vec<f64>> = (0..terms)
            .map(|_| (0..o * c * kh * kw).map(|_| next()).collect())
            .collect();
        let refs: Vec<&[f64]> = ws.iter().map(|w| &w[..]).collect();
        let got = Packed::transposed(&refs, o, c, kh, kw);
        let k = kh * kw;
        let want = Packed::from_fn(c, terms * o * k, |ci, tap| {
            let (src, rest) = (tap / k, tap % k);
            let (term, oc) = (src / o, src % o);
            let (ky, kx) = (rest / kw, rest % kw);
            ws[term][(oc * c + ci) * k + (kh - 1 - ky) * kw + (kw - 1 - kx)]
        });
        assert_eq!((got.taps, got.ob), (want.taps, want.ob));
        assert_eq!(got.data, want.data, "{terms} terms, {o}→{c}, {kh}×{kw}");
    }
}
