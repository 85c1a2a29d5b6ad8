//! Public entry points called directly with arrays that do not fit: every rule method on
//! every kind of node (through `Class::relevance` / `MergeClass::relevance`, the rule's own
//! methods, the layers' forward and gradient passes, the `Affine`, `LinearMap` and `Select`
//! operations) returns a value or a typed error — never a panic.

use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use proptest::prelude::*;
use relevance::{
    Add, Affine, AvgPool2d, BatchNorm2d, Concat, Conv2d, Conv2dConfig, Dense, Flatten, Gradient,
    GradientTimesInput, Identity, Layer, LinearMap, LocalResponseNorm, Lrp0, LrpAlphaBeta, LrpEpsilon,
    LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus, MaxPool2d, Merge, MergeStep, Mul, Narrow, Pad, Permute,
    Relu, Reshape, Rule, Select, Sigmoid, Softmax, Step,
};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn layers() -> Vec<Box<dyn Layer<f64>>> {
    let conv = |config: Conv2dConfig, cin: usize| {
        Conv2d::new(
            Array4::from_shape_fn((4, cin, 3, 3), |(o, i, a, b)| {
                (o + 2 * i + a) as f64 * 0.1 - b as f64 * 0.2
            }),
            Some(Array1::from_elem(4, 0.1)),
            config,
        )
        .unwrap()
    };
    vec![
        Box::new(
            Dense::new(
                Array2::from_shape_fn((2, 3), |(i, j)| i as f64 - j as f64),
                Some(Array1::ones(2)),
            )
            .unwrap(),
        ),
        Box::new(conv(Conv2dConfig::default().padding(1), 2)),
        Box::new(conv(Conv2dConfig::default().stride(2).groups(2), 1)),
        Box::new(MaxPool2d::square(2).unwrap()),
        Box::new(AvgPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()),
        Box::new(AvgPool2d::global()),
        Box::new(Relu),
        Box::new(Sigmoid),
        Box::new(
            BatchNorm2d::new(
                Array1::ones(2),
                Array1::zeros(2),
                Array1::zeros(2),
                Array1::ones(2),
                1e-5,
            )
            .unwrap(),
        ),
        Box::new(LocalResponseNorm::new(3, 1e-4, 0.75, 1.0).unwrap()),
        Box::new(Softmax::new(0)),
        Box::new(Flatten),
        Box::new(Reshape::new(&[2, 2])),
        Box::new(Permute::new(&[1, 0]).unwrap()),
        Box::new(Narrow::new(0, 1, 1)),
        Box::new(Pad::new(&[(1, 0), (0, 1)])),
        Box::new(Identity),
    ]
}

fn merges() -> Vec<Box<dyn Merge<f64>>> {
    vec![
        Box::new(Add::new()),
        Box::new(Concat::new(0)),
        Box::new(Mul::new()),
    ]
}

fn rules() -> Vec<Box<dyn Rule<f64>>> {
    vec![
        Box::new(Lrp0),
        Box::new(LrpEpsilon::new(0.25).unwrap()),
        Box::new(LrpGamma::default()),
        Box::new(LrpAlphaBeta::default()),
        Box::new(LrpZPlus::new()),
        Box::new(LrpFlat::new()),
        Box::new(LrpWSquare::new()),
        Box::new(
            LrpZBox::new(
                ArrayD::from_elem(IxDyn(&[]), -1.0),
                ArrayD::from_elem(IxDyn(&[]), 1.0),
            )
            .unwrap(),
        ),
        Box::new(Gradient),
        Box::new(GradientTimesInput),
    ]
}

/// Shapes of rank 0 to 4 with sides 0 to 4 (mostly 1 to 4).
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1 => Just(0usize), 6 => 1usize..=4], 0..=4)
}

fn array(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut s = seed | 1;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 17) as f64 / 4.0 - 2.0
    })
}

