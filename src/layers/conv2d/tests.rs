//! The Winograd and im2col paths against plain loops, on many geometries. Both are also
//! checked against zennit by the fixture tests: Winograd runs on 3×3 layers with ≥ 16
//! channels and ≥ 100 outputs (10×10), which the `wide` LRP fixture's 16→16 convolution (20×20
//! outputs) has; most other fixture convolutions take im2col.
use super::*;
use crate::layers::Affine;
use ndarray::{Array4, Axis};

fn rng(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// Direct loops: y[n,o,oy,ox] = Σ w[o,c,i,j]·x[n,c,oy+i−p,ox+j−p].
fn naive(x: &Array4<f64>, w: &Array4<f64>, p: usize) -> Array4<f64> {
    let (n, c, h, wd) = x.dim();
    let o = w.shape()[0];
    let (ho, wo) = (h + 2 * p - 2, wd + 2 * p - 2);
    Array4::from_shape_fn((n, o, ho, wo), |(s, oc, oy, ox)| {
        let mut acc = 0.0;
        for ci in 0..c {
            for i in 0..3 {
                for j in 0..3 {
                    let (yy, xx) = ((oy + i) as isize - p as isize, (ox + j) as isize - p as isize);
                    if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                        acc += w[[oc, ci, i, j]] * x[[s, ci, yy as usize, xx as usize]];
                    }
                }
            }
        }
        acc
    })
}

/// Direct loops of the transpose: g[n,c,y,x] = Σ w[o,c,i,j]·s[n,o,y+p−i,x+p−j].
fn naive_transpose(s: &Array4<f64>, w: &Array4<f64>, p: usize, h: usize, wd: usize) -> Array4<f64> {
    let (n, o, ho, wo) = s.dim();
    let c = w.shape()[1];
    Array4::from_shape_fn((n, c, h, wd), |(b, ci, yy, xx)| {
        let mut acc = 0.0;
        for oc in 0..o {
            for i in 0..3 {
                for j in 0..3 {
                    let (oy, ox) = ((yy + p) as isize - i as isize, (xx + p) as isize - j as isize);
                    if oy >= 0 && ox >= 0 && (oy as usize) < ho && (ox as usize) < wo {
                        acc += w[[oc, ci, i, j]] * s[[b, oc, oy as usize, ox as usize]];
                    }
                }
            }
        }
        acc
    })
}

