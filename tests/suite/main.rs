//! The integration tests, as one test binary: the crate's code is generic over the float
//! type, so every test binary compiles its own copy of it; one binary compiles it once
//! (`cargo test` builds in about a fifth of the time it took with a binary per file).
//!
//! Run one file's tests with a filter on its module: `cargo test --test suite graph_fixtures`.

mod common;

mod affine;
#[cfg(feature = "onnx")]
mod big_transformers;
#[cfg(feature = "onnx")]
mod bpnet_control_onnx;
#[cfg(feature = "onnx")]
mod chrombpnet;
mod conv_transpose;
mod deeplift;
mod deeplift_fixtures;
mod deeplift_properties;
mod deeplift_squeezenet;
mod determinism;
mod errors;
mod eval;
mod fused;
mod genomics;
mod graph_fixtures;
mod graph_properties;
mod hardening;
mod heatmap;
mod held_inputs;
#[cfg(all(feature = "image", feature = "png"))]
mod images;
mod io;
mod kept_weights;
mod layers;
#[cfg(feature = "onnx")]
mod masked_encoder;
#[cfg(feature = "onnx")]
mod memory;
mod misuse;
#[cfg(feature = "onnx")]
mod onnx_corpus;
#[cfg(feature = "onnx")]
mod onnx_fuzz;
mod profile_head;
mod properties;
#[cfg(feature = "onnx")]
mod published_transformers;
mod readme;
mod recycling;
#[cfg(feature = "onnx")]
mod resize;
#[cfg(feature = "genomics-io")]
mod sequence_io;
mod sequence_layers;
#[cfg(feature = "onnx")]
mod sequence_onnx;
mod shuffle;
mod softmax;
mod textbook;
#[cfg(feature = "onnx")]
mod transformer_hostile;
#[cfg(feature = "onnx")]
mod transformer_onnx;
#[cfg(feature = "onnx")]
mod transformer_patterns;
mod transformers;
mod zennit_fixtures;
