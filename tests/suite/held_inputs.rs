//! Held inputs (`GraphBuilder::held_input`, `Network::bind`): a BPNet with control tracks
//! built by hand from the weights of bpnet-lite 1.1.0's `BPNet(n_control_tracks=2)`
//! against PyTorch's forward pass and tangermeme 1.6.0's `deep_lift_shap(..., args=(X_ctl,))`
//! (count head) and bpnet-lite's `deep_lift_shap(ProfileWrapper(...), args=(X_ctl,))`
//! (profile head), from `tests/fixtures/bpnet_control_deep_lift_shap.json`
//! (`tools/gen_bpnet_control_fixtures.py`); and the API's errors and invariants.

use crate::common::{load, one_hot_fixture, rel_dev, tensor, Rng};
use ndarray::{array, s, Array1, Array2, Array3, Array4, ArrayD, Axis, Ix1, Ix2, Ix3, IxDyn};
use relevance::genomics::{deep_lift_shap, deep_lift_shap_profile, ProfileWeights, SequenceAttribution};
use relevance::{
    Add, AvgPool1d, Baseline, Category, Concat, Conv1d, Conv1dConfig, DeepLift, DeepLiftOptions, Dense,
    Error, Flatten, GraphBuilder, Log1p, Lrp0, LrpEpsilon, Method, Narrow, Network, NodeId, Options, Relu,
    Target,
};
use serde_json::Value;

/// Attributions and hypothetical contributions against tangermeme, f64, relative to the
/// largest magnitude (as `genomics.rs`).
const TANGERMEME_F64: f64 = 1e-9;

#[derive(Clone, Copy)]
enum Head {
    Count,
    Profile,
}

/// bpnet-lite 1.1.0's `BPNet.forward(X, X_ctl)` (`bpnetlite/bpnet.py`) as a graph with the
/// control tracks as the held input `x_ctl` `[n_ctl, L]`: the profile head (logits,
/// flattened) or the count head.
fn bpnet(fx: &Value, head: Head) -> Network<f64> {
    let cfg = &fx["config"];
    let get = |k: &str| cfg[k].as_u64().unwrap() as usize;
    let (n_layers, n_ctl, trimming, l) = (
        get("n_layers"),
        get("n_control_tracks"),
        get("trimming"),
        get("length"),
    );
    let weights = &fx["weights"];
    let conv = |name: &str, config: Conv1dConfig| {
        let w = tensor::<f64>(&weights[format!("{name}.weight")])
            .into_dimensionality::<Ix3>()
            .unwrap();
        let b = tensor::<f64>(&weights[format!("{name}.bias")])
            .into_dimensionality::<Ix1>()
            .unwrap();
        Conv1d::new(w, Some(b), config).unwrap()
    };
    let mut g = GraphBuilder::<f64>::new(&[4, l]).unwrap();
    let ctl = g.held_input("x_ctl", &[n_ctl, l]).unwrap();
    let c = g
        .add(
            "iconv",
            conv("iconv", Conv1dConfig::default().padding(10)),
            g.input(),
        )
        .unwrap();
    let mut x: NodeId = g.add("irelu", Relu, c).unwrap();
    for i in 0..n_layers {
        let d = 1 << (i + 1);
        let name = format!("rconvs.{i}");
        let c = g
            .add(
                &name,
                conv(&name, Conv1dConfig::default().padding(d).dilation(d)),
                x,
            )
            .unwrap();
        let r = g.add(&format!("rrelus.{i}"), Relu, c).unwrap();
        x = g.merge(&format!("add.{i}"), Add::new(), &[x, r]).unwrap();
    }
    let (start, end) = (trimming, l - trimming);
    let out = match head {
        Head::Profile => {
            // X_w_ctl = cat([X, X_ctl], dim=1); fconv(X_w_ctl)[:, :, start:end]
            let cat = g.merge("cat_ctl", Concat::new(0), &[x, ctl]).unwrap();
            let f = g
                .add("fconv", conv("fconv", Conv1dConfig::default().padding(37)), cat)
                .unwrap();
            let crop = g.add("crop", Narrow::new(1, start, end - start), f).unwrap();
            g.add("flatten", Flatten, crop).unwrap()
        }
        Head::Count => {
            // mean(X[:, :, max(start-37, 0):end+37], dim=2), cat log(sum(X_ctl[same window]) + 1)
            let (lo, hi) = (start.saturating_sub(37), (end + 37).min(l));
            let w = g.add("count_window", Narrow::new(1, lo, hi - lo), x).unwrap();
            let m = g.add("mean", AvgPool1d::global(), w).unwrap();
            let m = g.add("mean_flat", Flatten, m).unwrap();
            let cw = g.add("ctl_window", Narrow::new(1, lo, hi - lo), ctl).unwrap();
            let cf = g.add("ctl_flat", Flatten, cw).unwrap();
            let ones = Array2::<f64>::ones((1, n_ctl * (hi - lo)));
            let total = g.add("ctl_sum", Dense::new(ones, None).unwrap(), cf).unwrap();
            let log = g.add("ctl_log1p", Log1p, total).unwrap();
            let cat = g.merge("cat_counts", Concat::new(0), &[m, log]).unwrap();
            let w = tensor::<f64>(&weights["linear.weight"])
                .into_dimensionality::<Ix2>()
                .unwrap();
            let b = tensor::<f64>(&weights["linear.bias"])
                .into_dimensionality::<Ix1>()
                .unwrap();
            g.add("linear", Dense::new(w, Some(b)).unwrap(), cat).unwrap()
        }
    };
    g.build(out).unwrap()
}

