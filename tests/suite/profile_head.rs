//! DeepLIFT-SHAP of a BPNet profile head through `Σ softmax(z) · z`
//! (`relevance::genomics::deep_lift_shap_profile`) against bpnet-lite 1.1.0's
//! `deep_lift_shap(ProfileWrapper(...))` (additive) and tangermeme 1.6.0 on a
//! `softmax(z).detach()` wrapper (stop-gradient), on a small BPNet with random weights
//! (`tests/fixtures/bpnet_profile_deep_lift_shap.json` and
//! `onnx/sequence/bpnet_profile.onnx`, from `tools/gen_profile_fixtures.py`).

use ndarray::{Array3, ArrayD, Axis};
use relevance::genomics::{deep_lift_shap_profile, ProfileWeights};
use relevance::{Conv1d, Conv1dConfig, Error, Flatten, Layer, Network, Relu};
use serde_json::Value;

fn toy() -> Network<f64> {
    let w1 = Array3::from_shape_fn((3, 4, 3), |(o, c, k)| {
        ((o * 7 + c * 3 + k) % 5) as f64 / 3.0 - 0.6
    });
    let w2 = Array3::from_shape_fn((2, 3, 3), |(o, c, k)| {
        ((o * 5 + c + 2 * k) % 4) as f64 / 2.0 - 0.7
    });
    Network::new(
        &[4, 10],
        vec![
            Box::new(Conv1d::new(w1, None, Conv1dConfig::default().same()).unwrap()) as Box<dyn Layer<f64>>,
            Box::new(Relu),
            Box::new(Conv1d::new(w2, None, Conv1dConfig::default()).unwrap()),
            Box::new(Flatten),
        ],
    )
    .unwrap()
}

fn one_hot(bases: &[usize]) -> ndarray::Array2<f64> {
    ndarray::Array2::from_shape_fn((4, bases.len()), |(c, l)| f64::from(u8::from(bases[l] == c)))
}

#[test]
fn profile_additive_closes_and_stop_gradient_does_not() {
    let net = toy();
    let x = one_hot(&[0, 1, 2, 3, 0, 1, 2, 2, 3, 1])
        .insert_axis(Axis(0))
        .into_dyn();
    let refs = ndarray::stack![
        Axis(0),
        one_hot(&[0, 2, 2, 1, 3, 0, 1, 2, 3, 1]),
        one_hot(&[0, 3, 2, 2, 3, 0, 1, 2, 1, 1])
    ]
    .insert_axis(Axis(0))
    .into_dyn();
    let add = deep_lift_shap_profile(&net, &x, &refs, ProfileWeights::Additive).unwrap();
    assert!(add.gap[0].abs() < 1e-12, "{}", add.gap[0]);
    assert!(add.pair_deltas.iter().all(|d| d.abs() < 1e-12));
    let held = deep_lift_shap_profile(&net, &x, &refs, ProfileWeights::StopGradient).unwrap();
    assert_eq!(held.output, add.output);
    assert_eq!(held.reference_output, add.reference_output);
    assert!(held.gap[0].abs() > 1e-6, "{}", held.gap[0]);
    // the gap is the pair deltas' mean
    let mean = held.pair_deltas.sum() / 2.0;
    assert!((held.gap[0] - mean).abs() < 1e-12);
}

#[test]
fn profile_refuses_bad_shapes() {
    let net = toy();
    let x = one_hot(&[0, 1, 2, 3, 0, 1, 2, 2, 3, 1])
        .insert_axis(Axis(0))
        .into_dyn();
    let refs = ArrayD::<f64>::zeros(ndarray::IxDyn(&[1, 2, 4, 9]));
    assert!(matches!(
        deep_lift_shap_profile(&net, &x, &refs, ProfileWeights::Additive),
        Err(Error::Shape { .. })
    ));
    let refs = ArrayD::<f64>::zeros(ndarray::IxDyn(&[1, 0, 4, 10]));
    assert!(matches!(
        deep_lift_shap_profile(&net, &x, &refs, ProfileWeights::Additive),
        Err(Error::EmptyBatch)
    ));
    let mut bad = x.clone();
    bad[[0, 1, 3]] = f64::NAN;
    let refs = ndarray::stack![Axis(0), one_hot(&[0, 2, 2, 1, 3, 0, 1, 2, 3, 1])]
        .insert_axis(Axis(0))
        .into_dyn();
    assert!(matches!(
        deep_lift_shap_profile(&net, &bad, &refs, ProfileWeights::StopGradient),
        Err(Error::NonFinite { .. })
    ));
}

