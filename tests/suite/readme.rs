//! The README against the tests. Every number the README writes in scientific notation
//! (outside code blocks) must be listed below, by the words that come before it: a deviation
//! the README reports as measured must be at or below the bound a test asserts for it, and
//! that bound at most ten times the figure (so that a regression by an order of magnitude
//! fails a test); a bound the README states as such must be the asserted one; anything else
//! (a rule's parameter, a threshold of the method, a figure measured by a script in `tools/`)
//! is listed as such. A new figure in the README, or a changed one, fails here until it is
//! tied to a test's bound. The counts and the accuracy the README states are checked against
//! the tests' exact counts, and every path the README names (`src/...`, `tests/...`, ...) must
//! exist.

use crate::common::bounds::*;

/// What a number in the README is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A measured figure; the bound a test asserts for it.
    Measured(f64),
    /// A bound the README states; the bound the test asserts.
    Bound(f64),
    /// Not a test's figure: a parameter, a threshold of the method, or a figure a script in
    /// `tools/` measures (the reason is the `&str`).
    Other(&'static str),
}

use Kind::{Bound, Measured, Other};

/// The README's numbers, each by the words right before it (whitespace collapsed, unique).
const NUMBERS: &[(&str, Kind)] = &[
    // transformers
    (
        "`CpLrp::new(ε)` (ε = ",
        Other("the attention rules' default ε (lxt's)"),
    ),
    ("AttnLRP and CP-LRP agree with lxt within ", Measured(LXT_F64)),
    (
        "lxt's efficient mode agrees with its explicit mode to about ",
        Other("measured by tools/gen_transformer_fixtures.py"),
    ),
    ("(its identity rule divides by `x + ", Other("lxt's constant")),
    ("DeepLIFT sums to `f(x) − f(x̄)` within ", Bound(TRANSFORMER_DELTA)),
    (
        "by both exporters, give the fixture logits within ",
        Measured(ONNX_TRANSFORMER_LOGITS_F64),
    ),
    ("AttnLRP and CP-LRP input relevance within ", Measured(LXT_F64)),
    (
        "their float32 exports give the logits within ",
        Bound(ONNX_TRANSFORMER_F32),
    ),
    (
        "and give onnxruntime's float32 logits within ",
        Measured(ONNX_TRANSFORMER_F32),
    ),
    (
        "it gives PyTorch's float32 logits within ",
        Bound(ONNX_TRANSFORMER_F32),
    ),
    ("of four test digits within ", Measured(LXT_F64)),
    (
        "give onnxruntime's float32 outputs within ",
        Measured(ONNX_TRANSFORMER_F32),
    ),
    ("PyTorch's output and gradient within ", Measured(RESIZE_F64)),
    // rules, composites, DeepLIFT's parameters
    ("so `LrpGamma::new(", Other("a parameter out of f32's range")),
    (
        "in the network's float type (`LrpGamma::new(",
        Other("a parameter out of f32's range"),
    ),
    ("ε-stabilised LRP-0; default ε = ", Other("zennit's default ε")),
    ("default ε = 1e-6 (zennit's; captum ", Other("captum's default ε")),
    (
        "input k gets `x_k · R / stab(z)`, ε = ",
        Other("the stabiliser at sums"),
    ),
    ("where `|Δx| < ", Other("DeepLIFT's threshold")),
    ("captum's convention (`DeepLift(eps=", Other("captum's threshold")),
    (
        "uses the gradient at the reference and ",
        Other("kundajelab/deeplift's threshold"),
    ),
    // DeepLIFT's conservation
    ("(summation-to-delta within ", Measured(GRAPH_CROSS_MAX_GAP)),
    (
        "of the total on the graph fixtures, and below ",
        Bound(DEEPLIFT_PROPERTY_GAP),
    ),
    ("`DeepLiftShap` in float64 to ", Measured(CAPTUM_F64)),
    (
        "Check `delta`: in f64 it stays below ",
        Bound(DEEPLIFT_PROPERTY_GAP),
    ),
    ("DeepLIFT sums to delta (", Bound(DEEPLIFT_PROPERTY_GAP)),
    // ties at the baseline: what tools/gen_deeplift_squeezenet.py measures on torchvision's
    // networks, and the tiny SqueezeNet of the fixture
    (
        "(its planes vary by ~",
        Other("PyTorch's rounding, observed by tools/gen_deeplift_squeezenet.py"),
    ),
    (
        "contributions added in captum) by ",
        Other("measured by tools/gen_deeplift_squeezenet.py"),
    ),
    ("the first position within ", Other("the script's tie tolerance")),
    (
        "of the window maximum, the two agree to ",
        Other("measured by tools/gen_deeplift_squeezenet.py"),
    ),
    (
        "agree with captum as it is (",
        Other("measured by tools/gen_deeplift_squeezenet.py"),
    ),
    (
        "agree with captum as it is (2e-14 and ",
        Other("measured by tools/gen_deeplift_squeezenet.py"),
    ),
    (
        "equal to captum with exact tie-breaks to ",
        Measured(SQUEEZENET_F64),
    ),
    ("checks summation-to-delta to ", Bound(DEEPLIFT_PROPERTY_GAP)),
    // loaders, softmax, evaluation
    (
        "`tests/suite/onnx_corpus.rs`, worst deviation ",
        Measured(ONNX_CORPUS),
    ),
    ("(`tests/suite/softmax.rs`, ", Measured(SOFTMAX_F64)),
    ("`tools/gen_eval_fixtures.py`, worst ", Measured(QUANTUS_F64)),
    ("relative in f64 and ", Measured(QUANTUS_F32)),
    ("Spearman and SSIM within ", Bound(SIMILARITY)),
    // correctness: zennit, graphs, layers, kernels, captum, digits
    (
        "the rule zennit chose for every layer: within ",
        Bound(ZENNIT_F64),
    ),
    ("relative in f64 (worst ", Measured(ZENNIT_F64)),
    ("relative in f64 (worst 5.9e-15) and ", Bound(ZENNIT_F32)),
    ("in f32 (worst ", Measured(ZENNIT_F32)),
    (
        "K = 3 baselines: worst relative deviation ",
        Measured(GRAPH_LRP_F64),
    ),
    ("(LRP, 26 cases) and ", Measured(GRAPH_DEEPLIFT_F64)),
    ("(DeepLIFT, 16 cases) in f64, ", Measured(GRAPH_LRP_F32)),
    (
        "(DeepLIFT, 16 cases) in f64, 1.6e-5 and ",
        Measured(GRAPH_DEEPLIFT_F32),
    ),
    (
        "our default cross-max conserves on all four (summation-to-delta ",
        Measured(GRAPH_CROSS_MAX_GAP),
    ),
    (
        "differs from the fixtures by up to ",
        Other("measured by tools/gen_graph_fixtures.py --unpatched"),
    ),
    (
        "relative on these networks, ",
        Other("measured by tools/gen_graph_fixtures.py --unpatched"),
    ),
    ("batch norm, padding (", Bound(LAYERS_F64)),
    ("relative; hard sigmoid's gradient ", Bound(HARDSIGMOID_GRADIENT)),
    ("Winograd convolution equals direct loops to ", Bound(WINOGRAD)),
    ("widths down to 1) to ", Bound(IM2COL)),
    (
        "the fused bias gives the bits of a bias pass; f32 within ",
        Bound(DIRECT_F32),
    ),
    (
        "(`DeepLift`, `DeepLiftShap`) in float64, worst relative deviation ",
        Measured(CAPTUM_F64),
    ),
    (
        "reproduces the PyTorch logits (f64: ",
        Measured(DIGITS_LOGITS_F64),
    ),
    ("logits (f64: 1.9e-14, f32: ", Measured(DIGITS_LOGITS_F32)),
];

