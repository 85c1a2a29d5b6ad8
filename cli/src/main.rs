//! `relevance`: LRP and DeepLIFT explanations of ONNX and safetensors models from the
//! command line. See `relevance --help` and the README's "Command line" section.

mod input;
mod method;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use input::{load_input, Preprocess};
use method::{Method, Preset, COMPOSITES, RULES};
use ndarray::{ArrayD, Axis};
use relevance::heatmap::{Heatmap, RgbImage};
use relevance::io::{load_onnx_with, load_safetensors, OnnxOptions};
use relevance::{Baseline, Network, Op, RuleSet, Target};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "relevance",
    version,
    about = "LRP and DeepLIFT explanations of neural networks (ONNX or safetensors + JSON)",
    after_help = "Run `relevance rules` for every rule and composite, `relevance explain --help` for the options."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explain the model's prediction on each input: heatmap, overlay and raw relevance per
    /// input, and one summary.csv.
    Explain(Box<ExplainArgs>),
    /// List the model's nodes with shapes, parameters and the rule each composite gives them.
    Inspect(ModelArgs),
    /// List every rule and composite with its parameters and use.
    Rules,
}

#[derive(Args)]
struct ModelArgs {
    /// The model: an .onnx file, or a .safetensors file with its JSON architecture (--arch).
    model: PathBuf,
    /// The JSON architecture of a .safetensors model (default: the model's path with .json).
    #[arg(long, value_name = "FILE.json")]
    arch: Option<PathBuf>,
    /// The per-sample input shape, for an ONNX model whose height and width are symbolic.
    #[arg(long, value_name = "C,H,W", value_parser = parse_shape)]
    input_shape: Option<Shape>,
    /// The ONNX output to explain, for a model with several outputs.
    #[arg(long, value_name = "NAME")]
    output: Option<String>,
}

#[derive(Args)]
struct ExplainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Inputs: images (.png, .jpg) or arrays (.npy of the model's input shape).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// A single LRP rule or DeepLIFT: lrp0, epsilon[=E], gamma[=G], alpha-beta[=A,B], zplus,
    /// flat, wsquare, zbox, deeplift, deeplift-reveal-cancel, deeplift-genomics.
    #[arg(long, value_name = "NAME", value_parser = method::parse_rule, conflicts_with = "composite")]
    rule: Option<Method>,
    /// A composite: epsilon-plus (default), epsilon-plus-flat, epsilon-alpha2-beta1,
    /// epsilon-alpha2-beta1-flat, epsilon-gamma-box, layered.
    #[arg(long, value_name = "NAME", value_parser = method::parse_composite)]
    composite: Option<Method>,
    /// What to explain: predicted (the top class), a class number C, or topK (each of the K
    /// best classes).
    #[arg(long, value_name = "predicted|C|topK", default_value = "predicted", value_parser = parse_target)]
    target: TargetArg,
    /// Image preprocessing after scaling pixels to [0, 1]: imagenet (resize 256, crop 224,
    /// ImageNet mean/std), mnist, none, or mean=M1,M2,M3,std=S1,S2,S3. Also sets the z^B
    /// bounds (the normalised 0 and 1).
    #[arg(long, value_name = "PRESET", default_value = "none", value_parser = input::parse_preprocess)]
    preprocess: Preprocess,
    /// The image size the model takes (resize + centre-crop target), when its input shape is
    /// symbolic; default the model's input height and width.
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// DeepLIFT's reference: zero, mean (each input's own per-channel mean), or FILE.npy.
    #[arg(long, value_name = "zero|mean|FILE.npy", default_value = "zero")]
    baseline: String,
    /// Output directory.
    #[arg(long, value_name = "DIR", default_value = "relevance-out")]
    out: PathBuf,
    /// Class names, one per line (line k names class k).
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Heatmap upscaling factor (default: to about 256 pixels on the longer side, at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    scale: Option<u32>,
    /// Opacity of the heatmap over the (grey) input in the overlay where |relevance| is
    /// largest, 0 to 1 (it fades to 0 where the relevance is zero).
    #[arg(long, value_name = "A", default_value = "0.6", value_parser = parse_alpha)]
    alpha: f64,
}

#[derive(Clone, Debug)]
enum TargetArg {
    Predicted,
    Class(usize),
    Top(usize),
}

fn parse_target(s: &str) -> Result<TargetArg, String> {
    let s = s.trim();
    if s == "predicted" {
        return Ok(TargetArg::Predicted);
    }
    if let Some(k) = s.strip_prefix("top") {
        return match k.parse::<usize>() {
            Ok(k) if k >= 1 => Ok(TargetArg::Top(k)),
            _ => Err("write topK with K ≥ 1, e.g. top3".to_string()),
        };
    }
    s.parse()
        .map(TargetArg::Class)
        .map_err(|_| "write predicted, a class number, or topK (e.g. top3)".to_string())
}

/// A per-sample input shape (one clap value, not a list of values).
#[derive(Clone, Debug)]
struct Shape(Vec<usize>);

fn parse_shape(s: &str) -> Result<Shape, String> {
    let dims: Result<Vec<usize>, _> = s.split(',').map(|d| d.trim().parse::<usize>()).collect();
    match dims {
        Ok(d) if !d.is_empty() && d.iter().all(|&v| v > 0) => Ok(Shape(d)),
        _ => Err("write positive sizes separated by commas, e.g. 3,224,224".to_string()),
    }
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let parts: Vec<&str> = s.split(['x', 'X', '×']).collect();
    match parts.as_slice() {
        [h, w] => match (h.trim().parse::<usize>(), w.trim().parse::<usize>()) {
            (Ok(h), Ok(w)) if h > 0 && w > 0 => Ok((h, w)),
            _ => Err("write HxW with positive numbers, e.g. 224x224".to_string()),
        },
        _ => Err("write HxW, e.g. 224x224".to_string()),
    }
}

fn parse_alpha(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(a) if (0.0..=1.0).contains(&a) => Ok(a),
        _ => Err("give a number from 0 to 1".to_string()),
    }
}

