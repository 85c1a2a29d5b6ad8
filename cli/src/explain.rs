//! `relevance explain`: every input through the library (load, preprocess, predict,
//! explain, render), the files written and one summary.csv. Nothing is computed here that
//! the library does not compute.

use crate::input::{load_input, load_npy_input, Input};
use crate::model::load_model;
use crate::{ExplainArgs, Failure, TargetArg};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{ArrayD, Axis};
use relevance::heatmap::{Heatmap, RgbImage};
use relevance::{Baseline, Method, MethodName, Network, Target};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

/// What every input of one `explain` call shares.
pub(crate) struct Job<'a> {
    pub(crate) net: &'a Network<f32>,
    pub(crate) args: &'a ExplainArgs,
    pub(crate) name: MethodName,
    /// The method, with the z^B bounds of the preprocessing and (for DeepLIFT) a baseline
    /// given by file; a `mean` baseline is made per input.
    pub(crate) method: Method<f32>,
    labels: Option<Vec<String>>,
    heatmap: Heatmap,
    /// The vocabulary size of a token model (ids in, relevance per token out).
    pub(crate) vocabulary: Option<usize>,
    /// `--tokenizer`: the tokens shown, and `.txt` inputs tokenized.
    pub(crate) tokenizer: Option<relevance::io::Tokenizer>,
}

impl Job<'_> {
    /// The classes `--target` asks for, from an input's outputs ranked by score (the first
    /// is the prediction).
    pub(crate) fn targets(&self, ranked: &[(usize, f32)]) -> Vec<usize> {
        match self.args.target {
            TargetArg::Predicted => ranked.first().map(|&(c, _)| c).into_iter().collect(),
            TargetArg::Class(c) => vec![c],
            TargetArg::Top(_) => ranked.iter().map(|&(c, _)| c).collect(),
        }
    }

    /// A class as printed: its number and, if known, its label.
    pub(crate) fn label(&self, c: usize) -> String {
        match self.name_of(c) {
            "" => format!("{c}"),
            n => format!("{c} ({n})"),
        }
    }

    fn name_of(&self, c: usize) -> &str {
        self.labels
            .as_ref()
            .and_then(|l| l.get(c))
            .map_or("", String::as_str)
    }

    /// The method for one input: a `mean` baseline is that input's channel means.
    fn method_for(&self, input: &Input) -> Method<f32> {
        match (&self.method, self.args.baseline.as_str()) {
            (Method::DeepLift { rule, .. }, "mean") => {
                Method::deeplift(*rule, Baseline::channel_mean(&input.x))
            }
            (m, _) => m.clone(),
        }
    }

    /// One line of summary.csv.
    pub(crate) fn summary_line(
        &self,
        file: &str,
        (predicted, score): (usize, f32),
        class: usize,
        (total, gap): (f32, f32),
    ) -> String {
        format!(
            "{},{predicted},{},{score},{class},{},{},{total},{gap}\n",
            csv(file),
            csv(self.name_of(predicted)),
            csv(self.name_of(class)),
            self.name.label()
        )
    }

    /// Explains one input; returns its summary lines and what to print.
    fn explain_one(&self, path: &Path, stem: &str) -> Result<(String, String), String> {
        if let Some(vocabulary) = self.vocabulary {
            return self.explain_tokens(path, stem, vocabulary);
        }
        let shown = path.display().to_string();
        let input = load_input(path, self.net.input_shape(), &self.args.preprocess)?;
        let mut report = String::new();
        for note in &input.notes {
            let _ = writeln!(report, "note: {note}");
        }
        let x = input.x.clone().insert_axis(Axis(0));
        let classes: usize = self.net.output_shape().iter().product();
        let k = match self.args.target {
            TargetArg::Top(k) => k.min(classes),
            _ => 1,
        };
        let top = self
            .net
            .top_k(&x, k)
            .map_err(|e| format!("{shown}: the forward pass failed: {e}"))?;
        let ranked = top.into_iter().next().unwrap_or_default();
        let Some(&(predicted, score)) = ranked.first() else {
            return Err(format!("{shown}: the model has no output"));
        };
        let targets = self.targets(&ranked);
        let _ = writeln!(
            report,
            "{shown}: predicted class {} (score {score:.4})",
            self.label(predicted)
        );
        let method = self.method_for(&input);
        let mut lines = String::new();
        for &class in &targets {
            let a = self
                .net
                .explain(&x, &Target::Class(class), &method)
                .map_err(|e| format!("{shown}: the explanation failed: {e}"))?;
            let (total, gap) = (a.total[0], a.delta[0]);
            let sample = a.relevance.index_axis(Axis(0), 0).to_owned();
            let written = self.write(
                &shown,
                &input,
                &sample,
                &format!("{stem}_{}_c{class}", self.name.label()),
            )?;
            let _ = writeln!(
                report,
                "  class {}: {} total {total:.4}, Σ relevance {:.4}, gap {gap:.3e}; wrote {}",
                self.label(class),
                self.name.label(),
                sample.sum(),
                written.join(", ")
            );
            lines.push_str(&self.summary_line(&shown, (predicted, score), class, (total, gap)));
        }
        Ok((lines, report))
    }

    /// Writes the relevance of one input and class (`.npy`, heatmap, overlay for an image);
    /// returns the paths written.
    fn write(
        &self,
        shown: &str,
        input: &Input,
        sample: &ArrayD<f32>,
        name: &str,
    ) -> Result<Vec<String>, String> {
        let out = &self.args.out;
        let npy = out.join(format!("{name}.npy"));
        relevance::io::save_npy(&npy, sample).map_err(|e| format!("cannot write {}: {e}", npy.display()))?;
        let map = if sample.ndim() == 1 {
            sample.view().insert_axis(Axis(0))
        } else {
            sample.view()
        };
        let heat = self.heatmap.render(&map).map_err(|e| {
            format!(
                "{shown}: cannot render the heatmap of relevance {:?}: {e}",
                sample.shape()
            )
        })?;
        let heat_path = out.join(format!("{name}_heatmap.png"));
        heat.save_png(&heat_path)
            .map_err(|e| format!("cannot write {}: {e}", heat_path.display()))?;
        let mut written = vec![heat_path.display().to_string()];
        let x = &input.x;
        if x.ndim() == 2 || (x.ndim() == 3 && matches!(x.shape()[0], 1 | 3)) {
            // an image is shown as it was before normalisation; a float array by its own range
            let background = match &input.pixels {
                Some(pixels) => RgbImage::from_array(&pixels.view(), Some((0.0, 1.0))),
                None => RgbImage::from_array(&x.view(), None),
            }
            .and_then(|b| b.to_grayscale().upscale(self.heatmap.scale))
            .map_err(|e| format!("{shown}: cannot draw the input: {e}"))?;
            let over = self
                .heatmap
                .render_over(&map, &background, self.args.alpha)
                .map_err(|e| format!("{shown}: cannot overlay: {e}"))?;
            let over_path = out.join(format!("{name}_overlay.png"));
            over.save_png(&over_path)
                .map_err(|e| format!("cannot write {}: {e}", over_path.display()))?;
            written.push(over_path.display().to_string());
        }
        written.push(npy.display().to_string());
        Ok(written)
    }
}