/// Counts and exact figures the README states, by the words around them, with the tests'.
fn exact_claims() -> Vec<(String, &'static str)> {
    vec![
        (
            format!(
                "{:.1} % ({DIGITS_CORRECT}/{DIGITS_TOTAL}) on the {DIGITS_TOTAL} bundled held-out digits",
                100.0 * DIGITS_CORRECT as f64 / DIGITS_TOTAL as f64
            ),
            "the digits' accuracy (tests/suite/io.rs)",
        ),
        (
            format!("(LRP, {GRAPH_LRP_CASES} cases)"),
            "graph LRP cases (tests/suite/graph_fixtures.rs)",
        ),
        (
            format!("(DeepLIFT, {GRAPH_DEEPLIFT_CASES} cases)"),
            "graph DeepLIFT cases (tests/suite/graph_fixtures.rs)",
        ),
        (
            format!("a JPEG is within {JPEG_WORST}/255 per pixel"),
            "the JPEG bound (tests/suite/images.rs)",
        ),
    ]
}

fn read(rel: &str) -> String {
    let path = format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The README's prose: fenced code blocks removed, whitespace collapsed to single spaces.
fn prose(text: &str) -> String {
    let mut kept = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            kept.push(line);
        }
    }
    kept.join(" ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every number in scientific notation (`5.9e-15`, `1e39`) in `text`, with its byte offset.
fn scientific_numbers(text: &str) -> Vec<(usize, f64)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit()
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b"_.".contains(&b[i - 1])));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
            j += 1;
        }
        let mantissa_end = j;
        if j < b.len() && b[j] == b'e' {
            let mut k = j + 1;
            if k < b.len() && (b[k] == b'-' || b[k] == b'+') {
                k += 1;
            }
            let digits = k;
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            if k > digits && !(k < b.len() && b[k].is_ascii_alphabetic()) {
                let v: f64 = text[i..k].parse().unwrap_or_else(|_| panic!("{}", &text[i..k]));
                out.push((i, v));
                i = k;
                continue;
            }
        }
        i = mantissa_end.max(i + 1);
    }
    out
}

