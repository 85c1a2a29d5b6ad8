//! `relevance::eval`: perturbation curves and similarity functions against the real Quantus
//! 0.6.0 (`tests/fixtures/eval_quantus.json`, from `tools/gen_eval_fixtures.py`), AOPC and
//! ABPC in closed form, MoRF of the true gradient × input on linear models, the cascading
//! randomisation check, and typed errors for bad settings.

use crate::common::bounds::{QUANTUS_CASES, QUANTUS_F32, QUANTUS_F64, SIMILARITY};
use crate::common::{load, network, rel_dev, tensor, Rng};
use ndarray::{s, Array1, Array2, ArrayD, Axis, IxDyn};
use relevance::eval::{
    random_attribution, spearman, ssim, CascadingRandomisation, Order, Perturbation, RegionPerturbation,
    Score,
};
use relevance::{Dense, Error, Flatten, Float, Network, Target};
use serde_json::Value;
use std::sync::Arc;

fn targets(v: &Value) -> Target<f64> {
    Target::PerSample(
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap() as usize)
            .collect(),
    )
}

fn as_f64<F: Float>(a: &Array2<F>) -> ArrayD<f64> {
    a.mapv(|v| v.as_f64()).into_dyn()
}

/// Runs every Quantus perturbation case in float type `F`; returns the worst deviation.
fn quantus_perturbation<F: Float>(tol: f64) -> f64 {
    let fx = load("eval_quantus");
    let mut worst = 0.0_f64;
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), QUANTUS_CASES);
    for case in cases {
        let spec = &fx["networks"][case["net"].as_str().unwrap()];
        let net = network::<F>(spec);
        let x = tensor::<F>(&spec["x"]);
        let a = tensor::<F>(&spec["attribution"]);
        let target = match targets(&spec["target"]) {
            Target::PerSample(v) => Target::PerSample(v),
            _ => unreachable!(),
        };
        let want = tensor::<f64>(&case["result"]);
        let got: ArrayD<f64> = match case["kind"].as_str().unwrap() {
            "pixel_flipping" => {
                let settings = RegionPerturbation {
                    regions_per_step: case["features_in_step"].as_u64().unwrap() as usize,
                    ..RegionPerturbation::pixel_flipping()
                };
                let c = settings.evaluate(&net, &x, &a, &target).unwrap();
                let score = match case["softmax"].as_bool() {
                    Some(true) => Score::Probability,
                    Some(false) => Score::Logit,
                    None => panic!("softmax: {}", case["softmax"]),
                };
                // Quantus records the score after each step, not f(x)
                as_f64(&c.curve(Order::MoRF, score).slice(s![.., 1..]).to_owned())
            }
            "region_perturbation" => {
                let settings = RegionPerturbation {
                    max_steps: Some(case["regions_evaluation"].as_u64().unwrap() as usize),
                    ..RegionPerturbation::patches(case["patch"].as_u64().unwrap() as usize)
                };
                let c = settings.evaluate(&net, &x, &a, &target).unwrap();
                let order = match case["order"].as_str().unwrap() {
                    "morf" => Order::MoRF,
                    "lerf" => Order::LeRF,
                    other => panic!("unknown order {other}"),
                };
                let curve = c.curve(order, Score::Logit);
                // Quantus records f(x) − f(x_k), k ≥ 1
                let diff = curve.slice(s![.., 1..]).to_owned();
                let f0 = curve.column(0).to_owned().insert_axis(Axis(1));
                as_f64(&(&f0 - &diff))
            }
            other => panic!("unknown case {other}"),
        };
        let dev = rel_dev(&got, &want);
        assert!(dev < tol, "{case:?}: deviation {dev:e}", case = case["kind"]);
        worst = worst.max(dev);
    }
    worst
}

