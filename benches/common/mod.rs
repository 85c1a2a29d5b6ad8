//! Networks shared by the benches: the small CNN and the VGG16-shaped network of the speed
//! issue, with seeded random weights (no data files needed).

#![allow(dead_code)]

use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use relevance::{Conv2d, Conv2dConfig, Dense, Flatten, Layer, MaxPool2d, Network, Relu};

/// A small deterministic generator (xorshift64*), uniform in [-1, 1).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (v as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn array(&mut self, shape: &[usize], scale: f32) -> ArrayD<f32> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.next() * scale)
    }
}

fn conv(rng: &mut Rng, cin: usize, cout: usize) -> Box<dyn Layer<f32>> {
    let scale = (3.0 / (cin * 9) as f32).sqrt();
    let w = rng
        .array(&[cout, cin, 3, 3], scale)
        .into_dimensionality()
        .unwrap();
    let b: Array1<f32> = rng.array(&[cout], 0.05).into_dimensionality().unwrap();
    Box::new(Conv2d::new(w, Some(b), Conv2dConfig::default().padding(1)).unwrap())
}

fn dense(rng: &mut Rng, cin: usize, cout: usize) -> Box<dyn Layer<f32>> {
    let scale = (3.0 / cin as f32).sqrt();
    let w: Array2<f32> = rng.array(&[cout, cin], scale).into_dimensionality().unwrap();
    let b: Array1<f32> = rng.array(&[cout], 0.05).into_dimensionality().unwrap();
    Box::new(Dense::new(w, Some(b)).unwrap())
}

fn pool() -> Box<dyn Layer<f32>> {
    Box::new(MaxPool2d::square(2).unwrap())
}

/// conv8-pool-conv16-pool-dense32-dense10 on 1×28×28 (ReLU after each conv and dense but the last).
pub fn small_cnn() -> Network<f32> {
    let mut rng = Rng::new(1);
    let layers = vec![
        conv(&mut rng, 1, 8),
        Box::new(Relu),
        pool(),
        conv(&mut rng, 8, 16),
        Box::new(Relu),
        pool(),
        Box::new(Flatten),
        dense(&mut rng, 16 * 7 * 7, 32),
        Box::new(Relu),
        dense(&mut rng, 32, 10),
    ];
    Network::new(&[1, 28, 28], layers).unwrap()
}

/// VGG16: 13 conv3×3 (64,64,M,128,128,M,256×3,M,512×3,M,512×3,M) + 4096-4096-1000 dense.
pub fn vgg16() -> Network<f32> {
    let mut rng = Rng::new(2);
    let plan: [usize; 18] = [
        64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
    ];
    let mut layers: Vec<Box<dyn Layer<f32>>> = Vec::new();
    let mut cin = 3;
    for &c in &plan {
        if c == 0 {
            layers.push(pool());
        } else {
            layers.push(conv(&mut rng, cin, c));
            layers.push(Box::new(Relu));
            cin = c;
        }
    }
    layers.push(Box::new(Flatten));
    layers.push(dense(&mut rng, 512 * 7 * 7, 4096));
    layers.push(Box::new(Relu));
    layers.push(dense(&mut rng, 4096, 4096));
    layers.push(Box::new(Relu));
    layers.push(dense(&mut rng, 4096, 1000));
    Network::new(&[3, 224, 224], layers).unwrap()
}

/// A batch of `n` inputs in [0, 1) for `net`.
pub fn input(net: &Network<f32>, n: usize, seed: u64) -> ArrayD<f32> {
    let mut shape = vec![n];
    shape.extend_from_slice(net.input_shape());
    Rng::new(seed).array(&shape, 0.5).mapv(|v| v + 0.5)
}

/// Per-channel pixel bounds [0, 1] for z^B.
pub fn bounds(channels: usize) -> (ArrayD<f32>, ArrayD<f32>) {
    (
        Array4::<f32>::zeros((channels, 1, 1, 1))
            .into_shape_with_order(IxDyn(&[channels, 1, 1]))
            .unwrap(),
        Array4::<f32>::ones((channels, 1, 1, 1))
            .into_shape_with_order(IxDyn(&[channels, 1, 1]))
            .unwrap(),
    )
}
