//! Import of ONNX models: any directed acyclic graph of supported operators, with the
//! constant and shape arithmetic that exporters write around the layers folded at load
//! time.
//!
//! `proto.rs` declares the protobuf messages (only the fields read) and `budget.rs` bounds
//! what decoding them allocates; `decode.rs` decodes tensors (external data, half
//! precision) and the graph inputs' shapes, `attrs.rs` reads node attributes; `graph.rs`
//! finds the explained input, the held inputs (the other data inputs), the output and the
//! nodes it needs; `check.rs` is the first pass over
//! them, `import.rs` the walk that folds or builds each; `ops/` is the operator registry,
//! one file per family; `values.rs` folds constants and `view.rs` keeps paddings and
//! transposes pending until something needs them.

mod attrs;
mod budget;
mod check;
mod decode;
mod graph;
mod import;
mod layout;
mod ops;
mod pattern;
mod proto;
mod values;
mod view;

use super::read_file;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::network::Network;
use decode::DataDir;
use prost::Message;
use proto::ModelProto;
use std::path::Path;

/// Options of [`load_onnx_with`] and [`from_onnx_with`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OnnxOptions {
    /// The graph input to explain, for a graph with several data inputs (inputs that are
    /// not initializers), e.g. `"X"` of a bpnet-lite `BPNet` with control tracks exported
    /// with `forward(X, X_ctl)`. Default: the first data input. Every other data input that
    /// the explained output reads becomes a held input of the network
    /// ([`GraphBuilder::held_input`](crate::GraphBuilder::held_input)), named as in the
    /// file, with the per-sample shape the file declares: give it a value per call with
    /// [`Network::bind`] ([`Network::held_inputs`] lists them). A name that no data input
    /// has is an [`Error::OnnxInput`] listing the graph's data inputs.
    pub input: Option<String>,
    /// The per-sample input shape (no batch dimension) of the explained input, for a graph
    /// input whose height, width or channels are symbolic or missing. Default: the shape
    /// the file declares. (A held input's shape must be declared in the file.)
    pub input_shape: Option<Vec<usize>>,
    /// The tensor to explain, for a graph with several outputs (any node output may be
    /// named), e.g. `"counts"` or `"profile"` of a BPNet exported with both heads. Default:
    /// the graph's one output; a graph with several outputs and no name given, or a name
    /// that no graph output or node output has, is an [`Error::Format`] that lists the
    /// graph's outputs.
    pub output: Option<String>,
    /// Merge every batch normalisation that directly follows a convolution or dense layer
    /// into it (zennit's canonizer, [`Network::merge_batch_norm`]). Default `true`.
    pub merge_batch_norm: bool,
    /// Keep a trailing `Softmax` as a [`Softmax`](crate::Softmax) layer instead of
    /// explaining the logits before it: DeepLIFT then explains the probability (exactly, or
    /// with captum's softmax rule: [`SoftmaxRule`](crate::rules::SoftmaxRule)), the LRP rules take its
    /// gradient (as zennit, which has no rule for it). A kept `LogSoftmax` is an error.
    /// Default `false`.
    pub keep_softmax: bool,
    /// Graph inputs held at a fixed value for every call, e.g. a text encoder's
    /// `attention_mask` (all ones for one unpadded text) or `token_type_ids`. The importer
    /// then evaluates what they feed at load time, as it does for initializers: the mask
    /// arithmetic of an exported BERT (`Unsqueeze`, `Cast`, `(1 − mask)·min`, the mean
    /// pooling's `mask · hidden / Σ mask`) becomes constants of the network. Each name
    /// must be a data input other than the explained one ([`Error::OnnxInput`] lists
    /// them). Default: none (every other data input the output reads is a held input).
    pub fixed_inputs: Vec<(String, FixedInput)>,
}

