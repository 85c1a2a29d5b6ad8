//! Model and data loading: the bundled digits model through both loaders reproduces the
//! PyTorch logits of `tools/train_digits.py`; bad files give typed errors, never panics.
#![cfg(all(feature = "safetensors", feature = "onnx"))]

use crate::common::bounds::{DIGITS_CORRECT, DIGITS_LOGITS_F32, DIGITS_LOGITS_F64, DIGITS_TOTAL};
use crate::common::fuzz::{self, Tally};
use crate::common::{mutate, zip_exact};
use ndarray::{array, ArrayD};
use proptest::prelude::*;
use relevance::io::{
    from_onnx, from_safetensors, load_onnx, load_safetensors, read_npy, write_npy, Architecture, Digits,
};
use relevance::{Dense, Error, Flatten, Network, Relu};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

fn path(rel: &str) -> String {
    format!("{DIR}/{rel}")
}

fn bytes(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap()
}

struct Fixture {
    labels: Vec<usize>,
    predictions: Vec<usize>,
    accuracy: f64,
    logits: Vec<Vec<f64>>,
    logits_f64: Vec<Vec<f64>>,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(path("tests/fixtures/digits_logits.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    fn get<T: serde::de::DeserializeOwned>(v: &serde_json::Value, k: &str) -> T {
        serde_json::from_value(v[k].clone()).unwrap()
    }
    Fixture {
        labels: get(&v, "labels"),
        predictions: get(&v, "predictions"),
        accuracy: v["accuracy"].as_f64().unwrap(),
        logits: get(&v, "logits"),
        logits_f64: get(&v, "logits_f64"),
    }
}

fn digits() -> Digits {
    Digits::load(path("data/digits_test.bin")).unwrap()
}

fn argmax(row: ndarray::ArrayView1<'_, f64>) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Largest absolute and relative (to max(1, |logit|)) difference between `y` and `reference`.
fn diff(y: &ArrayD<f64>, reference: &[Vec<f64>]) -> (f64, f64) {
    assert_eq!(y.shape(), &[reference.len(), reference[0].len()]);
    let (mut abs, mut rel) = (0f64, 0f64);
    for (i, row) in reference.iter().enumerate() {
        for (c, &r) in row.iter().enumerate() {
            let d = (y[[i, c]] - r).abs();
            abs = abs.max(d);
            rel = rel.max(d / r.abs().max(1.0));
        }
    }
    (abs, rel)
}

/// Checks a loaded pair of networks (f32, f64) against the PyTorch logits; returns the
/// largest differences for the report.
fn check_against_pytorch(net32: &Network<f32>, net64: &Network<f64>, loader: &str) {
    let fx = fixture();
    let d = digits();
    assert_eq!(d.len(), 500);
    assert_eq!(
        d.labels().iter().map(|&l| l as usize).collect::<Vec<_>>(),
        fx.labels
    );

    // f64: the same float32 weights evaluated in float64, as PyTorch's `model.double()`
    let y64 = net64.forward(&d.all_images::<f64>()).unwrap();
    let (abs64, rel64) = diff(&y64, &fx.logits_f64);
    let (abs64_vs_f32, _) = diff(&y64, &fx.logits);
    // f32: summation order differs from PyTorch's, so compare relative to the logit size
    let y32 = net32.forward(&d.all_images::<f32>()).unwrap().mapv(f64::from);
    let (abs32, rel32) = diff(&y32, &fx.logits);
    println!(
        "{loader}: max |Rust f64 - PyTorch f64| = {abs64:.2e} (relative {rel64:.2e}, bound \
         {DIGITS_LOGITS_F64:e}), max |Rust f64 - PyTorch f32| = {abs64_vs_f32:.2e}, \
         max |Rust f32 - PyTorch f32| = {abs32:.2e} (relative {rel32:.2e}, bound {DIGITS_LOGITS_F32:e})"
    );
    assert!(
        rel64 < DIGITS_LOGITS_F64,
        "{loader}: f64 logits differ by {abs64} (relative {rel64})"
    );
    assert!(
        abs64_vs_f32 < 1e-5,
        "{loader}: f64 logits differ from PyTorch float32 by {abs64_vs_f32}"
    );
    assert!(
        rel32 < DIGITS_LOGITS_F32,
        "{loader}: f32 logits differ by {abs32} (relative {rel32})"
    );

    for y in [&y64, &y32] {
        let pred: Vec<usize> = y.rows().into_iter().map(argmax).collect();
        assert_eq!(
            pred, fx.predictions,
            "{loader}: predictions differ from PyTorch's"
        );
        let correct = zip_exact(&pred, &fx.labels).filter(|(p, l)| p == l).count();
        assert_eq!(
            (correct, fx.labels.len()),
            (DIGITS_CORRECT, DIGITS_TOTAL),
            "{loader}: correct digits (the README's accuracy)"
        );
        assert_eq!(correct as f64 / fx.labels.len() as f64, fx.accuracy);
    }
}

#[test]
fn safetensors_reproduces_pytorch_logits() {
    let (arch, w) = (path("models/digits.json"), path("models/digits.safetensors"));
    let net32 = load_safetensors::<f32>(&arch, &w).unwrap();
    let net64 = load_safetensors::<f64>(&arch, &w).unwrap();
    check_against_pytorch(&net32, &net64, "safetensors");
}

#[test]
fn onnx_reproduces_pytorch_logits() {
    let net32 = load_onnx::<f32>(path("models/digits.onnx")).unwrap();
    let net64 = load_onnx::<f64>(path("models/digits.onnx")).unwrap();
    check_against_pytorch(&net32, &net64, "onnx");
}

#[test]
fn both_loaders_build_the_same_network() {
    let a = load_safetensors::<f32>(path("models/digits.json"), path("models/digits.safetensors")).unwrap();
    let b = load_onnx::<f32>(path("models/digits.onnx")).unwrap();
    let names = |n: &Network<f32>| n.nodes().iter().map(|l| l.describe()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    assert_eq!(a.shapes(), b.shapes());
    let x = digits().images::<f32>(&[0, 1, 2, 3]).unwrap();
    assert_eq!(a.forward(&x).unwrap(), b.forward(&x).unwrap());
}

// ---------------------------------------------------------------------------------------
// Fuzzing: random bytes, truncations and bit flips of the real files. A loader may accept
// a mutated file (most flips only change a weight) but must never panic; an accepted
// network must run and explain, or fail with a typed error of an expected kind. Each
// target counts what happened (`common::fuzz::Tally`) and asserts that a share of its
// mutants loads, so that the mutations reach the code after the decoders. The minimum
// shares are about a third of the measured ones (ONNX 32 %, safetensors and architecture
// 15 %, digits and .npy 20 %): five standard deviations or more below them at 400 cases.

/// What an accepted network may fail with: a flipped exponent bit can make a weight huge,
/// and its products overflow f32.
const LOADED_MAY_FAIL_WITH: &[&str] = &["NonFiniteResult"];

fn try_architecture(tally: &mut Tally, text: &[u8], weights: &[u8]) {
    match std::str::from_utf8(text) {
        Ok(text) => match Architecture::from_json(text) {
            Ok(arch) => tally.load(from_safetensors::<f32>(&arch, weights)),
            Err(e) => tally.read::<()>(Err(e)),
        },
        Err(_) => tally.read::<()>(Err(Error::Format {
            what: "architecture".into(),
            reason: "not UTF-8".into(),
        })),
    }
}

fn arch() -> Architecture {
    Architecture::load(path("models/digits.json")).unwrap()
}

const FUZZ_CASES: u32 = 400;

#[test]
fn fuzz_random_bytes() {
    // random bytes are never a model, an architecture, digits or an array
    let t = fuzz::run(
        FUZZ_CASES,
        proptest::collection::vec(any::<u8>(), 0..4096),
        |data, t| {
            t.load(from_onnx::<f32>(&data));
            t.load(from_safetensors::<f32>(&arch(), &data));
            try_architecture(t, &data, &data);
            t.read(Digits::from_bytes(&data));
            t.read(read_npy::<f32>(&data));
        },
    );
    t.check("random bytes", 0.0, &[]);
    assert_eq!(t.loaded, 0, "random bytes loaded: {t}");
    assert_eq!(t.tried, 5 * FUZZ_CASES as usize);
}

#[test]
fn fuzz_onnx_mutations() {
    let strategy = (
        proptest::collection::vec((any::<usize>(), 0u8..8), 0..6),
        proptest::option::of(any::<usize>()),
        any::<bool>(),
    );
    let t = fuzz::run(FUZZ_CASES, strategy, |(flips, cut, head), t| {
        let mut data = bytes("models/digits.onnx");
        if head {
            // aim the flips at the graph structure (nodes come first, weights last)
            data.truncate(data.len().min(2048));
            let mut full = bytes("models/digits.onnx");
            let m = mutate(data, &flips, None);
            full[..m.len()].copy_from_slice(&m);
            t.load(from_onnx::<f32>(&mutate(full, &[], cut)));
        } else {
            t.load(from_onnx::<f32>(&mutate(data, &flips, cut)));
        }
    });
    t.check("ONNX mutations", 0.15, LOADED_MAY_FAIL_WITH);
}

#[test]
fn fuzz_safetensors_mutations() {
    let strategy = (
        proptest::collection::vec((0usize..1024, 0u8..8), 0..6),
        proptest::collection::vec((any::<usize>(), 0u8..8), 0..3),
        proptest::option::of(any::<usize>()),
    );
    let t = fuzz::run(FUZZ_CASES, strategy, |(flips, far, cut), t| {
        // flips in the JSON header (the first KiB) and anywhere
        let data = mutate(bytes("models/digits.safetensors"), &flips, None);
        t.load(from_safetensors::<f32>(&arch(), &mutate(data, &far, cut)));
    });
    t.check("safetensors mutations", 0.05, LOADED_MAY_FAIL_WITH);
}

#[test]
fn fuzz_architecture_mutations() {
    let strategy = (
        proptest::collection::vec((any::<usize>(), 0u8..8), 0..4),
        proptest::option::of(any::<usize>()),
    );
    let t = fuzz::run(FUZZ_CASES, strategy, |(flips, cut), t| {
        let text = mutate(bytes("models/digits.json"), &flips, cut);
        try_architecture(t, &text, &bytes("models/digits.safetensors"));
    });
    t.check("architecture mutations", 0.05, LOADED_MAY_FAIL_WITH);
}

#[test]
fn fuzz_digits_and_npy_mutations() {
    let strategy = (
        proptest::collection::vec((0usize..64, 0u8..8), 0..4),
        proptest::option::of(any::<usize>()),
    );
    let t = fuzz::run(FUZZ_CASES, strategy, |(flips, cut), t| {
        t.read(Digits::from_bytes(&mutate(
            bytes("data/digits_test.bin"),
            &flips,
            cut,
        )));
        let npy = write_npy(&ArrayD::<f32>::from_elem(vec![2, 3, 4], 1.5));
        t.read(read_npy::<f64>(&mutate(npy, &flips, cut)));
    });
    t.check("digits and .npy mutations", 0.1, &[]);
}

#[test]
fn every_truncation_is_an_error() {
    let onnx = bytes("models/digits.onnx");
    let st = bytes("models/digits.safetensors");
    let a = arch();
    // every length in the first 4 KiB and the last 512 bytes, every 257th in between
    let step = |len: usize, total: usize| if len < 4096 || len + 512 >= total { 1 } else { 257 };
    let mut len = 0;
    while len < onnx.len() {
        assert!(
            from_onnx::<f32>(&onnx[..len]).is_err(),
            "ONNX truncated to {len} bytes was accepted"
        );
        len += step(len, onnx.len());
    }
    len = 0;
    while len < st.len() {
        assert!(
            from_safetensors::<f32>(&a, &st[..len]).is_err(),
            "safetensors truncated to {len} bytes was accepted"
        );
        len += step(len, st.len());
    }
    let d = bytes("data/digits_test.bin");
    for len in (0..d.len()).step_by(97) {
        assert!(matches!(Digits::from_bytes(&d[..len]), Err(Error::Format { .. })));
    }
}

// ---------------------------------------------------------------------------------------
// Hand-made ONNX models: the same prost derive the loader uses, with the field numbers of
// onnx.proto, encoding just what these tests need.

mod onnx_proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorType>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorType {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
    }
}

use onnx_proto::*;
use prost::Message as _;

fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: name.to_string(),
        op_type: op.to_string(),
        attribute: vec![],
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: 0.0,
        i: 0,
        ints: v.to_vec(),
        r#type: 7,
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: 0.0,
        i: v,
        ints: vec![],
        r#type: 2,
    }
}

