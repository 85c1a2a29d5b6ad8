//! bpnet-lite 1.1.0's `BPNet` with both heads and its `ChromBPNet` (bias and accessibility
//! BPNets, profiles added, counts combined as `log(exp(a) + exp(b))`), and two count heads
//! combined by `torch.logsumexp`, each exported by both PyTorch exporters
//! (`tests/fixtures/onnx/sequence/{bpnet_heads,chrombpnet,logsumexp_counts}_{torchscript,
//! dynamo}.onnx` and `tests/fixtures/chrombpnet_fixtures.json`, from
//! `tools/gen_chrombpnet_fixtures.py`). The two graph outputs are chosen by name
//! ([`OnnxOptions::output`]); each must give onnxruntime's float32 outputs and torch's
//! float64 ones, and ChromBPNet's count and profile attributions must equal bpnet-lite's
//! `deep_lift_shap` (tangermeme 1.6.0 with bpnet-lite's `_Log`/`_Exp` and
//! `_ProfileLogitScaling` rules).

use crate::common::{load, rel_dev, tensor};
use ndarray::{Array3, Array4, ArrayD};
use relevance::genomics::{deep_lift_shap, deep_lift_shap_profile, ProfileWeights, SequenceAttribution};
use relevance::io::{load_onnx, load_onnx_with, OnnxOptions};
use relevance::{Error, Float, Network, Target};
use serde_json::Value;

/// Outputs against onnxruntime's float32 run, relative to the largest output.
const ORT_F32: f64 = 1e-5;
/// Outputs against torch in float64 on the same weights.
const TORCH_F64: f64 = 1e-12;
/// Hypothetical contributions against bpnet-lite / tangermeme in float64, relative to the
/// largest magnitude.
const TANGERMEME_F64: f64 = 1e-9;
/// Summation-to-delta in float64 (absolute; the outputs are of order 1).
const GAP_F64: f64 = 1e-12;

const BPNET: [&str; 2] = ["bpnet_heads_torchscript", "bpnet_heads_dynamo"];
const CHROMBPNET: [&str; 2] = ["chrombpnet_torchscript", "chrombpnet_dynamo"];

