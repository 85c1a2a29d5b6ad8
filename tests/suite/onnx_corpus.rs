//! The ONNX corpus (`tests/fixtures/onnx/`, written by `tools/gen_onnx_corpus.py`): small
//! torchvision classifiers (ResNet, VGG-BN, MobileNetV2/V3, SqueezeNet, DenseNet,
//! EfficientNet, ShuffleNetV2, GoogLeNet, AlexNet) as PyTorch's TorchScript and dynamo
//! exporters write them (dynamic and literal batch, weights inline and in external data
//! files), and four models other people trained and published (see NOTICE). For each one
//! the manifest holds onnxruntime's float32 outputs on three inputs.
//!
//! Every file must load, reproduce onnxruntime's outputs (1e-5 relative to the largest
//! output, float32; a removed trailing Softmax/LogSoftmax is re-applied for the comparison),
//! and explain: finite LRP relevance (its conservation gap is reported, not asserted: biases
//! and ε absorb relevance), and DeepLIFT against a zero baseline in float64 whose
//! contributions sum to the output difference (1e-9 relative). The files that do not load
//! yet must fail with the typed error naming what is missing, so that the table below stays
//! true. Run with `--nocapture` to see the corpus table.
//!
//! The patterns (`tests/fixtures/onnx/patterns/`, written by `tools/gen_onnx_patterns.py`)
//! are small models written node by node that reproduce what published models converted by
//! other tools contain (a channels-last TensorFlow export, CoreML's −FLT_MAX paddings); they
//! are checked the same way, and for what the importer makes of them.

use crate::common::bounds::{ONNX_CORPUS, ONNX_CORPUS_DEEPLIFT_GAP, ONNX_CORPUS_LOADED};
use ndarray::{ArrayD, Axis, IxDyn};
use relevance::io::{load_onnx_with, OnnxOptions};
use relevance::{Baseline, Composite, DeepLift, Error, Float, Target};
use serde_json::Value;
use std::path::PathBuf;

