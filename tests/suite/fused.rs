//! Forward passes that keep no values run a convolution's ReLU and 2×2 max pool inside the
//! convolution (`Layer::forward_fused`); a trace keeps every value and runs the layers one
//! by one. Both must give the same bits: on the bundled digits model, on odd sizes (the
//! pool drops the last row and column), with the pool alone, the ReLU alone, a pool that
//! does not fuse (3×3), a ReLU whose output has a second reader (nothing fused), f32 and f64;
//! a ReLU after the convolution paths other than the direct kernel, where it runs in the
//! bias pass; and a ReLU after a sum or a dense layer, which the network runs in place.

use crate::common;

use common::Rng;
use ndarray::ArrayD;
use relevance::{Add, Conv2d, Conv2dConfig, Float, Fused, GraphBuilder, Layer, MaxPool2d, Network, Relu};

/// Bit patterns of `a` (as f64, exact for f32).
fn bits<F: Float>(a: &ArrayD<F>) -> Vec<u64> {
    a.iter().map(|v| v.as_f64().to_bits()).collect()
}

/// `forward` (fused where it can) and the trace's output (unfused) agree bit for bit.
fn same_as_unfused<F: Float>(net: &Network<F>, x: &ArrayD<F>, what: &str) {
    let fused = net.forward(x).expect("forward");
    let trace = net.trace(x).expect("trace");
    assert_eq!(fused.shape(), trace.output().shape(), "{what}");
    assert_eq!(bits(&fused), bits(trace.output()), "{what}");
}

/// A 3×3 convolution with padding 1 and mixed-sign weights (and a bias if `bias`).
fn conv<F: Float>(rng: &mut Rng, cin: usize, cout: usize, bias: bool) -> Conv2d<F> {
    let w = rng
        .array(&[cout, cin, 3, 3], -0.5, 0.5)
        .into_dimensionality()
        .unwrap();
    let b = bias.then(|| rng.array(&[cout], -0.2, 0.2).into_dimensionality().unwrap());
    Conv2d::new(w, b, Conv2dConfig::default().padding(1)).unwrap()
}

#[cfg(feature = "safetensors")]
#[test]
fn the_digits_model_gives_the_bits_of_its_trace() {
    use relevance::io::{load_safetensors, Digits};
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
    let digits = Digits::load(format!("{root}data/digits_test.bin")).unwrap();
    let idx: Vec<usize> = (0..7).map(|k| k * 131 % digits.len()).collect();
    fn check<F: Float>(root: &str, digits: &Digits, idx: &[usize]) {
        let net = load_safetensors::<F>(
            format!("{root}models/digits.json"),
            format!("{root}models/digits.safetensors"),
        )
        .unwrap();
        let x = digits.images::<F>(idx).unwrap();
        same_as_unfused(&net, &x, std::any::type_name::<F>());
        // one sample alone gives the bits it has in the batch
        let one = digits.images::<F>(&idx[3..4]).unwrap();
        assert_eq!(
            bits(&net.forward(&one).unwrap()),
            bits(&net.forward(&x).unwrap())[30..40].to_vec()
        );
    }
    check::<f32>(root, &digits, &idx);
    check::<f64>(root, &digits, &idx);
}

#[test]
fn chains_on_odd_sizes_give_the_bits_of_their_trace() {
    // 9×13: a padded row of 15 (odd); 9×12: of 14 (even, the pairs of columns over the plane)
    fn chains<F: Float>(seed: u64, (h, w): (usize, usize)) {
        let mut rng = Rng::new(seed);
        let pool = || Box::new(MaxPool2d::square(2).unwrap()) as Box<dyn Layer<F>>;
        type Layers<F> = Vec<Box<dyn Layer<F>>>;
        let cases: Vec<(&str, Layers<F>)> = vec![
            (
                "conv relu pool",
                vec![Box::new(conv(&mut rng, 2, 8, true)), Box::new(Relu), pool()],
            ),
            ("conv pool", vec![Box::new(conv(&mut rng, 2, 5, true)), pool()]),
            (
                "conv relu",
                vec![Box::new(conv(&mut rng, 2, 3, false)), Box::new(Relu)],
            ),
            (
                "conv relu pool3",
                vec![
                    Box::new(conv(&mut rng, 2, 16, true)),
                    Box::new(Relu),
                    Box::new(MaxPool2d::new((3, 3), (2, 2), (1, 1)).unwrap()),
                ],
            ),
            (
                "two blocks",
                vec![
                    Box::new(conv(&mut rng, 2, 4, true)),
                    Box::new(Relu),
                    pool(),
                    Box::new(conv(&mut rng, 4, 9, false)),
                    pool(),
                    Box::new(Relu),
                ],
            ),
        ];
        for (what, layers) in cases {
            let net = Network::<F>::new(&[2, h, w], layers).unwrap();
            // a third of the inputs zero: ties, zero sums and −0 products
            let x = rng.array::<F>(&[3, 2, h, w], -1.0, 1.0).mapv(|v| {
                if v.abs() < F::lit(0.33) {
                    F::zero()
                } else {
                    v
                }
            });
            same_as_unfused(&net, &x, &format!("{what} {h}×{w}"));
        }
    }
    for size in [(9, 13), (9, 12)] {
        chains::<f32>(3, size);
        chains::<f64>(4, size);
    }
}

