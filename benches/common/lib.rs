//! Networks shared by the benches: the small CNN, the VGG16-shaped network of the speed
//! issue, a ResNet-18-shaped graph, bpnet-lite's BPNet (count head) and a ViT-B/16-shaped
//! vision transformer, with seeded random weights (no data files needed).

use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use relevance::{
    Add, AvgPool1d, AvgPool2d, BatchNorm2d, Concat, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Dense,
    Flatten, Gelu, GraphBuilder, Layer, LayerNorm, MatMul, MaxPool2d, Narrow, Network, Permute, Relu,
    Reshape, Softmax,
};

/// A small deterministic generator (xorshift64*), uniform in [-1, 1).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (v as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn array(&mut self, shape: &[usize], scale: f32) -> ArrayD<f32> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.uniform() * scale)
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

/// A convolution without bias (as torchvision's ResNets have), fan-in scaled.
fn conv_nb(rng: &mut Rng, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Conv2d<f32> {
    let scale = (3.0 / (cin * k * k) as f32).sqrt();
    let w = rng
        .array(&[cout, cin, k, k], scale)
        .into_dimensionality()
        .unwrap();
    Conv2d::new(w, None, Conv2dConfig::default().stride(stride).padding(pad)).unwrap()
}

/// Batch norm with running statistics near the identity.
fn bn(rng: &mut Rng, c: usize) -> BatchNorm2d<f32> {
    let v = |rng: &mut Rng, base: f32, spread: f32| -> Array1<f32> {
        rng.array(&[c], spread)
            .mapv(|x| x + base)
            .into_dimensionality()
            .unwrap()
    };
    BatchNorm2d::new(
        v(rng, 0.0, 0.1),
        v(rng, 1.0, 0.3),
        v(rng, 1.0, 0.2),
        v(rng, 0.0, 0.1),
        1e-5,
    )
    .unwrap()
}

/// torchvision's ResNet-18 (basic blocks [2, 2, 2, 2], widths 64–512, 3×224×224 → 1000), with
/// seeded random weights and batch norms, which are then merged into the convolutions as
/// zennit's `ResNetCanonizer` does (`Network::merge_batch_norm`).
pub fn resnet18() -> Network<f32> {
    resnet(&[2, 2, 2, 2], false)
}

/// torchvision's ResNet-50 (bottleneck blocks [3, 4, 6, 3], widths 64–512 expanded 4×, the
/// stride on the 3×3 convolution as torchvision's v1.5), built as [`resnet18`].
pub fn resnet50() -> Network<f32> {
    resnet(&[3, 4, 6, 3], true)
}

/// A torchvision ResNet of basic or bottleneck blocks.
fn resnet(blocks: &[usize], bottleneck: bool) -> Network<f32> {
    let mut rng = Rng::new(3);
    let mut g = GraphBuilder::new(&[3, 224, 224]).unwrap();
    let c1 = g
        .add("conv1", conv_nb(&mut rng, 3, 64, 7, 2, 3), g.input())
        .unwrap();
    let b1 = g.add("bn1", bn(&mut rng, 64), c1).unwrap();
    let r1 = g.add("relu", Relu, b1).unwrap();
    let mut x = g
        .add("maxpool", MaxPool2d::new((3, 3), (2, 2), (1, 1)).unwrap(), r1)
        .unwrap();
    let expansion = if bottleneck { 4 } else { 1 };
    let mut cin = 64;
    for (stage, (&c, &count)) in [64, 128, 256, 512].iter().zip(blocks).enumerate() {
        for block in 0..count {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let p = format!("layer{}.{block}", stage + 1);
            let cout = c * expansion;
            // (name, input channels, output channels, kernel, stride, padding) of the main branch
            let convs: Vec<(usize, usize, usize, usize, usize)> = if bottleneck {
                vec![(cin, c, 1, 1, 0), (c, c, 3, stride, 1), (c, cout, 1, 1, 0)]
            } else {
                vec![(cin, c, 3, stride, 1), (c, c, 3, 1, 1)]
            };
            let mut a = x;
            for (k, &(ci, co, ks, st, pad)) in convs.iter().enumerate() {
                a = g
                    .add(
                        &format!("{p}.conv{}", k + 1),
                        conv_nb(&mut rng, ci, co, ks, st, pad),
                        a,
                    )
                    .unwrap();
                a = g.add(&format!("{p}.bn{}", k + 1), bn(&mut rng, co), a).unwrap();
                if k + 1 < convs.len() {
                    a = g.add(&format!("{p}.relu{}", k + 1), Relu, a).unwrap();
                }
            }
            let identity = if stride != 1 || cin != cout {
                let d = g
                    .add(
                        &format!("{p}.downsample.0"),
                        conv_nb(&mut rng, cin, cout, 1, stride, 0),
                        x,
                    )
                    .unwrap();
                g.add(&format!("{p}.downsample.1"), bn(&mut rng, cout), d)
                    .unwrap()
            } else {
                x
            };
            let s = g.merge(&format!("{p}.add"), Add::new(), &[a, identity]).unwrap();
            x = g.add(&format!("{p}.relu_out"), Relu, s).unwrap();
            cin = cout;
        }
    }
    let pool = g.add("avgpool", AvgPool2d::global(), x).unwrap();
    let flat = g.add("flatten", Flatten, pool).unwrap();
    let scale = (3.0 / cin as f32).sqrt();
    let w: Array2<f32> = rng.array(&[1000, cin], scale).into_dimensionality().unwrap();
    let b: Array1<f32> = rng.array(&[1000], 0.05).into_dimensionality().unwrap();
    let fc = g.add("fc", Dense::new(w, Some(b)).unwrap(), flat).unwrap();
    g.build(fc).unwrap().merge_batch_norm().unwrap()
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

/// bpnet-lite 1.1.0's `BPNet(n_filters, n_layers)` with its count head, as `CountWrapper`
/// explains it: `iconv` (kernel 21), `n_layers` pre-activation residual blocks
/// `x + conv_d(relu(x))` with kernel 3 and dilation `2^i`, a ReLU, the mean over
/// `[trimming − 37, length − trimming + 37)` and a dense layer to one output. ChromBPNet's
/// size is `bpnet(512, 8, 2114, 557)`. Seeded random weights.
pub fn bpnet(filters: usize, layers: usize, length: usize, trimming: usize) -> Network<f32> {
    let mut rng = Rng::new(11);
    let conv1d = |rng: &mut Rng, cin: usize, cout: usize, k: usize, d: usize| {
        let scale = (1.0 / (cin * k) as f32).sqrt();
        let w = rng.array(&[cout, cin, k], scale).into_dimensionality().unwrap();
        let b: Array1<f32> = rng.array(&[cout], 0.05).into_dimensionality().unwrap();
        let pad = d * (k - 1) / 2;
        Conv1d::new(w, Some(b), Conv1dConfig::default().pads(pad, pad).dilation(d)).unwrap()
    };
    let mut g = GraphBuilder::new(&[4, length]).unwrap();
    let mut x = g
        .add("iconv", conv1d(&mut rng, 4, filters, 21, 1), g.input())
        .unwrap();
    for i in 1..=layers {
        let a = g.add(&format!("rrelus.{i}"), Relu, x).unwrap();
        let c = g
            .add(
                &format!("rconvs.{i}"),
                conv1d(&mut rng, filters, filters, 3, 1 << i),
                a,
            )
            .unwrap();
        x = g.merge(&format!("add.{i}"), Add::new(), &[x, c]).unwrap();
    }
    let x = g.add("irelu", Relu, x).unwrap();
    let (start, end) = (trimming.saturating_sub(37), (length - trimming + 37).min(length));
    let cropped = g.add("crop", Narrow::new(1, start, end - start), x).unwrap();
    let mean = g.add("mean", AvgPool1d::global(), cropped).unwrap();
    let flat = g.add("flatten", Flatten, mean).unwrap();
    let w: Array2<f32> = rng
        .array(&[1, filters], (3.0 / filters as f32).sqrt())
        .into_dimensionality()
        .unwrap();
    let b: Array1<f32> = rng.array(&[1], 0.05).into_dimensionality().unwrap();
    let out = g.add("linear", Dense::new(w, Some(b)).unwrap(), flat).unwrap();
    g.build(out).unwrap()
}

/// `n` random one-hot DNA sequences `[n, 4, length]`.
pub fn one_hot(n: usize, length: usize, seed: u64) -> ArrayD<f32> {
    let mut rng = Rng::new(seed);
    let mut x = ArrayD::<f32>::zeros(IxDyn(&[n, 4, length]));
    for s in 0..n {
        for p in 0..length {
            let base = (((rng.uniform() + 1.0) * 2.0) as usize).min(3);
            x[[s, base, p]] = 1.0;
        }
    }
    x
}

/// A vision transformer of torchvision's `vit_b_16` shape when called as
/// `vit(224, 16, 768, 12, 12, 3072, 1000)`: `conv_proj` patch embedding, a class token,
/// positional embeddings, `blocks` pre-LN encoder blocks (multi-head attention with the
/// `1/√d` scale folded into the query, GELU MLP), a final layer norm and the class token's
/// head. Seeded random weights (the speed does not depend on them).
#[allow(clippy::too_many_arguments)]
pub fn vit(
    image: usize,
    patch: usize,
    dim: usize,
    blocks: usize,
    heads: usize,
    mlp: usize,
    classes: usize,
) -> Network<f32> {
    let mut rng = Rng::new(21);
    let grid = image / patch;
    let tokens = grid * grid + 1;
    let d = dim / heads;
    let mut g = GraphBuilder::<f32>::new(&[3, image, image]).unwrap();
    let dense =
        |g: &mut GraphBuilder<f32>, rng: &mut Rng, name: &str, cin: usize, cout: usize, scale: f32, x| {
            let s = (3.0 / cin as f32).sqrt() * scale;
            let w: Array2<f32> = rng.array(&[cout, cin], s).into_dimensionality().unwrap();
            let b: Array1<f32> = rng.array(&[cout], 0.05 * scale).into_dimensionality().unwrap();
            g.add(name, Dense::new(w, Some(b)).unwrap(), x).unwrap()
        };
    let norm = |g: &mut GraphBuilder<f32>, rng: &mut Rng, name: &str, x| {
        let w: Array1<f32> = rng
            .array(&[dim], 0.2)
            .mapv(|v| v + 1.0)
            .into_dimensionality()
            .unwrap();
        let b: Array1<f32> = rng.array(&[dim], 0.05).into_dimensionality().unwrap();
        g.add(name, LayerNorm::new(&[dim], Some(w), Some(b), 1e-6).unwrap(), x)
            .unwrap()
    };
    let s = (3.0 / (3 * patch * patch) as f32).sqrt();
    let w = rng
        .array(&[dim, 3, patch, patch], s)
        .into_dimensionality()
        .unwrap();
    let b: Array1<f32> = rng.array(&[dim], 0.05).into_dimensionality().unwrap();
    let config = Conv2dConfig {
        stride: (patch, patch),
        ..Conv2dConfig::default()
    };
    let x = g
        .add("conv_proj", Conv2d::new(w, Some(b), config).unwrap(), g.input())
        .unwrap();
    let x = g.add("flatten", Reshape::new(&[dim, grid * grid]), x).unwrap();
    let x = g.add("tokens", Permute::new(&[1, 0]).unwrap(), x).unwrap();
    let cls = g.constant("class_token", rng.array(&[1, 1, dim], 0.02)).unwrap();
    let x = g.merge("concat", Concat::new(0), &[cls, x]).unwrap();
    let pos = g
        .constant("encoder.pos_embedding", rng.array(&[1, tokens, dim], 0.02))
        .unwrap();
    let mut x = g.merge("encoder.pos", Add::new(), &[x, pos]).unwrap();
    for i in 0..blocks {
        let pre = format!("encoder.layers.{i}");
        let h = norm(&mut g, &mut rng, &format!("{pre}.ln_1"), x);
        let sa = format!("{pre}.self_attention");
        let q = dense(
            &mut g,
            &mut rng,
            &format!("{sa}.q"),
            dim,
            dim,
            1.0 / (d as f32).sqrt(),
            h,
        );
        let k = dense(&mut g, &mut rng, &format!("{sa}.k"), dim, dim, 1.0, h);
        let v = dense(&mut g, &mut rng, &format!("{sa}.v"), dim, dim, 1.0, h);
        let split = |g: &mut GraphBuilder<f32>, name: &str, id, perm: &[usize]| {
            let r = g
                .add(
                    &format!("{sa}.{name}.heads"),
                    Reshape::new(&[tokens, heads, d]),
                    id,
                )
                .unwrap();
            g.add(&format!("{sa}.{name}.perm"), Permute::new(perm).unwrap(), r)
                .unwrap()
        };
        let (q, k, v) = (
            split(&mut g, "q", q, &[1, 0, 2]),
            split(&mut g, "k", k, &[1, 2, 0]),
            split(&mut g, "v", v, &[1, 0, 2]),
        );
        let scores = g.merge(&format!("{sa}.scores"), MatMul::new(), &[q, k]).unwrap();
        let probs = g.add(&format!("{sa}.softmax"), Softmax::new(2), scores).unwrap();
        let ctx = g
            .merge(&format!("{sa}.context"), MatMul::new(), &[probs, v])
            .unwrap();
        let ctx = g
            .add(&format!("{sa}.merge"), Permute::new(&[1, 0, 2]).unwrap(), ctx)
            .unwrap();
        let ctx = g
            .add(&format!("{sa}.flat"), Reshape::new(&[tokens, dim]), ctx)
            .unwrap();
        let a = dense(&mut g, &mut rng, &format!("{sa}.out_proj"), dim, dim, 1.0, ctx);
        x = g.merge(&format!("{pre}.add_1"), Add::new(), &[x, a]).unwrap();
        let h = norm(&mut g, &mut rng, &format!("{pre}.ln_2"), x);
        let h = dense(&mut g, &mut rng, &format!("{pre}.mlp.0"), dim, mlp, 1.0, h);
        let h = g.add(&format!("{pre}.mlp.1"), Gelu::new(), h).unwrap();
        let h = dense(&mut g, &mut rng, &format!("{pre}.mlp.3"), mlp, dim, 1.0, h);
        x = g.merge(&format!("{pre}.add_2"), Add::new(), &[x, h]).unwrap();
    }
    let x = norm(&mut g, &mut rng, "encoder.ln", x);
    let x = g.add("cls", Narrow::new(0, 0, 1), x).unwrap();
    let x = g.add("cls.flat", Reshape::new(&[dim]), x).unwrap();
    let out = dense(&mut g, &mut rng, "heads.head", dim, classes, 1.0, x);
    g.build(out).unwrap()
}
