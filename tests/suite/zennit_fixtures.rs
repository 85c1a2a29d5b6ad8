//! The crate against zennit: every LRP rule and composite on four networks (the fourth, `wide`,
//! has a convolution on the Winograd path), with weights,
//! inputs and expected relevance produced by `tools/gen_lrp_fixtures.py` running the real
//! zennit (float64) and stored in `tests/fixtures/lrp_*.json`.
//!
//! f64 must match within 1e-9 relative (to the largest magnitude of the expected array);
//! f32 within 1e-4.

use crate::common;

use common::{load, network, rel_dev, tensor};
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
    let mut cases = 0;
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
                for (k, (got, want)) in ours.iter().zip(layers).enumerate() {
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
    assert!(
        cases >= 3 * 18,
        "expected every rule and preset on every network, got {cases} cases"
    );
    worst
}

#[test]
fn f64_matches_zennit_to_1e_9() {
    let worst = check_all::<f64>(1e-9);
    println!("worst relative deviation from zennit (f64): {worst:e}");
}

#[test]
fn f32_matches_zennit_to_1e_4() {
    let worst = check_all::<f32>(1e-4);
    println!("worst relative deviation from zennit (f32): {worst:e}");
}

/// The composites choose the same rule per layer as zennit did (recorded in `layer_rules`).
#[test]
fn composites_resolve_like_zennit() {
    let mut checked = 0;
    for net_name in NETWORKS {
        let fx = load(&format!("lrp_{net_name}"));
        let net = network::<f64>(&fx);
        let layers = net.node_infos();
        for case in fx["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let Some(expected) = case.get("layer_rules").and_then(|l| l.as_array()) else {
                continue;
            };
            let rules = rules::<f64>(name, &fx);
            let resolved = rules.resolve(&layers);
            assert_eq!(
                expected.len(),
                resolved.len(),
                "{net_name}/{name}: one rule per layer"
            );
            for (k, (want, got)) in expected.iter().zip(&resolved).enumerate() {
                if !layers[k].category.is_affine() {
                    continue;
                }
                let f = |key: &str| want[key].as_f64().unwrap();
                let accepted: Vec<String> = match want["rule"].as_str().unwrap() {
                    "epsilon" if f("epsilon") == 0.0 => vec!["Lrp0".into(), "LrpEpsilon(0e0)".into()],
                    "epsilon" => vec![format!("LrpEpsilon({:e})", f("epsilon"))],
                    "gamma" => vec![format!("LrpGamma({})", f("gamma"))],
                    "alphabeta" => vec![format!("LrpAlphaBeta(alpha={}, beta={})", f("alpha"), f("beta"))],
                    "zplus" => vec!["LrpZPlus(stabilizer=1e-6)".into()],
                    "flat" => vec!["LrpFlat(stabilizer=1e-6)".into()],
                    "wsquare" => vec!["LrpWSquare(stabilizer=1e-6)".into()],
                    "zbox" => vec!["LrpZBox".into()],
                    other => panic!("unknown zennit rule {other}"),
                };
                assert!(
                    accepted.contains(&got.name()),
                    "{net_name}/{name}: layer {k}: zennit used {want}, we chose {}",
                    got.name()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} layer choices checked");
}
