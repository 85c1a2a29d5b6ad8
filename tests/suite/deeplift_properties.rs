//! DeepLIFT invariants over random networks and baselines (proptest, f64):
//! summation-to-delta per sample and at every layer, for Rescale, RevealCancel and the mixed
//! default, with max-pools present (overlapping too); Rescale with a zero baseline and zero
//! biases equals LRP-0 on ReLU networks; DeepLiftShap is the mean over its baselines; the
//! network is unchanged; wrong baselines are typed errors.

use crate::common::bounds::DEEPLIFT_PROPERTY_GAP as GAP;
use ndarray::{Array1, Array2, Array4, ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use relevance::rules::MaxPoolRule;
use relevance::{
    Baseline, Conv2d, Conv2dConfig, DeepLift, DeepLiftOptions, Dense, Error, Flatten, Layer, Lrp0, MaxPool2d,
    Network, Relu, Target,
};

/// A small deterministic generator (SplitMix64), so that one proptest `u64` fixes a case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn array(&mut self, shape: &[usize], scale: f64) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || scale * self.unit())
    }
}

fn dense(rng: &mut Rng, inp: usize, out: usize, bias: bool) -> Box<dyn Layer<f64>> {
    let w = Array2::from_shape_simple_fn((out, inp), || rng.unit() * 1.5 / (inp as f64).sqrt());
    let b = bias.then(|| Array1::from_shape_simple_fn(out, || 0.3 * rng.unit()));
    Box::new(Dense::new(w, b).unwrap())
}

/// A random MLP: 1–3 hidden ReLU layers.
fn mlp(rng: &mut Rng, bias: bool) -> Network<f64> {
    let mut width = 2 + rng.below(5);
    let input = width;
    let mut layers = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let next = 2 + rng.below(6);
        layers.push(dense(rng, width, next, bias));
        layers.push(Box::new(Relu) as Box<dyn Layer<f64>>);
        width = next;
    }
    layers.push(dense(rng, width, 3, bias));
    Network::new(&[input], layers).unwrap()
}

/// A random CNN: conv, ReLU, max-pool (overlapping when `overlap`), optionally a second
/// conv + ReLU + pool, flatten, dense, ReLU, dense.
fn cnn(rng: &mut Rng, bias: bool, overlap: bool) -> Network<f64> {
    let cin = 1 + rng.below(2);
    let c1 = 2 + rng.below(2);
    let side = 6 + rng.below(3);
    let conv = |rng: &mut Rng, cin: usize, cout: usize| -> Box<dyn Layer<f64>> {
        let w = Array4::from_shape_simple_fn((cout, cin, 3, 3), || rng.unit() / (3.0 * cin as f64).sqrt());
        let b = bias.then(|| Array1::from_shape_simple_fn(cout, || 0.3 * rng.unit()));
        Box::new(Conv2d::new(w, b, Conv2dConfig::default().padding(1)).unwrap())
    };
    let pool = || -> Box<dyn Layer<f64>> {
        Box::new(if overlap {
            MaxPool2d::new((3, 3), (2, 2), (1, 1)).unwrap()
        } else {
            MaxPool2d::square(2).unwrap()
        })
    };
    let mut layers = vec![conv(rng, cin, c1), Box::new(Relu) as Box<dyn Layer<f64>>, pool()];
    if rng.below(2) == 1 {
        layers.push(conv(rng, c1, 2));
        layers.push(Box::new(Relu));
        layers.push(pool());
    }
    layers.push(Box::new(Flatten));
    let mut shape = vec![cin, side, side];
    for l in &layers {
        shape = l.output_shape(&shape).unwrap();
    }
    layers.push(dense(rng, shape[0], 5, bias));
    layers.push(Box::new(Relu));
    layers.push(dense(rng, 5, 3, bias));
    Network::new(&[cin, side, side], layers).unwrap()
}

fn batch(rng: &mut Rng, net: &Network<f64>, n: usize) -> ArrayD<f64> {
    let mut shape = vec![n];
    shape.extend_from_slice(net.input_shape());
    rng.array(&shape, 1.5)
}

/// One baseline of every kind, for a batch of `n` (the properties hold for each: the tests
/// run all of them, rather than drawing one).
fn every_baseline(rng: &mut Rng, net: &Network<f64>, n: usize) -> [Baseline<f64>; 4] {
    let k = 1 + rng.below(3);
    [
        Baseline::Zero,
        Baseline::Shared(rng.array(net.input_shape(), 1.0)),
        Baseline::PerSample(batch(rng, net, n)),
        Baseline::Distribution(batch(rng, net, k)),
    ]
}

fn network(rng: &mut Rng, bias: bool) -> Network<f64> {
    match rng.below(3) {
        0 => mlp(rng, bias),
        1 => cnn(rng, bias, false),
        _ => cnn(rng, bias, true),
    }
}

