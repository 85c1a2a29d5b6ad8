//! The determinism tests (`tests/suite/determinism.rs`) as a test target of their own, so that
//! CI runs them with `parallel` alone and with `faer` alone without compiling the whole suite
//! for each feature set (`cargo test -p relevance --no-default-features --features parallel
//! --test determinism`). The suite runs them too, with the features it is built with.

// the suite's helpers, of which these tests use a few
#![allow(dead_code)]

#[path = "suite/common/mod.rs"]
mod common;
#[path = "suite/determinism.rs"]
mod determinism;