/// The value of a graph input held fixed ([`OnnxOptions::fixed_inputs`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FixedInput {
    /// Every entry this number, in the per-sample shape the file declares: a dimension the
    /// file gives a name (`"sequence_length"`) takes the size of the explained input's
    /// dimension of the same name (so `attention_mask` follows `input_ids`).
    Fill(f64),
    /// These values, one sample (no batch axis): the constant has a batch axis of 1 and
    /// broadcasts over the batch. Integer inputs need whole numbers.
    Values(ndarray::ArrayD<f64>),
}

impl Default for OnnxOptions {
    fn default() -> Self {
        OnnxOptions {
            input: None,
            input_shape: None,
            output: None,
            merge_batch_norm: true,
            keep_softmax: false,
            fixed_inputs: Vec::new(),
        }
    }
}

impl OnnxOptions {
    /// These options explaining the named graph input ([`OnnxOptions::input`]); the other
    /// data inputs become held inputs.
    ///
    /// A bpnet-lite `BPNet(n_control_tracks=2)` exported with `forward(X, X_ctl)`: `X` is
    /// explained, the control tracks `X_ctl` are a held input, bound per sequence.
    /// ```
    /// use ndarray::{ArrayD, IxDyn};
    /// use relevance::io::{load_onnx_with, OnnxOptions};
    /// # fn main() -> relevance::Result<()> {
    /// let dir = env!("CARGO_MANIFEST_DIR");
    /// let path = format!("{dir}/tests/fixtures/onnx/sequence/bpnet_control_dynamo.onnx");
    /// let options = OnnxOptions::default().with_input("X").with_output("counts");
    /// let model = load_onnx_with::<f64>(&path, &options)?;
    /// assert_eq!(model.network.held_inputs(), vec![("X_ctl", &[2usize, 100][..])]);
    /// let x = ArrayD::from_elem(IxDyn(&[1, 4, 100]), 0.25);
    /// let x_ctl = ArrayD::from_elem(IxDyn(&[1, 2, 100]), 1.0); // one row: [1, 2, 100]
    /// let counts = model.network.bind(&[x_ctl])?.forward(&x)?;
    /// assert_eq!(counts.shape(), &[1, 1]);
    ///
    /// // a name that no graph input has: the error lists them
    /// let err = load_onnx_with::<f64>(&path, &OnnxOptions::default().with_input("x")).unwrap_err();
    /// assert!(err.to_string().ends_with("(the graph's data inputs: X, X_ctl)"));
    /// # Ok(()) }
    /// ```
    pub fn with_input(mut self, input: &str) -> Self {
        self.input = Some(input.to_string());
        self
    }

    /// The default options with the per-sample input shape given.
    pub fn with_input_shape(mut self, shape: &[usize]) -> Self {
        self.input_shape = Some(shape.to_vec());
        self
    }

    /// The default options explaining the named output.
    pub fn with_output(mut self, output: &str) -> Self {
        self.output = Some(output.to_string());
        self
    }

    /// These options holding the graph input `name` at `value` ([`OnnxOptions::fixed_inputs`]).
    ///
    /// A sentence encoder exported from HF `transformers` reads `input_ids` and
    /// `attention_mask`; for one text without padding the mask is all ones:
    /// ```
    /// use relevance::io::{load_onnx_with, FixedInput, OnnxOptions};
    /// # fn main() -> relevance::Result<()> {
    /// let dir = env!("CARGO_MANIFEST_DIR");
    /// let path = format!("{dir}/tests/fixtures/transformers/masked_encoder.onnx");
    /// let options = OnnxOptions::default()
    ///     .with_input_shape(&[6])
    ///     .with_fixed_input("attention_mask", FixedInput::Fill(1.0));
    /// let model = load_onnx_with::<f64>(&path, &options)?;
    /// assert!(model.network.held_inputs().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn with_fixed_input(mut self, name: &str, value: FixedInput) -> Self {
        self.fixed_inputs.retain(|(n, _)| n != name);
        self.fixed_inputs.push((name.to_string(), value));
        self
    }

    /// These options keeping a trailing `Softmax` ([`OnnxOptions::keep_softmax`]).
    pub fn with_softmax_kept(mut self) -> Self {
        self.keep_softmax = true;
        self
    }
}

