//! Invariants over random directed acyclic networks (proptest, f64): residual sums, concats,
//! squeeze-and-excitation gates, grouped convolutions, batch norm, average and max pools and
//! every activation, in random topological orders.
//!
//! * LRP-0 without biases conserves relevance exactly through sums, concats, pools and gates;
//! * LRP-0 equals gradient × input on ReLU graphs (biases included);
//! * DeepLIFT's summation-to-delta holds to 1e-10 for Rescale, RevealCancel and the default,
//!   against zero, shared, per-sample and distribution baselines;
//! * the result does not depend on the order in which independent branches were added;
//! * a chain built node by node gives the bits of `Network::new`.

use crate::common::bounds::DEEPLIFT_PROPERTY_GAP;
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use proptest::prelude::*;
use relevance::{
    Add, AvgPool2d, Baseline, BatchNorm2d, Clip, Composite, Concat, Conv2d, Conv2dConfig, DeepLift, Dense,
    Elu, Flatten, Gelu, GraphBuilder, HardSigmoid, HardSwish, Layer, LeakyRelu, Lrp0, LrpEpsilon, LrpGamma,
    MaxPool2d, Mul, Network, NodeId, Options, Relu, Selector, Sigmoid, Silu, Tanh, Target,
};

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

/// What a node of a random graph computes (with its parameters, so that it can be built
/// twice).
#[derive(Clone, Debug)]
enum Kind {
    Conv(Array4<f64>, Option<Array1<f64>>, usize, usize),
    Act(usize),
    Bn(Array1<f64>, Array1<f64>),
    AvgPool,
    MaxPool,
    Global,
    Add,
    Concat,
    Mul,
    Flatten,
    Dense(Array2<f64>, Option<Array1<f64>>),
}

/// The activations drawn (0 is ReLU).
const ACTIVATIONS: usize = 10;

fn activation(k: usize) -> Box<dyn Layer<f64>> {
    match k {
        0 => Box::new(Relu),
        1 => Box::new(Sigmoid),
        2 => Box::new(Tanh),
        3 => Box::new(LeakyRelu::new(0.1).unwrap()),
        4 => Box::new(Clip::relu6()),
        5 => Box::new(Silu),
        6 => Box::new(Elu::default()),
        7 => Box::new(Gelu::new()),
        8 => Box::new(HardSwish),
        _ => Box::new(HardSigmoid::default()),
    }
}

/// The activations with `f(0) = 0`: all but sigmoid and hard sigmoid.
const ZERO_AT_ZERO: [usize; 8] = [0, 2, 3, 4, 5, 6, 7, 8];

/// A random graph: nodes (kind, inputs as abstract values: 0 the input, k + 1 node k).
#[derive(Clone, Debug)]
struct Graph {
    input: Vec<usize>,
    nodes: Vec<(Kind, Vec<usize>)>,
}

/// What kinds of node a random graph may hold.
#[derive(Clone, Copy)]
struct Allow {
    biases: bool,
    relu_only: bool,
    /// Only activations with `f(0) = 0` (no sigmoid, hard sigmoid): LRP conserves only
    /// where no relevance reaches a value that is exactly zero, and a sigmoid behind a
    /// ReLU passes relevance back to the ReLU's exact zeros; a sum or pool of them has
    /// `z_j = 0`, where LRP-0 drops `R_j` (zennit's stabilised rules drop it too).
    zero_at_zero: bool,
    gates: bool,
    batch_norm: bool,
}

