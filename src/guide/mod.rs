//! User guides. Their Rust code is compiled and run by `cargo test` (doc tests), so what
//! they show works.
//!
//! * [`pytorch`] — explain my PyTorch model, end to end: export to ONNX, load, preprocess as
//!   torchvision does, explain, save heatmaps and the raw relevance.

#[doc = include_str!("pytorch.md")]
pub mod pytorch {}
