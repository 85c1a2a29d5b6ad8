//! The batched entry points of [`Affine`]: `apply_many` equals one `apply_with` per weight,
//! and `apply_transpose_sum` the sum of the `apply_transpose` results, for dense layers and
//! for convolutions on both of their paths (im2col, and Winograd for 3×3 stride-1 layers
//! with ≥ 16 channels and ≥ 100 outputs); and their errors. `apply_ones` equals
//! `apply_with` on an image of ones, for convolutions of every geometry.

use crate::common;

use common::Rng;
use ndarray::{ArrayD, IxDyn};
use relevance::{Affine, Conv2d, Conv2dConfig, Dense, Error};

fn max_rel(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Checks both batched entry points of `layer` on a batch of 2 against the unbatched ones.
fn check(layer: &dyn Affine<f64>, input: &[usize], output: &[usize], rng: &mut Rng) {
    let shape = |s: &[usize]| [&[2], s].concat();
    let x = rng.array::<f64>(&shape(input), -1.0, 1.0);
    let w0 = layer.weight().to_owned();
    let ws: Vec<ArrayD<f64>> = (0..3)
        .map(|k| {
            if k == 0 {
                w0.clone()
            } else {
                rng.array::<f64>(w0.shape(), -1.0, 1.0)
            }
        })
        .collect();
    let views: Vec<_> = ws.iter().map(|w| w.view()).collect();
    let many = layer.apply_many(x.view(), &views).unwrap();
    assert_eq!(many.len(), 3);
    for (w, z) in ws.iter().zip(&many) {
        let one = layer.apply_with(x.view(), w.view()).unwrap();
        assert!(max_rel(z, &one) < 1e-13, "{}: apply_many", layer.name());
    }
    check_ones(layer, input, &ws[1]);
    let ss: Vec<ArrayD<f64>> = (0..3)
        .map(|_| rng.array::<f64>(&shape(output), -1.0, 1.0))
        .collect();
    let terms: Vec<_> = ss.iter().zip(&ws).map(|(s, w)| (s.view(), w.view())).collect();
    let sum = layer.apply_transpose_sum(&terms, input).unwrap();
    let mut want = ArrayD::<f64>::zeros(IxDyn(&shape(input)));
    for (s, w) in ss.iter().zip(&ws) {
        want += &layer.apply_transpose(s.view(), w.view(), input).unwrap();
    }
    assert!(
        max_rel(&sum, &want) < 1e-13,
        "{}: apply_transpose_sum",
        layer.name()
    );
    // errors: no terms, and terms of different batch sizes
    assert!(matches!(
        layer.apply_transpose_sum(&[], input),
        Err(Error::Unsupported { .. })
    ));
    let other = rng.array::<f64>(&[&[3], output].concat(), -1.0, 1.0);
    let mixed = [(ss[0].view(), ws[0].view()), (other.view(), ws[1].view())];
    assert!(
        layer.apply_transpose_sum(&mixed, input).is_err(),
        "{}",
        layer.name()
    );
}

#[test]
fn batched_entry_points_equal_the_unbatched_ones() {
    let mut rng = Rng::new(21);
    let dense = Dense::new(
        rng.array::<f64>(&[5, 7], -1.0, 1.0)
            .into_dimensionality()
            .unwrap(),
        None,
    )
    .unwrap();
    check(&dense, &[7], &[5], &mut rng);
    // im2col path (strided)
    let w = rng
        .array::<f64>(&[4, 3, 3, 3], -1.0, 1.0)
        .into_dimensionality()
        .unwrap();
    let conv = Conv2d::new(w, None, Conv2dConfig::default().padding(1).stride(2)).unwrap();
    check(&conv, &[3, 9, 8], &[4, 5, 4], &mut rng);
    // Winograd path
    let w = rng
        .array::<f64>(&[16, 16, 3, 3], -1.0, 1.0)
        .into_dimensionality()
        .unwrap();
    let conv = Conv2d::new(w, None, Conv2dConfig::default().padding(1)).unwrap();
    check(&conv, &[16, 20, 21], &[16, 20, 21], &mut rng);
}

/// `apply_ones` against `apply_with` on one sample of ones.
fn check_ones(layer: &dyn Affine<f64>, input: &[usize], w: &ArrayD<f64>) {
    let ones = ArrayD::<f64>::ones(IxDyn(&[&[1], input].concat()));
    let want = layer.apply_with(ones.view(), w.view()).unwrap();
    let got = layer.apply_ones(w.view(), input).unwrap();
    assert!(
        max_rel(&got, &want) < 1e-13,
        "{} on {input:?}: apply_ones",
        layer.name()
    );
}

#[test]
fn apply_ones_equals_a_map_of_ones_for_every_geometry() {
    let mut rng = Rng::new(22);
    // (kernel, stride, padding, dilation, input)
    type Pair = (usize, usize);
    let cases: [(Pair, Pair, Pair, Pair, [usize; 3]); 8] = [
        ((3, 3), (1, 1), (1, 1), (1, 1), [2, 7, 9]),
        ((3, 3), (1, 1), (0, 0), (1, 1), [1, 5, 5]),
        ((5, 5), (2, 2), (2, 2), (1, 1), [3, 11, 8]),
        ((3, 1), (1, 3), (2, 0), (2, 1), [2, 9, 10]),
        ((1, 1), (2, 2), (0, 0), (1, 1), [4, 6, 7]),
        ((7, 7), (1, 1), (3, 3), (1, 1), [1, 4, 3]),
        ((3, 3), (2, 1), (3, 1), (1, 3), [2, 6, 9]),
        ((2, 4), (3, 2), (1, 2), (2, 2), [3, 10, 12]),
    ];
    for (k, stride, padding, dilation, input) in cases {
        let w = rng
            .array::<f64>(&[5, input[0], k.0, k.1], -1.0, 1.0)
            .into_dimensionality()
            .unwrap();
        let config = Conv2dConfig {
            stride,
            padding,
            dilation,
            ..Conv2dConfig::default()
        };
        let conv = Conv2d::new(w.clone(), None, config).unwrap();
        check_ones(&conv, &input, &w.into_dyn());
    }
    // a wrong input shape is an error, not a panic
    let conv = Conv2d::new(
        rng.array::<f64>(&[2, 3, 3, 3], -1.0, 1.0)
            .into_dimensionality()
            .unwrap(),
        None,
        Conv2dConfig::default(),
    )
    .unwrap();
    assert!(conv.apply_ones(conv.weight(), &[3, 2, 2]).is_err());
    assert!(conv.apply_ones(conv.weight(), &[3, 4]).is_err());
}