#[test]
fn perturbation_curves_match_quantus() {
    let (d64, d32) = (
        quantus_perturbation::<f64>(QUANTUS_F64),
        quantus_perturbation::<f32>(QUANTUS_F32),
    );
    println!(
        "worst deviation from Quantus: f64 {d64:.2e} (bound {QUANTUS_F64:e}), f32 {d32:.2e} (bound {QUANTUS_F32:e})"
    );
}

#[test]
fn similarity_matches_scipy_and_skimage() {
    let fx = load("eval_quantus");
    for set in fx["similarity"].as_array().unwrap() {
        let (a, b) = (tensor::<f64>(&set["a"]), tensor::<f64>(&set["b"]));
        for i in 0..a.shape()[0] {
            let (ai, bi) = (a.index_axis(Axis(0), i), b.index_axis(Axis(0), i));
            let abs_norm = |m: ndarray::ArrayViewD<'_, f64>| {
                let m = m.mapv(f64::abs);
                let max = m.iter().copied().fold(0.0, f64::max);
                m / max
            };
            let (na, nb) = (abs_norm(ai.view()), abs_norm(bi.view()));
            let flat = |m: &ArrayD<f64>| m.clone().into_shape_with_order(IxDyn(&[m.len()])).unwrap();
            let checks = [
                ("spearman", spearman(&ai, &bi).unwrap(), &set["spearman"]),
                (
                    "spearman |a|",
                    spearman(&na.view(), &nb.view()).unwrap(),
                    &set["spearman_abs"],
                ),
                (
                    "ssim flat",
                    ssim(&flat(&na).view(), &flat(&nb).view(), 7).unwrap(),
                    &set["ssim_flat"],
                ),
                (
                    "ssim 2-d",
                    ssim(&na.view(), &nb.view(), 7).unwrap(),
                    &set["ssim_2d"],
                ),
            ];
            for (what, got, want) in checks {
                let want = tensor::<f64>(want)[[i]];
                assert!(
                    (got - want).abs() < SIMILARITY,
                    "{what} sample {i}: {got} vs {want}"
                );
            }
        }
    }
}

/// `f(x) = Σ w_i x_i` on a `1 × h × w` image.
fn linear(w: &[f64], h: usize, width: usize, bias: f64) -> Network<f64> {
    let dense = Dense::new(
        Array2::from_shape_vec((1, w.len()), w.to_vec()).unwrap(),
        Some(Array1::from_elem(1, bias)),
    )
    .unwrap();
    Network::new(&[1, h, width], vec![Box::new(Flatten), Box::new(dense)]).unwrap()
}

