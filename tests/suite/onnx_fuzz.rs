//! Fuzzing the ONNX graph importer on the corpus (`tests/fixtures/onnx/`): real exporters'
//! graphs (residual adds, concatenations, SE gates, shape arithmetic that is folded at load
//! time, weights in external data files) mutated three ways:
//!
//! - **structure-aware**: two protobuf strings of the same length swap places (the framing
//!   stays valid, so the mutation reaches the importer, not the decoder): node names, tensor
//!   names (dangling inputs, cycles, a weight read as data), operator types (a `Conv` becomes
//!   a `Gemm`, an `Add` a `Div`), attribute names, external-data keys;
//! - **size-aware**: the digits of a string made of digits (external data `offset` and
//!   `length`) become nines, declaring up to 10^k − 1 bytes: refused before any allocation;
//! - **bytes**: bit flips (aimed at the graph part of the file or anywhere) and truncations,
//!   of the model and of its external data file.
//!
//! Loading may succeed (many mutations only rename or change a weight) or fail with an
//! error; it must never panic, and a network that loads must run and explain, or fail with
//! a typed error of an expected kind. Each target counts what happened
//! (`common::fuzz::Tally`, printed) and asserts that a share of its mutants loads, so that
//! the mutations reach the importer's later stages and the networks' code.

