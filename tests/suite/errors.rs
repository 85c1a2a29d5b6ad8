//! Every user-facing error path returns the right typed error, with the facts needed to fix
//! it (layer index, expected and actual shapes, offending value), and nothing panics.

use ndarray::{array, Array1, Array2, Array4, ArrayD, Dimension, IxDyn};
use proptest::prelude::*;
use relevance::{
    Affine, Composite, Conv2d, Conv2dConfig, Dense, Error, Flatten, Layer, Lrp0, LrpAlphaBeta, LrpEpsilon,
    LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus, MaxPool2d, Network, Options, Relu, Rule, RuleSet, Seed,
    Step, Target,
};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn dense(out: usize, inp: usize) -> Dense<f64> {
    let w = Array2::from_shape_fn((out, inp), |(j, i)| 0.5 - 0.3 * j as f64 + 0.2 * i as f64);
    Dense::new(w, Some(Array1::from_elem(out, 0.1))).unwrap()
}

fn conv(out: usize, inp: usize, k: usize, cfg: Conv2dConfig) -> Conv2d<f64> {
    let w = Array4::from_shape_fn((out, inp, k, k), |(o, c, i, j)| {
        ((o + 2 * c + 3 * i + 5 * j) % 7) as f64 / 7.0 - 0.4
    });
    Conv2d::new(w, None, cfg).unwrap()
}

/// Dense(4→3), ReLU, Dense(3→2).
fn mlp() -> Network<f64> {
    Network::new(
        &[4],
        vec![Box::new(dense(3, 4)), Box::new(Relu), Box::new(dense(2, 3))],
    )
    .unwrap()
}

/// Conv(1→2, 3×3), ReLU, MaxPool(2), Flatten, Dense(8→3) on 1×6×6 inputs.
fn cnn() -> Network<f64> {
    Network::new(
        &[1, 6, 6],
        vec![
            Box::new(conv(2, 1, 3, Conv2dConfig::default().padding(1))),
            Box::new(Relu),
            Box::new(MaxPool2d::square(2).unwrap()),
            Box::new(Flatten),
            Box::new(Dense::new(Array2::from_elem((3, 18), 0.1), None).unwrap()),
        ],
    )
    .unwrap()
}

fn mlp_input() -> ArrayD<f64> {
    array![[0.5, -1.0, 2.0, 0.25], [1.0, 1.0, -0.5, 0.0]].into_dyn()
}

/// The layer index and the inner error of an `AtLayer`, or a panic naming what came instead.
fn at_layer(e: &Error) -> (usize, &str, &Error) {
    match e {
        Error::AtLayer {
            index,
            name,
            source,
            node,
        } => {
            assert_eq!(e.layer_index(), Some(*index));
            assert_eq!(e.node_name(), Some(node.as_str()));
            assert_eq!(e.root(), source.root());
            (*index, name.as_str(), source.as_ref())
        }
        other => panic!("expected Error::AtLayer, got {other:?}"),
    }
}

