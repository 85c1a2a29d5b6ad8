//! DeepLIFT: the paper's worked examples (Shrikumar et al. 2017, sec. 3.6 and fig. 3),
//! the baseline API and its errors, and the gradient rules.

use ndarray::{array, Array2, ArrayD, Axis};
use relevance::rules::{MaxPoolRule, NonlinearRule};
use relevance::{
    Baseline, DeepLift, DeepLiftOptions, Dense, Error, Gradient, GradientTimesInput, Layer, Lrp0, MaxPool2d,
    Network, Options, Relu, Seed, Target,
};

type Net = Network<f64>;

fn close(a: &ArrayD<f64>, b: &ArrayD<f64>, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.iter().zip(b.iter()) {
        assert!((x - y).abs() <= tol, "{a} vs {b}");
    }
}

fn dense(w: Array2<f64>, b: Option<ndarray::Array1<f64>>) -> Box<dyn Layer<f64>> {
    Box::new(Dense::new(w, b).unwrap())
}

/// y = 1 − relu(1 − i1 − i2): saturating unit, at (1, 1) against (0, 0).
fn saturating() -> Net {
    Net::new(
        &[2],
        vec![
            dense(array![[-1.0, -1.0]], Some(array![1.0])),
            Box::new(Relu),
            dense(array![[-1.0]], Some(array![1.0])),
        ],
    )
    .unwrap()
}

/// o = i1 − relu(i1 − i2) (the "min" network, fig. 3), written as
/// −relu(i1 − i2) + relu(i1), equal for i1 ≥ 0.
fn min_net() -> Net {
    Net::new(
        &[2],
        vec![
            dense(array![[1.0, -1.0], [1.0, 0.0]], None),
            Box::new(Relu),
            dense(array![[-1.0, 1.0]], None),
        ],
    )
    .unwrap()
}

#[test]
fn saturating_unit_rescale_splits_evenly() {
    let x = array![[1.0, 1.0]].into_dyn();
    for rule in [
        DeepLift::rescale(),
        DeepLift::reveal_cancel(),
        DeepLift::default(),
    ] {
        let a = saturating()
            .deeplift(&x, &Target::Class(0), &rule, &Baseline::Zero)
            .unwrap();
        close(&a.attribution, &array![[0.5, 0.5]].into_dyn(), 1e-15);
        assert!(a.delta[0].abs() < 1e-15, "{rule:?}");
        // the gradient is zero here: gradient × input misses the whole effect
        let g = saturating()
            .attribute_with(
                &x,
                &Target::Class(0),
                &GradientTimesInput,
                Options {
                    seed: Seed::OneHot,
                    ..Options::default()
                },
            )
            .unwrap();
        close(&g.relevance, &array![[0.0, 0.0]].into_dyn(), 0.0);
    }
}

#[test]
fn min_network_rescale_and_reveal_cancel() {
    let x = array![[3.0, 1.0]].into_dyn();
    let t = Target::Class(0);
    let r = min_net()
        .deeplift(&x, &t, &DeepLift::rescale(), &Baseline::Zero)
        .unwrap();
    close(&r.attribution, &array![[0.0, 1.0]].into_dyn(), 1e-15);
    let rc = min_net()
        .deeplift(&x, &t, &DeepLift::reveal_cancel(), &Baseline::Zero)
        .unwrap();
    close(&rc.attribution, &array![[0.5, 0.5]].into_dyn(), 1e-15);
    // dense below the ReLU: the mixed default uses RevealCancel too
    let d = min_net()
        .deeplift(&x, &t, &DeepLift::default(), &Baseline::Zero)
        .unwrap();
    close(&d.attribution, &rc.attribution, 0.0);
    for a in [&r, &rc, &d] {
        assert_eq!(a.total[0], 1.0);
        assert!(a.delta[0].abs() < 1e-15);
    }
}

#[test]
fn relu_threshold_example_gives_delta() {
    // y = relu(x − 10) at x = 10 + δ against 0: the attribution is δ, though Δx = 10 + δ.
    let net = Net::new(
        &[1],
        vec![dense(array![[1.0]], Some(array![-10.0])), Box::new(Relu)],
    )
    .unwrap();
    for delta in [1e-3, 0.5, 2.0] {
        let x = array![[10.0 + delta]].into_dyn();
        for rule in [DeepLift::rescale(), DeepLift::reveal_cancel()] {
            let a = net
                .deeplift(&x, &Target::Class(0), &rule, &Baseline::Zero)
                .unwrap();
            assert!(
                (a.attribution[[0, 0]] - delta).abs() < 1e-12,
                "{rule:?}: {}",
                a.attribution
            );
        }
    }
}