/// The fixture's sequences, control tracks and references (also read by
/// `bpnet_control_onnx.rs`).
pub(crate) struct Inputs {
    pub(crate) seqs: Vec<Vec<usize>>,
    /// `[N, 4, L]`
    pub(crate) x: Array3<f64>,
    /// `[N, n_ctl, L]`
    pub(crate) ctl: Array3<f64>,
    /// `[N, R, 4, L]`
    pub(crate) refs: Array4<f64>,
}

pub(crate) fn inputs(fx: &Value) -> Inputs {
    let (seqs, x, refs) = one_hot_fixture(fx);
    let ctl = tensor::<f64>(&fx["x_ctl"]).into_dimensionality::<Ix3>().unwrap();
    Inputs { seqs, x, ctl, refs }
}

/// Sequence `s` with its own control tracks: the network bound to `ctl[s]`, `x[s]`, `refs[s]`.
pub(crate) fn per_sequence(
    net: &Network<f64>,
    inp: &Inputs,
    s: usize,
) -> (Network<f64>, ArrayD<f64>, ArrayD<f64>) {
    let bound = net
        .bind(&[inp.ctl.slice(s![s..s + 1, .., ..]).to_owned().into_dyn()])
        .unwrap();
    let x = inp.x.slice(s![s..s + 1, .., ..]).to_owned().into_dyn();
    let refs = inp.refs.slice(s![s..s + 1, .., .., ..]).to_owned().into_dyn();
    (bound, x, refs)
}

pub(crate) fn check_head(fx: &Value, inp: &Inputs, name: &str, got: &SequenceAttribution<f64>) {
    let want = &fx[name];
    let (n, l) = (inp.seqs.len(), inp.seqs[0].len());
    let hyp: ArrayD<f64> = tensor(&want["hypothetical"]);
    let dh = rel_dev(&got.hypothetical, &hyp);
    let want_attr = ArrayD::from_shape_fn(IxDyn(&[n, 4, l]), |ix| {
        let (s, c, i) = (ix[0], ix[1], ix[2]);
        if inp.seqs[s][i] == c {
            want["attributions"][s][i].as_f64().unwrap()
        } else {
            0.0
        }
    });
    let da = rel_dev(&got.attributions, &want_attr);
    println!(
        "bpnet with control tracks, {name}: hypothetical {dh:.1e}, attributions {da:.1e} from tangermeme"
    );
    assert!(dh <= TANGERMEME_F64, "{name} hypothetical contributions: {dh:e}");
    assert!(da <= TANGERMEME_F64, "{name} attributions: {da:e}");
    let r = inp.refs.shape()[1];
    for s in 0..n {
        let y = want["output"][s].as_f64().unwrap();
        assert!(
            (got.output[s] - y).abs() <= 1e-12 * y.abs().max(1.0),
            "{name} f(x) {} vs {y}",
            got.output[s]
        );
        let yr = (0..r)
            .map(|k| want["reference_output"][s][k].as_f64().unwrap())
            .sum::<f64>()
            / r as f64;
        assert!((got.reference_output[s] - yr).abs() <= 1e-12 * yr.abs().max(1.0));
        // summation-to-delta over the sequence: the control tracks are held on both sides
        assert!(got.gap[s].abs() <= 1e-12, "{name} gap {}", got.gap[s]);
    }
}