fn path(name: &str) -> String {
    format!(
        "{}/tests/fixtures/onnx/sequence/{name}.onnx",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// One graph output of a fixture file as a network.
fn model<F: Float>(name: &str, output: &str) -> Network<F> {
    load_onnx_with(path(name), &OnnxOptions::default().with_output(output))
        .unwrap_or_else(|e| panic!("{name} ({output}): {e}"))
        .network
}

fn bases(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as usize)
        .collect()
}

/// The sequences `[N, 4, L]` and the references `[N, R, 4, L]`, one-hot.
fn inputs<F: Float>(fx: &Value) -> (ArrayD<F>, ArrayD<F>) {
    let seqs: Vec<Vec<usize>> = fx["x"].as_array().unwrap().iter().map(bases).collect();
    let refs: Vec<Vec<Vec<usize>>> = fx["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|per| per.as_array().unwrap().iter().map(bases).collect())
        .collect();
    let (n, r, l) = (seqs.len(), refs[0].len(), seqs[0].len());
    let x = Array3::from_shape_fn((n, 4, l), |(s, c, i)| {
        F::lit(f64::from(u8::from(seqs[s][i] == c)))
    });
    let refs = Array4::from_shape_fn((n, r, 4, l), |(s, k, c, i)| {
        F::lit(f64::from(u8::from(refs[s][k][i] == c)))
    });
    (x.into_dyn(), refs.into_dyn())
}

#[test]
fn both_heads_match_onnxruntime_and_torch() {
    let fx = load("chrombpnet_fixtures");
    let (x32, _) = inputs::<f32>(&fx);
    let (x64, _) = inputs::<f64>(&fx);
    for (name, torch) in BPNET
        .iter()
        .map(|n| (n, "bpnet"))
        .chain(CHROMBPNET.iter().map(|n| (n, "chrombpnet")))
    {
        for output in ["profile", "counts"] {
            let want32: ArrayD<f32> = tensor(&fx["onnxruntime"][name][output]);
            let y32 = model::<f32>(name, output).forward(&x32).unwrap();
            let d32 = rel_dev(&y32, &want32);
            let y64 = model::<f64>(name, output).forward(&x64).unwrap();
            let d64 = rel_dev(&y64, &tensor(&fx["torch_f64"][torch][output]));
            let d64_ort = rel_dev(&y64, &tensor(&fx["onnxruntime"][name][output]));
            println!(
                "{name} {output}: f32 {d32:.1e} from onnxruntime, f64 {d64:.1e} from torch (f64), {d64_ort:.1e} from \
                 onnxruntime"
            );
            assert!(d32 <= ORT_F32, "{name} {output}: f32 {d32:e} from onnxruntime");
            assert!(
                d64_ort <= ORT_F32,
                "{name} {output}: f64 {d64_ort:e} from onnxruntime"
            );
            assert!(d64 <= TORCH_F64, "{name} {output}: f64 {d64:e} from torch");
        }
    }
}

#[test]
fn two_outputs_must_be_named() {
    for name in BPNET.iter().chain(CHROMBPNET.iter()) {
        match load_onnx::<f32>(path(name)) {
            Err(Error::Format { reason, .. }) => {
                assert!(reason.contains("\"profile\", \"counts\""), "{name}: {reason}")
            }
            other => panic!("{name}: {other:?}"),
        }
        match load_onnx_with::<f32>(path(name), &OnnxOptions::default().with_output("count")) {
            Err(Error::Format { reason, .. }) => assert!(
                reason.contains("\"count\"") && reason.contains("\"profile\", \"counts\""),
                "{name}: {reason}"
            ),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// The hypothetical contributions, the outputs and the gap against the fixture's run.
fn check_against(name: &str, what: &str, got: &SequenceAttribution<f64>, want: &Value) -> f64 {
    let dh = rel_dev(&got.hypothetical, &tensor(&want["hypothetical"]));
    println!("{name} {what}: hypothetical {dh:.1e} from bpnet-lite/tangermeme");
    assert!(dh <= TANGERMEME_F64, "{name} {what}: hypothetical {dh:e}");
    for s in 0..got.output.len() {
        let y = want["output"][s].as_f64().unwrap();
        assert!(
            (got.output[s] - y).abs() <= 1e-12 * y.abs().max(1.0),
            "{name} {what}: f(x) {}",
            got.output[s]
        );
        let refs = want["reference_output"][s].as_array().unwrap();
        let mean = refs.iter().map(|v| v.as_f64().unwrap()).sum::<f64>() / refs.len() as f64;
        assert!((got.reference_output[s] - mean).abs() <= 1e-12 * mean.abs().max(1.0));
        assert!(got.gap[s].abs() <= GAP_F64, "{name} {what}: gap {}", got.gap[s]);
    }
    assert!(
        got.pair_deltas.iter().all(|d| d.abs() <= GAP_F64),
        "{name} {what}"
    );
    dh
}

/// ChromBPNet's count head goes through `log(exp(a) + exp(b))`: Exp, Add, Log layers, each
/// with the Rescale rule, which is bpnet-lite's registration of `_Exp` and `_Log` with
/// tangermeme's `_nonlinear`.
#[test]
fn chrombpnet_counts_match_bpnet_lite_deep_lift_shap() {
    let fx = load("chrombpnet_fixtures");
    let (x, refs) = inputs::<f64>(&fx);
    for name in CHROMBPNET {
        let net = model::<f64>(name, "counts");
        let out = deep_lift_shap(&net, &x, &refs, &Target::Class(0)).unwrap();
        check_against(name, "counts", &out, &fx["chrombpnet_counts"]);
        // LRP passes relevance through Exp and Log as through every activation
        let eps = relevance::Method::lrp(relevance::LrpEpsilon::new(1e-6).unwrap());
        let lrp = net.explain(&x, &Target::Class(0), &eps).unwrap();
        assert!(lrp.relevance.iter().all(|v| v.is_finite()) && lrp.relevance.iter().any(|v| *v != 0.0));
    }
    // tangermeme alone (no rule for bpnet-lite's `_Exp`/`_Log` modules) is not additive
    let unregistered = fx["chrombpnet_counts_unregistered_gap"].as_array().unwrap();
    assert!(unregistered.iter().all(|g| g.as_f64().unwrap().abs() > 1e-7));
}

#[test]
fn chrombpnet_profile_matches_bpnet_lite_deep_lift_shap() {
    let fx = load("chrombpnet_fixtures");
    let (x, refs) = inputs::<f64>(&fx);
    for name in CHROMBPNET {
        let net = model::<f64>(name, "profile");
        let out = deep_lift_shap_profile(&net, &x, &refs, ProfileWeights::Additive).unwrap();
        check_against(name, "profile", &out, &fx["chrombpnet_profile"]);
    }
}

/// Both heads of the plain BPNet explain with summation-to-delta, and both exporters' files
/// give the same attributions.
#[test]
fn bpnet_heads_explain_additively_from_both_exporters() {
    let fx = load("chrombpnet_fixtures");
    let (x, refs) = inputs::<f64>(&fx);
    let mut counts = Vec::new();
    let mut profiles = Vec::new();
    for name in BPNET {
        let c = deep_lift_shap(&model(name, "counts"), &x, &refs, &Target::Class(0)).unwrap();
        let p = deep_lift_shap_profile(&model(name, "profile"), &x, &refs, ProfileWeights::Additive).unwrap();
        for (what, out) in [("counts", &c), ("profile", &p)] {
            assert!(
                out.gap.iter().all(|g| g.abs() <= GAP_F64),
                "{name} {what}: {}",
                out.gap
            );
            assert!(
                out.attributions.iter().any(|a| a.abs() > 1e-6),
                "{name} {what}: all zero"
            );
        }
        counts.push(c.hypothetical);
        profiles.push(p.hypothetical);
    }
    let dc = rel_dev(&counts[1], &counts[0]);
    let dp = rel_dev(&profiles[1], &profiles[0]);
    println!("bpnet heads: dynamo vs torchscript hypothetical: counts {dc:.1e}, profile {dp:.1e}");
    assert!(dc <= 1e-12 && dp <= 1e-12, "{dc:e} {dp:e}");
}

/// DeepLIFT Rescale through `log(exp(a) + exp(b))` built from [`Exp`], [`Add`] and [`Log`]
/// equals the textbook chain of secants: with `s = eᵃ + eᵇ`, the multiplier of `a` is
/// `(Δ ln s / Δs) · (Δeᵃ / Δa)` (and the same for `b`), and the contributions of `a` and
/// `b` sum to the change of the output.
#[test]
fn log_sum_exp_follows_the_chain_of_secants() {
    use ndarray::array;
    use relevance::{Add, Baseline, DeepLift, Dense, Exp, GraphBuilder, Log};
    let mut g = GraphBuilder::<f64>::new(&[2]).unwrap();
    let a = g
        .add("a", Dense::new(array![[1.0, 0.0]], None).unwrap(), g.input())
        .unwrap();
    let b = g
        .add("b", Dense::new(array![[0.0, 1.0]], None).unwrap(), g.input())
        .unwrap();
    let ea = g.add("exp_a", Exp, a).unwrap();
    let eb = g.add("exp_b", Exp, b).unwrap();
    let s = g.merge("sum", Add::new(), &[ea, eb]).unwrap();
    let y = g.add("log", Log, s).unwrap();
    let net = g.build(y).unwrap();
    let (x, x0) = (array![[0.7, -1.3]], array![[-0.4, 0.9]]);
    let rule = DeepLift::rescale().with_threshold(1e-6).unwrap();
    let d = net
        .deeplift(
            &x.clone().into_dyn(),
            &Target::Class(0),
            &rule,
            &Baseline::PerSample(x0.clone().into_dyn()),
        )
        .unwrap();
    let s = |v: &ndarray::Array2<f64>| v[[0, 0]].exp() + v[[0, 1]].exp();
    let dlog = (s(&x).ln() - s(&x0).ln()) / (s(&x) - s(&x0));
    for j in 0..2 {
        let dexp = (x[[0, j]].exp() - x0[[0, j]].exp()) / (x[[0, j]] - x0[[0, j]]);
        let want = dlog * dexp;
        assert!(
            (d.multipliers[[0, j]] - want).abs() < 1e-14,
            "{j}: {} vs {want}",
            d.multipliers[[0, j]]
        );
    }
    let total: f64 = d.attribution.iter().sum();
    assert!((total - (s(&x).ln() - s(&x0).ln())).abs() < 1e-14);
    // ln of a non-positive number is not finite: an error, not a panic
    let bad = Network::<f64>::new(&[2], vec![Box::new(Log) as Box<dyn relevance::Layer<f64>>]).unwrap();
    let err = bad.forward(&array![[-1.0, 2.0]].into_dyn()).unwrap_err();
    assert!(format!("{err:?}").contains("NonFiniteResult"), "{err:?}");
}

/// `torch.logsumexp(torch.cat([acc, bias], -1), -1, keepdim=True)` of two count heads (the
/// form of bpnet-lite's `ChromBPNet.fit`), one `ReduceLogSumExp` node from both exporters:
/// it loads as Exp, a sum and Log, gives onnxruntime's and torch's outputs, and DeepLIFT-SHAP
/// through it is additive. tangermeme has no rule for the functional `torch.logsumexp` (its
/// gradient passes through), so its attributions of this model are not additive: no
/// reference to compare with here beyond its gap.
#[test]
fn logsumexp_counts_load_and_explain_additively() {
    let fx = load("chrombpnet_fixtures");
    let lse = &fx["logsumexp_counts"];
    let (x32, _) = inputs::<f32>(&fx);
    let (x, refs) = inputs::<f64>(&fx);
    let mut hyp = Vec::new();
    for name in ["logsumexp_counts_torchscript", "logsumexp_counts_dynamo"] {
        let d32 = rel_dev(
            &load_onnx::<f32>(path(name)).unwrap().forward(&x32).unwrap(),
            &tensor(&lse["onnxruntime"][name]),
        );
        let net: Network<f64> = load_onnx(path(name)).unwrap();
        let d64 = rel_dev(&net.forward(&x).unwrap(), &tensor(&lse["torch_f64"]));
        println!("{name}: f32 {d32:.1e} from onnxruntime, f64 {d64:.1e} from torch (f64)");
        assert!(d32 <= ORT_F32 && d64 <= TORCH_F64, "{name}: {d32:e} {d64:e}");
        let out = deep_lift_shap(&net, &x, &refs, &Target::Class(0)).unwrap();
        assert!(out.gap.iter().all(|g| g.abs() <= GAP_F64), "{name}: {}", out.gap);
        assert!(
            out.attributions.iter().any(|a| a.abs() > 1e-6),
            "{name}: all zero"
        );
        hyp.push(out.hypothetical);
    }
    assert!(rel_dev(&hyp[1], &hyp[0]) <= 1e-12);
    let gaps = lse["tangermeme_gap"].as_array().unwrap();
    assert!(gaps.iter().all(|g| g.as_f64().unwrap().abs() > 1e-7));
}