#[test]
fn per_layer_contributions_all_sum_to_the_difference() {
    let x = array![[3.0, 1.0], [-1.0, 2.0]].into_dyn();
    for rule in [DeepLift::rescale(), DeepLift::reveal_cancel()] {
        let a = min_net()
            .deeplift_with(
                &x,
                &Target::Class(0),
                &rule,
                &Baseline::Zero,
                DeepLiftOptions::keep_layers(),
            )
            .unwrap();
        let layers = a.layers.as_ref().unwrap();
        assert_eq!(layers.len(), 4);
        assert_eq!(layers[0], a.attribution);
        for l in layers {
            let s = l.sum_axis(Axis(1));
            for (s, t) in s.iter().zip(a.total.iter()) {
                assert!((s - t).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn baselines_shared_per_sample_and_distribution_agree() {
    let net = min_net();
    let x = array![[3.0, 1.0], [-1.0, 2.0], [0.5, 0.25]].into_dyn();
    let t = Target::PerSample(vec![0, 0, 0]);
    let rule = DeepLift::reveal_cancel();
    let b = array![0.5, -1.0].into_dyn();
    let shared = net.deeplift(&x, &t, &rule, &Baseline::Shared(b.clone())).unwrap();
    let shared1 = net
        .deeplift(&x, &t, &rule, &Baseline::Shared(b.clone().insert_axis(Axis(0))))
        .unwrap();
    close(&shared.attribution, &shared1.attribution, 0.0);
    let tiled = ndarray::stack(Axis(0), &[b.view(), b.view(), b.view()]).unwrap();
    let per = net.deeplift(&x, &t, &rule, &Baseline::PerSample(tiled)).unwrap();
    close(&shared.attribution, &per.attribution, 0.0);
    let k1 = net
        .deeplift(
            &x,
            &t,
            &rule,
            &Baseline::Distribution(b.clone().insert_axis(Axis(0))),
        )
        .unwrap();
    close(&shared.attribution, &k1.attribution, 0.0);

    // K = 2: the mean of the two single-baseline attributions (DeepLiftShap)
    let b2 = array![1.0, 1.0].into_dyn();
    let dist = ndarray::stack(Axis(0), &[b.view(), b2.view()]).unwrap();
    let shap = net
        .deeplift(&x, &t, &rule, &Baseline::Distribution(dist))
        .unwrap();
    let other = net.deeplift(&x, &t, &rule, &Baseline::Shared(b2)).unwrap();
    close(
        &shap.attribution,
        &((&shared.attribution + &other.attribution) * 0.5),
        1e-15,
    );
    close(
        &shap.baseline_output,
        &((&shared.baseline_output + &other.baseline_output) * 0.5),
        1e-15,
    );
    assert_eq!(shap.output, shared.output);
    for d in shap.delta.iter() {
        assert!(d.abs() < 1e-12);
    }
    assert_eq!(shap.attribution.shape(), &[3, 2]);
}

#[test]
fn zero_baseline_is_the_default_and_a_shared_zero() {
    let x = array![[3.0, 1.0]].into_dyn();
    let a = min_net()
        .deeplift(&x, &Target::Class(0), &DeepLift::default(), &Baseline::Zero)
        .unwrap();
    let b = min_net()
        .deeplift(
            &x,
            &Target::Class(0),
            &DeepLift::default(),
            &Baseline::Shared(array![0.0, 0.0].into_dyn()),
        )
        .unwrap();
    assert_eq!(a.attribution, b.attribution);
    close(&a.multipliers, &array![[1.0 / 6.0, 0.5]].into_dyn(), 1e-15);
}

#[test]
fn baseline_errors_are_typed() {
    let net = min_net();
    let x = array![[3.0, 1.0], [1.0, 1.0]].into_dyn();
    let t = Target::Class(0);
    let rule = DeepLift::default();
    let err = |b: Baseline<f64>| net.deeplift(&x, &t, &rule, &b).unwrap_err();
    assert!(matches!(
        err(Baseline::Shared(array![1.0, 2.0, 3.0].into_dyn())),
        Error::Shape { .. }
    ));
    assert!(matches!(
        err(Baseline::Shared(array![[1.0, 2.0], [1.0, 2.0]].into_dyn())),
        Error::Shape { .. }
    ));
    assert!(matches!(
        err(Baseline::PerSample(array![[1.0, 2.0]].into_dyn())),
        Error::BatchMismatch { .. }
    ));
    assert!(matches!(
        err(Baseline::PerSample(array![1.0, 2.0].into_dyn())),
        Error::Shape { .. }
    ));
    assert!(matches!(
        err(Baseline::Distribution(ArrayD::zeros(vec![0, 2]))),
        Error::Shape { .. }
    ));
    assert!(matches!(
        err(Baseline::Distribution(array![[[1.0, 2.0]]].into_dyn())),
        Error::Shape { .. }
    ));
    let nan = err(Baseline::Shared(array![1.0, f64::NAN].into_dyn()));
    assert!(matches!(nan, Error::NonFinite { index: 1, .. }), "{nan}");
    let inf = err(Baseline::Distribution(
        array![[1.0, 2.0], [f64::INFINITY, 0.0]].into_dyn(),
    ));
    assert!(matches!(inf, Error::NonFinite { index: 2, .. }), "{inf}");
    // targets and inputs keep their own errors
    let e = net
        .deeplift(&x, &Target::PerSample(vec![0]), &rule, &Baseline::Zero)
        .unwrap_err();
    assert!(matches!(e, Error::BatchMismatch { batch: 2, got: 1, .. }));
    let e = net
        .deeplift(&x, &Target::Class(3), &rule, &Baseline::Zero)
        .unwrap_err();
    assert!(matches!(e, Error::TargetOutOfRange { .. }));
    let e = net
        .deeplift(&array![[f64::NAN, 1.0]].into_dyn(), &t, &rule, &Baseline::Zero)
        .unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }));
}

#[test]
fn rule_parameters() {
    let d = DeepLift::reveal_cancel()
        .with_max_pool(MaxPoolRule::Gradient)
        .with_threshold(1e-7)
        .unwrap();
    assert_eq!(d.nonlinear(), NonlinearRule::RevealCancel);
    assert_eq!(d.max_pool(), MaxPoolRule::Gradient);
    assert_eq!(d.threshold(), 1e-7);
    assert!(DeepLift::rescale().with_threshold(f64::NAN).is_err());
    assert_eq!(DeepLift::rescale().nonlinear(), NonlinearRule::Rescale);
}

#[test]
fn cross_max_conserves_where_gradient_routing_does_not() {
    // one 2×2 pool; x has its maximum top-left, the baseline bottom-right
    let net = Net::new(
        &[1, 2, 2],
        vec![
            Box::new(MaxPool2d::square(2).unwrap()),
            Box::new(relevance::Flatten),
        ],
    )
    .unwrap();
    let x = array![[[[4.0, 1.0], [0.0, 2.0]]]].into_dyn();
    let b = array![[[0.0, 0.0], [1.0, 3.0]]].into_dyn();
    let cm = net
        .deeplift(
            &x,
            &Target::Class(0),
            &DeepLift::rescale(),
            &Baseline::Shared(b.clone()),
        )
        .unwrap();
    // ŷ = 4: (4 − 3) goes to x's argmax, nothing to x̄'s
    close(
        &cm.attribution,
        &array![[[[1.0, 0.0], [0.0, 0.0]]]].into_dyn(),
        1e-15,
    );
    assert_eq!(cm.delta[0], 0.0);
    let g = DeepLift::rescale().with_max_pool(MaxPoolRule::Gradient);
    let gr = net
        .deeplift(&x, &Target::Class(0), &g, &Baseline::Shared(b))
        .unwrap();
    // gradient routing: multiplier 1 at x's argmax, times Δx = 4
    assert_eq!(gr.attribution[[0, 0, 0, 0]], 4.0);
    assert_eq!(gr.delta[0], -3.0);
}

#[test]
fn gradient_rules_match_the_network_gradient_and_lrp0() {
    let net = Net::new(
        &[3],
        vec![
            dense(
                array![[1.0, -2.0, 0.5], [0.3, 1.0, -1.0], [2.0, 0.1, 0.2]],
                Some(array![0.1, -0.2, 0.3]),
            ),
            Box::new(Relu),
            dense(
                array![[1.0, -1.0, 0.5], [0.2, 0.4, -0.6]],
                Some(array![0.05, -0.1]),
            ),
        ],
    )
    .unwrap();
    let x = array![[1.0, 0.5, -0.5], [0.2, -1.0, 2.0]].into_dyn();
    let t = Target::PerSample(vec![0, 1]);
    let one_hot = Options {
        seed: Seed::OneHot,
        ..Options::default()
    };
    let g = net.attribute_with(&x, &t, &Gradient, one_hot).unwrap();
    close(&g.relevance, &net.gradient(&x, &t).unwrap(), 1e-15);
    let gi = net.attribute_with(&x, &t, &GradientTimesInput, one_hot).unwrap();
    close(&gi.relevance, &(&g.relevance * &x), 1e-15);
    let lrp0 = net.attribute(&x, &t, &Lrp0).unwrap();
    close(&gi.relevance, &lrp0.relevance, 1e-12);
    // DeepLIFT's multipliers with a zero baseline are not the gradient in general, but its
    // attribution sums to f(x) − f(0) where gradient × input does not
    let d = net
        .deeplift(&x, &t, &DeepLift::rescale(), &Baseline::Zero)
        .unwrap();
    for s in d.delta.iter() {
        assert!(s.abs() < 1e-12);
    }
}

#[test]
fn network_is_unchanged_after_attribution() {
    let net = min_net();
    let x = array![[3.0, 1.0]].into_dyn();
    let before = format!("{net:?}");
    let y0 = net.forward(&x).unwrap();
    net.deeplift(
        &x,
        &Target::Class(0),
        &DeepLift::default(),
        &Baseline::Shared(array![1.0, 1.0].into_dyn()),
    )
    .unwrap();
    assert_eq!(format!("{net:?}"), before);
    assert_eq!(net.forward(&x).unwrap(), y0);
}

/// RevealCancel on a one-hidden-layer MLP, written as scalar loops straight from the paper
/// and kundajelab/deeplift (`layers/core.py`, `layers/activations.py`), against the crate.
fn textbook_reveal_cancel(
    w1: &Array2<f64>,
    b1: &[f64],
    w2: &Array2<f64>,
    x: &[f64],
    x0: &[f64],
    c: usize,
) -> Vec<f64> {
    let relu = |v: f64| v.max(0.0);
    let (hidden, inputs) = w1.dim();
    let dx: Vec<f64> = x.iter().zip(x0).map(|(a, b)| a - b).collect();
    let mut m_in = vec![0.0; inputs];
    for j in 0..hidden {
        // Δz⁺, Δz⁻ from the signs of w·Δx (bias excluded)
        let (mut dp, mut dn) = (0.0, 0.0);
        for i in 0..inputs {
            let t = w1[[j, i]] * dx[i];
            if t > 0.0 {
                dp += t;
            } else {
                dn += t;
            }
        }
        let z0: f64 = (0..inputs).map(|i| w1[[j, i]] * x0[i]).sum::<f64>() + b1[j];
        let z: f64 = (0..inputs).map(|i| w1[[j, i]] * x[i]).sum::<f64>() + b1[j];
        let dyp = 0.5 * (relu(z0 + dp) - relu(z0)) + 0.5 * (relu(z0 + dn + dp) - relu(z0 + dn));
        let dyn_ = 0.5 * (relu(z0 + dn) - relu(z0)) + 0.5 * (relu(z0 + dp + dn) - relu(z0 + dp));
        let slope = if z > 0.0 { 1.0 } else { 0.0 };
        let mp = w2[[c, j]] * if dp.abs() < 1e-10 { slope } else { dyp / dp };
        let mn = w2[[c, j]] * if dn.abs() < 1e-10 { slope } else { dyn_ / dn };
        for i in 0..inputs {
            let w = w1[[j, i]];
            let (wp, wn) = (w.max(0.0), w.min(0.0));
            m_in[i] += if dx[i] > 0.0 {
                wp * mp + wn * mn
            } else if dx[i] < 0.0 {
                wn * mp + wp * mn
            } else {
                0.5 * w * (mp + mn)
            };
        }
    }
    m_in.iter().zip(&dx).map(|(m, d)| m * d).collect()
}

#[test]
fn reveal_cancel_matches_a_textbook_implementation() {
    let w1 = array![
        [0.8, -1.2, 0.5, 0.1],
        [-0.4, 0.9, 1.1, -0.7],
        [1.5, 0.2, -0.6, 0.3]
    ];
    let b1 = [0.1, -0.3, 0.2];
    let w2 = array![[1.0, -0.5, 0.8], [-0.3, 1.2, 0.4]];
    let net = Net::new(
        &[4],
        vec![
            dense(w1.clone(), Some(array![0.1, -0.3, 0.2])),
            Box::new(Relu),
            dense(w2.clone(), Some(array![0.05, -0.2])),
        ],
    )
    .unwrap();
    let xs = [
        [1.0, 0.5, -0.5, 2.0],
        [-1.0, 1.5, 0.25, 0.0],
        [0.3, -0.2, 0.9, -1.1],
    ];
    let x0 = [0.2, -0.4, 0.1, 0.0];
    for x in xs {
        for c in 0..2 {
            let xa = ndarray::Array1::from(x.to_vec()).insert_axis(Axis(0)).into_dyn();
            let b = Baseline::Shared(ndarray::Array1::from(x0.to_vec()).into_dyn());
            let a = net
                .deeplift(&xa, &Target::Class(c), &DeepLift::reveal_cancel(), &b)
                .unwrap();
            let want = textbook_reveal_cancel(&w1, &b1, &w2, &x, &x0, c);
            for (g, w) in a.attribution.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-13,
                    "{x:?} class {c}: {} vs {want:?}",
                    a.attribution
                );
            }
            // and RevealCancel differs from Rescale here
            let r = net
                .deeplift(&xa, &Target::Class(c), &DeepLift::rescale(), &b)
                .unwrap();
            assert!((&r.attribution - &a.attribution).iter().any(|d| d.abs() > 1e-3));
        }
    }
}