/// Runs `f`, failing the case if it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<(), TestCaseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => Ok(()),
        Err(_) => Err(TestCaseError::fail(format!("panicked: {what}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every rule on every layer kind, with input, output, relevance and baseline arrays of
    /// independent random shapes.
    #[test]
    fn rules_on_layers_never_panic(sx in shape(), sy in shape(), sr in shape(), base in any::<bool>(), seed in any::<u64>()) {
        let (x, y, r) = (array(&sx, seed), array(&sy, seed ^ 1), array(&sr, seed ^ 2));
        let (bx, by) = (array(&sx, seed ^ 3), array(&sy, seed ^ 4));
        for layer in layers() {
            let mut step = Step::new(0, x.view(), y.view(), r.view());
            if base {
                step = step.with_baseline(bx.view(), by.view());
            }
            for rule in rules() {
                let what = format!("{} under {} on x {sx:?}, y {sy:?}, r {sr:?}", layer.name(), rule.name());
                no_panic(&what, || layer.class().relevance(rule.as_ref(), &step))?;
            }
            no_panic(&format!("{} forward {sx:?}", layer.name()), || layer.forward(x.view()))?;
            no_panic(&format!("{} gradient", layer.name()), || layer.gradient(&step, r.view()))?;
            no_panic(&format!("{} output_shape", layer.name()), || layer.output_shape(&sx))?;
            if let Some(a) = layer.class().affine() {
                affine_ops(a, &x, &r, &sx)?;
            }
        }
    }

    /// Every rule on every merge kind, with random shapes for each input.
    #[test]
    fn rules_on_merges_never_panic(shapes in prop::collection::vec(shape(), 0..=3), sy in shape(), sr in shape(), gates in prop::collection::vec(any::<bool>(), 0..=3), seed in any::<u64>()) {
        let xs: Vec<ArrayD<f64>> = shapes.iter().enumerate().map(|(k, s)| array(s, seed ^ k as u64)).collect();
        let (y, r) = (array(&sy, seed ^ 11), array(&sr, seed ^ 12));
        for merge in merges() {
            let inputs = xs.iter().map(|x| x.view()).collect();
            let step = MergeStep::new(0, inputs, y.view(), r.view()).with_gates(gates.clone());
            for rule in rules() {
                let what = format!("{} under {} on {shapes:?}, y {sy:?}, r {sr:?}", merge.name(), rule.name());
                no_panic(&what, || merge.class().relevance(rule.as_ref(), &step))?;
            }
            let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
            no_panic(&format!("{} forward", merge.name()), || merge.forward(&views))?;
            no_panic(&format!("{} gradient", merge.name()), || merge.gradient(&step, r.view()))?;
            let per: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
            no_panic(&format!("{} output_shape", merge.name()), || merge.output_shape(&per))?;
        }
        let add = Add::new();
        let per: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        no_panic("Add transpose", || LinearMap::<f64>::transpose(&add, r.view(), &per))?;
        let pool = AvgPool2d::new((2, 2), (2, 2), (0, 0)).unwrap();
        no_panic("AvgPool transpose", || LinearMap::<f64>::transpose(&pool, r.view(), &per))?;
        let max = MaxPool2d::square(2).unwrap();
        if let Some(x) = xs.first() {
            no_panic("MaxPool route", || Select::<f64>::route(&max, &x.view(), &r.view()))?;
        }
    }
}

/// The affine operations with a weight and arrays of the wrong shapes.
fn affine_ops(
    a: &dyn Affine<f64>,
    x: &ArrayD<f64>,
    r: &ArrayD<f64>,
    sx: &[usize],
) -> Result<(), TestCaseError> {
    let w = a.weight();
    let mut odd = w.shape().to_vec();
    if let Some(d) = odd.last_mut() {
        *d += 1;
    }
    let wrong = ArrayD::zeros(IxDyn(&odd));
    for weight in [w.clone(), wrong.view()] {
        no_panic("apply_with", || a.apply_with(x.view(), weight.clone()))?;
        no_panic("apply_transpose", || {
            a.apply_transpose(r.view(), weight.clone(), sx.get(1..).unwrap_or(&[]))
        })?;
        no_panic("apply_many", || {
            a.apply_many(x.view(), &[weight.clone(), w.clone()])
        })?;
        no_panic("apply_ones", || {
            a.apply_ones(weight.clone(), sx.get(1..).unwrap_or(&[]))
        })?;
        no_panic("apply_transpose_sum", || {
            a.apply_transpose_sum(&[(r.view(), weight.clone())], sx.get(1..).unwrap_or(&[]))
        })?;
    }
    Ok(())
}