/// What went wrong: the user's call (exit code 2) or the work (exit code 1).
enum Failure {
    Usage(String),
    Run(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Run(s)
    }
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with code 2; --help and --version with 0
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Explain(args) => explain(*args),
        Command::Inspect(args) => inspect(&args),
        Command::Rules => {
            print!("{}", rules_text());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            eprintln!("(see `relevance --help`)");
            ExitCode::from(2)
        }
        Err(Failure::Run(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// The `rules` listing.
fn rules_text() -> String {
    let mut s =
        String::from("Rules (--rule NAME; LRP rules apply to every dense and convolutional layer):\n");
    for e in RULES {
        let _ = writeln!(s, "  {:<24} {}\n  {:<24} use: {}", e.name, e.what, "", e.when);
    }
    s.push_str("\nComposites (--composite NAME; a rule per layer, as zennit's presets):\n");
    for e in COMPOSITES {
        let _ = writeln!(s, "  {:<26} {}\n  {:<26} use: {}", e.name, e.what, "", e.when);
    }
    s.push_str(
        "\nAt other nodes every LRP rule does what zennit's composites do: activations pass relevance, sums and \
         average pools split it by share, max-pools route it to the maximum.\n\
         z^B bounds are the normalised images of pixel values 0 and 1 under --preprocess: (0 − mean)/std and (1 − mean)/std per channel.\n",
    );
    s
}

/// A loaded model and the importer's notes.
struct Model {
    net: Network<f32>,
    notes: Vec<String>,
}

fn load_model(args: &ModelArgs, fallback_shape: Option<Vec<usize>>) -> Result<Model, Failure> {
    let path = &args.model;
    let shown = path.display();
    if !path.exists() {
        return Err(Failure::Run(format!("the model file {shown} does not exist")));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "onnx" => {
            let mut options = OnnxOptions::default();
            if let Some(output) = &args.output {
                options = options.with_output(output);
            }
            let shape = args.input_shape.clone().map(|s| s.0);
            let first = shape
                .as_ref()
                .map_or(options.clone(), |s| options.clone().with_input_shape(s));
            let loaded = match load_onnx_with::<f32>(path, &first) {
                Err(e)
                    if shape.is_none() && e.to_string().contains("symbolic") && fallback_shape.is_some() =>
                {
                    load_onnx_with::<f32>(
                        path,
                        &options.with_input_shape(fallback_shape.as_deref().unwrap_or(&[])),
                    )
                }
                other => other,
            };
            let model = loaded.map_err(|e| {
                let hint = if e.to_string().contains("symbolic") {
                    "; give the input shape with --input-shape C,H,W"
                } else {
                    ""
                };
                Failure::Run(format!("cannot load the model {shown}: {e}{hint}"))
            })?;
            Ok(Model {
                net: model.network,
                notes: model.notes,
            })
        }
        "safetensors" => {
            let arch = args.arch.clone().unwrap_or_else(|| path.with_extension("json"));
            if !arch.exists() {
                return Err(Failure::Usage(format!(
                    "the architecture {} of the safetensors model {shown} does not exist; give it with --arch FILE.json",
                    arch.display()
                )));
            }
            let net = load_safetensors::<f32>(&arch, path).map_err(|e| {
                Failure::Run(format!(
                    "cannot load the model {shown} with the architecture {}: {e}",
                    arch.display()
                ))
            })?;
            Ok(Model {
                net,
                notes: Vec::new(),
            })
        }
        _ => Err(Failure::Usage(format!(
            "{shown}: unknown model type; give an .onnx file, or a .safetensors file with --arch FILE.json"
        ))),
    }
}

/// The number of parameters of a node (weights and biases; per-channel scale and shift).
fn parameter_count(node: &relevance::Node<f32>) -> usize {
    match node.op() {
        Op::Layer(l) => {
            if let Some(a) = l.class().affine() {
                a.weight().len() + a.bias().map_or(0, |b| b.len())
            } else if let Some((scale, shift)) = l.channel_affine() {
                scale.len() + shift.len()
            } else {
                0
            }
        }
        _ => 0,
    }
}

fn inspect(args: &ModelArgs) -> Result<(), Failure> {
    let model = load_model(args, None)?;
    let net = &model.net;
    println!(
        "model {}: input {:?}, output {:?}, {} nodes",
        args.model.display(),
        net.input_shape(),
        net.output_shape(),
        net.nodes().len()
    );
    for note in &model.notes {
        println!("importer note: {note}");
    }
    let shapes = net.shapes();
    let mut total = 0;
    println!(
        "\n{:>4}  {:<24} {:<36} {:<12} {:<18} {:>10}",
        "#", "name", "operation", "category", "output shape", "parameters"
    );
    for (k, node) in net.nodes().iter().enumerate() {
        let params = parameter_count(node);
        total += params;
        let inputs: Vec<String> = node
            .inputs()
            .iter()
            .map(|&v| {
                if v == 0 {
                    "input".to_string()
                } else {
                    net.nodes()[v - 1].name().to_string()
                }
            })
            .collect();
        let default_input = if k == 0 {
            "input".to_string()
        } else {
            net.nodes()[k - 1].name().to_string()
        };
        let from = if inputs.len() == 1 && inputs[0] == default_input {
            String::new()
        } else {
            format!("  ← {}", inputs.join(", "))
        };
        println!(
            "{:>4}  {:<24} {:<36} {:<12} {:<18} {:>10}{from}",
            k,
            node.name(),
            node.describe(),
            format!("{:?}", node.category()),
            format!("{:?}", shapes.get(k + 1).map(Vec::as_slice).unwrap_or(&[])),
            params
        );
    }
    println!("total parameters: {total}");

    // the rule each composite gives the affine nodes (bounds: pixels in [0, 1])
    let infos = net.node_infos();
    let (low, high) = input::bounds(&Preprocess::none(), net.input_shape())?;
    let affine: Vec<usize> = (0..infos.len())
        .filter(|&k| infos[k].category.is_affine())
        .collect();
    println!("\nRules per composite on the dense and convolutional nodes (the others pass, split or route relevance alike under every LRP rule):");
    let composites: Vec<_> = Preset::ALL
        .iter()
        .map(|p| p.build(&low, &high).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let resolved: Vec<Vec<String>> = composites
        .iter()
        .map(|c| c.resolve(&infos).iter().map(|r| r.name()).collect())
        .collect();
    let name_width = affine
        .iter()
        .map(|&k| infos[k].name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let widths: Vec<usize> = Preset::ALL
        .iter()
        .zip(&resolved)
        .map(|(p, r)| {
            affine
                .iter()
                .map(|&k| r[k].chars().count())
                .max()
                .unwrap_or(0)
                .max(p.name().len())
        })
        .collect();
    let mut header = format!("{:<name_width$}", "node");
    for (p, w) in Preset::ALL.iter().zip(&widths) {
        let _ = write!(header, "  {:<w$}", p.name());
    }
    println!("{}", header.trim_end());
    for &k in &affine {
        let mut line = format!("{:<name_width$}", infos[k].name);
        for (r, w) in resolved.iter().zip(&widths) {
            let _ = write!(line, "  {:<w$}", r[k]);
        }
        println!("{}", line.trim_end());
    }
    if affine.is_empty() {
        println!("(no dense or convolutional node)");
    }
    Ok(())
}

/// Index of the largest value (the first on ties).
fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |b, c| if row[c] > row[b] { c } else { b })
}

/// Quotes a CSV field when it needs it.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn explain(args: ExplainArgs) -> Result<(), Failure> {
    let method = args
        .rule
        .clone()
        .or_else(|| args.composite.clone())
        .unwrap_or(Method::Composite(Preset::EpsilonPlus));
    let deeplift = method.deeplift();
    if deeplift.is_none() && args.baseline != "zero" {
        return Err(Failure::Usage(format!(
            "--baseline {} applies to DeepLIFT only; use it with --rule deeplift (LRP needs no baseline)",
            args.baseline
        )));
    }
    let labels: Option<Vec<String>> = match &args.labels {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the labels file {}: {e}", p.display()))?
                .lines()
                .map(|l| l.trim().to_string())
                .collect(),
        ),
        None => None,
    };
    for p in &args.inputs {
        if !p.exists() {
            return Err(Failure::Run(format!("the input {} does not exist", p.display())));
        }
    }

    // a symbolic ONNX input gets its shape from --size (channels from the preset)
    let fallback = args.size.map(|(h, w)| {
        let c = if args.preprocess.mean().len() == 3 { 3 } else { 1 };
        vec![c, h, w]
    });
    let model = load_model(&args.model, fallback)?;
    let net = model.net;
    for note in &model.notes {
        eprintln!("note: {note}");
    }
    let shape = net.input_shape().to_vec();
    if let Some((h, w)) = args.size {
        if shape.len() != 3 || (shape[1], shape[2]) != (h, w) {
            return Err(Failure::Usage(format!(
                "--size {h}x{w} does not match the model's input {shape:?}; leave it out (images are resized to the model's size)"
            )));
        }
    }
    let classes = net.output_shape().iter().product::<usize>();
    if let TargetArg::Class(c) = args.target {
        if c >= classes {
            return Err(Failure::Usage(format!(
                "--target {c} is out of range: the model has {classes} classes (0 to {})",
                classes.saturating_sub(1)
            )));
        }
    }
    if let Some(l) = &labels {
        if l.len() < classes {
            eprintln!(
                "warning: the labels file has {} names for {classes} classes; the others are shown by number",
                l.len()
            );
        }
    }
    let name_of = |c: usize| {
        labels
            .as_ref()
            .and_then(|l| l.get(c))
            .cloned()
            .unwrap_or_default()
    };
    let (low, high) = input::bounds(&args.preprocess, &shape).map_err(Failure::Usage)?;
    if method.uses_bounds() {
        let fmt = |a: &ArrayD<f32>| a.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", ");
        eprintln!(
            "note: z^B bounds from --preprocess {}: low [{}], high [{}] (the normalised pixel values 0 and 1)",
            args.preprocess.name(),
            fmt(&low),
            fmt(&high)
        );
    }
    let rules: Option<Box<dyn RuleSet<f32>>> = method
        .rule_set(&low, &high)
        .map_err(|e| Failure::Usage(format!("the rule {} cannot be made: {e}", method.label())))?;
    let shared_baseline = match args.baseline.as_str() {
        "zero" | "mean" => None,
        file => {
            let b = input::load_npy_input(Path::new(file), &shape, &args.preprocess)
                .map_err(|e| Failure::Usage(format!("--baseline: {e}")))?;
            Some(b.x.insert_axis(Axis(0)))
        }
    };

    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create the output directory {}: {e}", args.out.display()))?;
    let summary_path = args.out.join("summary.csv");
    let mut summary =
        String::from("file,predicted,predicted_label,score,target,target_label,method,total,gap\n");
    let scale = args.scale.map(|s| s as usize).unwrap_or_else(|| {
        let side = if shape.len() >= 2 {
            shape[shape.len() - 2..].iter().copied().max().unwrap_or(1)
        } else {
            1
        };
        (256 / side.max(1)).max(1)
    });

