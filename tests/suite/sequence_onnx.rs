//! A 1-D convolutional network on one-hot DNA (`tests/fixtures/onnx/sequence/`, written with
//! `tests/fixtures/sequence_conv1d.json` by `tools/gen_sequence_fixtures.py`), as both PyTorch
//! exporters write it: `Conv` with 3-D weights ("same" padding, dilation, groups, stride),
//! `MaxPool`, `AveragePool`, `Softplus`, a `Slice` along the length, `GlobalAveragePool` or
//! `ReduceMean`. Each file must load and give onnxruntime's float32 outputs, torch's float64
//! outputs on the same weights, and captum's DeepLift and DeepLiftShap attributions.

use crate::common::{load, rel_dev, tensor};
use ndarray::ArrayD;
use relevance::io::load_onnx;
use relevance::{Baseline, DeepLift, Network, Target};

/// Outputs against onnxruntime's float32 run, relative to the largest output.
const ORT_F32: f64 = 1e-5;
/// Outputs against torch in float64 on the same weights (measured in the test's message).
const TORCH_F64: f64 = 1e-12;
/// DeepLIFT against captum in float64.
const CAPTUM_F64: f64 = 1e-9;

const FILES: [&str; 2] = ["conv1d_torchscript", "conv1d_dynamo"];

fn model(name: &str) -> Network<f64> {
    let path = format!(
        "{}/tests/fixtures/onnx/sequence/{name}.onnx",
        env!("CARGO_MANIFEST_DIR")
    );
    load_onnx(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn conv1d_onnx_outputs_match_onnxruntime_and_torch() {
    let fx = load("sequence_conv1d");
    let x: ArrayD<f64> = tensor(&fx["input"]);
    for name in FILES {
        let net = model(name);
        assert_eq!(net.input_shape(), &[4, 40], "{name}");
        let y = net.forward(&x).unwrap();
        let ort = rel_dev(&y, &tensor(&fx["ort_output"][name]));
        assert!(ort <= ORT_F32, "{name}: {ort:e} from onnxruntime");
        let torch = rel_dev(&y, &tensor(&fx["output"]));
        assert!(torch <= TORCH_F64, "{name}: {torch:e} from torch (f64)");
        println!("{name}: onnxruntime {ort:.1e}, torch f64 {torch:.1e}");
    }
}

#[test]
fn conv1d_onnx_deeplift_matches_captum() {
    let fx = load("sequence_conv1d");
    let x: ArrayD<f64> = tensor(&fx["input"]);
    let target = Target::PerSample(
        fx["target"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as usize)
            .collect(),
    );
    for name in FILES {
        let net = model(name);
        for case in fx["cases"].as_array().unwrap() {
            let refs: ArrayD<f64> = tensor(&case["baselines"]);
            let baseline = match case["captum"].as_str().unwrap() {
                "DeepLift" => Baseline::PerSample(refs),
                _ => Baseline::Distribution(refs),
            };
            let d = net
                .deeplift(&x, &target, &DeepLift::rescale(), &baseline)
                .unwrap();
            let dev = rel_dev(&d.attribution, &tensor(&case["attribution"]));
            let case_name = case["name"].as_str().unwrap();
            assert!(dev <= CAPTUM_F64, "{name}, {case_name}: {dev:e} from captum");
            let delta: ArrayD<f64> = tensor(&case["delta"]);
            for (ours, theirs) in d.delta.iter().zip(delta.iter()) {
                assert!(
                    (ours - theirs).abs() <= 1e-10,
                    "{name}, {case_name}: delta {ours:e} vs captum's {theirs:e}"
                );
            }
            println!("{name}, {case_name}: {dev:.1e} from captum");
        }
    }
}