/// An imported ONNX model: the network and what the importer did to get it.
#[derive(Debug)]
#[non_exhaustive]
pub struct OnnxModel<F: Float = f32> {
    /// The network, its nodes named after the file's nodes.
    pub network: Network<F>,
    /// What was changed on the way, e.g. "removed the trailing Softmax node ...", "folded a
    /// zero Pad into the padding of Conv ...".
    pub notes: Vec<String>,
    /// The explained graph input's name (the other data inputs the output reads are the
    /// network's held inputs, [`Network::held_inputs`]).
    pub input: String,
    /// The explained tensor's name.
    pub output: String,
}

/// Loads an ONNX model from a file with the default [`OnnxOptions`]; see [`from_onnx`].
/// Weights stored in external data files next to the model are read.
///
/// ```
/// use relevance::io::{load_onnx, Digits};
/// # fn main() -> relevance::Result<()> {
/// let dir = env!("CARGO_MANIFEST_DIR");
/// let net = load_onnx::<f64>(format!("{dir}/models/digits.onnx"))?; // float32 weights, f64 network
/// assert_eq!(net.nodes().len(), 10);
/// let digits = Digits::load(format!("{dir}/data/digits_test.bin"))?;
/// let logits = net.forward(&digits.images(&[0, 1])?)?;
/// assert_eq!(logits.shape(), &[2, 10]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Io`] if the file (or an external data file) cannot be read (or is above
/// 2 GiB); as [`from_onnx`] otherwise.
pub fn load_onnx<F: Float>(path: impl AsRef<Path>) -> Result<Network<F>> {
    Ok(load_onnx_with(path, &OnnxOptions::default())?.network)
}

/// [`load_onnx`] with options, returning the network with the importer's notes.
///
/// # Errors
/// As [`load_onnx`].
pub fn load_onnx_with<F: Float>(path: impl AsRef<Path>, options: &OnnxOptions) -> Result<OnnxModel<F>> {
    let path = path.as_ref();
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    import(&read_file(path)?, DataDir(dir.map(Path::to_path_buf)), options)
}

/// Builds a network from the bytes of an ONNX model, with the default [`OnnxOptions`].
///
/// The graph may be any directed acyclic graph (residual additions, concatenations,
/// gates) with a data input `[batch, ...]`, the one explained. A graph with several data
/// inputs (inputs that are not initializers) explains the first, or the one named by
/// [`OnnxOptions::input`]; every other data input that the output reads becomes a *held
/// input* of the network ([`GraphBuilder::held_input`](crate::GraphBuilder::held_input)),
/// named as in the file: given per call with [`Network::bind`], the same for the input and
/// its baselines, and not attributed — e.g. the control tracks `X_ctl` of bpnet-lite's
/// `BPNet(n_control_tracks=2)` exported with `forward(X, X_ctl)`. A held input's per-sample
/// dimensions (all but the batch) must be fixed in the file. Nodes the output does not depend on are
/// ignored; nodes whose inputs are all constants (initializers, `Constant` nodes, shapes of
/// tensors) are evaluated when the file is read, so that the network holds only layers
/// that act on data. [`onnx_operators`] lists the operators and what each becomes.
///
/// A `Transpose` of data is a permutation kept pending: one that a later `Transpose`
/// undoes builds nothing, and elementwise layers and per-channel affine maps between the
/// two act on the untransposed tensor (a channels-last export's `Transpose` → `Mul`/`Add`
/// by `[1, 1, 1, C]` → `Transpose` is one per-channel layer). The network takes the input
/// in the layout the file declares: a channels-last (`NHWC`) input that the file
/// transposes to `NCHW` gives a network whose first node is a
/// [`Permute`](crate::Permute).
///
/// Weights may be float32, float64, float16 or bfloat16 (converted to `F`). A model with
/// weights in external data files must be read from its path ([`load_onnx`]).
///
/// # Errors
/// [`Error::Format`] for bytes that are not a valid ONNX protobuf, a tensor whose stored
/// data does not match its shape, an absurd size, a missing graph, default-domain opset or
/// input shape, or several outputs (name one with [`OnnxOptions::output`]);
/// [`Error::OnnxInput`] for an [`OnnxOptions::input`] that no data input has (listing
/// them), or a held input with a symbolic or missing per-sample dimension (naming it);
/// [`Error::UnsupportedOperator`] listing every operator of the model without a layer here
/// (with counts and the first node of each) and every node refused for its inputs or
/// settings (e.g. a `MatMul` of two computed tensors), named by the first of them;
/// [`Error::MissingTensor`] for a tensor nothing defines; [`Error::AtNode`] for a weight of
/// the wrong shape or shapes that do not fit. Each names the node (its name, or
/// `#index OpType` if it has none).
pub fn from_onnx<F: Float>(bytes: &[u8]) -> Result<Network<F>> {
    Ok(from_onnx_with(bytes, &OnnxOptions::default())?.network)
}