fn max_rel(a: &ArrayD<f64>, b: &Array4<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn winograd_matches_direct_loops() {
    // (n, c, o, h, w, padding): even and odd sizes, every padding the path takes
    let cases = [
        (2, 16, 17, 20, 20, 1),
        (1, 16, 16, 21, 23, 1),
        (2, 18, 16, 23, 22, 0),
        (1, 16, 20, 19, 21, 2),
        (1, 17, 16, 1, 401, 1),
    ];
    for (k, &(n, c, o, h, wd, p)) in cases.iter().enumerate() {
        let mut r = rng(k as u64 + 1);
        let x = Array4::from_shape_fn((n, c, h, wd), |_| r());
        let w = Array4::from_shape_fn((o, c, 3, 3), |_| r());
        let layer = Conv2d::new(w.clone(), None, Conv2dConfig::default().padding(p)).unwrap();
        let g = layer.geometry(n, &[c, h, wd]).unwrap();
        assert!(
            layer.winograd_shape(&g).is_some(),
            "case {k} takes the Winograd path"
        );
        let y = layer.forward(x.view().into_dyn()).unwrap();
        let dev = max_rel(&y, &naive(&x, &w, p));
        assert!(dev < 1e-13, "case {k}: forward deviation {dev:e}");
        let s = Array4::from_shape_fn((n, o, g.ho, g.wo), |_| r());
        let t = layer
            .apply_transpose(s.view().into_dyn(), w.view().into_dyn(), &[c, h, wd])
            .unwrap();
        let t_ref = naive_transpose(&s, &w, p, h, wd);
        let dev = max_rel(&t, &t_ref);
        assert!(dev < 1e-13, "case {k}: transpose deviation {dev:e}");
        // with the layer's own weight: its kept forward transform, permuted and transposed
        // (the forward pass above made it)
        let own = layer
            .apply_transpose(s.view().into_dyn(), layer.weight(), &[c, h, wd])
            .unwrap();
        let dev = max_rel(&own, &t_ref);
        assert!(
            dev < 1e-13,
            "case {k}: transpose with the kept transform, deviation {dev:e}"
        );
        // and in a sum with a substituted weight (transformed for the call)
        let w2 = w.mapv(|v| 0.5 * v);
        let sum = layer
            .apply_transpose_sum(
                &[
                    (s.view().into_dyn(), layer.weight()),
                    (s.view().into_dyn(), w2.view().into_dyn()),
                ],
                &[c, h, wd],
            )
            .unwrap();
        let dev = max_rel(&sum, &t_ref.mapv(|v| 1.5 * v));
        assert!(dev < 1e-13, "case {k}: mixed sum deviation {dev:e}");
    }
}

/// Direct loops for any kernel, stride, padding and dilation: the forward
/// y[n,o,oy,ox] = Σ w[o,c,i,j]·x[n,c,oy·sh+i·dh−ph, ox·sw+j·dw−pw], and the transpose
/// g = Σ over the same taps of w·s, scattered back to x's positions.
fn naive_any(
    x: &Array4<f64>,
    w: &Array4<f64>,
    s: &Array4<f64>,
    cfg: Conv2dConfig,
) -> (Array4<f64>, Array4<f64>) {
    let (n, c, h, wd) = x.dim();
    let (o, _, kh, kw) = w.dim();
    let (_, _, ho, wo) = s.dim();
    let mut y = Array4::zeros((n, o, ho, wo));
    let mut g = Array4::zeros((n, c, h, wd));
    for b in 0..n {
        for oc in 0..o {
            for oy in 0..ho {
                for ox in 0..wo {
                    for ci in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let yy = (oy * cfg.stride.0 + i * cfg.dilation.0) as isize
                                    - cfg.padding.0 as isize;
                                let xx = (ox * cfg.stride.1 + j * cfg.dilation.1) as isize
                                    - cfg.padding.1 as isize;
                                if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                                    let (yy, xx) = (yy as usize, xx as usize);
                                    y[[b, oc, oy, ox]] += w[[oc, ci, i, j]] * x[[b, ci, yy, xx]];
                                    g[[b, ci, yy, xx]] += w[[oc, ci, i, j]] * s[[b, oc, oy, ox]];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (y, g)
}

/// The im2col path (contiguous copies for stride-1 convolutions with Wo = W, short
/// runs otherwise) against direct loops, forward and transpose.
#[test]
fn im2col_matches_direct_loops() {
    // (n, c, o, h, w, kernel, config)
    let d = Conv2dConfig::default;
    let cases = [
        (2, 3, 4, 7, 6, (3, 3), d().padding(1)),
        (1, 2, 3, 5, 9, (5, 5), d().padding(2)),
        (
            2,
            2,
            2,
            6,
            5,
            (1, 3),
            Conv2dConfig {
                padding: (0, 1),
                ..d()
            },
        ),
        (
            1,
            2,
            3,
            9,
            8,
            (3, 3),
            Conv2dConfig {
                padding: (2, 2),
                dilation: (2, 2),
                ..d()
            },
        ),
        (
            2,
            1,
            3,
            6,
            7,
            (3, 3),
            Conv2dConfig {
                padding: (0, 1),
                ..d()
            },
        ),
        (1, 2, 2, 4, 1, (3, 3), d().padding(1)),
        (1, 2, 2, 3, 2, (5, 5), d().padding(2)),
        (2, 2, 3, 9, 8, (3, 3), d().padding(1).stride(2)),
        (1, 3, 2, 6, 7, (2, 3), d()),
        // 1×1, stride 1, no padding: one product per sample in place (`is_pointwise`)
        (1, 5, 3, 4, 6, (1, 1), d()),
        (3, 4, 6, 5, 3, (1, 1), d()),
        // 1×1 with stride or padding: im2col
        (2, 4, 3, 7, 6, (1, 1), d().stride(2)),
        (2, 3, 2, 4, 4, (1, 1), d().padding(1)),
    ];
    // every case on im2col, then again on the direct path where it is eligible (stride 1,
    // one group, few channels)
    for im2col in [true, false] {
        let run = |case| {
            if im2col {
                super::direct::on_im2col(|| im2col_case(case))
            } else {
                im2col_case(case)
            }
        };
        let direct = cases.iter().enumerate().filter(|&case| run(case)).count();
        // on im2col only: none direct; else the stride-1 ones (the machine permitting)
        let want = if im2col || !crate::kernels::direct::available() {
            0
        } else {
            9
        };
        assert_eq!(direct, want, "cases on the direct path (im2col only: {im2col})");
    }
}

/// One case of [`im2col_matches_direct_loops`], on the path its layer takes.
#[allow(clippy::type_complexity)]
fn im2col_case(
    (k, &(n, c, o, h, wd, (kh, kw), cfg)): (
        usize,
        &(usize, usize, usize, usize, usize, (usize, usize), Conv2dConfig),
    ),
) -> bool {
    {
        let mut r = rng(k as u64 + 11);
        let x = Array4::from_shape_fn((n, c, h, wd), |_| r());
        let w = Array4::from_shape_fn((o, c, kh, kw), |_| r());
        let layer = Conv2d::new(w.clone(), None, cfg).unwrap();
        let g = layer.geometry(n, &[c, h, wd]).unwrap();
        assert!(layer.winograd_shape(&g).is_none(), "case {k} takes im2col");
        let s = Array4::from_shape_fn((n, o, g.ho, g.wo), |_| r());
        let (y_ref, t_ref) = naive_any(&x, &w, &s, cfg);
        let y = layer.forward(x.view().into_dyn()).unwrap();
        let dev = max_rel(&y, &y_ref);
        assert!(dev < 1e-14, "case {k}: forward deviation {dev:e}");
        let t = layer
            .apply_transpose(s.view().into_dyn(), w.view().into_dyn(), &[c, h, wd])
            .unwrap();
        let dev = max_rel(&t, &t_ref);
        assert!(dev < 1e-14, "case {k}: transpose deviation {dev:e}");
        // a sum of two terms (stacked into one product): s with w, and s with −2w
        let w2 = w.mapv(|v| -2.0 * v);
        let sum = layer
            .apply_transpose_sum(
                &[
                    (s.view().into_dyn(), w.view().into_dyn()),
                    (s.view().into_dyn(), w2.view().into_dyn()),
                ],
                &[c, h, wd],
            )
            .unwrap();
        let dev = max_rel(&sum, &t_ref.mapv(|v| -v));
        assert!(dev < 1e-13, "case {k}: summed transpose deviation {dev:e}");
        assert_eq!(
            layer.is_pointwise(&g),
            (kh, kw, cfg.stride, cfg.padding) == (1, 1, (1, 1), (0, 0)),
            "case {k}"
        );
        !layer.is_pointwise(&g) && layer.direct_shape(&g).is_some()
    }
}

#[test]
fn narrow_and_strided_layers_keep_im2col() {
    let w = Array4::<f64>::zeros((16, 8, 3, 3));
    let layer = Conv2d::new(w, None, Conv2dConfig::default().padding(1)).unwrap();
    assert!(layer
        .winograd_shape(&layer.geometry(1, &[8, 30, 30]).unwrap())
        .is_none());
    let w = Array4::<f64>::zeros((16, 16, 3, 3));
    let layer = Conv2d::new(w.clone(), None, Conv2dConfig::default().padding(1).stride(2)).unwrap();
    assert!(layer
        .winograd_shape(&layer.geometry(1, &[16, 40, 40]).unwrap())
        .is_none());
    let layer = Conv2d::new(w, None, Conv2dConfig::default().padding(1)).unwrap();
    assert!(layer
        .winograd_shape(&layer.geometry(1, &[16, 9, 11]).unwrap())
        .is_none());
    assert!(layer
        .winograd_shape(&layer.geometry(1, &[16, 10, 10]).unwrap())
        .is_some());
}

/// Winograd's F(4, 3) path of 1×3 kernels (dilated `Conv1d`s of genomics models) against
/// direct loops, forward and transpose: dilations from 1 to 64, symmetric, asymmetric and no
/// padding, several rows, lengths that leave the last block of a residue partly filled.
#[test]
fn winograd_1x3_matches_direct_loops() {
    // (n, c, o, h, w, dilation, padding before, padding after)
    let cases = [
        (2, 16, 17, 1, 100, 1, 1, 1),
        (1, 16, 16, 1, 131, 2, 2, 2),
        (3, 17, 16, 1, 97, 4, 4, 4),
        (1, 16, 18, 2, 203, 8, 8, 8),
        (2, 16, 16, 1, 300, 64, 64, 64),
        (1, 16, 16, 1, 90, 3, 0, 0),
        (1, 16, 16, 1, 120, 16, 32, 0),
    ];
    for (k, &(n, c, o, h, wd, dil, pl, pr)) in cases.iter().enumerate() {
        let mut r = rng(k as u64 + 31);
        let x = Array4::from_shape_fn((n, c, h, wd), |_| r());
        let w = Array4::from_shape_fn((o, c, 1, 3), |_| r());
        let cfg = Conv2dConfig {
            padding: (0, pl),
            padding_end: Some((0, pr)),
            dilation: (1, dil),
            ..Conv2dConfig::default()
        };
        let layer = Conv2d::new(w.clone(), None, cfg).unwrap();
        let g = layer.geometry(n, &[c, h, wd]).unwrap();
        assert!(
            layer.winograd1d_shape(&g).is_some(),
            "case {k} takes the 1×3 Winograd path"
        );
        let s = Array4::from_shape_fn((n, o, g.ho, g.wo), |_| r());
        let (y_ref, t_ref) = naive_any(&x, &w, &s, cfg);
        let y = layer.forward(x.view().into_dyn()).unwrap();
        let dev = max_rel(&y, &y_ref);
        assert!(dev < 1e-13, "case {k}: forward deviation {dev:e}");
        let t = layer
            .apply_transpose(s.view().into_dyn(), w.view().into_dyn(), &[c, h, wd])
            .unwrap();
        let dev = max_rel(&t, &t_ref);
        assert!(dev < 1e-13, "case {k}: transpose deviation {dev:e}");
    }
    // narrow, strided, grouped or short layers keep im2col
    let w = Array4::<f64>::zeros((16, 8, 1, 3));
    let narrow = Conv2d::new(w, None, Conv2dConfig::default()).unwrap();
    assert!(narrow
        .winograd1d_shape(&narrow.geometry(1, &[8, 1, 200]).unwrap())
        .is_none());
    let w = Array4::<f64>::zeros((16, 16, 1, 3));
    let strided = Conv2d::new(w.clone(), None, Conv2dConfig::default().stride(2)).unwrap();
    assert!(strided
        .winograd1d_shape(&strided.geometry(1, &[16, 1, 200]).unwrap())
        .is_none());
    let layer = Conv2d::new(w, None, Conv2dConfig::default()).unwrap();
    assert!(layer
        .winograd1d_shape(&layer.geometry(1, &[16, 1, 65]).unwrap())
        .is_none());
    assert!(layer
        .winograd1d_shape(&layer.geometry(1, &[16, 1, 66]).unwrap())
        .is_some());
}

/// The 1×3 Winograd path's kept transforms: the layer's own weight (forward and transpose,
/// kept after the first call) gives the direct loops' values, and another weight passed after
/// them is transformed for its call, not mistaken for the kept one; in f32 the path stays
/// within a few 1e-7 of the f64 direct sum.
#[test]
fn winograd_1x3_kept_transforms_and_f32() {
    let (n, c, o, wd, dil) = (2, 16, 16, 150, 4);
    let mut r = rng(77);
    let x = Array4::from_shape_fn((n, c, 1, wd), |_| r());
    let w = Array4::from_shape_fn((o, c, 1, 3), |_| r());
    let cfg = Conv2dConfig {
        padding: (0, dil),
        dilation: (1, dil),
        ..Conv2dConfig::default()
    };
    let layer = Conv2d::new(w.clone(), None, cfg).unwrap();
    let g = layer.geometry(n, &[c, 1, wd]).unwrap();
    assert!(layer.winograd1d_shape(&g).is_some());
    let s = Array4::from_shape_fn((n, o, 1, g.wo), |_| r());
    let (y_ref, t_ref) = naive_any(&x, &w, &s, cfg);
    for round in 0..2 {
        // round 1 reads the transforms kept by round 0
        let y = layer
            .apply_with(x.view().into_dyn(), Affine::weight(&layer))
            .unwrap();
        assert!(max_rel(&y, &y_ref) < 1e-13, "round {round}: forward");
        let t = layer
            .apply_transpose(s.view().into_dyn(), Affine::weight(&layer), &[c, 1, wd])
            .unwrap();
        assert!(max_rel(&t, &t_ref) < 1e-13, "round {round}: transpose");
    }
    // another weight, after the layer's own were kept
    let w2 = w.mapv(|v| 2.0 * v + 0.25);
    let (y2_ref, t2_ref) = naive_any(&x, &w2, &s, cfg);
    let many = layer
        .apply_many(
            x.view().into_dyn(),
            &[Affine::weight(&layer), w2.view().into_dyn()],
        )
        .unwrap();
    assert!(max_rel(&many[0], &y_ref) < 1e-13);
    assert!(max_rel(&many[1], &y2_ref) < 1e-13, "a substituted weight");
    let t2 = layer
        .apply_transpose(s.view().into_dyn(), w2.view().into_dyn(), &[c, 1, wd])
        .unwrap();
    assert!(max_rel(&t2, &t2_ref) < 1e-13, "a substituted weight, transposed");
    // f32
    let layer32 = Conv2d::new(w.mapv(|v| v as f32), None, cfg).unwrap();
    let y32 = layer32.forward(x.mapv(|v| v as f32).view().into_dyn()).unwrap();
    let y32 = y32.mapv(|v| v as f64);
    let dev = max_rel(&y32, &y_ref);
    println!("f32 1×3 Winograd against the f64 direct sum: {dev:.1e}");
    assert!(dev < 2e-6, "f32 deviation {dev:e}");
}

/// The direct path (`kernels::direct`) against plain loops: register blocks of one, two and
/// four output channels with a partial last block, asymmetric padding, dilation, kernels
/// wider than tall and taller than wide, rows of several blocks, a padding beyond the
/// kernel's reach (its transposed pass then takes im2col), f32 within rounding of f64;
/// the forward pass with its bias gives the bits of the product plus a bias pass, and a
/// sample gives the same bits alone and in a batch.
#[test]
fn direct_path_matches_plain_loops() {
    if !crate::kernels::direct::available() {
        return;
    }
    let d = Conv2dConfig::default;
    // (n, c, o, h, w, kernel, config, transposed on the direct path)
    let cases = [
        (2, 1, 8, 28, 28, (3, 3), d().padding(1), true),
        (3, 8, 16, 14, 14, (3, 3), d().padding(1), true),
        (2, 3, 1, 9, 11, (3, 3), d().padding(1), true),
        (1, 2, 2, 7, 40, (3, 3), d().padding(1), true),
        (2, 4, 3, 6, 5, (2, 3), d().pads((0, 1), (1, 2)), true),
        (1, 3, 5, 10, 9, (3, 3), d().padding(2).dilation(2), true),
        (2, 2, 17, 5, 8, (5, 1), d().pads((2, 0), (1, 0)), true),
        (1, 2, 6, 6, 6, (3, 3), d().padding(3), false),
    ];
    for (k, &(n, c, o, h, wd, (kh, kw), cfg, transposed)) in cases.iter().enumerate() {
        let mut r = rng(k as u64 + 101);
        let x = Array4::from_shape_fn((n, c, h, wd), |_| r());
        let w = Array4::from_shape_fn((o, c, kh, kw), |_| r());
        let b = Array1::from_shape_fn(o, |_| r());
        let layer = Conv2d::new(w.clone(), Some(b.clone()), cfg).unwrap();
        let g = layer.geometry(n, &[c, h, wd]).unwrap();
        assert!(layer.direct_shape(&g).is_some(), "case {k} takes the direct path");
        let s = Array4::from_shape_fn((n, o, g.ho, g.wo), |_| r());
        let (y_ref, t_ref) = naive_any(&x, &w, &s, cfg);
        let y = layer.forward(x.view().into_dyn()).unwrap();
        let with_bias = &y_ref + &b.view().into_shape_with_order((1, o, 1, 1)).unwrap();
        let dev = max_rel(&y, &with_bias);
        assert!(dev < 1e-14, "case {k}: forward deviation {dev:e}");
        // the bias added as each sum is stored: the bits of the product, then a bias pass
        let mut product = layer
            .apply_with(x.view().into_dyn(), w.view().into_dyn())
            .unwrap();
        layer.add_bias(&mut product, b.view());
        assert_eq!(bits(&y), bits(&product), "case {k}: fused bias");
        // a sample alone and in the batch
        let tail =
            |a: ndarray::ArrayViewD<'_, f64>| a.slice_axis(Axis(0), ndarray::Slice::from(n - 1..)).to_owned();
        let alone = layer.forward(tail(x.view().into_dyn()).view()).unwrap();
        let last = tail(y.view());
        assert_eq!(bits(&alone), bits(&last), "case {k}: alone and in a batch");
        // the transposed pass, alone and as a sum of three terms
        let input = [c, h, wd];
        let one = [(
            s.view(),
            w.view().into_shape_with_order((o, c * kh * kw)).unwrap(),
        )];
        assert_eq!(layer.direct_transpose(&g, &one).is_some(), transposed, "case {k}");
        let t = layer
            .apply_transpose(s.view().into_dyn(), w.view().into_dyn(), &input)
            .unwrap();
        let dev = max_rel(&t, &t_ref);
        assert!(dev < 1e-14, "case {k}: transpose deviation {dev:e}");
        let (w2, w3) = (w.mapv(|v| -2.0 * v), w.mapv(|v| 0.5 * v));
        let s3 = s.mapv(|v| 3.0 * v);
        let terms = [
            (s.view().into_dyn(), w.view().into_dyn()),
            (s.view().into_dyn(), w2.view().into_dyn()),
            (s3.view().into_dyn(), w3.view().into_dyn()),
        ];
        let sum = layer.apply_transpose_sum(&terms, &input).unwrap();
        let dev = max_rel(&sum, &t_ref.mapv(|v| 0.5 * v));
        assert!(dev < 1e-13, "case {k}: summed transpose deviation {dev:e}");
        // f32 within its rounding of the f64 result
        let layer32 = Conv2d::new(w.mapv(|v| v as f32), Some(b.mapv(|v| v as f32)), cfg).unwrap();
        let y32 = layer32.forward(x.mapv(|v| v as f32).view().into_dyn()).unwrap();
        let dev = max_rel(&y32.mapv(f64::from), &with_bias);
        assert!(dev < 1e-5, "case {k}: f32 forward deviation {dev:e}");
        let t32 = layer32
            .apply_transpose(
                s.mapv(|v| v as f32).view().into_dyn(),
                w.mapv(|v| v as f32).view().into_dyn(),
                &input,
            )
            .unwrap();
        let dev = max_rel(&t32.mapv(f64::from), &t_ref);
        assert!(dev < 1e-5, "case {k}: f32 transpose deviation {dev:e}");
    }
}

fn bits(a: &ArrayD<f64>) -> Vec<u64> {
    a.iter().map(|v| v.to_bits()).collect()
}
