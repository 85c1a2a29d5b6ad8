//! The one-pass cross-max against the general path.

use super::steps::cross_max_general;
use super::*;
use crate::layers::{MaxPool2d, Relu};
use ndarray::Axis;
use ndarray::{Array, IxDyn};

/// A small deterministic generator with many ties (values on a coarse grid).
fn grid(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 7) as f64 - 3.0
        })
        .collect()
}

/// The one-pass 2×2 cross-max gives the general path's values bit for bit: ties,
/// `Δx = 0`, argmaxes of `x` and `x̄` that differ, odd sizes, a broadcast baseline, rows of
/// eight windows and more (the vector path) with a remainder, f64 and f32.
#[test]
fn cross_max_2x2_matches_the_general_path() {
    cross_max_cases::<f64>();
    cross_max_cases::<f32>();
}

fn cross_max_cases<F: Float>() {
    let pool = MaxPool2d::square(2).unwrap();
    let cases = [
        (1, 3, 4, 6, false),
        (2, 2, 5, 7, false),
        (3, 2, 6, 5, true),
        (2, 2, 6, 34, false),
        (3, 1, 4, 20, true),
    ];
    let arr = |shape: &[usize], seed| {
        let v = grid(shape.iter().product(), seed)
            .into_iter()
            .map(F::lit)
            .collect();
        Array::from_shape_vec(IxDyn(shape), v).unwrap()
    };
    for (n, c, h, w, broadcast) in cases {
        let (ho, wo) = (h / 2, w / 2);
        let x = arr(&[n, c, h, w], 1);
        let x0_row = arr(&[1, c, h, w], 2);
        let x0 = if broadcast {
            x0_row.broadcast(IxDyn(&[n, c, h, w])).unwrap().to_owned()
        } else {
            arr(&[n, c, h, w], 2)
        };
        let x0_view = if broadcast {
            x0_row.broadcast(IxDyn(&[n, c, h, w])).unwrap()
        } else {
            x0.view()
        };
        assert!(x.iter().zip(x0.iter()).any(|(a, b)| a == b), "some Δx = 0");
        let m = arr(&[n, c, ho, wo], 3);
        let y = Layer::<F>::forward(&pool, x.view()).unwrap();
        let y0 = Layer::<F>::forward(&pool, x0.view()).unwrap();
        let mut step = Step::new(0, x.view(), y.view(), m.view());
        step.baseline_input = Some(x0_view.clone());
        step.baseline_output = Some(y0.view());
        let threshold = F::lit(DEEPLIFT_THRESHOLD);
        let fast = Select::cross_max(&pool, &step.input, &x0_view, &step.relevance, threshold)
            .expect("a 2×2 pool takes the one-pass path");
        let general = cross_max_general(&pool, &step, threshold).unwrap();
        assert_eq!(fast.shape(), general.shape());
        // `==` is bit equality here, up to the sign of zero
        for (a, b) in fast.iter().zip(general.iter()) {
            assert!(a == b, "{a} vs {b}");
        }
        // and it is not trivially zero
        assert!(fast.iter().any(|&v| v != F::zero()));
    }
}

/// The indexed cross-max of other windows (each input's first maxima found once) gives the
/// general path's bits: ResNet's 3×3 / stride-2 / padding-1 pool, overlapping and
/// rectangular windows, a broadcast baseline, and planes large enough to be split across
/// threads; f64 and f32.
#[test]
fn cross_max_indexed_matches_the_general_path() {
    indexed_cases::<f64>();
    indexed_cases::<f32>();
}