fn floats(name: &str, dims: &[i64], values: Vec<f32>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: 1,
        float_data: values,
        name: name.into(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: 1,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            dim_value: *d,
                            dim_param: d.is_none().then(|| "batch".to_string()),
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// A model with input `x` `[batch, input...]`, the given nodes and initializers, output `y`.
fn model(input: &[i64], nodes: Vec<NodeProto>, init: Vec<TensorProto>) -> Vec<u8> {
    let mut dims = vec![None];
    dims.extend(input.iter().map(|&d| Some(d)));
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: init,
            input: vec![value_info("x", &dims)],
            output: vec![value_info("y", &[None])],
        }),
    }
    .encode_to_vec()
}

fn dense_weights() -> (Vec<f32>, Vec<f32>) {
    // W [3, 4] (out, in), b [3]
    (
        (0..12).map(|i| (i as f32 - 5.5) / 4.0).collect(),
        vec![0.5, -0.25, 1.0],
    )
}

#[test]
fn onnx_matmul_add_and_reshape_become_dense_and_flatten() {
    let (w, b) = dense_weights();
    // MatMul takes W transposed: [in, out]
    let wt: Vec<f32> = (0..4)
        .flat_map(|i| (0..3).map(move |o| (o, i)))
        .map(|(o, i)| w[o * 4 + i])
        .collect();
    let bytes = model(
        &[1, 2, 2],
        vec![
            node("reshape", "Reshape", &["x", "shape"], "flat"),
            node("mm", "MatMul", &["flat", "W"], "z"),
            node("bias", "Add", &["z", "b"], "a"),
            node("relu", "Relu", &["a"], "y"),
        ],
        vec![
            TensorProto {
                dims: vec![2],
                data_type: 7,
                int64_data: vec![-1, 4],
                name: "shape".into(),
                ..Default::default()
            },
            floats("W", &[4, 3], wt),
            floats("b", &[3], b.clone()),
        ],
    );
    let net = from_onnx::<f64>(&bytes).unwrap();
    let by_hand = Network::<f64>::new(
        &[1, 2, 2],
        vec![
            Box::new(Flatten),
            Box::new(
                Dense::new(
                    ndarray::Array2::from_shape_vec((3, 4), w.iter().map(|&v| v as f64).collect()).unwrap(),
                    Some(b.iter().map(|&v| v as f64).collect()),
                )
                .unwrap(),
            ),
            Box::new(Relu),
        ],
    )
    .unwrap();
    let x = array![[[[1.0, -2.0], [0.5, 3.0]]], [[[0.0, 1.0], [-1.0, 2.0]]]].into_dyn();
    assert_eq!(net.forward(&x).unwrap(), by_hand.forward(&x).unwrap());
}