impl Graph {
    fn random(rng: &mut Rng, steps: usize, allow: Allow) -> Graph {
        const SIDE: usize = 5;
        let c0 = 1 + rng.below(3);
        let mut g = Graph {
            input: vec![c0, SIDE, SIDE],
            nodes: Vec::new(),
        };
        // per value: channels, and whether some node reads it
        let mut channels = vec![c0];
        let mut used = vec![false];
        let push = |g: &mut Graph,
                    channels: &mut Vec<usize>,
                    used: &mut Vec<bool>,
                    kind: Kind,
                    inputs: Vec<usize>,
                    c: usize| {
            for &u in &inputs {
                used[u] = true;
            }
            g.nodes.push((kind, inputs));
            channels.push(c);
            used.push(false);
            channels.len() - 1
        };
        let bias = |rng: &mut Rng, n: usize| {
            allow
                .biases
                .then(|| Array1::from_shape_simple_fn(n, || 0.2 * rng.unit()))
        };
        // values of the full image size (a gate's squeezed values are not)
        let mut full = vec![true];
        for _ in 0..steps {
            full.resize(channels.len(), true);
            let candidates: Vec<usize> = (0..channels.len()).filter(|&u| full[u]).collect();
            let v = candidates[rng.below(candidates.len())];
            let cv = channels[v];
            match rng.below(9) {
                0 | 1 => {
                    let cout = 1 + rng.below(4);
                    let groups = if cv % 2 == 0 && cout % 2 == 0 && rng.below(2) == 0 {
                        2
                    } else {
                        1
                    };
                    let w: Array4<f64> = rng
                        .array(
                            &[cout, cv / groups, 3, 3],
                            1.0 / (3.0 * (cv / groups) as f64).sqrt(),
                        )
                        .into_dimensionality()
                        .unwrap();
                    let b = bias(rng, cout);
                    push(
                        &mut g,
                        &mut channels,
                        &mut used,
                        Kind::Conv(w, b, groups, 1),
                        vec![v],
                        cout,
                    );
                }
                2 => {
                    let k = if allow.relu_only {
                        0
                    } else if allow.zero_at_zero {
                        ZERO_AT_ZERO[rng.below(ZERO_AT_ZERO.len())]
                    } else {
                        rng.below(ACTIVATIONS)
                    };
                    push(&mut g, &mut channels, &mut used, Kind::Act(k), vec![v], cv);
                }
                3 if allow.batch_norm => {
                    let scale = Array1::from_shape_simple_fn(cv, || 0.5 + rng.unit().abs());
                    let shift =
                        Array1::from_shape_simple_fn(
                            cv,
                            || if allow.biases { 0.2 * rng.unit() } else { 0.0 },
                        );
                    push(
                        &mut g,
                        &mut channels,
                        &mut used,
                        Kind::Bn(scale, shift),
                        vec![v],
                        cv,
                    );
                }
                4 => {
                    let same: Vec<usize> = candidates
                        .iter()
                        .copied()
                        .filter(|&u| channels[u] == cv && u != v)
                        .collect();
                    let u = if same.is_empty() {
                        v
                    } else {
                        same[rng.below(same.len())]
                    };
                    push(&mut g, &mut channels, &mut used, Kind::Add, vec![v, u], cv);
                }
                5 => {
                    let u = candidates[rng.below(candidates.len())];
                    let c = cv + channels[u];
                    if c <= 6 {
                        push(&mut g, &mut channels, &mut used, Kind::Concat, vec![v, u], c);
                    }
                }
                6 if allow.gates => {
                    // squeeze and excitation: x ⊙ σ(W·mean(x) + b)
                    let pooled = push(&mut g, &mut channels, &mut used, Kind::Global, vec![v], cv);
                    let w: Array4<f64> = rng.array(&[cv, cv, 1, 1], 1.0).into_dimensionality().unwrap();
                    let b = bias(rng, cv);
                    let fc = push(
                        &mut g,
                        &mut channels,
                        &mut used,
                        Kind::Conv(w, b, 1, 0),
                        vec![pooled],
                        cv,
                    );
                    let gate = push(&mut g, &mut channels, &mut used, Kind::Act(1), vec![fc], cv);
                    full.resize(channels.len(), false);
                    push(&mut g, &mut channels, &mut used, Kind::Mul, vec![v, gate], cv);
                }
                7 => {
                    push(&mut g, &mut channels, &mut used, Kind::AvgPool, vec![v], cv);
                }
                _ => {
                    push(&mut g, &mut channels, &mut used, Kind::MaxPool, vec![v], cv);
                }
            }
        }
        // every value nobody reads goes into the output: concatenated, flattened, dense
        let mut tails: Vec<usize> = (1..channels.len()).filter(|&v| !used[v]).collect();
        if tails.is_empty() {
            tails.push(0);
        }
        let mut last = tails[0];
        for &t in &tails[1..] {
            let c = channels[last] + channels[t];
            last = push(&mut g, &mut channels, &mut used, Kind::Concat, vec![last, t], c);
        }
        let flat = push(&mut g, &mut channels, &mut used, Kind::Flatten, vec![last], 0);
        let inp = channels[last] * SIDE * SIDE;
        let w: Array2<f64> = rng
            .array(&[3, inp], 1.5 / (inp as f64).sqrt())
            .into_dimensionality()
            .unwrap();
        let b = bias(rng, 3);
        push(&mut g, &mut channels, &mut used, Kind::Dense(w, b), vec![flat], 3);
        g
    }

