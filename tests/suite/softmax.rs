//! A network that keeps its softmax, against the real captum and zennit
//! (`tools/gen_softmax_fixtures.py` → `tests/fixtures/softmax.json`): captum's DeepLIFT
//! `softmax` rule (called per sample, see `DeepLift::softmax`) with zero, random and
//! near-input baselines (the last one takes the gradient fallback everywhere), attributions
//! and multipliers; zennit's ε composite, which has no rule for a softmax (its gradient).

use crate::common;

use common::bounds::{SOFTMAX_F32, SOFTMAX_F64};
use common::{load, network, rel_dev, tensor, zip_exact};
use ndarray::Axis;
use relevance::rules::SoftmaxRule;
use relevance::{Baseline, Composite, DeepLift, Float, LrpEpsilon, Network, Options, Softmax, Target};
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
    let mut kinds = Vec::new();
    for case in fx["cases"].as_array().unwrap() {
        match case["kind"].as_str().unwrap() {
            "deeplift" => {
                let b = Baseline::PerSample(tensor::<F>(&case["baseline"]));
                let d = net
                    .deeplift(
                        &x,
                        &target,
                        &DeepLift::rescale().with_softmax(SoftmaxRule::Captum),
                        &b,
                    )
                    .unwrap();
                let kind = case["baseline_kind"].as_str().unwrap();
                kinds.push(kind.to_string());
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
                for (i, want) in zip_exact(0..d.delta.len(), case["delta"].as_array().unwrap()) {
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
                kinds.push("zennit".into());
            }
            other => panic!("unknown case {other}"),
        }
    }
    assert_eq!(kinds, ["zero", "random", "near", "zennit"], "the fixture's cases");
}

#[test]
fn softmax_matches_captum_and_zennit_f64() {
    check::<f64>(SOFTMAX_F64);
}

#[test]
fn softmax_matches_captum_and_zennit_f32() {
    check::<f32>(SOFTMAX_F32);
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
            &DeepLift::rescale().with_softmax(SoftmaxRule::Captum),
            &Baseline::Zero,
        )
        .unwrap();
    for (i, &ti) in t.iter().enumerate() {
        let xi = x.slice_axis(Axis(0), (i..i + 1).into()).to_owned();
        let one = net
            .deeplift(
                &xi,
                &Target::Class(ti),
                &DeepLift::rescale().with_softmax(SoftmaxRule::Captum),
                &Baseline::Zero,
            )
            .unwrap();
        assert_eq!(
            one.attribution.index_axis(Axis(0), 0),
            all.attribution.index_axis(Axis(0), i)
        );
    }
}

/// LRP through the softmax is its gradient (zennit): a probability does not change when all
/// logits move together, so the gradient along the constant direction of the logits is zero
/// (`Σ_j ∂p_c/∂z_j = 0`), and so is the sum of the relevance the softmax passes to them.
#[test]
fn softmax_gives_the_constant_logit_direction_no_relevance() {
    let fx = load("softmax");
    let net = network::<f64>(&fx);
    let x = tensor::<f64>(&fx["x"]);
    let t = targets(&fx);
    // the gradient of a softmax alone, at the fixture's logits
    let logits_net = Network::<f64>::new(&[5], vec![Box::new(Softmax::new(0))]).unwrap();
    let z = net.trace(&x).unwrap().activations[3].clone();
    for c in 0..5 {
        let g = logits_net.gradient(&z, &Target::Class(c)).unwrap();
        for (s, row) in g.axis_iter(Axis(0)).enumerate() {
            let scale = row.iter().map(|v| v.abs()).sum::<f64>();
            assert!(scale > 1e-3, "sample {s}, class {c}: no gradient at all");
            assert!(
                row.sum().abs() <= 1e-15 * scale.max(1.0),
                "sample {s}, class {c}: the gradient along the constant direction is {}",
                row.sum()
            );
        }
    }
    // the relevance at the logits of the whole network (zennit's ε composite) sums to zero
    let keep = Options {
        keep_layers: true,
        ..Options::default()
    };
    let a = net
        .attribute_with(
            &x,
            &Target::PerSample(t),
            &Composite::new(LrpEpsilon::new(1e-6).unwrap()),
            keep,
        )
        .unwrap();
    let at_logits = &a.layers.as_ref().unwrap()[3];
    assert_eq!(at_logits.shape(), z.shape());
    for (s, row) in at_logits.axis_iter(Axis(0)).enumerate() {
        let scale = row.iter().map(|v| v.abs()).sum::<f64>();
        assert!(scale > 1e-6, "sample {s}: no relevance at the logits");
        assert!(
            row.sum().abs() <= 1e-14 * scale,
            "sample {s}: the logits get {} in total",
            row.sum()
        );
    }
}
