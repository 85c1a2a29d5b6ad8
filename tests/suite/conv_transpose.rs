//! `ConvTranspose2d` against the real libraries (`tests/fixtures/convtranspose.json`, written
//! by `tools/gen_convtranspose_fixtures.py`): PyTorch's forward pass and input gradient in
//! float64 for several geometries; zennit's LRP (Epsilon, Gamma, ZPlus, EpsilonGammaBox,
//! EpsilonPlus) and captum's DeepLift on two conv → ConvTranspose2d → conv networks; and the
//! ONNX `ConvTranspose` operator on files of both PyTorch exporters, against onnxruntime and
//! against the same network built by hand. Then invariants on random transposed
//! convolutions, the batch-norm merge along the output axis, and the constructor's errors.

use crate::common;

use common::{load, pair, rel_dev, tensor, Rng};
use ndarray::{Array1, ArrayD, Ix1, Ix2, Ix4};
use proptest::prelude::*;
use relevance::{
    Affine, Baseline, BatchNorm2d, Composite, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig,
    DeepLift, Dense, Error, Flatten, Float, Layer, Lrp0, LrpEpsilon, LrpGamma, LrpZPlus, Network, Options,
    Relu, RuleSet, Seed, Step, Target,
};
use serde_json::Value;

/// PyTorch's forward pass and gradient of the layer alone (float64).
const TORCH_F64: f64 = 1e-12;
/// zennit and captum on the networks (float64, relative to the largest magnitude).
const LIBRARIES_F64: f64 = 1e-9;