    /// A random topological order of the nodes (Kahn's algorithm, random choice).
    fn shuffled_order(&self, rng: &mut Rng) -> Vec<usize> {
        let n = self.nodes.len();
        let mut done = vec![false; n + 1];
        done[0] = true;
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            let ready: Vec<usize> = (0..n)
                .filter(|&k| !done[k + 1] && self.nodes[k].1.iter().all(|&u| done[u]))
                .collect();
            let k = ready[rng.below(ready.len())];
            done[k + 1] = true;
            order.push(k);
        }
        order
    }

    /// The network, with nodes added in `order` (a topological order), node k named `n{k}`.
    fn build(&self, order: &[usize]) -> Network<f64> {
        let mut g = GraphBuilder::<f64>::new(&self.input).unwrap();
        let mut ids: Vec<Option<NodeId>> = vec![None; self.nodes.len() + 1];
        ids[0] = Some(g.input());
        for &k in order {
            let (kind, inputs) = &self.nodes[k];
            let ins: Vec<NodeId> = inputs
                .iter()
                .map(|&u| ids[u].expect("topological order"))
                .collect();
            let name = format!("n{k}");
            let layer: Box<dyn Layer<f64>> = match kind {
                Kind::Conv(w, b, groups, pad) => Box::new(
                    Conv2d::new(
                        w.clone(),
                        b.clone(),
                        Conv2dConfig::default().padding(*pad).groups(*groups),
                    )
                    .unwrap(),
                ),
                Kind::Act(a) => activation(*a),
                Kind::Bn(s, t) => Box::new(BatchNorm2d::from_scale_shift(s.clone(), t.clone()).unwrap()),
                Kind::AvgPool => Box::new(AvgPool2d::new((3, 3), (1, 1), (1, 1)).unwrap()),
                Kind::MaxPool => Box::new(MaxPool2d::new((3, 3), (1, 1), (1, 1)).unwrap()),
                Kind::Global => Box::new(AvgPool2d::global()),
                Kind::Flatten => Box::new(Flatten),
                Kind::Dense(w, b) => Box::new(Dense::new(w.clone(), b.clone()).unwrap()),
                Kind::Add => {
                    ids[k + 1] = Some(g.merge(&name, Add::new(), &ins).unwrap());
                    continue;
                }
                Kind::Concat => {
                    ids[k + 1] = Some(g.merge(&name, Concat::new(0), &ins).unwrap());
                    continue;
                }
                Kind::Mul => {
                    ids[k + 1] = Some(g.merge(&name, Mul::new(), &ins).unwrap());
                    continue;
                }
            };
            ids[k + 1] = Some(g.add_boxed(&name, layer, ins[0]).unwrap());
        }
        g.build(ids[self.nodes.len()].unwrap()).unwrap()
    }

    fn net(&self) -> Network<f64> {
        self.build(&(0..self.nodes.len()).collect::<Vec<_>>())
    }
}

fn input(rng: &mut Rng, net: &Network<f64>, n: usize) -> ArrayD<f64> {
    let mut shape = vec![n];
    shape.extend_from_slice(net.input_shape());
    rng.array(&shape, 1.0)
}