use crate::common::fuzz::{self, Tally};
use proptest::prelude::*;
use relevance::io::{from_onnx_with, load_onnx_with, OnnxOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Corpus files with what their graphs exercise.
const FILES: &[(&str, &[usize])] = &[
    ("exported/resnet_dynamo_external.onnx", &[3, 48, 48]), // external data, residual Add
    ("exported/squeezenet_torchscript.onnx", &[3, 48, 48]), // Concat, ceil_mode
    ("exported/mobilenet_v3_dynamo.onnx", &[3, 48, 48]),    // SE Mul, HardSwish, grouped conv
    ("exported/shufflenet_v2_torchscript.onnx", &[3, 48, 48]), // Slice, Reshape/Transpose of data
    ("exported/densenet_dynamo_dynamic.onnx", &[3, 32, 32]), // symbolic batch, BN kept as layer
    ("exported/efficientnet_torchscript_static.onnx", &[3, 32, 32]), // shape folding, Sigmoid
    ("real/rapidocr_ch_ppocr_mobile_v2.0_cls_infer.onnx", &[3, 48, 192]), // Paddle: Constant weights
    ("convtranspose/torchscript.onnx", &[1, 4, 4]), // ConvTranspose: groups, output_padding, BN after it
];

/// The tiny transformers (`tests/fixtures/transformers/`), both exporters: token ids
/// through Gather, LayerNormalization, Softmax inside the network, MatMul of two computed
/// tensors, shape arithmetic on merged batch axes, GELU patterns.
const TRANSFORMER_FILES: &[(&str, &[usize])] = &[
    ("../transformers/tiny_bert.f32.onnx", &[6]),
    ("../transformers/tiny_bert.dynamo.f32.onnx", &[6]),
    ("../transformers/tiny_vit.f32.onnx", &[3, 8, 8]),
    ("../transformers/tiny_vit.dynamo.f32.onnx", &[3, 8, 8]),
];

fn fixture(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The protobuf strings of a file: runs of name characters preceded by their length (one
/// byte), as `(start, len)`.
fn strings(data: &[u8]) -> Vec<(usize, usize)> {
    let name = |b: u8| b.is_ascii_alphanumeric() || b"_./:-".contains(&b);
    let mut out = Vec::new();
    let mut i = 1;
    while i < data.len() {
        let len = data[i - 1] as usize;
        if (2..128).contains(&len) && i + len <= data.len() && data[i..i + len].iter().all(|&b| name(b)) {
            out.push((i, len));
            i += len + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Swaps the strings `a` and `b` (indices into `strings`) if they have the same length.
fn swap_strings(data: &mut [u8], found: &[(usize, usize)], a: usize, b: usize) {
    let ((sa, la), (sb, lb)) = (found[a % found.len()], found[b % found.len()]);
    if la == lb && sa != sb {
        let tmp = data[sa..sa + la].to_vec();
        data.copy_within(sb..sb + lb, sa);
        data[sb..sb + lb].copy_from_slice(&tmp);
    }
}

fn flip(data: &mut Vec<u8>, flips: &[(usize, u8)], within: usize, cut: Option<usize>) {
    let n = within.min(data.len()).max(1);
    for &(pos, bit) in flips {
        data[pos % n] ^= 1 << bit;
    }
    if let Some(c) = cut {
        data.truncate(c % (data.len() + 1));
    }
}

fn fuzz_cases() -> u32 {
    std::env::var("RELEVANCE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
}

/// What a loaded mutant may fail with when it runs: a flipped exponent bit can make a
/// weight huge, and its products overflow f32.
const LOADED_MAY_FAIL_WITH: &[&str] = &["NonFiniteResult"];

fn try_bytes(tally: &mut Tally, data: &[u8], input_shape: &[usize]) {
    let options = OnnxOptions::default().with_input_shape(input_shape);
    tally.load(from_onnx_with::<f32>(data, &options).map(|m| m.network));
}

/// Writes a model and its (possibly mutated) external data file to a fresh folder and loads
/// it from there.
fn try_files(tally: &mut Tally, model: &[u8], data_name: &str, data: &[u8], input_shape: &[usize]) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "relevance-onnx-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.onnx"), model).unwrap();
    std::fs::write(dir.join(data_name), data).unwrap();
    let options = OnnxOptions::default().with_input_shape(input_shape);
    tally.load(load_onnx_with::<f32>(dir.join("model.onnx"), &options).map(|m| m.network));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One structure-aware case: string swaps, external-data sizes inflated, bit flips in the
/// graph part.
fn structure_case(
    tally: &mut Tally,
    (rel, shape): (&str, &[usize]),
    swaps: &[(usize, usize)],
    nines: Option<usize>,
    flips: &[(usize, u8)],
) {
    let mut data = fixture(rel);
    let found = strings(&data);
    assert!(found.len() >= 2, "{rel}: no strings to swap");
    // aim at strings of one length class so that swaps happen
    for &(a, b) in swaps {
        let (_, la) = found[a % found.len()];
        let same: Vec<usize> = (0..found.len()).filter(|&i| found[i].1 == la).collect();
        swap_strings(&mut data, &found, a, same[b % same.len()]);
    }
    if let Some(k) = nines {
        let digits: Vec<&(usize, usize)> = found
            .iter()
            .filter(|(s, l)| data[*s..*s + *l].iter().all(u8::is_ascii_digit))
            .collect();
        if let Some(&&(s, l)) = digits.get(k % digits.len().max(1)) {
            data[s..s + l].fill(b'9');
        }
    }
    // the graph (nodes, attributes) comes before the weights in exporters' files
    flip(&mut data, flips, 8192, None);
    if rel.ends_with("_external.onnx") {
        let ext = fixture(&format!("{rel}.data"));
        let name = rel.rsplit('/').next().unwrap().to_string() + ".data";
        try_files(tally, &data, &name, &ext, shape);
    } else {
        try_bytes(tally, &data, shape);
    }
}

// RELEVANCE_FUZZ_CASES=20000 for a long campaign. The minimum shares of mutants that load
// are about a third of the measured ones (structure-aware 20 %, bytes 25 %): four standard
// deviations or more below them at 120 cases.

#[test]
fn fuzz_onnx_graphs_structure_aware() {
    let strategy = (
        0..FILES.len(),
        proptest::collection::vec((any::<usize>(), any::<usize>()), 1..4),
        proptest::option::of(any::<usize>()),
        proptest::collection::vec((any::<usize>(), 0u8..8), 0..3),
    );
    let t = fuzz::run(fuzz_cases(), strategy, |(file, swaps, nines, flips), t| {
        structure_case(t, FILES[file], &swaps, nines, &flips);
    });
    assert_eq!(t.tried, fuzz_cases() as usize);
    t.check("structure-aware ONNX mutations", 0.05, LOADED_MAY_FAIL_WITH);
}

#[test]
fn fuzz_onnx_graphs_bytes() {
    let strategy = (
        0..FILES.len(),
        proptest::collection::vec((any::<usize>(), 0u8..8), 0..8),
        proptest::option::of(any::<usize>()),
        proptest::collection::vec((any::<usize>(), 0u8..8), 0..4),
        proptest::option::of(any::<usize>()),
        any::<bool>(),
    );
    let t = fuzz::run(
        fuzz_cases(),
        strategy,
        |(file, flips, cut, data_flips, data_cut, head), t| {
            let (rel, shape) = FILES[file];
            let mut data = fixture(rel);
            let within = if head { 4096 } else { usize::MAX };
            flip(&mut data, &flips, within, cut);
            if rel.ends_with("_external.onnx") {
                let mut ext = fixture(&format!("{rel}.data"));
                flip(&mut ext, &data_flips, usize::MAX, data_cut);
                let name = rel.rsplit('/').next().unwrap().to_string() + ".data";
                try_files(t, &data, &name, &ext, shape);
            } else {
                try_bytes(t, &data, shape);
            }
        },
    );
    assert_eq!(t.tried, fuzz_cases() as usize);
    t.check("byte-level ONNX mutations", 0.08, LOADED_MAY_FAIL_WITH);
}

/// The structure-aware mutations reach the importer: the unmutated files load, and the
/// string scanner finds the operator types and the external data keys.
#[test]
fn fuzz_targets_are_meaningful() {
    for (rel, shape) in FILES {
        let data = fixture(rel);
        let found = strings(&data);
        let text: Vec<&[u8]> = found.iter().map(|&(s, l)| &data[s..s + l]).collect();
        assert!(text.iter().any(|t| *t == b"Conv"), "{rel}: no Conv string found");
        if rel.ends_with("_external.onnx") {
            assert!(text.iter().any(|t| *t == b"location") && text.iter().any(|t| *t == b"length"));
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/onnx")
                .join(rel);
            load_onnx_with::<f32>(dir, &OnnxOptions::default().with_input_shape(shape)).unwrap();
        } else {
            from_onnx_with::<f32>(&data, &OnnxOptions::default().with_input_shape(shape)).unwrap();
        }
    }
}

/// Cases the long fuzzing campaigns found (each panicked before its fix).
#[test]
fn fuzz_regressions() {
    // a Gather index renamed into a Concat's axis: Concat of rank-0 constants (ndarray
    // asserted inside the folding of Concat)
    let mut t = Tally::default();
    structure_case(
        &mut t,
        FILES[3],
        &[(481153989409770831, 12855060115162209537)],
        None,
        &[],
    );
    assert_eq!(t.tried, 1);
}

/// Twice the corpus's cases (the files are tiny: 240 cases take about 0.2 s). About 10 %
/// of the mutants load (measured on 5000 of each kind); the minimum share of 2 % is more
/// than four standard deviations below that at 240 cases.
fn transformer_cases() -> u32 {
    fuzz_cases().saturating_mul(2)
}

#[test]
fn fuzz_onnx_transformers_structure_aware() {
    let strategy = (
        0..TRANSFORMER_FILES.len(),
        proptest::collection::vec((any::<usize>(), any::<usize>()), 1..4),
        proptest::collection::vec((any::<usize>(), 0u8..8), 0..3),
    );
    let t = fuzz::run(transformer_cases(), strategy, |(file, swaps, flips), t| {
        structure_case(t, TRANSFORMER_FILES[file], &swaps, None, &flips);
    });
    assert_eq!(t.tried, transformer_cases() as usize);
    t.check(
        "structure-aware transformer mutations",
        0.02,
        LOADED_MAY_FAIL_WITH,
    );
}

#[test]
fn fuzz_onnx_transformers_bytes() {
    let strategy = (
        0..TRANSFORMER_FILES.len(),
        proptest::collection::vec((any::<usize>(), 0u8..8), 0..8),
        proptest::option::of(any::<usize>()),
        any::<bool>(),
    );
    let t = fuzz::run(transformer_cases(), strategy, |(file, flips, cut, head), t| {
        let (rel, shape) = TRANSFORMER_FILES[file];
        let mut data = fixture(rel);
        flip(&mut data, &flips, if head { 4096 } else { usize::MAX }, cut);
        try_bytes(t, &data, shape);
    });
    assert_eq!(t.tried, transformer_cases() as usize);
    t.check("byte-level transformer mutations", 0.02, LOADED_MAY_FAIL_WITH);
}

/// The transformer files load as they are, their strings include the operators the
/// mutations aim at, and the token models run on the ids the fuzz tally gives them.
#[test]
fn fuzz_transformer_targets_are_meaningful() {
    for (rel, shape) in TRANSFORMER_FILES {
        let data = fixture(rel);
        let found = strings(&data);
        let text: Vec<&[u8]> = found.iter().map(|&(s, l)| &data[s..s + l]).collect();
        for op in [&b"MatMul"[..], b"Softmax"] {
            assert!(
                text.contains(&op),
                "{rel}: no {} string found",
                String::from_utf8_lossy(op)
            );
        }
        let net = from_onnx_with::<f32>(&data, &OnnxOptions::default().with_input_shape(shape)).unwrap();
        let mut t = Tally::default();
        t.load(Ok(net.network));
        assert_eq!(t.explained, 1, "{rel}: {t}");
    }
}
