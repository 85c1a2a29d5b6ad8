//! Recycled output buffers (see `relevance::release_buffers`) hold the values of an earlier
//! call: every layer must overwrite them in full. A call that reuses another call's buffers
//! must give the same bits as one on fresh memory.

use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use relevance::{
    release_buffers, Baseline, Composite, Conv2d, Conv2dConfig, DeepLift, Dense, Flatten, Layer, LrpEpsilon,
    MaxPool2d, Network, Relu, Target,
};

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Activations of at least 2^16 elements (the recycled size) through both convolution
/// paths (Winograd: 16→16 channels on 64×64; im2col: 4→16, and a strided one), ReLU,
/// max-pool and a dense layer.
fn network() -> Network<f32> {
    let conv = |c: usize, o: usize, stride: usize, seed: u64| -> Box<dyn Layer<f32>> {
        let w = Array4::from_shape_vec((o, c, 3, 3), values(o * c * 9, seed)).unwrap();
        let b = Array1::from_vec(values(o, seed + 100));
        Box::new(Conv2d::new(w, Some(b), Conv2dConfig::default().padding(1).stride(stride)).unwrap())
    };
    let dense = Array2::from_shape_vec((5, 16 * 16 * 16), values(5 * 4096, 9)).unwrap();
    Network::new(
        &[4, 64, 64],
        vec![
            conv(4, 16, 1, 1),
            Box::new(Relu),
            conv(16, 16, 1, 2),
            Box::new(Relu),
            Box::new(MaxPool2d::square(2).unwrap()),
            conv(16, 16, 2, 3),
            Box::new(Relu),
            Box::new(Flatten),
            Box::new(Dense::new(dense, Some(Array1::from_vec(values(5, 10)))).unwrap()),
        ],
    )
    .unwrap()
}

#[test]
fn reused_buffers_give_the_same_bits_as_fresh_memory() {
    let net = network();
    let input = |seed| ArrayD::from_shape_vec(IxDyn(&[2, 4, 64, 64]), values(2 * 4 * 64 * 64, seed)).unwrap();
    let (x1, x2) = (input(20), input(21));
    let egb = Composite::epsilon_gamma_box(
        ArrayD::from_elem(IxDyn(&[4, 1, 1]), -0.5),
        ArrayD::from_elem(IxDyn(&[4, 1, 1]), 0.5),
    )
    .unwrap();
    let t = Target::Class(2);
    let run = |x: &ArrayD<f32>| {
        (
            net.forward(x).unwrap(),
            net.attribute(x, &t, &LrpEpsilon::default()).unwrap().relevance,
            net.attribute(x, &t, &egb).unwrap().relevance,
            net.gradient(x, &t).unwrap(),
            net.deeplift(x, &t, &DeepLift::rescale(), &Baseline::Zero)
                .unwrap()
                .attribution,
        )
    };
    release_buffers();
    let fresh = run(&x2);
    // fill the buffers with another input's activations, then reuse them
    for _ in 0..2 {
        run(&x1);
        let reused = run(&x2);
        assert_eq!(fresh, reused);
    }
    release_buffers();
    assert_eq!(fresh, run(&x2));
}