#[test]
fn aopc_closed_form() {
    // f(x) = Σ w_i x_i with the weights a permutation of 1..=n, x = 1, perturbation 0 and
    // R = w (= gradient × input). MoRF removes the k largest weights: f(x) − f(x_k) =
    // kn − k(k−1)/2, so AOPC_MoRF = 1/(n+1) Σ_{k=0..n} (kn − k(k−1)/2) = n(2n+1)/6. LeRF
    // removes the k smallest: k(k+1)/2, AOPC_LeRF = n(n+2)/6; ABPC = n(n−1)/6.
    let n = 25;
    let mut w: Vec<f64> = (1..=n).map(|v| v as f64).collect();
    let mut rng = Rng::new(5);
    for i in (1..n).rev() {
        w.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let net = linear(&w, 5, 5, 0.0);
    let x = ArrayD::from_elem(IxDyn(&[1, 1, 5, 5]), 1.0);
    let r = ArrayD::from_shape_vec(IxDyn(&[1, 1, 5, 5]), w.clone()).unwrap();
    let settings = RegionPerturbation {
        perturbation: Perturbation::Constant(0.0),
        ..RegionPerturbation::pixel_flipping()
    };
    let c = settings.evaluate(&net, &x, &r, &Target::Class(0)).unwrap();
    let n = n as f64;
    assert!((c.aopc(Order::MoRF, Score::Logit)[0] - n * (2.0 * n + 1.0) / 6.0).abs() < 1e-9);
    assert!((c.aopc(Order::LeRF, Score::Logit)[0] - n * (n + 2.0) / 6.0).abs() < 1e-9);
    assert!((c.abpc(Score::Logit)[0] - n * (n - 1.0) / 6.0).abs() < 1e-9);
    assert_eq!(c.perturbed.len(), 26);
    // two regions per step: 13 steps, the last one removes the 25th pixel alone
    let c2 = RegionPerturbation {
        regions_per_step: 2,
        ..settings
    }
    .evaluate(&net, &x, &r, &Target::Class(0))
    .unwrap();
    assert_eq!(
        c2.perturbed,
        (0..=13).map(|k| (2 * k).min(25)).collect::<Vec<_>>()
    );
    assert_eq!(c2.morf[[0, 13]], 0.0);
}

#[test]
fn morf_of_gradient_times_input_is_analytic_on_linear_models() {
    // R_i = w_i x_i exactly (the gradient of a linear model is w); replacing pixel i by 0
    // removes w_i x_i, so f(x_k) = b + Σ over the pixels not among the k largest R.
    let (h, wd) = (6, 7);
    let mut rng = Rng::new(11);
    let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    let w: Vec<f64> = (0..h * wd).map(|_| uniform()).collect();
    let bias = 0.3;
    let net = linear(&w, h, wd, bias);
    let x = ArrayD::from_shape_simple_fn(IxDyn(&[3, 1, h, wd]), &mut uniform);
    let target = Target::Class(0);
    let grad = net.gradient(&x, &target).unwrap();
    let r = &grad * &x;
    let settings = RegionPerturbation {
        perturbation: Perturbation::Constant(0.0),
        ..RegionPerturbation::pixel_flipping()
    };
    let c = settings.evaluate(&net, &x, &r, &target).unwrap();
    for i in 0..3 {
        let ri: Vec<f64> = r.index_axis(Axis(0), i).iter().copied().collect();
        let mut order: Vec<usize> = (0..ri.len()).collect();
        order.sort_by(|&p, &q| ri[q].partial_cmp(&ri[p]).unwrap());
        let mut remaining: f64 = ri.iter().sum::<f64>() + bias;
        for (k, &p) in std::iter::once(&usize::MAX).chain(order.iter()).enumerate() {
            if p != usize::MAX {
                remaining -= ri[p];
            }
            assert!((c.morf[[i, k]] - remaining).abs() < 1e-12, "sample {i} step {k}");
        }
    }
    // the true explanation beats chance (a seeded random attribution) on every sample
    let random = random_attribution::<f64>(x.shape(), 1);
    let cr = settings.evaluate(&net, &x, &random, &target).unwrap();
    let (good, chance) = (c.abpc(Score::Logit), cr.abpc(Score::Logit));
    assert!(
        good.iter().zip(chance.iter()).all(|(g, r)| g > r),
        "{good} vs {chance}"
    );
}

#[test]
fn batching_and_perturbations_are_deterministic() {
    let fx = load("eval_quantus");
    let spec = &fx["networks"]["mlp2"];
    let net = network::<f64>(spec);
    let (x, a) = (tensor::<f64>(&spec["x"]), tensor::<f64>(&spec["attribution"]));
    let target = targets(&spec["target"]);
    let perturbations = [
        Perturbation::Constant(0.5),
        Perturbation::SampleMin,
        Perturbation::Reference(x.index_axis(Axis(0), 1).to_owned()),
        Perturbation::Uniform {
            low: 0.0,
            high: 1.0,
            seed: 9,
        },
        Perturbation::Blur { radius: 1 },
    ];
    for p in perturbations {
        let big = RegionPerturbation {
            perturbation: p.clone(),
            ..RegionPerturbation::patches(2)
        };
        let one = RegionPerturbation {
            batch_size: 1,
            ..big.clone()
        };
        let (cb, c1) = (
            big.evaluate(&net, &x, &a, &target).unwrap(),
            one.evaluate(&net, &x, &a, &target).unwrap(),
        );
        assert_eq!(cb, c1, "{p:?}");
        // every region replaced: MoRF and LeRF end at the same image
        let last = cb.morf.ncols() - 1;
        assert!((cb.morf[[0, last]] - cb.lerf[[0, last]]).abs() < 1e-12, "{p:?}");
        // sample 0 alone gives its row of the batch's curves (noise is per sample)
        let x0 = x.slice_axis(Axis(0), (0..1).into()).to_owned();
        let a0 = a.slice_axis(Axis(0), (0..1).into()).to_owned();
        let t0 = match &target {
            Target::PerSample(v) => Target::Class(v[0]),
            _ => unreachable!(),
        };
        let alone = big.evaluate(&net, &x0, &a0, &t0).unwrap();
        assert_eq!(alone.morf.row(0), cb.morf.row(0), "{p:?}");
        // one order alone gives the same curves as both together
        for order in [Order::MoRF, Order::LeRF] {
            let single = one.evaluate_order(&net, &x, &a, &target, order).unwrap();
            assert_eq!(single.order, order);
            for score in [Score::Logit, Score::Probability] {
                assert_eq!(single.curve(score), cb.curve(order, score), "{p:?} {order:?}");
                assert_eq!(single.aopc(score), cb.aopc(order, score), "{p:?} {order:?}");
            }
            assert_eq!((&single.perturbed, single.regions), (&cb.perturbed, cb.regions));
        }
    }
}

#[cfg(feature = "safetensors")]
#[test]
fn randomising_every_layer_decorrelates_lrp_epsilon() {
    use relevance::io::{load_safetensors, Digits};
    use relevance::LrpEpsilon;
    let dir = env!("CARGO_MANIFEST_DIR");
    let net = Arc::new(
        load_safetensors::<f32>(
            format!("{dir}/models/digits.json"),
            format!("{dir}/models/digits.safetensors"),
        )
        .unwrap(),
    );
    let digits = Digits::load(format!("{dir}/data/digits_test.bin")).unwrap();
    let idx: Vec<usize> = (0..16).collect();
    let x = digits.images::<f32>(&idx).unwrap();
    let target = Target::PerSample(idx.iter().map(|&i| digits.labels()[i] as usize).collect());
    let rule = LrpEpsilon::new(0.25).unwrap();
    let explain =
        |n: &Network<f32>, x: &ArrayD<f32>, t: &Target<f32>| Ok(n.attribute(x, t, &rule)?.relevance);
    let result = CascadingRandomisation::default()
        .run(&net, &x, &target, explain)
        .unwrap();
    let steps = result.layers.len();
    assert_eq!(steps, 4, "{:?}", result.layers); // conv1, conv2, fc1, fc2
                                                 // the original network is untouched: explaining it again gives the same bits
    assert_eq!(explain(&net, &x, &target).unwrap(), result.original);
    // zero randomised layers: a network of shared nodes explains exactly as the original
    let same = CascadingRandomisation::default().randomised(&net, 0).unwrap();
    assert_eq!(explain(&same, &x, &target).unwrap(), result.original);
    // every layer random: the signed map's rank correlation with the original is near 0
    // on average (seeded, 16 digits)
    let last = result.spearman.row(steps - 1);
    let mean = last.mean().unwrap();
    println!(
        "Spearman(R) after each step: {:?}",
        result.spearman.mean_axis(Axis(1)).unwrap()
    );
    println!(
        "Spearman(|R|) after each step: {:?}",
        result.spearman_abs.mean_axis(Axis(1)).unwrap()
    );
    println!(
        "SSIM after each step: {:?}",
        result.ssim.mean_axis(Axis(1)).unwrap()
    );
    assert!(
        mean.abs() < 0.2,
        "mean Spearman of R after full randomisation: {mean}"
    );
}

#[test]
fn bad_settings_are_typed_errors() {
    let net = linear(&[1.0; 16], 4, 4, 0.0);
    let x = ArrayD::from_elem(IxDyn(&[2, 1, 4, 4]), 1.0);
    let r = x.clone();
    let t = Target::Class(0);
    let run = |s: RegionPerturbation<f64>| s.evaluate(&net, &x, &r, &t);
    let invalid = |e: Error| matches!(e, Error::InvalidParameter { .. });
    assert!(
        invalid(run(RegionPerturbation::patches(5)).unwrap_err()),
        "patch larger than the image"
    );
    assert!(invalid(
        RegionPerturbation::patches(5)
            .evaluate_order(&net, &x, &r, &t, Order::MoRF)
            .unwrap_err()
    ));
    assert!(
        invalid(run(RegionPerturbation::patches(0)).unwrap_err()),
        "zero patch"
    );
    assert!(invalid(
        run(RegionPerturbation {
            max_steps: Some(0),
            ..Default::default()
        })
        .unwrap_err()
    ));
    assert!(invalid(
        run(RegionPerturbation {
            regions_per_step: 0,
            ..Default::default()
        })
        .unwrap_err()
    ));
    assert!(invalid(
        run(RegionPerturbation {
            batch_size: 0,
            ..Default::default()
        })
        .unwrap_err()
    ));
    let p = |perturbation| RegionPerturbation {
        perturbation,
        ..Default::default()
    };
    assert!(invalid(run(p(Perturbation::Blur { radius: 0 })).unwrap_err()));
    assert!(invalid(
        run(p(Perturbation::Uniform {
            low: 1.0,
            high: 0.0,
            seed: 0
        }))
        .unwrap_err()
    ));
    assert!(invalid(run(p(Perturbation::Constant(f64::NAN))).unwrap_err()));
    let wrong = ArrayD::zeros(IxDyn(&[3, 3]));
    assert!(matches!(
        run(p(Perturbation::Reference(wrong.clone()))).unwrap_err(),
        Error::Shape { .. }
    ));
    let s = RegionPerturbation::<f64>::pixel_flipping();
    assert!(matches!(
        s.evaluate(&net, &x, &wrong, &t).unwrap_err(),
        Error::Shape { .. }
    ));
    let mut nan = r.clone();
    nan[[1, 0, 2, 2]] = f64::NAN;
    assert!(matches!(
        s.evaluate(&net, &x, &nan, &t).unwrap_err(),
        Error::NonFinite { .. }
    ));
    assert!(matches!(
        s.evaluate(&net, &x, &r, &Target::Class(1)).unwrap_err(),
        Error::TargetOutOfRange { .. }
    ));
    assert!(matches!(
        s.evaluate(&net, &x, &r, &Target::PerSample(vec![0])).unwrap_err(),
        Error::BatchMismatch { .. }
    ));
    let relevance_target = Target::Relevance(ArrayD::zeros(IxDyn(&[2, 1])));
    assert!(matches!(
        s.evaluate(&net, &x, &r, &relevance_target).unwrap_err(),
        Error::Unsupported { .. }
    ));
    let empty = ArrayD::zeros(IxDyn(&[0, 1, 4, 4]));
    assert!(matches!(
        s.evaluate(&net, &empty, &empty, &t).unwrap_err(),
        Error::EmptyBatch
    ));
    let small = ArrayD::<f64>::zeros(IxDyn(&[5, 5]));
    assert!(matches!(
        ssim(&small.view(), &small.view(), 7).unwrap_err(),
        Error::InvalidParameter { .. }
    ));
    let other = ArrayD::<f64>::zeros(IxDyn(&[5, 4]));
    assert!(matches!(
        spearman(&small.view(), &other.view()).unwrap_err(),
        Error::Shape { .. }
    ));
    // a network without dense or convolutional layers cannot be randomised
    let flat = Arc::new(Network::<f64>::new(&[4], vec![Box::new(Flatten)]).unwrap());
    let err = CascadingRandomisation::default()
        .run(
            &flat,
            &ArrayD::zeros(IxDyn(&[1, 4])),
            &Target::Class(0),
            |_, x, _| Ok(x.clone()),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }));
}
