//! The F(4, 3) kernel against the direct sum of its definition.

use super::*;

/// A deterministic pseudo-random sequence in [−1, 1).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// The direct sum of [`Shape`]'s definition.
fn direct(x: &[f64], s: &Shape, g: &[f64], transposed: bool) -> Vec<f64> {
    let mut y = vec![0.0; s.n * s.o * s.h * s.wo];
    for n in 0..s.n {
        for o in 0..s.o {
            for r in 0..s.h {
                for p in 0..s.wo {
                    let mut acc = 0.0;
                    for c in 0..s.c {
                        for k in 0..3 {
                            let i = p as isize + s.lo + (k * s.dil) as isize;
                            if (0..s.w as isize).contains(&i) {
                                let w = if transposed {
                                    g[(c * s.o + o) * 3 + 2 - k]
                                } else {
                                    g[(o * s.c + c) * 3 + k]
                                };
                                acc += w * x[((n * s.c + c) * s.h + r) * s.w + i as usize];
                            }
                        }
                    }
                    y[((n * s.o + o) * s.h + r) * s.wo + p] = acc;
                }
            }
        }
    }
    y
}

#[test]
fn matches_the_direct_sum_for_dilations_paddings_and_transposes() {
    let mut worst: f64 = 0.0;
    for (case, &(n, c, o, h, w, dil, pl, pr)) in [
        (1, 3, 2, 1, 17, 1, 1, 1),
        (2, 4, 5, 1, 23, 2, 2, 2),
        (3, 2, 3, 2, 40, 4, 4, 4),
        (1, 5, 4, 1, 9, 8, 8, 8),
        (2, 3, 3, 1, 30, 3, 0, 0),
        (1, 2, 2, 3, 12, 1, 2, 0),
        (5, 3, 2, 1, 64, 16, 16, 16),
        (2, 3, 4, 1, 100, 8, 8, 8),
        (1, 3, 3, 2, 150, 32, 32, 0),
        (3, 2, 2, 1, 70, 4, 0, 8),
    ]
    .iter()
    .enumerate()
    {
        let wo = w + pl + pr - 2 * dil;
        let s = Shape {
            n,
            c,
            o,
            h,
            w,
            wo,
            dil,
            lo: -(pl as isize),
        };
        let x = values(n * c * h * w, case as u64);
        let g = values(o * c * 3, 100 + case as u64);
        let g2 = values(o * c * 3, 200 + case as u64);
        let mut y = vec![f64::NAN; n * o * h * wo];
        let mut y2 = vec![f64::NAN; n * o * h * wo];
        let (u, u2) = (
            transformed_weight(o, c, &g, false),
            transformed_weight(o, c, &g2, false),
        );
        conv_many(&x, &s, &[&u, &u2], &mut [&mut y, &mut y2]);
        for (got, want) in [(&y, direct(&x, &s, &g, false)), (&y2, direct(&x, &s, &g2, false))] {
            for (a, b) in got.iter().zip(&want) {
                worst = worst.max((a - b).abs());
            }
        }
        // the transpose: ⟨y', conv(x')⟩ = ⟨transpose(y'), x'⟩ through the direct sum, and
        // a sum of two terms
        let t = s.transposed();
        let s1 = values(n * o * h * wo, 300 + case as u64);
        let s2 = values(n * o * h * wo, 400 + case as u64);
        let mut back = vec![f64::NAN; n * c * h * w];
        let (u, u2) = (
            transformed_weight(c, o, &g, true),
            transformed_weight(c, o, &g2, true),
        );
        conv_sum(&[&s1, &s2], &t, &[&u, &u2], &mut back);
        let want: Vec<f64> = direct(&s1, &t, &g, true)
            .iter()
            .zip(direct(&s2, &t, &g2, true))
            .map(|(a, b)| a + b)
            .collect();
        for (a, b) in back.iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
        // the transposed direct sum is the adjoint of the forward one
        let fwd = direct(&x, &s, &g, false);
        let lhs: f64 = fwd.iter().zip(&s1).map(|(a, b)| a * b).sum();
        let rhs: f64 = direct(&s1, &t, &g, true).iter().zip(&x).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12, "case {case}: adjoint {lhs} vs {rhs}");
    }
    assert!(worst < 1e-12, "deviation from the direct sum {worst:e}");
}
