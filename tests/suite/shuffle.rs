//! Dinucleotide shuffles (`relevance::genomics::dinucleotide_shuffle`, `shuffled_references`,
//! `deep_lift_shap_shuffled`) against tangermeme 1.6.0's `dinucleotide_shuffle` and
//! `deep_lift_shap(..., random_state=seed)` (`tests/fixtures/dinucleotide_shuffle.json`, from
//! `tools/gen_shuffle_fixtures.py`), and the shuffle's invariants on random sequences.

use crate::common::{load, Rng};
use ndarray::{Array3, ArrayD, Axis};
use relevance::genomics::{dinucleotide_shuffle, shuffled_references};
use relevance::Error;
use serde_json::Value;

/// Letter codes (0..4, 4 = N) of a JSON array of arrays.
fn codes(v: &Value) -> Vec<Vec<usize>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as usize)
                .collect()
        })
        .collect()
}

/// One-hot `[N, 4, L]`, code 4 (N) as an all-zero column.
fn one_hot(seqs: &[Vec<usize>]) -> ArrayD<f64> {
    Array3::from_shape_fn((seqs.len(), 4, seqs[0].len()), |(s, c, l)| {
        f64::from(u8::from(seqs[s][l] == c))
    })
    .into_dyn()
}

/// The codes of a one-hot `[N, R, 4, L]`: `[N][R][L]`.
fn decode(x: &ArrayD<f64>) -> Vec<Vec<Vec<usize>>> {
    let (n, r, a, l) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    (0..n)
        .map(|s| {
            (0..r)
                .map(|k| {
                    (0..l)
                        .map(|i| (0..a).find(|&c| x[[s, k, c, i]] == 1.0).unwrap_or(a))
                        .collect()
                })
                .collect()
        })
        .collect()
}

#[test]
fn dinucleotide_shuffle_is_tangermemes_bit_for_bit() {
    let fx = load("dinucleotide_shuffle");
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut positions = 0;
    for case in cases {
        let x = codes(&case["x"]);
        let n = case["n"].as_u64().unwrap() as usize;
        let seed = case["seed"].as_i64().unwrap();
        let want: Vec<Vec<Vec<usize>>> = case["shuffles"].as_array().unwrap().iter().map(codes).collect();
        let got = decode(&dinucleotide_shuffle(&one_hot(&x), n, seed).unwrap());
        assert_eq!(got, want, "seed {seed}, n {n}, length {}", x[0].len());
        positions += x.len() * n * x[0].len();
    }
    println!(
        "{} cases, {positions} positions identical to tangermeme",
        cases.len()
    );
}

#[test]
fn shuffled_references_are_those_tangermemes_deep_lift_shap_draws() {
    let fx = load("dinucleotide_shuffle");
    for case in fx["references"].as_array().unwrap() {
        let x = codes(&case["x"]);
        let r = case["n_shuffles"].as_u64().unwrap() as usize;
        let seed = case["seed"].as_i64().unwrap();
        let want: Vec<Vec<Vec<usize>>> = case["references"].as_array().unwrap().iter().map(codes).collect();
        assert_eq!(decode(&shuffled_references(&one_hot(&x), r, seed).unwrap()), want);
    }
}

#[test]
fn dinucleotide_shuffle_gives_the_references_of_the_bpnet_fixture() {
    // tools/gen_bpnet_fixtures.py drew its references with dinucleotide_shuffle(X, n=3, random_state=0)
    let fx = load("bpnet_deep_lift_shap");
    let x = codes(&fx["x"]);
    let want: Vec<Vec<Vec<usize>>> = fx["references"].as_array().unwrap().iter().map(codes).collect();
    assert_eq!(decode(&dinucleotide_shuffle(&one_hot(&x), 3, 0).unwrap()), want);
}

/// Counts of each ordered pair of letter codes (N included).
fn dinucleotides(s: &[usize]) -> [[usize; 5]; 5] {
    let mut m = [[0; 5]; 5];
    for w in s.windows(2) {
        m[w[0]][w[1]] += 1;
    }
    m
}

#[test]
fn dinucleotide_shuffle_keeps_ends_and_dinucleotide_counts() {
    let mut rng = Rng::new(22);
    let mut changed = 0;
    let mut total = 0;
    for trial in 0..60 {
        let l = 2 + rng.below(80);
        let seqs: Vec<Vec<usize>> = (0..2)
            .map(|_| {
                (0..l)
                    .map(|_| if rng.below(12) == 0 { 4 } else { rng.below(4) })
                    .collect()
            })
            .collect();
        let out = decode(&dinucleotide_shuffle(&one_hot(&seqs), 4, trial as i64 - 30).unwrap());
        for (s, seq) in seqs.iter().enumerate() {
            for shuf in &out[s] {
                assert_eq!(shuf.len(), l);
                assert_eq!(shuf[0], seq[0]);
                assert_eq!(shuf[l - 1], seq[l - 1]);
                assert_eq!(dinucleotides(shuf), dinucleotides(seq));
                total += 1;
                changed += usize::from(shuf != seq);
            }
        }
    }
    // most random sequences have more than one Eulerian path
    assert!(changed * 10 > total * 8, "{changed} of {total} shuffles changed");
}

