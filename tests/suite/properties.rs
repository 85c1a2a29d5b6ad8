//! Invariants of LRP over random small networks (proptest).
//!
//! Networks are drawn as an architecture (an MLP's widths, or a CNN's convolutions, pools
//! and dense head) plus a seed from which every weight and input in [-1, 1] is generated, so
//! a failing case prints everything needed to rebuild it.

use crate::common;

use common::Rng;
use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use relevance::{
    Affine, Attribution, Category, Composite, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig,
    Dense, Flatten, Float, Layer, Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox,
    LrpZPlus, MaxPool2d, Network, Options, Relu, Rule, RuleSet, Seed, Selector, Step, Target,
};

// The seeded RNG (`Rng`) lives in tests/suite/common.

// ---------------------------------------------------------------------------------------------
// Random networks.

#[derive(Debug, Clone)]
struct ConvSpec {
    out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    /// (kernel, stride, padding) of a max-pool after the ReLU.
    pool: Option<(usize, usize, usize)>,
}

#[derive(Debug, Clone)]
enum Arch {
    /// Widths from input to output: Dense, ReLU, ..., Dense.
    Mlp(Vec<usize>),
    /// [Conv, ReLU, (MaxPool)]*, Flatten, (Dense, ReLU), Dense.
    Cnn {
        input: [usize; 3],
        convs: Vec<ConvSpec>,
        hidden: Option<usize>,
        classes: usize,
    },
}

#[derive(Debug, Clone)]
struct Spec {
    arch: Arch,
    seed: u64,
    batch: usize,
}

fn conv_spec() -> impl Strategy<Value = ConvSpec> {
    (
        1usize..4,
        1usize..4,
        1usize..3,
        0usize..2,
        1usize..3,
        prop::option::of((1usize..4, 1usize..3, 0usize..2)),
    )
        .prop_map(|(out, kernel, stride, padding, dilation, pool)| ConvSpec {
            out,
            kernel,
            stride,
            padding,
            dilation,
            pool,
        })
}

