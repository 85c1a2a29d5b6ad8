//! Graph networks against the real zennit and captum (float64): a small ResNet of
//! torchvision's `BasicBlock`s, a VGG with batch norm, a small DenseNet and a small
//! MobileNetV2 (depthwise convolutions, ReLU6, inverted residuals), with weights, inputs and
//! expected relevance written by `tools/gen_graph_fixtures.py` into
//! `tests/fixtures/graph_*.json`.
//!
//! LRP: zennit with its canonizers (`ResNetCanonizer`, `VGGCanonizer`, a data-flow
//! `NamedMergeBatchNorm` for DenseNet, batch-norm merging plus a `Sum` for MobileNetV2's
//! residuals) against `Network::merge_batch_norm` and our composites, including the
//! relevance at every module's output and the rule zennit chose for every node; and one
//! case without a canonizer, where zennit gives the functional residual `+` the plain
//! gradient, reproduced by selecting `Gradient` for those nodes by name. DeepLIFT: captum's
//! `DeepLift` and `DeepLiftShap` against zero, shared, per-sample and K = 3 baselines.
//!
//! f64 must match within 1e-9 relative; f32 within 1e-4.

use crate::common;

use common::{graph, load, rel_dev, tensor};
use relevance::rules::MaxPoolRule;
use relevance::{
    Baseline, Composite, DeepLift, Float, Gradient, LrpEpsilon, Network, Options, RuleSet, Seed, Selector,
    Target,
};
use serde_json::Value;

const MODELS: [&str; 4] = ["resnet", "vgg_bn", "densenet", "mobilenet"];

fn targets(fx: &Value) -> Target<f32> {
    Target::PerSample(
        fx["target"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as usize)
            .collect(),
    )
}

fn target<F: Float>(fx: &Value) -> Target<F> {
    match targets(fx) {
        Target::PerSample(v) => Target::PerSample(v),
        _ => unreachable!(),
    }
}

/// Our rule set for an LRP case.
fn rules<F: Float>(case: &Value, fx: &Value) -> Box<dyn RuleSet<F>> {
    let low = || tensor::<F>(&fx["low"]);
    let high = || tensor::<F>(&fx["high"]);
    let mut c = match case["composite"].as_str().unwrap() {
        "epsilon_gamma_box" => Composite::epsilon_gamma_box(low(), high()).unwrap(),
        "epsilon_plus_flat" => Composite::epsilon_plus_flat(),
        "epsilon_alpha2_beta1" => Composite::epsilon_alpha2_beta1(),
        "epsilon" => Composite::new(LrpEpsilon::default()),
        other => panic!("no rule mapping for composite {other}"),
    };
    // where zennit applied no rule (a functional op), it computed the plain gradient
    for n in case
        .get("gradient_nodes")
        .and_then(|g| g.as_array())
        .into_iter()
        .flatten()
    {
        c = c.with_priority(Selector::Name(n.as_str().unwrap().to_string()), Gradient);
    }
    Box::new(c)
}