/// Quotes a CSV field when it needs it.
pub(crate) fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// A file stem per input, unique among the inputs (`digit`, `digit-2`, ...).
fn stems(inputs: &[std::path::PathBuf]) -> Vec<String> {
    let mut used = HashSet::new();
    inputs
        .iter()
        .map(|p| {
            let base = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("input")
                .to_string();
            let mut stem = base.clone();
            let mut k = 2;
            while !used.insert(stem.clone()) {
                stem = format!("{base}-{k}");
                k += 1;
            }
            stem
        })
        .collect()
}

pub fn explain(args: ExplainArgs) -> Result<(), Failure> {
    let name = args.rule.or(args.composite).unwrap_or(MethodName::EpsilonPlus);
    if !name.is_deeplift() && args.baseline != "zero" {
        return Err(Failure::Usage(format!(
            "--baseline {} applies to DeepLIFT only; use it with --rule deeplift (LRP needs no baseline)",
            args.baseline
        )));
    }
    let labels = match &args.labels {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the labels file {}: {e}", p.display()))?
                .lines()
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    if let Some(p) = args.inputs.iter().find(|p| !p.exists()) {
        return Err(Failure::Run(format!("the input {} does not exist", p.display())));
    }
    // a symbolic ONNX input gets its shape from --size (channels from the preset)
    // (a symbolic sequence length, from the first input when it is a .npy of token ids)
    let fallback = args
        .size
        .map(|(h, w)| vec![if args.preprocess.mean().len() == 3 { 3 } else { 1 }, h, w])
        .or_else(|| args.inputs.first().and_then(|p| token_length(p)));
    let model = load_model(&args.model, fallback)?;
    let net = &model.net;
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
    if let Some(l) = labels.as_ref().filter(|l| l.len() < classes) {
        eprintln!(
            "warning: the labels file has {} names for {classes} classes; the others are shown by number",
            l.len()
        );
    }
    let bounds = crate::input::bounds(&args.preprocess, &shape).map_err(Failure::Usage)?;
    if name.needs_bounds() {
        let fmt = |a: &ArrayD<f32>| a.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", ");
        eprintln!(
            "note: z^B bounds from --preprocess {}: low [{}], high [{}] (the normalised pixel values 0 and 1)",
            args.preprocess.name(),
            fmt(&bounds.0),
            fmt(&bounds.1)
        );
    }
    let vocabulary = crate::tokens::vocabulary(net);
    let tokenizer = match (&args.tokenizer, vocabulary) {
        (None, _) => None,
        (Some(file), None) => {
            return Err(Failure::Usage(format!(
                "--tokenizer {}: the model takes no token ids (it has no embedding of an integer input)",
                file.display()
            )))
        }
        (Some(file), Some(vocabulary)) => {
            let t = relevance::io::Tokenizer::load(file)
                .map_err(|e| Failure::Usage(format!("--tokenizer: {e}")))?;
            if t.vocab_size() > vocabulary {
                eprintln!(
                    "warning: the tokenizer knows {} ids, the model's embedding has {vocabulary} rows; texts with the others are refused",
                    t.vocab_size()
                );
            }
            Some(t)
        }
    };
    let baseline = match (args.baseline.as_str(), vocabulary) {
        ("mean", Some(_)) => return Err(Failure::Usage(
            "--baseline mean is not a sequence of token ids; give zero (id 0 everywhere) or FILE.npy of ids"
                .into(),
        )),
        ("zero" | "mean", _) => Baseline::Zero,
        (file, Some(vocabulary)) => {
            let ids = crate::tokens::load_ids(Path::new(file), &shape, vocabulary)
                .map_err(|e| Failure::Usage(format!("--baseline: {e}")))?;
            if ids.shape()[0] != 1 {
                return Err(Failure::Usage(format!(
                    "--baseline: {file} holds {} rows of ids; give one",
                    ids.shape()[0]
                )));
            }
            // the library checks the ids on a forward pass: a bad baseline is the flag's
            // fault, not every input's
            net.forward(&ids)
                .map_err(|e| Failure::Usage(format!("--baseline: {file}: {e}")))?;
            Baseline::Shared(ids.index_axis_move(Axis(0), 0))
        }
        (file, None) => {
            let b = load_npy_input(Path::new(file), &shape, &args.preprocess)
                .map_err(|e| Failure::Usage(format!("--baseline: {e}")))?;
            Baseline::Shared(b.x)
        }
    };
    let method = name
        .method(Some(bounds), baseline)
        .map_err(|e| Failure::Usage(format!("the method {} cannot be made: {e}", name.label())))?;
    let scale = args.scale.map(|s| s as usize).unwrap_or_else(|| {
        let side = shape.iter().rev().take(2).copied().max().unwrap_or(1);
        (256 / side.max(1)).max(1)
    });
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create the output directory {}: {e}", args.out.display()))?;
    let job = Job {
        net,
        args: &args,
        name,
        method,
        labels,
        heatmap: Heatmap {
            scale,
            ..Heatmap::default()
        },
        vocabulary,
        tokenizer,
    };
    run(&job)
}