/// A small CNN with a max-pool (cross-max needs the baseline's pool inputs) for the traced
/// baseline tests.
fn pool_net(seed: u64) -> Net {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let conv = ndarray::Array4::from_shape_fn((3, 2, 3, 3), |_| next());
    let dense_w = Array2::from_shape_fn((4, 3 * 3 * 3), |_| next());
    Net::new(
        &[2, 6, 6],
        vec![
            Box::new(
                relevance::Conv2d::new(
                    conv,
                    Some(array![0.1, -0.2, 0.05]),
                    relevance::Conv2dConfig::default().padding(1),
                )
                .unwrap(),
            ),
            Box::new(Relu),
            Box::new(MaxPool2d::square(2).unwrap()),
            Box::new(relevance::Flatten),
            dense(dense_w, Some(array![0.1, 0.0, -0.1, 0.2])),
        ],
    )
    .unwrap()
}

#[test]
fn a_traced_baseline_gives_the_same_bits_as_the_untraced_one() {
    let net = pool_net(5);
    let x = ArrayD::from_shape_fn(ndarray::IxDyn(&[3, 2, 6, 6]), |d| {
        ((d[1] * 7 + d[2] * 3 + d[3] + d[0]) % 5) as f64 / 4.0
    });
    let shared = ArrayD::from_elem(ndarray::IxDyn(&[2, 6, 6]), 0.25);
    // a batch of 3, and a single sample (whose two forward passes run side by side)
    let one = x.slice_axis(Axis(0), (1..2).into()).to_owned();
    for (x, baseline) in [
        (&x, Baseline::Zero),
        (&x, Baseline::Shared(shared.clone())),
        (&one, Baseline::Zero),
        (&one, Baseline::Shared(shared)),
    ] {
        let traced = net.trace_baseline(&baseline).unwrap();
        assert!(matches!(traced, Baseline::Traced(_)));
        for rule in [
            DeepLift::rescale(),
            DeepLift::reveal_cancel(),
            DeepLift::default(),
        ] {
            let opts = DeepLiftOptions::keep_layers();
            let a = net
                .deeplift_with(x, &Target::Class(1), &rule, &baseline, opts)
                .unwrap();
            let b = net
                .deeplift_with(x, &Target::Class(1), &rule, &traced, opts)
                .unwrap();
            assert_eq!(a.attribution, b.attribution);
            assert_eq!(a.multipliers, b.multipliers);
            assert_eq!(a.baseline_output, b.baseline_output);
            assert_eq!(a.delta, b.delta);
            assert_eq!(a.layers, b.layers);
            // and the same as a per-sample baseline repeating it (traced once per row)
            let rows = match &baseline {
                Baseline::Zero => ArrayD::zeros(x.raw_dim()),
                Baseline::Shared(s) => s.broadcast(x.raw_dim()).unwrap().to_owned(),
                _ => unreachable!(),
            };
            let c = net
                .deeplift(x, &Target::Class(1), &rule, &Baseline::PerSample(rows))
                .unwrap();
            assert_eq!(a.attribution, c.attribution);
        }
        // the traced baseline exposes what it recorded
        let Baseline::Traced(t) = &traced else {
            unreachable!()
        };
        assert_eq!(t.input().shape(), &[1, 2, 6, 6]);
        assert_eq!(t.output().shape(), &[1, 4]);
        assert_eq!(net.trace_baseline(&traced).unwrap(), traced);
    }
}

