//! torchvision's ViT-B/16 (both PyTorch exporters) and ConvNeXt-Tiny (channels-last layer
//! norms through `Permute`, depthwise 7×7 convolutions, layer scale) from ONNX (issue #21),
//! float32, dynamic batch: onnxruntime's logits, and AttnLRP/CP-LRP explanations that run.
//! The files are too large to commit (~330 MB and ~110 MB): `tools/gen_big_transformer_onnx.py`
//! writes them with seeded random weights, then
//!
//! ```sh
//! RELEVANCE_BIG_ONNX=/tmp/big cargo test --release --test suite big_transformers -- --ignored --nocapture
//! ```
//!
//! prints the deviations and the times (one cold run each, not a benchmark).

use relevance::io::{load_npy, load_onnx};
use relevance::{AttnLrp, CpLrp, Network, Rule, Target};
use std::time::Instant;

#[test]
#[ignore = "needs RELEVANCE_BIG_ONNX: the exports of tools/gen_big_transformer_onnx.py (~0.5 GB)"]
fn torchvision_transformers_match_onnxruntime_and_explain() {
    let dir = std::env::var("RELEVANCE_BIG_ONNX")
        .expect("RELEVANCE_BIG_ONNX: the folder tools/gen_big_transformer_onnx.py wrote");
    let x = load_npy::<f32>(format!("{dir}/input.npy")).unwrap();
    let x1 = x.slice_axis(ndarray::Axis(0), (0..1).into()).to_owned();
    for stem in ["vit_b_16.legacy", "vit_b_16.dynamo", "convnext_tiny.legacy"] {
        let t = Instant::now();
        let net: Network<f32> =
            load_onnx(format!("{dir}/{stem}.onnx")).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let load = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let logits = net.forward(&x).unwrap();
        let forward = t.elapsed().as_secs_f64();
        let want = load_npy::<f32>(format!("{dir}/{stem}.logits.npy")).unwrap();
        let d = crate::common::rel_dev(&logits, &want);
        assert!(
            d <= crate::common::bounds::ONNX_TRANSFORMER_F32,
            "{stem}: logits deviate from onnxruntime by {d:e}"
        );
        let rules: [(&str, Box<dyn Rule<f32>>); 2] = [
            ("AttnLRP", Box::new(AttnLrp::default())),
            ("CP-LRP", Box::new(CpLrp::default())),
        ];
        let mut line = format!(
            "{stem}: {} nodes, logits {d:.1e} from onnxruntime; load {load:.2} s, forward (batch 2) {forward:.2} s",
            net.nodes().len()
        );
        for (name, rule) in &rules {
            let t = Instant::now();
            let a = net.attribute(&x1, &Target::Predicted, rule.as_ref()).unwrap();
            let took = t.elapsed().as_secs_f64();
            assert_eq!(a.relevance.shape(), x1.shape());
            assert!(a.relevance.iter().all(|v| v.is_finite()), "{stem} {name}");
            assert!(a.relevance.iter().any(|&v| v != 0.0), "{stem} {name}");
            line.push_str(&format!(
                "; {name} (batch 1) {took:.2} s, Σ relevance {:.4} of logit {:.4}",
                a.relevance.sum(),
                a.total[0]
            ));
        }
        eprintln!("{line}");
    }
}