fn pads(l: &Value) -> ((usize, usize), (usize, usize)) {
    let p: Vec<usize> = l["pads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    ((p[0], p[1]), (p[2], p[3]))
}

fn bias<F: Float>(l: &Value) -> Option<Array1<F>> {
    l.get("bias")
        .filter(|b| !b.is_null())
        .map(|b| tensor::<F>(b).into_dimensionality::<Ix1>().unwrap())
}

fn conv_transpose<F: Float>(l: &Value) -> ConvTranspose2d<F> {
    let (begin, end) = pads(l);
    let config = ConvTranspose2dConfig {
        stride: pair(&l["stride"]),
        dilation: pair(&l["dilation"]),
        groups: l["groups"].as_u64().unwrap() as usize,
        output_padding: pair(&l["output_padding"]),
        ..ConvTranspose2dConfig::default().pads(begin, end)
    };
    let w = tensor::<F>(&l["weight"]).into_dimensionality::<Ix4>().unwrap();
    ConvTranspose2d::new(w, bias(l), config).unwrap()
}

/// A fixture layer.
fn layer<F: Float>(l: &Value) -> Box<dyn Layer<F>> {
    let v1 = |k: &str| tensor::<F>(&l[k]).into_dimensionality::<Ix1>().unwrap();
    match l["type"].as_str().unwrap() {
        "convtranspose2d" => Box::new(conv_transpose::<F>(l)),
        "conv2d" => {
            let (begin, end) = pads(l);
            let config = Conv2dConfig {
                stride: pair(&l["stride"]),
                dilation: pair(&l["dilation"]),
                groups: l["groups"].as_u64().unwrap() as usize,
                ..Conv2dConfig::default().pads(begin, end)
            };
            let w = tensor::<F>(&l["weight"]).into_dimensionality::<Ix4>().unwrap();
            Box::new(Conv2d::new(w, bias(l), config).unwrap())
        }
        "dense" => {
            let w = tensor::<F>(&l["weight"]).into_dimensionality::<Ix2>().unwrap();
            Box::new(Dense::new(w, bias(l)).unwrap())
        }
        "batchnorm" => Box::new(
            BatchNorm2d::new(
                v1("mean"),
                v1("var"),
                v1("weight"),
                v1("bias"),
                l["eps"].as_f64().unwrap(),
            )
            .unwrap(),
        ),
        "relu" => Box::new(Relu),
        "flatten" => Box::new(Flatten),
        other => panic!("unknown layer {other}"),
    }
}

fn network<F: Float>(fx: &Value) -> Network<F> {
    let shape: Vec<usize> = fx["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let layers = fx["layers"].as_array().unwrap().iter().map(layer::<F>).collect();
    Network::new(&shape, layers).unwrap()
}

fn targets(fx: &Value) -> Vec<usize> {
    fx["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn layer_matches_pytorch() {
    let fx = load("convtranspose");
    let mut worst = 0.0_f64;
    let cases = fx["layer_cases"].as_array().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let l = conv_transpose::<f64>(&case["layer"]);
        let x = tensor::<f64>(&case["x"]);
        let y = l.forward(x.view()).unwrap();
        let d = rel_dev(&y, &tensor(&case["y"]));
        assert!(d < TORCH_F64, "{name}: forward deviates by {d:e}");
        assert_eq!(l.output_shape(&x.shape()[1..]).unwrap(), y.shape()[1..]);
        let g = tensor::<f64>(&case["g"]);
        let step = Step::new(0, x.view(), y.view(), g.view());
        let dx = l.gradient(&step, g.view()).unwrap();
        let e = rel_dev(&dx, &tensor(&case["dx"]));
        assert!(e < TORCH_F64, "{name}: input gradient deviates by {e:e}");
        worst = worst.max(d).max(e);
    }
    assert_eq!(cases.len(), 9);
    println!("worst relative deviation from PyTorch (f64): {worst:.2e}");
}

fn rules<F: Float>(name: &str, fx: &Value) -> Box<dyn RuleSet<F>> {
    match name {
        "epsilon" => Box::new(LrpEpsilon::default()),
        "gamma" => Box::new(LrpGamma::default()),
        "zplus" => Box::new(LrpZPlus::new()),
        "epsilon_gamma_box" => {
            {
                // per sample: the fixture holds the bounds of every sample, all equal
                let bound = |k: &str| tensor::<F>(&fx[k]).index_axis_move(ndarray::Axis(0), 0);
                Box::new(Composite::epsilon_gamma_box(bound("low"), bound("high")).unwrap())
            }
        }
        "epsilon_plus" => Box::new(Composite::<F>::epsilon_plus()),
        other => panic!("no rule for {other}"),
    }
}

#[test]
fn networks_match_zennit_and_captum() {
    let fx = load("convtranspose");
    let (mut worst_lrp, mut worst_dl, mut n) = (0.0_f64, 0.0_f64, 0);
    for nf in fx["networks"].as_array().unwrap() {
        let net_name = nf["name"].as_str().unwrap();
        let net = network::<f64>(nf);
        let x = tensor::<f64>(&nf["input"]);
        let d = rel_dev(&net.forward(&x).unwrap(), &tensor(&nf["output"]));
        assert!(d < TORCH_F64, "{net_name}: forward deviates by {d:e}");
        let target = Target::PerSample(targets(nf));
        for case in nf["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let options = Options {
                seed: Seed::OneHot,
                keep_layers: false,
            };
            let a = net
                .attribute_with(&x, &target, &*rules::<f64>(name, nf), options)
                .unwrap();
            let d = rel_dev(&a.relevance, &tensor(&case["relevance"]));
            assert!(
                d < LIBRARIES_F64,
                "{net_name}/{name}: deviates from zennit by {d:e}"
            );
            worst_lrp = worst_lrp.max(d);
            n += 1;
        }
        for case in nf["deeplift"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let baseline = match name {
                "zero" => Baseline::Zero,
                _ => Baseline::Shared(tensor(&case["baseline"])),
            };
            let a = net
                .deeplift(&x, &target, &DeepLift::rescale(), &baseline)
                .unwrap();
            let d = rel_dev(&a.attribution, &tensor(&case["attribution"]));
            assert!(
                d < LIBRARIES_F64,
                "{net_name}/deeplift {name}: deviates from captum by {d:e}"
            );
            // summation to delta (no max-pool here): both conserve
            for (ours, theirs) in a.delta.iter().zip(tensor::<f64>(&case["delta"]).iter()) {
                assert!(
                    ours.abs() < 1e-9 && theirs.abs() < 1e-9,
                    "{net_name}/{name}: delta"
                );
            }
            worst_dl = worst_dl.max(d);
            n += 1;
        }
    }
    assert_eq!(n, 14);
    println!("worst relative deviation: zennit {worst_lrp:.2e}, captum DeepLift {worst_dl:.2e}");
}

/// The network of the ONNX files, batch norm merged into the transposed convolution before
/// it (as the importer does by default), relevance by `rule`.
#[cfg(feature = "onnx")]
#[test]
fn onnx_files_match_onnxruntime_and_the_network_built_by_hand() {
    use relevance::io::{load_onnx_with, OnnxOptions};
    let fx = load("convtranspose");
    let of = &fx["onnx"];
    let by_hand = network::<f64>(of);
    let x = tensor::<f64>(&of["input"]);
    let want = by_hand.forward(&x).unwrap();
    let d = rel_dev(&want, &tensor(&of["torch_output"]));
    // PyTorch ran this model in float32
    assert!(
        d < 1e-6,
        "the network built by hand deviates from PyTorch (float32) by {d:e}"
    );
    let merged = network::<f64>(of).merge_batch_norm().unwrap();
    let d = rel_dev(&merged.forward(&x).unwrap(), &want);
    assert!(
        d < TORCH_F64,
        "merging the batch norm into ConvTranspose2d changes the output by {d:e}"
    );
    let (mut worst_ort, mut worst_expl) = (0.0_f64, 0.0_f64);
    for file in of["files"].as_array().unwrap() {
        let name = file["file"].as_str().unwrap();
        let path = format!("{}/tests/fixtures/onnx/{name}", env!("CARGO_MANIFEST_DIR"));
        for keep in [false, true] {
            let mut options = OnnxOptions::default();
            options.merge_batch_norm = !keep;
            let m64 = load_onnx_with::<f64>(&path, &options).unwrap();
            let m32 = load_onnx_with::<f32>(&path, &options).unwrap();
            let ort = tensor::<f64>(&file["onnxruntime"]);
            let got = m64.network.forward(&x).unwrap();
            let d = rel_dev(&got, &ort);
            assert!(d < 1e-5, "{name}: float64 deviates from onnxruntime by {d:e}");
            let got32 = m32
                .network
                .forward(&x.mapv(|v| v as f32))
                .unwrap()
                .mapv(f64::from);
            let d32 = rel_dev(&got32, &ort);
            assert!(d32 < 1e-5, "{name}: float32 deviates from onnxruntime by {d32:e}");
            worst_ort = worst_ort.max(d).max(d32);
            // explanations equal those of the network built by hand (batch norm merged as
            // the importer merges it, or kept); the dynamo exporter folded the batch norm into
            // the weights itself, in float32, hence its looser bound
            let t = Target::PerSample(vec![0, 2]);
            let tol = if name.contains("dynamo") { 1e-6 } else { 1e-9 };
            let reference = if keep && name.contains("torchscript") {
                &by_hand
            } else {
                &merged
            };
            for (rname, rule) in [
                (
                    "epsilon",
                    Box::new(LrpEpsilon::default()) as Box<dyn RuleSet<f64>>,
                ),
                ("gamma", Box::new(LrpGamma::default())),
                ("zplus", Box::new(LrpZPlus::new())),
                ("epsilon_plus", Box::new(Composite::<f64>::epsilon_plus())),
            ] {
                let a = m64.network.attribute(&x, &t, &*rule).unwrap();
                let b = reference.attribute(&x, &t, &*rule).unwrap();
                let d = rel_dev(&a.relevance, &b.relevance);
                assert!(
                    d < tol,
                    "{name} (keep_batch_norm {keep}): {rname} deviates by {d:e}"
                );
                if tol < 1e-6 {
                    worst_expl = worst_expl.max(d);
                }
            }
            let a = m64
                .network
                .deeplift(&x, &t, &DeepLift::rescale(), &Baseline::Zero)
                .unwrap();
            let b = reference
                .deeplift(&x, &t, &DeepLift::rescale(), &Baseline::Zero)
                .unwrap();
            let d = rel_dev(&a.attribution, &b.attribution);
            assert!(d < tol, "{name}: DeepLIFT deviates by {d:e}");
            if tol < 1e-6 {
                worst_expl = worst_expl.max(d);
            }
        }
    }
    println!("worst deviation from onnxruntime {worst_ort:.2e}; explanations (TorchScript file) vs by hand {worst_expl:.2e}");
}

/// Padding the importer computes from `auto_pad` (SAME_UPPER, SAME_LOWER) or `output_shape`
/// (with and without `output_padding`), as onnxruntime does.
#[cfg(feature = "onnx")]
#[test]
fn onnx_padding_from_auto_pad_and_output_shape_matches_onnxruntime() {
    use relevance::io::load_onnx;
    let fx = load("convtranspose");
    let of = &fx["onnx_padding"];
    let x = tensor::<f64>(&of["input"]);
    let mut worst = 0.0_f64;
    for file in of["files"].as_array().unwrap() {
        let name = file["file"].as_str().unwrap();
        let path = format!("{}/tests/fixtures/onnx/{name}", env!("CARGO_MANIFEST_DIR"));
        let net = load_onnx::<f64>(&path).unwrap();
        let got = net.forward(&x).unwrap();
        let d = rel_dev(&got, &tensor(&file["onnxruntime"]));
        assert!(d < 1e-5, "{name}: deviates from onnxruntime by {d:e}");
        worst = worst.max(d);
    }
    println!("padding cases: worst deviation from onnxruntime {worst:.2e}");
}

#[test]
fn constructor_refuses_bad_parameters() {
    let w = || ndarray::Array4::<f64>::ones((4, 3, 3, 3));
    let cfg = ConvTranspose2dConfig::default;
    let bad = [
        ConvTranspose2d::new(w(), None, cfg().stride(0)),
        ConvTranspose2d::new(w(), None, cfg().dilation(0)),
        ConvTranspose2d::new(w(), None, cfg().groups(3)),
        ConvTranspose2d::new(w(), None, cfg().groups(0)),
        ConvTranspose2d::new(w(), None, cfg().stride(2).output_padding(2)),
        ConvTranspose2d::new(ndarray::Array4::<f64>::ones((0, 3, 3, 3)), None, cfg()),
    ];
    for (k, r) in bad.into_iter().enumerate() {
        assert!(matches!(r, Err(Error::InvalidLayer { .. })), "case {k}: {r:?}");
    }
    // bias [out] = [3·groups]
    let r = ConvTranspose2d::new(w(), Some(Array1::zeros(4)), cfg());
    assert!(matches!(r, Err(Error::Shape { .. })), "{r:?}");
    assert!(ConvTranspose2d::new(w(), Some(Array1::zeros(6)), cfg().groups(2)).is_ok());
    let mut nan = w();
    nan[[1, 1, 1, 1]] = f64::NAN;
    assert!(matches!(
        ConvTranspose2d::new(nan, None, cfg()),
        Err(Error::NonFinite { .. })
    ));
    // padding that removes the whole output, the wrong channels, the wrong rank
    let l = ConvTranspose2d::new(w(), None, cfg().padding(3)).unwrap();
    assert!(matches!(
        l.output_shape(&[4, 1, 1]),
        Err(Error::InvalidLayer { .. })
    ));
    let l = ConvTranspose2d::new(w(), None, cfg()).unwrap();
    assert!(matches!(l.output_shape(&[3, 2, 2]), Err(Error::Shape { .. })));
    assert!(matches!(l.output_shape(&[4, 2]), Err(Error::Rank { .. })));
    let x = ArrayD::<f64>::zeros(ndarray::IxDyn(&[1, 3, 2, 2]));
    assert!(l.forward(x.view()).is_err());
    let w5 = ArrayD::<f64>::zeros(ndarray::IxDyn(&[4, 3, 3, 2]));
    let x = ArrayD::<f64>::zeros(ndarray::IxDyn(&[1, 4, 2, 2]));
    assert!(matches!(
        l.apply_with(x.view(), w5.view()),
        Err(Error::Shape { .. })
    ));
    assert_eq!(
        Layer::<f64>::class(&l).category(),
        relevance::Category::Convolution
    );
    assert_eq!(Layer::<f64>::name(&l), "ConvTranspose2d(4→3, 3×3)");
}

/// A random conv → relu → ConvTranspose2d → relu → flatten → dense network.
fn random_net(rng: &mut Rng, geometry: (usize, usize, usize, usize, usize), bias: bool) -> Network<f64> {
    let (k, s, p, d, g) = geometry;
    let mut draw = |shape: &[usize]| rng.array::<f64>(shape, -1.0, 1.0);
    let conv = Conv2d::new(
        draw(&[2 * g, 2, 3, 3]).into_dimensionality().unwrap(),
        bias.then(|| draw(&[2 * g]).into_dimensionality().unwrap()),
        Conv2dConfig::default().padding(1),
    )
    .unwrap();
    let cfg = ConvTranspose2dConfig {
        output_padding: (s - 1, 0),
        ..ConvTranspose2dConfig::default()
            .stride(s)
            .padding(p)
            .dilation(d)
            .groups(g)
    };
    let up = ConvTranspose2d::new(
        draw(&[2 * g, 3, k, k]).into_dimensionality().unwrap(),
        bias.then(|| draw(&[3 * g]).into_dimensionality().unwrap()),
        cfg,
    )
    .unwrap();
    let shape = up.output_shape(&[2 * g, 4, 4]).unwrap();
    let dense = Dense::new(
        draw(&[3, shape.iter().product()]).into_dimensionality().unwrap(),
        bias.then(|| draw(&[3]).into_dimensionality().unwrap()),
    )
    .unwrap();
    Network::new(
        &[2, 4, 4],
        vec![
            Box::new(conv),
            Box::new(Relu),
            Box::new(up),
            Box::new(Relu),
            Box::new(Flatten),
            Box::new(dense),
        ],
    )
    .unwrap()
}

fn geometry() -> impl Strategy<Value = (usize, usize, usize, usize, usize)> {
    // kernel, stride, padding (< kernel, so the output is not empty), dilation, groups
    (1usize..4, 1usize..4, 0usize..2, 1usize..3, 1usize..3)
        .prop_map(|(k, s, p, d, g)| (k, s, p.min(k - 1), d, g))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    /// LRP-0 without biases conserves relevance through ConvTranspose2d; with biases it is
    /// gradient × input (logit seed).
    #[test]
    fn lrp0_conserves_and_is_gradient_times_input(geo in geometry(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.array::<f64>(&[2, 2, 4, 4], -1.0, 1.0);
        let net = random_net(&mut rng, geo, false);
        let a = net.attribute(&x, &Target::Class(1), &Lrp0).unwrap();
        for (s, d) in a.delta.iter().enumerate() {
            prop_assert!(d.abs() <= 1e-9 * (1.0 + a.total[s].abs()), "delta {d:e}");
        }
        let net = random_net(&mut rng, geo, true);
        let a = net.attribute(&x, &Target::Class(2), &Lrp0).unwrap();
        let gx = net.gradient(&x, &Target::Class(2)).unwrap() * &x;
        let scale = gx.iter().fold(1e-12_f64, |m, v| m.max(v.abs()));
        let d = a.relevance.iter().zip(gx.iter()).fold(0.0_f64, |m, (p, q)| m.max((p - q).abs()));
        prop_assert!(d <= 1e-9 * scale, "LRP-0 vs gradient × input: {d:e}");
        // DeepLIFT on a ReLU network with a zero baseline sums to the output difference
        let dl = net.deeplift(&x, &Target::Class(2), &DeepLift::rescale(), &Baseline::Zero).unwrap();
        for d in dl.delta.iter() {
            prop_assert!(d.abs() <= 1e-9 * (1.0 + dl.total.iter().fold(0.0_f64, |m, v| m.max(v.abs()))));
        }
    }
}

/// A batch norm after a ConvTranspose2d merges along the weight's axis 1 (per group), as
/// zennit's canonizer indexes transposed convolutions, also when input and output channel
/// counts are equal (where scaling axis 0 would go unnoticed by the shape check).
#[test]
fn batch_norm_merges_along_the_output_axis() {
    let mut rng = Rng::new(5);
    for (cin, per, groups) in [(4, 4, 1), (4, 2, 2), (3, 5, 1)] {
        let out = per * groups;
        let up = ConvTranspose2d::new(
            rng.array::<f64>(&[cin, per, 3, 3], -1.0, 1.0)
                .into_dimensionality()
                .unwrap(),
            Some(rng.array::<f64>(&[out], -1.0, 1.0).into_dimensionality().unwrap()),
            ConvTranspose2dConfig::default().stride(2).groups(groups),
        )
        .unwrap();
        let v = |rng: &mut Rng, lo, hi| {
            rng.array::<f64>(&[out], lo, hi)
                .into_dimensionality::<Ix1>()
                .unwrap()
        };
        let bn = BatchNorm2d::new(
            v(&mut rng, -1.0, 1.0),
            v(&mut rng, 0.5, 2.0),
            v(&mut rng, -2.0, 2.0),
            v(&mut rng, -1.0, 1.0),
            1e-5,
        )
        .unwrap();
        let net = Network::new(&[cin, 3, 3], vec![Box::new(up), Box::new(bn)]).unwrap();
        let x = rng.array::<f64>(&[2, cin, 3, 3], -1.0, 1.0);
        let before = net.forward(&x).unwrap();
        let merged = net.merge_batch_norm().unwrap();
        assert_eq!(merged.nodes().len(), 1, "merged into the ConvTranspose2d");
        let d = rel_dev(&merged.forward(&x).unwrap(), &before);
        assert!(
            d < 1e-13,
            "({cin}, {per}, {groups}): merged output deviates by {d:e}"
        );
    }
}