fn indexed_cases<F: Float>() {
    let arr = |shape: &[usize], seed| {
        let v = grid(shape.iter().product(), seed)
            .into_iter()
            .map(F::lit)
            .collect();
        Array::from_shape_vec(IxDyn(shape), v).unwrap()
    };
    let pools = [
        (
            MaxPool2d::new((3, 3), (2, 2), (1, 1)).unwrap(),
            [2, 3, 9, 11],
            false,
        ),
        (
            MaxPool2d::new((3, 3), (2, 2), (1, 1)).unwrap(),
            [3, 2, 8, 7],
            true,
        ),
        (
            MaxPool2d::new((3, 3), (1, 1), (1, 1)).unwrap(),
            [1, 2, 6, 5],
            false,
        ),
        (
            MaxPool2d::new((2, 3), (2, 1), (0, 0)).unwrap(),
            [2, 2, 7, 6],
            true,
        ),
        (
            MaxPool2d::new((2, 2), (1, 1), (0, 0)).unwrap(),
            [1, 3, 5, 5],
            false,
        ),
        // 16 × 130 × 130 = 270 400 values: the index passes split their planes
        (
            MaxPool2d::new((3, 3), (2, 2), (1, 1)).unwrap(),
            [1, 16, 130, 130],
            false,
        ),
    ];
    for (pool, [n, c, h, w], broadcast) in pools {
        let x = arr(&[n, c, h, w], 4);
        let x0_row = arr(&[1, c, h, w], 5);
        let x0 = if broadcast {
            x0_row.broadcast(IxDyn(&[n, c, h, w])).unwrap().to_owned()
        } else {
            arr(&[n, c, h, w], 5)
        };
        let x0_view = if broadcast {
            x0_row.broadcast(IxDyn(&[n, c, h, w])).unwrap()
        } else {
            x0.view()
        };
        let y = Layer::<F>::forward(&pool, x.view()).unwrap();
        let y0 = Layer::<F>::forward(&pool, x0.view()).unwrap();
        let m = arr(y.shape(), 6);
        let mut step = Step::new(0, x.view(), y.view(), m.view());
        step.baseline_input = Some(x0_view.clone());
        step.baseline_output = Some(y0.view());
        let threshold = F::lit(DEEPLIFT_THRESHOLD);
        let what = format!("{pool:?} on {:?}", [n, c, h, w]);
        let fast = Select::cross_max(&pool, &step.input, &x0_view, &step.relevance, threshold)
            .expect("the indexed path takes any 4-d pool");
        let general = cross_max_general(&pool, &step, threshold).unwrap();
        assert_eq!(fast.shape(), general.shape(), "{what}");
        let bits = |a: &ArrayD<F>| a.iter().map(|v| v.as_f64().to_bits()).collect::<Vec<_>>();
        assert!(bits(&fast) == bits(&general), "{what}");
        assert!(fast.iter().any(|&v| v != F::zero()), "{what}");
    }
}

/// Rescale at a ReLU gives the same bits on contiguous arrays (the slice loop), on strided
/// views (the general pass) and with a baseline broadcast over the batch, including where
/// |Δx| falls below the threshold (the gradient fallback: on one sample of eight, so that the
/// contiguous arrays take it on the gathered elements only, the strided views on the whole).
#[test]
fn rescale_layouts_give_the_same_bits() {
    use ndarray::{IxDyn, Slice};
    let (n, c, h, w) = (8, 2, 3, 5);
    let value = |i: usize| ((i * 7919) % 23) as f64 / 4.0 - 2.5;
    let x = ArrayD::from_shape_fn(IxDyn(&[n, c, h, w]), |d| {
        value(d[0] * 97 + d[1] * 31 + d[2] * 7 + d[3])
    });
    // one sample, repeated: x equals it on the first sample, so |Δx| = 0 there
    let x0_one = x.index_axis(Axis(0), 0).to_owned().insert_axis(Axis(0));
    let x0 = x0_one.broadcast(IxDyn(&[n, c, h, w])).unwrap();
    let relu = Relu;
    let (y, y0) = (relu.forward(x.view()).unwrap(), relu.forward(x0.view()).unwrap());
    let m_out = ArrayD::from_shape_fn(IxDyn(&[n, c, h, w]), |d| {
        value(d[3] * 5 + d[2] + 11 * d[1] + 3 * d[0])
    });
    let dl = DeepLiftRule(DeepLift::rescale());
    let run = |x: &ArrayD<f64>,
               x0: ndarray::ArrayViewD<'_, f64>,
               y: &ArrayD<f64>,
               y0: ndarray::ArrayViewD<'_, f64>,
               m: ndarray::ArrayViewD<'_, f64>| {
        let step = Step::new(0, x.view(), y.view(), m).with_baseline(x0, y0);
        Layer::<f64>::class(&relu).relevance(&dl, &step).unwrap()
    };
    let contiguous = run(&x, x0.to_owned().view(), &y, y0.view(), m_out.view());
    let broadcast = run(
        &x,
        x0.view(),
        &y,
        y0.broadcast(IxDyn(&[n, c, h, w])).unwrap(),
        m_out.view(),
    );
    // strided: every array a slice of a wider one
    let wide = |a: &ArrayD<f64>| {
        let mut b = ArrayD::<f64>::zeros(IxDyn(&[n, c, h, w + 3]));
        b.slice_axis_mut(Axis(3), Slice::from(0..w)).assign(a);
        b
    };
    let (xs, x0s, ys, y0s, ms) = (
        wide(&x),
        wide(&x0.to_owned()),
        wide(&y),
        wide(&y0.to_owned()),
        wide(&m_out),
    );
    let cut = |a: &ArrayD<f64>| a.slice_axis(Axis(3), Slice::from(0..w)).into_owned();
    let strided = {
        let step = Step::new(
            0,
            xs.slice_axis(Axis(3), Slice::from(0..w)),
            ys.slice_axis(Axis(3), Slice::from(0..w)),
            ms.slice_axis(Axis(3), Slice::from(0..w)),
        )
        .with_baseline(
            x0s.slice_axis(Axis(3), Slice::from(0..w)),
            y0s.slice_axis(Axis(3), Slice::from(0..w)),
        );
        Layer::<f64>::class(&relu).relevance(&dl, &step).unwrap()
    };
    assert_eq!(cut(&xs), x);
    let bits = |a: &ArrayD<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&contiguous), bits(&strided));
    assert_eq!(bits(&contiguous), bits(&broadcast));
    // the first sample took the fallback: the ReLU's gradient times m_out
    let first = contiguous.index_axis(Axis(0), 0);
    let want = ndarray::Zip::from(x.index_axis(Axis(0), 0))
        .and(m_out.index_axis(Axis(0), 0))
        .map_collect(|&x, &m| if x > 0.0 { m } else { 0.0 });
    assert_eq!(first, want);
}

