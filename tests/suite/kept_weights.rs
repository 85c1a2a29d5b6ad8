//! `Network::keep_rule_weights`: the rule-modified weights (and their Winograd transforms)
//! kept between calls must give the same bits as weights modified on every call, on every
//! convolution path (im2col, Winograd F(2×2, 3×3), 1×1, strided, Winograd F(4, 3) of a
//! dilated `Conv1d`) and dense layers, in f32 and f64, for every method the library names; the storage is bounded, freed when switched off, and safe to fill from two
//! threads at once.

use crate::common::Rng;
use ndarray::{Array1, Array2, Array3, Array4, ArrayD, IxDyn};
use relevance::{
    Baseline, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Dense, Flatten, Float, Layer, LrpGamma, Method,
    MethodName, Network, Relu, Target, KEPT_SETS_MAX,
};

/// `len` values uniform in [−0.5, 0.5), from `seed`.
fn values<F: Float>(len: usize, seed: u64) -> Vec<F> {
    Rng::new(seed)
        .array::<F>(&[len], -0.5, 0.5)
        .into_raw_vec_and_offset()
        .0
}

/// 3 → 16 (im2col: fewer than 16 input channels) → 16 (Winograd: 16 channels, 12×12
/// outputs) → 8 (1×1) → 8 (stride 2, im2col) → dense 5.
fn net_2d<F: Float>() -> Network<F> {
    let conv = |c: usize, o: usize, k: usize, stride: usize, seed: u64| -> Box<dyn Layer<F>> {
        let w = Array4::from_shape_vec((o, c, k, k), values(o * c * k * k, seed)).unwrap();
        let b = Array1::from_vec(values(o, seed + 100));
        let config = Conv2dConfig::default().padding(k / 2).stride(stride);
        Box::new(Conv2d::new(w, Some(b), config).unwrap())
    };
    let dense = Array2::from_shape_vec((5, 8 * 6 * 6), values(5 * 8 * 36, 9)).unwrap();
    Network::new(
        &[3, 12, 12],
        vec![
            conv(3, 16, 3, 1, 1),
            Box::new(Relu),
            conv(16, 16, 3, 1, 2),
            Box::new(Relu),
            conv(16, 8, 1, 1, 3),
            Box::new(Relu),
            conv(8, 8, 3, 2, 4),
            Box::new(Relu),
            Box::new(Flatten),
            Box::new(Dense::new(dense, Some(Array1::from_vec(values(5, 10)))).unwrap()),
        ],
    )
    .unwrap()
}

/// A dilated three-tap `Conv1d` 16 → 16 on 80 positions (Winograd F(4, 3)), a 1×1 one to
/// 4 channels, dense 3.
fn net_1d<F: Float>() -> Network<F> {
    let w1 = Array3::from_shape_vec((16, 16, 3), values(16 * 16 * 3, 11)).unwrap();
    let w2 = Array3::from_shape_vec((4, 16, 1), values(4 * 16, 12)).unwrap();
    let dense = Array2::from_shape_vec((3, 4 * 80), values(3 * 320, 13)).unwrap();
    Network::new(
        &[16, 80],
        vec![
            Box::new(
                Conv1d::new(
                    w1,
                    Some(Array1::from_vec(values(16, 14))),
                    Conv1dConfig::default().dilation(2).same(),
                )
                .unwrap(),
            ),
            Box::new(Relu),
            Box::new(Conv1d::new(w2, None, Conv1dConfig::default()).unwrap()),
            Box::new(Relu),
            Box::new(Flatten),
            Box::new(Dense::new(dense, None).unwrap()),
        ],
    )
    .unwrap()
}

fn input<F: Float>(net: &Network<F>, batch: usize, seed: u64) -> ArrayD<F> {
    let mut shape = vec![batch];
    shape.extend_from_slice(net.input_shape());
    let len = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(&shape), values(len, seed)).unwrap()
}

/// Every method the library names (`MethodName::all()`, default parameters), with box
/// bounds for `channels` input channels of rank `rank` per sample.
fn methods<F: Float>(channels: usize, rank: usize) -> Vec<(&'static str, Method<F>)> {
    let mut shape = vec![channels];
    shape.resize(rank, 1);
    let low = ArrayD::from_elem(IxDyn(&shape), F::lit(-0.5));
    let high = ArrayD::from_elem(IxDyn(&shape), F::lit(0.5));
    MethodName::all()
        .iter()
        .map(|info| {
            let name = info.name.split('[').next().unwrap();
            let parsed: MethodName = name.parse().unwrap();
            let bounds = Some((low.clone(), high.clone()));
            (name, parsed.method(bounds, Baseline::Zero).unwrap())
        })
        .collect()
}

fn bits<F: Float>(a: &ArrayD<F>) -> Vec<u64> {
    a.iter().map(|v| v.to_f64().unwrap().to_bits()).collect()
}

/// The relevance's bits, or the error's message (a method that does not fit the network,
/// such as `zbox` with input bounds at every layer, must fail alike kept or not).
fn relevance<F: Float>(net: &Network<F>, x: &ArrayD<F>, method: &Method<F>) -> Result<Vec<u64>, String> {
    net.explain(x, &Target::Class(1), method)
        .map(|a| bits(&a.relevance))
        .map_err(|e| e.to_string())
}

