//! Transformers from ONNX (issue #21): the tiny ViT and BERT of `transformers.rs`, as both
//! PyTorch exporters wrote them (`tools/gen_transformer_fixtures.py`: the legacy exporter
//! at opset 17, the dynamo exporter at opset 18; float64, with float32 twins), load and
//! explain as the graph-builder versions do: the logits of the fixture, and lxt's AttnLRP
//! and CP-LRP relevance at the input (the BERT's per-token relevance at the id input).

use crate::common;

use ndarray::ArrayD;
use relevance::io::load_onnx;
use relevance::{AttnLrp, CpLrp, Network, Options, Seed, Target};

fn fixture_path(file: &str) -> String {
    format!(
        "{}/tests/fixtures/transformers/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The explained input of a fixture: the ViT's images, the BERT's ids (as floats).
pub(crate) fn input(fx: &serde_json::Value) -> ArrayD<f64> {
    if fx["name"] == "tiny_vit" {
        common::tensor(&fx["x"])
    } else {
        common::tensor(&fx["ids"])
    }
}

pub(crate) fn targets(fx: &serde_json::Value) -> Target<f64> {
    Target::PerSample(
        fx["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect(),
    )
}

const FILES: [(&str, &str); 4] = [
    ("tiny_vit", "tiny_vit.onnx"),
    ("tiny_vit", "tiny_vit.dynamo.onnx"),
    ("tiny_bert", "tiny_bert.onnx"),
    ("tiny_bert", "tiny_bert.dynamo.onnx"),
];

/// Every float64 file: the fixture's logits, and AttnLRP and CP-LRP (ε = 0, the target's
/// logit as the seed, as lxt starts) equal to lxt at the input.
#[test]
fn float64_files_match_logits_and_lxt() {
    let mut report = Vec::new();
    for (model, file) in FILES {
        let fx = common::load(&format!("transformers/{model}"));
        let net: Network<f64> = load_onnx(fixture_path(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let x = input(&fx);
        let logits = net.forward(&x).unwrap();
        let d = common::rel_dev(&logits, &common::tensor(&fx["logits"]));
        assert!(
            d <= common::bounds::ONNX_TRANSFORMER_LOGITS_F64,
            "{file}: logits deviate by {d:e}"
        );
        let opts = Options {
            seed: Seed::Logit,
            ..Options::default()
        };
        let mut line = format!("{file}: logits {d:.1e}");
        for case in ["attn_lrp", "cp_lrp"] {
            let a = if case == "attn_lrp" {
                net.attribute_with(&x, &targets(&fx), &AttnLrp::new(0.0).unwrap(), opts)
            } else {
                net.attribute_with(&x, &targets(&fx), &CpLrp::new(0.0).unwrap(), opts)
            }
            .unwrap();
            let want = &fx["cases"][case];
            let want = if model == "tiny_vit" {
                &want["relevance"]
            } else {
                &want["relevance_tokens"]
            };
            let d = common::rel_dev(&a.relevance, &common::tensor(want));
            assert!(
                d <= common::bounds::LXT_F64,
                "{file} {case}: input relevance deviates from lxt by {d:e}"
            );
            line.push_str(&format!(", {case} {d:.1e}"));
        }
        report.push(line);
    }
    eprintln!("{}", report.join("\n"));
}

/// The float32 twins of the float64 files (the same weights rounded to float32), read as
/// `f32` networks: the float64 fixture's logits.
#[test]
fn float32_files_match_logits() {
    for (model, file) in FILES {
        let file = file.replace(".onnx", ".f32.onnx");
        let fx = common::load(&format!("transformers/{model}"));
        let net: Network<f32> = load_onnx(fixture_path(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let x = input(&fx).mapv(|v| v as f32);
        let logits = net.forward(&x).unwrap().mapv(f64::from);
        let d = common::rel_dev(&logits, &common::tensor::<f64>(&fx["logits"]));
        eprintln!("{file}: logits {d:.1e}");
        assert!(
            d <= common::bounds::ONNX_TRANSFORMER_F32,
            "{file}: logits deviate by {d:e}"
        );
    }
}

/// The bundled trained ViT (`models/digits_vit.onnx`, `tools/train_digits_vit.py`): PyTorch's
/// float32 logits of 50 test digits, and lxt 2.1's efficient-mode AttnLRP and CP-LRP (their
/// ε set to 0) of 4 test digits, computed in float64 from the float32 weights.
#[test]
fn bundled_digits_vit_matches_pytorch_and_lxt() {
    let fx = crate::common::load("digits_vit");
    let dir = env!("CARGO_MANIFEST_DIR");
    let digits = relevance::io::Digits::load(format!("{dir}/data/digits_test.bin")).unwrap();
    let net32 = relevance::io::load_onnx::<f32>(format!("{dir}/models/digits_vit.onnx")).unwrap();
    let x32 = digits.images::<f32>(&(0..50).collect::<Vec<_>>()).unwrap();
    let logits = net32.forward(&x32).unwrap();
    let want = crate::common::tensor::<f32>(&fx["logits"]);
    let d = crate::common::rel_dev(&logits, &want);
    assert!(
        d < common::bounds::ONNX_TRANSFORMER_F32,
        "f32 logits deviate from PyTorch by {d:e}"
    );
    let net = relevance::io::load_onnx::<f64>(format!("{dir}/models/digits_vit.onnx")).unwrap();
    let x = digits.images::<f64>(&[0, 1, 2, 3]).unwrap();
    let targets: Vec<usize> = fx["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let target = relevance::Target::PerSample(targets);
    let opts = relevance::Options {
        seed: relevance::Seed::Logit,
        ..relevance::Options::default()
    };
    let mut devs = Vec::new();
    for case in ["attn_lrp", "cp_lrp"] {
        let got = if case == "attn_lrp" {
            net.attribute_with(&x, &target, &relevance::AttnLrp::new(0.0).unwrap(), opts)
        } else {
            net.attribute_with(&x, &target, &relevance::CpLrp::new(0.0).unwrap(), opts)
        }
        .unwrap()
        .relevance;
        let want = crate::common::tensor::<f64>(&fx["cases"][case]["relevance"]);
        devs.push((case, crate::common::rel_dev(&got, &want)));
    }
    eprintln!("digits_vit, from lxt: {devs:?}");
    for (case, d) in devs {
        assert!(
            d < crate::common::bounds::LXT_F64,
            "digits_vit {case}: {d:e} from lxt"
        );
    }
}
