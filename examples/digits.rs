//! Explains a real trained network on real handwritten digits.
//!
//! ```sh
//! cargo run --release --example digits            # the first test digit of each class
//! cargo run --release --example digits -- 0 7 42  # chosen test digits (0..500)
//! ```
//!
//! Loads the bundled CNN (`models/digits.json` + `models/digits.safetensors`, trained by
//! `tools/train_digits.py` on 9,500 MNIST digits) and the 500 held-out test digits
//! (`data/digits_test.bin`), explains the predicted class of each chosen digit with five
//! methods and writes one grid PNG, one row per digit:
//!
//! input | LRP-0 | LRP-ε (ε = 1) | LRP-γ (γ = 0.25) | composite (EpsilonGammaBox) | DeepLIFT |
//! the composite's heatmap over the digit
//!
//! with the methods as column titles, each row captioned with the digit's index, label,
//! predicted class and logit, and a colour bar (a `heatmap::Figure`).
//!
//! Red is relevance for the predicted class, blue against it, white zero; each heatmap is
//! scaled by its own largest |R| (zennit's symmetric `imgify`). The composite is zennit's
//! EpsilonGammaBox: z^B with pixel bounds [0, 1] on the first convolution, γ = 0.25 on the
//! second, ε on the dense layers. DeepLIFT uses the Rescale rule and an all-black baseline.
//!
//! For each digit it prints the predicted class, its logit f_c(x) and the conservation gap
//! of each method: f_c(x) − Σ R for LRP (biases and the stabiliser ε absorb the rest), and
//! f_c(x) − f_c(0) − Σ R for DeepLIFT (zero up to rounding).

use ndarray::{ArrayD, Axis};
use relevance::heatmap::{overlay, Figure, Heatmap, RgbImage};
use relevance::io::{load_safetensors, Digits};
use relevance::{Baseline, Composite, DeepLift, Lrp0, LrpEpsilon, LrpGamma, Method, Target};

const SCALE: usize = 3;
const EPSILON: f64 = 1.0;
/// How opaque the heatmap is over the digit in the last column (0: only the digit, 1: only
/// the heatmap).
const OVERLAY_OPACITY: f64 = 0.6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let net = load_safetensors::<f32>(
        format!("{dir}/models/digits.json"),
        format!("{dir}/models/digits.safetensors"),
    )?;
    let digits = Digits::load(format!("{dir}/data/digits_test.bin"))?;
    let chosen: Vec<usize> = match std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(v) if !v.is_empty() => v,
        // the first test digit of each class
        Ok(_) => (0..10u8)
            .filter_map(|c| digits.labels().iter().position(|&l| l == c))
            .collect(),
        Err(e) => {
            return Err(format!("arguments must be test digit indices (0..{}): {e}", digits.len()).into())
        }
    };
    let x = digits.images::<f32>(&chosen)?;

    // explain the predicted class of each digit
    let logits = net.forward(&x)?;
    let predicted: Vec<usize> = logits
        .axis_iter(Axis(0))
        .map(|row| (0..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best }))
        .collect();
    let target = Target::PerSample(predicted.clone());

    // pixel bounds of z^B: the inputs lie in [0, 1]
    let (low, high) = (ArrayD::zeros(vec![]), ArrayD::ones(vec![]));
    let methods = [
        Method::lrp(Lrp0),
        Method::lrp(LrpEpsilon::new(EPSILON)?),
        Method::lrp(LrpGamma::new(0.25)?),
        Method::lrp(Composite::epsilon_gamma_box(low, high)?),
        Method::deeplift(DeepLift::rescale(), Baseline::Zero),
    ];
    // relevance[m] is [N, 1, 28, 28]; gaps[m][i] the conservation gap
    let mut relevance = Vec::new();
    let mut gaps = Vec::new();
    for method in &methods {
        let a = net.explain(&x, &target, method)?;
        gaps.push(a.delta.to_vec());
        relevance.push(a.relevance);
    }

    println!("digit  label  predicted  logit   conservation gap (explained amount − Σ relevance)");
    println!(
        "                                 {}",
        ["LRP-0", "LRP-ε", "LRP-γ", "composite", "DeepLIFT"]
            .map(|m| format!("{m:>10}"))
            .join("")
    );
    let heatmap = Heatmap {
        scale: SCALE,
        ..Heatmap::default()
    };
    let mut figure = Figure::new([
        "input".to_string(),
        "LRP-0".into(),
        format!("LRP-ε ({EPSILON})"),
        "LRP-γ (0.25)".into(),
        "EpsilonGammaBox".into(),
        "DeepLIFT".into(),
        format!("EpsilonGammaBox\nover input ({OVERLAY_OPACITY})"),
    ])
    .title("Why the model predicts each digit: red for the predicted class, blue against")
    .colour_bar(&heatmap.palette, ["−max |R| (against)", "0", "+max |R| (for)"]);
    for (row, &i) in chosen.iter().enumerate() {
        let input = RgbImage::from_array(&x.index_axis(Axis(0), row), Some((0.0, 1.0)))?.upscale(SCALE)?;
        let mut cells = vec![input.clone()];
        for r in &relevance {
            cells.push(heatmap.render(&r.index_axis(Axis(0), row))?);
        }
        // the composite's heatmap over the digit, at an adjustable opacity
        cells.push(overlay(&input, &cells[4], OVERLAY_OPACITY)?);
        let (label, class) = (digits.labels()[i], predicted[row]);
        let logit = logits[[row, class]];
        figure.row(
            format!("test digit {i}\nlabel {label}\npredicted {class}\nlogit {logit:.2}"),
            cells,
        )?;
        let gap_text: String = gaps.iter().map(|g| format!("{:>10.4}", g[row])).collect();
        println!("{i:>5}  {label:>5}  {class:>9}  {logit:>6.2}   {gap_text}");
    }
    let picture = figure.render()?;
    let out = std::path::Path::new("out/digits");
    std::fs::create_dir_all(out)?;
    let file = out.join("digits_grid.png");
    picture.save_png(&file)?;
    println!(
        "\nwrote {} ({}×{} pixels): one row per digit, columns input | LRP-0 | LRP-ε ({EPSILON}) | LRP-γ (0.25) | EpsilonGammaBox | DeepLIFT (Rescale, zero baseline) | EpsilonGammaBox over the input",
        file.display(),
        picture.width(),
        picture.height()
    );
    Ok(())
}