fn rules() -> [DeepLift; 3] {
    [
        DeepLift::rescale(),
        DeepLift::reveal_cancel(),
        DeepLift::default(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn summation_to_delta_per_sample_and_per_layer(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let net = network(&mut rng, true);
        let n = 1 + rng.below(3);
        let x = batch(&mut rng, &net, n);
        let baselines = every_baseline(&mut rng, &net, n);
        let target = Target::PerSample((0..n).map(|_| rng.below(3)).collect());
        for (rule, baseline) in rules().iter().flat_map(|r| baselines.iter().map(move |b| (r, b))) {
            let a = net.deeplift_with(&x, &target, rule, baseline, DeepLiftOptions::keep_layers()).unwrap();
            prop_assert_eq!(a.delta.len(), n);
            for (d, t) in a.delta.iter().zip(a.total.iter()) {
                prop_assert!(d.abs() <= GAP * t.abs().max(1.0), "{:?}, {:?}: gap {} of {}", rule, baseline, d, t);
            }
            let layers = a.layers.as_ref().unwrap();
            prop_assert_eq!(layers.len(), net.nodes().len() + 1);
            for (k, l) in layers.iter().enumerate() {
                prop_assert_eq!(l.shape()[0], n);
                for (s, t) in l.axis_iter(Axis(0)).map(|r| r.sum()).zip(a.total.iter()) {
                    prop_assert!((s - t).abs() <= GAP * t.abs().max(1.0), "layer {}: {} vs {}", k, s, t);
                }
            }
        }
    }

    #[test]
    fn rescale_with_zero_baseline_and_no_bias_is_lrp0(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let net = network(&mut rng, false);
        let n = 1 + rng.below(3);
        let x = batch(&mut rng, &net, n);
        let target = Target::PerSample((0..n).map(|_| rng.below(3)).collect());
        let d = net.deeplift(&x, &target, &DeepLift::rescale(), &Baseline::Zero).unwrap();
        let lrp = net.attribute(&x, &target, &Lrp0).unwrap();
        let scale = lrp.relevance.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
        for (a, b) in d.attribution.iter().zip(lrp.relevance.iter()) {
            prop_assert!((a - b).abs() <= 1e-10 * scale, "{} vs {}", a, b);
        }
        // and the multipliers are the gradient
        let g = net.gradient(&x, &target).unwrap();
        for (a, b) in d.multipliers.iter().zip(g.iter()) {
            prop_assert!((a - b).abs() <= 1e-10 * scale);
        }
    }

    #[test]
    fn shap_is_the_mean_over_its_baselines(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let net = network(&mut rng, true);
        let n = 1 + rng.below(2);
        let x = batch(&mut rng, &net, n);
        let k = 2 + rng.below(2);
        let dist = batch(&mut rng, &net, k);
        let target = Target::Class(rng.below(3));
        for rule in rules() {
            let shap = net.deeplift(&x, &target, &rule, &Baseline::Distribution(dist.clone())).unwrap();
            let mut mean = ArrayD::<f64>::zeros(x.raw_dim());
            for b in dist.axis_iter(Axis(0)) {
                mean += &net.deeplift(&x, &target, &rule, &Baseline::Shared(b.to_owned())).unwrap().attribution;
            }
            mean /= k as f64;
            for (a, b) in shap.attribution.iter().zip(mean.iter()) {
                prop_assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0));
            }
        }
    }

    #[test]
    fn network_is_unchanged(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let net = network(&mut rng, true);
        let x = batch(&mut rng, &net, 2);
        // the layers (weights included) and the outputs; the network's Debug output also
        // says whether it has recorded the zero baseline's trace, which a call may do
        let layers = |net: &Network<f64>| format!("{:?} {:?}", net.nodes(), net.shapes());
        let before = (layers(&net), net.forward(&x).unwrap());
        for baseline in every_baseline(&mut rng, &net, 2) {
            for rule in rules() {
                net.deeplift(&x, &Target::Class(0), &rule.with_max_pool(MaxPoolRule::Gradient), &baseline).unwrap();
                net.deeplift(&x, &Target::Class(1), &rule, &baseline).unwrap();
            }
        }
        prop_assert_eq!(before, (layers(&net), net.forward(&x).unwrap()));
    }

    #[test]
    fn bad_baselines_are_typed_errors(seed in any::<u64>(), extra in 1usize..3, nan_at in any::<usize>()) {
        let mut rng = Rng(seed);
        let net = network(&mut rng, true);
        let n = 2;
        let x = batch(&mut rng, &net, n);
        let rule = DeepLift::default();
        let t = Target::Class(0);
        // wrong per-sample shape: one more entry on the last axis
        let mut wrong = net.input_shape().to_vec();
        *wrong.last_mut().unwrap() += extra;
        let e = net.deeplift(&x, &t, &rule, &Baseline::Shared(rng.array(&wrong, 1.0))).unwrap_err();
        prop_assert!(matches!(e, Error::Shape { .. }), "{}", e);
        let mut wrong_batch = vec![n + extra];
        wrong_batch.extend_from_slice(net.input_shape());
        let e = net.deeplift(&x, &t, &rule, &Baseline::PerSample(rng.array(&wrong_batch, 1.0))).unwrap_err();
        prop_assert!(matches!(e, Error::BatchMismatch { .. }), "{}", e);
        // a NaN anywhere in a distribution of baselines
        let mut dist = batch(&mut rng, &net, 2);
        let i = nan_at % dist.len();
        dist.as_slice_mut().unwrap()[i] = f64::NAN;
        let e = net.deeplift(&x, &t, &rule, &Baseline::Distribution(dist)).unwrap_err();
        prop_assert!(matches!(e, Error::NonFinite { index, .. } if index == i), "{}", e);
    }
}