fn assert_invalid_parameter<T: std::fmt::Debug>(r: relevance::Result<T>, rule: &str) {
    match r {
        Err(Error::InvalidParameter { rule: got, reason }) => {
            assert_eq!(got, rule);
            assert!(!reason.is_empty());
        }
        other => panic!("{rule}: expected InvalidParameter, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Network construction.

#[test]
fn empty_network() {
    let r = Network::<f64>::new(&[3], vec![]);
    assert_eq!(r.unwrap_err(), Error::EmptyNetwork);
}

#[test]
fn empty_or_zero_input_shape() {
    for shape in [&[][..], &[0][..], &[3, 0][..], &[0, 4, 4][..]] {
        let e = Network::<f64>::new(shape, vec![Box::new(Relu)]).unwrap_err();
        match e {
            Error::Shape { got, .. } => assert_eq!(got, shape),
            other => panic!("input shape {shape:?}: expected Shape, got {other:?}"),
        }
        assert_eq!(e_layer(&Network::<f64>::new(shape, vec![Box::new(Relu)])), None);
    }
}

fn e_layer<T>(r: &relevance::Result<T>) -> Option<usize> {
    r.as_ref().err().and_then(|e| e.layer_index())
}

#[test]
fn shapes_that_do_not_chain_name_the_layer() {
    // Dense(4→3), ReLU, Dense(2→1): the third layer cannot take 3 features.
    let e = Network::<f64>::new(
        &[4],
        vec![Box::new(dense(3, 4)), Box::new(Relu), Box::new(dense(1, 2))],
    )
    .unwrap_err();
    let (index, name, source) = at_layer(&e);
    assert_eq!(index, 2);
    assert_eq!(name, "Dense(2→1)");
    match source {
        Error::Shape { expected, got, .. } => {
            assert_eq!(expected, &[2]);
            assert_eq!(got, &[3]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    assert!(e.to_string().contains("node 2 `2` (Dense(2→1))"), "{e}");

    // The first layer already does not fit.
    let e = Network::<f64>::new(&[5], vec![Box::new(dense(3, 4))]).unwrap_err();
    let (index, _, source) = at_layer(&e);
    assert_eq!(index, 0);
    assert!(matches!(source, Error::Shape { expected, got, .. } if expected == &[4] && got == &[5]));
}

#[test]
fn convolution_on_wrong_rank_or_channels_names_the_layer() {
    // a conv after a flatten: rank 1 instead of [C, H, W]
    let e = Network::<f64>::new(
        &[1, 4, 4],
        vec![
            Box::new(Flatten),
            Box::new(conv(1, 1, 2, Conv2dConfig::default())),
        ],
    )
    .unwrap_err();
    let (index, _, source) = at_layer(&e);
    assert_eq!(index, 1);
    match source {
        Error::Rank {
            expected, got, shape, ..
        } => {
            assert_eq!((*expected, *got), (3, 1));
            assert_eq!(shape, &[16]);
        }
        other => panic!("expected Rank, got {other:?}"),
    }
    // 3 channels given, the kernel wants 2
    let e =
        Network::<f64>::new(&[3, 5, 5], vec![Box::new(conv(1, 2, 3, Conv2dConfig::default()))]).unwrap_err();
    let (index, _, source) = at_layer(&e);
    assert_eq!(index, 0);
    assert!(
        matches!(source, Error::Shape { got, .. } if got == &[3, 5, 5]),
        "{source:?}"
    );
    // a max-pool on a flat input
    let e = Network::<f64>::new(
        &[8],
        vec![Box::new(Relu), Box::new(MaxPool2d::square(2).unwrap())],
    )
    .unwrap_err();
    let (index, _, source) = at_layer(&e);
    assert_eq!(index, 1);
    assert!(
        matches!(
            source,
            Error::Rank {
                expected: 3,
                got: 1,
                ..
            }
        ),
        "{source:?}"
    );
}

#[test]
fn kernel_larger_than_input() {
    let e =
        Network::<f64>::new(&[1, 2, 2], vec![Box::new(conv(1, 1, 3, Conv2dConfig::default()))]).unwrap_err();
    let (index, _, source) = at_layer(&e);
    assert_eq!(index, 0);
    assert!(
        matches!(source, Error::InvalidLayer { layer: "Conv2d", .. }),
        "{source:?}"
    );
    // with padding it fits
    assert!(Network::<f64>::new(
        &[1, 2, 2],
        vec![Box::new(conv(1, 1, 3, Conv2dConfig::default().padding(1)))]
    )
    .is_ok());
    // dilation makes a 2×2 kernel span 3×3
    let e = Network::<f64>::new(
        &[1, 2, 5],
        vec![Box::new(conv(1, 1, 2, Conv2dConfig::default().dilation(2)))],
    )
    .unwrap_err();
    assert!(matches!(at_layer(&e).2, Error::InvalidLayer { .. }));
    // a max-pool window larger than the input, after a ReLU
    let e = Network::<f64>::new(
        &[1, 2, 2],
        vec![
            Box::new(Relu),
            Box::new(MaxPool2d::new((3, 3), (1, 1), (0, 0)).unwrap()),
        ],
    )
    .unwrap_err();
    let (index, _, source) = at_layer(&e);
    assert_eq!(index, 1);
    assert!(
        matches!(
            source,
            Error::InvalidLayer {
                layer: "MaxPool2d",
                ..
            }
        ),
        "{source:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Layer configuration.

#[test]
fn invalid_layer_configurations() {
    let w = Array4::<f64>::ones((2, 1, 3, 3));
    for cfg in [
        Conv2dConfig::default().stride(0),
        Conv2dConfig::default().dilation(0),
        Conv2dConfig {
            stride: (1, 0),
            ..Conv2dConfig::default()
        },
        Conv2dConfig {
            dilation: (0, 1),
            ..Conv2dConfig::default()
        },
    ] {
        let e = Conv2d::new(w.clone(), None, cfg).unwrap_err();
        assert!(
            matches!(e, Error::InvalidLayer { layer: "Conv2d", .. }),
            "{cfg:?}: {e:?}"
        );
    }
    for shape in [(0, 1, 3, 3), (2, 0, 3, 3), (2, 1, 0, 3), (2, 1, 3, 0)] {
        let e = Conv2d::new(Array4::<f64>::ones(shape), None, Conv2dConfig::default()).unwrap_err();
        assert!(matches!(e, Error::InvalidLayer { .. }), "{shape:?}: {e:?}");
    }
    for (k, s, p) in [
        ((0, 2), (1, 1), (0, 0)),
        ((2, 0), (1, 1), (0, 0)),
        ((2, 2), (0, 1), (0, 0)),
        ((2, 2), (1, 0), (0, 0)),
        ((2, 2), (1, 1), (2, 0)), // padding > kernel / 2
        ((3, 3), (1, 1), (0, 2)),
        ((1, 1), (1, 1), (1, 1)),
    ] {
        let e = MaxPool2d::new(k, s, p).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidLayer {
                    layer: "MaxPool2d",
                    ..
                }
            ),
            "{k:?} {s:?} {p:?}: {e:?}"
        );
    }
    assert!(MaxPool2d::new((3, 3), (1, 1), (1, 1)).is_ok());
    assert!(matches!(
        MaxPool2d::square(0).unwrap_err(),
        Error::InvalidLayer { .. }
    ));
    for shape in [(0, 3), (3, 0)] {
        let e = Dense::new(Array2::<f64>::ones(shape), None).unwrap_err();
        assert!(
            matches!(e, Error::InvalidLayer { layer: "Dense", .. }),
            "{shape:?}: {e:?}"
        );
    }
}

#[test]
fn bias_length_mismatch() {
    let e = Dense::new(Array2::<f64>::ones((3, 2)), Some(Array1::ones(2))).unwrap_err();
    assert_eq!(
        e,
        Error::Shape {
            what: match &e {
                Error::Shape { what, .. } => what.clone(),
                _ => unreachable!(),
            },
            expected: vec![3],
            got: vec![2],
        }
    );
    let e = Conv2d::new(
        Array4::<f64>::ones((2, 1, 3, 3)),
        Some(Array1::ones(3)),
        Conv2dConfig::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Shape { ref expected, ref got, .. } if expected == &[2] && got == &[3]),
        "{e:?}"
    );
}

#[test]
fn non_finite_parameters() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut w = Array2::<f64>::ones((2, 3));
        w[[1, 2]] = bad;
        match Dense::new(w, None).unwrap_err() {
            Error::NonFinite { index, value, .. } => {
                assert_eq!(index, 5);
                assert!(value.is_nan() == bad.is_nan() && (bad.is_nan() || value == bad));
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
        let b = array![0.0, bad];
        assert!(matches!(
            Dense::new(Array2::<f64>::ones((2, 3)), Some(b.clone())).unwrap_err(),
            Error::NonFinite { index: 1, .. }
        ));
        let mut w = Array4::<f64>::ones((2, 1, 2, 2));
        w[[1, 0, 0, 1]] = bad;
        assert!(matches!(
            Conv2d::new(w, None, Conv2dConfig::default()).unwrap_err(),
            Error::NonFinite { index: 5, .. }
        ));
        assert!(matches!(
            Conv2d::new(
                Array4::<f64>::ones((2, 1, 2, 2)),
                Some(b),
                Conv2dConfig::default()
            )
            .unwrap_err(),
            Error::NonFinite { index: 1, .. }
        ));
    }
    // f32 too
    let e = Dense::<f32>::new(array![[1.0, f32::NAN]], None).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 1, .. }));
}

// ---------------------------------------------------------------------------------------------
// Inputs.

#[test]
fn wrong_input_rank() {
    let net = mlp();
    let x = ArrayD::<f64>::zeros(IxDyn(&[2, 4, 1]));
    match net.forward(&x).unwrap_err() {
        Error::Rank {
            expected, got, shape, ..
        } => {
            assert_eq!((expected, got), (2, 3));
            assert_eq!(shape, vec![2, 4, 1]);
        }
        other => panic!("expected Rank, got {other:?}"),
    }
    let x = ArrayD::<f64>::zeros(IxDyn(&[4]));
    let e = net.attribute(&x, &Target::Class(0), &Lrp0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Rank {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.layer_index(), None, "the input is checked before any layer");
    let net = cnn();
    let x = ArrayD::<f64>::zeros(IxDyn(&[6, 6]));
    assert!(matches!(
        net.forward(&x).unwrap_err(),
        Error::Rank {
            expected: 4,
            got: 2,
            ..
        }
    ));
    let x = ArrayD::<f64>::zeros(IxDyn(&[]));
    assert!(matches!(
        net.forward(&x).unwrap_err(),
        Error::Rank {
            expected: 4,
            got: 0,
            ..
        }
    ));
}

#[test]
fn wrong_input_shape() {
    let net = mlp();
    let x = ArrayD::<f64>::zeros(IxDyn(&[2, 5]));
    match net.forward(&x).unwrap_err() {
        Error::Shape { expected, got, .. } => {
            assert_eq!(expected, vec![2, 4]);
            assert_eq!(got, vec![2, 5]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }
    let net = cnn();
    let x = ArrayD::<f64>::zeros(IxDyn(&[1, 1, 6, 7]));
    for e in [
        net.forward(&x).unwrap_err(),
        net.trace(&x).unwrap_err(),
        net.gradient(&x, &Target::Class(0)).unwrap_err(),
        net.attribute(&x, &Target::Class(0), &Composite::epsilon_plus())
            .unwrap_err(),
    ] {
        match &e {
            Error::Shape { expected, got, .. } => {
                assert_eq!(expected, &[1, 1, 6, 6]);
                assert_eq!(got, &[1, 1, 6, 7]);
            }
            other => panic!("expected Shape, got {other:?}"),
        }
    }
}

#[test]
fn empty_batch() {
    let net = mlp();
    let x = ArrayD::<f64>::zeros(IxDyn(&[0, 4]));
    assert_eq!(net.forward(&x).unwrap_err(), Error::EmptyBatch);
    assert_eq!(
        net.attribute(&x, &Target::Class(0), &Lrp0).unwrap_err(),
        Error::EmptyBatch
    );
    assert_eq!(
        net.gradient(&x, &Target::Class(0)).unwrap_err(),
        Error::EmptyBatch
    );
    let x = ArrayD::<f64>::zeros(IxDyn(&[0, 1, 6, 6]));
    assert_eq!(cnn().forward(&x).unwrap_err(), Error::EmptyBatch);
}

#[test]
fn non_finite_input() {
    let net = mlp();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut x = mlp_input();
        x[[1, 2]] = bad;
        for e in [
            net.forward(&x).unwrap_err(),
            net.attribute(&x, &Target::Class(0), &LrpEpsilon::default())
                .unwrap_err(),
            net.gradient(&x, &Target::Class(1)).unwrap_err(),
        ] {
            match e {
                Error::NonFinite { index, value, .. } => {
                    assert_eq!(index, 6);
                    assert_eq!(value.is_nan(), bad.is_nan());
                    if !bad.is_nan() {
                        assert_eq!(value, bad);
                    }
                }
                other => panic!("expected NonFinite, got {other:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Targets.

#[test]
fn target_out_of_range() {
    let net = mlp();
    let x = mlp_input();
    let e = net.attribute(&x, &Target::Class(2), &Lrp0).unwrap_err();
    assert_eq!(
        e,
        Error::TargetOutOfRange {
            sample: 0,
            class: 2,
            classes: 2
        }
    );
    let e = net
        .attribute(&x, &Target::PerSample(vec![1, 7]), &Lrp0)
        .unwrap_err();
    assert_eq!(
        e,
        Error::TargetOutOfRange {
            sample: 1,
            class: 7,
            classes: 2
        }
    );
    let e = net.gradient(&x, &Target::Class(usize::MAX)).unwrap_err();
    assert!(matches!(
        e,
        Error::TargetOutOfRange {
            class: usize::MAX,
            ..
        }
    ));
    let e = cnn()
        .attribute(&ArrayD::zeros(IxDyn(&[1, 1, 6, 6])), &Target::Class(3), &Lrp0)
        .unwrap_err();
    assert!(matches!(e, Error::TargetOutOfRange { classes: 3, .. }));
}

#[test]
fn per_sample_target_count_mismatch() {
    let net = mlp();
    let x = mlp_input();
    for targets in [vec![], vec![0], vec![0, 1, 1]] {
        let n = targets.len();
        let e = net
            .attribute(&x, &Target::PerSample(targets.clone()), &Lrp0)
            .unwrap_err();
        assert!(
            matches!(e, Error::BatchMismatch { batch: 2, got, .. } if got == n),
            "{e:?}"
        );
        let e = net.gradient(&x, &Target::PerSample(targets)).unwrap_err();
        assert!(matches!(e, Error::BatchMismatch { batch: 2, .. }), "{e:?}");
    }
}

#[test]
fn target_relevance_of_wrong_shape_or_non_finite() {
    let net = mlp();
    let x = mlp_input();
    for shape in [&[2][..], &[2, 3][..], &[1, 2][..], &[2, 2, 1][..]] {
        let r = ArrayD::<f64>::ones(IxDyn(shape));
        match net.attribute(&x, &Target::Relevance(r), &Lrp0).unwrap_err() {
            Error::Shape { expected, got, .. } => {
                assert_eq!(expected, vec![2, 2]);
                assert_eq!(got, shape);
            }
            other => panic!("expected Shape, got {other:?}"),
        }
    }
    let mut r = ArrayD::<f64>::ones(IxDyn(&[2, 2]));
    r[[1, 0]] = f64::NAN;
    let e = net.attribute(&x, &Target::Relevance(r), &Lrp0).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 2, .. }), "{e:?}");
    let mut r = ArrayD::<f64>::ones(IxDyn(&[2, 2]));
    r[[0, 1]] = f64::INFINITY;
    assert!(matches!(
        net.attribute(&x, &Target::Relevance(r), &Lrp0).unwrap_err(),
        Error::NonFinite { index: 1, .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Rule parameters.

#[test]
fn bad_rule_parameters() {
    for bad in [-1e-6, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_invalid_parameter(LrpEpsilon::new(bad), "LrpEpsilon");
        assert_invalid_parameter(LrpGamma::new(bad), "LrpGamma");
        assert_invalid_parameter(LrpGamma::with_stabilizer(0.25, bad), "LrpGamma");
        assert_invalid_parameter(LrpAlphaBeta::with_stabilizer(2.0, 1.0, bad), "LrpAlphaBeta");
        assert_invalid_parameter(LrpZPlus::with_stabilizer(bad), "LrpZPlus");
        assert_invalid_parameter(LrpFlat::with_stabilizer(bad), "LrpFlat");
        assert_invalid_parameter(LrpWSquare::with_stabilizer(bad), "LrpWSquare");
        let (l, h) = (ArrayD::<f64>::zeros(IxDyn(&[])), ArrayD::<f64>::ones(IxDyn(&[])));
        assert_invalid_parameter(LrpZBox::with_stabilizer(l, h, bad), "LrpZBox");
    }
    // α − β must be 1, both non-negative and finite
    for (a, b) in [
        (2.0, 0.5),
        (1.0, 1.0),
        (0.0, 0.0),
        (3.0, 1.0),
        (0.5, -0.5),
        (-1.0, -2.0),
        (f64::NAN, 1.0),
        (2.0, f64::NAN),
        (f64::INFINITY, f64::INFINITY),
    ] {
        assert_invalid_parameter(LrpAlphaBeta::new(a, b), "LrpAlphaBeta");
    }
    assert!(LrpAlphaBeta::new(1.0, 0.0).is_ok());
    assert!(LrpAlphaBeta::new(3.0, 2.0).is_ok());
    // zero is a valid ε, γ and stabiliser
    assert!(LrpEpsilon::new(0.0).is_ok());
    assert!(LrpGamma::with_stabilizer(0.0, 0.0).is_ok());
}

#[test]
fn bad_zbox_bounds_at_construction() {
    let low = array![0.0, 0.5, 0.0].into_dyn();
    let high = array![1.0, 0.4, 1.0].into_dyn();
    assert_invalid_parameter(LrpZBox::new(low, high), "LrpZBox");
    // different shapes
    let e = LrpZBox::new(ArrayD::<f64>::zeros(IxDyn(&[3])), ArrayD::ones(IxDyn(&[4]))).unwrap_err();
    assert!(
        matches!(e, Error::Shape { ref expected, ref got, .. } if expected == &[3] && got == &[4]),
        "{e:?}"
    );
    let e = LrpZBox::new(ArrayD::<f64>::zeros(IxDyn(&[3, 1, 1])), ArrayD::ones(IxDyn(&[3]))).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    // non-finite bounds
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut low = ArrayD::<f64>::zeros(IxDyn(&[3]));
        low[1] = bad;
        let e = LrpZBox::new(low, ArrayD::from_elem(IxDyn(&[3]), 1.0)).unwrap_err();
        assert!(matches!(e, Error::NonFinite { index: 1, .. }), "{e:?}");
        let mut high = ArrayD::<f64>::ones(IxDyn(&[3]));
        high[2] = bad;
        let e = LrpZBox::new(ArrayD::zeros(IxDyn(&[3])), high).unwrap_err();
        assert!(matches!(e, Error::NonFinite { index: 2, .. }), "{e:?}");
    }
    // the composites that take bounds pass the error on
    let (low, high) = (ArrayD::<f64>::ones(IxDyn(&[])), ArrayD::zeros(IxDyn(&[])));
    assert_invalid_parameter(Composite::epsilon_gamma_box(low.clone(), high.clone()), "LrpZBox");
    assert_invalid_parameter(Composite::layered(low, high), "LrpZBox");
}

#[test]
fn zbox_bounds_that_do_not_broadcast_fail_at_attribution_in_their_layer() {
    let x = mlp_input();
    // [3] does not broadcast to the input [4]: the first layer fails
    let zbox = LrpZBox::new(ArrayD::<f64>::zeros(IxDyn(&[3])), ArrayD::ones(IxDyn(&[3]))).unwrap();
    let rules = Composite::new(Lrp0).with_first(zbox.clone());
    let e = mlp().attribute(&x, &Target::Class(0), &rules).unwrap_err();
    let (index, name, source) = at_layer(&e);
    assert_eq!((index, name), (0, "Dense(4→3)"));
    assert!(
        matches!(source, Error::Shape { expected, got, .. } if expected == &[4] && got == &[3]),
        "{source:?}"
    );
    // z^B everywhere: relevance flows backwards, so the last dense layer (input [3]) is fine
    // with [3]-bounds and the first one fails
    let e = mlp().attribute(&x, &Target::Class(0), &zbox).unwrap_err();
    assert_eq!(e.layer_index(), Some(0));
    // with [4]-bounds it is the last dense layer, index 2, that fails
    let zbox4 = LrpZBox::new(ArrayD::<f64>::zeros(IxDyn(&[4])), ArrayD::ones(IxDyn(&[4]))).unwrap();
    let e = mlp().attribute(&x, &Target::Class(0), &zbox4).unwrap_err();
    let (index, name, _) = at_layer(&e);
    assert_eq!((index, name), (2, "Dense(3→2)"));
    // more dimensions than the input
    let zbox = LrpZBox::new(ArrayD::<f64>::zeros(IxDyn(&[1, 4])), ArrayD::ones(IxDyn(&[1, 4]))).unwrap();
    let e = mlp()
        .attribute(&x, &Target::Class(0), &Composite::new(Lrp0).with_first(zbox))
        .unwrap_err();
    assert_eq!(e.layer_index(), Some(0));
    assert!(matches!(e.root(), Error::Shape { .. }), "{e:?}");
    // per-channel bounds with the wrong number of channels on a CNN
    let (low, high) = (
        ArrayD::<f64>::zeros(IxDyn(&[3, 1, 1])),
        ArrayD::ones(IxDyn(&[3, 1, 1])),
    );
    let rules = Composite::epsilon_gamma_box(low, high).unwrap();
    let e = cnn()
        .attribute(&ArrayD::zeros(IxDyn(&[1, 1, 6, 6])), &Target::Class(0), &rules)
        .unwrap_err();
    let (index, _, source) = at_layer(&e);
    assert_eq!(index, 0);
    assert!(
        matches!(source, Error::Shape { got, .. } if got == &[3, 1, 1]),
        "{source:?}"
    );
    // and the broadcastable ones work
    for shape in [
        &[][..],
        &[1][..],
        &[1, 1, 1][..],
        &[6][..],
        &[1, 6, 1][..],
        &[1, 6, 6][..],
    ] {
        let (low, high) = (
            ArrayD::from_elem(IxDyn(shape), -1.0),
            ArrayD::from_elem(IxDyn(shape), 1.0),
        );
        let rules = Composite::epsilon_gamma_box(low, high).unwrap();
        let a = cnn().attribute(
            &ArrayD::from_elem(IxDyn(&[1, 1, 6, 6]), 0.5),
            &Target::Class(0),
            &rules,
        );
        assert!(a.is_ok(), "bounds {shape:?}: {a:?}");
    }
}

/// A custom rule that wants a baseline pass, which LRP does not record: its error names
/// the node where it was raised.
#[derive(Debug)]
struct NeedsBaseline;

impl Rule<f64> for NeedsBaseline {
    fn name(&self) -> String {
        "NeedsBaseline".into()
    }
    fn affine(&self, _layer: &dyn Affine<f64>, step: &Step<'_, f64>) -> relevance::Result<ArrayD<f64>> {
        match step.baseline_input {
            Some(_) => Ok(ArrayD::zeros(step.input.raw_dim())),
            None => Err(Error::Unsupported {
                rule: self.name(),
                reason: "no baseline pass".into(),
            }),
        }
    }
}

#[test]
fn custom_rule_errors_name_their_node() {
    let rules = Composite::new(Lrp0).with(relevance::Selector::Index(2), NeedsBaseline);
    let e = mlp()
        .attribute(&mlp_input(), &Target::Class(0), &rules)
        .unwrap_err();
    let (index, _, source) = at_layer(&e);
    assert_eq!(index, 2);
    assert!(matches!(source, Error::Unsupported { .. }), "{source:?}");
    // on every node: the first node the backward loop reaches is the last affine one
    let rule: &dyn Rule<f64> = &NeedsBaseline;
    let net = mlp();
    let e = net.attribute(&mlp_input(), &Target::Class(0), rule).unwrap_err();
    let last_affine = net.nodes().iter().rposition(|n| n.affine().is_some());
    assert_eq!(e.layer_index(), last_affine);
}

// ---------------------------------------------------------------------------------------------
// Layer-level calls with arrays that do not fit.

#[test]
fn layer_level_shape_errors() {
    let d = dense(3, 4);
    let e = d.forward(ArrayD::<f64>::zeros(IxDyn(&[4])).view()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Rank {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e:?}"
    );
    let e = d
        .forward(ArrayD::<f64>::zeros(IxDyn(&[2, 5])).view())
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    // substituted weight of the wrong shape
    let x = ArrayD::<f64>::zeros(IxDyn(&[2, 4]));
    let e = d
        .apply_with(x.view(), ArrayD::zeros(IxDyn(&[4, 3])).view())
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = d
        .apply_transpose(ArrayD::zeros(IxDyn(&[2, 2])).view(), d.weight(), &[4])
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = d
        .apply_transpose(ArrayD::zeros(IxDyn(&[2, 3])).view(), d.weight(), &[5])
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");

    let c = conv(2, 1, 3, Conv2dConfig::default());
    let e = c
        .forward(ArrayD::<f64>::zeros(IxDyn(&[1, 5, 5])).view())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Rank {
                expected: 4,
                got: 3,
                ..
            }
        ),
        "{e:?}"
    );
    let e = c
        .forward(ArrayD::<f64>::zeros(IxDyn(&[1, 2, 5, 5])).view())
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = c
        .forward(ArrayD::<f64>::zeros(IxDyn(&[1, 1, 2, 5])).view())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidLayer { .. }), "{e:?}");
    let e = c
        .apply_with(
            ArrayD::zeros(IxDyn(&[1, 1, 5, 5])).view(),
            ArrayD::zeros(IxDyn(&[2, 1, 2, 2])).view(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = c
        .apply_transpose(ArrayD::zeros(IxDyn(&[1, 2, 2, 3])).view(), c.weight(), &[1, 5, 5])
        .unwrap_err();
    assert!(
        matches!(e, Error::Shape { ref expected, .. } if expected == &[1, 2, 3, 3]),
        "{e:?}"
    );

    let p = MaxPool2d::square(2).unwrap();
    let e = Layer::<f64>::forward(&p, ArrayD::<f64>::zeros(IxDyn(&[4, 4])).view()).unwrap_err();
    assert!(matches!(e, Error::Rank { .. }), "{e:?}");
    let x = ArrayD::<f64>::zeros(IxDyn(&[1, 1, 4, 4]));
    let e = p
        .route_to_max(&x.view(), &ArrayD::<f64>::zeros(IxDyn(&[1, 1, 3, 2])).view())
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");

    // a rule handed relevance that does not have the output's shape
    let x = ArrayD::<f64>::ones(IxDyn(&[2, 4]));
    let y = d.forward(x.view()).unwrap();
    let r = ArrayD::<f64>::ones(IxDyn(&[2, 2]));
    let step = Step::new(0, x.view(), y.view(), r.view());
    for rule in [&Lrp0 as &dyn Rule<f64>, &LrpGamma::default(), &LrpFlat::new()] {
        let e = rule.affine(&d, &step).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{}: {e:?}", rule.name());
    }
    let e = Rule::<f64>::activation(&Lrp0, &Relu, &step).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = Layer::<f64>::gradient(&Relu, &step, r.view()).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let e = Layer::<f64>::class(&Flatten)
        .relevance(&Lrp0, &Step::new(0, x.view(), y.view(), r.view()))
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Arithmetic overflow in shape computations: user input, so an error, not a panic.

fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what} panicked: {msg}")
        }
    }
}

#[test]
fn huge_input_shape_does_not_panic() {
    let r = no_panic("Network::new(&[usize::MAX, 2], [Flatten])", || {
        Network::<f64>::new(&[usize::MAX, 2], vec![Box::new(Flatten)])
    });
    assert!(
        r.is_err(),
        "a flattened size that overflows usize must be an error"
    );
}

#[test]
fn huge_convolution_config_does_not_panic() {
    for cfg in [
        Conv2dConfig::default().dilation(usize::MAX),
        Conv2dConfig::default().padding(usize::MAX / 2 + 1),
        Conv2dConfig::default().padding(usize::MAX),
    ] {
        let c = Conv2d::new(Array4::<f64>::ones((1, 1, 2, 2)), None, cfg).unwrap();
        let r = no_panic(&format!("Network::new with {cfg:?}"), || {
            Network::<f64>::new(&[1, 4, 4], vec![Box::new(c)])
        });
        assert!(r.is_err(), "{cfg:?}: expected an error");
    }
}

#[test]
fn huge_pool_config_does_not_panic() {
    let k = usize::MAX;
    let pool = MaxPool2d::new((k, 1), (1, 1), (k / 2, 0)).unwrap();
    let r = no_panic("Network::new with a huge pool", || {
        Network::<f64>::new(&[1, 4, 4], vec![Box::new(pool)])
    });
    assert!(r.is_err());
}

// ---------------------------------------------------------------------------------------------
// Random garbage: never a panic.

#[derive(Debug, Clone)]
enum LayerSpec {
    Dense {
        out: usize,
        inp: usize,
        bias: Option<usize>,
    },
    Conv {
        out: usize,
        inp: usize,
        k: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        bias: Option<usize>,
    },
    Pool {
        k: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    },
    Relu,
    Flatten,
}

/// Finite values, ordinary and extreme.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -2.0..2.0f64,
        1 => Just(0.0),
        1 => Just(1e300),
        1 => Just(-1e300),
        1 => Just(1e-310),
        1 => Just(f64::MAX),
    ]
}

fn non_finite() -> impl Strategy<Value = f64> {
    prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)]
}