fn gemm_model(op: &str, weight_name: &str, weight_dims: &[i64], input: i64) -> Vec<u8> {
    let (w, b) = dense_weights();
    let mut gemm = node("fc", "Gemm", &["x", "W", "b"], "z");
    gemm.attribute.push(int_attr("transB", 1));
    model(
        &[input],
        vec![gemm, node("act", op, &["z"], "y")],
        vec![floats(weight_name, weight_dims, w), floats("b", &[3], b)],
    )
}

#[test]
fn onnx_gemm_model_loads() {
    let net = from_onnx::<f32>(&gemm_model("Relu", "W", &[3, 4], 4)).unwrap();
    assert_eq!(net.output_shape(), &[3]);
}

#[test]
fn onnx_unsupported_operator_names_the_node() {
    let err = from_onnx::<f32>(&gemm_model("LpNormalization", "W", &[3, 4], 4)).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOperator { node, op, .. } if node == "act" && op == "LpNormalization"),
        "{err:?}"
    );
    // the real model with its first Relu turned into a Sinh (same length, same protobuf)
    let mut real = bytes("models/digits.onnx");
    let pat = b"\x22\x04Relu"; // field 4 (op_type), length 4
    let at = real.windows(pat.len()).position(|w| w == pat).unwrap();
    real[at + 2..at + 6].copy_from_slice(b"Sinh");
    let err = from_onnx::<f32>(&real).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOperator { node, op, .. } if node == "/relu1/Relu" && op == "Sinh"),
        "{err:?}"
    );
    assert!(err.to_string().contains("/relu1/Relu"));
    // every unsupported operator is listed at once, with counts and the first node of each
    let mut both = bytes("models/digits.onnx");
    for (k, at) in both
        .windows(pat.len())
        .enumerate()
        .filter(|(_, w)| *w == pat)
        .map(|(k, _)| k)
        .collect::<Vec<_>>()
        .into_iter()
        .enumerate()
    {
        both[at + 2..at + 6].copy_from_slice(if k == 0 { b"Sinh" } else { b"Cosh" });
    }
    let err = from_onnx::<f32>(&both).unwrap_err().to_string();
    assert!(err.contains("Sinh ×1") && err.contains("Cosh ×2"), "{err}");
}

/// One error names everything that stands in the way: operators without a layer (by count,
/// first node) and nodes refused for their inputs, found by the first pass (a `Pad` of a
/// value that is neither 0 nor −∞ before a max-pool) and by the walk (a `MatMul` of computed vectors, a `Mul` of computed tensors whose shapes do
/// not broadcast); what reads a refused node is not reported again.
#[test]
fn onnx_error_lists_every_refused_node() {
    let (w, b) = dense_weights();
    let mut gemm = node("fc", "Gemm", &["h", "W", "b"], "g");
    gemm.attribute.push(int_attr("transB", 1));
    let bytes = model(
        &[4],
        vec![
            node("a", "Relu", &["x"], "h"),
            gemm,
            node("mm", "MatMul", &["h", "x"], "m"),
            node("pad", "Pad", &["h", "pads", "two"], "p"),
            node("sinh", "Sinh", &["h"], "s"),
            node("mul", "Mul", &["h", "g"], "u"),
            node("sum", "Sum", &["m", "p", "s", "u"], "y"),
        ],
        vec![
            floats("W", &[3, 4], w),
            floats("b", &[3], b),
            TensorProto {
                dims: vec![4],
                data_type: 7,
                int64_data: vec![0, 1, 0, 1],
                name: "pads".into(),
                ..Default::default()
            },
            floats("two", &[], vec![2.0]),
        ],
    );
    let err = from_onnx::<f32>(&bytes).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOperator { node, op, .. } if node == "sinh" && op == "Sinh"),
        "{err:?}"
    );
    let msg = err.to_string();
    for part in [
        "Sinh ×1",
        "3 node(s) cannot be imported",
        "MatMul \"mm\" (of computed tensors of per-sample shapes [4] and [4] (each needs at least two axes",
        "Pad \"pad\" (constant value 2",
        "Mul \"mul\" (of computed tensors of per-sample shapes [4] and [3], which do not broadcast",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    assert!(!msg.contains("\"sum\""), "{msg}");
    // a −∞ padding is a max-pool's, nothing else's
    let bytes = model(
        &[4],
        vec![node("pad", "Pad", &["x", "pads", "inf"], "y")],
        vec![
            TensorProto {
                dims: vec![4],
                data_type: 7,
                int64_data: vec![0, 1, 0, 1],
                name: "pads".into(),
                ..Default::default()
            },
            floats("inf", &[], vec![f32::NEG_INFINITY]),
        ],
    );
    let err = from_onnx::<f32>(&bytes).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOperator { node, op, reason } if node == "pad" && op == "Pad" && reason.contains("MaxPool")),
        "{err:?}"
    );
}

/// A per-axis constant on a transposed tensor: `Transpose` (C, H, W → H, W, C), then `Mul`
/// by a constant that varies along W (neither the tensor's channels nor its node's), then
/// `Relu` — the importer moves that axis first for the affine layer and keeps the way back
/// pending; the result is the file's, computed by hand.
#[test]
fn onnx_affine_along_any_axis_of_a_transposed_tensor() {
    let mut t = node("t", "Transpose", &["x"], "h");
    t.attribute.push(ints_attr("perm", &[0, 2, 3, 1]));
    let c = [0.5f32, -2.0, 3.0, 0.25];
    let bytes = model(
        &[2, 3, 4],
        vec![
            t,
            node("m", "Mul", &["h", "c"], "z"),
            node("r", "Relu", &["z"], "y"),
        ],
        vec![floats("c", &[1, 1, 4, 1], c.to_vec())],
    );
    let net = from_onnx::<f64>(&bytes).unwrap();
    assert_eq!(net.input_shape(), &[2, 3, 4]);
    assert_eq!(net.output_shape(), &[3, 4, 2]);
    let x = ndarray::Array4::from_shape_fn((2, 2, 3, 4), |(n, ch, i, j)| {
        ((n * 24 + ch * 12 + i * 4 + j) as f64 * 0.37).sin()
    });
    let y = net.forward(&x.clone().into_dyn()).unwrap();
    let want = ndarray::Array4::from_shape_fn((2, 3, 4, 2), |(n, i, j, ch)| {
        (x[[n, ch, i, j]] * f64::from(c[j])).max(0.0)
    });
    let dev = (&y - &want.into_dyn()).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(dev <= 1e-15, "{dev}");
}

