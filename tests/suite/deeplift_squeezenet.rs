//! DeepLIFT's cross-max rule where the baseline's max-pool windows tie (issue #20, item 8):
//! a tiny SqueezeNet (torchvision's `Fire` modules, `MaxPool2d(3, 2, ceil_mode=True)` after a
//! ReLU and after a concatenation, both with windows cut short) with a zero baseline, against
//! captum 0.9.0 with cross-max active at every pool and overlapping contributions added,
//! stored in `tests/fixtures/deeplift_squeezenet.json` by `tools/gen_deeplift_squeezenet.py`.
//!
//! With a zero baseline every baseline activation is constant across space away from the
//! borders, so pool windows of the baseline hold several exactly equal maxima, and cross-max
//! sends `(y − max(y, ȳ))·m` to the baseline's argmax. We compute those planes exactly constant
//! and take the first maximum, which is what exact arithmetic gives (the script checks every
//! window in rational arithmetic). PyTorch's float64 convolution rounds positions differently,
//! so its "equal" maxima differ in the last bits and its index lands on whichever rounded up:
//! captum's result then depends on that rounding (on torchvision's squeezenet1_1 with random
//! biases, 1.3e-2 of the attribution's largest magnitude). The fixture has two variants:
//! * `rounded`: captum as is (`captum_plain`) differs from us; with its pool index replaced
//!   by the first position within 1e-11 of the window maximum (`captum_tie_first`, a change
//!   that touches only windows whose maxima differ by rounding) it agrees;
//! * `exact`: the same network with parameters on a 2⁻⁵ grid, so that PyTorch's baseline pass
//!   is exact too: plain captum agrees, ties and all.

use crate::common;

use common::bounds::SQUEEZENET_F64;
use common::{graph, load, rel_dev, tensor, zip_exact};
use ndarray::{ArrayD, IxDyn};
use relevance::{Baseline, DeepLift, DeepLiftAttribution, DeepLiftOptions, MaxPool2d, Network, Target};
use serde_json::Value;

/// f64 agreement with captum (relative to the largest magnitude of captum's array): the
/// figure the README publishes (measured 1.6e-15), within `common::bounds`' 10× rule.
const TOL: f64 = SQUEEZENET_F64;

/// The variant's network and our DeepLIFT-Rescale result (zero baseline, every value kept).
fn run(fx: &Value, variant: &Value) -> (Network<f64>, DeepLiftAttribution<f64>) {
    let mut spec = variant.clone();
    spec["input_shape"] = fx["input_shape"].clone();
    let net = graph::<f64>(&spec);
    let x = tensor::<f64>(&fx["input"]);
    let target = Target::PerSample(
        fx["target"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as usize)
            .collect(),
    );
    let a = net
        .deeplift_with(
            &x,
            &target,
            &DeepLift::rescale(),
            &Baseline::Zero,
            DeepLiftOptions::keep_layers(),
        )
        .unwrap();
    (net, a)
}

/// Our contributions at the recorded pool's input and output value.
fn pool_contributions<'a>(
    net: &Network<f64>,
    a: &'a DeepLiftAttribution<f64>,
    pool: &str,
) -> (&'a ArrayD<f64>, &'a ArrayD<f64>) {
    let k = net.node_index(pool).expect("pool node");
    let layers = a.layers.as_ref().unwrap();
    (&layers[net.nodes()[k].inputs()[0]], &layers[k + 1])
}

