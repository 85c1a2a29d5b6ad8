//! `relevance`: LRP and DeepLIFT explanations of ONNX and safetensors models from the
//! command line. See `relevance --help` and the README's "Command line" section.

mod explain;
mod explain_seq;
mod input;
mod inspect;
mod model;
#[cfg(feature = "serve")]
mod serve;
mod tokens;

use clap::{Args, Parser, Subcommand};
use input::Preprocess;
use relevance::MethodName;
use std::fmt::Write as _;
use std::path::PathBuf;
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
    /// Explain DNA sequences (FASTA, or BED regions of a genome) with DeepLIFT-SHAP against
    /// dinucleotide-shuffled references: attributions and hypothetical contributions in
    /// resumable chunks (--shard I/N splits the work), then the files tfmodisco-lite reads.
    ExplainSeq(Box<explain_seq::ExplainSeqArgs>),
    /// List the model's nodes with shapes, parameters and the rule each composite gives them.
    Inspect(ModelArgs),
    /// List every rule and composite with its parameters and use.
    Rules,
    /// Start the local explanation page: draw a digit or drop an image and watch every rule
    /// explain it; also a JSON API (see the README).
    #[cfg(feature = "serve")]
    Serve(Box<serve::ServeArgs>),
}

#[derive(Args)]
pub struct ModelArgs {
    /// The model: an .onnx file, or a .safetensors file with its JSON architecture (--arch).
    pub model: PathBuf,
    /// The JSON architecture of a .safetensors model (default: the model's path with .json).
    #[arg(long, value_name = "FILE.json")]
    pub arch: Option<PathBuf>,
    /// The per-sample input shape, for an ONNX model whose height and width are symbolic.
    #[arg(long, value_name = "C,H,W", value_parser = parse_shape)]
    pub input_shape: Option<Shape>,
    /// The ONNX output to explain, for a model with several outputs.
    #[arg(long, value_name = "NAME")]
    pub output: Option<String>,
    /// Hold an ONNX graph input at a number for every call (repeatable), e.g.
    /// `--fix attention_mask=1` for one text without padding, `--fix token_type_ids=0`; its
    /// named dimensions follow the explained input's (`sequence_length`).
    #[arg(long = "fix", value_name = "NAME=VALUE", value_parser = parse_fix)]
    pub fix: Vec<(String, f64)>,
}

#[derive(Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Inputs: images (.png, .jpg) or arrays (.npy of the model's input shape). For a token
    /// model (ids into an embedding, e.g. a BERT): a .npy of token ids, [T], [1, T] or [B, T]
    /// (int64, int32, int8, uint8, or floats holding whole numbers); its relevance per token is
    /// written as STEM_METHOD_cCLASS_tokens.csv (position, token, id, relevance) and
    /// _tokens.html, and printed as a coloured line. Tokens are shown as their ids (#17), or
    /// with --tokenizer as the tokenizer writes them; with --tokenizer a .txt input is a text.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// A single LRP rule, DeepLIFT or a gradient: lrp0, epsilon[=E], gamma[=G],
    /// alpha-beta[=A,B], zplus, flat, wsquare, zbox, attn-lrp[=E], cp-lrp[=E] (transformers),
    /// deeplift, deeplift-reveal-cancel, deeplift-genomics, deeplift-captum, gradient,
    /// gradient-x-input.
    #[arg(long, value_name = "NAME", value_parser = parse_rule, conflicts_with = "composite")]
    pub rule: Option<MethodName>,
    /// A composite: epsilon-plus (default), epsilon-plus-flat, epsilon-alpha2-beta1,
    /// epsilon-alpha2-beta1-flat, epsilon-gamma-box, layered.
    #[arg(long, value_name = "NAME", value_parser = parse_composite)]
    pub composite: Option<MethodName>,
    /// What to explain: predicted (the top class), a class number C, or topK (each of the K
    /// best classes).
    #[arg(long, value_name = "predicted|C|topK", default_value = "predicted", value_parser = parse_target)]
    pub target: TargetArg,
    /// Image preprocessing after scaling pixels to [0, 1]: imagenet (resize 256, crop 224,
    /// ImageNet mean/std), mnist, none, or mean=M1,M2,M3,std=S1,S2,S3. Also sets the z^B
    /// bounds (the normalised 0 and 1).
    #[arg(long, value_name = "PRESET", default_value = "none", value_parser = input::parse_preprocess)]
    pub preprocess: Preprocess,
    /// The image size the model takes (resize + centre-crop target), when its input shape is
    /// symbolic; default the model's input height and width.
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    pub size: Option<(usize, usize)>,
    /// DeepLIFT's reference: zero, mean (each input's own per-channel mean), or FILE.npy.
    #[arg(long, value_name = "zero|mean|FILE.npy", default_value = "zero")]
    pub baseline: String,
    /// Output directory.
    #[arg(long, value_name = "DIR", default_value = "relevance-out")]
    pub out: PathBuf,
    /// Class names, one per line (line k names class k).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Heatmap upscaling factor (default: to about 256 pixels on the longer side, at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub scale: Option<u32>,
    /// Opacity of the heatmap over the (grey) input in the overlay where |relevance| is
    /// largest, 0 to 1 (it fades to 0 where the relevance is zero).
    #[arg(long, value_name = "A", default_value = "0.6", value_parser = parse_alpha)]
    pub alpha: f64,
    /// Colours in the terminal line of a token model's relevance (red for the class, blue
    /// against): auto (when stdout is a terminal and NO_COLOR is unset), always, never.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_enum)]
    pub color: tokens::ColorChoice,
    /// A text model's Hugging Face tokenizer.json (read offline): the token heatmaps show its
    /// tokens instead of ids, and `.txt` inputs are tokenized with it (special tokens added).
    #[arg(long, value_name = "tokenizer.json")]
    pub tokenizer: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub enum TargetArg {
    Predicted,
    Class(usize),
    Top(usize),
}