/// `ReduceLogSumExp` (axes as an attribute) and `ReduceSum` (axes as input 1, opset 13+)
/// over the features of `[N, K]`, kept: `log Σ exp x` and `Σ x`; DeepLIFT through the first
/// (Exp, a sum, Log) sums to the change of the output. Sums over some per-sample axes only
/// or over the batch are refused with the reason.
#[test]
fn onnx_reduce_log_sum_exp_and_reduce_sum_over_the_features() {
    use relevance::{Baseline, DeepLift, Target};
    let lse = model(
        &[3],
        vec![NodeProto {
            attribute: vec![ints_attr("axes", &[-1]), int_attr("keepdims", 1)],
            ..node("lse", "ReduceLogSumExp", &["x"], "y")
        }],
        vec![],
    );
    let sum = model(
        &[3],
        vec![node("sum", "ReduceSum", &["x", "axes"], "y")],
        vec![TensorProto {
            dims: vec![1],
            data_type: 7,
            int64_data: vec![1],
            name: "axes".into(),
            ..Default::default()
        }],
    );
    let x = array![[0.5, -1.0, 2.0], [3.0, 0.0, -0.25]].into_dyn();
    let (lse, sum) = (from_onnx::<f64>(&lse).unwrap(), from_onnx::<f64>(&sum).unwrap());
    let (y, s) = (lse.forward(&x).unwrap(), sum.forward(&x).unwrap());
    assert_eq!(y.shape(), &[2, 1]);
    for i in 0..2 {
        let row = x.index_axis(ndarray::Axis(0), i);
        let want = row.iter().map(|v: &f64| v.exp()).sum::<f64>().ln();
        assert!((y[[i, 0]] - want).abs() < 1e-15, "{} vs {want}", y[[i, 0]]);
        assert_eq!(s[[i, 0]], row.sum());
    }
    let base = array![[0.0, 1.0, -1.0], [0.0, 0.0, 0.0]].into_dyn();
    let d = lse
        .deeplift(
            &x,
            &Target::Class(0),
            &DeepLift::rescale(),
            &Baseline::PerSample(base.clone()),
        )
        .unwrap();
    let y0 = lse.forward(&base).unwrap();
    for i in 0..2 {
        let total: f64 = d.attribution.index_axis(ndarray::Axis(0), i).sum();
        assert!((total - (y[[i, 0]] - y0[[i, 0]])).abs() < 1e-14);
    }
    for (input, attrs) in [
        (&[3][..], vec![ints_attr("axes", &[0, 1])]),
        (&[2, 3][..], vec![ints_attr("axes", &[2])]),
        (&[2, 3][..], vec![ints_attr("axes", &[1])]),
    ] {
        let bytes = model(
            input,
            vec![NodeProto {
                attribute: attrs,
                ..node("lse", "ReduceLogSumExp", &["x"], "y")
            }],
            vec![],
        );
        match from_onnx::<f32>(&bytes) {
            Err(Error::UnsupportedOperator { op, reason, .. }) => {
                assert_eq!(op, "ReduceLogSumExp");
                assert!(reason.contains("only over every per-sample axis"), "{reason}");
            }
            other => panic!("{input:?}: {other:?}"),
        }
    }
}

/// The README's table of ONNX operators (section "ONNX", `| operators | become |`) names
/// exactly the operators of the importer's registry ([`relevance::io::onnx_operators`]):
/// every operator there appears in the table, and every operator the table names (a
/// capitalised word in backticks in its first column; attributes are lowercase) is one.
#[test]
fn readme_onnx_operator_table_matches_the_registry() {
    let readme = std::fs::read_to_string(path("README.md")).unwrap();
    let rows: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| operators | become |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(
        rows.len() >= 10,
        "the README's ONNX operator table is missing or short"
    );
    let mut named = std::collections::BTreeSet::new();
    for row in rows {
        let first = row.split('|').nth(1).unwrap();
        for (k, word) in first.split('`').enumerate() {
            if k % 2 == 1 && word.starts_with(|c: char| c.is_ascii_uppercase()) {
                named.insert(word.to_string());
            }
        }
    }
    let registry: std::collections::BTreeSet<String> = relevance::io::onnx_operators()
        .iter()
        .map(|op| op.name.to_string())
        .collect();
    let missing: Vec<_> = registry.difference(&named).collect();
    let unknown: Vec<_> = named.difference(&registry).collect();
    assert!(
        missing.is_empty(),
        "operators supported but not in the README's table: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "operators in the README's table but not supported: {unknown:?}"
    );
}

/// A trailing softmax is removed (the logits are explained), and the importer says so.
#[test]
fn onnx_trailing_softmax_is_removed() {
    use relevance::io::{from_onnx_with, OnnxOptions};
    let m = from_onnx_with::<f32>(&gemm_model("Softmax", "W", &[3, 4], 4), &OnnxOptions::default()).unwrap();
    assert_eq!(m.network.nodes().len(), 1);
    assert!(m.notes.iter().any(|n| n.contains("Softmax")), "{:?}", m.notes);
    // kept on request: the network ends in a softmax whose outputs sum to one
    let keep = OnnxOptions::default().with_softmax_kept();
    let m = from_onnx_with::<f64>(&gemm_model("Softmax", "W", &[3, 4], 4), &keep).unwrap();
    assert_eq!(m.network.nodes().len(), 2);
    assert!(m.notes.is_empty(), "{:?}", m.notes);
    let y = m
        .network
        .forward(&ndarray::array![[1.0, -2.0, 0.5, 3.0]].into_dyn())
        .unwrap();
    assert!((y.sum() - 1.0).abs() < 1e-12 && y.iter().all(|&p| p > 0.0), "{y}");
    // a LogSoftmax cannot be kept
    let err = from_onnx_with::<f32>(&gemm_model("LogSoftmax", "W", &[3, 4], 4), &keep).unwrap_err();
    assert!(matches!(err, Error::UnsupportedOperator { .. }), "{err:?}");
    assert!(err.to_string().contains("LogSoftmax"), "{err}");
}

#[test]
fn onnx_missing_tensor_names_tensor_and_node() {
    let err = from_onnx::<f32>(&gemm_model("Relu", "V", &[3, 4], 4)).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { tensor, node } if tensor == "W" && node == "fc"),
        "{err:?}"
    );
    // the real model with fc1.weight's initializer renamed
    let mut real = bytes("models/digits.onnx");
    let pat = b"\x42\x0afc1.weight"; // field 8 (name), length 10
    let at = real.windows(pat.len()).position(|w| w == pat).unwrap();
    real[at + 2..at + 12].copy_from_slice(b"fc1.wXight");
    let err = from_onnx::<f32>(&real).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { tensor, node } if tensor == "fc1.weight" && node == "/fc1/Gemm"),
        "{err:?}"
    );
}

#[test]
fn onnx_shapes_that_do_not_chain() {
    // a Dense(4 → 3) fed 5 features
    let err = from_onnx::<f32>(&gemm_model("Relu", "W", &[3, 4], 5)).unwrap_err();
    assert!(
        matches!(&err, Error::AtNode { node, .. } if node == "fc"),
        "{err:?}"
    );
    assert!(matches!(err.root(), Error::Shape { .. }), "{err:?}");
}

#[test]
fn onnx_hostile_tensors() {
    // dims claiming 2^60 values, with no data
    let err = from_onnx::<f32>(&gemm_model("Relu", "W", &[1 << 30, 1 << 30], 4)).unwrap_err();
    assert!(
        matches!(&err, Error::Format { what, .. } if what == "tensor W"),
        "{err:?}"
    );
    // negative dimension
    let err = from_onnx::<f32>(&gemm_model("Relu", "W", &[-3, -4], 4)).unwrap_err();
    assert!(
        matches!(&err, Error::Format { what, .. } if what == "tensor W"),
        "{err:?}"
    );
    // stored data shorter than the shape
    let err = from_onnx::<f32>(&gemm_model("Relu", "W", &[3, 5], 4)).unwrap_err();
    assert!(
        matches!(&err, Error::Format { what, .. } if what == "tensor W"),
        "{err:?}"
    );
    // an absurd input shape
    let err = from_onnx::<f32>(&model(
        &[1 << 19, 1 << 19],
        vec![node("r", "Relu", &["x"], "y")],
        vec![],
    ))
    .unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    // a huge pooling kernel
    let mut pool = node("pool", "MaxPool", &["x"], "y");
    pool.attribute.push(ints_attr("kernel_shape", &[i64::MAX, 2]));
    let err = from_onnx::<f32>(&model(&[1, 4, 4], vec![pool], vec![])).unwrap_err();
    assert!(
        matches!(&err, Error::Format { what, .. } if what.contains("pool")),
        "{err:?}"
    );
    // not protobuf at all
    assert!(matches!(
        from_onnx::<f32>(b"\xff\xff\xff\xff"),
        Err(Error::Format { .. })
    ));
}