fn small() -> impl Strategy<Value = usize> {
    0usize..4
}

fn pair() -> impl Strategy<Value = (usize, usize)> {
    (small(), small())
}

fn layer_spec() -> impl Strategy<Value = LayerSpec> {
    prop_oneof![
        (small(), small(), prop::option::of(0usize..5)).prop_map(|(out, inp, bias)| LayerSpec::Dense {
            out,
            inp,
            bias
        }),
        (
            small(),
            small(),
            pair(),
            pair(),
            pair(),
            pair(),
            prop::option::of(0usize..5)
        )
            .prop_map(|(out, inp, k, stride, padding, dilation, bias)| LayerSpec::Conv {
                out,
                inp,
                k,
                stride,
                padding,
                dilation,
                bias
            }),
        (pair(), pair(), pair()).prop_map(|(k, stride, padding)| LayerSpec::Pool { k, stride, padding }),
        Just(LayerSpec::Relu),
        Just(LayerSpec::Flatten),
    ]
}

/// Builds the layers it can (constructors may refuse: that is fine), cycling through `vals`.
fn make_layers(specs: &[LayerSpec], vals: &[f64]) -> Vec<Box<dyn Layer<f64>>> {
    let mut k = 0;
    let mut next = move || {
        k += 1;
        vals[k % vals.len()]
    };
    let mut layers: Vec<Box<dyn Layer<f64>>> = Vec::new();
    for s in specs {
        match s {
            LayerSpec::Dense { out, inp, bias } => {
                let w = Array2::from_shape_fn((*out, *inp), |_| next());
                let b = bias.map(|n| Array1::from_shape_fn(n, |_| next()));
                if let Ok(d) = Dense::new(w, b) {
                    layers.push(Box::new(d));
                }
            }
            LayerSpec::Conv {
                out,
                inp,
                k,
                stride,
                padding,
                dilation,
                bias,
            } => {
                let w = Array4::from_shape_fn((*out, *inp, k.0, k.1), |_| next());
                let b = bias.map(|n| Array1::from_shape_fn(n, |_| next()));
                let cfg = Conv2dConfig {
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    ..Conv2dConfig::default()
                };
                if let Ok(c) = Conv2d::new(w, b, cfg) {
                    layers.push(Box::new(c));
                }
            }
            LayerSpec::Pool { k, stride, padding } => {
                if let Ok(p) = MaxPool2d::new(*k, *stride, *padding) {
                    layers.push(Box::new(p));
                }
            }
            LayerSpec::Relu => layers.push(Box::new(Relu)),
            LayerSpec::Flatten => layers.push(Box::new(Flatten)),
        }
    }
    layers
}

