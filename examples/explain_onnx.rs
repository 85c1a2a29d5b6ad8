//! Explains any supported ONNX model on one input given on the command line.
//!
//! ```sh
//! cargo run --release --example explain_onnx -- MODEL.onnx INPUT [options]
//! # e.g. the bundled digits model on a 28×28 greyscale PNG or a [1, 28, 28] .npy:
//! cargo run --release --example explain_onnx -- models/digits.onnx digit.png --rule epsilon-gamma-box
//! ```
//!
//! `INPUT` is a `.npy` array of the model's per-sample input shape (optionally with a
//! leading batch dimension of 1), or a PNG whose size equals the model's input (no resizing:
//! pixels are scaled to [0, 1]; RGB is averaged to grey for a 1-channel model, grey is
//! repeated for a 3-channel one). Options:
//!
//! * `--rule NAME` — any name `relevance::MethodName` reads: `lrp0`, `epsilon[=E]`,
//!   `gamma[=G]`, `alpha-beta[=A,B]`, `zplus`, `flat`, `wsquare`, `zbox`, the composites
//!   (`epsilon-plus`, `epsilon-gamma-box`, `layered`, ...; z^B's pixel bounds from
//!   `--low`/`--high`, default 0 and 1), `deeplift` and its variants (zero baseline),
//!   `gradient`, `gradient-x-input`. Default `epsilon-plus`.
//! * `--target CLASS` — the class to explain; default the predicted one.
//! * `--out DIR` — where to write; default `out/explain_onnx`.
//! * `--scale N` — heatmap upscaling factor; default 4.
//! * `--input-shape C,H,W` — the per-sample input shape, for a model whose height and width
//!   are symbolic in the file.
//! * `--output NAME` — the tensor to explain, for a model with several outputs.
//!
//! Writes `DIR/STEM_RULE_cCLASS.png` (the heatmap: red for the class, blue against) and
//! `DIR/STEM_RULE_cCLASS.npy` (the raw relevance, float32, of the input's shape, to compare
//! with other tools).

use ndarray::{Array3, ArrayD, Axis};
use relevance::heatmap::Heatmap;
use relevance::io::{load_npy, load_onnx_with, save_npy, OnnxOptions};
use relevance::{Baseline, MethodName, Network, Target};
use std::path::{Path, PathBuf};

type Error = Box<dyn std::error::Error>;

struct Args {
    model: PathBuf,
    input: PathBuf,
    rule: MethodName,
    target: Option<usize>,
    out: PathBuf,
    scale: usize,
    low: f32,
    high: f32,
    input_shape: Option<Vec<usize>>,
    output: Option<String>,
}

fn parse_args() -> Result<Args, Error> {
    let mut positional = Vec::new();
    let mut args = Args {
        model: PathBuf::new(),
        input: PathBuf::new(),
        rule: MethodName::EpsilonPlus,
        target: None,
        out: PathBuf::from("out/explain_onnx"),
        scale: 4,
        low: 0.0,
        high: 1.0,
        input_shape: None,
        output: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--rule" => args.rule = value("--rule")?.parse()?,
            "--target" => args.target = Some(value("--target")?.parse()?),
            "--out" => args.out = value("--out")?.into(),
            "--scale" => args.scale = value("--scale")?.parse()?,
            "--low" => args.low = value("--low")?.parse()?,
            "--high" => args.high = value("--high")?.parse()?,
            "--input-shape" => {
                let dims: Result<Vec<usize>, _> =
                    value("--input-shape")?.split(',').map(str::parse).collect();
                args.input_shape = Some(dims.map_err(|e| format!("--input-shape C,H,W: {e}"))?);
            }
            "--output" => args.output = Some(value("--output")?),
            "-h" | "--help" => return Err(usage().into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{}", usage()).into()),
            _ => positional.push(a),
        }
    }
    match <[String; 2]>::try_from(positional) {
        Ok([model, input]) => {
            args.model = model.into();
            args.input = input.into();
            Ok(args)
        }
        Err(_) => Err(usage().into()),
    }
}

fn usage() -> String {
    "usage: explain_onnx MODEL.onnx INPUT.(png|npy) [--rule NAME] [--target CLASS] [--out DIR] [--scale N] \
     [--low L --high H] [--input-shape C,H,W] [--output NAME]"
        .into()
}