#[cfg(feature = "onnx")]
#[test]
fn bpnet_profile_head_matches_bpnet_lite_and_tangermeme() {
    use crate::common::{load, rel_dev, tensor};
    use ndarray::{Array4, IxDyn};
    let fx = load("bpnet_profile_deep_lift_shap");
    let path = format!(
        "{}/tests/fixtures/onnx/sequence/bpnet_profile.onnx",
        env!("CARGO_MANIFEST_DIR")
    );
    let net: Network<f64> = relevance::io::load_onnx(&path).unwrap();
    let idx = |v: &Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as usize)
            .collect()
    };
    let seqs: Vec<Vec<usize>> = fx["x"].as_array().unwrap().iter().map(idx).collect();
    let refs_idx: Vec<Vec<Vec<usize>>> = fx["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|per| per.as_array().unwrap().iter().map(idx).collect())
        .collect();
    let (n, l, r) = (seqs.len(), seqs[0].len(), refs_idx[0].len());
    let x = Array3::from_shape_fn((n, 4, l), |(s, c, i)| f64::from(u8::from(seqs[s][i] == c))).into_dyn();
    let refs = Array4::from_shape_fn((n, r, 4, l), |(s, k, c, i)| {
        f64::from(u8::from(refs_idx[s][k][i] == c))
    })
    .into_dyn();
    for (name, weights) in [
        ("additive", ProfileWeights::Additive),
        ("stop_gradient", ProfileWeights::StopGradient),
    ] {
        let out = deep_lift_shap_profile(&net, &x, &refs, weights).unwrap();
        let v = &fx[name];
        let hyp: ArrayD<f64> = tensor(&v["hypothetical"]);
        let dh = rel_dev(&out.hypothetical, &hyp);
        let want_attr = ArrayD::from_shape_fn(IxDyn(&[n, 4, l]), |ix| {
            if seqs[ix[0]][ix[2]] == ix[1] {
                v["attributions"][ix[0]][ix[2]].as_f64().unwrap()
            } else {
                0.0
            }
        });
        let da = rel_dev(&out.attributions, &want_attr);
        println!(
            "bpnet profile {name}: hypothetical {dh:.1e}, attributions {da:.1e}; gap {:?}",
            out.gap
        );
        assert!(dh <= 1e-9, "{name} hypothetical {dh:e}");
        assert!(da <= 1e-9, "{name} attributions {da:e}");
        for s in 0..n {
            let y = fx["output"][s].as_f64().unwrap();
            assert!((out.output[s] - y).abs() <= 1e-12 * y.abs().max(1.0));
            let g = v["gap"][s].as_f64().unwrap();
            assert!(
                (out.gap[s] - g).abs() <= 1e-9 * (y.abs().max(1.0)),
                "{name} gap {} vs {g}",
                out.gap[s]
            );
        }
    }
}

/// Where the centred logits barely move (`|Δz| < 1e-6`), tangermeme's Rescale rule on
/// `_ProfileLogitScaling` falls back to the gradient through the inner softmax's own rule:
/// a toy network with a constant output channel and two that cancel in the mean.
#[test]
fn profile_additive_fallback_matches_tangermeme() {
    use crate::common::{load, rel_dev, tensor};
    use ndarray::{Array1, Array4};
    let fx = load("bpnet_profile_deep_lift_shap");
    let t = &fx["toy_fallback"];
    let vals = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let w1 = Array3::from_shape_vec((3, 4, 3), vals(&t["w1"])).unwrap();
    let w2 = Array3::from_shape_vec((3, 3, 3), vals(&t["w2"])).unwrap();
    let net = Network::<f64>::new(
        &[4, 10],
        vec![
            Box::new(Conv1d::new(w1, Some(Array1::from(vals(&t["b1"]))), Conv1dConfig::default()).unwrap())
                as Box<dyn Layer<f64>>,
            Box::new(Relu),
            Box::new(Conv1d::new(w2, Some(Array1::from(vals(&t["b2"]))), Conv1dConfig::default()).unwrap()),
            Box::new(Flatten),
        ],
    )
    .unwrap();
    let idx = |v: &Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as usize)
            .collect()
    };
    let bases = idx(&t["x"][0]);
    let refs_idx: Vec<Vec<usize>> = t["references"][0].as_array().unwrap().iter().map(idx).collect();
    let x = one_hot(&bases).insert_axis(Axis(0)).into_dyn();
    let refs = Array4::from_shape_fn((1, 2, 4, 10), |(_, k, c, i)| {
        f64::from(u8::from(refs_idx[k][i] == c))
    })
    .into_dyn();
    let out = deep_lift_shap_profile(&net, &x, &refs, ProfileWeights::Additive).unwrap();
    let hyp: ArrayD<f64> = tensor(&t["hypothetical"]);
    let d = rel_dev(&out.hypothetical, &hyp);
    println!(
        "toy profile with fallback: hypothetical {d:.1e} from tangermeme; gap {}",
        out.gap[0]
    );
    assert!(d <= 1e-9, "{d:e}");
}