/// An array of `shape` filled from `vals`, cycling.
fn filled(shape: &[usize], vals: &[f64]) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(shape), |ix| {
        vals[ix.slice().iter().sum::<usize>() % vals.len()]
    })
}

/// Builds layers that mostly chain from `input` (`[C, H, W]`): dense layers take the
/// current width (after a Flatten if needed), convolutions the current channels; a layer that
/// does not fit is dropped. Biases may still have the wrong length and values are extreme.
fn coherent_layers(input: &[usize], specs: &[LayerSpec], vals: &[f64]) -> Vec<Box<dyn Layer<f64>>> {
    let mut shape = input.to_vec();
    let mut layers: Vec<Box<dyn Layer<f64>>> = Vec::new();
    for s in specs {
        let s = match s.clone() {
            LayerSpec::Dense { out, bias, .. } => {
                if shape.len() != 1 {
                    layers.push(Box::new(Flatten));
                    shape = vec![shape.iter().product()];
                }
                LayerSpec::Dense {
                    out,
                    inp: shape[0],
                    bias: bias.map(|b| if b < 3 { out } else { b }),
                }
            }
            LayerSpec::Conv {
                out,
                k,
                stride,
                padding,
                dilation,
                bias,
                ..
            } if shape.len() == 3 => LayerSpec::Conv {
                out,
                inp: shape[0],
                k,
                stride,
                padding,
                dilation,
                bias: bias.map(|b| if b < 3 { out } else { b }),
            },
            other => other,
        };
        for layer in make_layers(&[s], vals) {
            if let Ok(next) = layer.output_shape(&shape) {
                shape = next;
                layers.push(layer);
            }
        }
    }
    layers
}

