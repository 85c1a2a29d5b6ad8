//! Sequence models as genomics uses them (BPNet, ChromBPNet: 1-D convolutions on one-hot DNA
//! `[N, 4, L]`): DeepLIFT-SHAP against explicit references with hypothetical contributions,
//! as tangermeme's `deep_lift_shap` computes them ([`deep_lift_shap`]), against references
//! from tangermeme's seeded dinucleotide shuffle ([`dinucleotide_shuffle`],
//! [`deep_lift_shap_shuffled`]), and of a profile head through bpnet-lite's
//! `Σ softmax(z) · z` ([`deep_lift_shap_profile`]).
//!
//! The networks are ordinary [`Network`](crate::Network)s of 1-D layers
//! ([`Conv1d`](crate::Conv1d), [`MaxPool1d`](crate::MaxPool1d),
//! [`AvgPool1d`](crate::AvgPool1d), cropping with [`Narrow`](crate::Narrow)), built by hand or
//! loaded from ONNX.
//!
//! A model with control tracks (bpnet-lite's `BPNet(n_control_tracks=2)`, whose
//! `forward(X, X_ctl)` reads them next to the sequence) reads them as a held input
//! ([`GraphBuilder::held_input`](crate::GraphBuilder::held_input)): bind each sequence's
//! tracks ([`Network::bind`](crate::Network::bind), one row `[1, n_ctl, L]`) and explain that
//! sequence with the bound network. This is what tangermeme's `deep_lift_shap(model, X,
//! args=(X_ctl,))` computes (it hands each reference its sequence's `X_ctl`); the tracks are
//! not attributed, and the attributions still sum to `f(x) − mean f(ref)`.
//!
//! With the feature `genomics-io`, the module `io` reads FASTA and BED files, one-hot encodes
//! sequences and writes the inputs of tfmodisco-lite.

mod deep_lift_shap;
#[cfg(feature = "genomics-io")]
pub mod io;
mod profile;
mod shuffle;

pub use deep_lift_shap::{deep_lift_shap, deep_lift_shap_with, SequenceAttribution, TANGERMEME_THRESHOLD};
pub use profile::{deep_lift_shap_profile, deep_lift_shap_profile_with, ProfileWeights};
pub use shuffle::{deep_lift_shap_shuffled, dinucleotide_shuffle, shuffled_references, ShuffleOptions};
