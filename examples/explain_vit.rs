//! Explains a trained vision transformer on real handwritten digits, with the rules made for
//! transformers, and measures which explanation is most faithful.
//!
//! ```sh
//! cargo run --release --example explain_vit            # the first test digit of each class
//! cargo run --release --example explain_vit -- 0 7 42  # chosen test digits (0..500)
//! cargo run --release --example explain_vit -- --abpc 100   # and pixel flipping on 100 digits
//! ```
//!
//! Loads the bundled ViT (`models/digits_vit.onnx`, 96 KB: 7×7 patches, a class token, two
//! pre-LN encoder blocks with four-head attention, trained by `tools/train_digits_vit.py` on
//! 9,500 MNIST digits, 97 % test accuracy) and the 500 held-out test digits, explains the
//! predicted class of each chosen digit and writes `out/explain_vit/vit_grid.png`, one row per
//! digit:
//!
//! input | AttnLRP | CP-LRP | AttnLRP with LRP-γ on the patch embedding | gradient × input |
//! DeepLIFT (black baseline)
//!
//! With `--abpc N` it then flips pixels of the first N test digits, most relevant first and
//! least relevant first (`eval::RegionPerturbation::pixel_flipping`, every step a forward
//! pass), and prints the area between the two curves (ABPC, higher is more faithful) of each
//! method next to a random attribution.

use ndarray::{ArrayD, Axis};
use relevance::eval::{random_attribution, RegionPerturbation, Score, Summary};
use relevance::heatmap::{Figure, Heatmap, RgbImage};
use relevance::io::{load_onnx, Digits};
use relevance::{AttnLrp, Baseline, Composite, CpLrp, DeepLift, LrpGamma, Method, Selector, Target};

const SCALE: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let net = load_onnx::<f32>(format!("{dir}/models/digits_vit.onnx"))?;
    let digits = Digits::load(format!("{dir}/data/digits_test.bin"))?;
    let mut chosen = Vec::new();
    let mut abpc = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--abpc" {
            abpc = Some(
                args.next()
                    .ok_or("--abpc needs a number of digits")?
                    .parse::<usize>()?,
            );
        } else {
            chosen.push(
                a.parse::<usize>()
                    .map_err(|e| format!("{a:?}: a test digit index (0..500): {e}"))?,
            );
        }
    }
    if chosen.is_empty() {
        chosen = (0..10u8)
            .filter_map(|c| digits.labels().iter().position(|&l| l == c))
            .collect();
    }
    let x = digits.images::<f32>(&chosen)?;
    let predicted = net.predict(&x)?;
    let target = Target::PerSample(predicted.clone());

    let methods: Vec<(&str, Method<f32>)> = vec![
        ("AttnLRP", Method::lrp(AttnLrp::default())),
        ("CP-LRP", Method::lrp(CpLrp::default())),
        (
            "AttnLRP, γ on\nthe patches",
            Method::lrp(Composite::attn_lrp().with_priority(Selector::First(None), LrpGamma::new(0.25)?)),
        ),
        ("gradient × input", Method::GradientTimesInput),
        ("DeepLIFT", Method::deeplift(DeepLift::rescale(), Baseline::Zero)),
    ];
    let heatmap = Heatmap {
        scale: SCALE,
        ..Heatmap::default()
    };
    let mut titles = vec!["input".to_string()];
    titles.extend(methods.iter().map(|(n, _)| n.to_string()));
    let mut figure = Figure::new(titles)
        .title("A vision transformer's evidence: red for the predicted class, blue against")
        .colour_bar(&heatmap.palette, ["−max |R| (against)", "0", "+max |R| (for)"]);
    let mut relevance = Vec::new();
    for (_, m) in &methods {
        relevance.push(net.explain(&x, &target, m)?.relevance);
    }
    for (row, &i) in chosen.iter().enumerate() {
        let mut cells =
            vec![RgbImage::from_array(&x.index_axis(Axis(0), row), Some((0.0, 1.0)))?.upscale(SCALE)?];
        for r in &relevance {
            cells.push(heatmap.render(&r.index_axis(Axis(0), row))?);
        }
        let label = digits.labels()[i];
        figure.row(
            format!("test digit {i}\nlabel {label}\npredicted {}", predicted[row]),
            cells,
        )?;
    }
    let out = std::path::Path::new("out/explain_vit");
    std::fs::create_dir_all(out)?;
    let file = out.join("vit_grid.png");
    figure.render()?.save_png(&file)?;
    println!("wrote {}", file.display());

    if let Some(n) = abpc {
        let n = n.min(digits.len());
        let idx: Vec<usize> = (0..n).collect();
        let x = digits.images::<f32>(&idx)?;
        let target = Target::PerSample(net.predict(&x)?);
        let flipping = RegionPerturbation::<f32>::pixel_flipping();
        println!("\npixel flipping on {n} test digits (ABPC of the logit, mean and 95 % interval; higher is better)");
        let mut rows: Vec<(&str, ArrayD<f32>)> = Vec::new();
        for (name, m) in &methods {
            rows.push((name, net.explain(&x, &target, m)?.relevance));
        }
        rows.push(("random", random_attribution(x.shape(), 0)));
        for (name, r) in rows {
            let c = flipping.evaluate(&net, &x, &r, &target)?;
            println!(
                "{:<28} {}",
                name.replace('\n', " "),
                Summary::of(c.abpc(Score::Logit))?
            );
        }
    }
    Ok(())
}