fn rule_sets(vals: &[f64], bound_shape: &[usize]) -> Vec<Box<dyn RuleSet<f64>>> {
    let mut sets: Vec<Box<dyn RuleSet<f64>>> = vec![
        Box::new(Lrp0),
        Box::new(LrpEpsilon::default()),
        Box::new(LrpGamma::default()),
        Box::new(LrpGamma::with_stabilizer(0.0, 0.0).unwrap()),
        Box::new(LrpAlphaBeta::default()),
        Box::new(LrpZPlus::new()),
        Box::new(LrpFlat::new()),
        Box::new(LrpWSquare::new()),
        Box::new(Composite::epsilon_plus_flat()),
        Box::new(Composite::epsilon_alpha2_beta1()),
    ];
    let low = filled(bound_shape, vals);
    let high = low.mapv(|v| v.abs() + 1.0);
    if let Ok(z) = LrpZBox::new(low.clone(), high.clone()) {
        sets.push(Box::new(z.clone()));
        sets.push(Box::new(Composite::new(Lrp0).with_first(z)));
    }
    if let Ok(c) = Composite::layered(low.clone(), high.clone()) {
        sets.push(Box::new(c));
    }
    if let Ok(c) = Composite::epsilon_gamma_box(low, high) {
        sets.push(Box::new(c));
    }
    sets
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random shapes, configurations and values (NaN, ±∞, huge, tiny, zero-size dims) into
    /// `Network::new`, `forward`, `gradient` and `attribute`: errors are fine, panics not.
    #[test]
    fn garbage_never_panics(
        coherent in any::<bool>(),
        image_shape in (1usize..4, 1usize..7, 1usize..7),
        input_shape in prop::collection::vec(0usize..5, 0..4),
        specs in prop::collection::vec(layer_spec(), 0..5),
        vals in prop::collection::vec(value(), 1..8),
        poison_weights in prop::option::weighted(0.2, (0usize..8, non_finite())),
        poison_input in prop::option::weighted(0.2, (0usize..50, non_finite())),
        use_net_shape in prop::bool::weighted(0.8),
        batch in 0usize..3,
        x_shape in prop::collection::vec(0usize..5, 0..5),
        bound_shape in prop::collection::vec(1usize..4, 0..3),
        class in 0usize..5,
        per_sample in prop::collection::vec(0usize..5, 0..4),
        relevance_shape in prop::collection::vec(0usize..4, 0..3),
    ) {
        let mut wvals = vals.clone();
        if let Some((k, v)) = poison_weights {
            wvals[k % vals.len()] = v;
        }
        let input_shape = if coherent {
            vec![image_shape.0, image_shape.1, image_shape.2]
        } else {
            input_shape
        };
        let layers = if coherent {
            coherent_layers(&input_shape, &specs, &wvals)
        } else {
            make_layers(&specs, &wvals)
        };
        let net = no_panic("Network::new", || Network::new(&input_shape, layers));
        let Ok(net) = net else { return Ok(()) };
        let shape = if use_net_shape {
            let mut s = vec![batch];
            s.extend_from_slice(net.input_shape());
            s
        } else {
            x_shape.clone()
        };
        let mut x = filled(&shape, &vals);
        if let Some((k, v)) = poison_input {
            if let Some(e) = x.iter_mut().nth(k) {
                *e = v;
            }
        }
        let _ = no_panic("forward", || net.forward(&x));
        let _ = no_panic("trace", || net.trace(&x));
        let mut out_shape = vec![batch.max(1)];
        out_shape.extend_from_slice(net.output_shape());
        let targets = [
            Target::Class(class),
            Target::PerSample(per_sample.clone()),
            Target::Relevance(filled(&relevance_shape, &vals)),
            Target::Relevance(filled(&out_shape, &vals)),
        ];
        for t in &targets {
            let _ = no_panic("gradient", || net.gradient(&x, t));
            for rules in rule_sets(&vals, &bound_shape) {
                for options in [
                    Options::default(),
                    Options { seed: Seed::OneHot, keep_layers: true },
                ] {
                    let _ = no_panic("attribute", || net.attribute_with(&x, t, rules.as_ref(), options));
                }
            }
        }
    }
}

