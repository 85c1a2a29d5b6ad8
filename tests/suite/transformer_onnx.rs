//! Transformers from ONNX (issue #21): the tiny ViT and BERT of `transformers.rs`, as both
//! PyTorch exporters wrote them (`tools/gen_transformer_fixtures.py`: the legacy exporter
//! at opset 17, the dynamo exporter at opset 18; float64, with float32 twins), load and
//! explain as the graph-builder versions do: the logits of the fixture, and lxt's AttnLRP
//! and CP-LRP relevance at the input (the BERT's per-token relevance at the id input).

use crate::common;

use ndarray::{ArrayD, Axis, IxDyn};
use relevance::io::{load_onnx, load_onnx_with, OnnxOptions};
use relevance::{AttnLrp, CpLrp, Error, Network, Options, Seed, Target};

fn fixture_path(file: &str) -> String {
    format!(
        "{}/tests/fixtures/transformers/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The explained input of a fixture: the ViT's images, the BERT's ids (as floats).
fn input(fx: &serde_json::Value) -> ArrayD<f64> {
    if fx["name"] == "tiny_vit" {
        common::tensor(&fx["x"])
    } else {
        common::tensor(&fx["ids"])
    }
}

fn targets(fx: &serde_json::Value) -> Target<f64> {
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

/// Every float64 file: the fixture's logits (1e-12), and AttnLRP and CP-LRP (ε = 0, the
/// target's logit as the seed, as lxt starts) equal to lxt at the input (1e-9).
#[test]
fn float64_files_match_logits_and_lxt() {
    let mut report = Vec::new();
    for (model, file) in FILES {
        let fx = common::load(&format!("transformers/{model}"));
        let net: Network<f64> = load_onnx(fixture_path(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let x = input(&fx);
        let logits = net.forward(&x).unwrap();
        let d = common::rel_dev(&logits, &common::tensor(&fx["logits"]));
        assert!(d <= 1e-12, "{file}: logits deviate by {d:e}");
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
                d <= 1e-9,
                "{file} {case}: input relevance deviates from lxt by {d:e}"
            );
            line.push_str(&format!(", {case} {d:.1e}"));
        }
        report.push(line);
    }
    eprintln!("{}", report.join("\n"));
}