fn arch() -> impl Strategy<Value = Arch> {
    prop_oneof![
        prop::collection::vec(1usize..7, 2..5).prop_map(Arch::Mlp),
        (
            (1usize..3, 4usize..9, 4usize..9),
            prop::collection::vec(conv_spec(), 1..3),
            prop::option::of(2usize..6),
            1usize..5,
        )
            .prop_map(|((c, h, w), convs, hidden, classes)| Arch::Cnn {
                input: [c, h, w],
                convs,
                hidden,
                classes,
            }),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (arch(), any::<u64>(), 1usize..4).prop_map(|(arch, seed, batch)| Spec { arch, seed, batch })
}

/// A weight or input value in [-1, 1], rounded to f32 so that the f32 and the f64 network
/// hold exactly the same numbers.
fn draw<F: Float>(rng: &mut Rng) -> F {
    F::lit(rng.uniform(-1.0, 1.0) as f32 as f64)
}

fn dense<F: Float>(rng: &mut Rng, n_in: usize, n_out: usize, bias: bool) -> Box<dyn Layer<F>> {
    let w = ndarray::Array2::from_shape_fn((n_out, n_in), |_| draw(rng));
    let b = ndarray::Array1::from_shape_fn(n_out, |_| draw(rng));
    Box::new(Dense::new(w, bias.then_some(b)).unwrap())
}

/// Builds the network of `spec`, with or without biases.
fn build<F: Float>(spec: &Spec, bias: bool) -> Network<F> {
    build_with_pools(spec, bias).0
}

/// Builds the network of `spec` (in `F`, from the same draws whatever `F`) with or without
/// biases, and lists its max-pools by layer index. The weights do not depend on `bias`: a
/// network without biases is the same network with its biases removed.
fn build_with_pools<F: Float>(spec: &Spec, bias: bool) -> (Network<F>, Vec<(usize, MaxPool2d)>) {
    let mut rng = Rng::new(spec.seed);
    let mut layers: Vec<Box<dyn Layer<F>>> = Vec::new();
    let mut pools = Vec::new();
    match &spec.arch {
        Arch::Mlp(widths) => {
            for k in 0..widths.len() - 1 {
                if k > 0 {
                    layers.push(Box::new(Relu));
                }
                layers.push(dense(&mut rng, widths[k], widths[k + 1], bias));
            }
            (Network::new(&widths[..1], layers).unwrap(), pools)
        }
        Arch::Cnn {
            input,
            convs,
            hidden,
            classes,
        } => {
            let mut shape = input.to_vec();
            for cs in convs {
                let make = |rng: &mut Rng, k: usize, d: usize| {
                    let w = ndarray::Array4::from_shape_fn((cs.out, shape[0], k, k), |_| draw(rng));
                    let b = ndarray::Array1::from_shape_fn(cs.out, |_| draw(rng));
                    let cfg = Conv2dConfig::default()
                        .stride(cs.stride)
                        .padding(cs.padding)
                        .dilation(d);
                    Conv2d::new(w, bias.then_some(b), cfg).unwrap()
                };
                let mut conv = make(&mut rng, cs.kernel, cs.dilation);
                if Layer::<F>::output_shape(&conv, &shape).is_err() {
                    conv = make(&mut rng, 1, 1); // the kernel did not fit: a 1×1 always does
                }
                shape = Layer::<F>::output_shape(&conv, &shape).unwrap();
                layers.push(Box::new(conv));
                layers.push(Box::new(Relu));
                if let Some((k, s, p)) = cs.pool {
                    if let Ok(pool) = MaxPool2d::new((k, k), (s, s), (p, p)) {
                        if let Ok(next) = Layer::<F>::output_shape(&pool, &shape) {
                            shape = next;
                            pools.push((layers.len(), pool));
                            layers.push(Box::new(pool));
                        }
                    }
                }
            }
            layers.push(Box::new(Flatten));
            let mut width: usize = shape.iter().product();
            if let Some(h) = hidden {
                layers.push(dense(&mut rng, width, *h, bias));
                layers.push(Box::new(Relu));
                width = *h;
            }
            layers.push(dense(&mut rng, width, *classes, bias));
            (Network::new(input, layers).unwrap(), pools)
        }
    }
}

fn input<F: Float>(spec: &Spec, net: &Network<F>) -> ArrayD<F> {
    let mut shape = vec![spec.batch];
    shape.extend_from_slice(net.input_shape());
    let mut rng = Rng::new(spec.seed ^ 0xA5A5_5A5A);
    ArrayD::from_shape_fn(IxDyn(&shape), |_| draw(&mut rng))
}

fn classes<F: Float>(net: &Network<F>) -> usize {
    net.output_shape().iter().product()
}

fn target<F: Float>(spec: &Spec, net: &Network<F>) -> usize {
    (spec.seed % classes(net) as u64) as usize
}

fn keep() -> Options {
    Options {
        keep_layers: true,
        ..Options::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison helpers.

fn max_abs<F: Float>(a: &ArrayD<F>) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.as_f64().abs()))
}

/// `Σ|a|` per sample.
fn abs_sum_per_sample<F: Float>(a: &ArrayD<F>) -> Vec<f64> {
    a.axis_iter(Axis(0))
        .map(|s| s.iter().map(|v| v.as_f64().abs()).sum())
        .collect()
}

/// Elementwise `|got − want| ≤ rel·(|want| + scale)`.
fn close<F: Float, G: Float>(
    got: &ArrayD<F>,
    want: &ArrayD<G>,
    rel: f64,
    scale: f64,
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.shape(), want.shape(), "{}: shapes", what);
    for (k, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        let (g, w) = (g.as_f64(), w.as_f64());
        prop_assert!(
            (g - w).abs() <= rel * (w.abs() + scale),
            "{}: element {}: got {:e}, want {:e}",
            what,
            k,
            g,
            w
        );
    }
    Ok(())
}

