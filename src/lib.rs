//! # relevance
//!
//! Explanations of neural-network predictions by **Layer-wise Relevance Propagation** (LRP;
//! Bach et al. 2015, Montavon et al. 2019) and **DeepLIFT** (Shrikumar et al. 2017),
//! numerically equal to zennit and captum on the same weights.
//!
//! Build a [`Network`] from PyTorch-layout weights — a chain of layers with
//! [`Network::new`], or any directed acyclic graph (residual sums, concatenations, gates)
//! with [`GraphBuilder`] — out of [`Dense`], [`Conv2d`] (grouped and depthwise too), [`ConvTranspose2d`],
//! [`MaxPool2d`], [`AvgPool2d`], [`BatchNorm2d`], activations ([`Relu`], [`Clip`],
//! [`Sigmoid`], [`HardSwish`], ...), [`Flatten`], [`Add`], [`Concat`] and [`Mul`] nodes.
//! Then ask it to [`attribute`](Network::attribute) a prediction under a rule ([`Lrp0`],
//! [`LrpEpsilon`], [`LrpGamma`], [`LrpAlphaBeta`], [`LrpZPlus`], [`LrpZBox`], [`LrpFlat`],
//! [`LrpWSquare`]) or a [`Composite`] that picks a rule per node, by category or by name.
//! The result holds a relevance score for every input value: positive values speak for the
//! target class, negative ones against it. [`Network::merge_batch_norm`] is zennit's
//! batch-norm canonizer.
//!
//! [`Network::deeplift`] explains the difference to a [`Baseline`] with [`DeepLift`]
//! (Rescale, RevealCancel, DeepLiftShap); [`heatmap`] renders relevance as images and
//! labelled figures, [`io`] loads networks from safetensors or ONNX files, `image` (feature
//! `image`) prepares PNG/JPEG inputs as torchvision does, and [`eval`] measures how faithful
//! an explanation is; [`genomics`] explains sequence models (1-D convolutions on one-hot DNA:
//! [`Conv1d`], [`MaxPool1d`], [`AvgPool1d`]) by DeepLIFT-SHAP with hypothetical contributions,
//! as tangermeme does, and `genomics::io` (feature `genomics-io`) reads FASTA and BED files and
//! writes tfmodisco-lite's inputs. The guide `guide::pytorch` walks from a PyTorch model to heatmap
//! PNGs.
//!
//! How it works: [`Network::trace`] records every value; then one explicit loop runs from
//! the last node to the first (adding up what comes back where a value feeds several
//! nodes), and each [`Layer`] or [`Merge`] hands its recorded inputs, output and upper
//! relevance (a [`Step`]) to the rule method of its algebraic class on the [`Rule`] its
//! composite chose (`docs/architecture.md` has the design), which for dense and
//! convolutional layers needs only the layer's [`Affine`] pair `apply_with` /
//! `apply_transpose`. Layers are never mutated.
//!
//! Conventions: batch-first arrays, NCHW images, dense weights `[out, in]`, convolution
//! weights `[out, in, kh, kw]` (PyTorch's), flatten in C order. Generic over `f32` (the
//! default) and `f64`.
//!
//! ```
//! use ndarray::{array, Array4};
//! use relevance::{Composite, Conv2d, Conv2dConfig, Dense, Flatten, Network, Relu, Target};
//! # fn main() -> relevance::Result<()> {
//! // A 1×3×3 image, one 2×2 convolution with two filters, then a dense layer to 2 classes.
//! let conv = Conv2d::new(
//!     Array4::from_shape_vec((2, 1, 2, 2), vec![1.0, 0.5, -0.5, 1.0, 0.2, -1.0, 1.0, 0.3]).unwrap(),
//!     Some(array![0.1, -0.1]),
//!     Conv2dConfig::default(),
//! )?;
//! let dense = Dense::new(Array4::<f64>::from_elem((1, 1, 2, 8), 0.5).into_shape_with_order((2, 8)).unwrap(), None)?;
//! let net = Network::new(&[1, 3, 3], vec![Box::new(conv), Box::new(Relu), Box::new(Flatten), Box::new(dense)])?;
//!
//! let x = Array4::from_shape_fn((1, 1, 3, 3), |(_, _, i, j)| (i * 3 + j) as f64 / 8.0).into_dyn();
//! let rules = Composite::epsilon_plus();
//! let a = net.attribute(&x, &Target::Class(1), &rules)?;
//! assert_eq!(a.relevance.shape(), &[1, 1, 3, 3]);
//! // The relevance sums to the logit minus what the biases absorbed:
//! assert!(a.delta[0].abs() < 0.2 * a.total[0].abs());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod eval;
mod explain;
mod float;
pub mod genomics;
#[cfg(all(feature = "onnx", feature = "image", feature = "png", feature = "figure"))]
pub mod guide;
pub mod heatmap;
#[cfg(feature = "image")]
pub mod image;
#[cfg(debug_assertions)]
#[doc(hidden)]
pub mod instances;
pub mod io;
mod kernels;
pub mod layers;
mod network;
mod pool;
pub mod rules;
mod tensor;

pub use error::{Error, Result};
pub use explain::{
    sum_per_sample, Attribution, Baseline, DeepLiftAttribution, DeepLiftOptions, Method, MethodName,
    MethodNameInfo, Options, Seed, Target, TracedBaseline,
};
pub use float::Float;
pub use layers::{
    Add, Affine, AvgPool1d, AvgPool2d, BatchNorm2d, Category, Class, Clip, Concat, Conv1d, Conv1dConfig,
    Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Coordinates, Dense, Elu, Embedding, Exp,
    Flatten, Fused, Gelu, HardSigmoid, HardSwish, Identity, Interpolation, KeptWeights, Layer, LayerNorm,
    LeakyRelu, LinearMap, LocalResponseNorm, Log, Log1p, MatMul, MaxPool1d, MaxPool2d, Merge, MergeClass,
    MergeStep, Mul, Narrow, Normalize, Pad, Permute, Relu, Reshape, Resize, RmsNorm, Select, Sigmoid, Silu,
    Softmax, Softplus, Step, Tanh, KEPT_SETS_MAX,
};
pub use pool::{buffer_stats, release_buffers, BufferStats};
pub use rules::{DeepLift, Gradient, GradientTimesInput, MaxPoolRule, NonlinearRule};

pub use network::{GraphBuilder, Network, Node, NodeId, Op, Trace, MAX_NODES, MAX_RANK, MAX_SAMPLE_LEN};
pub use rules::{
    AttnLrp, Composite, CpLrp, Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox,
    LrpZPlus, NodeInfo, PairRelevance, PairStep, Rule, RuleSet, Selector,
};

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
