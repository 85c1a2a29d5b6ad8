//! The library's `tokenizers` feature (which the command-line tool turns on, so its tests
//! run here): `relevance::io::Tokenizer` gives the ids, tokens and offsets Hugging Face's
//! Python `tokenizers` gives for the same `tokenizer.json` (`tools/gen_tokenizer_fixture.py`),
//! refuses bad files and ids with typed errors, and its encodings explain the tiny BERT of the
//! transformer fixtures token by token.

use relevance::io::{load_onnx, Tokenizer};
use relevance::{AttnLrp, Error, Options, Seed, Target};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("tests/fixtures")
}

fn tokenizer() -> Tokenizer {
    Tokenizer::load(fixtures().join("text/tiny_bert_tokenizer.json")).unwrap()
}

/// Python gives character offsets; the Rust crate byte offsets into the UTF-8 text.
fn byte_offset(text: &str, chars: u64) -> usize {
    text.char_indices()
        .nth(chars as usize)
        .map_or(text.len(), |(b, _)| b)
}

#[test]
fn encodes_as_hugging_face_python_does() {
    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), 20);
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("text/tiny_bert_encodings.json")).unwrap(),
    )
    .unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let got = tok.encode(text).unwrap();
        let ids: Vec<i64> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let tokens: Vec<&str> = case["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let offsets: Vec<(usize, usize)> = case["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let o = o.as_array().unwrap();
                (
                    byte_offset(text, o[0].as_u64().unwrap()),
                    byte_offset(text, o[1].as_u64().unwrap()),
                )
            })
            .collect();
        assert_eq!(got.ids(), ids, "{text:?}");
        assert_eq!(got.tokens(), tokens, "{text:?}");
        assert_eq!(got.offsets(), offsets, "{text:?}");
        assert_eq!(tok.tokens_of(&ids).unwrap(), tokens, "{text:?}");
    }
    let bare = tok.encode_with("films", false).unwrap();
    assert_eq!(bare.tokens(), ["film", "##s"]);
    assert!(tok.encode_with("", false).unwrap().is_empty());
}

#[test]
fn bad_files_and_ids_are_typed_errors() {
    let path = fixtures().join("text/tiny_bert_tokenizer.json");
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        let e = Tokenizer::from_bytes(&bytes[..cut], "cut").unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "{cut}: {e}");
        assert!(e.to_string().contains("tokenizer cut"), "{e}");
    }
    let e = Tokenizer::from_bytes(br#"{"model": {"type": "WordPiece", "vocab": 3}}"#, "odd").unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e}");
    let e = Tokenizer::load(fixtures().join("text/no_such_tokenizer.json")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let tok = tokenizer();
    match tok.tokens_of(&[2, 20, 3]).unwrap_err() {
        Error::TokenId { position, value, .. } => assert_eq!((position, value), (vec![1], 20.0)),
        e => panic!("{e}"),
    }
    assert!(matches!(tok.tokens_of(&[-1]), Err(Error::TokenId { .. })));
    let empty = tok.encode_with("", false).unwrap();
    assert!(matches!(empty.input::<f32>(), Err(Error::EmptyBatch)));
    let e = tok.encode("movie").unwrap().token_relevance(&[1.0]).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
}

/// A text through the tokenizer into the tiny BERT (six positions), explained with AttnLRP:
/// the relevance per token is the relevance of the same ids given directly, and the text
/// heatmap's CSV carries the tokenizer's tokens.
#[test]
fn explains_a_text_token_by_token() {
    let tok = tokenizer();
    let text = tok.encode("The movie was great").unwrap();
    assert_eq!(text.len(), 6);
    let net = load_onnx::<f64>(fixtures().join("transformers/tiny_bert.onnx")).unwrap();
    let x = text.input::<f64>().unwrap();
    let ids = ndarray::Array2::from_shape_vec((1, 6), vec![2.0, 5.0, 6.0, 7.0, 8.0, 3.0])
        .unwrap()
        .into_dyn();
    assert_eq!(x, ids);
    let opts = Options {
        seed: Seed::Logit,
        ..Options::default()
    };
    let rule = AttnLrp::new(0.0).unwrap();
    let r = net.attribute_with(&x, &Target::Class(1), &rule, opts).unwrap();
    let direct = net.attribute_with(&ids, &Target::Class(1), &rule, opts).unwrap();
    assert_eq!(r.relevance, direct.relevance);
    let per_token: Vec<f64> = r.relevance.iter().copied().collect();
    assert_eq!(per_token.len(), 6);
    assert!(per_token.iter().any(|v| v.abs() > 1e-6));
    let heat = text.token_relevance(&per_token).unwrap();
    let csv = heat.csv();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 6);
    for (k, ((row, token), (id, rel))) in rows
        .iter()
        .zip(text.tokens())
        .zip(text.ids().iter().zip(&per_token))
        .enumerate()
    {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[0], k.to_string());
        assert_eq!(cells[1], token);
        assert_eq!(cells[2], id.to_string());
        let v: f64 = cells[3].parse().unwrap();
        assert!((v - rel).abs() <= 1e-9 * rel.abs().max(1.0), "{row}");
    }
}

