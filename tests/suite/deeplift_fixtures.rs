//! The crate against captum 0.9.0: `DeepLift` and `DeepLiftShap` (float64, eps = 1e-10) on
//! the three networks of the LRP fixtures, with zero, shared, per-sample and K = 3
//! baselines, stored in `tests/fixtures/deeplift_*.json` by `tools/gen_deeplift_fixtures.py`.
//!
//! Two max-pool modes, each against the captum setting that computes it:
//! - "gradient": the model as is; captum 0.9.0 drops the pool multiplier when a ReLU
//!   directly precedes the pool (its issue #1104) — `MaxPoolRule::Gradient` here;
//! - "cross_max": a copying identity before each pool makes captum apply cross-max
//!   (non-overlapping pools only, as captum overwrites where windows overlap) — the default
//!   `MaxPoolRule::CrossMax` here.
//!
//! f64 must match within `bounds::CAPTUM_F64` relative to the largest magnitude of the
//! expected array (the figure the README publishes), for every case of the fixtures.

use crate::common;

use common::bounds::{CAPTUM_CASES, CAPTUM_F64};
use common::{load, network, rel_dev, tensor, zip_exact};

use relevance::rules::MaxPoolRule;
use relevance::{Baseline, DeepLift, Target};
use serde_json::Value;

fn baseline(case: &Value) -> Baseline<f64> {
    let b = tensor::<f64>(&case["baselines"]);
    match case["baseline_kind"].as_str().unwrap() {
        "zero" => Baseline::Zero,
        "shared" => Baseline::Shared(b),
        "per_sample" => Baseline::PerSample(b),
        "distribution" => Baseline::Distribution(b),
        k => panic!("unknown baseline kind {k}"),
    }
}

/// Cases per fixture (`mlp`, `cnn`, `deep`): four baselines per max-pool mode compared.
const CASES: [(&str, usize); 3] = [("mlp", 4), ("cnn", 4), ("deep", 8)];

/// Runs every case of one fixture; returns the worst relative deviation per max-pool mode.
fn check_network(name: &str) -> Vec<(String, f64)> {
    let fx = load(&format!("deeplift_{name}"));
    let net = network::<f64>(&fx);
    let x = tensor::<f64>(&fx["input"]);
    let target = Target::PerSample(
        fx["target"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as usize)
            .collect(),
    );
    let mut worst: Vec<(String, f64)> = Vec::new();
    let mut compared = 0;
    for case in fx["cases"].as_array().unwrap() {
        let mode = case["max_pool"].as_str().unwrap();
        let rule = match mode {
            "gradient" => DeepLift::rescale().with_max_pool(MaxPoolRule::Gradient),
            "cross_max" => DeepLift::rescale(),
            m => panic!("unknown mode {m}"),
        };
        let a = net.deeplift(&x, &target, &rule, &baseline(case)).unwrap();
        let cname = format!("{name}/{}", case["name"].as_str().unwrap());
        let dev = rel_dev(&a.attribution, &tensor(&case["attribution"]));
        assert!(
            dev < CAPTUM_F64,
            "{cname}: attribution deviates by {dev:.2e} (relative; bound {CAPTUM_F64:e})"
        );
        let total = tensor::<f64>(&case["total"]);
        assert!(
            rel_dev(&a.total.clone().into_dyn(), &total) < CAPTUM_F64,
            "{cname}: total"
        );
        let delta = tensor::<f64>(&case["delta"]);
        let scale = total.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
        for (got, want) in zip_exact(a.delta.iter(), delta.iter()) {
            assert!(
                (got - want).abs() < CAPTUM_F64 * scale,
                "{cname}: delta {got} vs captum's {want}"
            );
        }
        compared += 1;
        let key = format!("{name}/{mode}");
        match worst.iter_mut().find(|(k, _)| *k == key) {
            Some((_, w)) => *w = w.max(dev),
            None => worst.push((key, dev)),
        }
    }
    for (k, w) in &worst {
        println!("{k}: worst relative deviation from captum {w:.2e} (bound {CAPTUM_F64:e})");
    }
    let want = CASES.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(compared, want, "{name}: cases compared");
    worst
}

#[test]
fn the_fixtures_hold_every_case() {
    assert_eq!(CASES.iter().map(|(_, n)| n).sum::<usize>(), CAPTUM_CASES);
    for (name, n) in CASES {
        assert_eq!(
            load(&format!("deeplift_{name}"))["cases"]
                .as_array()
                .unwrap()
                .len(),
            n,
            "{name}"
        );
    }
}

#[test]
fn mlp_matches_captum() {
    let w = check_network("mlp");
    assert_eq!(w.len(), 1);
}

#[test]
fn cnn_with_overlapping_pool_matches_captum_gradient_routing() {
    let w = check_network("cnn");
    assert_eq!(
        w.len(),
        1,
        "overlapping pools: only the gradient mode is comparable"
    );
}

#[test]
fn deep_cnn_matches_captum_in_both_max_pool_modes() {
    let w = check_network("deep");
    assert_eq!(w.len(), 2);
}

#[test]
fn cross_max_conserves_where_captum_gradient_routing_does_not() {
    // The #1104 cases of captum leave a gap; ours, with cross-max, conserve on the same inputs.
    for name in ["cnn", "deep"] {
        let fx = load(&format!("deeplift_{name}"));
        let net = network::<f64>(&fx);
        let x = tensor::<f64>(&fx["input"]);
        let target = Target::PerSample(
            fx["target"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as usize)
                .collect(),
        );
        for case in fx["cases"].as_array().unwrap() {
            if case["max_pool"] != "gradient" || case["baseline_kind"] == "zero" {
                continue;
            }
            let captum_gap = tensor::<f64>(&case["delta"])
                .iter()
                .fold(0.0_f64, |m, v| m.max(v.abs()));
            assert!(captum_gap > 1e-3);
            for rule in [
                DeepLift::rescale(),
                DeepLift::reveal_cancel(),
                DeepLift::default(),
            ] {
                let a = net.deeplift(&x, &target, &rule, &baseline(case)).unwrap();
                for d in a.delta.iter() {
                    assert!(d.abs() < 1e-10, "{name}: {rule:?} gap {d}");
                }
            }
        }
    }
}

#[test]
fn f32_is_close_to_captum() {
    let fx = load("deeplift_deep");
    let net = network::<f32>(&fx);
    let x = tensor::<f32>(&fx["input"]);
    let target = Target::PerSample(vec![3, 1]);
    let case = &fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cross_max_shared")
        .unwrap();
    let a = net
        .deeplift(
            &x,
            &target,
            &DeepLift::rescale(),
            &Baseline::Shared(tensor(&case["baselines"])),
        )
        .unwrap();
    let got = a.attribution.mapv(|v| v as f64);
    let dev = rel_dev(&got, &tensor(&case["attribution"]));
    assert!(dev < 1e-4, "f32 deviates by {dev:.2e}");
}
