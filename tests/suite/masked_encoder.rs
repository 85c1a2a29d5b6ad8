//! A sentence encoder exported as published ones are (issue #21, item 6): Hugging Face
//! `BertModel` with `input_ids` and `attention_mask`, token types from a constant buffer, and
//! sentence-transformers' masked mean pooling (`tools/gen_masked_encoder.py`). The mask is
//! held fixed (`OnnxOptions::fixed_inputs`): all ones, or zeros at padded positions.

use crate::common;

use ndarray::{arr1, ArrayD, Axis};
use relevance::io::{load_onnx_with, FixedInput, OnnxOptions};
use relevance::{AttnLrp, Baseline, CpLrp, DeepLift, Error, Network, Target};

fn path(file: &str) -> String {
    format!(
        "{}/tests/fixtures/transformers/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn load<F: relevance::Float>(file: &str, mask: FixedInput) -> Network<F> {
    let options = OnnxOptions::default()
        .with_input_shape(&[6])
        .with_fixed_input("attention_mask", mask);
    load_onnx_with(path(file), &options)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .network
}

fn padded_mask() -> FixedInput {
    FixedInput::Values(arr1(&[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]).into_dyn())
}

/// The float64 file with the mask fixed gives PyTorch's sentence embeddings, with a mask
/// of ones and with the last two tokens masked out; the float32 twin gives onnxruntime's.
#[test]
fn fixed_mask_gives_torch_and_onnxruntime_embeddings() {
    let fx = common::load("transformers/masked_encoder");
    let ids: ArrayD<f64> = common::tensor(&fx["ids"]);
    for (case, mask) in [("ones", FixedInput::Fill(1.0)), ("padded", padded_mask())] {
        let net = load::<f64>("masked_encoder.onnx", mask.clone());
        assert!(net.held_inputs().is_empty());
        // the position and the token-type embeddings (one row repeated over the tokens) are
        // constants added, which absorb their share of the relevance as lxt's rules do
        let constants: Vec<&str> = net
            .nodes()
            .iter()
            .filter(|n| n.category() == relevance::Category::Constant)
            .map(|n| n.name())
            .collect();
        assert_eq!(constants.len(), 2, "{constants:?}");
        let got = net.forward(&ids).unwrap();
        let d = common::rel_dev(&got, &common::tensor(&fx["cases"][case]["torch"]));
        assert!(
            d <= common::bounds::ONNX_TRANSFORMER_LOGITS_F64,
            "{case}: embeddings deviate from torch by {d:e}"
        );
        let net32 = load::<f32>("masked_encoder.f32.onnx", mask);
        let got32 = net32.forward(&ids.mapv(|v| v as f32)).unwrap();
        let d32 = common::rel_dev(&got32, &common::tensor(&fx["cases"][case]["onnxruntime"]));
        assert!(
            d32 <= common::bounds::ONNX_TRANSFORMER_F32,
            "{case}: float32 embeddings deviate from onnxruntime by {d32:e}"
        );
        eprintln!("masked encoder, mask {case}: torch {d:.1e}, onnxruntime (f32) {d32:.1e}");
    }
}

/// What the mask removes gets no relevance: with the last two tokens masked out, AttnLRP
/// and CP-LRP give them exactly zero, and DeepLIFT (baseline: token 0 everywhere) sums to
/// `f(x) − f(x̄)` (1e-10) with zero at the masked tokens too.
#[test]
fn masked_tokens_get_no_relevance_and_deeplift_sums_to_delta() {
    let fx = common::load("transformers/masked_encoder");
    let ids: ArrayD<f64> = common::tensor(&fx["ids"]);
    let net = load::<f64>("masked_encoder.onnx", padded_mask());
    let target = Target::Class(3);
    let masked = |r: &ArrayD<f64>| r.slice(ndarray::s![.., 4..]).iter().all(|&v| v == 0.0);
    let attn = net.attribute(&ids, &target, &AttnLrp::new(0.0).unwrap()).unwrap();
    let cp = net.attribute(&ids, &target, &CpLrp::new(0.0).unwrap()).unwrap();
    for (name, a) in [("AttnLRP", &attn), ("CP-LRP", &cp)] {
        assert_eq!(a.relevance.shape(), &[2, 6]);
        assert!(masked(&a.relevance), "{name}: {:?}", a.relevance);
        assert!(a.relevance.iter().any(|&v| v != 0.0), "{name}");
    }
    let d = net
        .deeplift(&ids, &target, &DeepLift::rescale(), &Baseline::Zero)
        .unwrap();
    assert!(masked(&d.attribution), "DeepLIFT: {:?}", d.attribution);
    for (s, t) in d.attribution.sum_axis(Axis(1)).iter().zip(&d.total) {
        let gap = (s - t).abs() / t.abs().max(1.0);
        assert!(gap < 1e-10, "DeepLIFT sums to {s} for f(x) - f(x̄) = {t}");
    }
}

/// Bad fixed inputs are typed errors naming the input: an unknown name (listing the data
/// inputs), the explained input itself, values of the wrong shape, fractional values for
/// an integer input, and a non-finite fill.
#[test]
fn bad_fixed_inputs_are_named_errors() {
    let try_load = |name: &str, value: FixedInput| {
        let options = OnnxOptions::default()
            .with_input_shape(&[6])
            .with_fixed_input(name, value);
        load_onnx_with::<f64>(path("masked_encoder.onnx"), &options).unwrap_err()
    };
    let cases = [
        (
            try_load("mask", FixedInput::Fill(1.0)),
            "input_ids, attention_mask",
        ),
        (try_load("input_ids", FixedInput::Fill(1.0)), "explained input"),
        (
            try_load("attention_mask", FixedInput::Values(arr1(&[1.0; 5]).into_dyn())),
            "[5]",
        ),
        (
            try_load("attention_mask", FixedInput::Fill(0.5)),
            "not an integer",
        ),
        (
            try_load("attention_mask", FixedInput::Fill(f64::NAN)),
            "not finite",
        ),
    ];
    for (err, says) in cases {
        assert!(matches!(err, Error::OnnxInput { .. }), "{err:?}");
        assert!(err.to_string().contains(says), "{err} lacks {says:?}");
    }
    // without the mask fixed, the integer mask is a held input the network cannot take
    let err = load_onnx_with::<f64>(
        path("masked_encoder.onnx"),
        &OnnxOptions::default().with_input_shape(&[6]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("attention_mask"), "{err}");
}