#[test]
fn every_published_figure_is_asserted_within_ten_times() {
    let text = prose(&read("README.md"));
    let numbers = scientific_numbers(&text);
    let mut used = vec![0; NUMBERS.len()];
    let mut problems = Vec::new();
    for &(at, value) in &numbers {
        let before = &text[..at];
        let matching: Vec<usize> = (0..NUMBERS.len())
            .filter(|&k| before.ends_with(NUMBERS[k].0))
            .collect();
        // the longest context wins where one ends another ("…(worst " and "…5.9e-15) and ")
        let Some(&k) = matching.iter().max_by_key(|&&k| NUMBERS[k].0.len()) else {
            let from = before.char_indices().rev().nth(60).map_or(0, |(i, _)| i);
            problems.push(format!(
                "{value:e} after \"…{}\" is not tied to a test (add it to NUMBERS)",
                &before[from..]
            ));
            continue;
        };
        used[k] += 1;
        match NUMBERS[k].1 {
            Measured(bound) => {
                if !(bound >= value && bound <= 10.0 * value) {
                    problems.push(format!(
                        "{value:e} after \"{}\": the asserted bound {bound:e} is not within [figure, 10 × figure]",
                        NUMBERS[k].0
                    ));
                }
            }
            Bound(bound) => {
                if (bound - value).abs() > 1e-12 * bound {
                    problems.push(format!(
                        "{value:e} after \"{}\": the tests assert {bound:e}",
                        NUMBERS[k].0
                    ));
                }
            }
            Other(_) => {}
        }
    }
    for (k, n) in used.iter().enumerate() {
        if *n != 1 {
            problems.push(format!(
                "\"{}\" is followed by a number {n} times in the README, not once",
                NUMBERS[k].0
            ));
        }
    }
    for (claim, what) in exact_claims() {
        if !text.contains(&claim) {
            problems.push(format!("the README does not say \"{claim}\" ({what})"));
        }
    }
    assert!(problems.is_empty(), "README.md:\n{}", problems.join("\n"));
    let others: Vec<&str> = NUMBERS
        .iter()
        .filter_map(|(_, k)| match k {
            Other(why) => Some(*why),
            _ => None,
        })
        .collect();
    println!(
        "{} numbers of the README checked ({} not test figures: {})",
        numbers.len(),
        others.len(),
        others.join("; ")
    );
}

/// The kernels' unit tests (in `src/`, which this crate cannot import from) assert the
/// bounds the README states for them.
#[test]
fn kernel_bounds_are_the_unit_tests_bounds() {
    let tests = read("src/layers/conv2d/tests.rs");
    for (bound, what) in [
        (WINOGRAD, "Winograd"),
        (IM2COL, "im2col"),
        (DIRECT_F32, "direct path, f32"),
    ] {
        let assertion = format!("dev < {bound:e}");
        assert!(
            tests.contains(&assertion),
            "src/layers/conv2d/tests.rs does not assert `{assertion}` ({what})"
        );
    }
}

