//! DeepLIFT-SHAP with hypothetical contributions (`relevance::genomics::deep_lift_shap`)
//! against tangermeme 1.6.0 on a small BPNet of bpnet-lite 1.1.0 with random weights
//! (`tests/fixtures/bpnet_deep_lift_shap.json` and `onnx/sequence/bpnet_counts.onnx`, from
//! `tools/gen_bpnet_fixtures.py`; a 16-filter variant from `--wide` reaches the Winograd path),
//! and its properties on random sequence networks.

#[cfg(feature = "onnx")]
use crate::common::{load, one_hot_fixture, rel_dev, tensor};
use ndarray::{Array3, ArrayD, Axis, IxDyn};
use relevance::genomics::deep_lift_shap;
use relevance::{Error, Network, Target};

/// Attributions and hypothetical contributions against tangermeme, f64, relative to the
/// largest magnitude.
#[cfg(feature = "onnx")]
const TANGERMEME_F64: f64 = 1e-9;

fn one_hot(bases: &[usize]) -> Array3<f64> {
    Array3::from_shape_fn((1, 4, bases.len()), |(_, c, l)| {
        f64::from(u8::from(bases[l] == c))
    })
}

#[cfg(feature = "onnx")]
#[test]
fn bpnet_count_head_matches_tangermeme() {
    bpnet_matches_tangermeme("bpnet_deep_lift_shap", "bpnet_counts");
}

/// 16 filters on 200 bp (`tools/gen_bpnet_fixtures.py --wide`): the dilated convolutions take
/// the Winograd F(4, 3) path (at least 16 channels and 64 outputs), here against tangermeme.
#[cfg(feature = "onnx")]
#[test]
fn wide_bpnet_count_head_matches_tangermeme_through_winograd() {
    bpnet_matches_tangermeme("bpnet_wide_deep_lift_shap", "bpnet_counts_wide");
}

/// The fixture `name` (from `tools/gen_bpnet_fixtures.py`) against the crate on the ONNX file
/// `onnx/sequence/{model}.onnx`.
#[cfg(feature = "onnx")]
fn bpnet_matches_tangermeme(name: &str, model: &str) {
    let fx = load(name);
    let path = format!(
        "{}/tests/fixtures/onnx/sequence/{model}.onnx",
        env!("CARGO_MANIFEST_DIR")
    );
    let net: Network<f64> = relevance::io::load_onnx(&path).unwrap();
    let (seqs, x, refs) = one_hot_fixture(&fx);
    let (n, r, _, l) = refs.dim();
    let (x, refs) = (x.into_dyn(), refs.into_dyn());

    let out = deep_lift_shap(&net, &x, &refs, &Target::Class(0)).unwrap();

    let hyp: ArrayD<f64> = tensor(&fx["hypothetical"]);
    let dh = rel_dev(&out.hypothetical, &hyp);
    let want_attr = ArrayD::from_shape_fn(IxDyn(&[n, 4, l]), |ix| {
        let (s, c, i) = (ix[0], ix[1], ix[2]);
        if seqs[s][i] == c {
            fx["attributions"][s][i].as_f64().unwrap()
        } else {
            0.0
        }
    });
    let da = rel_dev(&out.attributions, &want_attr);
    println!("{name}: hypothetical {dh:.1e}, attributions {da:.1e} from tangermeme");
    assert!(dh <= TANGERMEME_F64, "hypothetical contributions: {dh:e}");
    assert!(da <= TANGERMEME_F64, "attributions: {da:e}");
    for s in 0..n {
        let y = fx["output"][s].as_f64().unwrap();
        assert!(
            (out.output[s] - y).abs() <= 1e-12 * y.abs().max(1.0),
            "f(x) {} vs {y}",
            out.output[s]
        );
        let yr: f64 = (0..r)
            .map(|k| fx["reference_output"][s][k].as_f64().unwrap())
            .sum::<f64>()
            / r as f64;
        assert!((out.reference_output[s] - yr).abs() <= 1e-12 * yr.abs().max(1.0));
        assert!(out.gap[s].abs() <= 1e-12, "gap {}", out.gap[s]);
        for k in 0..r {
            assert!(out.pair_deltas[[s, k]].abs() <= 1e-12);
        }
    }
}

