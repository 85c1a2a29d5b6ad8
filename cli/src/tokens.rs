//! Token models (a network whose ids go through an embedding lookup, as the ONNX import of a
//! BERT gives): integer ids read from `.npy`, and per-token relevance written through the
//! library's [`TokenRelevance`] (CSV, HTML snippet, coloured terminal line). Tokens are shown
//! as their ids (`#17`), or as a `--tokenizer`'s tokens; with a tokenizer, `.txt` inputs are
//! texts.

use crate::explain::Job;
use crate::TargetArg;
use ndarray::{ArrayD, Axis};
use relevance::heatmap::TokenRelevance;
use relevance::io::Tokenizer;
use relevance::io::{npy_element_type, read_npy};
use relevance::{Class, Network, Target};
use std::fmt::Write as _;
use std::path::Path;

/// The vocabulary size of a token model: the row count of its first embedding table;
/// `None` for other models.
pub fn vocabulary(net: &Network<f32>) -> Option<usize> {
    net.nodes().iter().find_map(|node| match node.layer()?.class() {
        Class::Embedding(e) => Some(e.vocabulary()),
        _ => None,
    })
}

/// Token ids for a model whose per-sample input shape is `shape` (`[T]`): a `.npy` of
/// int64, int32, int8, uint8 or floats holding whole numbers, of shape `[T]`, `[1, T]` or
/// `[B, T]`; returned as `[B, T]` in the network's float type.
///
/// Ids are checked by the library on the forward pass ([`relevance::Error::TokenId`]:
/// negative, fractional or beyond the vocabulary); here only what the network would
/// report otherwise is refused with that same error: NaN and ∞ (which the network's input
/// check reports without the vocabulary), and a value that `f32` would round
/// (`2.0000000001` in a float64 file, or an id above 2²⁴).
pub fn load_ids(path: &Path, shape: &[usize], vocabulary: usize) -> Result<ArrayD<f32>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let kind = npy_element_type(&bytes).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !matches!(kind.as_str(), "<i8" | "<i4" | "|i1" | "|u1" | "<f4" | "<f8") {
        return Err(format!(
            "{shown}: element type {kind} cannot hold token ids; save them as int64, int32, int8, uint8, or floats holding whole numbers"
        ));
    }
    // f64 holds every int32, int8 and uint8 exactly, and int64 up to 2⁵³ (far beyond any
    // vocabulary: a larger id stays out of range)
    let raw = read_npy::<f64>(&bytes).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let ids = if raw.shape() == shape {
        raw.insert_axis(Axis(0))
    } else if raw.ndim() == shape.len() + 1 && raw.shape()[0] > 0 && &raw.shape()[1..] == shape {
        raw
    } else {
        return Err(format!(
            "{shown}: token ids of shape {:?} do not fit the model's input {shape:?} (give [T], [1, T] or [B, T] with T = {}); give another length with --input-shape T if the model's is symbolic",
            raw.shape(),
            shape.iter().product::<usize>()
        ));
    };
    if let Some((position, &value)) = ids
        .indexed_iter()
        .find(|(_, &v)| !v.is_finite() || f64::from(v as f32) != v)
    {
        let e = relevance::Error::TokenId {
            position: ndarray::Dimension::slice(&position).to_vec(),
            value,
            vocabulary,
        };
        return Err(format!("{shown}: {e}"));
    }
    Ok(ids.mapv(|v| v as f32))
}

/// How the terminal line is coloured (`--color`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colours when stdout is a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always ANSI colours.
    Always,
    /// Never: plain text.
    Never,
}

impl ColorChoice {
    /// Whether to write ANSI colours to stdout.
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
            }
        }
    }
}

/// The per-token relevance of one sample (ids as the model saw them), the tokens shown as
/// the tokenizer writes them if one is given, else as their ids.
pub fn token_relevance(
    ids: &[f32],
    relevance: &[f32],
    tokenizer: Option<&Tokenizer>,
) -> Result<TokenRelevance, String> {
    let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let relevance = relevance.iter().map(|&r| f64::from(r)).collect();
    match tokenizer {
        Some(t) => {
            let tokens = t
                .tokens_of(&ids)
                .map_err(|e| format!("--tokenizer does not know an id of the input: {e}"))?;
            TokenRelevance::new(tokens, ids, relevance)
        }
        None => TokenRelevance::from_ids(ids, relevance),
    }
    .map_err(|e| e.to_string())
}

/// The ids of a text file, tokenized with the special tokens, as `[1, T]`; `T` must be the
/// model's length where the model fixes it.
pub fn text_ids(tokenizer: &Tokenizer, path: &Path, shape: &[usize]) -> Result<ArrayD<f32>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let e = tokenizer
        .encode(text.trim_end_matches(['\n', '\r']))
        .map_err(|e| format!("{shown}: {e}"))?;
    let x = e.input::<f32>().map_err(|e| format!("{shown}: {e}"))?;
    if x.shape()[1..] != *shape {
        return Err(format!(
            "{shown}: the text is {} tokens with the special tokens ({}), the model takes {shape:?}; give --input-shape {} if the model's length is symbolic",
            e.len(),
            e.tokens().join(" "),
            e.len()
        ));
    }
    Ok(x)
}