/// `top_k` sorts each sample's outputs (largest first, ties to the lower class), its first
/// entry is `predict`, and k outside 1..=outputs is a typed error.
#[test]
fn top_k_sorts_outputs_and_checks_k() {
    let net = Network::<f64>::new(
        &[4],
        vec![Box::new(
            Dense::new(
                ndarray::Array2::from_shape_fn((5, 4), |(o, i)| ((o * 7 + i * 3) % 5) as f64 - 2.0),
                None,
            )
            .unwrap(),
        )],
    )
    .unwrap();
    let x = ndarray::array![[0.5, -1.0, 2.0, 0.25], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]].into_dyn();
    let logits = net.forward(&x).unwrap();
    let top = net.top_k(&x, 5).unwrap();
    let predicted = net.predict(&x).unwrap();
    for (i, row) in top.iter().enumerate() {
        assert_eq!(row[0].0, predicted[i]);
        for w in row.windows(2) {
            assert!(
                w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0),
                "{row:?}"
            );
        }
        for &(c, v) in row {
            assert_eq!(v, logits[[i, c]]);
        }
    }
    // the zero input ties every class: 0, 1, 2 in order
    assert_eq!(
        net.top_k(&x, 3).unwrap()[2]
            .iter()
            .map(|t| t.0)
            .collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for k in [0, 6] {
        assert!(
            matches!(net.top_k(&x, k), Err(Error::InvalidParameter { .. })),
            "k = {k}"
        );
    }
    assert!(matches!(
        net.top_k(&ndarray::ArrayD::zeros(vec![1, 3]), 1),
        Err(Error::Shape { .. } | Error::AtLayer { .. })
    ));
}