/// A toy network for the property tests: conv, ReLU, global mean, flatten.
fn toy() -> Network<f64> {
    use relevance::{AvgPool1d, Conv1d, Conv1dConfig, Flatten, Layer, Relu};
    let w = ndarray::Array3::from_shape_fn((3, 4, 5), |(o, c, k)| {
        ((o * 7 + c * 3 + k * 5) % 11) as f64 / 5.0 - 1.0
    });
    let b = ndarray::array![0.1, -0.2, 0.05];
    Network::new(
        &[4, 12],
        vec![
            Box::new(Conv1d::new(w, Some(b), Conv1dConfig::default().same()).unwrap()) as Box<dyn Layer<f64>>,
            Box::new(Relu),
            Box::new(AvgPool1d::global()),
            Box::new(Flatten),
        ],
    )
    .unwrap()
}

/// Hypothetical contributions follow kundajelab's formula from the pair multipliers:
/// with one reference, `hyp[a, l] = m[a, l] − Σ_c ref[c, l]·m[c, l]`, and at the observed
/// letter it is the DeepLIFT contribution `Σ_c (x − ref)[c, l]·m[c, l]`.
#[test]
fn hypothetical_contributions_follow_the_formula() {
    let net = toy();
    let x = one_hot(&[0, 1, 2, 3, 3, 2, 1, 0, 0, 2, 1, 3]).into_dyn();
    let rb = [1, 1, 0, 2, 3, 0, 2, 3, 1, 0, 0, 1];
    let refs = one_hot(&rb).insert_axis(Axis(0)).into_dyn();
    let out = deep_lift_shap(&net, &x, &refs, &Target::Class(2)).unwrap();
    let d = net
        .deeplift(
            &x,
            &Target::Class(2),
            &relevance::DeepLift::rescale().with_threshold(1e-6).unwrap(),
            &relevance::Baseline::PerSample(one_hot(&rb).into_dyn()),
        )
        .unwrap();
    for (l, &b) in rb.iter().enumerate() {
        let base: f64 = d.multipliers[[0, b, l]];
        for a in 0..4 {
            let want = d.multipliers[[0, a, l]] - base;
            assert!((out.hypothetical[[0, a, l]] - want).abs() < 1e-14);
        }
        let contrib: f64 = (0..4).map(|c| d.attribution[[0, c, l]]).sum();
        let observed: f64 = (0..4).map(|c| out.attributions[[0, c, l]]).sum();
        assert!((observed - contrib).abs() < 1e-14, "position {l}");
    }
    assert!(out.gap[0].abs() < 1e-12);
}

#[test]
fn deep_lift_shap_refuses_bad_shapes() {
    let net = toy();
    let x = one_hot(&[0; 12]).into_dyn();
    let wrong = ArrayD::<f64>::zeros(IxDyn(&[1, 2, 4, 11]));
    assert!(matches!(
        deep_lift_shap(&net, &x, &wrong, &Target::Class(0)),
        Err(Error::Shape { .. })
    ));
    let rank3 = ArrayD::<f64>::zeros(IxDyn(&[1, 4, 12]));
    assert!(matches!(
        deep_lift_shap(&net, &x, &rank3, &Target::Class(0)),
        Err(Error::Rank { .. })
    ));
    let none = ArrayD::<f64>::zeros(IxDyn(&[1, 0, 4, 12]));
    assert!(matches!(
        deep_lift_shap(&net, &x, &none, &Target::Class(0)),
        Err(Error::EmptyBatch)
    ));
    let mut nan = ArrayD::<f64>::zeros(IxDyn(&[1, 1, 4, 12]));
    nan[[0, 0, 0, 0]] = f64::NAN;
    assert!(matches!(
        deep_lift_shap(&net, &x, &nan, &Target::Class(0)),
        Err(Error::NonFinite { .. })
    ));
    let two = ArrayD::<f64>::zeros(IxDyn(&[1, 1, 4, 12]));
    assert!(deep_lift_shap(&net, &x, &two, &Target::PerSample(vec![0, 1])).is_err());
}

/// `deep_lift_shap` runs the sequence's forward pass once and the references as a batch
/// against it where Rescale is symmetric in the pair (no max-pool); the result equals
/// DeepLIFT on every (sequence, reference) pair run the usual way. With a max-pool the pairs
/// run the usual way (checked the same).
#[test]
fn the_sequence_traced_once_equals_every_pair_traced() {
    for max_pool in [false, true] {
        sequence_once_equals_pairs(max_pool);
    }
}

