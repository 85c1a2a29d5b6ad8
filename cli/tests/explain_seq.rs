//! Runs `relevance explain-seq` on the bundled sequence model (`models/motifs.onnx`) and its
//! test sequences (`data/motifs.fa`): chunks, resuming, shards whose files are the
//! unsharded run's byte for byte, the merged tfmodisco-lite files, and its errors.

use relevance::genomics::io::{one_hot_batch, read_fasta};
use relevance::genomics::{deep_lift_shap_shuffled, ShuffleOptions};
use relevance::io::{load_onnx, read_npy};
use relevance::Target;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relevance"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The files of a directory (recursively), relative path → bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The `.npy` member `name` of an `.npz` written by relevance (stored entries).
fn npz_member(bytes: &[u8], name: &str) -> ndarray::ArrayD<f32> {
    let needle = format!("{name}.npy");
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("the member is there");
    // local header: name at offset 30; extra length at 28
    let header = at - 30;
    let extra = u16::from_le_bytes([bytes[header + 28], bytes[header + 29]]) as usize;
    let size = u32::from_le_bytes(bytes[header + 18..header + 22].try_into().unwrap()) as usize;
    let data = at + needle.len() + extra;
    read_npy::<f32>(&bytes[data..data + size]).unwrap()
}

#[test]
fn chunks_resume_and_shards_equal_the_whole_run_byte_for_byte() {
    let model = "models/motifs.onnx";
    let fasta = "data/motifs.fa";
    let whole = scratch("seq_whole");
    let common = [
        "--fasta",
        fasta,
        "--references",
        "5",
        "--chunk",
        "6",
        "--batch",
        "4",
        "--seed",
        "3",
    ];
    let out = run(&[
        &["explain-seq", model][..],
        &common,
        &["--out", whole.to_str().unwrap()],
    ]
    .concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("20 sequences of 200 bp in 4 chunks of 6"), "{err}");
    assert!(err.contains("ohe.npz") && err.contains("shap.npz"), "{err}");
    let first = files(&whole);
    let names: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "attributions.npz",
        "ohe.npz",
        "shap.npz",
        "summary.bed",
        "chunks/chunk-000000.npz",
        "chunks/chunk-000003.bed",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert_eq!(names.len(), 4 + 8, "{names:?}");

    // the numbers are the library's on the same references
    let net = load_onnx::<f32>(root().join(model)).unwrap();
    let records = read_fasta(root().join(fasta)).unwrap();
    let x = one_hot_batch::<f32>(&records).unwrap().into_dyn();
    let want = deep_lift_shap_shuffled(&net, &x, &Target::Class(0), ShuffleOptions::new(5, 3)).unwrap();
    let shap = std::fs::read(whole.join("shap.npz")).unwrap();
    assert_eq!(npz_member(&shap, "arr_0"), want.hypothetical);
    let ohe = std::fs::read(whole.join("ohe.npz")).unwrap();
    assert_eq!(npz_member(&ohe, "arr_0"), x);
    let all = std::fs::read(whole.join("attributions.npz")).unwrap();
    assert_eq!(npz_member(&all, "attributions"), want.attributions);
    let gap = npz_member(&all, "gap");
    assert!(gap.iter().all(|g| g.abs() < 1e-3), "gaps {gap}");
    let summary = std::fs::read_to_string(whole.join("summary.bed")).unwrap();
    assert_eq!(summary.lines().count(), 20);
    assert!(summary.starts_with("test0"), "{summary}");

    // a rerun finds every chunk done and changes nothing
    let again = run(&[
        &["explain-seq", model][..],
        &common,
        &["--out", whole.to_str().unwrap()],
    ]
    .concat());
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("0 (0 sequences) to do"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(files(&whole), first);

    // two shards into another directory: the same files, byte for byte
    let sharded = scratch("seq_sharded");
    let s0 = run(&[
        &["explain-seq", model][..],
        &common,
        &["--out", sharded.to_str().unwrap(), "--shard", "0/2"],
    ]
    .concat());
    assert!(s0.status.success(), "{}", text(&s0.stderr));
    assert!(
        text(&s0.stderr).contains("chunks of other shards still missing"),
        "{}",
        text(&s0.stderr)
    );
    assert!(!sharded.join("shap.npz").exists());
    let s1 = run(&[
        &["explain-seq", model][..],
        &common,
        &["--out", sharded.to_str().unwrap(), "--shard", "1/2"],
    ]
    .concat());
    assert!(s1.status.success(), "{}", text(&s1.stderr));
    assert_eq!(files(&sharded), first);

    // a chunk lost (a killed job) is redone alone, to the same bytes
    std::fs::remove_file(sharded.join("chunks/chunk-000002.npz")).unwrap();
    let resumed = run(&[
        &["explain-seq", model][..],
        &common,
        &["--out", sharded.to_str().unwrap()],
    ]
    .concat());
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert!(
        text(&resumed.stderr).contains("1 (6 sequences) to do, 3 done before"),
        "{}",
        text(&resumed.stderr)
    );
    assert_eq!(files(&sharded), first);
}

#[test]
fn explain_seq_errors_say_what_is_wrong() {
    let dir = scratch("seq_errors");
    let short = dir.join("short.fa");
    std::fs::write(&short, ">a\nACGT\n").unwrap();
    let out = run(&[
        "explain-seq",
        "models/motifs.onnx",
        "--fasta",
        short.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("sequence a (record 1) has 4 bases; the model takes 200"),
        "{}",
        text(&out.stderr)
    );
    let bad = dir.join("bad.fa");
    std::fs::write(&bad, format!(">b\n{}\n", "ACGU".repeat(50))).unwrap();
    let out = run(&[
        "explain-seq",
        "models/motifs.onnx",
        "--fasta",
        bad.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains('U') && text(&out.stderr).contains('b'),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "explain-seq",
        "models/motifs.onnx",
        "--fasta",
        "data/motifs.fa",
        "--shard",
        "2/2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("need 0 ≤ I < N"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "explain-seq",
        "models/digits.onnx",
        "--fasta",
        "data/motifs.fa",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("one-hot DNA [4, L]"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["explain-seq", "models/motifs.onnx"]);
    assert_eq!(out.status.code(), Some(2));
}
