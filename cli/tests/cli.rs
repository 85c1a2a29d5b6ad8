//! Runs the built `relevance` binary on the bundled digits model and real test digits.

use ndarray::Axis;
use relevance::heatmap::RgbImage;
use relevance::image::{load_image, Preprocess};
use relevance::io::Digits;
use relevance::{Composite, Target};
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the first test digit of `class` as a PNG (and returns its path).
fn digit_png(dir: &Path, class: u8) -> PathBuf {
    let digits = Digits::load(root().join("data/digits_test.bin")).unwrap();
    let index = digits.labels().iter().position(|&l| l == class).unwrap();
    let x = digits.images::<f32>(&[index]).unwrap();
    let image = x.index_axis(Axis(0), 0);
    let path = dir.join(format!("digit{class}.png"));
    RgbImage::from_array(&image, Some((0.0, 1.0)))
        .unwrap()
        .save_png(&path)
        .unwrap();
    path
}

fn summary_rows(dir: &Path) -> Vec<Vec<String>> {
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "file,predicted,predicted_label,score,target,target_label,method,total,gap"
    );
    lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn explains_digits_from_png_and_writes_everything() {
    let dir = scratch("explain_png");
    let (seven, two) = (digit_png(&dir, 7), digit_png(&dir, 2));
    let out = dir.join("out");
    let o = run(&[
        "explain",
        "models/digits.onnx",
        seven.to_str().unwrap(),
        two.to_str().unwrap(),
        "--composite",
        "epsilon-gamma-box",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let rows = summary_rows(&out);
    assert_eq!(rows.len(), 2);
    // what the library computes on the same files: the CLI's numbers and files must be it
    let net = relevance::io::load_onnx::<f32>(root().join("models/digits.onnx")).unwrap();
    let pre = Preprocess::none();
    let (low, high) = pre.bounds::<f32>(&[1, 28, 28]).unwrap();
    let rules = Composite::epsilon_gamma_box(low, high).unwrap();
    for (row, (png, class)) in rows.iter().zip([(&seven, 7usize), (&two, 2)]) {
        assert_eq!(row[1], class.to_string(), "predicted class in {row:?}");
        assert_eq!(row[4], class.to_string(), "target in {row:?}");
        assert_eq!(row[6], "epsilon-gamma-box");
        let x = load_image::<f32>(png, &[1, 28, 28], &pre)
            .unwrap()
            .input
            .insert_axis(Axis(0));
        let want = net.attribute(&x, &Target::Class(class), &rules).unwrap();
        let (total, gap): (f32, f32) = (row[7].parse().unwrap(), row[8].parse().unwrap());
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
        assert!(
            close(total, want.total[0]),
            "total {total}, the library's {}",
            want.total[0]
        );
        assert!(
            close(gap, want.delta[0]),
            "gap {gap}, the library's {}",
            want.delta[0]
        );
        let stem = format!("digit{class}_epsilon-gamma-box_c{class}");
        // the raw relevance is the library's, and sums to total − gap
        let r = relevance::io::load_npy::<f32>(out.join(format!("{stem}.npy"))).unwrap();
        assert_eq!(r.shape(), &[1, 28, 28]);
        let ours = want.relevance.index_axis(Axis(0), 0);
        let scale = ours.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            r.iter()
                .zip(ours.iter())
                .all(|(a, b)| (a - b).abs() <= 1e-5 * scale),
            "{stem}.npy is not the library's relevance"
        );
        assert!(
            close(r.sum(), total - gap),
            "Σ relevance {} vs total − gap {}",
            r.sum(),
            total - gap
        );
        // the images are PNGs of the input's shape (upscaled by a whole factor), not blank
        for suffix in ["_heatmap.png", "_overlay.png"] {
            let (w, h, data) = decode_png(&out.join(format!("{stem}{suffix}")));
            assert!(w == h && w >= 28 && w % 28 == 0, "{stem}{suffix}: {w} × {h}");
            assert!(data.iter().any(|&v| v != data[0]), "{stem}{suffix} is one colour");
        }
    }
    let stdout = text(&o.stdout);
    assert!(stdout.contains("predicted class 7"), "{stdout}");
}

/// Width and height of an image file, and its pixels as RGB bytes (`[3, H, W]` order).
fn decode_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let img = load_image::<f32>(path, &[3, 28, 28], &Preprocess::none())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (w, h) = img.original;
    (
        w,
        h,
        img.pixels.iter().map(|v| (v * 255.0).round() as u8).collect(),
    )
}