/// Every layer's relevance conserves the starting total, per sample, to `rel` of the largest
/// `Σ|R|` on the way.
fn assert_conserves<F: Float>(a: &Attribution<F>, rel: f64, what: &str) -> Result<(), TestCaseError> {
    let layers = a.layers.as_ref().expect("kept layers");
    let n = a.total.len();
    let mut scale = vec![0.0f64; n];
    for l in layers {
        for (s, v) in scale.iter_mut().zip(abs_sum_per_sample(l)) {
            *s = s.max(v);
        }
    }
    for (s, sc) in scale.iter().enumerate() {
        let total = a.total[s].as_f64();
        let tol = rel * sc.max(total.abs()).max(f64::MIN_POSITIVE);
        prop_assert!(
            a.delta[s].as_f64().abs() <= tol,
            "{}: sample {}: delta {:e}, total {:e}",
            what,
            s,
            a.delta[s].as_f64(),
            total
        );
        for (k, l) in layers.iter().enumerate() {
            let sum = l.index_axis(Axis(0), s).sum().as_f64();
            prop_assert!(
                (sum - total).abs() <= tol,
                "{}: sample {}: layer {} sums to {:e}, total {:e}",
                what,
                s,
                k,
                sum,
                total
            );
        }
    }
    Ok(())
}

fn all_rules(low: &ArrayD<f64>, high: &ArrayD<f64>) -> Vec<(&'static str, Box<dyn RuleSet<f64>>)> {
    vec![
        ("Lrp0", Box::new(Lrp0)),
        ("LrpEpsilon", Box::new(LrpEpsilon::default())),
        ("LrpGamma", Box::new(LrpGamma::default())),
        ("LrpAlphaBeta", Box::new(LrpAlphaBeta::default())),
        ("LrpZPlus", Box::new(LrpZPlus::new())),
        (
            "LrpZBox",
            Box::new(LrpZBox::new(low.clone(), high.clone()).unwrap()),
        ),
        ("LrpFlat", Box::new(LrpFlat::new())),
        ("LrpWSquare", Box::new(LrpWSquare::new())),
        ("epsilon_plus", Box::new(Composite::epsilon_plus())),
        ("epsilon_plus_flat", Box::new(Composite::epsilon_plus_flat())),
        (
            "epsilon_alpha2_beta1",
            Box::new(Composite::epsilon_alpha2_beta1()),
        ),
        (
            "epsilon_gamma_box",
            Box::new(Composite::epsilon_gamma_box(low.clone(), high.clone()).unwrap()),
        ),
        (
            "layered",
            Box::new(Composite::layered(low.clone(), high.clone()).unwrap()),
        ),
    ]
}