/// The names `--rule` or `--composite` take (for messages).
fn names(composite: bool) -> String {
    let all = MethodName::all().iter().filter(|i| i.composite == composite);
    all.map(|i| i.name).collect::<Vec<_>>().join(", ")
}

/// A method's name through the library's parser; an unknown name gets the flag's list.
fn parse_method(text: &str, composite: bool) -> Result<MethodName, String> {
    let bare = text.split('=').next().unwrap_or("").trim();
    let known = MethodName::all()
        .iter()
        .any(|i| i.name.split('[').next() == Some(bare))
        || matches!(bare, "alpha2beta1" | "deeplift-rescale" | "input-x-gradient");
    if !known {
        let (this, other, other_flag) = if composite {
            ("composite", "single rules", "--rule")
        } else {
            ("rule", "composites", "--composite")
        };
        return Err(format!(
            "unknown {this}; choose one of {} ({other} with {other_flag}: {}); `relevance rules` describes them",
            names(composite),
            names(!composite)
        ));
    }
    let name: MethodName = text.parse().map_err(|e: relevance::Error| match e {
        relevance::Error::MethodName { reason, .. } => reason,
        e => e.to_string(),
    })?;
    if composite && !name.is_composite() {
        return Err(format!("{name} is a single rule; give it with --rule {name}"));
    }
    Ok(name)
}

/// Parses a `--rule` value (any method; composites are accepted too).
fn parse_rule(text: &str) -> Result<MethodName, String> {
    parse_method(text, false).or_else(|e| match parse_method(text, true) {
        Ok(c) => Ok(c),
        Err(_) => Err(e),
    })
}

/// Parses a `--composite` value.
fn parse_composite(text: &str) -> Result<MethodName, String> {
    parse_method(text, true)
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
pub struct Shape(pub Vec<usize>);

pub(crate) fn parse_shape(s: &str) -> Result<Shape, String> {
    let dims: Result<Vec<usize>, _> = s.split(',').map(|d| d.trim().parse::<usize>()).collect();
    match dims {
        Ok(d) if !d.is_empty() && d.iter().all(|&v| v > 0) => Ok(Shape(d)),
        _ => Err("write positive sizes separated by commas, e.g. 3,224,224".to_string()),
    }
}

fn parse_fix(s: &str) -> Result<(String, f64), String> {
    match s.split_once('=') {
        Some((name, v)) if !name.trim().is_empty() => match v.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok((name.trim().to_string(), v)),
            _ => Err(format!(
                "{v:?} is not a finite number; write NAME=VALUE, e.g. attention_mask=1"
            )),
        },
        _ => Err("write NAME=VALUE, e.g. attention_mask=1".to_string()),
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
pub enum Failure {
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
        Command::Explain(args) => explain::explain(*args),
        Command::ExplainSeq(args) => explain_seq::explain_seq(*args),
        Command::Inspect(args) => inspect::inspect(&args),
        Command::Rules => {
            print!("{}", rules_text());
            Ok(())
        }
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve::serve(*args),
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
    for e in MethodName::all().iter().filter(|e| !e.composite) {
        let _ = writeln!(s, "  {:<24} {}\n  {:<24} use: {}", e.name, e.what, "", e.when);
    }
    s.push_str("\nComposites (--composite NAME; a rule per layer, as zennit's presets):\n");
    for e in MethodName::all().iter().filter(|e| e.composite) {
        let _ = writeln!(s, "  {:<26} {}\n  {:<26} use: {}", e.name, e.what, "", e.when);
    }
    s.push_str(
        "\nAt other nodes every LRP rule does what zennit's composites do: activations pass relevance, sums and \
         average pools split it by share, max-pools route it to the maximum.\n\
         z^B bounds are the normalised images of pixel values 0 and 1 under --preprocess: (0 − mean)/std and (1 − mean)/std per channel.\n",
    );
    s
}