fn sequence_once_equals_pairs(max_pool: bool) {
    use relevance::{
        AvgPool1d, Baseline, Conv1d, Conv1dConfig, DeepLift, Dense, Flatten, Layer, MaxPool1d, Relu, Softplus,
    };
    // random weights: rational ones make pre-activations of x and of a reference tie up to
    // rounding on either side of the ReLU's kink, where the threshold's gradient fallback is
    // taken at the other point (see `deep_lift_shap`'s docs)
    let mut seed = 5u64;
    let mut uniform = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let w1 = ndarray::Array3::from_shape_simple_fn((5, 4, 5), &mut uniform);
    let w2 = ndarray::Array3::from_shape_simple_fn((4, 5, 3), &mut uniform);
    let dense = ndarray::Array2::from_shape_simple_fn((3, 4), &mut uniform);
    let net = Network::<f64>::new(
        &[4, 16],
        vec![
            Box::new(
                Conv1d::new(
                    w1,
                    Some(ndarray::array![0.1, -0.2, 0.05, 0.0, 0.3]),
                    Conv1dConfig::default().same(),
                )
                .unwrap(),
            ) as Box<dyn Layer<f64>>,
            Box::new(Relu),
            if max_pool {
                Box::new(MaxPool1d::new(2, 2, 0).unwrap())
            } else {
                Box::new(AvgPool1d::new(2, 2, 0).unwrap())
            },
            Box::new(Conv1d::new(w2, None, Conv1dConfig::default().pads(1, 1).dilation(1)).unwrap()),
            Box::new(Softplus::default()),
            Box::new(AvgPool1d::global()),
            Box::new(Flatten),
            Box::new(Dense::new(dense, Some(ndarray::array![0.0, 0.1, -0.1])).unwrap()),
        ],
    )
    .unwrap();
    let (n, r, l) = (3, 7, 16);
    let mut state = 17u64;
    let mut base = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 4) as usize
    };
    let x = ndarray::stack(
        Axis(0),
        &(0..n)
            .map(|_| one_hot(&(0..l).map(|_| base()).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
            .iter()
            .map(|a| a.index_axis(Axis(0), 0))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let refs = ArrayD::from_shape_fn(IxDyn(&[n, r, 4, l]), |_| 0.0);
    let mut refs = refs;
    for s in 0..n {
        for k in 0..r {
            for p in 0..l {
                refs[[s, k, base(), p]] = 1.0;
            }
        }
    }
    let target = Target::PerSample(vec![0, 2, 1]);
    let out = deep_lift_shap(&net, &x.clone().into_dyn(), &refs, &target).unwrap();
    let rule = DeepLift::rescale().with_threshold(1e-6).unwrap();
    for s in 0..n {
        let class = [0, 2, 1][s];
        let xs = ndarray::stack(Axis(0), &vec![x.index_axis(Axis(0), s); r])
            .unwrap()
            .into_dyn();
        let bs = refs.index_axis(Axis(0), s).to_owned();
        let d = net
            .deeplift(
                &xs,
                &Target::Class(class),
                &rule,
                &Baseline::PerSample(bs.clone()),
            )
            .unwrap();
        let mut hyp = ndarray::Array2::<f64>::zeros((4, l));
        for k in 0..r {
            for p in 0..l {
                let b: f64 = (0..4).map(|c| bs[[k, c, p]] * d.multipliers[[k, c, p]]).sum();
                for c in 0..4 {
                    hyp[[c, p]] += (d.multipliers[[k, c, p]] - b) / r as f64;
                }
            }
            assert!(
                (out.pair_deltas[[s, k]] - d.delta[k]).abs() <= 1e-12,
                "pair delta {s} {k}"
            );
        }
        let got = out.hypothetical.index_axis(Axis(0), s);
        let dev = got
            .iter()
            .zip(hyp.iter())
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        let scale = hyp.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
        assert!(
            dev <= 1e-12 * scale,
            "max-pool {max_pool}, sequence {s}: hypothetical off by {dev:e} of {scale:e}"
        );
        assert!((out.output[s] - d.output[[0, class]]).abs() <= 1e-12);
        let mean_ref: f64 = (0..r).map(|k| d.baseline_output[[k, class]]).sum::<f64>() / r as f64;
        assert!((out.reference_output[s] - mean_ref).abs() <= 1e-12);
        assert!(out.gap[s].abs() <= 1e-10, "gap {}", out.gap[s]);
    }
}
