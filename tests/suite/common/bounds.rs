//! The bounds the tests assert, one named constant per figure the README publishes.
//!
//! `tests/suite/readme.rs` ties them to the README's text: every deviation the README
//! reports as measured must be at or below the bound asserted for it, and the bound at most
//! ten times the figure, so that a regression by an order of magnitude fails a test; every
//! bound the README states as such must be the asserted one. Change a figure and its
//! constant together. The command line's figures are checked by `cli/tests/cli.rs`, which runs
//! the README's example and compares its output with the README's text.
//!
//! Deviations are relative to the largest magnitude of the expected array (`rel_dev`) unless
//! said otherwise. The margin between a measured figure and its bound (about 2–5×) absorbs
//! rounding differences between machines (matrixmultiply picks FMA kernels at run time).

#![allow(dead_code)] // each test crate uses its own subset

// --- LRP against zennit: `tests/suite/zennit_fixtures.rs` (chains) ---------------------------

/// f64 relevance and per-layer relevance against zennit (measured worst 5.9e-15).
pub const ZENNIT_F64: f64 = 3e-14;
/// The same in f32 (measured worst 5.8e-6).
pub const ZENNIT_F32: f64 = 3e-5;
/// Rule and preset cases in the four `lrp_*.json` fixtures (19 per network).
pub const ZENNIT_CASES: usize = 76;
/// Cases that record the relevance at every layer (five on each of mlp, cnn, deep).
pub const ZENNIT_LAYER_CASES: usize = 15;
/// Per-layer rule choices recorded by zennit (every node of every case).
pub const ZENNIT_RULE_CHOICES: usize = 665;

// --- graphs against zennit and captum: `tests/suite/graph_fixtures.rs` -----------------------

/// LRP on the ResNet, VGG-BN, DenseNet and MobileNetV2 fixtures, f64 (measured 2.6e-14).
pub const GRAPH_LRP_F64: f64 = 1e-13;
/// The same in f32 (measured 1.6e-5).
pub const GRAPH_LRP_F32: f64 = 8e-5;
/// LRP cases over the four graph fixtures.
pub const GRAPH_LRP_CASES: usize = 26;
/// Node relevances compared in the cases that record them (every module output; merged
/// batch norms excluded).
pub const GRAPH_NODE_RELEVANCES: usize = 150;
/// Node rule choices recorded by zennit over the graph cases (merged batch norms excluded).
pub const GRAPH_RULE_CHOICES: usize = 610;
/// DeepLIFT on the graph fixtures against captum, f64 (measured 3.1e-14).
pub const GRAPH_DEEPLIFT_F64: f64 = 1e-13;
/// The same in f32 (measured 3.5e-5).
pub const GRAPH_DEEPLIFT_F32: f64 = 1e-4;
/// DeepLIFT cases over the four graph fixtures.
pub const GRAPH_DEEPLIFT_CASES: usize = 16;
/// Summation-to-delta with cross-max on the graph fixtures, relative to the total
/// (measured 1.5e-14).
pub const GRAPH_CROSS_MAX_GAP: f64 = 1e-13;

// --- DeepLIFT against captum: `tests/suite/deeplift_fixtures.rs` -----------------------------

/// f64 attributions against captum on the chain fixtures (measured 4.3e-15).
pub const CAPTUM_F64: f64 = 2e-14;
/// DeepLIFT cases over the three `deeplift_*.json` fixtures.
pub const CAPTUM_CASES: usize = 16;

/// DeepLIFT on the tiny SqueezeNet against captum with exact tie-breaks, f64
/// (`tests/suite/deeplift_squeezenet.rs`; measured 1.6e-15).
pub const SQUEEZENET_F64: f64 = 1e-14;

// --- a softmax kept: `tests/suite/softmax.rs` --------------------------------------------------

/// f64 attributions and multipliers against captum, relevance against zennit (measured 1.8e-15).
pub const SOFTMAX_F64: f64 = 1e-14;
/// The same in f32 (measured 8.8e-7; not published).
pub const SOFTMAX_F32: f64 = 5e-6;

// --- the bundled digits model: `tests/suite/io.rs` -------------------------------------------

/// f64 logits against PyTorch's float64 logits, relative to max(1, |logit|) (measured 2.4e-14).
pub const DIGITS_LOGITS_F64: f64 = 1e-13;
/// f32 logits against PyTorch's float32 logits, the same measure (measured 5.6e-6).
pub const DIGITS_LOGITS_F32: f64 = 1e-5;
/// Correctly classified of the bundled held-out digits (exact).
pub const DIGITS_CORRECT: usize = 495;
/// The bundled held-out digits.
pub const DIGITS_TOTAL: usize = 500;