#[test]
fn a_relu_after_every_other_convolution_path_gives_the_bits_of_its_trace() {
    // more than 32 output channels keep these off the direct kernel; the ReLU then runs in
    // the bias pass, in place
    fn paths<F: Float>(seed: u64) {
        let mut rng = Rng::new(seed);
        // (what, input [C, H, W], kernel, stride, padding)
        let cases = [
            ("3×3 Winograd", [3, 12, 11], 3, 1, 1),
            ("3×3 im2col (few outputs)", [3, 5, 6], 3, 1, 1),
            ("3×3 stride 2", [3, 9, 10], 3, 2, 1),
            ("1×1 per-sample product", [5, 7, 6], 1, 1, 0),
            // one sample of more than 2^20 outputs: the parallel elementwise pass
            ("3×3 Winograd, large", [2, 150, 150], 3, 1, 1),
        ];
        for (what, [c, h, w], k, stride, pad) in cases {
            for bias in [true, false] {
                let weight = rng
                    .array(&[48, c, k, k], -0.5, 0.5)
                    .into_dimensionality()
                    .unwrap();
                let b = bias.then(|| rng.array(&[48], -0.2, 0.2).into_dimensionality().unwrap());
                let config = Conv2dConfig::default().stride(stride).padding(pad);
                let conv = Conv2d::<F>::new(weight, b, config).unwrap();
                let net = Network::<F>::new(&[c, h, w], vec![Box::new(conv), Box::new(Relu)]).unwrap();
                let n = if h > 100 { 1 } else { 3 };
                let x = rng.array::<F>(&[n, c, h, w], -1.0, 1.0);
                same_as_unfused(&net, &x, &format!("{what}, bias {bias}"));
            }
        }
    }
    paths::<f32>(5);
    paths::<f64>(6);
}

#[test]
fn a_relu_after_a_sum_or_a_dense_layer_runs_in_place_with_the_bits_of_its_trace() {
    fn block<F: Float>(seed: u64) {
        let mut rng = Rng::new(seed);
        // a residual block's end: conv, the sum with the block's input, ReLU; then a dense
        // layer and its ReLU
        let mut g = GraphBuilder::<F>::new(&[4, 6, 7]).unwrap();
        let c = g.add("conv", conv::<F>(&mut rng, 4, 4, true), g.input()).unwrap();
        let s = g.merge("sum", Add::new(), &[c, g.input()]).unwrap();
        let r = g.add("relu", Relu, s).unwrap();
        let f = g.add("flatten", relevance::Flatten, r).unwrap();
        let w = rng
            .array(&[9, 4 * 6 * 7], -0.3, 0.3)
            .into_dimensionality()
            .unwrap();
        let b = rng.array(&[9], -0.2, 0.2).into_dimensionality().unwrap();
        let d = g
            .add("dense", relevance::Dense::new(w, Some(b)).unwrap(), f)
            .unwrap();
        let r2 = g.add("relu2", Relu, d).unwrap();
        let net = g.build(r2).unwrap();
        let x = rng.array::<F>(&[3, 4, 6, 7], -1.0, 1.0);
        same_as_unfused(&net, &x, "sum and dense");
    }
    block::<f32>(11);
    block::<f64>(12);
}

#[test]
fn a_relu_with_a_second_reader_is_not_fused_and_gives_the_same_bits() {
    let mut rng = Rng::new(9);
    let mut g = GraphBuilder::<f32>::new(&[1, 8, 8]).unwrap();
    let c = g
        .add("conv", conv::<f32>(&mut rng, 1, 4, true), g.input())
        .unwrap();
    let r = g.add("relu", Relu, c).unwrap();
    let p = g.add("pool", MaxPool2d::square(2).unwrap(), r).unwrap();
    let c2 = g.add("conv2", conv::<f32>(&mut rng, 4, 4, false), p).unwrap();
    // the ReLU's output is read twice: by its pool, and (pooled again) by the sum
    let p2 = g.add("pool2", MaxPool2d::square(2).unwrap(), r).unwrap();
    let s = g.merge("sum", Add::new(), &[c2, p2]).unwrap();
    let net = g.build(s).unwrap();
    let x = rng.array::<f32>(&[2, 1, 8, 8], -1.0, 1.0);
    same_as_unfused(&net, &x, "second reader");
}

#[test]
fn only_relu_and_the_plain_2x2_pool_offer_themselves() {
    assert_eq!(Layer::<f32>::as_fused(&Relu, &[4, 6, 6]), Some(Fused::Relu));
    let pool = MaxPool2d::square(2).unwrap();
    assert_eq!(Layer::<f32>::as_fused(&pool, &[4, 6, 6]), Some(Fused::MaxPool2x2));
    assert_eq!(Layer::<f32>::as_fused(&pool, &[4, 1, 6]), None, "no whole window");
    let pool3 = MaxPool2d::square(3).unwrap();
    assert_eq!(Layer::<f32>::as_fused(&pool3, &[4, 6, 6]), None);
    let conv = Conv2d::<f32>::new(
        ndarray::Array4::zeros((2, 1, 3, 3)),
        None,
        Conv2dConfig::default(),
    )
    .unwrap();
    assert_eq!(conv.as_fused(&[1, 6, 6]), None);
    // a fused call the layer does not offer returns None; the network then runs the layers
    let x = ndarray::Array4::<f32>::zeros((1, 1, 6, 6)).into_dyn();
    assert!(conv
        .forward_fused(x.view(), &[Fused::MaxPool2x2, Fused::Relu])
        .is_none());
}