/// Reads a PNG as `[C, H, W]` in [0, 1] with the channel count the model wants.
fn read_png(path: &Path, channels: usize) -> Result<ArrayD<f32>, Error> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader.next_frame(&mut buf)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let stride = info.color_type.samples();
    let pixel = |y: usize, x: usize, c: usize| buf[(y * w + x) * stride + c] as f32 / 255.0;
    // grey value (or the colour channels), alpha ignored
    let colour = stride >= 3;
    let image = Array3::from_shape_fn((channels, h, w), |(c, y, x)| match (channels, colour) {
        (1, true) => (pixel(y, x, 0) + pixel(y, x, 1) + pixel(y, x, 2)) / 3.0,
        (_, true) => pixel(y, x, c.min(2)),
        (_, false) => pixel(y, x, 0),
    });
    Ok(image.into_dyn())
}

/// Loads the input as a batch of one `[1, input_shape...]`.
fn read_input(path: &Path, net: &Network<f32>) -> Result<ArrayD<f32>, Error> {
    let shape = net.input_shape();
    let x = match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => load_npy::<f32>(path)?,
        Some("png") if shape.len() == 3 => read_png(path, shape[0])?,
        Some("png") => return Err(format!("the model's input {shape:?} is not an image [C, H, W]").into()),
        _ => return Err("the input must be a .png or .npy file".into()),
    };
    let x = if x.shape() == shape {
        x.insert_axis(Axis(0))
    } else {
        x
    };
    if &x.shape()[1..] != shape || x.shape()[0] != 1 {
        return Err(format!(
            "input of shape {:?} does not fit the model's input {shape:?}",
            x.shape()
        )
        .into());
    }
    Ok(x)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let mut options = OnnxOptions::default();
    if let Some(shape) = &args.input_shape {
        options = options.with_input_shape(shape);
    }
    if let Some(output) = &args.output {
        options = options.with_output(output);
    }
    let model = load_onnx_with::<f32>(&args.model, &options).map_err(|e| {
        let hint = if e.to_string().contains("symbolic") {
            " (give it with --input-shape C,H,W)"
        } else {
            ""
        };
        format!("{e}{hint}")
    })?;
    for note in &model.notes {
        println!("note: {note}");
    }
    let net = model.network;
    println!(
        "model {}: input {:?}, output {:?}, {} layers",
        args.model.display(),
        net.input_shape(),
        net.output_shape(),
        net.nodes().len()
    );
    let x = read_input(&args.input, &net)?;
    let logits = net.forward(&x)?;
    let scores: Vec<f32> = logits.iter().copied().collect();
    let predicted = (0..scores.len()).fold(0, |b, c| if scores[c] > scores[b] { c } else { b });
    let class = args.target.unwrap_or(predicted);
    println!(
        "predicted class {predicted} (score {:.4}); explaining class {class}",
        scores[predicted]
    );

    let target = Target::Class(class);
    // one parser for every method's name (the library's), one call for every method
    let bounds = (
        ArrayD::from_elem(vec![], args.low),
        ArrayD::from_elem(vec![], args.high),
    );
    let method = args.rule.method(Some(bounds), Baseline::Zero)?;
    let a = net.explain(&x, &target, &method)?;
    let (relevance, total, gap) = (a.relevance, a.total[0], a.delta[0]);
    println!(
        "explained amount {total:.4}, Σ relevance {:.4}, gap {gap:.4}",
        relevance.sum()
    );

    std::fs::create_dir_all(&args.out)?;
    let stem = args.input.file_stem().and_then(|s| s.to_str()).unwrap_or("input");
    let name = format!("{stem}_{}_c{class}", args.rule.label());
    let (png, npy) = (
        args.out.join(format!("{name}.png")),
        args.out.join(format!("{name}.npy")),
    );
    let sample = relevance.index_axis(Axis(0), 0);
    save_npy(&npy, &sample.to_owned())?;
    // a heatmap needs [C, H, W] or [H, W]; show a 1-D input as one row
    let map = if sample.ndim() == 1 {
        sample.insert_axis(Axis(0))
    } else {
        sample
    };
    Heatmap {
        scale: args.scale,
        ..Heatmap::default()
    }
    .render(&map)?
    .save_png(&png)?;
    println!("wrote {} and {}", png.display(), npy.display());
    Ok(())
}