// --- the ONNX corpus: `tests/suite/onnx_corpus.rs` ---------------------------------------------

/// Outputs against onnxruntime's float32 outputs, relative to max(1, max |output|), for the
/// f32 and the f64 network (measured 2.1e-6 in f32).
pub const ONNX_CORPUS: f64 = 1e-5;
/// Files of the corpus that load and are checked.
pub const ONNX_CORPUS_LOADED: usize = 49;
/// DeepLIFT's summation-to-delta on the corpus, f64, relative to max(1, |Δf|) (stated bound).
pub const ONNX_CORPUS_DEEPLIFT_GAP: f64 = 1e-9;

// --- evaluation against Quantus: `tests/suite/eval.rs` -----------------------------------------

/// Perturbation curves against Quantus 0.6.0, f64 (measured 8.6e-7: Quantus runs in float32).
pub const QUANTUS_F64: f64 = 1e-6;
/// The same with the network in f32 (measured 9.0e-7; the bound kept from before, a narrow
/// margin: Quantus' float32 model is the floor).
pub const QUANTUS_F32: f64 = 1e-6;
/// Perturbation cases in `eval_quantus.json`.
pub const QUANTUS_CASES: usize = 9;
/// Spearman and SSIM against SciPy and scikit-image, absolute (stated bound).
pub const SIMILARITY: f64 = 1e-9;

// --- images in: `tests/suite/images.rs` --------------------------------------------------------

/// Worst JPEG pixel against torchvision (PIL's libjpeg-turbo), in 1/255 (measured 2).
pub const JPEG_WORST: f64 = 2.0;
/// Mean JPEG pixel difference, in 1/255 (measured 0.32; not published).
pub const JPEG_MEAN: f64 = 0.5;
/// Resize cases in `images/expected.json`.
pub const IMAGE_CASES: usize = 5;

// --- layers and kernels ------------------------------------------------------------------------

/// Every layer's forward pass and gradient against PyTorch, f64 (`tests/suite/layers.rs`;
/// stated bound).
pub const LAYERS_F64: f64 = 1e-13;
/// Hard sigmoid's gradient: PyTorch multiplies by 1/6 rounded to float32 (stated bound).
pub const HARDSIGMOID_GRADIENT: f64 = 1e-7;
/// Layer cases in `layers.json`.
pub const LAYER_CASES: usize = 53;
/// Winograd against direct loops (`src/layers/conv2d/tests.rs`; stated bound).
pub const WINOGRAD: f64 = 1e-13;
/// im2col against direct loops (`src/layers/conv2d/tests.rs`; stated bound).
pub const IM2COL: f64 = 1e-14;
/// The direct convolution path in f32 against plain f64 loops (`src/layers/conv2d/tests.rs`),
/// relative to the largest output.
pub const DIRECT_F32: f64 = 1e-5;

// --- properties ----------------------------------------------------------------------------------

/// DeepLIFT's summation-to-delta on random graphs and chains, relative to the scale of the
/// attributions (`graph_properties.rs`, `deeplift_properties.rs`; stated bound).
pub const DEEPLIFT_PROPERTY_GAP: f64 = 1e-10;
/// AttnLRP and CP-LRP against lxt 2.1 (explicit rules, every ε = 0) on the tiny ViT and
/// BERT, at the input and every recorded point, float64 (observed 1.7e-15).
pub const LXT_F64: f64 = 1e-14;
/// DeepLIFT's summation-to-delta through attention (exact softmax rule), relative to
/// max(1, |f(x) − f(x̄)|), float64.
pub const TRANSFORMER_DELTA: f64 = 1e-10;
/// The tiny ViT and BERT read from their float64 ONNX exports (both exporters): the fixture's
/// logits, relative to the largest.
pub const ONNX_TRANSFORMER_LOGITS_F64: f64 = 2e-15;
/// Transformers read from float32 ONNX files: the reference logits (PyTorch's, or the float64
/// fixture's for a float32 export of the same weights), relative to the largest.
pub const ONNX_TRANSFORMER_F32: f64 = 1e-5;
/// `Resize` read from float64 ONNX files (`tests/suite/resize.rs`): PyTorch's outputs and
/// input gradients, relative to the largest (measured 1.2e-15).
pub const RESIZE_F64: f64 = 1e-14;