/// A rule set by name, in f64 and in f32.
type RulePair = (&'static str, Box<dyn RuleSet<f64>>, Box<dyn RuleSet<f32>>);

fn unit_bounds() -> (ArrayD<f64>, ArrayD<f64>) {
    (
        ArrayD::from_elem(IxDyn(&[]), -1.0),
        ArrayD::from_elem(IxDyn(&[]), 1.0),
    )
}

/// The parameters of every affine layer, copied.
fn parameters<F: Float>(net: &Network<F>) -> Vec<(ArrayD<F>, Option<ndarray::Array1<F>>)> {
    net.nodes()
        .iter()
        .filter_map(|n| n.affine())
        .map(|a| (a.weight().to_owned(), a.bias().map(|b| b.to_owned())))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (a), (g) LRP-0 without biases conserves relevance exactly, at every layer; the kept
    /// layers start at the input relevance and end at the starting relevance.
    #[test]
    fn lrp0_conserves_without_biases(spec in spec()) {
        let net = build::<f64>(&spec, false);
        let x = input(&spec, &net);
        let c = target(&spec, &net);
        let a = net.attribute_with(&x, &Target::Class(c), &Lrp0, keep()).unwrap();
        assert_conserves(&a, 1e-9, "LRP-0")?;

        let layers = a.layers.as_ref().unwrap();
        prop_assert_eq!(layers.len(), net.nodes().len() + 1);
        prop_assert_eq!(&layers[0], &a.relevance);
        for (l, shape) in layers.iter().zip(net.shapes()) {
            prop_assert_eq!(&l.shape()[1..], &shape[..]);
        }
        // layers[L] is the starting relevance: the target logit, zero elsewhere
        let out = net.forward(&x).unwrap();
        prop_assert_eq!(&a.output, &out);
        let mut start = ArrayD::zeros(out.raw_dim());
        for s in 0..spec.batch {
            start[[s, c]] = out[[s, c]];
            prop_assert_eq!(a.total[s], out[[s, c]]);
        }
        prop_assert_eq!(&layers[net.nodes().len()], &start);
        // delta is the starting total minus the input relevance, per sample
        for s in 0..spec.batch {
            let sum = a.relevance.index_axis(Axis(0), s).sum();
            prop_assert!((a.delta[s] - (a.total[s] - sum)).abs() <= 1e-12 * (1.0 + sum.abs()));
        }
    }

    /// (b) LRP-0 with the default (logit) seed equals gradient × input on ReLU networks,
    /// biases included.
    #[test]
    fn lrp0_is_gradient_times_input(spec in spec()) {
        let net = build::<f64>(&spec, true);
        let x = input(&spec, &net);
        let c = target(&spec, &net);
        let a = net.attribute_with(&x, &Target::Class(c), &Lrp0, keep()).unwrap();
        let g = net.gradient(&x, &Target::Class(c)).unwrap();
        prop_assert_eq!(g.shape(), x.shape());
        let gx = &g * &x;
        let scale = a.layers.as_ref().unwrap().iter().map(max_abs).fold(max_abs(&gx), f64::max);
        close(&a.relevance, &gx, 1e-9, scale, "LRP-0 vs gradient × input")?;

        // the same with per-sample targets
        let targets: Vec<usize> = (0..spec.batch).map(|s| (c + s) % classes(&net)).collect();
        let a = net.attribute(&x, &Target::PerSample(targets.clone()), &Lrp0).unwrap();
        let g = net.gradient(&x, &Target::PerSample(targets)).unwrap();
        let gx = &g * &x;
        close(&a.relevance, &gx, 1e-9, max_abs(&gx).max(max_abs(&a.relevance)), "per-sample targets")?;
    }

    /// (c) γ = 0 is LRP-0 (with stabiliser 0) and LRP-ε (with the same stabiliser): the
    /// sign split then only splits z into Σa⁺w + Σa⁻w + b, which changes rounding only.
    #[test]
    fn gamma_zero_is_lrp0(spec in spec()) {
        let net = build::<f64>(&spec, true);
        let x = input(&spec, &net);
        let t = Target::Class(target(&spec, &net));
        let a0 = net.attribute_with(&x, &t, &Lrp0, keep()).unwrap();
        let scale = a0.layers.as_ref().unwrap().iter().map(max_abs).fold(0.0, f64::max);
        let ag = net.attribute(&x, &t, &LrpGamma::with_stabilizer(0.0, 0.0).unwrap()).unwrap();
        close(&ag.relevance, &a0.relevance, 1e-9, scale, "Gamma(0, stabilizer 0) vs Lrp0")?;

        let ae = net.attribute(&x, &t, &LrpEpsilon::new(1e-6).unwrap()).unwrap();
        let ag = net.attribute(&x, &t, &LrpGamma::new(0.0).unwrap()).unwrap();
        close(&ag.relevance, &ae.relevance, 1e-9, scale, "Gamma(0) vs Epsilon(1e-6)")?;
        // ZPlus is αβ with α = 1, β = 0
        let az = net.attribute(&x, &t, &LrpZPlus::new()).unwrap();
        let ab = net.attribute(&x, &t, &LrpAlphaBeta::new(1.0, 0.0).unwrap()).unwrap();
        close(&az.relevance, &ab.relevance, 1e-12, max_abs(&ab.relevance), "ZPlus vs α1β0")?;
    }

    /// (d) z^B on the first affine layer and LRP-0 above conserve relevance without biases
    /// (stabiliser 0 for exactness; inputs lie inside the box, so z^B's denominators are
    /// positive).
    #[test]
    fn zbox_first_conserves(spec in spec()) {
        let net = build::<f64>(&spec, false);
        let x = input(&spec, &net);
        let t = Target::Class(target(&spec, &net));
        let mut rng = Rng::new(spec.seed ^ 7);
        let low: ArrayD<f64> = rng.array(net.input_shape(), -2.0, -1.0);
        let high: ArrayD<f64> = rng.array(net.input_shape(), 1.0, 2.0);
        let rules = Composite::new(Lrp0).with_first(LrpZBox::with_stabilizer(low, high, 0.0).unwrap());
        let a = net.attribute_with(&x, &t, &rules, keep()).unwrap();
        assert_conserves(&a, 1e-9, "ZBox first + LRP-0")?;
        // scalar bounds broadcast
        let (low, high) = unit_bounds();
        let rules = Composite::new(Lrp0).with_first(LrpZBox::with_stabilizer(low, high, 0.0).unwrap());
        let a = net.attribute_with(&x, &t, &rules, keep()).unwrap();
        assert_conserves(&a, 1e-9, "ZBox first (scalar bounds) + LRP-0")?;
    }

    /// (d) On its own layer z^B conserves even with biases (the bias cancels): Σ R_in =
    /// Σ_j R_j z_j / stab(z_j) with z = Wx − W⁺l − W⁻h, and exactly Σ R_j for stabiliser 0.
    #[test]
    fn zbox_conserves_at_its_layer_with_biases(spec in spec()) {
        let net = build::<f64>(&spec, true);
        let x = input(&spec, &net);
        let layer = net.nodes()[0].affine().expect("the first layer is affine");
        let out = layer.forward(x.view()).unwrap();
        let mut rng = Rng::new(spec.seed ^ 11);
        let r: ArrayD<f64> = rng.array(out.shape(), -1.0, 1.0);
        let step = Step::new(0, x.view(), out.view(), r.view());
        let low: ArrayD<f64> = rng.array(net.input_shape(), -2.0, -1.0);
        let high: ArrayD<f64> = rng.array(net.input_shape(), 1.0, 2.0);
        let lb = low.broadcast(x.raw_dim()).unwrap().to_owned();
        let hb = high.broadcast(x.raw_dim()).unwrap().to_owned();
        let w = layer.weight();
        let z = layer.apply_with(x.view(), w.view()).unwrap()
            - layer.apply_with(lb.view(), w.mapv(|v| v.max(0.0)).view()).unwrap()
            - layer.apply_with(hb.view(), w.mapv(|v| v.min(0.0)).view()).unwrap();
        for eps in [0.0, 1e-6, 0.1] {
            let rule = LrpZBox::with_stabilizer(low.clone(), high.clone(), eps).unwrap();
            let r_in = rule.affine(layer, &step).unwrap();
            for s in 0..spec.batch {
                let rs = r.index_axis(Axis(0), s);
                let zs = z.index_axis(Axis(0), s);
                // outputs whose window lies in the zero padding have z_j = 0 and lose R_j
                let want: f64 = rs.iter().zip(zs.iter())
                    .map(|(&rj, &zj)| match zj {
                        0.0 => 0.0,
                        z if z > 0.0 => rj * z / (z + eps),
                        z => rj * z / (z - eps),
                    })
                    .sum();
                let got = r_in.index_axis(Axis(0), s).sum();
                let scale: f64 = r_in.index_axis(Axis(0), s).iter().map(|v| v.abs()).sum::<f64>()
                    + rs.iter().map(|v| v.abs()).sum::<f64>();
                prop_assert!(
                    (got - want).abs() <= 1e-9 * scale,
                    "eps {}: sum {:e}, want {:e}",
                    eps,
                    got,
                    want
                );
                if eps == 0.0 {
                    let kept: f64 = rs
                        .iter()
                        .zip(zs.iter())
                        .filter(|&(_, &zj)| zj != 0.0)
                        .map(|(&rj, _)| rj)
                        .sum();
                    prop_assert!((got - kept).abs() <= 1e-9 * scale);
                }
            }
        }
    }

    /// (e) Attribution changes nothing in the network, and gives the same answer twice.
    #[test]
    fn network_unchanged_by_attribution(spec in spec()) {
        let net = build::<f64>(&spec, true);
        let x = input(&spec, &net);
        let t = Target::Class(target(&spec, &net));
        let before = net.forward(&x).unwrap();
        let params = parameters(&net);
        let (low, high) = unit_bounds();
        for (name, rules) in all_rules(&low, &high) {
            let a1 = net.attribute(&x, &t, rules.as_ref()).unwrap();
            prop_assert_eq!(&net.forward(&x).unwrap(), &before, "{}: forward changed", name);
            prop_assert!(parameters(&net) == params, "{}: parameters changed", name);
            let a2 = net.attribute(&x, &t, rules.as_ref()).unwrap();
            prop_assert_eq!(&a1.relevance, &a2.relevance, "{}: not deterministic", name);
            prop_assert!(a1.relevance.iter().all(|v| v.is_finite()), "{}: non-finite relevance", name);
            prop_assert_eq!(&a1.output, &before);
        }
        let _ = net.gradient(&x, &t).unwrap();
        prop_assert_eq!(&net.forward(&x).unwrap(), &before);
    }

    /// The samples of a batch do not interact: a batch attributes as its samples one by one.
    #[test]
    fn batch_is_per_sample(spec in spec()) {
        let net = build::<f64>(&spec, true);
        let x = input(&spec, &net);
        let c = target(&spec, &net);
        let (low, high) = unit_bounds();
        for (name, rules) in all_rules(&low, &high) {
            let a = net.attribute(&x, &Target::Class(c), rules.as_ref()).unwrap();
            for s in 0..spec.batch {
                let xs = x.index_axis(Axis(0), s).insert_axis(Axis(0)).to_owned();
                let one = net.attribute(&xs, &Target::Class(c), rules.as_ref()).unwrap();
                let want = a.relevance.index_axis(Axis(0), s).insert_axis(Axis(0)).to_owned();
                close(&one.relevance, &want, 1e-12, max_abs(&want), name)?;
            }
        }
    }

    /// Every rule is linear in the starting relevance: the one-hot seed times the logit
    /// gives the logit seed, and an explicit relevance equals the class target it encodes.
    #[test]
    fn seeds_are_consistent(spec in spec()) {
        let net = build::<f64>(&spec, true);
        let x = input(&spec, &net);
        let c = target(&spec, &net);
        let out = net.forward(&x).unwrap();
        let (low, high) = unit_bounds();
        for (name, rules) in all_rules(&low, &high) {
            let logit = net.attribute(&x, &Target::Class(c), rules.as_ref()).unwrap();
            let one_hot = net.attribute_with(&x, &Target::Class(c), rules.as_ref(), Options {
                seed: Seed::OneHot,
                ..Options::default()
            }).unwrap();
            let mut scaled = one_hot.relevance.clone();
            for (s, mut lane) in scaled.axis_iter_mut(Axis(0)).enumerate() {
                lane.mapv_inplace(|v| v * out[[s, c]]);
            }
            close(&scaled, &logit.relevance, 1e-9, max_abs(&logit.relevance), name)?;
            let mut r = ArrayD::zeros(out.raw_dim());
            for s in 0..spec.batch {
                r[[s, c]] = out[[s, c]];
            }
            let given = net.attribute(&x, &Target::Relevance(r), rules.as_ref()).unwrap();
            prop_assert_eq!(&given.relevance, &logit.relevance, "{}: Target::Relevance", name);
        }
    }

    /// (f) `apply_transpose` is the adjoint of `apply_with` for a dense layer, with a
    /// substituted weight: ⟨A_w x, y⟩ = ⟨x, A_wᵀ y⟩.
    #[test]
    fn dense_transpose_is_adjoint(
        n_in in 1usize..9,
        n_out in 1usize..9,
        batch in 1usize..4,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let w0 = rng.array::<f64>(&[n_out, n_in], -1.0, 1.0).into_dimensionality().unwrap();
        let layer = Dense::new(w0, None).unwrap();
        let w: ArrayD<f64> = rng.array(&[n_out, n_in], -1.0, 1.0);
        let x: ArrayD<f64> = rng.array(&[batch, n_in], -1.0, 1.0);
        let y: ArrayD<f64> = rng.array(&[batch, n_out], -1.0, 1.0);
        check_adjoint(&layer, &x, &y, &w)?;
    }

    /// (f) The same for a convolution with random stride, padding and dilation (each per
    /// axis), including strides that skip input rows and windows that lie in the padding.
    #[test]
    fn conv_transpose_is_adjoint(
        (c, h, w, o) in (1usize..4, 1usize..9, 1usize..9, 1usize..4),
        (kh, kw) in (1usize..4, 1usize..4),
        stride in (1usize..4, 1usize..4),
        padding in (0usize..3, 0usize..3),
        dilation in (1usize..4, 1usize..4),
        batch in 1usize..4,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let cfg = Conv2dConfig { stride, padding, dilation, ..Conv2dConfig::default() };
        let layer = Conv2d::new(
            rng.array::<f64>(&[o, c, kh, kw], -1.0, 1.0).into_dimensionality().unwrap(),
            Some(rng.array::<f64>(&[o], -1.0, 1.0).into_dimensionality().unwrap()),
            cfg,
        ).unwrap();
        let out_shape = Layer::<f64>::output_shape(&layer, &[c, h, w]);
        prop_assume!(out_shape.is_ok());
        let mut y_shape = vec![batch];
        y_shape.extend(out_shape.unwrap());
        let wt: ArrayD<f64> = rng.array(&[o, c, kh, kw], -1.0, 1.0);
        let x: ArrayD<f64> = rng.array(&[batch, c, h, w], -1.0, 1.0);
        let y: ArrayD<f64> = rng.array(&y_shape, -1.0, 1.0);
        check_adjoint(&layer, &x, &y, &wt)?;
        // and the layer's gradient is the transpose with its own weight
        let out = layer.forward(x.view()).unwrap();
        let step = Step::new(0, x.view(), out.view(), y.view());
        let g = layer.gradient(&step, y.view()).unwrap();
        let t = layer.apply_transpose(y.view(), layer.weight(), &[c, h, w]).unwrap();
        prop_assert_eq!(g, t);
    }

    /// (f) The same for a transposed convolution (weight `[in, out / groups, kh, kw]`) with
    /// random stride, padding, dilation, output padding and groups; its gradient is its
    /// transpose with its own weight.
    #[test]
    fn conv_transpose2d_is_adjoint(
        (c, h, w, per) in (1usize..3, 1usize..6, 1usize..6, 1usize..3),
        groups in 1usize..3,
        (kh, kw) in (1usize..4, 1usize..4),
        stride in (1usize..4, 1usize..4),
        padding in (0usize..3, 0usize..3),
        dilation in (1usize..3, 1usize..3),
        output_padding in (0usize..3, 0usize..3),
        batch in 1usize..3,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let (cin, cout) = (c * groups, per * groups);
        let cfg = ConvTranspose2dConfig {
            stride,
            padding,
            dilation,
            groups,
            output_padding: (output_padding.0 % stride.0, output_padding.1 % stride.1),
            ..ConvTranspose2dConfig::default()
        };
        let layer = ConvTranspose2d::new(
            rng.array::<f64>(&[cin, per, kh, kw], -1.0, 1.0).into_dimensionality().unwrap(),
            Some(rng.array::<f64>(&[cout], -1.0, 1.0).into_dimensionality().unwrap()),
            cfg,
        ).unwrap();
        let out_shape = Layer::<f64>::output_shape(&layer, &[cin, h, w]);
        prop_assume!(out_shape.is_ok());
        let mut y_shape = vec![batch];
        y_shape.extend(out_shape.unwrap());
        let wt: ArrayD<f64> = rng.array(&[cin, per, kh, kw], -1.0, 1.0);
        let x: ArrayD<f64> = rng.array(&[batch, cin, h, w], -1.0, 1.0);
        let y: ArrayD<f64> = rng.array(&y_shape, -1.0, 1.0);
        check_adjoint(&layer, &x, &y, &wt)?;
        let out = layer.forward(x.view()).unwrap();
        let step = Step::new(0, x.view(), out.view(), y.view());
        let g = layer.gradient(&step, y.view()).unwrap();
        let t = layer.apply_transpose(y.view(), layer.weight(), &[cin, h, w]).unwrap();
        prop_assert_eq!(g, t);
    }

    /// (h) f32 and f64 agree on the same network (weights and input rounded to f32 first),
    /// for rules whose denominators are bounded away from zero. Cases where a pre-activation
    /// is within 1e-4 of zero, or a max-pool picks different winners, are skipped: there the
    /// two precisions may legitimately take different branches.
    #[test]
    fn f32_agrees_with_f64(spec in spec()) {
        let (net32, pools) = build_with_pools::<f32>(&spec, true);
        let net64 = build::<f64>(&spec, true);
        let x32 = input::<f32>(&spec, &net32);
        let x64 = input::<f64>(&spec, &net64);
        prop_assert!(x32.iter().zip(x64.iter()).all(|(a, b)| *a as f64 == *b));
        for ((w32, _), (w64, _)) in parameters(&net32).iter().zip(&parameters(&net64)) {
            prop_assert!(w32.iter().zip(w64.iter()).all(|(a, b)| *a as f64 == *b));
        }
        let t32 = net32.trace(&x32).unwrap();
        let t64 = net64.trace(&x64).unwrap();
        for (k, layer) in net64.nodes().iter().enumerate() {
            if layer.category().is_affine() {
                prop_assume!(t64.activations[k + 1].iter().all(|v| v.abs() >= 1e-4));
            }
        }
        for (k, pool) in &pools {
            let (_, i32_) = pool.argmax(&t32.activations[*k].view()).unwrap();
            let (_, i64_) = pool.argmax(&t64.activations[*k].view()).unwrap();
            prop_assume!(i32_ == i64_);
        }
        let y64 = t64.output();
        close(t32.output(), y64, 1e-4, max_abs(y64), "forward")?;
        let c = target(&spec, &net64);
        let rules: Vec<RulePair> = vec![
            ("ZPlus", Box::new(LrpZPlus::new()), Box::new(LrpZPlus::new())),
            ("AlphaBeta", Box::new(LrpAlphaBeta::default()), Box::new(LrpAlphaBeta::default())),
            ("Flat", Box::new(LrpFlat::new()), Box::new(LrpFlat::new())),
            ("WSquare", Box::new(LrpWSquare::new()), Box::new(LrpWSquare::new())),
            (
                "Epsilon(0.25)",
                Box::new(LrpEpsilon::new(0.25).unwrap()),
                Box::new(LrpEpsilon::new(0.25).unwrap()),
            ),
            (
                "Epsilon(0.25) + ZPlus on conv",
                Box::new(Composite::new(LrpEpsilon::new(0.25).unwrap())
                    .with(Selector::Category(Category::Convolution), LrpZPlus::new())),
                Box::new(Composite::new(LrpEpsilon::new(0.25).unwrap())
                    .with(Selector::Category(Category::Convolution), LrpZPlus::new())),
            ),
        ];
        for (name, r64, r32) in rules {
            let a64 = net64.attribute(&x64, &Target::Class(c), r64.as_ref()).unwrap();
            let a32 = net32.attribute(&x32, &Target::Class(c), r32.as_ref()).unwrap();
            close(&a32.relevance, &a64.relevance, 1e-4, max_abs(&a64.relevance), name)?;
        }
    }
}

/// ⟨apply_with(x, w), y⟩ = ⟨x, apply_transpose(y, w, x.shape()[1..])⟩, to 1e-10 of the sum of
/// the absolute products.
fn check_adjoint(
    layer: &dyn Affine<f64>,
    x: &ArrayD<f64>,
    y: &ArrayD<f64>,
    w: &ArrayD<f64>,
) -> Result<(), TestCaseError> {
    let ax = layer.apply_with(x.view(), w.view()).unwrap();
    prop_assert_eq!(ax.shape(), y.shape());
    let aty = layer
        .apply_transpose(y.view(), w.view(), &x.shape()[1..])
        .unwrap();
    prop_assert_eq!(aty.shape(), x.shape());
    let lhs: f64 = ax.iter().zip(y.iter()).map(|(a, b)| a * b).sum();
    let rhs: f64 = x.iter().zip(aty.iter()).map(|(a, b)| a * b).sum();
    let abs_w = w.mapv(f64::abs);
    let scale: f64 = layer
        .apply_with(x.mapv(f64::abs).view(), abs_w.view())
        .unwrap()
        .iter()
        .zip(y.iter())
        .map(|(a, b)| a * b.abs())
        .sum();
    prop_assert!(
        (lhs - rhs).abs() <= 1e-10 * scale.max(1e-300),
        "⟨Ax, y⟩ = {:e}, ⟨x, Aᵀy⟩ = {:e}",
        lhs,
        rhs
    );
    Ok(())
}