/// The paths a text names under the repository's top-level folders, with `{a,b}` expanded.
fn named_paths(text: &str) -> Vec<String> {
    const ROOTS: [&str; 10] = [
        "src/",
        "tests/",
        "tools/",
        "examples/",
        "models/",
        "data/",
        "docs/",
        "fuzz/",
        "cli/",
        "benches/",
    ];
    let path_char = |c: char| c.is_ascii_alphanumeric() || "_./*{},-".contains(c);
    let mut out = Vec::new();
    for (i, _) in text.char_indices() {
        let prev = text[..i].chars().next_back();
        if prev.is_some_and(|p| p.is_ascii_alphanumeric() || "_./-".contains(p)) {
            continue;
        }
        if !ROOTS.iter().any(|r| text[i..].starts_with(r)) {
            continue;
        }
        let len = text[i..].find(|c: char| !path_char(c)).unwrap_or(text.len() - i);
        let mut p = &text[i..i + len];
        // sentence punctuation after a path; a brace group keeps its commas
        while p.ends_with(['.', ',']) && !p.ends_with("}") {
            p = &p[..p.len() - 1];
        }
        out.extend(expand(p));
    }
    out.sort();
    out.dedup();
    out
}

/// `a{b,c}d` → `abd`, `acd` (one level, enough for the READMEs).
fn expand(p: &str) -> Vec<String> {
    match (p.find('{'), p.find('}')) {
        (Some(l), Some(r)) if l < r => p[l + 1..r]
            .split(',')
            .flat_map(|alt| expand(&format!("{}{alt}{}", &p[..l], &p[r + 1..])))
            .collect(),
        _ => vec![p.to_string()],
    }
}

/// Whether `path` (relative to the repository, `*` matching within one name) exists.
fn exists(root: &std::path::Path, path: &str) -> bool {
    let Some(star) = path.find('*') else {
        return root.join(path).exists();
    };
    let dir_end = path[..star].rfind('/').map_or(0, |i| i + 1);
    let (dir, pattern) = (&path[..dir_end], &path[dir_end..]);
    let (name_pattern, rest) = pattern.split_once('/').unwrap_or((pattern, ""));
    let (pre, post) = name_pattern.split_once('*').unwrap();
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with(pre)
            && name.ends_with(post)
            && name.len() >= pre.len() + post.len()
            && (rest.is_empty() || exists(root, &format!("{dir}{name}/{rest}")))
    })
}

#[test]
fn every_path_the_readmes_name_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in [
        "README.md",
        "tools/README.md",
        "docs/architecture.md",
        "docs/deeplift.md",
        "fuzz/README.md",
    ] {
        for p in named_paths(&read(doc)) {
            // paths the commands write (`out/...`) are not under these roots; a path
            // ending in a slash is a folder
            checked += 1;
            if !exists(root, &p) {
                missing.push(format!("{doc}: {p}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths that do not exist:\n{}",
        missing.join("\n")
    );
    assert!(checked > 50, "only {checked} paths found: is the scanner broken?");
}

/// The scanners themselves, on text with known answers.
#[test]
fn the_scanners_find_what_they_should() {
    let t = "worst 5.9e-15) and 1e-4, 2/255; not x1e-5 nor 3e-5x, but LrpGamma::new(1e39)";
    let found: Vec<f64> = scientific_numbers(t).into_iter().map(|(_, v)| v).collect();
    assert_eq!(found, [5.9e-15, 1e-4, 1e39]);
    let paths = named_paths("see `tests/fixtures/lrp_{mlp,cnn}.json`, src/lib.rs. and out/cli/x.png");
    assert_eq!(
        paths,
        [
            "src/lib.rs",
            "tests/fixtures/lrp_cnn.json",
            "tests/fixtures/lrp_mlp.json"
        ]
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(exists(root, "tests/fixtures/graph_*.json") && !exists(root, "tests/fixtures/nothing_*.json"));
}