#[test]
fn dinucleotide_shuffle_is_uniform_over_the_orders_of_a_small_sequence() {
    // ACAGATA: the successors of A are C, G and T, the last (T) kept last so that the walk
    // ends on the last letter: two orders, CG or GC, so ACAGATA and AGACATA each about half
    // the time over seeds
    let x = one_hot(&[vec![0, 1, 0, 2, 0, 3, 0]]);
    let mut same = 0;
    let draws = 2000;
    for seed in 0..draws {
        let out = decode(&dinucleotide_shuffle(&x, 1, seed).unwrap());
        let got = &out[0][0];
        assert!(
            got == &[0, 1, 0, 2, 0, 3, 0] || got == &[0, 2, 0, 1, 0, 3, 0],
            "{got:?}"
        );
        same += usize::from(got == &[0, 1, 0, 2, 0, 3, 0]);
    }
    let p = same as f64 / draws as f64;
    assert!((p - 0.5).abs() < 0.05, "{p}");
}

#[test]
fn dinucleotide_shuffle_refuses_what_is_not_one_hot() {
    let mut x = one_hot(&[vec![0, 1, 2, 3]]);
    x[[0, 1, 2]] = 0.5;
    assert!(matches!(
        dinucleotide_shuffle(&x, 2, 0),
        Err(Error::InvalidParameter { .. })
    ));
    x[[0, 1, 2]] = 1.0; // two letters at position 2
    assert!(matches!(
        dinucleotide_shuffle(&x, 2, 0),
        Err(Error::InvalidParameter { .. })
    ));
    let flat = x.index_axis(Axis(0), 0).to_owned().into_dyn();
    assert!(matches!(
        dinucleotide_shuffle(&flat, 2, 0),
        Err(Error::Rank { .. })
    ));
    let empty = ArrayD::<f64>::zeros(ndarray::IxDyn(&[0, 4, 5]));
    assert!(matches!(
        dinucleotide_shuffle(&empty, 2, 0),
        Err(Error::EmptyBatch)
    ));
    // no positions and no shuffles are fine
    let none = ArrayD::<f64>::zeros(ndarray::IxDyn(&[1, 4, 0]));
    assert_eq!(dinucleotide_shuffle(&none, 2, 0).unwrap().shape(), &[1, 2, 4, 0]);
    assert_eq!(
        dinucleotide_shuffle(&one_hot(&[vec![0, 1]]), 0, 0)
            .unwrap()
            .shape(),
        &[1, 0, 4, 2]
    );
}

#[cfg(feature = "onnx")]
#[test]
fn deep_lift_shap_shuffled_matches_tangermeme_on_bpnet() {
    use crate::common::{rel_dev, tensor};
    use relevance::genomics::{deep_lift_shap_shuffled, ShuffleOptions};
    use relevance::{Network, Target};
    let fx = load("dinucleotide_shuffle");
    let b = &fx["bpnet"];
    let path = format!(
        "{}/tests/fixtures/onnx/sequence/bpnet_counts.onnx",
        env!("CARGO_MANIFEST_DIR")
    );
    let net: Network<f64> = relevance::io::load_onnx(&path).unwrap();
    let x = one_hot(&codes(&b["x"]));
    let r = b["n_shuffles"].as_u64().unwrap() as usize;
    let seed = b["seed"].as_i64().unwrap();
    let want_refs: Vec<Vec<Vec<usize>>> = b["references"].as_array().unwrap().iter().map(codes).collect();
    assert_eq!(decode(&shuffled_references(&x, r, seed).unwrap()), want_refs);
    let out = deep_lift_shap_shuffled(&net, &x, &Target::Class(0), ShuffleOptions::new(r, seed)).unwrap();
    let hyp: ArrayD<f64> = tensor(&b["hypothetical"]);
    let d = rel_dev(&out.hypothetical, &hyp);
    println!("bpnet counts, shuffled references: hypothetical {d:.1e} from tangermeme");
    assert!(d <= 1e-9, "{d:e}");
    assert!(out.gap.iter().all(|g| g.abs() <= 1e-12));
}
