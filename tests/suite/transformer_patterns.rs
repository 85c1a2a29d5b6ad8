//! Layer norms and RMS norms written out of elementary operators (issue #21): the files of
//! `tests/fixtures/transformers/patterns/` (`tools/gen_transformer_patterns.py`: torch
//! modules exported by the TorchScript exporter at opsets 14 and 18, float64 with float32
//! twins) load as one `LayerNorm`/`RmsNorm` layer and give onnxruntime's outputs; the near
//! misses are refused with a typed error that says why; AttnLRP through the matched norm is
//! the AttnLRP through the `LayerNormalization` operator, and conserves relevance where the
//! network has no bias. The tiny ViT and BERT of `transformer_onnx.rs` exported at opset 14
//! (`tools/gen_transformer_legacy.py`: every layer norm written out) give the fixture's
//! logits and lxt's AttnLRP and CP-LRP relevance.

use crate::common;

use ndarray::{ArrayD, Axis};
use relevance::io::load_onnx;
use relevance::{AttnLrp, Baseline, CpLrp, DeepLift, Error, Float, Network, Options, Seed, Target};

fn path(file: &str) -> String {
    format!(
        "{}/tests/fixtures/transformers/patterns/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn fixture() -> serde_json::Value {
    let text = std::fs::read_to_string(path("patterns.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The files of one kind: (name, entry).
fn files(fx: &serde_json::Value, near_miss: bool) -> Vec<(String, serde_json::Value)> {
    fx["files"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, e)| e.get("reason").is_some() == near_miss)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The names of a network's layers and merges (`LayerNorm([8], eps 1e-5)`, ...).
fn layer_names<F: Float>(net: &Network<F>) -> Vec<String> {
    net.nodes()
        .iter()
        .filter_map(|n| {
            n.layer()
                .map(|l| l.name())
                .or_else(|| n.merge().map(|m| m.name()))
        })
        .collect()
}

/// One file against onnxruntime: the deviation, and the network's layer names.
fn deviation<F: Float>(file: &str, entry: &serde_json::Value, x: &ArrayD<f64>) -> (f64, Vec<String>) {
    let net: Network<F> = load_onnx(path(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let y = net.forward(&x.mapv(F::lit)).unwrap();
    (
        common::rel_dev(&y, &common::tensor(&entry["output"])),
        layer_names(&net),
    )
}

/// Every pattern file gives onnxruntime's output: float64 within 2e-15 (measured 4.6e-16;
/// 1e-12 for the `LayerNormalization` file, where onnxruntime's kernel is off by 8.7e-13),
/// float32 within 1e-5 (relative to the largest output); every written-out norm is one layer, every
/// `Einsum` a `MatMul` node or a `Dense` layer. (Hugging Face's own `LlamaRMSNorm` and
/// `T5LayerNorm`, float32 only, cast to float32 inside: their `Cast` nodes are taken in.)
#[test]
fn written_out_norms_match_onnxruntime() {
    let fx = fixture();
    let x: ArrayD<f64> = common::tensor(&fx["x"]);
    let all = files(&fx, false);
    assert_eq!(all.len(), 34, "pattern files in patterns.json");
    let mut report = Vec::new();
    for (file, entry) in &all {
        let f64_file = entry["dtype"] == "float64";
        let (d, names) = if f64_file {
            deviation::<f64>(file, entry, &x)
        } else {
            deviation::<f32>(file, entry, &x)
        };
        // onnxruntime's own float64 LayerNormalization kernel is the one off by 8.7e-13
        let bound = match (f64_file, file.contains("_op")) {
            (true, false) => 2e-15,
            (true, true) => 1e-12,
            (false, _) => 1e-5,
        };
        assert!(d <= bound, "{file}: deviates from onnxruntime by {d:e}");
        let want = if file.starts_with("ln_") {
            Some("LayerNorm")
        } else if file.starts_with("rms_") {
            Some("RmsNorm")
        } else {
            None
        };
        let norms: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("LayerNorm") || n.starts_with("RmsNorm"))
            .collect();
        match want {
            // the scale and bias inside the norm: no per-channel affine layer after it
            Some(kind) => assert!(
                norms.len() == 1
                    && norms[0].starts_with(kind)
                    && !names.iter().any(|n| n.starts_with("BatchNorm")),
                "{file}: layers {names:?}"
            ),
            None => assert!(norms.is_empty(), "{file}: layers {names:?}"),
        }
        // an Einsum is a MatMul node (two computed tensors) or a Dense layer (a constant)
        let count = |prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
        if file.starts_with("einsum_const") {
            assert_eq!(count("Dense"), 4, "{file}: layers {names:?}");
        } else if file.starts_with("einsum_") {
            assert_eq!(count("MatMul"), 2, "{file}: layers {names:?}");
        }
        report.push(format!("{file}: {d:.1e} ({})", names.join(", ")));
    }
    eprintln!("{}", report.join("\n"));
}

/// Each near miss — a `Pow` of 3, an epsilon computed from data, a mean and a variance over
/// different axes, a norm over a non-trailing axis, the mean of another tensor subtracted,
/// the variance read elsewhere, an `Einsum` that is an outer product or has no output
/// (implicit) — is refused with an
/// `UnsupportedOperator` error whose reason says what is off (in both float types), never a layer that computes something
/// else.
#[test]
fn near_misses_are_refused_with_the_reason() {
    let fx = fixture();
    let all = files(&fx, true);
    assert_eq!(all.len(), 8, "near-miss files in patterns.json");
    for (file, entry) in &all {
        let key = entry["reason"].as_str().unwrap();
        for err in [
            load_onnx::<f64>(path(file)).err(),
            load_onnx::<f32>(path(file)).err(),
        ] {
            match err {
                Some(Error::UnsupportedOperator { node, reason, .. }) => {
                    assert!(reason.contains(key), "{file}: {node}: {reason}");
                    eprintln!("{file}: {node}: {reason}");
                }
                other => panic!("{file}: {other:?}"),
            }
        }
    }
}

fn attn_lrp(net: &Network<f64>, x: &ArrayD<f64>, target: &Target<f64>) -> ArrayD<f64> {
    let opts = Options {
        seed: Seed::Logit,
        ..Options::default()
    };
    net.attribute_with(x, target, &AttnLrp::new(0.0).unwrap(), opts)
        .unwrap()
        .relevance
}

/// The legacy exporter's written-out `nn.LayerNorm` (opset 14) and the same module as one
/// `LayerNormalization` node (opset 17) give the same outputs and the same AttnLRP
/// relevance at the input (float64, 1e-12).
#[test]
fn attn_lrp_through_written_out_layer_norm_equals_the_operator() {
    let fx = fixture();
    let x: ArrayD<f64> = common::tensor(&fx["x"]);
    let target = Target::PerSample(vec![3, 10]);
    let written: Network<f64> = load_onnx(path("ln_opset14.onnx")).unwrap();
    let op: Network<f64> = load_onnx(path("ln_opset17_op.onnx")).unwrap();
    let d = common::rel_dev(&written.forward(&x).unwrap(), &op.forward(&x).unwrap());
    assert!(d <= 1e-12, "outputs deviate by {d:e}");
    let (a, b) = (attn_lrp(&written, &x, &target), attn_lrp(&op, &x, &target));
    let d = common::rel_dev(&a, &b);
    assert!(d <= 1e-12, "AttnLRP relevance deviates by {d:e}");
    assert!(a.iter().any(|v| v.abs() > 1e-3), "relevance vanishes");
    eprintln!("written-out vs operator: AttnLRP {d:.1e}");
}

/// DeepLIFT (Rescale, the exact softmax rule) through the matched norms and `Einsum`
/// products sums to `f(x) − f(0)` (1e-10 of the difference, as `transformers.rs`), and
/// through the written-out `nn.LayerNorm` it is the DeepLIFT through the
/// `LayerNormalization` operator (1e-12).
#[test]
fn deeplift_through_written_out_norms_and_einsum_sums_to_delta() {
    let fx = fixture();
    let x: ArrayD<f64> = common::tensor(&fx["x"]);
    let target = Target::PerSample(vec![2, 11]);
    let run = |file: &str| {
        let net: Network<f64> = load_onnx(path(file)).unwrap();
        net.deeplift(&x, &target, &DeepLift::rescale(), &Baseline::Zero)
            .unwrap()
    };
    for file in [
        "ln_opset14.onnx",
        "ln_tf_opset14.onnx",
        "ln_last2_opset14.onnx",
        "rms_t5_opset14.onnx",
        "rms_div_opset14.onnx",
        "einsum_attn.onnx",
        "einsum_swap.onnx",
    ] {
        let d = run(file);
        let sums = d.attribution.to_shape((2, 24)).unwrap().sum_axis(Axis(1));
        for (s, t) in sums.iter().zip(&d.total) {
            let gap = (s - t).abs() / t.abs().max(1.0);
            assert!(gap < 1e-10, "{file}: sum {s} for f(x) - f(0) = {t}");
        }
    }
    let (a, b) = (run("ln_opset14.onnx"), run("ln_opset17_op.onnx"));
    let d = common::rel_dev(&a.attribution, &b.attribution);
    assert!(d <= 1e-12, "DeepLIFT deviates by {d:e}");
}

/// Without biases (a layer norm without affine parameters, an RMS norm with its scale only,
/// bias-free linears), AttnLRP with ε = 0 conserves relevance through the matched norm:
/// the input relevance of each sample sums to its target logit (1e-12 relative).
#[test]
fn attn_lrp_conserves_through_written_out_norms() {
    let fx = fixture();
    let x: ArrayD<f64> = common::tensor(&fx["x"]);
    let target = Target::PerSample(vec![1, 8]);
    for file in [
        "ln_noaffine_opset14.onnx",
        "rms_t5_opset14.onnx",
        "rms_recip_opset18.onnx",
    ] {
        let net: Network<f64> = load_onnx(path(file)).unwrap();
        let y = net.forward(&x).unwrap();
        let r = attn_lrp(&net, &x, &target);
        let sums = r.to_shape((2, 24)).unwrap().sum_axis(Axis(1));
        for (s, &t) in [1usize, 8].iter().enumerate() {
            let logit = y[[s, t]];
            let gap = (sums[s] - logit).abs() / logit.abs();
            assert!(
                gap <= 1e-12,
                "{file} sample {s}: sum {} for logit {logit}",
                sums[s]
            );
        }
    }
}

/// The tiny ViT and BERT as the TorchScript exporter writes them at opset 14 (five
/// written-out layer norms each): the float64 files give the fixture's logits (2e-15) and
/// lxt's AttnLRP and CP-LRP input relevance (`LXT_F64`, as `transformer_onnx.rs`), each layer
/// norm one `LayerNorm` layer; the float32 twins give the logits within 1e-5.
#[test]
fn opset14_tiny_transformers_match_logits_and_lxt() {
    let fixture_path = |file: &str| {
        format!(
            "{}/tests/fixtures/transformers/{file}",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    // the explained input: the ViT's images, the BERT's ids (as floats)
    use crate::transformer_onnx::{input, targets};
    let mut report = Vec::new();
    for (model, norms) in [("tiny_vit", 5), ("tiny_bert", 5)] {
        let fx = common::load(&format!("transformers/{model}"));
        let x = input(&fx);
        let want = common::tensor::<f64>(&fx["logits"]);
        let file = format!("{model}.opset14.onnx");
        let net: Network<f64> = load_onnx(fixture_path(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let names = layer_names(&net);
        let found = names.iter().filter(|n| n.starts_with("LayerNorm")).count();
        assert_eq!(found, norms, "{file}: layers {names:?}");
        let d = common::rel_dev(&net.forward(&x).unwrap(), &want);
        // main's ONNX_TRANSFORMER_LOGITS_F64 (measured 4.7e-16)
        assert!(d <= 2e-15, "{file}: logits deviate by {d:e}");
        let mut line = format!("{file}: logits {d:.1e}");
        let opts = Options {
            seed: Seed::Logit,
            ..Options::default()
        };
        for case in ["attn_lrp", "cp_lrp"] {
            let a = if case == "attn_lrp" {
                net.attribute_with(&x, &targets(&fx), &AttnLrp::new(0.0).unwrap(), opts)
            } else {
                net.attribute_with(&x, &targets(&fx), &CpLrp::new(0.0).unwrap(), opts)
            }
            .unwrap();
            let key = if model == "tiny_vit" {
                "relevance"
            } else {
                "relevance_tokens"
            };
            let d = common::rel_dev(&a.relevance, &common::tensor(&fx["cases"][case][key]));
            assert!(
                d <= common::bounds::LXT_F64,
                "{file} {case}: input relevance deviates from lxt by {d:e}"
            );
            line.push_str(&format!(", {case} {d:.1e}"));
        }
        let file32 = format!("{model}.opset14.f32.onnx");
        let net32: Network<f32> =
            load_onnx(fixture_path(&file32)).unwrap_or_else(|e| panic!("{file32}: {e}"));
        let d = common::rel_dev(
            &net32.forward(&x.mapv(|v| v as f32)).unwrap(),
            &want.mapv(|v| v as f32),
        );
        assert!(d <= 1e-5, "{file32}: logits deviate by {d:e}");
        line.push_str(&format!("; {file32}: logits {d:.1e}"));
        report.push(line);
    }
    eprintln!("{}", report.join("\n"));
}
