//! Shared by the fixture tests: reading the JSON fixtures written by `tools/gen_*_fixtures.py`
//! (tensors as `{"shape": [...], "data": [...]}`, networks as ordered layer lists) and the
//! relative deviation used to compare against them.

#![allow(dead_code)] // each test crate uses its own subset

pub mod bounds;
pub mod fuzz;

use ndarray::{Array3, Array4, ArrayD, Ix1, Ix2, Ix4, IxDyn};
use relevance::{
    Category, Conv2d, Conv2dConfig, Dense, Flatten, Float, Layer, MaxPool2d, Network, Relu, Softmax,
};
use serde_json::Value;

/// `a.zip(b)` for two lists that must be as long as each other: a fixture list that is
/// shorter (or longer) than ours fails instead of being compared in part.
pub fn zip_exact<A, B>(a: A, b: B) -> std::iter::Zip<A::IntoIter, B::IntoIter>
where
    A: IntoIterator,
    B: IntoIterator,
    A::IntoIter: ExactSizeIterator,
    B::IntoIter: ExactSizeIterator,
{
    let (a, b) = (a.into_iter(), b.into_iter());
    assert_eq!(a.len(), b.len(), "lists of different lengths compared");
    a.zip(b)
}

/// Whether our resolved rule (by its name, `got`) at a node of `category` does what zennit
/// recorded there (`want`: `{"rule": name, parameters...}` or a bare name). At affine nodes
/// the rule and its parameters must be zennit's; elsewhere every LRP rule treats a node by
/// its class, as zennit's `layer_map_base` does (`Pass` at activations and batch norms,
/// `Norm` with the stabiliser 1e-6 — 0 for LRP-0 — at sums and average pools, the gradient
/// at max-pools and rearrangements), and the `Gradient` rule is the gradient everywhere.
/// An unknown zennit rule name fails the test.
pub fn zennit_rule_matches(want: &Value, got: &str, category: Category) -> bool {
    let rule = want
        .as_str()
        .or_else(|| want["rule"].as_str())
        .unwrap_or_else(|| panic!("{want}: no rule name"));
    let f = |key: &str| {
        want[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{want}: no number {key}"))
    };
    if !category.is_affine() {
        let ours = if got == "Gradient" {
            "gradient"
        } else {
            match category {
                Category::Activation | Category::BatchNorm => "pass",
                Category::Sum | Category::AvgPool => "norm",
                Category::MaxPool | Category::Reshape | Category::Softmax => "gradient",
                Category::Product => "signal_take_all",
                other => panic!("no zennit treatment known for {other:?}"),
            }
        };
        assert!(
            [
                "pass",
                "norm",
                "gradient",
                "epsilon",
                "gamma",
                "alphabeta",
                "zplus",
                "flat",
                "wsquare",
                "zbox"
            ]
            .contains(&rule),
            "unknown zennit rule {rule}"
        );
        return rule == ours && (rule != "norm" || f("stabilizer") == if got == "Lrp0" { 0.0 } else { 1e-6 });
    }
    match rule {
        "epsilon" if f("epsilon") == 0.0 => got == "Lrp0" || got == "LrpEpsilon(0e0)",
        "epsilon" => got == format!("LrpEpsilon({:e})", f("epsilon")),
        "gamma" => got == format!("LrpGamma({})", f("gamma")),
        "alphabeta" => got == format!("LrpAlphaBeta(alpha={}, beta={})", f("alpha"), f("beta")),
        "zplus" => got == format!("LrpZPlus(stabilizer={:e})", f("stabilizer")),
        "flat" => got == format!("LrpFlat(stabilizer={:e})", f("stabilizer")),
        "wsquare" => got == format!("LrpWSquare(stabilizer={:e})", f("stabilizer")),
        "zbox" => got == "LrpZBox",
        "gradient" => got == "Gradient",
        "pass" | "norm" => false,
        other => panic!("unknown zennit rule {other}"),
    }
}

/// Reads `tests/fixtures/{name}.json`.
pub fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("valid JSON")
}

