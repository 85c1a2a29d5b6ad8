//! The batched entry points of [`Affine`]: `apply_many` equals one `apply_with` per weight,
//! and `apply_transpose_sum` the sum of the `apply_transpose` results, for dense layers and
//! for convolutions on both of their paths (im2col, and Winograd for 3×3 stride-1 layers
//! with ≥ 16 channels and ≥ 400 outputs); and their errors.

mod common;

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