#[test]
fn a_traced_baseline_is_refused_by_another_network_and_only_shared_baselines_trace() {
    let (a, b) = (pool_net(5), pool_net(5));
    let traced = a.trace_baseline(&Baseline::Zero).unwrap();
    let x = ArrayD::zeros(ndarray::IxDyn(&[1, 2, 6, 6]));
    let err = b
        .deeplift(&x, &Target::Class(0), &DeepLift::rescale(), &traced)
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("another network"), "{err}");
    assert!(matches!(
        b.trace_baseline(&traced),
        Err(Error::Unsupported { .. })
    ));
    let per = Baseline::PerSample(ArrayD::zeros(ndarray::IxDyn(&[1, 2, 6, 6])));
    assert!(matches!(a.trace_baseline(&per), Err(Error::Unsupported { .. })));
    let dist = Baseline::Distribution(ArrayD::zeros(ndarray::IxDyn(&[2, 2, 6, 6])));
    assert!(matches!(a.trace_baseline(&dist), Err(Error::Unsupported { .. })));
    // a bad shared baseline is reported when traced, as when used
    let bad = Baseline::Shared(ArrayD::zeros(ndarray::IxDyn(&[2, 5, 6])));
    assert!(matches!(a.trace_baseline(&bad), Err(Error::Shape { .. })));
    let nan = Baseline::Shared(ArrayD::from_elem(ndarray::IxDyn(&[2, 6, 6]), f64::NAN));
    assert!(matches!(a.trace_baseline(&nan), Err(Error::NonFinite { .. })));
}

