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
//! f64 must match within 1e-9 relative to the largest magnitude of the expected array.

use ndarray::{ArrayD, Ix1, Ix2, Ix4, IxDyn};
use relevance::rules::MaxPoolRule;
use relevance::{
    Baseline, Conv2d, Conv2dConfig, DeepLift, Dense, Flatten, Float, Layer, MaxPool2d, Network, Relu, Target,
};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/deeplift_{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("valid JSON")
}

fn tensor<F: Float>(v: &Value) -> ArrayD<F> {
    let dims = |v: &Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect()
    };
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| F::lit(d.as_f64().unwrap()))
        .collect();
    ArrayD::from_shape_vec(IxDyn(&dims(&v["shape"])), data).unwrap()
}

fn pair(v: &Value) -> (usize, usize) {
    let a = v.as_array().unwrap();
    (a[0].as_u64().unwrap() as usize, a[1].as_u64().unwrap() as usize)
}

fn network<F: Float>(fx: &Value) -> Network<F> {
    let mut layers: Vec<Box<dyn Layer<F>>> = Vec::new();
    for l in fx["layers"].as_array().unwrap() {
        let bias = || tensor::<F>(&l["bias"]).into_dimensionality::<Ix1>().unwrap();
        match l["type"].as_str().unwrap() {
            "dense" => {
                let w = tensor::<F>(&l["weight"]).into_dimensionality::<Ix2>().unwrap();
                layers.push(Box::new(Dense::new(w, Some(bias())).unwrap()));
            }
            "conv2d" => {
                let w = tensor::<F>(&l["weight"]).into_dimensionality::<Ix4>().unwrap();
                let config = Conv2dConfig {
                    stride: pair(&l["stride"]),
                    padding: pair(&l["padding"]),
                    dilation: pair(&l["dilation"]),
                };
                layers.push(Box::new(Conv2d::new(w, Some(bias()), config).unwrap()));
            }
            "relu" => layers.push(Box::new(Relu)),
            "maxpool2d" => layers.push(Box::new(
                MaxPool2d::new(pair(&l["kernel"]), pair(&l["stride"]), pair(&l["padding"])).unwrap(),
            )),
            "flatten" => layers.push(Box::new(Flatten)),
            t => panic!("unknown layer {t}"),
        }
    }
    let shape: Vec<usize> = fx["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    Network::new(&shape, layers).unwrap()
}

/// max |got − expected| / max(max |expected|, 1e-300)
fn rel_dev(got: &ArrayD<f64>, expected: &ArrayD<f64>) -> f64 {
    assert_eq!(got.shape(), expected.shape());
    let scale = expected.iter().fold(0.0_f64, |m, v| m.max(v.abs())).max(1e-300);
    got.iter()
        .zip(expected.iter())
        .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

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

/// Runs every case of one fixture; returns the worst relative deviation per max-pool mode.
fn check_network(name: &str) -> Vec<(String, f64)> {
    let fx = load(name);
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
            dev < 1e-9,
            "{cname}: attribution deviates by {dev:.2e} (relative)"
        );
        let total = tensor::<f64>(&case["total"]);
        assert!(
            rel_dev(&a.total.clone().into_dyn(), &total) < 1e-12,
            "{cname}: total"
        );
        let delta = tensor::<f64>(&case["delta"]);
        let scale = total.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
        for (got, want) in a.delta.iter().zip(delta.iter()) {
            assert!(
                (got - want).abs() < 1e-9 * scale,
                "{cname}: delta {got} vs captum's {want}"
            );
        }
        let key = format!("{name}/{mode}");
        match worst.iter_mut().find(|(k, _)| *k == key) {
            Some((_, w)) => *w = w.max(dev),
            None => worst.push((key, dev)),
        }
    }
    for (k, w) in &worst {
        println!("{k}: worst relative deviation from captum {w:.2e}");
    }
    worst
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
        let fx = load(name);
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
    let fx = load("deep");
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
