//! Reproducibility: the same inputs give bit-identical results, whatever the batch they are
//! in, however often the call is repeated and however many threads run it. CI (`.ci/run`)
//! runs these tests with the default features, with none, with `parallel` alone and with
//! `faer` alone: the four ways products can be computed.
//!
//! The network is large enough that its convolutions and first dense layer go through the
//! large-product path of the matrix multiply (faer with the default features, split across
//! threads with `parallel`), where a library that split the inner dimension across threads or
//! chose kernels by buffer alignment would break these equalities.

use crate::common;

use common::Rng;
use ndarray::{ArrayD, Axis};
use relevance::{
    AvgPool1d, Baseline, Composite, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, DeepLift, Dense, Flatten,
    Layer, LrpEpsilon, MaxPool2d, Network, Relu, Target,
};

/// conv(3→32) ReLU conv(32→32) ReLU pool conv(32→48) ReLU conv1×1(48→48) ReLU pool(3×3/2,
/// padding 1) flatten dense(48·8·8→128) ReLU dense(128→10) on 3×32×32. The second convolution takes the Winograd path (16 products run
/// in parallel). Per sample, the third convolution (3.5M multiply-adds) is above the large-product
/// threshold (2^20) and the first dense layer (0.4M, inner dimension 3072) below it — but not
/// a batch of three of them: a multiply that chose its library by the size of the product
/// would compute a sample differently alone and in a batch, and fail the batch test.
fn net(rng: &mut Rng) -> Network<f64> {
    let conv = |rng: &mut Rng, cin: usize, cout: usize| -> Box<dyn Layer<f64>> {
        let w = rng
            .array(&[cout, cin, 3, 3], -0.3, 0.3)
            .into_dimensionality()
            .unwrap();
        let b = rng.array(&[cout], -0.1, 0.1).into_dimensionality().unwrap();
        Box::new(Conv2d::new(w, Some(b), Conv2dConfig::default().padding(1)).unwrap())
    };
    // 1×1, stride 1: one product per sample in place of im2col
    let pointwise = |rng: &mut Rng, cin: usize, cout: usize| -> Box<dyn Layer<f64>> {
        let w = rng
            .array(&[cout, cin, 1, 1], -0.3, 0.3)
            .into_dimensionality()
            .unwrap();
        Box::new(Conv2d::new(w, None, Conv2dConfig::default()).unwrap())
    };
    let dense = |rng: &mut Rng, cin: usize, cout: usize| -> Box<dyn Layer<f64>> {
        let w = rng.array(&[cout, cin], -0.1, 0.1).into_dimensionality().unwrap();
        let b = rng.array(&[cout], -0.1, 0.1).into_dimensionality().unwrap();
        Box::new(Dense::new(w, Some(b)).unwrap())
    };
    let layers: Vec<Box<dyn Layer<f64>>> = vec![
        conv(rng, 3, 32),
        Box::new(Relu),
        conv(rng, 32, 32),
        Box::new(Relu),
        Box::new(MaxPool2d::square(2).unwrap()),
        conv(rng, 32, 48),
        Box::new(Relu),
        pointwise(rng, 48, 48),
        Box::new(Relu),
        Box::new(MaxPool2d::new((3, 3), (2, 2), (1, 1)).unwrap()),
        Box::new(Flatten),
        dense(rng, 48 * 8 * 8, 128),
        Box::new(Relu),
        dense(rng, 128, 10),
    ];
    Network::new(&[3, 32, 32], layers).unwrap()
}

fn bits(a: &ArrayD<f64>) -> Vec<u64> {
    a.iter().map(|v| v.to_bits()).collect()
}

/// Runs EpsilonGammaBox, DeepLift and the gradient on `x` and returns the three results.
fn explain(net: &Network<f64>, x: &ArrayD<f64>) -> [ArrayD<f64>; 3] {
    let low = ArrayD::zeros(ndarray::IxDyn(&[3, 1, 1]));
    let high = ArrayD::ones(ndarray::IxDyn(&[3, 1, 1]));
    let egb = Composite::epsilon_gamma_box(low, high).unwrap();
    let target = Target::Class(3);
    [
        net.attribute(x, &target, &egb).unwrap().relevance,
        net.deeplift(x, &target, &DeepLift::rescale(), &Baseline::Zero)
            .unwrap()
            .attribution,
        net.gradient(x, &target).unwrap(),
    ]
}