/// [`from_onnx`] with options, returning the network with the importer's notes.
///
/// # Errors
/// As [`from_onnx`].
pub fn from_onnx_with<F: Float>(bytes: &[u8], options: &OnnxOptions) -> Result<OnnxModel<F>> {
    import(bytes, DataDir(None), options)
}

fn import<F: Float>(bytes: &[u8], dir: DataDir, options: &OnnxOptions) -> Result<OnnxModel<F>> {
    // what the decoder will allocate, bounded before it runs
    budget::check(bytes)?;
    let mut model = ModelProto::decode(bytes).map_err(|e| Error::Format {
        what: "ONNX model".into(),
        reason: format!("not a valid ONNX protobuf: {e}"),
    })?;
    // the decoder grows lists as it pushes (each node's name lists to four entries): up
    // to 200 bytes a node kept through the import for nothing
    for graph in model.graph.iter_mut() {
        graph.node.shrink_to_fit();
        for node in &mut graph.node {
            node.input.shrink_to_fit();
            node.output.shrink_to_fit();
        }
    }
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .filter(|&v| v > 0)
        .ok_or_else(|| Error::Format {
            what: "ONNX model".into(),
            reason: "no operator set version for the default domain (opset_import)".into(),
        })?;
    let graph = model.graph.as_ref().ok_or_else(|| Error::Format {
        what: "ONNX model".into(),
        reason: "the model has no graph".into(),
    })?;
    import::import(graph, opset, dir, options)
}

/// An ONNX operator the importer supports (see [`onnx_operators`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OnnxOperator {
    /// The operator type, e.g. `"Conv"` (of ONNX's default domain).
    pub name: &'static str,
    /// What a node of it becomes, in one line.
    pub becomes: &'static str,
    /// Whether it is evaluated when the file is read if its inputs are constants.
    pub on_constants: bool,
    /// Whether it is supported where an input is data (computed from the network input):
    /// as a layer (or nothing, e.g. `Identity`), or, for `Shape` and `Size`, evaluated
    /// from the data's shape.
    pub on_data: bool,
}

/// Every ONNX operator the importer supports, by name, with what each becomes. An
/// operator not listed here makes [`from_onnx`] fail with
/// [`Error::UnsupportedOperator`], and one listed with `on_data: false` does when it acts
/// on data.
///
/// ```
/// let ops = relevance::io::onnx_operators();
/// let conv = ops.iter().find(|op| op.name == "Conv").unwrap();
/// assert!(conv.on_data && conv.becomes.starts_with("Conv2d"));
/// assert!(ops.iter().any(|op| op.name == "Range" && op.on_constants && !op.on_data));
/// ```
pub fn onnx_operators() -> Vec<OnnxOperator> {
    ops::registry::<f32>()
        .all()
        .map(|def| OnnxOperator {
            name: def.name,
            becomes: def.becomes,
            on_constants: def.fold.is_some(),
            on_data: def.build.is_some() || def.fold_always,
        })
        .collect()
}