/// The command line with `--tokenizer`: a `.txt` input is tokenized as Python's tokenizer does
/// and explained; the token table shows the tokenizer's tokens and equals the library's
/// relevance of the same ids; ids the model cannot take, a tokenizer for an image model and a
/// text of the wrong length are usage errors.
#[test]
fn cli_explains_a_text_file_with_its_tokenizer() {
    let root = fixtures().parent().unwrap().parent().unwrap().to_path_buf();
    let dir = std::env::temp_dir().join(format!("relevance-tokenizer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let review = dir.join("review.txt");
    std::fs::write(&review, "The movie was great\n").unwrap();
    let out = dir.join("out");
    let tokenizer = fixtures().join("text/tiny_bert_tokenizer.json");
    let model = fixtures().join("transformers/tiny_bert.f32.onnx");
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_relevance"))
            .args(args)
            .current_dir(&root)
            .output()
            .unwrap()
    };
    let o = run(&[
        "explain".as_ref(),
        model.as_os_str(),
        review.as_os_str(),
        "--tokenizer".as_ref(),
        tokenizer.as_os_str(),
        "--rule".as_ref(),
        "attn-lrp=0".as_ref(),
        "--target".as_ref(),
        "1".as_ref(),
        "--color".as_ref(),
        "never".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("movie("), "{stdout}");
    let csv = std::fs::read_to_string(out.join("review_attn-lrp-epsilon0_c1_tokens.csv")).unwrap();
    let net = load_onnx::<f32>(&model).unwrap();
    let ids = ndarray::Array2::from_shape_vec((1, 6), vec![2f32, 5.0, 6.0, 7.0, 8.0, 3.0])
        .unwrap()
        .into_dyn();
    let want = net
        .attribute(&ids, &Target::Class(1), &AttnLrp::new(0.0).unwrap())
        .unwrap()
        .relevance;
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let tokens: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(tokens, ["[CLS]", "the", "movie", "was", "great", "[SEP]"]);
    for (t, row) in rows.iter().enumerate() {
        let r: f32 = row[3].parse().unwrap();
        assert!((r - want[[0, t]]).abs() <= 1e-5 * scale, "{row:?}");
    }
    // a text of another length than the model's six positions
    let long = dir.join("long.txt");
    std::fs::write(&long, "the movie was not a good film").unwrap();
    let o = run(&[
        "explain".as_ref(),
        model.as_os_str(),
        long.as_os_str(),
        "--tokenizer".as_ref(),
        tokenizer.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("9 tokens") && stderr.contains("--input-shape 9"),
        "{stderr}"
    );
    // a tokenizer for a model without token ids, and a broken tokenizer file
    let digits = root.join("models/digits.onnx");
    let image = dir.join("digit.npy");
    relevance::io::save_npy(&image, &ndarray::ArrayD::<f32>::zeros(vec![1, 1, 28, 28])).unwrap();
    let o = run(&[
        "explain".as_ref(),
        digits.as_os_str(),
        image.as_os_str(),
        "--tokenizer".as_ref(),
        tokenizer.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("takes no token ids"), "{stderr}");
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\"model\": ").unwrap();
    let o = run(&[
        "explain".as_ref(),
        model.as_os_str(),
        review.as_os_str(),
        "--tokenizer".as_ref(),
        broken.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("--tokenizer") && stderr.contains("broken.json"),
        "{stderr}"
    );
}