/// `ConvTranspose`: strides, pads, output_padding and output_shape give PyTorch's sizes and
/// values; bad attributes are typed errors naming the node.
#[test]
fn onnx_conv_transpose_attributes_and_hostile_nodes() {
    // weight [in 2, out 3, 2, 2]
    let w = floats(
        "W",
        &[2, 3, 2, 2],
        (0..24).map(|v| v as f32 * 0.25 - 3.0).collect(),
    );
    let deconv = |attrs: Vec<AttributeProto>, w: &TensorProto| {
        let mut c = node("deconv", "ConvTranspose", &["x", "W"], "y");
        c.attribute = attrs;
        model(&[2, 3, 3], vec![c], vec![w.clone()])
    };
    let net = from_onnx::<f64>(&deconv(vec![ints_attr("strides", &[2, 2])], &w)).unwrap();
    assert_eq!(net.output_shape(), &[3, 6, 6]);
    let layer = net.nodes()[0]
        .layer()
        .unwrap()
        .class()
        .affine()
        .unwrap()
        .weight()
        .to_owned();
    assert_eq!(layer.shape(), &[2, 3, 2, 2]);
    // output_shape [5, 5] = pads [1, 1, 0, 0] (the odd padding at the beginning, NOTSET)
    let x =
        ndarray::Array4::from_shape_fn((1, 2, 3, 3), |(_, c, i, j)| (c * 9 + i * 3 + j) as f64).into_dyn();
    let by_shape = from_onnx::<f64>(&deconv(
        vec![ints_attr("strides", &[2, 2]), ints_attr("output_shape", &[5, 5])],
        &w,
    ))
    .unwrap();
    let by_pads = from_onnx::<f64>(&deconv(
        vec![ints_attr("strides", &[2, 2]), ints_attr("pads", &[1, 1, 0, 0])],
        &w,
    ))
    .unwrap();
    assert_eq!(by_shape.output_shape(), &[3, 5, 5]);
    assert_eq!(by_shape.forward(&x).unwrap(), by_pads.forward(&x).unwrap());
    // output_padding adds a row and a column at the end
    let net = from_onnx::<f64>(&deconv(
        vec![
            ints_attr("strides", &[2, 2]),
            ints_attr("pads", &[1, 1, 1, 1]),
            ints_attr("output_padding", &[1, 1]),
        ],
        &w,
    ))
    .unwrap();
    assert_eq!(net.output_shape(), &[3, 5, 5]);
    let names_node = |err: &Error| match err {
        Error::UnsupportedOperator { node, .. } => node == "deconv",
        Error::Format { what, .. } => what.contains("deconv"),
        Error::AtNode { node, .. } => node == "deconv",
        _ => false,
    };
    let hostile: Vec<(&str, Vec<AttributeProto>, TensorProto)> = vec![
        ("negative stride", vec![ints_attr("strides", &[-1, 2])], w.clone()),
        ("zero stride", vec![ints_attr("strides", &[0, 2])], w.clone()),
        ("zero dilation", vec![ints_attr("dilations", &[1, 0])], w.clone()),
        (
            "output_padding = stride",
            vec![
                ints_attr("strides", &[2, 2]),
                ints_attr("output_padding", &[2, 0]),
            ],
            w.clone(),
        ),
        (
            "output_padding without stride",
            vec![ints_attr("output_padding", &[1, 1])],
            w.clone(),
        ),
        ("group not dividing", vec![int_attr("group", 3)], w.clone()),
        ("group zero", vec![int_attr("group", 0)], w.clone()),
        ("3-D weight", vec![], floats("W", &[2, 3, 2], vec![1.0; 12])),
        ("5-D weight", vec![], floats("W", &[2, 3, 1, 1, 1], vec![1.0; 6])),
        ("3-D strides", vec![ints_attr("strides", &[1, 1, 1])], w.clone()),
        (
            "kernel_shape mismatch",
            vec![ints_attr("kernel_shape", &[3, 3])],
            w.clone(),
        ),
        (
            "output_shape too large",
            vec![ints_attr("output_shape", &[9, 9])],
            w.clone(),
        ),
        (
            "pads removing everything",
            vec![ints_attr("pads", &[4, 4, 4, 4])],
            w.clone(),
        ),
        (
            "wrong input channels",
            vec![],
            floats("W", &[3, 3, 2, 2], vec![1.0; 36]),
        ),
        (
            "huge stride",
            vec![ints_attr("strides", &[1 << 40, 1])],
            w.clone(),
        ),
    ];
    for (what, attrs, weight) in hostile {
        let err = from_onnx::<f32>(&deconv(attrs, &weight)).unwrap_err();
        assert!(names_node(&err), "{what}: {err:?}");
    }
}

#[test]
fn onnx_settings_and_graphs() {
    let conv_w = floats("W", &[2, 2, 1, 1], vec![1.0, 2.0, 3.0, 4.0]);
    let conv = |attrs: Vec<AttributeProto>, w: &TensorProto| {
        let mut c = node("conv", "Conv", &["x", "W"], "y");
        c.attribute = attrs;
        model(&[2, 3, 3], vec![c], vec![w.clone()])
    };
    assert!(from_onnx::<f32>(&conv(vec![ints_attr("pads", [1, 1, 1, 1].as_ref())], &conv_w)).is_ok());
    // asymmetric padding and groups load
    let net = from_onnx::<f32>(&conv(vec![ints_attr("pads", &[0, 0, 1, 1])], &conv_w)).unwrap();
    assert_eq!(net.output_shape(), &[2, 4, 4]);
    let grouped = floats("W", &[2, 1, 1, 1], vec![2.0, 3.0]);
    let net = from_onnx::<f64>(&conv(vec![int_attr("group", 2)], &grouped)).unwrap();
    let x =
        ndarray::Array4::from_shape_fn((1, 2, 3, 3), |(_, c, i, j)| (c * 9 + i * 3 + j) as f64).into_dyn();
    let y = net.forward(&x).unwrap();
    assert_eq!(y[[0, 0, 1, 1]], 2.0 * 4.0);
    assert_eq!(y[[0, 1, 1, 1]], 3.0 * 13.0);
    // a 3-D stride is not a 2-D convolution
    let err = from_onnx::<f32>(&conv(vec![ints_attr("strides", &[1, 1, 1])], &conv_w)).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedOperator { node, .. } if node == "conv"),
        "{err:?}"
    );
    // a branch: y = x + relu(x), a residual sum
    let net = from_onnx::<f64>(&model(
        &[4],
        vec![node("a", "Relu", &["x"], "h"), node("b", "Add", &["x", "h"], "y")],
        vec![],
    ))
    .unwrap();
    assert_eq!(net.nodes().len(), 2);
    let x = array![[1.0, -2.0, 0.5, -0.25]].into_dyn();
    assert_eq!(
        net.forward(&x).unwrap(),
        array![[2.0, -2.0, 1.0, -0.25]].into_dyn()
    );
    // the graph output is not produced by anything
    let err = from_onnx::<f32>(&model(&[4], vec![node("a", "Relu", &["x"], "h")], vec![])).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { tensor, .. } if tensor == "y"),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// safetensors + architecture errors

fn digits_arch_with(edit: impl FnOnce(&mut serde_json::Value)) -> Architecture {
    let mut v: serde_json::Value = serde_json::from_slice(&bytes("models/digits.json")).unwrap();
    edit(&mut v);
    Architecture::from_json(&v.to_string()).unwrap()
}