    let bar = ProgressBar::new(args.inputs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if args.inputs.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut used_stems = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for path in &args.inputs {
        bar.set_message(path.display().to_string());
        let result = explain_one(
            &net,
            path,
            &shape,
            &args,
            &method,
            rules.as_deref(),
            deeplift.as_ref(),
            shared_baseline.as_ref(),
            scale,
            &mut used_stems,
            &name_of,
        );
        match result {
            Ok((lines, report)) => {
                summary.push_str(&lines);
                bar.suspend(|| print!("{report}"));
            }
            Err(msg) => {
                bar.suspend(|| eprintln!("error: {msg}"));
                failures.push(msg);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    std::fs::write(&summary_path, summary)
        .map_err(|e| format!("cannot write {}: {e}", summary_path.display()))?;
    println!("wrote {}", summary_path.display());
    match failures.len() {
        0 => Ok(()),
        n => Err(Failure::Run(format!(
            "{n} of {} inputs could not be explained (see above)",
            args.inputs.len()
        ))),
    }
}

/// Explains one input; returns its summary lines and what to print.
#[allow(clippy::too_many_arguments)]
fn explain_one(
    net: &Network<f32>,
    path: &Path,
    shape: &[usize],
    args: &ExplainArgs,
    method: &Method,
    rules: Option<&dyn RuleSet<f32>>,
    deeplift: Option<&relevance::DeepLift>,
    shared_baseline: Option<&ArrayD<f32>>,
    scale: usize,
    used_stems: &mut std::collections::HashSet<String>,
    name_of: &dyn Fn(usize) -> String,
) -> Result<(String, String), String> {
    let shown = path.display().to_string();
    let input = load_input(path, shape, &args.preprocess)?;
    let mut report = String::new();
    for note in &input.notes {
        let _ = writeln!(report, "note: {note}");
    }
    let x = input.x.clone().insert_axis(Axis(0));
    let logits = net
        .forward(&x)
        .map_err(|e| format!("{shown}: the forward pass failed: {e}"))?;
    let scores: Vec<f32> = logits.iter().copied().collect();
    let predicted = argmax(&scores);
    let targets: Vec<usize> = match args.target {
        TargetArg::Predicted => vec![predicted],
        TargetArg::Class(c) => vec![c],
        TargetArg::Top(k) => {
            let mut order: Vec<usize> = (0..scores.len()).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            order.truncate(k.min(scores.len()));
            order
        }
    };
    let label = |c: usize| {
        let n = name_of(c);
        if n.is_empty() {
            format!("{c}")
        } else {
            format!("{c} ({n})")
        }
    };
    let _ = writeln!(
        report,
        "{shown}: predicted class {} (score {:.4})",
        label(predicted),
        scores[predicted]
    );

    // a unique file stem per input
    let base = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("input")
        .to_string();
    let mut stem = base.clone();
    let mut k = 2;
    while !used_stems.insert(stem.clone()) {
        stem = format!("{base}-{k}");
        k += 1;
    }

    let baseline = match (args.baseline.as_str(), shared_baseline) {
        (_, Some(b)) => Baseline::Shared(b.clone().index_axis_move(Axis(0), 0)),
        ("mean", _) => {
            let x0 = &input.x;
            let b = if x0.ndim() == 3 {
                let mut b = x0.clone();
                for mut plane in b.axis_iter_mut(Axis(0)) {
                    let m = plane.mean().unwrap_or(0.0);
                    plane.fill(m);
                }
                b
            } else {
                ArrayD::from_elem(x0.raw_dim(), x0.mean().unwrap_or(0.0))
            };
            Baseline::Shared(b)
        }
        _ => Baseline::Zero,
    };

    let mut lines = String::new();
    for &class in &targets {
        let target = Target::Class(class);
        let (relevance, total, gap) = match (rules, deeplift) {
            (Some(rules), _) => {
                let a = net
                    .attribute(&x, &target, rules)
                    .map_err(|e| format!("{shown}: the relevance pass failed: {e}"))?;
                (a.relevance, a.total[0], a.delta[0])
            }
            (None, Some(d)) => {
                let a = net
                    .deeplift(&x, &target, d, &baseline)
                    .map_err(|e| format!("{shown}: DeepLIFT failed: {e}"))?;
                (a.attribution, a.total[0], a.delta[0])
            }
            (None, None) => return Err("no method".into()),
        };
        let name = format!("{stem}_{}_c{class}", method.label());
        let sample = relevance.index_axis(Axis(0), 0).to_owned();
        let npy = args.out.join(format!("{name}.npy"));
        relevance::io::save_npy(&npy, &sample).map_err(|e| format!("cannot write {}: {e}", npy.display()))?;
        let map = if sample.ndim() == 1 {
            sample.view().insert_axis(Axis(0))
        } else {
            sample.view()
        };
        let heatmap = Heatmap {
            scale,
            ..Heatmap::default()
        };
        let heat = heatmap.render(&map).map_err(|e| {
            format!(
                "{shown}: cannot render the heatmap of relevance {:?}: {e}",
                sample.shape()
            )
        })?;
        let heat_path = args.out.join(format!("{name}_heatmap.png"));
        heat.save_png(&heat_path)
            .map_err(|e| format!("cannot write {}: {e}", heat_path.display()))?;
        let mut written = vec![heat_path.display().to_string()];
        let image_like = input.x.ndim() == 2 || (input.x.ndim() == 3 && matches!(input.x.shape()[0], 1 | 3));
        if image_like {
            // an image is shown as it was before normalisation; a float array by its own range
            let background = if let Some(pixels) = &input.pixels {
                RgbImage::from_array(&pixels.view(), Some((0.0, 1.0)))
            } else {
                RgbImage::from_array(&input.x.view(), None)
            };
            let background = background
                .and_then(|b| b.to_grayscale().upscale(scale))
                .map_err(|e| format!("{shown}: cannot draw the input: {e}"))?;
            let indices = heatmap
                .indices(&map)
                .map_err(|e| format!("{shown}: cannot render the heatmap: {e}"))?;
            let over = blend(&background, &heat, &indices, scale, args.alpha)
                .map_err(|e| format!("{shown}: cannot overlay: {e}"))?;
            let over_path = args.out.join(format!("{name}_overlay.png"));
            over.save_png(&over_path)
                .map_err(|e| format!("cannot write {}: {e}", over_path.display()))?;
            written.push(over_path.display().to_string());
        }
        written.push(npy.display().to_string());
        let _ = writeln!(
            report,
            "  class {}: {} total {total:.4}, Σ relevance {:.4}, gap {gap:.3e}; wrote {}",
            label(class),
            method.label(),
            sample.sum(),
            written.join(", ")
        );
        let _ = writeln!(
            lines,
            "{},{predicted},{},{},{class},{},{},{total},{gap}",
            csv(&shown),
            csv(&name_of(predicted)),
            scores[predicted],
            csv(&name_of(class)),
            method.label()
        );
    }
    Ok((lines, report))
}

/// The heatmap over the background with an opacity growing with |R|: `alpha` where the
/// relevance is largest, 0 where it is zero, so the input stays visible where nothing is
/// relevant (`indices` are the heatmap's palette indices, 0..=255 with zero in the middle,
/// before upscaling by `scale`).
fn blend(
    background: &RgbImage,
    heat: &RgbImage,
    indices: &ndarray::Array2<u8>,
    scale: usize,
    alpha: f64,
) -> relevance::Result<RgbImage> {
    let (w, h) = (heat.width(), heat.height());
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let k = indices.get((y / scale, x / scale)).copied().unwrap_or(128);
            let strength = ((f64::from(k) - 127.5).abs() / 127.5).min(1.0);
            let a = alpha * strength.sqrt();
            let bg = background.pixel(x, y).unwrap_or([0, 0, 0]);
            let fg = heat.pixel(x, y).unwrap_or([0, 0, 0]);
            for c in 0..3 {
                data.push((f64::from(bg[c]) * (1.0 - a) + f64::from(fg[c]) * a).round() as u8);
            }
        }
    }
    RgbImage::from_raw(w, h, data)
}
