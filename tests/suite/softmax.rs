//! A network that keeps its softmax, against the real captum and zennit
//! (`tools/gen_softmax_fixtures.py` → `tests/fixtures/softmax.json`): captum's DeepLIFT
//! `softmax` rule (called per sample, see `DeepLift::softmax`) with zero, random and
//! near-input baselines (the last one takes the gradient fallback everywhere), attributions
//! and multipliers; zennit's ε composite, which has no rule for a softmax (its gradient).

use crate::common;

use common::{load, network, rel_dev, tensor};
use ndarray::Axis;
use relevance::{Baseline, Composite, DeepLift, Float, LrpEpsilon, Target};
use serde_json::Value;

fn targets(fx: &Value) -> Vec<usize> {
    fx["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect()
}

fn check<F: Float>(tol: f64) {
    let fx = load("softmax");
    let net = network::<F>(&fx);
    let x = tensor::<F>(&fx["x"]);
    let y = net.forward(&x).unwrap();
    let dev = rel_dev(&y, &tensor::<F>(&fx["output"]));
    assert!(dev < tol, "forward {dev:e}");
    let target = Target::PerSample(targets(&fx));
    for case in fx["cases"].as_array().unwrap() {
        match case["kind"].as_str().unwrap() {
            "deeplift" => {
                let b = Baseline::PerSample(tensor::<F>(&case["baseline"]));
                let d = net.deeplift(&x, &target, &DeepLift::rescale(), &b).unwrap();
                let kind = case["baseline_kind"].as_str().unwrap();
                // "near" is x + 1e-12: equal to x in f32, so its attributions (~1e-12) are 0
                let want_a = tensor::<F>(&case["attribution"]);
                let da = if F::epsilon().to_f64().unwrap() > 1e-10 && kind == "near" {
                    d.attribution
                        .iter()
                        .map(|v| v.to_f64().unwrap().abs())
                        .fold(0.0, f64::max)
                } else {
                    rel_dev(&d.attribution, &want_a)
                };
                let dm = rel_dev(&d.multipliers, &tensor::<F>(&case["multipliers"]));
                println!(
                    "deeplift {kind} ({}): attribution {da:.2e}, multipliers {dm:.2e}",
                    std::any::type_name::<F>()
                );
                assert!(
                    da < tol && dm < tol,
                    "deeplift {kind}: attribution {da:e}, multipliers {dm:e}"
                );
                // captum's convergence delta, Σ attribution − Δf, is our −delta (the
                // softmax rule does not conserve)
                for (i, want) in case["delta"].as_array().unwrap().iter().enumerate() {
                    let want = -want.as_f64().unwrap();
                    let got = d.delta[i].to_f64().unwrap();
                    assert!(
                        (got - want).abs() < tol * want.abs().max(1.0),
                        "deeplift {kind} delta {got} vs {want}"
                    );
                }
            }
            "zennit" => {
                let a = net
                    .attribute(&x, &target, &Composite::new(LrpEpsilon::new(1e-6).unwrap()))
                    .unwrap();
                let dev = rel_dev(&a.relevance, &tensor::<F>(&case["relevance"]));
                println!("zennit epsilon ({}): {dev:.2e}", std::any::type_name::<F>());
                assert!(dev < tol, "zennit epsilon through the softmax {dev:e}");
            }
            other => panic!("unknown case {other}"),
        }
    }
}

#[test]
fn softmax_matches_captum_and_zennit_f64() {
    check::<f64>(1e-9);
}

#[test]
fn softmax_matches_captum_and_zennit_f32() {
    check::<f32>(1e-4);
}

/// A sample's result does not depend on its batch (captum's batched mean would couple them).
#[test]
fn softmax_deeplift_is_per_sample() {
    let fx = load("softmax");
    let net = network::<f64>(&fx);
    let x = tensor::<f64>(&fx["x"]);
    let t = targets(&fx);
    let all = net
        .deeplift(
            &x,
            &Target::PerSample(t.clone()),
            &DeepLift::rescale(),
            &Baseline::Zero,
        )
        .unwrap();
    for (i, &ti) in t.iter().enumerate() {
        let xi = x.slice_axis(Axis(0), (i..i + 1).into()).to_owned();
        let one = net
            .deeplift(&xi, &Target::Class(ti), &DeepLift::rescale(), &Baseline::Zero)
            .unwrap();
        assert_eq!(
            one.attribution.index_axis(Axis(0), 0),
            all.attribution.index_axis(Axis(0), i)
        );
    }
    // LRP through the softmax is its gradient (zennit): the relevance of a probability
    // whose logits all move together is zero, so a constant input direction gets none
    let g = net.gradient(&x, &Target::Class(0)).unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
}