#[test]
fn safetensors_missing_tensor() {
    let a = digits_arch_with(|v| v["layers"][9]["weight"] = "fc3.weight".into());
    let err = from_safetensors::<f32>(&a, &bytes("models/digits.safetensors")).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { tensor, node } if tensor == "fc3.weight" && node == "layer 9 (dense fc3.weight)"),
        "{err:?}"
    );
}

#[test]
fn safetensors_shapes_that_do_not_chain() {
    // without the second pooling layer, fc1 (784 inputs) gets 16·14·14
    let a = digits_arch_with(|v| {
        v["layers"].as_array_mut().unwrap().remove(5);
    });
    let err = from_safetensors::<f32>(&a, &bytes("models/digits.safetensors")).unwrap_err();
    assert!(
        matches!(&err, Error::AtNode { node, .. } if node == "layer 6 (dense fc1.weight)"),
        "{err:?}"
    );
    assert!(matches!(err.root(), Error::Shape { .. }), "{err:?}");
    // a bias used as a convolution weight
    let a = digits_arch_with(|v| v["layers"][0]["weight"] = "conv1.bias".into());
    let err = from_safetensors::<f32>(&a, &bytes("models/digits.safetensors")).unwrap_err();
    assert!(
        matches!(
            err.root(),
            Error::Rank {
                expected: 4,
                got: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn architecture_errors() {
    let text = std::fs::read_to_string(path("models/digits.json")).unwrap();
    for bad in [
        text.replace("\"padding\": 1", "\"paddding\": 1"),
        text.replace("\"relu\"", "\"softmax\""), // not a layer type
        text.replace("\"version\": 1", "\"version\": 7"),
        text.replace("\"input_shape\"", "\"input\""),
        text[..text.len() / 2].to_string(),
    ] {
        assert!(
            matches!(Architecture::from_json(&bad), Err(Error::Format { .. })),
            "{bad}"
        );
    }
    // absurd sizes are refused before anything is allocated
    let a = digits_arch_with(|v| v["input_shape"] = serde_json::json!([1, 1 << 20, 1 << 20]));
    assert!(matches!(
        from_safetensors::<f32>(&a, &bytes("models/digits.safetensors")),
        Err(Error::Format { .. })
    ));
    let a = digits_arch_with(|v| v["layers"][2]["kernel"] = serde_json::json!(1u64 << 40));
    assert!(matches!(
        from_safetensors::<f32>(&a, &bytes("models/digits.safetensors")),
        Err(Error::Format { .. })
    ));
}

#[test]
fn safetensors_bad_files() {
    let a = arch();
    // header length pointing far past the end
    let mut st = bytes("models/digits.safetensors");
    st[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        from_safetensors::<f32>(&a, &st),
        Err(Error::Format { .. })
    ));
    // float16 weights are not supported
    let data = vec![0u8; 2 * 10];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![10], &data).unwrap();
    let file = safetensors::serialize([("fc2.bias", view)], &None).unwrap();
    let tiny = Architecture::from_json(
        r#"{"input_shape": [4], "layers": [{"type": "dense", "weight": "fc2.bias"}]}"#,
    )
    .unwrap();
    let err = from_safetensors::<f32>(&tiny, &file).unwrap_err();
    assert!(
        matches!(&err, Error::Format { what, .. } if what == "tensor fc2.bias"),
        "{err:?}"
    );
}

#[test]
fn digits_file_and_npy() {
    let d = digits();
    let x = d.images::<f64>(&[0, 499]).unwrap();
    assert_eq!(x.shape(), &[2, 1, 28, 28]);
    assert!(x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert!(matches!(d.images::<f32>(&[500]), Err(Error::Shape { .. })));
    let mut bad = bytes("data/digits_test.bin");
    bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(Digits::from_bytes(&bad), Err(Error::Format { .. })));

    let a = array![[1.0_f64, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn();
    let enc = write_npy(&a);
    assert_eq!(enc.len() % 64, 48); // 64-byte aligned header + 48 data bytes
    assert_eq!(read_npy::<f64>(&enc).unwrap(), a);
    // Fortran order, as numpy writes np.asfortranarray
    let header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
    let mut f = b"\x93NUMPY\x01\x00".to_vec();
    f.extend_from_slice(&(header.len() as u16).to_le_bytes());
    f.extend_from_slice(header.as_bytes());
    for v in [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(read_npy::<f64>(&f).unwrap(), a);
}

/// A residual block with batch norm described in JSON (nodes naming their inputs), weights in
/// a safetensors file: it loads as a graph, names come from the `state_dict` keys, the batch
/// norm is merged by default (zennit's canonizer) and kept on request, and the output is the
/// same either way.
#[test]
fn safetensors_graph_architecture() {
    use relevance::io::{from_safetensors_with, LoadOptions};
    let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let conv: Vec<f64> = (0..2 * 2 * 9)
        .map(|k| ((k * 7 % 11) as f64 - 5.0) / 10.0)
        .collect();
    let fc: Vec<f64> = (0..3 * 32).map(|k| ((k * 5 % 13) as f64 - 6.0) / 20.0).collect();
    let data: Vec<(&str, Vec<usize>, Vec<u8>)> = vec![
        ("block.conv.weight", vec![2, 2, 3, 3], f64s(&conv)),
        ("block.bn.running_mean", vec![2], f64s(&[0.1, -0.2])),
        ("block.bn.running_var", vec![2], f64s(&[1.5, 0.7])),
        ("block.bn.weight", vec![2], f64s(&[0.9, 1.2])),
        ("block.bn.bias", vec![2], f64s(&[0.05, -0.1])),
        ("fc.weight", vec![3, 32], f64s(&fc)),
    ];
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                *n,
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let file = safetensors::serialize(views, &None).unwrap();
    let arch = Architecture::from_json(
        r#"{"input_shape": [2, 4, 4], "layers": [
            {"type": "conv2d", "weight": "block.conv.weight", "padding": 1},
            {"type": "batchnorm2d", "mean": "block.bn.running_mean", "var": "block.bn.running_var",
             "weight": "block.bn.weight", "bias": "block.bn.bias"},
            {"type": "relu", "name": "block.relu"},
            {"type": "add", "name": "block.add", "inputs": ["block.relu", "input"]},
            {"type": "adaptive_avgpool2d", "output": [4, 4]},
            {"type": "flatten"},
            {"type": "linear", "weight": "fc.weight"}
        ]}"#,
    )
    .unwrap();
    let merged = from_safetensors::<f64>(&arch, &file).unwrap();
    let names: Vec<&str> = merged.nodes().iter().map(|n| n.name()).collect();
    assert_eq!(names, ["block.conv", "block.relu", "block.add", "4", "5", "fc"]);
    let kept = from_safetensors_with::<f64>(&arch, &file, LoadOptions::keep_batch_norm()).unwrap();
    assert_eq!(kept.node_index("block.bn"), Some(1));
    let x = ndarray::Array4::from_shape_fn((2, 2, 4, 4), |(n, c, i, j)| {
        ((n + 2 * c + i * j) % 5) as f64 - 2.0
    })
    .into_dyn();
    let (a, b) = (merged.forward(&x).unwrap(), kept.forward(&x).unwrap());
    assert!(a.iter().zip(b.iter()).all(|(p, q)| (p - q).abs() < 1e-12));
    // an input that is not an earlier node is a typed error naming it
    let bad = Architecture::from_json(
        r#"{"input_shape": [4], "layers": [{"type": "relu"}, {"type": "add", "inputs": ["0", "later"]}, {"type": "relu", "name": "later"}]}"#,
    )
    .unwrap();
    let err = from_safetensors::<f64>(&bad, &file).unwrap_err();
    assert!(
        matches!(&err, Error::Format { reason, .. } if reason.contains("later")),
        "{err:?}"
    );
}

/// A `"convtranspose2d"` layer of the JSON architecture: loads with its settings, equals the
/// layer built by hand, and a batch norm after it merges along its output channels.
#[test]
fn safetensors_conv_transpose_architecture() {
    use relevance::io::{from_safetensors_with, LoadOptions};
    use relevance::{ConvTranspose2d, ConvTranspose2dConfig, Layer};
    let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let w: Vec<f64> = (0..3 * 2 * 3 * 3)
        .map(|k| ((k * 7 % 11) as f64 - 5.0) / 10.0)
        .collect();
    let b = [0.1, -0.3, 0.2, 0.4];
    let data: Vec<(&str, Vec<usize>, Vec<u8>)> = vec![
        (
            "up.weight",
            vec![4, 2, 3, 3],
            f64s(&[w.clone(), w[..18].to_vec()].concat()),
        ),
        ("up.bias", vec![4], f64s(&b)),
        ("bn.running_mean", vec![4], f64s(&[0.1, -0.2, 0.0, 0.3])),
        ("bn.running_var", vec![4], f64s(&[1.5, 0.7, 1.0, 2.0])),
        ("bn.weight", vec![4], f64s(&[0.9, 1.2, -0.5, 2.0])),
        ("bn.bias", vec![4], f64s(&[0.05, -0.1, 0.0, 0.2])),
    ];
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                *n,
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let file = safetensors::serialize(views, &None).unwrap();
    let arch = Architecture::from_json(
        r#"{"input_shape": [4, 3, 3], "layers": [
            {"type": "convtranspose2d", "weight": "up.weight", "bias": "up.bias", "stride": 2,
             "padding": 1, "output_padding": 1, "groups": 2},
            {"type": "batchnorm2d", "mean": "bn.running_mean", "var": "bn.running_var",
             "weight": "bn.weight", "bias": "bn.bias"}
        ]}"#,
    )
    .unwrap();
    let merged = from_safetensors::<f64>(&arch, &file).unwrap();
    assert_eq!(merged.nodes().len(), 1);
    assert_eq!(merged.output_shape(), &[4, 6, 6]);
    let kept = from_safetensors_with::<f64>(&arch, &file, LoadOptions::keep_batch_norm()).unwrap();
    let x = ndarray::Array4::from_shape_fn((2, 4, 3, 3), |(n, c, i, j)| {
        ((n + 2 * c + i * j) % 5) as f64 - 2.0
    })
    .into_dyn();
    let (a, k) = (merged.forward(&x).unwrap(), kept.forward(&x).unwrap());
    assert!(a.iter().zip(k.iter()).all(|(p, q)| (p - q).abs() < 1e-12));
    let by_hand = ConvTranspose2d::new(
        ndarray::Array4::from_shape_vec((4, 2, 3, 3), [w.clone(), w[..18].to_vec()].concat()).unwrap(),
        Some(ndarray::Array1::from(b.to_vec())),
        ConvTranspose2dConfig::default()
            .stride(2)
            .padding(1)
            .output_padding(1)
            .groups(2),
    )
    .unwrap();
    let unmerged = kept.trace(&x).unwrap();
    assert_eq!(unmerged.activations[1], by_hand.forward(x.view()).unwrap());
}

/// One weight tensor shared by thousands of layers is stored once: the network loads, its
/// layers hold the same weight, and loading takes far less than copies into each would
/// (5 000 × 16 KiB = 80 MB).
#[test]
fn onnx_weight_shared_by_thousands_of_layers_is_stored_once() {
    let n = 64;
    let w: Vec<f32> = (0..n * n)
        .map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    let mut nodes = Vec::new();
    let mut prev = "x".to_string();
    for k in 0..5000 {
        let out = if k == 4999 {
            "y".to_string()
        } else {
            format!("h{k}")
        };
        let mut g = node(&format!("fc{k}"), "Gemm", &[&prev, "W"], &out);
        g.attribute.push(int_attr("transB", 1));
        nodes.push(g);
        prev = out;
    }
    let bytes = model(&[n as i64], nodes, vec![floats("W", &[n as i64, n as i64], w)]);
    let (net, peak) = crate::memory::peak_during(|| from_onnx::<f32>(&bytes).unwrap());
    assert_eq!(net.nodes().len(), 5000);
    let weight = |k: usize| {
        let layer = net.nodes()[k].affine().unwrap();
        (layer.weight().as_ptr(), layer.weight().len())
    };
    assert_eq!(weight(0), weight(4999));
    assert_eq!(weight(0).1, n * n);
    let copies = 5000 * n * n * 4;
    assert!(
        peak < copies / 4,
        "{peak} bytes at peak; copies would take {copies}"
    );
    // the identity weight, 5 000 times: the input comes out unchanged
    let x = ndarray::Array2::from_shape_fn((1, n), |(_, j)| j as f32).into_dyn();
    assert_eq!(net.forward(&x).unwrap(), x);
}

/// ONNX `LRN` (AlexNet, CaffeNet, GoogLeNet v1 in the model zoo) loads as
/// `LocalResponseNorm` with ONNX's channel window; odd sizes equal PyTorch's.
#[test]
fn onnx_lrn_loads_with_onnx_semantics() {
    use relevance::{Layer, LocalResponseNorm};
    let float_attr = |name: &str, v: f32| AttributeProto {
        name: name.into(),
        f: v,
        i: 0,
        ints: vec![],
        r#type: 1,
    };
    for size in [3i64, 4] {
        let mut lrn = node("lrn", "LRN", &["x"], "y");
        lrn.attribute = vec![
            int_attr("size", size),
            float_attr("alpha", 0.5),
            float_attr("beta", 0.75),
            float_attr("bias", 2.0),
        ];
        let net = from_onnx::<f64>(&model(&[5, 2, 2], vec![lrn], vec![])).unwrap();
        let x = ndarray::Array::from_shape_fn((1, 5, 2, 2), |(_, c, h, w)| {
            c as f64 - 1.5 * h as f64 + 0.5 * w as f64
        })
        .into_dyn();
        let want = LocalResponseNorm::onnx(size as usize, 0.5f32 as f64, 0.75, 2.0).unwrap();
        let y = net.forward(&x).unwrap();
        assert_eq!(y, Layer::<f64>::forward(&want, x.view()).unwrap());
        // ONNX's window: for size 4, channels [c − 1, c + 2]; by hand at channel 0, (0, 0):
        // x = 0, so check channel 1 instead: x = 1, squares of channels 0..=3 at (0, 0)
        if size == 4 {
            let d: f64 = 2.0 + 0.5 / 4.0 * (0.0 + 1.0 + 4.0 + 9.0);
            assert!((y[[0, 1, 0, 0]] - 1.0 / d.powf(0.75)).abs() < 1e-12);
        }
    }
    let mut bad = node("lrn", "LRN", &["x"], "y");
    bad.attribute = vec![int_attr("size", 0)];
    assert!(from_onnx::<f64>(&model(&[5, 2, 2], vec![bad], vec![])).is_err());
}

/// `Sum` of any number of computed tensors (older exporters' residual additions).
#[test]
fn onnx_sum_of_several_tensors() {
    let nodes = vec![
        node("r", "Relu", &["x"], "a"),
        node("s", "Sum", &["x", "a", "x"], "y"),
    ];
    let net = from_onnx::<f64>(&model(&[3], nodes, vec![])).unwrap();
    let y = net.forward(&array![[1.0, -2.0, 0.5]].into_dyn()).unwrap();
    assert_eq!(y, array![[3.0, -4.0, 1.5]].into_dyn());
    // a Sum of one input is that input (ONNX: the sum of a list of one): after a Relu, the
    // network is the Relu alone; of the graph input alone, there is no layer left
    let nodes = vec![node("r", "Relu", &["x"], "a"), node("s", "Sum", &["a"], "y")];
    let net = from_onnx::<f64>(&model(&[3], nodes, vec![])).unwrap();
    assert_eq!(net.nodes().len(), 1);
    let y = net.forward(&array![[1.0, -2.0, 0.5]].into_dyn()).unwrap();
    assert_eq!(y, array![[1.0, 0.0, 0.5]].into_dyn());
    let one = from_onnx::<f64>(&model(&[3], vec![node("s", "Sum", &["x"], "y")], vec![]));
    assert_eq!(one.unwrap_err(), Error::EmptyNetwork);
}

fn int64s(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![values.len() as i64],
        data_type: 7,
        int64_data: values.to_vec(),
        name: name.into(),
        ..Default::default()
    }
}