/// The fallback on gathered elements with an activation whose gradient reads its output
/// (the sigmoid): where `Δx = 0` (one sample of eight equals the baseline, and a few single
/// elements elsewhere) the multiplier is `σ'(x) · m`, elsewhere the secant, as on a strided
/// view of the same arrays (the whole-array fallback).
#[test]
fn rescale_fallback_on_gathered_elements_reads_the_output() {
    use crate::layers::Sigmoid;
    use ndarray::{IxDyn, Slice};
    let (n, l) = (8, 40);
    let value = |i: usize| ((i * 7919) % 37) as f64 / 6.0 - 3.0;
    let x = ArrayD::from_shape_fn(IxDyn(&[n, l]), |d| value(d[0] * 41 + d[1]));
    let mut x0 = ArrayD::from_shape_fn(IxDyn(&[n, l]), |d| value(d[0] * 43 + d[1] + 5));
    x0.index_axis_mut(Axis(0), 0).assign(&x.index_axis(Axis(0), 0));
    x0[[3, 7]] = x[[3, 7]];
    x0[[6, 39]] = x[[6, 39]];
    let sig = Sigmoid;
    let (y, y0) = (sig.forward(x.view()).unwrap(), sig.forward(x0.view()).unwrap());
    let m = ArrayD::from_shape_fn(IxDyn(&[n, l]), |d| value(d[1] * 3 + d[0]) + 0.5);
    let dl = DeepLiftRule(DeepLift::rescale());
    let step = Step::new(0, x.view(), y.view(), m.view()).with_baseline(x0.view(), y0.view());
    let got = Layer::<f64>::class(&sig).relevance(&dl, &step).unwrap();
    // strided copies take the whole-array path
    let wide = |a: &ArrayD<f64>| {
        let mut b = ArrayD::<f64>::zeros(IxDyn(&[n, l + 2]));
        b.slice_axis_mut(Axis(1), Slice::from(0..l)).assign(a);
        b
    };
    let (xs, x0s, ys, y0s, ms) = (wide(&x), wide(&x0), wide(&y), wide(&y0), wide(&m));
    let cut = |a: &ArrayD<f64>| a.slice_axis(Axis(1), Slice::from(0..l)).to_owned();
    let (xs, x0s, ys, y0s, ms) = (&xs, &x0s, &ys, &y0s, &ms);
    let strided_step = Step::new(
        0,
        xs.slice_axis(Axis(1), Slice::from(0..l)),
        ys.slice_axis(Axis(1), Slice::from(0..l)),
        ms.slice_axis(Axis(1), Slice::from(0..l)),
    )
    .with_baseline(
        x0s.slice_axis(Axis(1), Slice::from(0..l)),
        y0s.slice_axis(Axis(1), Slice::from(0..l)),
    );
    let strided = Layer::<f64>::class(&sig).relevance(&dl, &strided_step).unwrap();
    assert_eq!(cut(xs), x);
    for (idx, &g) in got.indexed_iter() {
        let (xv, x0v, mv) = (x[&idx], x0[&idx], m[&idx]);
        let s = 1.0 / (1.0 + (-xv).exp());
        let want = if (xv - x0v).abs() < 1e-10 {
            s * (1.0 - s) * mv
        } else {
            mv * (y[&idx] - y0[&idx]) / (xv - x0v)
        };
        assert!(
            (g - want).abs() <= 1e-12 * (1.0 + want.abs()),
            "{idx:?}: {g} vs {want}"
        );
        assert_eq!(g.to_bits(), strided[&idx].to_bits(), "{idx:?}");
    }
}