#[test]
fn bpnet_with_control_tracks_forward_matches_pytorch() {
    let fx = load("bpnet_control_deep_lift_shap");
    let inp = inputs(&fx);
    let (profile, count) = (bpnet(&fx, Head::Profile), bpnet(&fx, Head::Count));
    assert_eq!(profile.held_inputs(), vec![("x_ctl", &[2usize, 100][..])]);
    let logits: ArrayD<f64> = tensor(&fx["profile_logits"]);
    let n = inp.seqs.len();
    let (mut dp, mut dc) = (0.0_f64, 0.0_f64);
    for s in 0..n {
        let (p, x, _) = per_sequence(&profile, &inp, s);
        let want = logits
            .index_axis(Axis(0), s)
            .to_owned()
            .into_shape_with_order((1, 40))
            .unwrap()
            .into_dyn();
        dp = dp.max(rel_dev(&p.forward(&x).unwrap(), &want));
        let (c, x, _) = per_sequence(&count, &inp, s);
        let y = fx["counts"][s].as_f64().unwrap();
        dc = dc.max((c.forward(&x).unwrap()[[0, 0]] - y).abs() / y.abs());
    }
    println!("bpnet with control tracks: forward vs PyTorch f64, profile {dp:.1e}, counts {dc:.1e}");
    assert!(dp <= 1e-12 && dc <= 1e-12, "profile {dp:e}, counts {dc:e}");
}

#[test]
fn bpnet_with_control_tracks_matches_tangermeme() {
    let fx = load("bpnet_control_deep_lift_shap");
    let inp = inputs(&fx);
    for (name, head) in [("count", Head::Count), ("profile", Head::Profile)] {
        let net = bpnet(&fx, head);
        // the unbound network refuses to run, naming the held input
        let x0 = inp.x.slice(s![0..1, .., ..]).to_owned().into_dyn();
        let r0 = inp.refs.slice(s![0..1, .., .., ..]).to_owned().into_dyn();
        match deep_lift_shap(&net, &x0, &r0, &Target::Class(0)) {
            Err(Error::UnboundHeldInput { name }) => assert_eq!(name, "x_ctl"),
            other => panic!("{other:?}"),
        }
        let parts: Vec<SequenceAttribution<f64>> = (0..inp.seqs.len())
            .map(|s| {
                let (bound, x, refs) = per_sequence(&net, &inp, s);
                match head {
                    Head::Count => deep_lift_shap(&bound, &x, &refs, &Target::Class(0)).unwrap(),
                    Head::Profile => {
                        deep_lift_shap_profile(&bound, &x, &refs, ProfileWeights::Additive).unwrap()
                    }
                }
            })
            .collect();
        check_head(&fx, &inp, name, &SequenceAttribution::concat(&parts).unwrap());
    }
}

/// `y = relu(W x + V c) ⊕ (c-branch)`: a small network where the held input `c` `[3]` meets
/// the input `x` `[4]` through a sum before a ReLU (so the held value moves the ReLU's
/// operating point) and through a concatenation; `hand` builds it with `c` as a constant.
fn small(constant: Option<ArrayD<f64>>) -> Network<f64> {
    let mut rng = Rng::new(7);
    let w = rng
        .array::<f64>(&[5, 4], -1.0, 1.0)
        .into_dimensionality::<Ix2>()
        .unwrap();
    let v = rng
        .array::<f64>(&[5, 3], -1.0, 1.0)
        .into_dimensionality::<Ix2>()
        .unwrap();
    let u = rng
        .array::<f64>(&[2, 8], -1.0, 1.0)
        .into_dimensionality::<Ix2>()
        .unwrap();
    let b = Array1::from(vec![0.1, -0.2]);
    let mut g = GraphBuilder::<f64>::new(&[4]).unwrap();
    let c = match constant {
        Some(value) => g.constant("c", value).unwrap(),
        None => g.held_input("c", &[3]).unwrap(),
    };
    let wx = g.add("wx", Dense::new(w, None).unwrap(), g.input()).unwrap();
    let vc = g.add("vc", Dense::new(v, None).unwrap(), c).unwrap();
    let sum = g.merge("sum", Add::new(), &[wx, vc]).unwrap();
    let h = g.add("relu", Relu, sum).unwrap();
    let cat = g.merge("cat", Concat::new(0), &[h, c]).unwrap();
    let out = g.add("out", Dense::new(u, Some(b)).unwrap(), cat).unwrap();
    g.build(out).unwrap()
}