/// A model with data inputs `x` `[batch, 3]` and `c` (`[batch, c_dims...]`), the given
/// nodes and initializers, output `y`.
fn two_input_model(c_dims: &[Option<i64>], nodes: Vec<NodeProto>, init: Vec<TensorProto>) -> Vec<u8> {
    let mut c = vec![None];
    c.extend_from_slice(c_dims);
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: init,
            input: vec![value_info("x", &[None, Some(3)]), value_info("c", &c)],
            output: vec![value_info("y", &[None])],
        }),
    }
    .encode_to_vec()
}

/// `y = concat(x, log(Σ c + 1))`, as bpnet-lite's count head reads its control tracks:
/// `ReduceSum` over both per-sample axes of `c` without keepdims, `Unsqueeze(-1)`, `Add` of
/// 1, `Log`, `Concat` on the features.
fn control_total_nodes(sum_input: &str) -> Vec<NodeProto> {
    vec![
        NodeProto {
            attribute: vec![int_attr("keepdims", 0)],
            ..node("sum", "ReduceSum", &[sum_input, "axes"], "s")
        },
        node("unsqueeze", "Unsqueeze", &["s", "last"], "u"),
        node("plus_one", "Add", &["u", "one"], "a"),
        node("log", "Log", &["a"], "l"),
        NodeProto {
            attribute: vec![int_attr("axis", -1)],
            ..node("cat", "Concat", &["x", "l"], "y")
        },
    ]
}