/// A genomics fixture's sequences and references, given as base indices (`x` `[N][L]`,
/// `references` `[N][R][L]`, ACGT = 0..4): the indices, and the one-hot `[N, 4, L]` and
/// `[N, R, 4, L]` arrays.
#[allow(dead_code)] // not every feature set builds a test that reads one
pub fn one_hot_fixture(fx: &Value) -> (Vec<Vec<usize>>, Array3<f64>, Array4<f64>) {
    let indices = |v: &Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as usize)
            .collect()
    };
    let seqs: Vec<Vec<usize>> = fx["x"].as_array().unwrap().iter().map(indices).collect();
    let (n, l) = (seqs.len(), seqs[0].len());
    let x = Array3::from_shape_fn((n, 4, l), |(s, c, i)| f64::from(u8::from(seqs[s][i] == c)));
    let refs_idx: Vec<Vec<Vec<usize>>> = fx["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|per| per.as_array().unwrap().iter().map(indices).collect())
        .collect();
    let r = refs_idx[0].len();
    let refs = Array4::from_shape_fn((n, r, 4, l), |(s, k, c, i)| {
        f64::from(u8::from(refs_idx[s][k][i] == c))
    });
    (seqs, x, refs)
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

/// A fixture tensor.
pub fn tensor<F: Float>(v: &Value) -> ArrayD<F> {
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| F::lit(d.as_f64().unwrap()))
        .collect();
    ArrayD::from_shape_vec(IxDyn(&dims(&v["shape"])), data).unwrap()
}

/// A `[h, w]` pair.
pub fn pair(v: &Value) -> (usize, usize) {
    let a = v.as_array().unwrap();
    (a[0].as_u64().unwrap() as usize, a[1].as_u64().unwrap() as usize)
}

/// The fixture's network (`input_shape` and `layers`).
pub fn network<F: Float>(fx: &Value) -> Network<F> {
    let mut layers: Vec<Box<dyn Layer<F>>> = Vec::new();
    for l in fx["layers"].as_array().unwrap() {
        let bias = || {
            l.get("bias")
                .filter(|b| !b.is_null())
                .map(|b| tensor::<F>(b).into_dimensionality::<Ix1>().unwrap())
        };
        match l["type"].as_str().unwrap() {
            "dense" => {
                let w = tensor::<F>(&l["weight"]).into_dimensionality::<Ix2>().unwrap();
                layers.push(Box::new(Dense::new(w, bias()).unwrap()));
            }
            "conv2d" => {
                let w = tensor::<F>(&l["weight"]).into_dimensionality::<Ix4>().unwrap();
                let config = Conv2dConfig {
                    stride: pair(&l["stride"]),
                    padding: pair(&l["padding"]),
                    dilation: pair(&l["dilation"]),
                    ..Conv2dConfig::default()
                };
                layers.push(Box::new(Conv2d::new(w, bias(), config).unwrap()));
            }
            "relu" => layers.push(Box::new(Relu)),
            "softmax" => layers.push(Box::new(Softmax::new(l["axis"].as_u64().unwrap() as usize))),
            "flatten" => layers.push(Box::new(Flatten)),
            "maxpool2d" => layers.push(Box::new(
                MaxPool2d::new(pair(&l["kernel"]), pair(&l["stride"]), pair(&l["padding"])).unwrap(),
            )),
            other => panic!("unknown layer type {other}"),
        }
    }
    Network::new(&dims(&fx["input_shape"]), layers).unwrap()
}

/// Largest |got − want| divided by the largest |want| (relative to the array's scale).
pub fn rel_dev<F: Float>(got: &ArrayD<F>, want: &ArrayD<F>) -> f64 {
    assert_eq!(got.shape(), want.shape());
    let scale = want
        .iter()
        .fold(0.0_f64, |m, v| m.max(v.as_f64().abs()))
        .max(1e-300);
    got.iter()
        .zip(want.iter())
        .fold(0.0_f64, |m, (a, b)| m.max((a.as_f64() - b.as_f64()).abs()))
        / scale
}

/// A tiny seeded RNG (xorshift64*), so the tests need no extra dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// An array of the given shape, uniform in `[lo, hi)`.
    pub fn array<F: Float>(&mut self, shape: &[usize], lo: f64, hi: f64) -> ArrayD<F> {
        ArrayD::from_shape_fn(IxDyn(shape), |_| F::lit(self.uniform(lo, hi)))
    }
}