/// Largest |a − b| over the largest |b| (at least `floor`).
fn rel(a: &ArrayD<f64>, b: &ArrayD<f64>, floor: f64) -> f64 {
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b.iter())
        .fold(0.0_f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    /// LRP-0 on a bias-free graph gives the input exactly the starting relevance (with
    /// activations that keep zero at zero, see [`Allow::zero_at_zero`]).
    #[test]
    fn lrp0_conserves_without_biases(seed in any::<u64>(), steps in 2usize..10) {
        let mut rng = Rng(seed);
        let allow = Allow { biases: false, relu_only: false, zero_at_zero: true, gates: true, batch_norm: true };
        let net = Graph::random(&mut rng, steps, allow).net();
        let x = input(&mut rng, &net, 2);
        let a = net.attribute(&x, &Target::PerSample(vec![0, 2]), &Lrp0).unwrap();
        for s in 0..2 {
            let scale = a.relevance.index_axis(ndarray::Axis(0), s).iter().fold(a.total[s].abs(), |m, v| m + v.abs());
            prop_assert!(a.delta[s].abs() <= 1e-10 * scale, "sample {s}: delta {} of {}", a.delta[s], a.total[s]);
        }
    }

    /// On a ReLU graph with biases, LRP-0 (starting from the logit) is gradient × input.
    #[test]
    fn lrp0_is_gradient_times_input_on_relu_graphs(seed in any::<u64>(), steps in 2usize..10) {
        let mut rng = Rng(seed);
        let allow = Allow { biases: true, relu_only: true, zero_at_zero: true, gates: false, batch_norm: false };
        let net = Graph::random(&mut rng, steps, allow).net();
        let x = input(&mut rng, &net, 2);
        let target = Target::Class(1);
        let a = net.attribute(&x, &target, &Lrp0).unwrap();
        let g = net.gradient(&x, &target).unwrap();
        let d = rel(&a.relevance, &(&g * &x), 1e-12);
        prop_assert!(d < 1e-9, "deviation {d:e}");
    }

    /// DeepLIFT's attributions sum to f(x) − f(x̄), for every rule and every baseline kind:
    /// each case runs all twelve combinations on its graph.
    #[test]
    fn deeplift_sums_to_delta(seed in any::<u64>(), steps in 2usize..10) {
        let mut rng = Rng(seed);
        let allow = Allow { biases: true, relu_only: false, zero_at_zero: false, gates: true, batch_norm: true };
        let net = Graph::random(&mut rng, steps, allow).net();
        let x = input(&mut rng, &net, 2);
        let baselines = [
            ("zero", Baseline::Zero),
            ("shared", Baseline::Shared(input(&mut rng, &net, 1))),
            ("per-sample", Baseline::PerSample(input(&mut rng, &net, 2))),
            ("distribution", Baseline::Distribution(input(&mut rng, &net, 3))),
        ];
        let rules = [
            ("rescale", DeepLift::rescale()),
            ("reveal-cancel", DeepLift::reveal_cancel()),
            ("default", DeepLift::default()),
        ];
        for (rule_name, rule) in &rules {
            for (kind, baseline) in &baselines {
                let d = net.deeplift(&x, &Target::PerSample(vec![2, 0]), rule, baseline).unwrap();
                for s in 0..2 {
                    let scale = d.attribution.index_axis(ndarray::Axis(0), s).iter().fold(d.total[s].abs(), |m, v| m + v.abs());
                    prop_assert!(
                        d.delta[s].abs() <= DEEPLIFT_PROPERTY_GAP * scale.max(1e-3),
                        "{rule_name}, {kind} baseline, sample {s}: delta {} of {}", d.delta[s], d.total[s]
                    );
                }
            }
        }
    }

    /// Independent branches added in another order give the same explanation.
    #[test]
    fn branch_order_does_not_matter(seed in any::<u64>(), steps in 3usize..10) {
        let mut rng = Rng(seed);
        let allow = Allow { biases: true, relu_only: false, zero_at_zero: false, gates: true, batch_norm: true };
        let graph = Graph::random(&mut rng, steps, allow);
        let a = graph.net();
        let b = graph.build(&graph.shuffled_order(&mut rng));
        let x = input(&mut rng, &a, 2);
        let target = Target::Class(0);
        let rules = Composite::new(LrpEpsilon::new(0.1).unwrap())
            .with(Selector::Category(relevance::Category::Convolution), LrpGamma::default());
        let (ra, rb) = (a.attribute(&x, &target, &rules).unwrap(), b.attribute(&x, &target, &rules).unwrap());
        prop_assert!(rel(&ra.relevance, &rb.relevance, 1e-12) < 1e-12);
        let baseline = Baseline::Shared(input(&mut rng, &a, 1));
        let (da, db) = (
            a.deeplift(&x, &target, &DeepLift::default(), &baseline).unwrap(),
            b.deeplift(&x, &target, &DeepLift::default(), &baseline).unwrap(),
        );
        prop_assert!(rel(&da.attribution, &db.attribution, 1e-12) < 1e-12);
        // the per-node relevance agrees node by node, found by name
        let opts = Options { keep_layers: true, ..Options::default() };
        let (la, lb) = (
            a.attribute_with(&x, &target, &rules, opts).unwrap().layers.unwrap(),
            b.attribute_with(&x, &target, &rules, opts).unwrap().layers.unwrap(),
        );
        for (k, node) in a.nodes().iter().enumerate() {
            let j = b.node_index(node.name()).unwrap();
            prop_assert!(rel(&la[k + 1], &lb[j + 1], 1e-12) < 1e-12, "node {}", node.name());
        }
    }

    /// A chain added node by node is `Network::new`'s chain, bit for bit.
    #[test]
    fn chain_built_as_a_graph_is_the_chain(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let mut layers: Vec<Box<dyn Layer<f64>>> = Vec::new();
        let mut graph = Graph { input: vec![2, 5, 5], nodes: Vec::new() };
        let mut c = 2;
        for k in 0..3 + rng.below(3) {
            let kind = match rng.below(4) {
                0 => {
                    let cout = 1 + rng.below(3);
                    let w: Array4<f64> = rng.array(&[cout, c, 3, 3], 0.5).into_dimensionality().unwrap();
                    let b = Some(Array1::from_shape_simple_fn(cout, || 0.1 * rng.unit()));
                    c = cout;
                    Kind::Conv(w, b, 1, 1)
                }
                1 => Kind::Act(rng.below(ACTIVATIONS)),
                2 => Kind::AvgPool,
                _ => Kind::MaxPool,
            };
            graph.nodes.push((kind, vec![k]));
        }
        let n = graph.nodes.len();
        graph.nodes.push((Kind::Flatten, vec![n]));
        let w: Array2<f64> = rng.array(&[3, c * 25], 0.2).into_dimensionality().unwrap();
        graph.nodes.push((Kind::Dense(w, None), vec![n + 1]));
        let built = graph.net();
        for node in built.nodes() {
            let l = node.layer().unwrap();
            layers.push(match graph.nodes[node.name()[1..].parse::<usize>().unwrap()].0.clone() {
                Kind::Conv(w, b, _, _) => Box::new(Conv2d::new(w, b, Conv2dConfig::default().padding(1)).unwrap()),
                Kind::Act(a) => activation(a),
                Kind::AvgPool => Box::new(AvgPool2d::new((3, 3), (1, 1), (1, 1)).unwrap()),
                Kind::MaxPool => Box::new(MaxPool2d::new((3, 3), (1, 1), (1, 1)).unwrap()),
                Kind::Flatten => Box::new(Flatten),
                Kind::Dense(w, b) => Box::new(Dense::new(w, b).unwrap()),
                _ => unreachable!("{}", l.name()),
            });
        }
        let chain = Network::new(&[2, 5, 5], layers).unwrap();
        let x = input(&mut rng, &chain, 2);
        let bits = |a: &ArrayD<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let rules = Composite::epsilon_gamma_box(ArrayD::from_elem(IxDyn(&[]), -1.0), ArrayD::from_elem(IxDyn(&[]), 1.0)).unwrap();
        prop_assert_eq!(bits(&chain.attribute(&x, &Target::Class(2), &rules).unwrap().relevance),
                        bits(&built.attribute(&x, &Target::Class(2), &rules).unwrap().relevance));
        let dl = |n: &Network<f64>| n.deeplift(&x, &Target::Class(1), &DeepLift::default(), &Baseline::Zero).unwrap().attribution;
        prop_assert_eq!(bits(&dl(&chain)), bits(&dl(&built)));
    }
}