fn control_total_init() -> Vec<TensorProto> {
    vec![
        int64s("axes", &[1, 2]),
        int64s("last", &[-1]),
        floats("one", &[], vec![1.0]),
    ]
}

/// A graph with two data inputs: the first (or the one `OnnxOptions::input` names) is
/// explained, the other becomes a held input named as in the file, bound per call; a sum
/// over every per-sample axis without keepdims is one value per sample that `Unsqueeze`
/// makes `[N, 1]`. Wrong names, symbolic held dimensions and a per-sample scalar read by a
/// `Concat` are typed errors.
#[test]
fn onnx_graph_with_a_held_input() {
    use relevance::io::OnnxOptions;
    let bytes = two_input_model(
        &[Some(2), Some(2)],
        control_total_nodes("c"),
        control_total_init(),
    );
    let m = relevance::io::from_onnx_with::<f64>(&bytes, &OnnxOptions::default()).unwrap();
    assert_eq!(m.input, "x");
    let net = m.network;
    assert_eq!(net.held_inputs(), vec![("c", &[2usize, 2][..])]);
    let x = array![[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]].into_dyn();
    assert!(matches!(net.forward(&x), Err(Error::UnboundHeldInput { name }) if name == "c"));
    let c = array![[[1.0, 2.0], [0.5, 3.5]]].into_dyn();
    let y = net.bind(&[c]).unwrap().forward(&x).unwrap();
    assert_eq!(y.shape(), &[2, 4]);
    for i in 0..2 {
        for j in 0..3 {
            assert_eq!(y[[i, j]], x[[i, j]]);
        }
        assert!((y[[i, 3]] - 8.0_f64.ln()).abs() < 1e-15);
    }
    // the other input explained: x is held
    let m = relevance::io::from_onnx_with::<f64>(&bytes, &OnnxOptions::default().with_input("c")).unwrap();
    assert_eq!(
        (m.input.as_str(), m.network.held_inputs()),
        ("c", vec![("x", &[3usize][..])])
    );
    // a name no data input has
    match relevance::io::from_onnx_with::<f32>(&bytes, &OnnxOptions::default().with_input("X_ctl")) {
        Err(Error::OnnxInput { name, inputs, .. }) => {
            assert_eq!(
                (name.as_str(), inputs),
                ("X_ctl", vec!["x".to_string(), "c".to_string()])
            )
        }
        other => panic!("{other:?}"),
    }
    // a held input with a symbolic length
    let symbolic = two_input_model(&[Some(2), None], control_total_nodes("c"), control_total_init());
    match relevance::io::from_onnx_with::<f32>(&symbolic, &OnnxOptions::default()) {
        Err(e @ Error::OnnxInput { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("`c`") && text.contains("dimension 2 is symbolic"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // the explained input's symbolic length can be given; a held input's cannot
    assert!(relevance::io::from_onnx_with::<f32>(
        &symbolic,
        &OnnxOptions::default().with_input("c").with_input_shape(&[2, 2])
    )
    .is_ok());
    // one value per sample read by a Concat (only reshapes and elementwise operators may)
    let mut nodes = control_total_nodes("c");
    nodes.truncate(1);
    nodes.push(NodeProto {
        attribute: vec![int_attr("axis", -1)],
        ..node("cat", "Concat", &["x", "s"], "y")
    });
    match relevance::io::from_onnx_with::<f32>(
        &two_input_model(&[Some(2), Some(2)], nodes, control_total_init()),
        &OnnxOptions::default(),
    ) {
        Err(Error::UnsupportedOperator { node, reason, .. }) => {
            assert_eq!(node, "cat");
            assert!(reason.contains("one value per sample"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// `ReduceSum` over every per-sample axis of a 3-D tensor: kept (`[N, 1, 1]`), or without
/// keepdims as the graph output (given as `[N, 1]`, with a note), through `Log` (an
/// elementwise operator on one value per sample).
#[test]
fn onnx_reduce_sum_over_every_per_sample_axis() {
    let x =
        ndarray::Array3::from_shape_fn((2, 2, 3), |(n, i, j)| (n * 6 + i * 3 + j) as f64 + 1.0).into_dyn();
    let total = |n: usize| x.index_axis(ndarray::Axis(0), n).sum();
    let sum = |keepdims: i64, then_log: bool| {
        let mut nodes = vec![NodeProto {
            attribute: vec![int_attr("keepdims", keepdims)],
            ..node(
                "sum",
                "ReduceSum",
                &["x", "axes"],
                if then_log { "s" } else { "y" },
            )
        }];
        if then_log {
            nodes.push(node("log", "Log", &["s"], "y"));
        }
        model(&[2, 3], nodes, vec![int64s("axes", &[-1, 1])])
    };
    let kept = from_onnx::<f64>(&sum(1, false)).unwrap();
    let y = kept.forward(&x).unwrap();
    assert_eq!(y.shape(), &[2, 1, 1]);
    assert_eq!((y[[0, 0, 0]], y[[1, 0, 0]]), (total(0), total(1)));
    let m =
        relevance::io::from_onnx_with::<f64>(&sum(0, true), &relevance::io::OnnxOptions::default()).unwrap();
    assert!(
        m.notes.iter().any(|n| n.contains("one value per sample")),
        "{:?}",
        m.notes
    );
    let y = m.network.forward(&x).unwrap();
    assert_eq!(y.shape(), &[2, 1]);
    assert!((y[[1, 0]] - total(1).ln()).abs() < 1e-15);
}
