//! Explains a trained sequence model on DNA: which bases make it predict its count.
//!
//! ```sh
//! cargo run --release --example sequences          # the first 6 test sequences
//! cargo run --release --example sequences -- 0 3   # chosen ones (0..20)
//! ```
//!
//! Loads the bundled BPNet-style model (`models/motifs.onnx`, trained by
//! `tools/train_motif_model.py` to predict log(1 + 2·#AP-1 + #GATA) of 200 bp sequences in
//! which copies of the AP-1 site TGACTCA and the GATA site AGATAA are planted) and its 20
//! held-out test sequences (`data/motifs.fa`, the planted sites in the record names),
//! explains the count with DeepLIFT-SHAP against 20 dinucleotide-shuffled references per
//! sequence (tangermeme's recipe, `genomics::deep_lift_shap_shuffled`) and writes:
//!
//! * `out/sequences/logos.png`: one sequence logo per sequence, the attributions of the
//!   observed bases (letters above the line push the count up, below push it down),
//!   captioned with the record's name and planted sites, all at one scale;
//! * `out/sequences/ohe.npz` and `out/sequences/shap.npz`: the one-hot sequences and the
//!   hypothetical contributions `[N, 4, L]`, as tfmodisco-lite's `modisco motifs -s ohe.npz
//!   -a shap.npz` reads them.
//!
//! For each sequence it prints the predicted log count, the additivity gap
//! `Σ attributions − (f(x) − mean f(refs))` and the five positions of largest attribution:
//! on a model that learned the task they fall in the planted sites.

use ndarray::{s, Axis};
use relevance::genomics::io::{one_hot_batch, read_fasta, write_modisco_inputs};
use relevance::genomics::{deep_lift_shap_shuffled, ShuffleOptions};
use relevance::heatmap::{Figure, SequenceLogo};
use relevance::io::load_onnx;
use relevance::Target;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let net = load_onnx::<f32>(format!("{dir}/models/motifs.onnx"))?;
    let fasta = format!("{dir}/data/motifs.fa");
    let records = read_fasta(&fasta)?;
    // the planted sites, after the record names in the headers (e.g. ">test3 GATA@69 GATA@121")
    let headers: Vec<String> = std::fs::read_to_string(&fasta)?
        .lines()
        .filter_map(|l| l.strip_prefix('>'))
        .map(|h| h.split_once(' ').map_or("", |(_, sites)| sites).to_string())
        .collect();
    let chosen: Vec<usize> = match std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<Vec<usize>, _>>()
    {
        Ok(v) if !v.is_empty() => v,
        Ok(_) => (0..6).collect(),
        Err(e) => return Err(format!("give test sequence numbers (0..{}): {e}", records.len()).into()),
    };
    if let Some(&bad) = chosen.iter().find(|&&i| i >= records.len()) {
        return Err(format!("there are {} test sequences; {bad} is not one", records.len()).into());
    }
    let picked: Vec<_> = chosen.iter().map(|&i| records[i].clone()).collect();
    let sites: Vec<&str> = chosen
        .iter()
        .map(|&i| headers.get(i).map_or("", String::as_str))
        .collect();
    let x = one_hot_batch::<f32>(&picked)?.into_dyn();
    let result = deep_lift_shap_shuffled(&net, &x, &Target::Class(0), ShuffleOptions::default())?;

    // one scale for every logo: the tallest stack of all of them fills the picture
    let tallest = result
        .attributions
        .axis_iter(Axis(0))
        .flat_map(|a| {
            (0..a.shape()[1])
                .map(|p| a.slice(s![.., p]).iter().map(|v| v.abs()).sum::<f32>())
                .collect::<Vec<_>>()
        })
        .fold(1e-12f32, f32::max);
    let logo = SequenceLogo::new()
        .base_width(6)
        .height(90)
        .scale(80.0 / f64::from(tallest))?
        .zero_at(0.9)?;
    let mut figure = Figure::new(["attributions of the observed bases (DeepLIFT-SHAP, 20 shuffles)"])
        .title("Why the model predicts its count: letters above the line push it up, below push it down");
    for (k, record) in picked.iter().enumerate() {
        let a = result.attributions.index_axis(Axis(0), k);
        let per_base = a.sum_axis(Axis(0));
        let mut order: Vec<usize> = (0..per_base.len()).collect();
        order.sort_by(|&i, &j| per_base[j].abs().total_cmp(&per_base[i].abs()));
        println!(
            "{} (planted: {}): log count {:.3}, gap {:+.1e}, largest |attribution| at positions {:?}",
            record.name,
            sites[k],
            result.output[k],
            result.gap[k],
            &order[..5]
        );
        let a2 = a.into_dimensionality::<ndarray::Ix2>()?;
        let caption = format!("{}: {}\nlog count {:.2}", record.name, sites[k], result.output[k]);
        figure.row(caption, vec![logo.render(&a2)?])?;
    }
    let out = format!("{dir}/out/sequences");
    std::fs::create_dir_all(&out)?;
    figure.render()?.save_png(format!("{out}/logos.png"))?;
    write_modisco_inputs(
        format!("{out}/ohe.npz"),
        format!("{out}/shap.npz"),
        &x,
        &result.hypothetical,
    )?;
    println!("wrote {out}/logos.png, {out}/ohe.npz and {out}/shap.npz");
    Ok(())
}