#[test]
fn top_k_labels_and_deeplift() {
    let dir = scratch("topk");
    let seven = digit_png(&dir, 7);
    let labels = dir.join("labels.txt");
    std::fs::write(
        &labels,
        "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = run(&[
        "explain",
        "models/digits.onnx",
        seven.to_str().unwrap(),
        "--rule",
        "deeplift",
        "--target",
        "top2",
        "--labels",
        labels.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let rows = summary_rows(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1], "7");
    assert_eq!(rows[0][2], "seven");
    assert_eq!(rows[0][4], "7");
    assert_ne!(rows[1][4], "7");
    for row in &rows {
        // DeepLIFT conserves: f(x) − f(0) − Σ attribution ≈ 0
        let gap: f32 = row[8].parse().unwrap();
        assert!(gap.abs() < 1e-3, "{row:?}");
    }
    assert!(text(&o.stdout).contains("7 (seven)"));
}

#[test]
fn uint8_npy_is_scaled_with_a_note() {
    let dir = scratch("uint8");
    let digits = Digits::load(root().join("data/digits_test.bin")).unwrap();
    let index = digits.labels().iter().position(|&l| l == 3).unwrap();
    let x = digits
        .images::<f32>(&[index])
        .unwrap()
        .index_axis_move(Axis(0), 0);
    // a uint8 .npy written by hand: header then the raw bytes
    let mut padded = "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 28, 28), }".to_string();
    while (10 + padded.len() + 1) % 64 != 0 {
        padded.push(' ');
    }
    padded.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    bytes.extend_from_slice(padded.as_bytes());
    bytes.extend(x.iter().map(|&v| (v * 255.0).round() as u8));
    let npy = dir.join("three.npy");
    std::fs::write(&npy, bytes).unwrap();
    let out = dir.join("out");
    let o = run(&[
        "explain",
        "models/digits.onnx",
        npy.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("uint8 array taken as pixels"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(summary_rows(&out)[0][1], "3");
    // the same digit as float32 in [0, 1]: taken as it is, the same prediction, an overlay too
    let float = dir.join("three_f32.npy");
    relevance::io::save_npy(&float, &x.to_owned()).unwrap();
    let out = dir.join("out_f32");
    let o = run(&[
        "explain",
        "models/digits.onnx",
        float.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert!(!text(&o.stdout).contains("uint8 array taken"));
    assert_eq!(summary_rows(&out)[0][1], "3");
    assert!(out.join("three_f32_epsilon-plus_c3_overlay.png").is_file());
}

#[test]
fn rules_lists_every_preset() {
    let o = run(&["rules"]);
    assert!(o.status.success());
    let s = text(&o.stdout);
    for name in [
        "epsilon-plus",
        "epsilon-plus-flat",
        "epsilon-alpha2-beta1",
        "epsilon-alpha2-beta1-flat",
        "epsilon-gamma-box",
        "layered",
        "lrp0",
        "epsilon[=E]",
        "gamma[=G]",
        "deeplift",
    ] {
        assert!(s.contains(name), "{name} missing from\n{s}");
    }
}

#[test]
fn inspect_lists_nodes_and_rules() {
    let o = run(&["inspect", "models/digits.onnx"]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("total parameters"), "{s}");
    assert!(s.contains("Convolution"), "{s}");
    assert!(s.contains("LrpZBox"), "{s}");
    let o = run(&[
        "inspect",
        "models/digits.safetensors",
        "--arch",
        "models/digits.json",
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
}

#[test]
fn usage_errors_exit_2_with_a_sentence() {
    for (args, expect) in [
        (
            vec!["explain", "models/digits.onnx", "x.png", "--rule", "nope"],
            "unknown rule",
        ),
        (
            vec!["explain", "models/digits.onnx", "x.png", "--rule", "lrp0=3"],
            "takes no parameter",
        ),
        (
            vec!["explain", "models/digits.onnx", "x.png", "--rule", "epsilon=abc"],
            "finite number",
        ),
        (
            vec!["explain", "models/digits.onnx", "x.png", "--preprocess", "fancy"],
            "unknown preset",
        ),
        (
            vec!["explain", "models/digits.onnx", "x.png", "--target", "best"],
            "topK",
        ),
        (vec!["explain", "models/digits.onnx"], "INPUT"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let o = run(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains(" { "), "{args:?} printed a debug struct: {err}");
    }
    // a target out of range is found once the model is loaded: still a usage error
    let dir = scratch("target_range");
    let seven = digit_png(&dir, 7);
    let o = run(&[
        "explain",
        "models/digits.onnx",
        seven.to_str().unwrap(),
        "--target",
        "12",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("10 classes"), "{}", text(&o.stderr));
}

#[test]
fn failures_exit_1_naming_the_file() {
    let o = run(&["explain", "models/digits.onnx", "no/such/digit.png"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no/such/digit.png"),
        "{}",
        text(&o.stderr)
    );
    let o = run(&["inspect", "no/such/model.onnx"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no/such/model.onnx"),
        "{}",
        text(&o.stderr)
    );
    // not an ONNX file
    let o = run(&["inspect", "--input-shape", "1,28,28", "README.md"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn help_lists_the_choices() {
    let o = run(&["explain", "--help"]);
    assert!(o.status.success());
    let s = text(&o.stdout);
    for word in [
        "epsilon-gamma-box",
        "layered",
        "imagenet",
        "topK",
        "deeplift",
        "token ids",
        "--tokenizer",
        "--color",
    ] {
        assert!(s.contains(word), "{word} missing from\n{s}");
    }
}

#[test]
fn jpeg_of_another_size_is_resized_and_cropped() {
    let dir = scratch("jpeg");
    // the first test digit 7 at twice the size with 7 black rows above and below (56 × 70),
    // slightly tinted: written by tools/gen_image_fixtures.py
    let path = dir.join("seven.jpg");
    std::fs::copy(root().join("cli/tests/data/seven_56x70.jpg"), &path).unwrap();
    let out = dir.join("out");
    let o = run(&[
        "explain",
        "models/digits.onnx",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("resized from 56×70 to 28×35 and centre-cropped to 28×28"),
        "{stdout}"
    );
    assert_eq!(summary_rows(&out)[0][1], "7", "{stdout}");
    assert!(out.join("seven_epsilon-plus_c7_overlay.png").is_file());
}

/// The README's command-line example: the command it shows (read from README.md), run on
/// the committed image, prints the lines the README shows under it, digit for digit (the
/// score, the total, Σ relevance and the gap included; the README cuts the list of written
/// files with "...").
#[test]
fn readme_command_prints_what_the_readme_shows() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut lines = readme
        .lines()
        .skip_while(|l| !l.starts_with("relevance explain "));
    let command = lines
        .next()
        .expect("the README shows a `relevance explain` command");
    let shown: Vec<&str> = lines
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').strip_prefix(' ').unwrap_or(l))
        .collect();
    assert_eq!(shown.len(), 2, "the README shows two lines of output: {shown:?}");
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let at = args
        .iter()
        .position(|a| *a == "--out")
        .expect("--out in the README's command");
    let readme_out = args[at + 1];
    let out = scratch("readme").join("out");
    let mut ours = args.clone();
    ours[at + 1] = out.to_str().unwrap();
    let o = run(&ours);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let stdout = text(&o.stdout).replace(out.to_str().unwrap(), readme_out);
    let printed: Vec<&str> = stdout.lines().collect();
    for (k, want) in shown.iter().enumerate() {
        let got = printed.get(k).copied().unwrap_or("");
        match want.strip_suffix("...") {
            Some(prefix) => assert!(
                got.starts_with(prefix),
                "line {k}: the README shows\n{want}\nthe CLI prints\n{got}"
            ),
            None => assert_eq!(got, *want, "line {k}"),
        }
    }
    let rows = summary_rows(&out);
    assert_eq!(rows[0][0], "cli/tests/data/seven.png");
    assert_eq!(rows[0][1], "7");
}

#[test]
fn rgb_model_with_imagenet_preprocessing_and_an_unsupported_model() {
    // a 3-channel ResNet fixture (input [3, 48, 48]): the grey digit becomes RGB, is resized
    // to 55 (48 · 256/224) and centre-cropped; the z^B bounds come from the ImageNet mean/std
    let out = scratch("imagenet").join("out");
    let o = run(&[
        "explain",
        "tests/fixtures/onnx/exported/resnet_torchscript.onnx",
        "cli/tests/data/seven.png",
        "--preprocess",
        "imagenet",
        "--composite",
        "layered",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert!(text(&o.stdout).contains("resized from 28×28 to 55×55 and centre-cropped to 48×48"));
    assert!(text(&o.stderr).contains("low [-2.1179, -2.0357, -1.8044], high [2.2489, 2.4286, 2.6400]"));
    let r =
        relevance::io::load_npy::<f32>(out.join(format!("seven_layered_c{}.npy", summary_rows(&out)[0][4])));
    assert_eq!(r.unwrap().shape(), &[3, 48, 48]);
    // every unsupported operator is named, and the exit code says failure
    let o = run(&["inspect", "tests/fixtures/onnx/exported/alexnet_dynamo.onnx"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("alexnet_dynamo.onnx") && err.contains("GatherND"),
        "{err}"
    );
}

/// A `.npy` file written by hand: `descr` (`<i8`, `|u1`, ...), the shape and the raw
/// little-endian data.
fn write_npy_bytes(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| format!("{d},")).collect();
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}), }}",
        dims.join(" ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

const TINY_BERT: &str = "tests/fixtures/transformers/tiny_bert.f32.onnx";
/// The tiny BERT's first fixture sentence (vocabulary 20, 6 tokens).
const IDS: [i64; 6] = [3, 13, 16, 4, 13, 0];

fn ids_i64(ids: &[i64]) -> Vec<u8> {
    ids.iter().flat_map(|i| i.to_le_bytes()).collect()
}

/// The rows of a `_tokens.csv` after its header: (position, token, id, relevance).
fn token_rows(path: &Path) -> Vec<(usize, String, i64, f32)> {
    let csv = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("position,token,id,relevance"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "{l}");
            (
                f[0].parse().unwrap(),
                f[1].to_string(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn tokens_int64_ids_of_tiny_bert_explained_per_token() {
    let dir = scratch("tokens_int64");
    let ids = dir.join("ids.npy");
    write_npy_bytes(&ids, "<i8", &[1, 6], &ids_i64(&IDS));
    let out = dir.join("out");
    let o = run(&[
        "explain",
        TINY_BERT,
        ids.to_str().unwrap(),
        "--rule",
        "attn-lrp=0",
        "--color",
        "never",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    // what the library computes on the same ids
    let net = relevance::io::load_onnx::<f32>(root().join(TINY_BERT)).unwrap();
    let x = ndarray::Array2::from_shape_fn((1, 6), |(_, t)| IDS[t] as f32).into_dyn();
    let logits = net.forward(&x).unwrap();
    let class = (0..3)
        .max_by(|&a, &b| logits[[0, a]].total_cmp(&logits[[0, b]]))
        .unwrap();
    let want = net
        .attribute(&x, &Target::Class(class), &relevance::AttnLrp::new(0.0).unwrap())
        .unwrap();
    let rows = summary_rows(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][4], class.to_string());
    assert_eq!(rows[0][6], "attn-lrp-epsilon0", "the method's label");
    let (total, gap): (f32, f32) = (rows[0][7].parse().unwrap(), rows[0][8].parse().unwrap());
    let logit = logits[[0, class]];
    assert!(
        (total - logit).abs() <= 1e-5 * logit.abs(),
        "total {total}, logit {logit}"
    );
    let stem = format!("ids_attn-lrp-epsilon0_c{class}");
    let tokens = token_rows(&out.join(format!("{stem}_tokens.csv")));
    assert_eq!(tokens.len(), 6);
    let scale = want.relevance.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (t, (position, token, id, r)) in tokens.iter().enumerate() {
        assert_eq!((*position, *id), (t, IDS[t]));
        assert_eq!(token, &format!("#{}", IDS[t]));
        let lib = want.relevance[[0, t]];
        assert!(
            (r - lib).abs() <= 1e-5 * scale,
            "token {t}: {r} vs the library's {lib}"
        );
    }
    // conservation as documented: Σ relevance = total − gap; AttnLRP with ε = 0 on this
    // model loses only what its biases absorb
    let sum: f32 = tokens.iter().map(|t| t.3).sum();
    assert!(
        (sum - (total - gap)).abs() <= 1e-3 * total.abs(),
        "Σ {sum} vs total − gap {}",
        total - gap
    );
    let npy = relevance::io::load_npy::<f32>(out.join(format!("{stem}.npy"))).unwrap();
    assert_eq!(npy.shape(), &[6]);
    let html = std::fs::read_to_string(out.join(format!("{stem}_tokens.html"))).unwrap();
    assert_eq!(html.matches("<span").count(), 6, "{html}");
    assert!(html.contains(">#13</span>"), "{html}");
    // the terminal line: plain with --color never (stdout is a pipe here anyway)
    let stdout = text(&o.stdout);
    assert!(!stdout.contains('\x1b'), "{stdout}");
    assert!(stdout.contains("#3(") && stdout.contains("#16("), "{stdout}");
    assert!(!out.join(format!("{stem}_heatmap.png")).exists());
}

#[test]
fn tokens_in_every_integer_type_and_shape_give_the_same_relevance() {
    let dir = scratch("tokens_types");
    let small: Vec<u8> = IDS.iter().map(|&i| i as u8).collect();
    let files = [
        (
            "i32",
            "<i4",
            vec![6],
            IDS.iter().flat_map(|&i| (i as i32).to_le_bytes()).collect(),
        ),
        ("i8", "|i1", vec![1, 6], small.clone()),
        ("u8", "|u1", vec![6], small.clone()),
        (
            "f64",
            "<f8",
            vec![6],
            IDS.iter().flat_map(|&i| (i as f64).to_le_bytes()).collect(),
        ),
        // two rows: the sentence, then its reverse
        (
            "rows",
            "<i8",
            vec![2, 6],
            ids_i64(&IDS.iter().chain(IDS.iter().rev()).copied().collect::<Vec<_>>()),
        ),
    ];
    let mut args = vec!["explain".to_string(), TINY_BERT.to_string()];
    for (name, descr, shape, data) in &files {
        let p = dir.join(format!("{name}.npy"));
        write_npy_bytes(&p, descr, shape, data);
        args.push(p.to_str().unwrap().to_string());
    }
    let out = dir.join("out");
    args.extend(
        [
            "--rule",
            "cp-lrp",
            "--target",
            "0",
            "--color",
            "always",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let rows = summary_rows(&out);
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(rows.iter().all(|r| r[6] == "cp-lrp-epsilon0.000001"), "{rows:?}");
    assert!(rows.iter().any(|r| r[0].ends_with("rows.npy[1]")), "{rows:?}");
    let reference = token_rows(&out.join("rows_row0_cp-lrp-epsilon0.000001_c0_tokens.csv"));
    for name in ["i32", "i8", "u8", "f64"] {
        let got = token_rows(&out.join(format!("{name}_cp-lrp-epsilon0.000001_c0_tokens.csv")));
        assert_eq!(got, reference, "{name}");
    }
    let reversed = token_rows(&out.join("rows_row1_cp-lrp-epsilon0.000001_c0_tokens.csv"));
    let ids: Vec<i64> = reversed.iter().map(|t| t.2).collect();
    assert_eq!(ids, IDS.iter().rev().copied().collect::<Vec<_>>());
    // --color always: the library's 24-bit background colours
    assert!(text(&o.stdout).contains("\x1b[48;2;"), "{}", text(&o.stdout));
}

#[test]
fn tokens_refused_name_the_file_position_and_vocabulary() {
    let dir = scratch("tokens_bad");
    let mut ok = IDS;
    let bad = |name: &str, descr: &str, shape: &[usize], data: Vec<u8>| {
        let p = dir.join(format!("{name}.npy"));
        write_npy_bytes(&p, descr, shape, &data);
        p
    };
    ok[2] = 20; // the vocabulary is 0..20
    let out_of_range = bad("out_of_range", "<i8", &[1, 6], ids_i64(&ok));
    ok[2] = -1;
    let negative = bad("negative", "<i8", &[6], ids_i64(&ok));
    let as_f64 = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let fractional = bad(
        "fractional",
        "<f8",
        &[6],
        as_f64(&[3.0, 13.0, 16.0, 4.5, 13.0, 0.0]),
    );
    // a float32 model would read 4.0000000001 as 4: refused as well
    let rounded = bad(
        "rounded",
        "<f8",
        &[6],
        as_f64(&[3.0, 13.0, 16.0, 4.000_000_000_1, 13.0, 0.0]),
    );
    let nan = bad("nan", "<f8", &[6], as_f64(&[3.0, f64::NAN, 16.0, 4.0, 13.0, 0.0]));
    let huge = bad("huge", "<i8", &[6], ids_i64(&[3, 13, 16, 4, 13, i64::MAX]));
    let short = bad("short", "<i8", &[5], ids_i64(&IDS[..5]));
    let int16 = bad(
        "int16",
        "<i2",
        &[6],
        IDS.iter().flat_map(|&i| (i as i16).to_le_bytes()).collect(),
    );
    let png = dir.join("ids.png");
    std::fs::write(&png, b"not read").unwrap();
    let cases: [(&PathBuf, &[&str]); 9] = [
        (&out_of_range, &["token id 20", "[0, 2]", "0..20"]),
        (&negative, &["token id -1", "[0, 2]", "0..20"]),
        (&fractional, &["token id 4.5", "[0, 3]", "0..20"]),
        (&rounded, &["token id 4.0000000001", "[0, 3]", "0..20"]),
        (&nan, &["token id NaN", "[0, 1]", "0..20"]),
        (&huge, &["[0, 5]", "0..20"]),
        (&short, &["[5]", "[6]"]),
        (&int16, &["<i2", "int64"]),
        (&png, &["token ids", ".npy", "vocabulary 20"]),
    ];
    let mut args = vec!["explain".to_string(), TINY_BERT.to_string()];
    args.extend(cases.iter().map(|(p, _)| p.to_str().unwrap().to_string()));
    args.extend(["--out".to_string(), dir.join("out").to_str().unwrap().to_string()]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "stderr: {}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("9 of 9 inputs could not be explained"), "{err}");
    for (path, words) in cases {
        let shown = path.to_str().unwrap();
        let line = err
            .lines()
            .find(|l| {
                l.starts_with(&format!("error: {shown}"))
                    || l.starts_with(&format!("error: cannot read {shown}"))
            })
            .unwrap_or_else(|| panic!("no error for {shown} in\n{err}"));
        for w in words {
            assert!(line.contains(w), "{shown}: {w:?} missing from {line}");
        }
        assert!(!line.contains(" { "), "a debug struct: {line}");
    }
    // a DeepLIFT baseline of bad ids is a usage error naming the flag and the file
    let o = run(&[
        "explain",
        TINY_BERT,
        negative.to_str().unwrap(),
        "--rule",
        "deeplift",
        "--baseline",
        out_of_range.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--baseline: {}", out_of_range.display())) && err.contains("token id 20"),
        "{err}"
    );
}

/// A sentence encoder with two inputs (`input_ids`, `attention_mask`): `--fix
/// attention_mask=1` holds the mask, the ids are explained per token as the library
/// explains them with the mask fixed; without it the error names the mask and the option;
/// a malformed `--fix` is a usage error.
#[test]
fn fix_holds_an_attention_mask() {
    const ENCODER: &str = "tests/fixtures/transformers/masked_encoder.f32.onnx";
    let dir = scratch("fix_mask");
    let ids = dir.join("ids.npy");
    write_npy_bytes(&ids, "<i8", &[1, 6], &ids_i64(&IDS));
    let out = dir.join("out");
    let o = run(&[
        "explain",
        ENCODER,
        ids.to_str().unwrap(),
        "--fix",
        "attention_mask=1",
        "--rule",
        "cp-lrp=0",
        "--target",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let options = relevance::io::OnnxOptions::default()
        .with_input_shape(&[6])
        .with_fixed_input("attention_mask", relevance::io::FixedInput::Fill(1.0));
    let net = relevance::io::load_onnx_with::<f32>(root().join(ENCODER), &options)
        .unwrap()
        .network;
    let x = ndarray::Array2::from_shape_fn((1, 6), |(_, t)| IDS[t] as f32).into_dyn();
    let want = net
        .attribute(&x, &Target::Class(2), &relevance::CpLrp::new(0.0).unwrap())
        .unwrap();
    let tokens = token_rows(&out.join("ids_cp-lrp-epsilon0_c2_tokens.csv"));
    assert_eq!(tokens.len(), 6);
    let scale = want.relevance.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (t, row) in tokens.iter().enumerate() {
        let lib = want.relevance[[0, t]];
        assert!(
            (row.3 - lib).abs() <= 1e-5 * scale,
            "token {t}: {} vs {lib}",
            row.3
        );
    }
    // without --fix: the integer mask cannot be a held input
    let o = run(&[
        "explain",
        ENCODER,
        ids.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("attention_mask"), "{}", text(&o.stderr));
    // a malformed value
    let o = run(&[
        "explain",
        ENCODER,
        ids.to_str().unwrap(),
        "--fix",
        "attention_mask",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("NAME=VALUE"), "{}", text(&o.stderr));
}
