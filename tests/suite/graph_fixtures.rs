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
//! f64 and f32 must match within the bounds of `common::bounds` (the figures the README
//! publishes), and every case, node and rule choice of the fixtures is compared: the counts
//! are exact, so a case that disappears from a regenerated fixture fails.

use crate::common;

use common::bounds::{
    GRAPH_CROSS_MAX_GAP, GRAPH_DEEPLIFT_CASES, GRAPH_DEEPLIFT_F32, GRAPH_DEEPLIFT_F64, GRAPH_LRP_CASES,
    GRAPH_LRP_F32, GRAPH_LRP_F64, GRAPH_NODE_RELEVANCES, GRAPH_RULE_CHOICES,
};
use common::{graph, load, rel_dev, tensor, zennit_rule_matches, zip_exact};
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

/// Runs every LRP case; returns the worst deviation, the number of cases and the number of
/// node relevances compared.
fn check_lrp<F: Float>(tol: f64) -> (f64, usize, usize) {
    let mut worst = 0.0_f64;
    let (mut cases, mut nodes) = (0, 0);
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
                "logit" => Seed::Logit,
                other => panic!("{name}: unknown seed {other}"),
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
                for (module, want) in per_node {
                    // merged batch norms are gone (their output is the convolution's); any
                    // other module must be a node of ours
                    let Some(k) = net.node_index(module) else {
                        assert!(
                            merged_batch_norms(case).contains(&module.as_str()),
                            "{name}: zennit recorded relevance at {module}, which we do not have"
                        );
                        continue;
                    };
                    let d = rel_dev(&layers[k + 1], &tensor::<F>(want));
                    assert!(d < tol, "{name}: relevance at {module} deviates by {d:e}");
                    worst = worst.max(d);
                    nodes += 1;
                }
            }
        }
    }
    (worst, cases, nodes)
}

/// The batch norms zennit's canonizer merged in a case.
fn merged_batch_norms(case: &Value) -> Vec<&str> {
    case["merged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap())
        .collect()
}

#[test]
fn lrp_f64_matches_zennit() {
    let (worst, cases, nodes) = check_lrp::<f64>(GRAPH_LRP_F64);
    assert_eq!(
        (cases, nodes),
        (GRAPH_LRP_CASES, GRAPH_NODE_RELEVANCES),
        "cases, node relevances"
    );
    println!(
        "worst relative deviation from zennit on graphs (f64): {worst:.2e} over {cases} cases \
         (bound {GRAPH_LRP_F64:e})"
    );
}

#[test]
fn lrp_f32_matches_zennit() {
    let (worst, cases, _) = check_lrp::<f32>(GRAPH_LRP_F32);
    assert_eq!(cases, GRAPH_LRP_CASES);
    println!("worst relative deviation from zennit on graphs (f32): {worst:.2e} (bound {GRAPH_LRP_F32:e})");
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
            let rules_of_zennit = case["rules"].as_object().unwrap();
            for (node, want) in rules_of_zennit {
                let Some(k) = net.node_index(node) else {
                    assert!(
                        merged_batch_norms(case).contains(&node.as_str()),
                        "{model}/{}: zennit chose a rule for {node}, which we do not have",
                        case["name"]
                    );
                    continue;
                };
                let got = resolved[k].name();
                let category = net.nodes()[k].category();
                assert!(
                    zennit_rule_matches(want, &got, category),
                    "{model}/{}: node {node} ({category:?}): zennit used {want}, we chose {got}",
                    case["name"]
                );
                checked += 1;
            }
            // and every node of ours is one zennit chose a rule for
            for n in net.nodes() {
                assert!(
                    rules_of_zennit.contains_key(n.name()),
                    "{model}/{}: zennit recorded no rule for our node {}",
                    case["name"],
                    n.name()
                );
            }
        }
    }
    assert_eq!(checked, GRAPH_RULE_CHOICES, "node choices checked");
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
                "cross_max" => DeepLift::rescale(),
                other => panic!("{name}: unknown max-pool mode {other}"),
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
                for (got, want) in zip_exact(d.delta.iter(), want_delta.iter()) {
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
            for (t, d) in zip_exact(exact.total.iter(), exact.delta.iter()) {
                worst_delta = worst_delta.max(d.as_f64().abs() / t.as_f64().abs().max(1e-3));
            }
            cases += 1;
        }
    }
    (worst, worst_delta, cases)
}

#[test]
fn deeplift_f64_matches_captum() {
    let (worst, worst_delta, cases) = check_deeplift::<f64>(GRAPH_DEEPLIFT_F64);
    assert_eq!(cases, GRAPH_DEEPLIFT_CASES);
    assert!(
        worst_delta < GRAPH_CROSS_MAX_GAP,
        "summation-to-delta with cross-max: {worst_delta:e}"
    );
    println!(
        "worst relative deviation from captum on graphs (f64): {worst:.2e} over {cases} cases \
         (bound {GRAPH_DEEPLIFT_F64:e}); worst relative summation-to-delta gap with cross-max: \
         {worst_delta:.2e} (bound {GRAPH_CROSS_MAX_GAP:e})"
    );
}

#[test]
fn deeplift_f32_matches_captum() {
    let (worst, _, cases) = check_deeplift::<f32>(GRAPH_DEEPLIFT_F32);
    assert_eq!(cases, GRAPH_DEEPLIFT_CASES);
    println!(
        "worst relative deviation from captum on graphs (f32): {worst:.2e} (bound {GRAPH_DEEPLIFT_F32:e})"
    );
}