/// The network an LRP case ran on: batch norms merged if zennit's canonizer merged them.
fn canonized<F: Float>(fx: &Value, case: &Value) -> Network<F> {
    let net = graph::<F>(fx);
    if case["canonizer"] == "none" {
        return net;
    }
    let before: Vec<String> = net.nodes().iter().map(|n| n.name().to_string()).collect();
    let merged = net.merge_batch_norm().unwrap();
    // the batch norms we merged are those zennit merged
    let gone: Vec<&String> = before.iter().filter(|n| merged.node_index(n).is_none()).collect();
    let mut want: Vec<String> = case["merged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().to_string())
        .collect();
    let mut gone: Vec<String> = gone.into_iter().cloned().collect();
    want.sort();
    gone.sort();
    assert_eq!(gone, want, "{}: merged batch norms", fx["name"]);
    merged
}

fn check_lrp<F: Float>(tol: f64) -> (f64, usize) {
    let mut worst = 0.0_f64;
    let mut cases = 0;
    for model in MODELS {
        let fx = load(&format!("graph_{model}"));
        let x = tensor::<F>(&fx["input"]);
        let plain = graph::<F>(&fx);
        let d = rel_dev(&plain.forward(&x).unwrap(), &tensor::<F>(&fx["logits"]));
        assert!(d < tol, "{model}: forward deviates by {d:e}");
        for case in fx["lrp_cases"].as_array().unwrap() {
            let name = format!(
                "{model}/{}/{}",
                case["name"].as_str().unwrap(),
                case["seed"].as_str().unwrap()
            );
            let net = canonized::<F>(&fx, case);
            let d = rel_dev(&net.forward(&x).unwrap(), &tensor::<F>(&fx["logits"]));
            assert!(d < tol, "{name}: canonized forward deviates by {d:e}");
            let seed = match case["seed"].as_str().unwrap() {
                "onehot" => Seed::OneHot,
                _ => Seed::Logit,
            };
            let node_relevance = case.get("node_relevance").and_then(|n| n.as_object());
            let options = Options {
                seed,
                keep_layers: node_relevance.is_some(),
            };
            let a = net
                .attribute_with(&x, &target(&fx), &*rules::<F>(case, &fx), options)
                .unwrap();
            let d = rel_dev(&a.relevance, &tensor::<F>(&case["relevance"]));
            assert!(d < tol, "{name}: relevance deviates from zennit by {d:e}");
            worst = worst.max(d);
            cases += 1;
            if let Some(per_node) = node_relevance {
                let layers = a.layers.as_ref().unwrap();
                let mut compared = 0;
                for (module, want) in per_node {
                    // merged batch norms are gone; their output is the convolution's
                    let Some(k) = net.node_index(module) else { continue };
                    let d = rel_dev(&layers[k + 1], &tensor::<F>(want));
                    assert!(d < tol, "{name}: relevance at {module} deviates by {d:e}");
                    worst = worst.max(d);
                    compared += 1;
                }
                assert!(compared >= 5, "{name}: only {compared} nodes compared");
            }
        }
    }
    (worst, cases)
}

#[test]
fn lrp_f64_matches_zennit_to_1e_9() {
    let (worst, cases) = check_lrp::<f64>(1e-9);
    assert!(cases >= 4 * 6, "{cases} cases");
    println!("worst relative deviation from zennit on graphs (f64): {worst:e} over {cases} cases");
}

#[test]
fn lrp_f32_matches_zennit_to_1e_4() {
    let (worst, _) = check_lrp::<f32>(1e-4);
    println!("worst relative deviation from zennit on graphs (f32): {worst:e}");
}

/// The composites choose the rule zennit chose, node by node.
#[test]
fn composites_resolve_like_zennit_on_graphs() {
    let mut checked = 0;
    for model in MODELS {
        let fx = load(&format!("graph_{model}"));
        for case in fx["lrp_cases"].as_array().unwrap() {
            let net = canonized::<f64>(&fx, case);
            let rules = rules::<f64>(case, &fx);
            let resolved = rules.resolve(&net.node_infos());
            for (node, want) in case["rules"].as_object().unwrap() {
                let Some(k) = net.node_index(node) else { continue };
                let got = resolved[k].name();
                let category = net.nodes()[k].category();
                let f = |key: &str| want[key].as_f64().unwrap();
                let rule = want.as_str().or_else(|| want["rule"].as_str()).unwrap();
                let ok = match rule {
                    "epsilon" => got == format!("LrpEpsilon({:e})", f("epsilon")),
                    "gamma" => got == format!("LrpGamma({})", f("gamma")),
                    "alphabeta" => got == format!("LrpAlphaBeta(alpha={}, beta={})", f("alpha"), f("beta")),
                    "zplus" => got.starts_with("LrpZPlus"),
                    "flat" => got.starts_with("LrpFlat"),
                    "zbox" => got == "LrpZBox",
                    // Norm at sums and average pools, Pass at activations and batch norm:
                    // every LRP rule does that at those nodes
                    "norm" | "pass" => !category.is_affine() && got.starts_with("Lrp"),
                    "gradient" => got == "Gradient" || !category.is_affine(),
                    other => panic!("unknown zennit rule {other}"),
                };
                assert!(
                    ok,
                    "{model}/{}: node {node}: zennit used {want}, we chose {got}",
                    case["name"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "only {checked} node choices checked");
}

fn check_deeplift<F: Float>(tol: f64) -> (f64, f64, usize) {
    let (mut worst, mut worst_delta, mut cases) = (0.0_f64, 0.0_f64, 0);
    for model in MODELS {
        let fx = load(&format!("graph_{model}"));
        let x = tensor::<F>(&fx["input"]);
        let plain = graph::<F>(&fx);
        let merged = graph::<F>(&fx).merge_batch_norm().unwrap();
        for case in fx["deeplift_cases"].as_array().unwrap() {
            let name = format!("{model}/{}", case["name"].as_str().unwrap());
            let b = tensor::<F>(&case["baselines"]);
            let baseline = match case["baseline_kind"].as_str().unwrap() {
                "zero" => Baseline::Zero,
                "shared" => Baseline::Shared(b),
                "per_sample" => Baseline::PerSample(b),
                "distribution" => Baseline::Distribution(b),
                other => panic!("unknown baseline kind {other}"),
            };
            let rule = match case["max_pool"].as_str().unwrap() {
                "gradient" => DeepLift::rescale().with_max_pool(MaxPoolRule::Gradient),
                _ => DeepLift::rescale(),
            };
            // batch norm merged or not: DeepLIFT's Linear rule is the same
            for net in [&plain, &merged] {
                let d = net.deeplift(&x, &target(&fx), &rule, &baseline).unwrap();
                let dev = rel_dev(&d.attribution, &tensor::<F>(&case["attribution"]));
                assert!(dev < tol, "{name}: attribution deviates from captum by {dev:e}");
                worst = worst.max(dev);
                let total = tensor::<F>(&case["total"]);
                let dev = rel_dev(&d.total.clone().into_dyn(), &total);
                assert!(dev < tol, "{name}: total deviates by {dev:e}");
                // captum's convergence delta, which is not zero where captum's max-pool rule
                // is gradient routing
                let want_delta = tensor::<F>(&case["delta"]);
                for (got, want) in d.delta.iter().zip(want_delta.iter()) {
                    let scale = total.iter().fold(1.0_f64, |m, v| m.max(v.as_f64().abs()));
                    assert!(
                        (got.as_f64() - want.as_f64()).abs() <= tol * scale,
                        "{name}: delta {got} vs captum's {want}"
                    );
                }
            }
            // with cross-max, summation-to-delta is exact whatever the baseline
            let exact = plain
                .deeplift(&x, &target(&fx), &DeepLift::rescale(), &baseline)
                .unwrap();
            for (t, d) in exact.total.iter().zip(exact.delta.iter()) {
                worst_delta = worst_delta.max(d.as_f64().abs() / t.as_f64().abs().max(1e-3));
            }
            cases += 1;
        }
    }
    (worst, worst_delta, cases)
}

#[test]
fn deeplift_f64_matches_captum_to_1e_9() {
    let (worst, worst_delta, cases) = check_deeplift::<f64>(1e-9);
    assert!(cases >= 16, "{cases} cases");
    assert!(
        worst_delta < 1e-12,
        "summation-to-delta with cross-max: {worst_delta:e}"
    );
    println!(
        "worst relative deviation from captum on graphs (f64): {worst:e} over {cases} cases; \
         worst relative summation-to-delta gap with cross-max: {worst_delta:e}"
    );
}

#[test]
fn deeplift_f32_matches_captum_to_1e_4() {
    let (worst, _, _) = check_deeplift::<f32>(1e-4);
    println!("worst relative deviation from captum on graphs (f32): {worst:e}");
}