#[test]
fn squeezenet_matches_captum_with_exact_tie_breaks() {
    let fx = load("deeplift_squeezenet");
    for variant in fx["variants"].as_array().unwrap() {
        let name = variant["name"].as_str().unwrap();
        let (net, a) = run(&fx, variant);
        let captum = &variant["captum_tie_first"];
        let dev = rel_dev(&a.attribution, &tensor(&captum["attribution"]));
        println!("{name}: attribution vs captum (tie-first index) {dev:.2e}");
        assert!(dev < TOL, "{name}: attribution deviates by {dev:.2e}");
        let total = tensor::<f64>(&variant["total"]);
        assert!(
            rel_dev(&a.total.clone().into_dyn(), &total) < TOL,
            "{name}: total"
        );
        // summation-to-delta, here and in captum
        let scale = total.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
        for (ours, theirs) in zip_exact(a.delta.iter(), tensor::<f64>(&captum["delta"]).iter()) {
            assert!(
                ours.abs() < TOL * scale && theirs.abs() < TOL * scale,
                "{name}: delta {ours}, {theirs}"
            );
        }
        if let Some(pool) = captum.get("pool") {
            let (input, output) = pool_contributions(&net, &a, pool["name"].as_str().unwrap());
            for (ours, key) in [(input, "input_value"), (output, "output_value")] {
                let dev = rel_dev(ours, &tensor(&pool[key]));
                assert!(
                    dev < TOL,
                    "{name}: contributions at the pool's {key} deviate by {dev:.2e}"
                );
            }
        }
    }
}

#[test]
fn squeezenet_differs_from_plain_captum_only_where_pytorch_rounding_breaks_a_tie() {
    let fx = load("deeplift_squeezenet");
    for variant in fx["variants"].as_array().unwrap() {
        let name = variant["name"].as_str().unwrap();
        let (net, a) = run(&fx, variant);
        let plain = &variant["captum_plain"];
        let dev = rel_dev(&a.attribution, &tensor(&plain["attribution"]));
        println!("{name}: attribution vs plain captum {dev:.2e}");
        let ties = variant["rounding_ties"].as_array().unwrap();
        if name == "exact" {
            // PyTorch's baseline pass is exact: its ties are ties, and plain captum agrees
            assert!(ties.is_empty());
            assert!(dev < TOL, "{name}: deviates from plain captum by {dev:.2e}");
            continue;
        }
        // The documented difference: it is there, and it starts at the pool whose ties
        // PyTorch's rounding broke (the pool's output agrees, its input does not).
        assert!(
            dev > 1e-3,
            "{name}: the fixture no longer shows the difference ({dev:.2e})"
        );
        let pool = &plain["pool"];
        let (input, output) = pool_contributions(&net, &a, pool["name"].as_str().unwrap());
        assert!(rel_dev(output, &tensor(&pool["output_value"])) < TOL);
        assert!(rel_dev(input, &tensor(&pool["input_value"])) > 1e-3);
        // Every window where PyTorch's index is not the first maximum is an exact tie in our
        // baseline pass, and our argmax takes the first of the tied values.
        assert!(!ties.is_empty());
        let mut shape = vec![1];
        shape.extend(net.input_shape());
        let trace = net.trace(&ArrayD::<f64>::zeros(IxDyn(&shape))).unwrap();
        for tie in ties {
            let t = tie.as_array().unwrap();
            let pool_name = t[0].as_str().unwrap();
            let at = |i: usize| t[i].as_u64().unwrap() as usize;
            let (c, oy, ox, torch_index, first_index) = (at(2), at(3), at(4), at(5), at(6));
            let k = net.node_index(pool_name).unwrap();
            let node = variant["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["name"] == pool_name)
                .unwrap();
            let pair = |key: &str| common::pair(&node[key]);
            let layer = MaxPool2d::new(pair("kernel"), pair("stride"), pair("padding"))
                .unwrap()
                .with_ceil_mode(node["ceil_mode"].as_bool().unwrap());
            let baseline = &trace.activations[net.nodes()[k].inputs()[0]];
            let plane = baseline.index_axis(ndarray::Axis(0), 0);
            let plane = plane.index_axis(ndarray::Axis(0), c);
            let flat: Vec<f64> = plane.iter().copied().collect();
            assert_eq!(
                flat[torch_index].to_bits(),
                flat[first_index].to_bits(),
                "{pool_name} channel {c} window ({oy}, {ox}): not an exact tie here"
            );
            let (_, idx) = layer.argmax(&baseline.view()).unwrap();
            assert_eq!(
                idx[[0, c, oy, ox]],
                first_index,
                "{pool_name} channel {c} window ({oy}, {ox})"
            );
        }
    }
}