/// Files that do not load yet, with the operator that stops them: PyTorch's dynamo exporter
/// decomposes an adaptive average pooling whose windows overlap (an upsampling
/// `AdaptiveAvgPool2d`, e.g. VGG's (7, 7) on a 4×4 map) into `GatherND` index arithmetic.
const KNOWN_UNSUPPORTED: &[(&str, &str)] = &[
    ("alexnet_dynamo", "GatherND"),
    ("vgg_bn_cifar_dynamo", "GatherND"),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn manifest() -> Value {
    read_manifest("manifest.json")
}

fn read_manifest(rel: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(rel)).expect(rel);
    serde_json::from_str(&text).expect("valid JSON")
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

/// The float32 inputs onnxruntime was fed (little-endian, C order).
fn inputs<F: Float>(entry: &Value) -> ArrayD<F> {
    let spec = &entry["inputs"];
    assert_eq!(spec["dtype"], "float32-le");
    let bytes = std::fs::read(dir().join(spec["file"].as_str().unwrap())).unwrap();
    let data: Vec<F> = bytes
        .chunks_exact(4)
        .map(|c| F::lit(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
        .collect();
    ArrayD::from_shape_vec(IxDyn(&dims(&spec["shape"])), data).unwrap()
}

fn logits(entry: &Value) -> ArrayD<f64> {
    let t = &entry["logits"];
    let data = t["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    ArrayD::from_shape_vec(IxDyn(&dims(&t["shape"])), data).unwrap()
}

/// Re-applies what the importer removed at the output (the notes say so), row by row.
fn reapply(out: &ArrayD<f64>, notes: &[String]) -> ArrayD<f64> {
    let removed = |op: &str| {
        notes
            .iter()
            .any(|n| n.starts_with(&format!("removed the trailing {op} ")))
    };
    let (soft, log) = (removed("Softmax"), removed("LogSoftmax"));
    let mut y = out.clone();
    if soft || log {
        for mut row in y.axis_iter_mut(Axis(0)) {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            row.mapv_inplace(|v| if log { v - lse } else { (v - lse).exp() });
        }
    }
    y
}

/// max |a − b| / max(1, max |b|).
fn max_rel(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

fn options(entry: &Value) -> OnnxOptions {
    OnnxOptions::default().with_input_shape(&dims(&entry["input_shape"]))
}

fn to_f64<F: Float>(a: &ArrayD<F>) -> ArrayD<f64> {
    a.mapv(|v| v.to_f64().unwrap())
}

struct Row {
    name: String,
    nodes: usize,
    dev32: f64,
    dev64: f64,
    lrp_gap: f64,
    deeplift_gap: f64,
}

/// Loads, runs and explains one corpus file; `Err` for a file that does not load.
fn check(entry: &Value) -> Result<Row, Error> {
    let name = entry["name"].as_str().unwrap().to_string();
    let path = dir().join(entry["file"].as_str().unwrap());
    let want = logits(entry);
    let m32 = load_onnx_with::<f32>(&path, &options(entry))?;
    let x32 = inputs::<f32>(entry);
    let out32 = reapply(&to_f64(&m32.network.forward(&x32).unwrap()), &m32.notes);
    let dev32 = max_rel(&out32, &want);
    let m64 = load_onnx_with::<f64>(&path, &options(entry))?;
    let x64 = inputs::<f64>(entry);
    let raw64 = m64.network.forward(&x64).unwrap();
    let dev64 = max_rel(&reapply(&raw64, &m64.notes), &want);

    // explain the top class of every sample
    let top: Vec<usize> = raw64
        .axis_iter(Axis(0))
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > r[b] { i } else { b })
        })
        .collect();
    let target32 = Target::PerSample(top.clone());
    let lrp = m32
        .network
        .attribute(&x32, &target32, &Composite::epsilon_plus_flat())
        .unwrap();
    assert!(
        lrp.relevance.iter().all(|v| v.is_finite()),
        "{name}: non-finite LRP relevance"
    );
    assert!(
        lrp.relevance.iter().any(|v| *v != 0.0),
        "{name}: all-zero LRP relevance"
    );
    let lrp_gap = (0..top.len())
        .map(|i| (lrp.delta[i] as f64).abs() / (lrp.total[i] as f64).abs().max(1e-3))
        .fold(0.0, f64::max);

    let dl = m64
        .network
        .deeplift(
            &x64,
            &Target::PerSample(top.clone()),
            &DeepLift::rescale(),
            &Baseline::Zero,
        )
        .unwrap();
    assert!(
        dl.attribution.iter().all(|v| v.is_finite()),
        "{name}: non-finite DeepLIFT attribution"
    );
    let deeplift_gap = (0..top.len())
        .map(|i| {
            // against the difference itself: dl.delta = total − Σ attribution
            let diff = dl.output[[i, top[i]]] - dl.baseline_output[[0, top[i]]];
            assert!(
                (dl.total[i] - diff).abs() <= 1e-12 * diff.abs().max(1.0),
                "{name}: total"
            );
            dl.delta[i].abs() / diff.abs().max(1.0)
        })
        .fold(0.0, f64::max);
    Ok(Row {
        name,
        nodes: m64.network.nodes().len(),
        dev32,
        dev64,
        lrp_gap,
        deeplift_gap,
    })
}

#[test]
fn corpus_loads_matches_onnxruntime_and_explains() {
    let m = manifest();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut not_exported = Vec::new();
    for entry in m["entries"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        if entry["file"].is_null() {
            // the exporter itself failed (recorded by the generator)
            not_exported.push(name.to_string());
            continue;
        }
        let known = KNOWN_UNSUPPORTED
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix));
        match (check(entry), known) {
            (Ok(row), None) => rows.push(row),
            (Ok(_), Some((_, op))) => {
                panic!("{name} loads now (was stopped by {op}): move it out of KNOWN_UNSUPPORTED")
            }
            (Err(e), Some((_, op))) => {
                let msg = e.to_string();
                assert!(matches!(e, Error::UnsupportedOperator { .. }), "{name}: {msg}");
                assert!(msg.contains(op), "{name}: expected {op} in {msg}");
                failures.push(format!("{name}: {msg}"));
            }
            (Err(e), None) => panic!("{name} does not load: {e}"),
        }
    }
    println!(
        "{:<36} {:>5} {:>10} {:>10} {:>10} {:>10}",
        "model", "nodes", "f32 dev", "f64 dev", "LRP gap", "DL gap"
    );
    for r in &rows {
        println!(
            "{:<36} {:>5} {:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e}",
            r.name, r.nodes, r.dev32, r.dev64, r.lrp_gap, r.deeplift_gap
        );
    }
    for f in &failures {
        println!("does not load: {f}");
    }
    println!("not exported by PyTorch: {}", not_exported.join(", "));
    let worst32 = rows.iter().map(|r| r.dev32).fold(0.0, f64::max);
    println!("worst float32 deviation from onnxruntime: {worst32:.2e} (bound {ONNX_CORPUS:e})");
    for r in &rows {
        assert!(
            r.dev32 <= ONNX_CORPUS,
            "{}: float32 outputs deviate from onnxruntime by {:.2e}",
            r.name,
            r.dev32
        );
        assert!(
            r.dev64 <= ONNX_CORPUS,
            "{}: float64 outputs deviate from onnxruntime by {:.2e}",
            r.name,
            r.dev64
        );
        assert!(
            r.deeplift_gap <= ONNX_CORPUS_DEEPLIFT_GAP,
            "{}: DeepLIFT summation-to-delta gap {:.2e}",
            r.name,
            r.deeplift_gap
        );
    }
    // the corpus is what the manifest says: every family and the published models are there
    assert_eq!(rows.len(), ONNX_CORPUS_LOADED, "files checked");
    assert_eq!(failures.len(), 6, "files that do not load: {failures:?}");
    for family in [
        "resnet",
        "vgg_bn",
        "mobilenet_v2",
        "squeezenet",
        "densenet",
        "efficientnet",
        "real_",
    ] {
        assert!(
            rows.iter().any(|r| r.name.starts_with(family)),
            "no {family} model checked"
        );
    }
}

