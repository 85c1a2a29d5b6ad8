//! The crate against zennit: every LRP rule and composite on four networks (the fourth, `wide`,
//! has a convolution on the Winograd path), with weights,
//! inputs and expected relevance produced by `tools/gen_lrp_fixtures.py` running the real
//! zennit (float64) and stored in `tests/fixtures/lrp_*.json`.
//!
//! f64 must match within `bounds::ZENNIT_F64` relative (to the largest magnitude of the
//! expected array), f32 within `bounds::ZENNIT_F32`: the figures the README publishes.

use crate::common;

use common::bounds::{ZENNIT_CASES, ZENNIT_F32, ZENNIT_F64, ZENNIT_LAYER_CASES, ZENNIT_RULE_CHOICES};
use common::{load, network, rel_dev, tensor, zennit_rule_matches, zip_exact};
use relevance::{
    Composite, Float, Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus,
    Options, RuleSet, Seed, Selector, Target,
};
use serde_json::Value;

const NETWORKS: [&str; 4] = ["mlp", "cnn", "deep", "wide"];

/// Our rule set for a fixture case name.
fn rules<F: Float>(name: &str, fx: &Value) -> Box<dyn RuleSet<F>> {
    let low = || tensor::<F>(&fx["low"]);
    let high = || tensor::<F>(&fx["high"]);
    match name {
        "lrp0" => Box::new(Lrp0),
        "epsilon" | "epsilon_onehot" => Box::new(LrpEpsilon::default()),
        "epsilon_0.25" => Box::new(LrpEpsilon::new(0.25).unwrap()),
        "gamma" => Box::new(LrpGamma::default()),
        "gamma_0" => Box::new(LrpGamma::new(0.0).unwrap()),
        "gamma_1" => Box::new(LrpGamma::new(1.0).unwrap()),
        "alpha2beta1" => Box::new(LrpAlphaBeta::new(2.0, 1.0).unwrap()),
        "alpha1beta0" => Box::new(LrpAlphaBeta::new(1.0, 0.0).unwrap()),
        "zplus" => Box::new(LrpZPlus::new()),
        "flat" => Box::new(LrpFlat::new()),
        "wsquare" => Box::new(LrpWSquare::new()),
        "zbox_first" => Box::new(
            Composite::new(LrpEpsilon::default())
                .with(Selector::First(None), LrpZBox::new(low(), high()).unwrap()),
        ),
        "epsilon_gamma_box" => Box::new(Composite::epsilon_gamma_box(low(), high()).unwrap()),
        "epsilon_plus" => Box::new(Composite::<F>::epsilon_plus()),
        "epsilon_plus_flat" => Box::new(Composite::<F>::epsilon_plus_flat()),
        "epsilon_alpha2_beta1" => Box::new(Composite::<F>::epsilon_alpha2_beta1()),
        "epsilon_alpha2_beta1_flat" => Box::new(Composite::<F>::epsilon_alpha2_beta1_flat()),
        "layered" => Box::new(Composite::layered(low(), high()).unwrap()),
        other => panic!("fixture case {other} has no rule mapping in this test"),
    }
}

fn check_all<F: Float>(tol: f64) -> f64 {
    let mut worst = 0.0_f64;
    let (mut cases, mut layer_cases) = (0, 0);
    for net_name in NETWORKS {
        let fx = load(&format!("lrp_{net_name}"));
        let net = network::<F>(&fx);
        let x = tensor::<F>(&fx["input"]);
        let out = net.forward(&x).unwrap();
        let d = rel_dev(&out, &tensor::<F>(&fx["output"]));
        assert!(d < tol, "{net_name}: forward deviates by {d:e}");
        let target: Vec<usize> = fx["target"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as usize)
            .collect();
        for case in fx["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let seed = match case["seed"].as_str().unwrap() {
                "logit" => Seed::Logit,
                "onehot" => Seed::OneHot,
                s => panic!("unknown seed {s}"),
            };
            let rules = rules::<F>(name, &fx);
            let options = Options {
                seed,
                keep_layers: case.get("layers").is_some_and(|l| !l.is_null()),
            };
            let a = net
                .attribute_with(&x, &Target::PerSample(target.clone()), &*rules, options)
                .unwrap();
            let want = tensor::<F>(&case["relevance"]);
            let d = rel_dev(&a.relevance, &want);
            assert!(
                d < tol,
                "{net_name}/{name}: relevance deviates from zennit by {d:e} (tolerance {tol:e})"
            );
            worst = worst.max(d);
            cases += 1;
            if let Some(layers) = case.get("layers").and_then(|l| l.as_array()) {
                let ours = a.layers.as_ref().unwrap();
                assert_eq!(
                    ours.len(),
                    layers.len(),
                    "{net_name}/{name}: number of per-layer relevances"
                );
                layer_cases += 1;
                for (k, (got, want)) in zip_exact(ours, layers).enumerate() {
                    let d = rel_dev(got, &tensor::<F>(want));
                    assert!(
                        d < tol,
                        "{net_name}/{name}: relevance at layer {k} deviates by {d:e}"
                    );
                    worst = worst.max(d);
                }
            }
        }
    }
    assert_eq!(
        (cases, layer_cases),
        (ZENNIT_CASES, ZENNIT_LAYER_CASES),
        "every rule and preset on every network, and the cases with per-layer relevance"
    );
    worst
}

#[test]
fn f64_matches_zennit() {
    let worst = check_all::<f64>(ZENNIT_F64);
    println!("worst relative deviation from zennit (f64): {worst:.2e} (bound {ZENNIT_F64:e})");
}

#[test]
fn f32_matches_zennit() {
    let worst = check_all::<f32>(ZENNIT_F32);
    println!("worst relative deviation from zennit (f32): {worst:.2e} (bound {ZENNIT_F32:e})");
}

/// The composites choose the same rule per layer as zennit did (recorded in `layer_rules`),
/// at every layer: the rule and its parameters at affine layers, the treatment of its class
/// (pass, the gradient) elsewhere.
#[test]
fn composites_resolve_like_zennit() {
    let mut checked = 0;
    for net_name in NETWORKS {
        let fx = load(&format!("lrp_{net_name}"));
        let net = network::<f64>(&fx);
        let layers = net.node_infos();
        for case in fx["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let expected = case["layer_rules"]
                .as_array()
                .unwrap_or_else(|| panic!("{net_name}/{name}: no layer_rules"));
            let rules = rules::<f64>(name, &fx);
            let resolved = rules.resolve(&layers);
            for (k, (want, got)) in zip_exact(expected, &resolved).enumerate() {
                assert!(
                    zennit_rule_matches(want, &got.name(), layers[k].category),
                    "{net_name}/{name}: layer {k} ({:?}): zennit used {want}, we chose {}",
                    layers[k].category,
                    got.name()
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, ZENNIT_RULE_CHOICES, "layer choices checked");
}