/// Fresh, kept (the call that makes the kept weights) and kept again (a call that reads
/// them, on another input) give the same bits, method by method.
fn same_bits_kept_or_not<F: Float>(net: &Network<F>, channels: usize, rank: usize) {
    let (x1, x2) = (input(net, 2, 21), input(net, 2, 22));
    for (name, method) in methods::<F>(channels, rank) {
        net.keep_rule_weights(false);
        let fresh = (relevance(net, &x1, &method), relevance(net, &x2, &method));
        assert_eq!(net.kept_weight_bytes(), 0, "{name}: nothing kept while off");
        // every method fits these networks but `zbox` alone (input bounds at every layer)
        assert!(fresh.0.is_ok() || name == "zbox", "{name}: {:?}", fresh.0.err());
        net.keep_rule_weights(true);
        let making = relevance(net, &x1, &method);
        let reading = relevance(net, &x2, &method);
        let kept = net.kept_weight_bytes();
        match name {
            "epsilon" | "lrp0" | "gradient" => assert_eq!(kept, 0, "{name} modifies no weight"),
            "gamma" | "alpha-beta" | "zplus" | "epsilon-gamma-box" => {
                assert!(
                    kept > 0,
                    "{name}: keeping on, a rule that modifies weights keeps them"
                )
            }
            _ => {}
        }
        assert!(
            making == fresh.0,
            "{name}: the call that keeps the weights differs from a fresh one"
        );
        assert!(
            reading == fresh.1,
            "{name}: a call on kept weights differs from a fresh one"
        );
    }
    net.keep_rule_weights(false);
    assert_eq!(net.kept_weight_bytes(), 0, "switching off frees what was kept");
}

#[test]
fn kept_weights_give_the_same_bits_on_every_2d_path_f32_and_f64() {
    same_bits_kept_or_not(&net_2d::<f32>(), 3, 3);
    same_bits_kept_or_not(&net_2d::<f64>(), 3, 3);
}

#[test]
fn kept_weights_give_the_same_bits_on_a_dilated_conv1d_f32_and_f64() {
    same_bits_kept_or_not(&net_1d::<f32>(), 16, 2);
    same_bits_kept_or_not(&net_1d::<f64>(), 16, 2);
}

/// LRP-γ keeps `W + γW⁺` and `W + γW⁻` of every affine layer, and the 16 → 16 layer's
/// Winograd transform of each (16 values per 3×3 kernel): exactly these bytes.
#[test]
fn kept_bytes_are_the_two_gamma_weights_and_their_winograd_transforms() {
    let net = net_2d::<f64>();
    net.keep_rule_weights(true);
    let gamma = Method::lrp(LrpGamma::new(0.25).unwrap());
    net.explain(&input(&net, 1, 5), &Target::Class(0), &gamma)
        .unwrap();
    let weights = 16 * 3 * 9 + 16 * 16 * 9 + 8 * 16 + 8 * 8 * 9 + 5 * 8 * 36;
    let winograd = 16 * 16 * 16;
    assert_eq!(net.kept_weight_bytes(), 2 * (weights + winograd) * 8);
}

/// A layer keeps the weights of at most `KEPT_SETS_MAX` rules; further rules still give
/// the bits of fresh weights, and keep nothing more.
#[test]
fn rules_beyond_the_kept_maximum_modify_per_call_with_the_same_bits() {
    let net = net_2d::<f32>();
    let x = input(&net, 1, 30);
    let gammas: Vec<Method<f32>> = (1..=KEPT_SETS_MAX + 2)
        .map(|k| Method::lrp(LrpGamma::new(0.1 * k as f64).unwrap()))
        .collect();
    let fresh: Vec<_> = gammas.iter().map(|m| relevance(&net, &x, m)).collect();
    net.keep_rule_weights(true);
    let mut bytes = Vec::new();
    for _ in 0..2 {
        for (m, want) in gammas.iter().zip(&fresh) {
            assert!(&relevance(&net, &x, m) == want);
            bytes.push(net.kept_weight_bytes());
        }
    }
    let full = bytes[KEPT_SETS_MAX - 1];
    assert_eq!(
        full,
        bytes[0] * KEPT_SETS_MAX,
        "each γ keeps as much as the first"
    );
    assert!(bytes[KEPT_SETS_MAX - 1..].iter().all(|&b| b == full), "{bytes:?}");
}

/// Two threads that fill the kept storage at the same time get the bits of fresh weights.
#[test]
fn two_threads_filling_the_kept_weights_get_the_same_bits() {
    let net = net_2d::<f32>();
    let (methods, xs) = (methods::<f32>(3, 3), [input(&net, 2, 40), input(&net, 1, 41)]);
    let fresh: Vec<Vec<_>> = methods
        .iter()
        .map(|(_, m)| xs.iter().map(|x| relevance(&net, x, m)).collect())
        .collect();
    for round in 0..3 {
        net.keep_rule_weights(true);
        std::thread::scope(|s| {
            for (k, x) in xs.iter().enumerate() {
                let (net, methods, fresh) = (&net, &methods, &fresh);
                s.spawn(move || {
                    for ((name, m), want) in methods.iter().zip(fresh) {
                        assert!(
                            relevance(net, x, m) == want[k],
                            "{name}, thread {k}, round {round}"
                        );
                    }
                });
            }
        });
        net.keep_rule_weights(false);
    }
}