/// With `keep_softmax`, a model that ends in a `Softmax` keeps it: the network's outputs are
/// onnxruntime's probabilities themselves, and DeepLIFT explains them (captum's rule).
#[test]
fn corpus_softmax_kept() {
    let m = manifest();
    let mut checked = 0;
    for entry in m["entries"].as_array().unwrap() {
        if entry["file"].is_null() || entry["ops"].get("Softmax").is_none() {
            continue;
        }
        let name = entry["name"].as_str().unwrap();
        let path = dir().join(entry["file"].as_str().unwrap());
        let options = options(entry).with_softmax_kept();
        let model = load_onnx_with::<f64>(&path, &options).unwrap();
        assert!(
            model.notes.iter().all(|n| !n.contains("Softmax")),
            "{name}: {:?}",
            model.notes
        );
        let x = inputs::<f64>(entry);
        let y = model.network.forward(&x).unwrap();
        let dev = max_rel(&y, &logits(entry));
        assert!(dev <= ONNX_CORPUS, "{name}: probabilities deviate by {dev:e}");
        let d = model
            .network
            .deeplift(&x, &Target::Class(0), &DeepLift::rescale(), &Baseline::Zero)
            .unwrap();
        assert!(d.attribution.iter().all(|v| v.is_finite()), "{name}");
        println!("{name}: softmax kept, probabilities within {dev:.2e}");
        checked += 1;
    }
    assert_eq!(checked, 1, "models with a trailing Softmax in the corpus");
}

/// The layers of a network whose names start with `kind` (e.g. "Permute("), by node name.
fn layers_of(net: &relevance::Network<f64>, kind: &str) -> Vec<(usize, String)> {
    net.nodes()
        .iter()
        .enumerate()
        .filter(|(_, n)| n.layer().is_some_and(|l| l.name().starts_with(kind)))
        .map(|(k, n)| (k, n.name().to_string()))
        .collect()
}

/// Patterns of published models that PyTorch's exporters never write: each loads,
/// reproduces onnxruntime and explains (the corpus' bounds), and the importer makes of it
/// what the file means, with nothing extra: the channels-last graph's ten transposes cancel
/// out except where the NHWC input enters the first convolution (one `Permute`, the first
/// node: the network takes NHWC, as the file says), and the −FLT_MAX / −∞ paddings become
/// the max-pools' own.
#[test]
fn patterns_load_match_onnxruntime_and_explain() {
    let m = read_manifest("patterns/manifest.json");
    let entries = m["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        let name = entry["name"].as_str().unwrap();
        let row = check(entry).unwrap_or_else(|e| panic!("{name} does not load: {e}"));
        println!(
            "{name}: {} nodes, f32 {:.2e}, f64 {:.2e}, LRP gap {:.2e}, DeepLIFT gap {:.2e}",
            row.nodes, row.dev32, row.dev64, row.lrp_gap, row.deeplift_gap
        );
        assert!(
            row.dev32 <= 1e-5 && row.dev64 <= 1e-5,
            "{name}: {:.2e} {:.2e}",
            row.dev32,
            row.dev64
        );
        assert!(
            row.deeplift_gap <= 1e-9,
            "{name}: DeepLIFT gap {:.2e}",
            row.deeplift_gap
        );
        let model =
            load_onnx_with::<f64>(dir().join(entry["file"].as_str().unwrap()), &options(entry)).unwrap();
        let net = &model.network;
        let folded = model.notes.iter().filter(|n| n.contains("Pad of −∞")).count();
        match name {
            "nhwc_resnet" => {
                let permutes = layers_of(net, "Permute(");
                assert_eq!(permutes.len(), 1, "{permutes:?}");
                assert_eq!(permutes[0].0, 0, "the NHWC input is permuted first: {permutes:?}");
                assert_eq!(net.input_shape(), &[12, 12, 3]);
                // the zero Pad of H and W in NHWC is one Pad layer on the NCHW tensor
                let pads = layers_of(net, "Pad(");
                assert_eq!(pads.len(), 1, "{pads:?}");
                assert_eq!(folded, 1, "{:?}", model.notes);
            }
            "coreml_squeezenet" => {
                assert!(layers_of(net, "Pad(").is_empty() && layers_of(net, "Permute(").is_empty());
                assert_eq!(folded, 3, "{:?}", model.notes);
            }
            other => panic!("unexpected pattern {other}"),
        }
    }
}
