//! bpnet-lite 1.1.0's `BPNet(n_control_tracks=2)` exported to ONNX with its two graph
//! inputs, `forward(X, X_ctl)`, by both PyTorch exporters
//! (`tests/fixtures/onnx/sequence/bpnet_control_{torchscript,dynamo}{,_f32}.onnx` and
//! `tests/fixtures/bpnet_control_onnx.json`, from `tools/gen_bpnet_control_onnx.py`), with
//! the weights of `tests/fixtures/bpnet_control_deep_lift_shap.json` (float64 in the
//! `.onnx` files, float32 in the `_f32` twins that onnxruntime ran). `X` is explained,
//! `X_ctl` becomes a held input: bound per sequence, each head must give onnxruntime's
//! float32 outputs and PyTorch's float64 ones, and its DeepLIFT-SHAP attributions
//! tangermeme 1.6.0's (count head) and bpnet-lite's (profile head) from the JSON fixture, as
//! the hand-built network of `held_inputs.rs` does.

use crate::common::{load, rel_dev, tensor};
use crate::held_inputs::{check_head, inputs, per_sequence};
use ndarray::{s, ArrayD, Axis};
use relevance::genomics::{deep_lift_shap, deep_lift_shap_profile, ProfileWeights, SequenceAttribution};
use relevance::io::{load_onnx_with, OnnxOptions};
use relevance::{Float, Network, Target};

/// Outputs against onnxruntime's float32 run, relative to the largest output.
const ORT_F32: f64 = 1e-5;
/// Outputs against PyTorch in float64 on the same weights.
const TORCH_F64: f64 = 1e-12;

const FILES: [&str; 2] = ["bpnet_control_torchscript", "bpnet_control_dynamo"];

fn model<F: Float>(name: &str, output: &str) -> Network<F> {
    let path = format!(
        "{}/tests/fixtures/onnx/sequence/{name}.onnx",
        env!("CARGO_MANIFEST_DIR")
    );
    let m = load_onnx_with::<F>(&path, &OnnxOptions::default().with_output(output))
        .unwrap_or_else(|e| panic!("{name} ({output}): {e}"));
    assert_eq!((m.input.as_str(), m.output.as_str()), ("X", output));
    m.network
}

/// Row `s` of a fixture tensor `[N, ...]` as `[1, ...]`.
fn row<F: Float>(t: &ArrayD<F>, s: usize) -> ArrayD<F> {
    t.index_axis(Axis(0), s).insert_axis(Axis(0)).to_owned()
}

#[test]
fn both_files_load_with_x_ctl_held() {
    for name in FILES.iter().flat_map(|n| [n.to_string(), format!("{n}_f32")]) {
        for output in ["profile", "counts"] {
            let net = model::<f32>(&name, output);
            assert_eq!(
                net.held_inputs(),
                vec![("X_ctl", &[2usize, 100][..])],
                "{name} {output}"
            );
            assert_eq!(net.input_shape(), &[4, 100]);
        }
    }
}

#[test]
fn bound_per_sequence_both_heads_match_onnxruntime_and_pytorch() {
    let fx = load("bpnet_control_deep_lift_shap");
    let manifest = load("bpnet_control_onnx");
    let inp = inputs(&fx);
    for name in FILES {
        for output in ["profile", "counts"] {
            let want32: ArrayD<f32> = tensor(&manifest["onnxruntime"][name][output]);
            let want64: ArrayD<f64> = tensor(&manifest["torch_f64"][output]);
            let (net32, twin32, net64) = (
                model::<f32>(name, output),
                model::<f32>(&format!("{name}_f32"), output),
                model::<f64>(name, output),
            );
            let (mut d32, mut d32_twin, mut d64) = (0.0_f64, 0.0_f64, 0.0_f64);
            for s in 0..inp.seqs.len() {
                let ctl64 = inp.ctl.slice(s![s..s + 1, .., ..]).to_owned().into_dyn();
                let ctl32 = ctl64.mapv(|v| v as f32);
                let x64 = inp.x.slice(s![s..s + 1, .., ..]).to_owned().into_dyn();
                let x32 = x64.mapv(|v| v as f32);
                // the ONNX profile is [N, 2, 20], the counts [N, 1]: the network's are the same
                let y32 = net32
                    .bind(std::slice::from_ref(&ctl32))
                    .unwrap()
                    .forward(&x32)
                    .unwrap();
                let t32 = twin32.bind(&[ctl32]).unwrap().forward(&x32).unwrap();
                let y64 = net64.bind(&[ctl64]).unwrap().forward(&x64).unwrap();
                d32 = d32.max(rel_dev(&y32, &row(&want32, s)));
                d32_twin = d32_twin.max(rel_dev(&t32, &row(&want32, s)));
                d64 = d64.max(rel_dev(&y64, &row(&want64, s)));
            }
            println!(
                "{name} {output}: f32 {d32:.1e} (float32 twin {d32_twin:.1e}) from onnxruntime, f64 {d64:.1e} from \
                 PyTorch (f64)"
            );
            assert!(
                d32 <= ORT_F32 && d32_twin <= ORT_F32,
                "{name} {output}: {d32:e}, {d32_twin:e}"
            );
            assert!(d64 <= TORCH_F64, "{name} {output}: f64 {d64:e} from PyTorch");
        }
    }
}

#[test]
fn imported_heads_match_tangermeme() {
    let fx = load("bpnet_control_deep_lift_shap");
    let inp = inputs(&fx);
    for name in FILES {
        for (head, output) in [("count", "counts"), ("profile", "profile")] {
            let net = model::<f64>(name, output);
            let parts: Vec<SequenceAttribution<f64>> = (0..inp.seqs.len())
                .map(|s| {
                    let (bound, x, refs) = per_sequence(&net, &inp, s);
                    if head == "count" {
                        deep_lift_shap(&bound, &x, &refs, &Target::Class(0)).unwrap()
                    } else {
                        deep_lift_shap_profile(&bound, &x, &refs, ProfileWeights::Additive).unwrap()
                    }
                })
                .collect();
            println!("{name}:");
            check_head(&fx, &inp, head, &SequenceAttribution::concat(&parts).unwrap());
        }
    }
}
