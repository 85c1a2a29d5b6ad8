//! The 1-D layers (`Conv1d`, `MaxPool1d`, `AvgPool1d`, `Softplus`, `Exp`, cropping with
//! `Narrow`) on random sequence networks (proptest, f64):
//!
//! * a 1-D network and the same network written with 2-D layers of height 1 give the same
//!   outputs and the same relevance under LRP-0, ε, γ, α2β1, z⁺ and DeepLIFT Rescale;
//! * LRP-0 without biases conserves relevance, DeepLIFT Rescale sums to `f(x) − f(x̄)`.

use crate::common::bounds::DEEPLIFT_PROPERTY_GAP;
use ndarray::{Array1, Array2, Array3, ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use relevance::{
    Add, AvgPool1d, AvgPool2d, Baseline, BatchNorm2d, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, DeepLift,
    Dense, Elu, Exp, Flatten, GraphBuilder, Layer, Lrp0, LrpAlphaBeta, LrpEpsilon, LrpGamma, LrpZPlus,
    MaxPool1d, MaxPool2d, Narrow, Network, NodeId, Relu, RuleSet, Sigmoid, Softplus, Target,
};

/// 1-D and 2-D results agree to this, relative to the largest magnitude.
const SAME_AS_2D: f64 = 1e-12;

/// SplitMix64: one proptest `u64` fixes a case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
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

/// A node of a random sequence network, with its parameters.
#[derive(Clone, Debug)]
enum Kind {
    /// weight, bias, stride, pads, "same", dilation, groups
    Conv(
        Array3<f64>,
        Option<Array1<f64>>,
        usize,
        (usize, usize),
        bool,
        usize,
        usize,
    ),
    Act(usize),
    Bn(Array1<f64>, Array1<f64>),
    /// kernel, stride, padding
    MaxPool(usize, usize, usize),
    AvgPool(usize, usize, usize),
    /// start, length
    Crop(usize, usize),
    Add,
    Global,
    Flatten,
    Dense(Array2<f64>, Option<Array1<f64>>),
}

/// Activations drawn: ReLU, softplus, exp, sigmoid, ELU.
const ACTIVATIONS: [usize; 5] = [0, 1, 2, 3, 4];

/// The activations with `f(0) = 0` (ReLU, ELU). LRP conserves relevance only where no
/// relevance reaches a value that is exactly zero. Exact zeros are common: a ReLU's
/// negative half, the padded ends of a convolution whose taps see only padding. A softplus,
/// exp or sigmoid (`f(0) ≠ 0`) behind them passes relevance back to those zeros, and the
/// sum, pool or convolution that made them has `z_j = 0`, where LRP-0 drops `R_j`
/// (zennit's stabilised rules drop it too, `0 · R_j / 1e-6`).
const ZERO_PRESERVING: [usize; 2] = [0, 4];

fn activation(k: usize) -> Box<dyn Layer<f64>> {
    match k {
        0 => Box::new(Relu),
        1 => Box::new(Softplus::default()),
        2 => Box::new(Exp),
        3 => Box::new(Sigmoid),
        _ => Box::new(Elu::default()),
    }
}

#[derive(Clone, Debug)]
struct Graph {
    input: [usize; 2],
    nodes: Vec<(Kind, Vec<usize>)>,
}

impl Graph {
    /// A random network on `[C, L]` inputs: convolutions (strided, padded, "same", dilated,
    /// grouped), activations, batch norm, pools, crops and residual sums, then a global
    /// average, a flatten and a dense layer of 3 outputs.
    fn random(rng: &mut Rng, steps: usize, biases: bool) -> Graph {
        Graph::random_with(rng, steps, biases, &ACTIVATIONS)
    }

    /// As [`Graph::random`], with activations drawn from `activations`.
    fn random_with(rng: &mut Rng, steps: usize, biases: bool, activations: &[usize]) -> Graph {
        let (c0, l0) = (1 + rng.below(4), 12 + rng.below(12));
        let mut g = Graph {
            input: [c0, l0],
            nodes: Vec::new(),
        };
        // (channels, length) per value
        let mut shapes = vec![(c0, l0)];
        let bias =
            |rng: &mut Rng, n: usize| biases.then(|| Array1::from_shape_simple_fn(n, || 0.2 * rng.unit()));
        let push =
            |g: &mut Graph, shapes: &mut Vec<(usize, usize)>, kind: Kind, inputs: Vec<usize>, shape| {
                g.nodes.push((kind, inputs));
                shapes.push(shape);
                shapes.len() - 1
            };
        let mut last = 0;
        let mut exp_used = false;
        for _ in 0..steps {
            let (c, l) = shapes[last];
            last = match rng.below(8) {
                0 | 1 => {
                    let cout = 1 + rng.below(4);
                    let groups = if c % 2 == 0 && cout % 2 == 0 && rng.below(2) == 0 {
                        2
                    } else {
                        1
                    };
                    let k = 1 + rng.below(5);
                    let dilation = 1 + rng.below(3);
                    let span = dilation * (k - 1) + 1;
                    let same = rng.below(2) == 0;
                    let stride = if same { 1 } else { 1 + rng.below(2) };
                    let pads = if same {
                        (0, 0)
                    } else {
                        (rng.below(3), rng.below(3))
                    };
                    if !same && l + pads.0 + pads.1 < span {
                        continue;
                    }
                    let lo = if same {
                        l
                    } else {
                        (l + pads.0 + pads.1 - span) / stride + 1
                    };
                    let w: Array3<f64> = rng
                        .array(&[cout, c / groups, k], 1.5 / ((k * c / groups) as f64).sqrt())
                        .into_dimensionality()
                        .unwrap();
                    let b = bias(rng, cout);
                    let kind = Kind::Conv(w, b, stride, pads, same, dilation, groups);
                    push(&mut g, &mut shapes, kind, vec![last], (cout, lo))
                }
                2 | 3 => {
                    let mut a = activations[rng.below(activations.len())];
                    if a == 2 && exp_used {
                        // exp of exp overflows f64 (a correct NonFiniteResult error, not a
                        // case of the property); one exp per network
                        a = 1;
                    }
                    exp_used |= a == 2;
                    push(&mut g, &mut shapes, Kind::Act(a), vec![last], (c, l))
                }
                4 => {
                    let scale = Array1::from_shape_simple_fn(c, || 0.5 + rng.unit().abs());
                    let shift =
                        Array1::from_shape_simple_fn(c, || if biases { 0.2 * rng.unit() } else { 0.0 });
                    push(&mut g, &mut shapes, Kind::Bn(scale, shift), vec![last], (c, l))
                }
                5 => {
                    let k = 2 + rng.below(2);
                    let (s, p) = (1 + rng.below(2), rng.below(k / 2 + 1));
                    if l + 2 * p < k {
                        continue;
                    }
                    let lo = (l + 2 * p - k) / s + 1;
                    let kind = if rng.below(2) == 0 {
                        Kind::MaxPool(k, s, p)
                    } else {
                        Kind::AvgPool(k, s, p)
                    };
                    push(&mut g, &mut shapes, kind, vec![last], (c, lo))
                }
                6 if l > 4 => {
                    let len = l - 1 - rng.below(3);
                    let start = rng.below(l - len + 1);
                    push(&mut g, &mut shapes, Kind::Crop(start, len), vec![last], (c, len))
                }
                _ => {
                    // a residual sum with an earlier value of the same shape (or itself)
                    let same: Vec<usize> = (0..shapes.len()).filter(|&u| shapes[u] == (c, l)).collect();
                    let u = same[rng.below(same.len())];
                    push(&mut g, &mut shapes, Kind::Add, vec![last, u], (c, l))
                }
            };
        }
        let c = shapes[last].0;
        let pooled = push(&mut g, &mut shapes, Kind::Global, vec![last], (c, 1));
        let flat = push(&mut g, &mut shapes, Kind::Flatten, vec![pooled], (c, 1));
        let w: Array2<f64> = rng
            .array(&[3, c], 1.5 / (c as f64).sqrt())
            .into_dimensionality()
            .unwrap();
        let b = bias(rng, 3);
        push(&mut g, &mut shapes, Kind::Dense(w, b), vec![flat], (3, 1));
        g
    }

    /// The network with 1-D layers, or (`as_2d`) with 2-D layers of height 1.
    fn build(&self, as_2d: bool) -> Network<f64> {
        let [c, l] = self.input;
        let input: Vec<usize> = if as_2d { vec![c, 1, l] } else { vec![c, l] };
        let mut g = GraphBuilder::<f64>::new(&input).unwrap();
        let mut ids: Vec<NodeId> = vec![g.input()];
        for (k, (kind, inputs)) in self.nodes.iter().enumerate() {
            let name = format!("n{k}");
            let layer: Box<dyn Layer<f64>> = match kind {
                Kind::Conv(w, b, stride, pads, same, dilation, groups) => {
                    let mut c1 = Conv1dConfig::default()
                        .stride(*stride)
                        .dilation(*dilation)
                        .groups(*groups);
                    c1 = if *same { c1.same() } else { c1.pads(pads.0, pads.1) };
                    if as_2d {
                        let (p0, p1) = c1.pads_for(w.shape()[2]);
                        let c2 = Conv2dConfig {
                            stride: (1, *stride),
                            padding: (0, p0),
                            dilation: (1, *dilation),
                            groups: *groups,
                            padding_end: Some((0, p1)),
                        };
                        Box::new(Conv2d::new(w.clone().insert_axis(Axis(2)), b.clone(), c2).unwrap())
                    } else {
                        Box::new(Conv1d::new(w.clone(), b.clone(), c1).unwrap())
                    }
                }
                Kind::Act(a) => activation(*a),
                Kind::Bn(s, t) => Box::new(BatchNorm2d::from_scale_shift(s.clone(), t.clone()).unwrap()),
                Kind::MaxPool(k, s, p) if as_2d => {
                    Box::new(MaxPool2d::new((1, *k), (1, *s), (0, *p)).unwrap())
                }
                Kind::MaxPool(k, s, p) => Box::new(MaxPool1d::new(*k, *s, *p).unwrap()),
                Kind::AvgPool(k, s, p) if as_2d => {
                    Box::new(AvgPool2d::new((1, *k), (1, *s), (0, *p)).unwrap())
                }
                Kind::AvgPool(k, s, p) => Box::new(AvgPool1d::new(*k, *s, *p).unwrap()),
                Kind::Crop(start, len) => Box::new(Narrow::new(if as_2d { 2 } else { 1 }, *start, *len)),
                Kind::Global if as_2d => Box::new(AvgPool2d::global()),
                Kind::Global => Box::new(AvgPool1d::global()),
                Kind::Flatten => Box::new(Flatten),
                Kind::Dense(w, b) => Box::new(Dense::new(w.clone(), b.clone()).unwrap()),
                Kind::Add => {
                    let ins: Vec<NodeId> = inputs.iter().map(|&u| ids[u]).collect();
                    ids.push(g.merge(&name, Add::new(), &ins).unwrap());
                    continue;
                }
            };
            ids.push(g.add_boxed(&name, layer, ids[inputs[0]]).unwrap());
        }
        g.build(*ids.last().unwrap()).unwrap()
    }
}

/// Largest |a − b| over the largest |b| (at least `floor`).
fn rel(a: &ArrayD<f64>, b: &ArrayD<f64>, floor: f64) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b.iter())
        .fold(0.0_f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// `[N, C, L]` → `[N, C, 1, L]`.
fn lift(a: &ArrayD<f64>) -> ArrayD<f64> {
    a.clone().insert_axis(Axis(2))
}

/// `[N, C, 1, L]` → `[N, C, L]`.
fn lower(a: &ArrayD<f64>) -> ArrayD<f64> {
    a.index_axis(Axis(2), 0).to_owned()
}

fn lrp_rules() -> Vec<(&'static str, Box<dyn RuleSet<f64>>)> {
    vec![
        ("LRP-0", Box::new(Lrp0)),
        ("epsilon", Box::new(LrpEpsilon::new(0.1).unwrap())),
        ("gamma", Box::new(LrpGamma::new(0.25).unwrap())),
        ("alpha2beta1", Box::new(LrpAlphaBeta::new(2.0, 1.0).unwrap())),
        ("z-plus", Box::new(LrpZPlus::new())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    /// A 1-D network and its 2-D twin of height 1 agree on outputs, LRP and DeepLIFT.
    #[test]
    fn one_d_equals_two_d_of_height_one(seed in any::<u64>(), steps in 1usize..9) {
        let mut rng = Rng(seed);
        let graph = Graph::random(&mut rng, steps, true);
        let (n1, n2) = (graph.build(false), graph.build(true));
        let [c, l] = graph.input;
        let x = rng.array(&[2, c, l], 1.0);
        let y1 = n1.forward(&x).unwrap();
        let y2 = n2.forward(&lift(&x)).unwrap();
        prop_assert!(rel(&y1, &y2, 1e-12) <= SAME_AS_2D);
        let target = Target::PerSample(vec![0, 2]);
        for (name, rule) in lrp_rules() {
            let a1 = n1.attribute(&x, &target, rule.as_ref()).unwrap();
            let a2 = n2.attribute(&lift(&x), &target, rule.as_ref()).unwrap();
            let d = rel(&a1.relevance, &lower(&a2.relevance), 1e-12);
            prop_assert!(d <= SAME_AS_2D, "{name}: {d:e}");
        }
        let refs = rng.array(&[3, c, l], 1.0);
        for (kind, b1, b2) in [
            ("zero", Baseline::Zero, Baseline::Zero),
            ("distribution", Baseline::Distribution(refs.clone()), Baseline::Distribution(lift(&refs))),
        ] {
            let d1 = n1.deeplift(&x, &target, &DeepLift::rescale(), &b1).unwrap();
            let d2 = n2.deeplift(&lift(&x), &target, &DeepLift::rescale(), &b2).unwrap();
            let d = rel(&d1.attribution, &lower(&d2.attribution), 1e-12);
            prop_assert!(d <= SAME_AS_2D, "DeepLIFT Rescale, {kind} baseline: {d:e}");
        }
    }

    /// LRP-0 on a bias-free sequence network gives the input all the starting relevance,
    /// when its activations keep zero at zero (see [`ZERO_PRESERVING`]).
    #[test]
    fn lrp0_conserves_on_sequences(seed in any::<u64>(), steps in 1usize..9) {
        let mut rng = Rng(seed);
        let net = Graph::random_with(&mut rng, steps, false, &ZERO_PRESERVING).build(false);
        let [c, l] = [net.input_shape()[0], net.input_shape()[1]];
        let x = rng.array(&[2, c, l], 1.0);
        let a = net.attribute(&x, &Target::PerSample(vec![1, 2]), &Lrp0).unwrap();
        for s in 0..2 {
            let scale = a.relevance.index_axis(Axis(0), s).iter().fold(a.total[s].abs(), |m, v| m + v.abs());
            prop_assert!(a.delta[s].abs() <= 1e-10 * scale.max(1e-12), "sample {s}: delta {} of {}", a.delta[s], a.total[s]);
        }
    }

    /// DeepLIFT Rescale sums to `f(x) − f(x̄)` on sequence networks, for one-hot inputs
    /// against per-sample and distribution references.
    #[test]
    fn deeplift_sums_to_delta_on_sequences(seed in any::<u64>(), steps in 1usize..9) {
        let mut rng = Rng(seed);
        let net = Graph::random(&mut rng, steps, true).build(false);
        let [c, l] = [net.input_shape()[0], net.input_shape()[1]];
        let mut one_hot = |n: usize| {
            let mut a = ArrayD::<f64>::zeros(IxDyn(&[n, c, l]));
            for s in 0..n {
                for p in 0..l {
                    a[[s, rng.below(c), p]] = 1.0;
                }
            }
            a
        };
        let x = one_hot(2);
        let baselines = [
            ("per-sample", Baseline::PerSample(one_hot(2))),
            ("distribution", Baseline::Distribution(one_hot(3))),
        ];
        for (kind, baseline) in &baselines {
            let d = net.deeplift(&x, &Target::PerSample(vec![2, 0]), &DeepLift::rescale(), baseline).unwrap();
            for s in 0..2 {
                let scale = d.attribution.index_axis(Axis(0), s).iter().fold(d.total[s].abs(), |m, v| m + v.abs());
                prop_assert!(
                    d.delta[s].abs() <= DEEPLIFT_PROPERTY_GAP * scale.max(1e-3),
                    "{kind} baseline, sample {s}: delta {} of {}", d.delta[s], d.total[s]
                );
            }
        }
    }
}

/// PyTorch's `padding="same"`: the odd zero after the input; stride 2 refused.
#[test]
fn same_padding_and_its_limits() {
    let conv = Conv1d::<f64>::new(Array3::ones((1, 1, 4)), None, Conv1dConfig::default().same()).unwrap();
    assert_eq!(conv.output_shape(&[1, 7]).unwrap(), vec![1, 7]);
    assert_eq!(conv.config().pads_for(4), (1, 2));
    let strided = Conv1d::<f64>::new(
        Array3::ones((1, 1, 3)),
        None,
        Conv1dConfig::default().same().stride(2),
    );
    assert!(matches!(strided, Err(relevance::Error::InvalidLayer { .. })));
    assert!(matches!(
        conv.output_shape(&[1, 1, 7]),
        Err(relevance::Error::Rank { .. })
    ));
    assert!(Layer::<f64>::forward(&conv, ArrayD::zeros(IxDyn(&[1, 1, 1, 7])).view()).is_err());
}