/// A fixture's graph network (`input_shape`, `nodes` in topological order, `output`), as
/// written by `tools/gen_graph_fixtures.py`: node names kept, inputs by name.
pub fn graph<F: Float>(fx: &Value) -> Network<F> {
    use relevance::{
        Add, AvgPool2d, BatchNorm2d, Clip, Concat, GraphBuilder, HardSigmoid, HardSwish, Identity, Mul,
        NodeId, Sigmoid, Silu, Tanh,
    };
    use std::collections::HashMap;
    let mut g = GraphBuilder::<F>::new(&dims(&fx["input_shape"])).unwrap();
    let mut ids: HashMap<String, NodeId> = HashMap::new();
    ids.insert("input".into(), g.input());
    for n in fx["nodes"].as_array().unwrap() {
        let name = n["name"].as_str().unwrap();
        let inputs: Vec<NodeId> = n["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| ids[i.as_str().unwrap()])
            .collect();
        let vec1 = |key: &str| tensor::<F>(&n[key]).into_dimensionality::<Ix1>().unwrap();
        let bias = || {
            n.get("bias")
                .filter(|b| !b.is_null())
                .map(|b| tensor::<F>(b).into_dimensionality::<Ix1>().unwrap())
        };
        let layer: Box<dyn Layer<F>> = match n["op"].as_str().unwrap() {
            "conv2d" => {
                let w = tensor::<F>(&n["weight"]).into_dimensionality::<Ix4>().unwrap();
                let config = Conv2dConfig {
                    stride: pair(&n["stride"]),
                    padding: pair(&n["padding"]),
                    dilation: pair(&n["dilation"]),
                    groups: n["groups"].as_u64().unwrap_or(1) as usize,
                    ..Conv2dConfig::default()
                };
                Box::new(Conv2d::new(w, bias(), config).unwrap())
            }
            "dense" => {
                let w = tensor::<F>(&n["weight"]).into_dimensionality::<Ix2>().unwrap();
                Box::new(Dense::new(w, bias()).unwrap())
            }
            "batchnorm" => Box::new(
                BatchNorm2d::new(
                    vec1("mean"),
                    vec1("var"),
                    vec1("weight"),
                    vec1("bias"),
                    n["eps"].as_f64().unwrap(),
                )
                .unwrap(),
            ),
            "relu" => Box::new(Relu),
            "relu6" => Box::new(Clip::relu6()),
            "sigmoid" => Box::new(Sigmoid),
            "tanh" => Box::new(Tanh),
            "silu" => Box::new(Silu),
            "hardsigmoid" => Box::new(HardSigmoid::default()),
            "hardswish" => Box::new(HardSwish),
            "identity" => Box::new(Identity),
            "flatten" => Box::new(Flatten),
            "maxpool2d" => Box::new(
                MaxPool2d::new(pair(&n["kernel"]), pair(&n["stride"]), pair(&n["padding"]))
                    .unwrap()
                    .with_ceil_mode(n["ceil_mode"].as_bool().unwrap_or(false)),
            ),
            "avgpool2d" => Box::new(
                AvgPool2d::new(pair(&n["kernel"]), pair(&n["stride"]), pair(&n["padding"]))
                    .unwrap()
                    .with_ceil_mode(n["ceil_mode"].as_bool().unwrap_or(false))
                    .with_count_include_pad(n["count_include_pad"].as_bool().unwrap_or(true)),
            ),
            "adaptive_avgpool2d" => Box::new(AvgPool2d::adaptive(pair(&n["output"])).unwrap()),
            "add" => {
                ids.insert(name.into(), g.merge(name, Add::new(), &inputs).unwrap());
                continue;
            }
            "mul" => {
                ids.insert(name.into(), g.merge(name, Mul::new(), &inputs).unwrap());
                continue;
            }
            "concat" => {
                let axis = n["axis"].as_u64().unwrap() as usize;
                ids.insert(name.into(), g.merge(name, Concat::new(axis), &inputs).unwrap());
                continue;
            }
            other => panic!("unknown node op {other}"),
        };
        assert_eq!(inputs.len(), 1, "node {name}: one input");
        ids.insert(name.into(), g.add_boxed(name, layer, inputs[0]).unwrap());
    }
    g.build(ids[fx["output"].as_str().unwrap()]).unwrap()
}

/// `data` with bits flipped at `flips` (positions modulo the length) and cut at `cut` (modulo
/// the length + 1): the mutations of the loaders' and decoders' fuzz tests.
pub fn mutate(mut data: Vec<u8>, flips: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let n = data.len();
    for &(pos, bit) in flips {
        data[pos % n] ^= 1 << bit;
    }
    if let Some(c) = cut {
        data.truncate(c % (n + 1));
    }
    data
}