/// The terminal line: the library's coloured tokens (red for the class, blue against), or
/// without colours each token with its relevance.
pub fn terminal_line(t: &TokenRelevance, color: bool) -> String {
    if color {
        t.terminal()
    } else {
        t.tokens()
            .iter()
            .zip(t.relevance())
            .map(|(tok, r)| format!("{tok}({r:+.3e})"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Job<'_> {
    /// Explains one file of token ids (each of its rows); returns its summary lines and what
    /// to print. Writes per row and class `STEM_METHOD_cCLASS.npy` (relevance per token),
    /// `_tokens.csv` and `_tokens.html`; a file of several rows gets `_rowB` in its stems.
    pub(crate) fn explain_tokens(
        &self,
        path: &Path,
        stem: &str,
        vocabulary: usize,
    ) -> Result<(String, String), String> {
        let shown = path.display().to_string();
        let is = |ext: &str| path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext));
        let x = match &self.tokenizer {
            Some(tok) if is("txt") => text_ids(tok, path, self.net.input_shape())?,
            _ if is("npy") => load_ids(path, self.net.input_shape(), vocabulary)?,
            Some(_) => {
                return Err(format!(
                    "{shown}: the model takes token ids (vocabulary {vocabulary}); give a .txt text or a .npy array of ids"
                ))
            }
            None => {
                return Err(format!(
                    "{shown}: the model takes token ids (vocabulary {vocabulary}); give them as a .npy array, or a .txt text with --tokenizer"
                ))
            }
        };
        let rows = x.shape()[0];
        let classes: usize = self.net.output_shape().iter().product();
        let k = match self.args.target {
            TargetArg::Top(k) => k.min(classes),
            _ => 1,
        };
        let top = self
            .net
            .top_k(&x, k)
            .map_err(|e| format!("{shown}: the forward pass failed: {e}"))?;
        let color = self.args.color.enabled();
        let (mut lines, mut report) = (String::new(), String::new());
        for (b, ranked) in top.iter().enumerate() {
            let (file, row_stem) = if rows == 1 {
                (shown.clone(), stem.to_string())
            } else {
                (format!("{shown}[{b}]"), format!("{stem}_row{b}"))
            };
            let Some(&(predicted, score)) = ranked.first() else {
                return Err(format!("{file}: the model has no output"));
            };
            let targets = self.targets(ranked);
            let _ = writeln!(
                report,
                "{file}: predicted class {} (score {score:.4})",
                self.label(predicted)
            );
            let row = x.slice_axis(Axis(0), (b..b + 1).into()).to_owned();
            let ids: Vec<f32> = row.iter().copied().collect();
            for &class in &targets {
                let a = self
                    .net
                    .explain(&row, &Target::Class(class), &self.method)
                    .map_err(|e| format!("{file}: the explanation failed: {e}"))?;
                let (total, gap) = (a.total[0], a.delta[0]);
                let sample = a.relevance.index_axis(Axis(0), 0).to_owned();
                let name = format!("{row_stem}_{}_c{class}", self.name.label());
                let t = token_relevance(
                    &ids,
                    &sample.iter().copied().collect::<Vec<_>>(),
                    self.tokenizer.as_ref(),
                )
                .map_err(|e| format!("{file}: {e}"))?;
                let written = self.write_tokens(&name, &sample, &t)?;
                let _ = writeln!(
                    report,
                    "  class {}: {} total {total:.4}, Σ relevance {:.4}, gap {gap:.3e}; wrote {}\n  {}",
                    self.label(class),
                    self.name.label(),
                    sample.sum(),
                    written.join(", "),
                    terminal_line(&t, color)
                );
                lines.push_str(&self.summary_line(&file, (predicted, score), class, (total, gap)));
            }
        }
        Ok((lines, report))
    }

    /// Writes `NAME.npy`, `NAME_tokens.csv` and `NAME_tokens.html`; returns the paths.
    fn write_tokens(
        &self,
        name: &str,
        sample: &ArrayD<f32>,
        t: &TokenRelevance,
    ) -> Result<Vec<String>, String> {
        let out = &self.args.out;
        let npy = out.join(format!("{name}.npy"));
        relevance::io::save_npy(&npy, sample).map_err(|e| format!("cannot write {}: {e}", npy.display()))?;
        let mut written = Vec::new();
        for (suffix, text) in [("_tokens.csv", t.csv()), ("_tokens.html", t.html())] {
            let p = out.join(format!("{name}{suffix}"));
            std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            written.push(p.display().to_string());
        }
        written.push(npy.display().to_string());
        Ok(written)
    }
}