#[test]
fn repeated_calls_are_bit_identical() {
    let mut rng = Rng::new(11);
    let net = net(&mut rng);
    let x = rng.array(&[2, 3, 32, 32], 0.0, 1.0);
    let first = explain(&net, &x);
    for _ in 0..3 {
        let again = explain(&net, &x);
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(bits(a), bits(b));
        }
    }
}

#[test]
fn a_sample_gets_the_same_bits_alone_and_in_a_batch() {
    let mut rng = Rng::new(12);
    let net = net(&mut rng);
    // 9 samples: split into blocks of 4 + 4 + 1 (or fewer, larger parts without `parallel`)
    let x = rng.array(&[9, 3, 32, 32], 0.0, 1.0);
    let batch = explain(&net, &x);
    for s in [0, 4, 8] {
        let alone = explain(&net, &x.slice_axis(Axis(0), (s..s + 1).into()).to_owned());
        for (b, a) in batch.iter().zip(&alone) {
            assert_eq!(
                bits(&b.index_axis(Axis(0), s).to_owned()),
                bits(&a.index_axis(Axis(0), 0).to_owned())
            );
        }
    }
}

#[cfg(feature = "parallel")]
#[test]
fn one_thread_and_two_threads_give_the_same_bits() {
    let mut rng = Rng::new(13);
    let net = net(&mut rng);
    let x = rng.array(&[3, 3, 32, 32], 0.0, 1.0);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| explain(&net, &x))
    };
    let (one, two) = (run(1), run(2));
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(bits(a), bits(b));
    }
}

/// A genomics-shaped 1-D network: conv(4→64, 5 taps) ReLU, two dilated conv(64→64, 3 taps,
/// dilation 8 then 2) with ReLU, global average, dense(64→3), on 4×2000. The dilated layers
/// take the Winograd F(4, 3) path (dilation 8: blocks ordered by position; 2: by residue),
/// above the large-product threshold; a batch of nine spans two chunks of blocks, which
/// split samples.
fn net_1d(rng: &mut Rng) -> Network<f64> {
    let conv = |rng: &mut Rng, cin: usize, cout: usize, k: usize, dil: usize| -> Box<dyn Layer<f64>> {
        let w = rng
            .array(&[cout, cin, k], -0.2, 0.2)
            .into_dimensionality()
            .unwrap();
        let b = rng.array(&[cout], -0.1, 0.1).into_dimensionality().unwrap();
        let pad = dil * (k - 1) / 2;
        Box::new(Conv1d::new(w, Some(b), Conv1dConfig::default().padding(pad).dilation(dil)).unwrap())
    };
    let w = rng.array(&[3, 64], -0.3, 0.3).into_dimensionality().unwrap();
    let layers: Vec<Box<dyn Layer<f64>>> = vec![
        conv(rng, 4, 64, 5, 1),
        Box::new(Relu),
        conv(rng, 64, 64, 3, 8),
        Box::new(Relu),
        conv(rng, 64, 64, 3, 2),
        Box::new(Relu),
        Box::new(AvgPool1d::global()),
        Box::new(Flatten),
        Box::new(Dense::new(w, None).unwrap()),
    ];
    Network::new(&[4, 2000], layers).unwrap()
}

/// LRP-ε, DeepLift (zero baseline) and the gradient of class 1 on `x`.
fn explain_1d(net: &Network<f64>, x: &ArrayD<f64>) -> [ArrayD<f64>; 3] {
    let target = Target::Class(1);
    [
        net.attribute(x, &target, &LrpEpsilon::new(1e-6).unwrap())
            .unwrap()
            .relevance,
        net.deeplift(x, &target, &DeepLift::rescale(), &Baseline::Zero)
            .unwrap()
            .attribution,
        net.gradient(x, &target).unwrap(),
    ]
}

#[test]
fn one_d_winograd_gives_a_sample_the_same_bits_alone_in_a_batch_and_on_any_threads() {
    let mut rng = Rng::new(14);
    let net = net_1d(&mut rng);
    let x = rng.array(&[9, 4, 2000], 0.0, 1.0);
    let batch = explain_1d(&net, &x);
    for s in [0, 4, 8] {
        let alone = explain_1d(&net, &x.slice_axis(Axis(0), (s..s + 1).into()).to_owned());
        for (b, a) in batch.iter().zip(&alone) {
            assert_eq!(
                bits(&b.index_axis(Axis(0), s).to_owned()),
                bits(&a.index_axis(Axis(0), 0).to_owned())
            );
        }
    }
    #[cfg(feature = "parallel")]
    {
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| explain_1d(&net, &x))
        };
        for (a, b) in run(1).iter().zip(&batch) {
            assert_eq!(bits(a), bits(b));
        }
    }
}
