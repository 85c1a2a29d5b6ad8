//! The crate's one error type.
//!
//! Every fallible public function returns [`Result`]. Each variant says whose fault it is
//! (almost always the caller's input) and carries the structured facts needed to fix it:
//! the layer index, the expected and the actual shape, the offending parameter.

/// Convenient alias: `Result<T, relevance::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong when building a network or explaining a prediction.
///
/// No public function of this crate panics on user input; it returns one of these instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An array had the wrong shape. Caller's fault: the input, a weight or a bound does
    /// not fit where it was used.
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    Shape {
        /// What was being checked (e.g. "input", "bias", "ZBox low bound").
        what: String,
        /// The shape that would have fit (batch dimension shown as 0 where it is free).
        expected: Vec<usize>,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// An array had the wrong number of dimensions. Caller's fault.
    #[error("{what}: expected {expected} dimensions, got {got} (shape {shape:?})")]
    Rank {
        /// What was being checked.
        what: String,
        /// Expected number of dimensions.
        expected: usize,
        /// Actual number of dimensions.
        got: usize,
        /// The full shape that was given.
        shape: Vec<usize>,
    },
    /// A NaN or infinite value was found. Caller's fault: inputs, weights, bounds and
    /// output relevance must be finite.
    #[error("{what}: non-finite value {value} at flat index {index}")]
    NonFinite {
        /// Which array held the value.
        what: String,
        /// Flat (C-order) index of the first non-finite value.
        index: usize,
        /// The value itself (NaN, inf or -inf), printed as f64.
        value: f64,
    },
    /// A result is not finite although the inputs, weights and rule parameters were: a value
    /// overflowed the float type (activations beyond `f32::MAX` ≈ 3.4e38, say) or a rule
    /// divided by a vanishing denominator. Wrapped in [`Error::AtLayer`] naming the first
    /// node where it appeared; use `f64` or a smaller input scale.
    #[error("the {pass} produced a non-finite value (overflow in {float})")]
    NonFiniteResult {
        /// `"forward pass"`, `"relevance pass"` or `"DeepLIFT pass"`.
        pass: &'static str,
        /// The network's float type.
        float: &'static str,
    },
    /// The network has no layers. Caller's fault.
    #[error("the network has no layers")]
    EmptyNetwork,
    /// The input batch is empty. Caller's fault.
    #[error("the input batch is empty")]
    EmptyBatch,
    /// A target class does not exist. Caller's fault.
    #[error("target class {class} for sample {sample} is out of range: the network has {classes} outputs")]
    TargetOutOfRange {
        /// The sample whose target is wrong.
        sample: usize,
        /// The class that was asked for.
        class: usize,
        /// The number of outputs of the network.
        classes: usize,
    },
    /// The number of per-sample targets (or baselines) does not match the batch size.
    #[error("{what}: {got} given for a batch of {batch}")]
    BatchMismatch {
        /// What was counted.
        what: String,
        /// Batch size of the input.
        batch: usize,
        /// How many were given.
        got: usize,
    },
    /// A rule was given an invalid parameter (negative ε or γ, α − β ≠ 1, bounds with
    /// low > high, ...). Caller's fault.
    #[error("invalid parameter for {rule}: {reason}")]
    InvalidParameter {
        /// The rule or composite.
        rule: &'static str,
        /// What is wrong, with the value.
        reason: String,
    },
    /// A layer's configuration is invalid (zero stride, kernel larger than the padded
    /// input, ...). Caller's fault.
    #[error("invalid {layer} configuration: {reason}")]
    InvalidLayer {
        /// The layer kind.
        layer: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A rule cannot be applied to this layer (for example, a layer the rule does not
    /// know, or a rule that needs a baseline trace that was not recorded).
    #[error("rule {rule} cannot be applied here: {reason}")]
    Unsupported {
        /// The rule's name.
        rule: String,
        /// Why.
        reason: String,
    },
    /// A heatmap or image could not be made or written. Usually the caller's fault (an empty
    /// relevance map, a zero upscaling factor, an overlay alpha outside [0, 1], more images
    /// than grid cells, an image above `heatmap::MAX_PIXELS`, an unknown palette name or bad
    /// colour-map source); for PNG output also the environment's (a missing directory, a
    /// full disk).
    #[error("{what}: {reason}")]
    Image {
        /// What was being made or checked (e.g. "upscale factor", "PNG file out/a.png").
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A model, weights or data file could not be read from disk (missing, unreadable, or
    /// larger than the loader accepts). The environment's or the caller's fault.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why (the operating system's message, or the size limit).
        reason: String,
    },
    /// A model, weights, architecture or data file is malformed: truncated, corrupt, of the
    /// wrong format, or hostile (sizes that do not add up, absurd dimensions). The file's
    /// fault.
    #[error("{what}: {reason}")]
    Format {
        /// What was being read, naming the file part, node or tensor (e.g. "ONNX model",
        /// "tensor fc1.weight", "digits file header").
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A model uses an operator, or an operator setting, that has no layer in this crate
    /// (e.g. an operator without a layer here, a `Slice` of the batch axis, a `Softmax` inside
    /// the network).
    #[error("node {node}: unsupported operator {op}: {reason}")]
    UnsupportedOperator {
        /// The node's name (or its position if it has none).
        node: String,
        /// The operator type, e.g. `Softmax`.
        op: String,
        /// What exactly is not supported.
        reason: String,
    },
    /// A tensor that a model refers to (a weight, a bias, a shape) is not in the file.
    #[error("{node}: tensor {tensor:?} is missing")]
    MissingTensor {
        /// The tensor's name.
        tensor: String,
        /// The node or layer that needs it.
        node: String,
    },
    /// An error in one node (or described layer) of a model file, with its name: a weight of
    /// the wrong shape, an invalid configuration, or shapes that do not chain.
    #[error("node {node}: {source}")]
    AtNode {
        /// The node's name, e.g. `/conv1/Conv` or `layer 3 (dense fc1.weight)`.
        node: String,
        /// What went wrong there.
        source: Box<Error>,
    },
    /// An error that happened inside one node of a network, with its position and name.
    #[error("node {index} `{node}` ({name}): {source}")]
    AtLayer {
        /// Index of the node in the network (0 = first node).
        index: usize,
        /// The node's name in the network, e.g. `layer1.0.conv1` (for a chain built by
        /// [`Network::new`](crate::Network::new): its index).
        node: String,
        /// What the node is, e.g. `Conv2d(3→8, 3×3)`.
        name: String,
        /// What went wrong there.
        source: Box<Error>,
    },
    /// A method's name could not be read ([`MethodName`](crate::MethodName)): an unknown
    /// name, or a parameter where none is taken or that is not a number. Caller's fault.
    #[error("method `{text}`: {reason}")]
    MethodName {
        /// The text as given.
        text: String,
        /// What is wrong, and what would be right.
        reason: String,
    },
    /// A letter of a DNA sequence is none of A, C, G, T, N (in either case). The sequence
    /// file's or the caller's fault.
    #[error("sequence {record}: letter {letter:?} at position {position} (0-based) is not A, C, G, T or N")]
    InvalidBase {
        /// The record's name (its FASTA header's first word), or `"sequence"` for a bare one.
        record: String,
        /// 0-based position of the letter in the sequence.
        position: usize,
        /// The letter (a byte outside ASCII shown as its Latin-1 character).
        letter: char,
    },
    /// A sequence file (FASTA, BED) or a region in it cannot be used: malformed or truncated
    /// text, a region past the end of its chromosome or on an unknown one, sequences of unequal
    /// lengths in one batch. The file's or the caller's fault.
    #[error("{file}, {location}: {reason}")]
    SequenceFile {
        /// The file (or `"<reader>"` for a stream).
        file: String,
        /// Where: `"line 7"`, `"record chr2"`, `"region at line 4 (chr1:100-200)"`.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A network with a held input ([`GraphBuilder::held_input`](crate::GraphBuilder::held_input))
    /// was run before the held input was given a value ([`Network::bind`](crate::Network::bind)).
    /// Caller's fault.
    #[error("held input `{name}` is not bound: give it a value with Network::bind first")]
    UnboundHeldInput {
        /// The held input's name.
        name: String,
    },
    /// [`Network::bind`](crate::Network::bind) was given a number of values other than the
    /// number of held inputs. Caller's fault.
    #[error("the network has {} held input(s) ({}), {got} value(s) were given", .names.len(), .names.join(", "))]
    HeldInputCount {
        /// The held inputs' names, in the order their values are expected.
        names: Vec<String>,
        /// How many values were given.
        got: usize,
    },
    /// A value given for a held input cannot be used: the wrong shape (the held input's
    /// per-sample shape with a batch axis of 1 is expected), or NaN or infinity. Caller's
    /// fault.
    #[error("held input `{name}`: {source}")]
    HeldInput {
        /// The held input's name.
        name: String,
        /// What is wrong with the value ([`Error::Shape`], [`Error::Rank`] or
        /// [`Error::NonFinite`]).
        source: Box<Error>,
    },
    /// A graph input of an ONNX model cannot be used: the explained input named by
    /// `OnnxOptions::input` (ONNX import) is not one of the graph's data
    /// inputs, or a held input (a data input other than the explained one) has a symbolic
    /// or missing dimension besides the batch. The caller's fault (the name) or the file's
    /// (the shape).
    #[error("ONNX graph input `{name}`: {reason} (the graph's data inputs: {})", .inputs.join(", "))]
    OnnxInput {
        /// The input's name (as given, for an unknown one).
        name: String,
        /// What is wrong.
        reason: String,
        /// The graph's data inputs (inputs that are not initializers), in the file's order.
        inputs: Vec<String>,
    },
    /// A token id given to an [`Embedding`](crate::Embedding) is not an integer in
    /// `0..vocabulary` (negative, too large, fractional, NaN or infinite). The caller's
    /// fault (the input), or the model's (a vocabulary smaller than its tokenizer's).
    #[error("token id {value} at position {position:?} (batch first) is not an integer in 0..{vocabulary}")]
    TokenId {
        /// Where in the input (batch index first).
        position: Vec<usize>,
        /// The value found.
        value: f64,
        /// The embedding table's number of rows.
        vocabulary: usize,
    },
    /// A graph could not be built: an input that is not an earlier node, a name given
    /// twice, a wrong number of inputs. Caller's fault.
    #[error("graph node `{node}`: {reason}")]
    Graph {
        /// The node's name (or its would-be index).
        node: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The error of a part of a batch that starts at sample `first`, with positions made
    /// relative to the whole batch.
    pub(crate) fn in_batch_from(self, first: usize) -> Self {
        match self {
            Error::TokenId {
                mut position,
                value,
                vocabulary,
            } => {
                if let Some(p) = position.first_mut() {
                    *p += first;
                }
                Error::TokenId {
                    position,
                    value,
                    vocabulary,
                }
            }
            Error::AtLayer {
                index,
                node,
                name,
                source,
            } => Error::AtLayer {
                index,
                node,
                name,
                source: Box::new(source.in_batch_from(first)),
            },
            Error::AtNode { node, source } => Error::AtNode {
                node,
                source: Box::new(source.in_batch_from(first)),
            },
            e => e,
        }
    }

    /// Wraps this error with the index, node name and description of the node where it
    /// happened.
    pub(crate) fn at_layer(self, index: usize, node: &str, name: &str) -> Error {
        match self {
            e @ Error::AtLayer { .. } => e,
            e => Error::AtLayer {
                index,
                node: node.to_string(),
                name: name.to_string(),
                source: Box::new(e),
            },
        }
    }

    /// The innermost error, without the layer wrapping.
    pub fn root(&self) -> &Error {
        match self {
            Error::AtLayer { source, .. } => source.root(),
            Error::AtNode { source, .. } => source.root(),
            Error::HeldInput { source, .. } => source.root(),
            e => e,
        }
    }

    /// The index of the node where the error happened, if it happened inside a node.
    pub fn layer_index(&self) -> Option<usize> {
        match self {
            Error::AtLayer { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The name of the node where the error happened, if it happened inside a node.
    pub fn node_name(&self) -> Option<&str> {
        match self {
            Error::AtLayer { node, .. } | Error::Graph { node, .. } => Some(node),
            Error::UnboundHeldInput { name } | Error::HeldInput { name, .. } => Some(name),
            _ => None,
        }
    }
}