fn ctl() -> ArrayD<f64> {
    array![[0.5, -1.0, 2.0]].into_dyn()
}

#[test]
fn unbound_held_input_is_an_error_everywhere() {
    let net = small(None);
    let x = array![[1.0, -0.5, 0.25, 2.0]].into_dyn();
    let unbound = |r: relevance::Result<()>| match r {
        Err(Error::UnboundHeldInput { name }) => assert_eq!(name, "c"),
        other => panic!("{other:?}"),
    };
    unbound(net.forward(&x).map(drop));
    unbound(net.trace(&x).map(drop));
    unbound(
        net.attribute(&x, &Target::Class(0), &LrpEpsilon::new(1e-9).unwrap())
            .map(drop),
    );
    unbound(
        net.deeplift(&x, &Target::Class(0), &DeepLift::rescale(), &Baseline::Zero)
            .map(drop),
    );
    unbound(net.explain(&x, &Target::Class(0), &Method::Gradient).map(drop));
    unbound(net.predict(&x).map(drop));
    assert_eq!(net.nodes()[0].category(), Category::Constant);
    assert!(net.nodes()[0].is_held_input() && net.nodes()[0].inputs().is_empty());
    assert_eq!(
        Error::UnboundHeldInput { name: "c".into() }.to_string(),
        "held input `c` is not bound: give it a value with Network::bind first"
    );
}