/// The network records the zero baseline's forward pass on the first call that needs it
/// and reuses it: cold and warm calls give the same bits, equal to an explicit zero
/// baseline. The network is large enough (≥ 2^18 activations) that the cold single-sample
/// call runs the two forward passes side by side.
#[test]
fn the_zero_baseline_is_traced_once_and_kept_with_the_same_bits() {
    let mut s = 7u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let conv = ndarray::Array4::from_shape_fn((8, 4, 3, 3), |_| next());
    let dense_w = Array2::from_shape_fn((3, 8 * 64 * 64), |_| next() * 0.05);
    let net = Net::new(
        &[4, 128, 128],
        vec![
            Box::new(
                relevance::Conv2d::new(
                    conv,
                    Some(ndarray::Array1::from_shape_fn(8, |i| 0.1 * i as f64 - 0.3)),
                    relevance::Conv2dConfig::default().padding(1),
                )
                .unwrap(),
            ),
            Box::new(Relu),
            Box::new(MaxPool2d::square(2).unwrap()),
            Box::new(relevance::Flatten),
            dense(dense_w, Some(array![0.1, 0.0, -0.1])),
        ],
    )
    .unwrap();
    let x = ArrayD::from_shape_fn(ndarray::IxDyn(&[1, 4, 128, 128]), |d| {
        ((d[1] * 7 + d[2] * 3 + d[3]) % 11) as f64 / 5.0 - 1.0
    });
    let rule = DeepLift::rescale();
    let zeros = Baseline::Shared(ArrayD::zeros(ndarray::IxDyn(&[4, 128, 128])));
    let explicit = net.deeplift(&x, &Target::Class(2), &rule, &zeros).unwrap();
    assert!(format!("{net:?}").contains("ZeroTrace(not recorded)"));
    let cold = net
        .deeplift(&x, &Target::Class(2), &rule, &Baseline::Zero)
        .unwrap();
    assert!(format!("{net:?}").contains("ZeroTrace(recorded)"));
    let warm = net
        .deeplift(&x, &Target::Class(2), &rule, &Baseline::Zero)
        .unwrap();
    for other in [&cold, &warm] {
        assert_eq!(explicit.attribution, other.attribution);
        assert_eq!(explicit.multipliers, other.multipliers);
        assert_eq!(explicit.baseline_output, other.baseline_output);
    }
    assert!(explicit.attribution.iter().any(|&v| v != 0.0));
    // a batch reuses the same recorded row
    let batch = ndarray::concatenate(Axis(0), &[x.view(), x.view()]).unwrap();
    let two = net
        .deeplift(&batch, &Target::Class(2), &rule, &Baseline::Zero)
        .unwrap();
    assert_eq!(
        two.attribution.index_axis(Axis(0), 1),
        cold.attribution.index_axis(Axis(0), 0)
    );
}