/// Every input of the job, with a progress bar; then summary.csv.
fn run(job: &Job<'_>) -> Result<(), Failure> {
    let args = job.args;
    let bar = ProgressBar::new(args.inputs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if args.inputs.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    // more than one explanation with the same method: the rule-modified weights are made
    // once, not per explanation (same results; costs up to a few copies of the weights)
    let several = args.inputs.len() > 1 || matches!(args.target, TargetArg::Top(k) if k > 1);
    job.net.keep_rule_weights(several);
    let mut summary =
        String::from("file,predicted,predicted_label,score,target,target_label,method,total,gap\n");
    let mut failures = 0;
    for (path, stem) in args.inputs.iter().zip(stems(&args.inputs)) {
        bar.set_message(path.display().to_string());
        match job.explain_one(path, &stem) {
            Ok((lines, report)) => {
                summary.push_str(&lines);
                bar.suspend(|| print!("{report}"));
            }
            Err(msg) => {
                bar.suspend(|| eprintln!("error: {msg}"));
                failures += 1;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let summary_path = args.out.join("summary.csv");
    std::fs::write(&summary_path, summary)
        .map_err(|e| format!("cannot write {}: {e}", summary_path.display()))?;
    println!("wrote {}", summary_path.display());
    match failures {
        0 => Ok(()),
        n => Err(Failure::Run(format!(
            "{n} of {} inputs could not be explained (see above)",
            args.inputs.len()
        ))),
    }
}

/// The length of a `.npy` of integer token ids (`[T]`, `[1, T]` or `[B, T]`), for a model
/// whose sequence length is symbolic; `None` for anything else.
fn token_length(path: &std::path::Path) -> Option<Vec<usize>> {
    if path.extension().and_then(|e| e.to_str()) != Some("npy") {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let kind = relevance::io::npy_element_type(&bytes).ok()?;
    if !["i8", "i4", "i1", "u1"].iter().any(|k| kind.ends_with(k)) {
        return None;
    }
    let ids = relevance::io::read_npy::<f32>(&bytes).ok()?;
    match ids.shape() {
        [t] | [_, t] => Some(vec![*t]),
        _ => None,
    }
}