#[test]
fn bind_checks_count_shape_batch_and_values() {
    let net = small(None);
    match net.bind(&[]) {
        Err(Error::HeldInputCount { names, got }) => assert_eq!((names, got), (vec!["c".to_string()], 0)),
        other => panic!("{other:?}"),
    }
    let shape_error = |value: ArrayD<f64>| match net.bind(&[value]) {
        Err(e @ Error::HeldInput { .. }) => {
            assert_eq!(e.node_name(), Some("c"));
            e.root().clone()
        }
        other => panic!("{other:?}"),
    };
    // per-sample shape without the batch axis
    assert!(matches!(
        shape_error(array![0.5, -1.0, 2.0].into_dyn()),
        Error::Rank {
            expected: 2,
            got: 1,
            ..
        }
    ));
    // wrong per-sample shape
    match shape_error(array![[0.5, -1.0]].into_dyn()) {
        Error::Shape { expected, got, .. } => assert_eq!((expected, got), (vec![1, 3], vec![1, 2])),
        other => panic!("{other:?}"),
    }
    // a batch other than 1
    match shape_error(ArrayD::zeros(IxDyn(&[2, 3]))) {
        Error::Shape { expected, got, .. } => assert_eq!((expected, got), (vec![1, 3], vec![2, 3])),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        shape_error(array![[0.5, f64::NAN, 2.0]].into_dyn()),
        Error::NonFinite { index: 1, .. }
    ));
    assert!(matches!(
        shape_error(array![[f64::INFINITY, 0.0, 2.0]].into_dyn()),
        Error::NonFinite { index: 0, .. }
    ));
    // a bound network has no held input left; binding it again is a count error
    let bound = net.bind(&[ctl()]).unwrap();
    assert!(bound.held_inputs().is_empty());
    assert!(matches!(
        bound.bind(&[ctl()]),
        Err(Error::HeldInputCount { got: 1, .. })
    ));
    // the builder refuses an anonymous held input and a bad constant
    let mut g = GraphBuilder::<f64>::new(&[2]).unwrap();
    assert!(matches!(g.held_input("", &[2]), Err(Error::Graph { .. })));
    match g.held_input("h", &[0]) {
        Err(e @ Error::AtLayer { .. }) => {
            assert_eq!(e.node_name(), Some("h"));
            assert!(matches!(e.root(), Error::Shape { got, .. } if got == &vec![0]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        g.constant("k", ArrayD::zeros(IxDyn(&[2, 3]))),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn bound_network_equals_the_hand_built_constant_network() {
    let net = small(None);
    let bound = net.bind(&[ctl()]).unwrap();
    let hand = small(Some(ctl()));
    let mut rng = Rng::new(3);
    let x = rng.array::<f64>(&[6, 4], -2.0, 2.0);
    assert_eq!(bound.forward(&x).unwrap(), hand.forward(&x).unwrap());
    assert_eq!(bound.shapes(), hand.shapes());
    // the other nodes are shared, not copied
    let (relevance::Op::Layer(a), relevance::Op::Layer(b)) = (net.nodes()[1].op(), bound.nodes()[1].op())
    else {
        panic!("layers")
    };
    assert!(std::sync::Arc::ptr_eq(a, b));
    // and the explanations agree too
    let lrp = LrpEpsilon::new(1e-9).unwrap();
    let (a, b) = (
        bound.attribute(&x, &Target::Class(1), &lrp).unwrap(),
        hand.attribute(&x, &Target::Class(1), &lrp).unwrap(),
    );
    assert_eq!(a.relevance, b.relevance);
    // binding another value changes the output (the held input is live)
    let other = net.bind(&[array![[0.0, 0.0, 0.0]].into_dyn()]).unwrap();
    assert_ne!(other.forward(&x).unwrap(), bound.forward(&x).unwrap());
}

#[test]
fn deeplift_sums_to_delta_over_the_main_input() {
    let net = small(None);
    let mut rng = Rng::new(11);
    for trial in 0..5 {
        let c = rng.array::<f64>(&[1, 3], -2.0, 2.0);
        let bound = net.bind(&[c]).unwrap();
        let x = rng.array::<f64>(&[4, 4], -2.0, 2.0);
        let xb = rng.array::<f64>(&[4, 4], -2.0, 2.0);
        for baseline in [Baseline::Zero, Baseline::PerSample(xb.clone())] {
            for rule in [DeepLift::rescale(), DeepLift::reveal_cancel()] {
                let d = bound
                    .deeplift_with(
                        &x,
                        &Target::Class(trial % 2),
                        &rule,
                        &baseline,
                        DeepLiftOptions::keep_layers(),
                    )
                    .unwrap();
                let fx = bound.forward(&x).unwrap();
                let x0 = match &baseline {
                    Baseline::PerSample(b) => b.clone(),
                    _ => ArrayD::zeros(x.raw_dim()),
                };
                let fb = bound.forward(&x0).unwrap();
                for i in 0..4 {
                    let want = fx[[i, trial % 2]] - fb[[i, trial % 2]];
                    assert!((d.total[i] - want).abs() < 1e-12);
                    let sum: f64 = d.attribution.index_axis(Axis(0), i).sum();
                    assert!((sum - want).abs() < 1e-12, "{sum} vs {want}");
                }
                // the held input takes no contribution: its value is the same on both sides
                let layers = d.layers.unwrap();
                assert!(layers[1].iter().all(|&v| v == 0.0), "{:?}", layers[1]);
            }
        }
    }
}

#[test]
fn lrp_relevance_absorbed_by_the_held_input_closes_the_books() {
    // LRP-0 (no stabiliser, also at the sum): what reaches the input plus what the held
    // input absorbs plus the output bias's share is the output
    let net = small(None);
    let bound = net.bind(&[ctl()]).unwrap();
    let x = array![[1.0, -0.5, 0.25, 2.0], [0.3, 0.2, -1.0, 0.5]].into_dyn();
    let a = bound
        .attribute_with(&x, &Target::Class(0), &Lrp0, Options::keep_layers())
        .unwrap();
    let layers = a.layers.as_ref().unwrap();
    for i in 0..2 {
        let input: f64 = a.relevance.index_axis(Axis(0), i).sum();
        let held: f64 = layers[1].index_axis(Axis(0), i).sum();
        let bias = 0.1; // the output bias of class 0 keeps its share
        let y = a.output[[i, 0]];
        assert!(
            (input + held + bias - y).abs() < 1e-12,
            "{input} + {held} + {bias} vs {y}"
        );
        assert!((a.delta[i] - (held + bias)).abs() < 1e-12);
    }
}

#[test]
fn unused_held_input_is_dropped_and_other_passes_keep_working() {
    let mut g = GraphBuilder::<f64>::new(&[2]).unwrap();
    let _unused = g.held_input("unused", &[3]).unwrap();
    let out = g
        .add("fc", Dense::new(array![[1.0, 2.0]], None).unwrap(), g.input())
        .unwrap();
    let net = g.build(out).unwrap();
    assert!(net.held_inputs().is_empty());
    assert_eq!(
        net.forward(&array![[1.0, 1.0]].into_dyn()).unwrap(),
        array![[3.0]].into_dyn()
    );
    // the batch-norm canonizer keeps a held input
    let folded = small(None).merge_batch_norm().unwrap();
    assert_eq!(folded.held_inputs().len(), 1);
}
