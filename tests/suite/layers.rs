//! The layers beyond the first wave against PyTorch (`tests/fixtures/layers.json`, written by
//! `tools/gen_layer_fixtures.py`): forward pass and input gradient of every activation (at
//! their kinks too), average pooling (padding, `ceil_mode`, `count_include_pad`, adaptive),
//! max pooling with `ceil_mode` and with padding per side (`F.pad` with −∞ before the pool), grouped, depthwise and asymmetrically padded convolutions,
//! batch normalisation, zero padding, and the transformer layers (layer and RMS norm, a dense
//! layer on tokens, softmax along an inner axis, matrix products of two computed tensors); then the graph builder's errors, the batch-norm
//! canonizer and rule selection by name.

use crate::common;

use common::bounds::{HARDSIGMOID_GRADIENT, LAYERS_F64, LAYER_CASES};
use common::{load, pair, rel_dev, tensor};
use ndarray::{array, Array1, Array2, Array4, ArrayD, Ix1, Ix2, Ix4, IxDyn};
use relevance::{
    Add, AvgPool2d, BatchNorm2d, Category, Clip, Composite, Concat, Conv2d, Conv2dConfig, DeepLift, Dense,
    Elu, Error, Flatten, Float, Gelu, Gradient, GraphBuilder, HardSigmoid, HardSwish, Layer, LayerNorm,
    LeakyRelu, Lrp0, LrpEpsilon, LrpGamma, MatMul, MaxPool2d, Merge, MergeStep, Mul, Network, Pad, Relu,
    RmsNorm, Selector, Sigmoid, Silu, Softmax, Step, Tanh, Target,
};
use serde_json::Value;

/// The layer a fixture case describes.
fn layer<F: Float>(l: &Value) -> Box<dyn Layer<F>> {
    let v1 = |k: &str| tensor::<F>(&l[k]).into_dimensionality::<Ix1>().unwrap();
    let flag = |k: &str| l[k].as_bool().unwrap();
    match l["op"].as_str().unwrap() {
        "activation" => {
            let p = &l["params"];
            let f = |k: &str| p[k].as_f64().unwrap();
            match l["kind"].as_str().unwrap() {
                "relu6" => Box::new(Clip::relu6()),
                "clip" => Box::new(Clip::new(f("low"), f("high")).unwrap()),
                "leaky_relu" => Box::new(LeakyRelu::new(f("slope")).unwrap()),
                "sigmoid" => Box::new(Sigmoid),
                "tanh" => Box::new(Tanh),
                "hardsigmoid" => Box::new(HardSigmoid::default()),
                "hardswish" => Box::new(HardSwish),
                "silu" => Box::new(Silu),
                "elu" => Box::new(Elu::new(f("alpha")).unwrap()),
                "gelu" => Box::new(Gelu::new()),
                "gelu_tanh" => Box::new(Gelu::tanh()),
                other => panic!("unknown activation {other}"),
            }
        }
        "avgpool2d" => Box::new(
            AvgPool2d::new(pair(&l["kernel"]), pair(&l["stride"]), pair(&l["padding"]))
                .unwrap()
                .with_ceil_mode(flag("ceil_mode"))
                .with_count_include_pad(flag("count_include_pad")),
        ),
        "adaptive_avgpool2d" => Box::new(AvgPool2d::adaptive(pair(&l["output"])).unwrap()),
        "maxpool2d" => {
            let pool = MaxPool2d::new(pair(&l["kernel"]), pair(&l["stride"]), pair(&l["padding"])).unwrap();
            // padding per side: [top, left, bottom, right]
            let pool = match l.get("pads") {
                Some(p) => {
                    let p: Vec<usize> = p
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_u64().unwrap() as usize)
                        .collect();
                    pool.with_pads((p[0], p[1]), (p[2], p[3])).unwrap()
                }
                None => pool,
            };
            Box::new(pool.with_ceil_mode(flag("ceil_mode")))
        }
        "conv2d" => {
            let w = tensor::<F>(&l["weight"]).into_dimensionality::<Ix4>().unwrap();
            let b = l.get("bias").filter(|b| !b.is_null()).map(|_| v1("bias"));
            let p: Vec<usize> = l["pads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let config = Conv2dConfig {
                stride: pair(&l["stride"]),
                ..Conv2dConfig::default()
                    .pads((p[0], p[1]), (p[2], p[3]))
                    .groups(l["groups"].as_u64().unwrap() as usize)
            };
            Box::new(Conv2d::new(w, b, config).unwrap())
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
        "pad" => {
            let pads: Vec<(usize, usize)> = l["pads"].as_array().unwrap().iter().map(pair).collect();
            Box::new(Pad::new(&pads))
        }
        "lrn" => Box::new(
            relevance::LocalResponseNorm::new(
                l["size"].as_u64().unwrap() as usize,
                l["alpha"].as_f64().unwrap(),
                l["beta"].as_f64().unwrap(),
                l["k"].as_f64().unwrap(),
            )
            .unwrap(),
        ),
        "layernorm" | "rmsnorm" => {
            let shape: Vec<usize> = l["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let flat = |k: &str| {
                l.get(k)
                    .filter(|v| !v.is_null())
                    .map(|v| Array1::from(tensor::<F>(v).iter().copied().collect::<Vec<F>>()))
            };
            let eps = l["eps"].as_f64().unwrap();
            if l["op"] == "layernorm" {
                Box::new(LayerNorm::new(&shape, flat("weight"), flat("bias"), eps).unwrap())
            } else {
                Box::new(RmsNorm::new(&shape, flat("weight"), eps).unwrap())
            }
        }
        "dense" => Box::new(
            Dense::new(
                tensor::<F>(&l["weight"]).into_dimensionality::<Ix2>().unwrap(),
                Some(v1("bias")),
            )
            .unwrap(),
        ),
        "softmax" => Box::new(Softmax::new(l["axis"].as_u64().unwrap() as usize)),
        other => panic!("unknown layer op {other}"),
    }
}

/// A two-input case (`matmul`): forward and both gradients against PyTorch.
fn check_matmul(case: &Value) {
    let name = case["name"].as_str().unwrap();
    let (a, b) = (tensor::<f64>(&case["x"]), tensor::<f64>(&case["x2"]));
    let y = tensor::<f64>(&case["y"]);
    let mm = MatMul::new();
    assert_eq!(
        Merge::<f64>::output_shape(&mm, &[&a.shape()[1..], &b.shape()[1..]]).unwrap(),
        y.shape()[1..],
        "{name}: output shape"
    );
    let got = mm.forward(&[a.view(), b.view()]).unwrap();
    let d = rel_dev(&got, &y);
    assert!(d < LAYERS_F64, "{name}: forward deviates from PyTorch by {d:e}");
    let g = tensor::<f64>(&case["g"]);
    let step = MergeStep::new(0, vec![a.view(), b.view()], got.view(), g.view());
    let parts = mm.gradient(&step, g.view()).unwrap();
    for (p, k) in parts.iter().zip(["dx", "dx2"]) {
        let d = rel_dev(p, &tensor::<f64>(&case[k]));
        assert!(
            d < LAYERS_F64,
            "{name}: gradient {k} deviates from PyTorch by {d:e}"
        );
    }
    let got32 = MatMul::new()
        .forward(&[
            tensor::<f32>(&case["x"]).view(),
            tensor::<f32>(&case["x2"]).view(),
        ])
        .unwrap();
    let d = rel_dev(&got32, &tensor::<f32>(&case["y"]));
    assert!(d < 1e-5, "{name}: f32 forward deviates by {d:e}");
}

#[test]
fn layers_match_pytorch() {
    let fx = load("layers");
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if case["layer"]["op"] == "matmul" {
            check_matmul(case);
            checked += 1;
            continue;
        }
        let l = layer::<f64>(&case["layer"]);
        let x = tensor::<f64>(&case["x"]);
        let y = tensor::<f64>(&case["y"]);
        assert_eq!(
            l.output_shape(&x.shape()[1..]).unwrap(),
            y.shape()[1..],
            "{name}: output shape"
        );
        let got = l.forward(x.view()).unwrap();
        let d = rel_dev(&got, &y);
        assert!(d < LAYERS_F64, "{name}: forward deviates from PyTorch by {d:e}");
        let g = tensor::<f64>(&case["g"]);
        let step = Step::new(0, x.view(), got.view(), g.view());
        let dx = l.gradient(&step, g.view()).unwrap();
        let d = rel_dev(&dx, &tensor::<f64>(&case["dx"]));
        // PyTorch's hardsigmoid_backward multiplies by 1/6 rounded to f32 (a relative 3e-8
        // in f64); we use the exact 1/6
        let tol = if name == "hardsigmoid" {
            HARDSIGMOID_GRADIENT
        } else {
            LAYERS_F64
        };
        assert!(d < tol, "{name}: gradient deviates from PyTorch by {d:e}");
        // the same layer in f32
        let got32 = layer::<f32>(&case["layer"])
            .forward(tensor::<f32>(&case["x"]).view())
            .unwrap();
        let d = rel_dev(&got32, &tensor::<f32>(&case["y"]));
        assert!(d < 1e-5, "{name}: f32 forward deviates by {d:e}");
        checked += 1;
    }
    assert_eq!(checked, LAYER_CASES, "layer cases checked");
    // a padding as large as the kernel would leave windows without an input value
    let pool = MaxPool2d::new((3, 2), (1, 1), (0, 0)).unwrap();
    assert!(pool.with_pads((2, 1), (2, 1)).is_ok());
    assert!(matches!(
        pool.with_pads((0, 2), (0, 0)),
        Err(Error::InvalidLayer { .. })
    ));
    assert!(matches!(
        pool.with_pads((0, 0), (3, 0)),
        Err(Error::InvalidLayer { .. })
    ));
}

/// The transposed map of every affine layer is the adjoint of its forward map, for grouped
/// and asymmetrically padded convolutions too: `⟨W x, s⟩ = ⟨x, Wᵀ s⟩`.
#[test]
fn grouped_convolution_transpose_is_the_adjoint() {
    let mut rng = common::Rng::new(5);
    for (groups, cin, cout, pads, stride) in [
        (2, 4, 6, ((1, 1), (1, 1)), 1),
        (4, 4, 4, ((1, 1), (1, 1)), 2),
        (4, 4, 8, ((0, 1), (2, 0)), 1),
        (1, 3, 2, ((0, 0), (1, 1)), 2),
    ] {
        let w: Array4<f64> = rng
            .array::<f64>(&[cout, cin / groups, 3, 3], -1.0, 1.0)
            .into_dimensionality()
            .unwrap();
        let config = Conv2dConfig {
            stride: (stride, stride),
            ..Conv2dConfig::default().pads(pads.0, pads.1).groups(groups)
        };
        let conv = Conv2d::new(w.clone(), None, config).unwrap();
        let x = rng.array::<f64>(&[2, cin, 7, 6], -1.0, 1.0);
        let y = conv.forward(x.view()).unwrap();
        let s = rng.array::<f64>(y.shape(), -1.0, 1.0);
        let affine = Layer::<f64>::class(&conv).affine().unwrap();
        let t = affine
            .apply_transpose(s.view(), w.view().into_dyn(), &[cin, 7, 6])
            .unwrap();
        let (lhs, rhs) = ((&y * &s).sum(), (&x * &t).sum());
        assert!(
            (lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0),
            "groups {groups}: {lhs} vs {rhs}"
        );
        // several terms at once, as LRP-γ asks for them
        let w2 = w.mapv(|v| v.max(0.0));
        let sum = affine
            .apply_transpose_sum(
                &[(s.view(), w.view().into_dyn()), (s.view(), w2.view().into_dyn())],
                &[cin, 7, 6],
            )
            .unwrap();
        let t2 = affine
            .apply_transpose(s.view(), w2.view().into_dyn(), &[cin, 7, 6])
            .unwrap();
        assert!(rel_dev(&sum, &(&t + &t2)) < 1e-13);
    }
}

fn dense(out: usize, inp: usize, seed: u64) -> Dense<f64> {
    let mut rng = common::Rng::new(seed);
    Dense::new(
        rng.array::<f64>(&[out, inp], -1.0, 1.0)
            .into_dimensionality()
            .unwrap(),
        Some(rng.array::<f64>(&[out], -0.2, 0.2).into_dimensionality().unwrap()),
    )
    .unwrap()
}

#[test]
fn builder_refuses_what_is_not_a_graph() {
    let mut g = GraphBuilder::<f64>::new(&[3]).unwrap();
    let other = GraphBuilder::<f64>::new(&[3]).unwrap();
    // an id of another builder is never misread as one of this builder
    let e = g.add("a", Relu, other.input()).unwrap_err();
    assert!(matches!(e, Error::Graph { ref node, .. } if node == "a"), "{e}");
    let a = g.add("a", Relu, g.input()).unwrap();
    // names are unique
    let e = g.add("a", Relu, a).unwrap_err();
    assert!(matches!(e, Error::Graph { .. }), "{e}");
    // merges need inputs, the right number of them, and fitting shapes
    assert!(matches!(
        g.merge("m", Add::new(), &[]).unwrap_err(),
        Error::Graph { .. }
    ));
    let e = g.merge("m", Mul::new(), &[a, a, a]).unwrap_err();
    assert_eq!(e.node_name(), Some("m"), "{e}");
    let d = g.add("d", dense(2, 3, 1), a).unwrap();
    let e = g.merge("sum", Add::new(), &[a, d]).unwrap_err();
    assert_eq!((e.layer_index(), e.node_name()), (Some(2), Some("sum")), "{e}");
    assert!(matches!(e.root(), Error::Shape { .. }), "{e}");
    let e = g.merge("cat", Concat::new(1), &[a, d]).unwrap_err();
    assert!(matches!(e.root(), Error::Rank { .. }), "{e}");
    // a layer that cannot take its input names the node
    let e = g.add("fc", dense(1, 2, 5), a).unwrap_err();
    assert!(e.to_string().contains("`fc`"), "{e}");
    // an empty name gets the node's index
    let r = g.add("", Relu, d).unwrap();
    // the output cannot be the input; unused nodes are dropped
    let net = g.build(r).unwrap();
    assert_eq!(
        net.nodes().iter().map(|n| n.name()).collect::<Vec<_>>(),
        ["a", "d", "2"]
    );
    let g = GraphBuilder::<f64>::new(&[3]).unwrap();
    let input = g.input();
    assert_eq!(g.build(input).unwrap_err(), Error::EmptyNetwork);
}

/// A residual block: BN merged into the convolutions changes no output, LRP sees the merged
/// layers; DeepLIFT is the same either way; rules are chosen by name.
#[test]
fn residual_block_with_batch_norm() {
    let mut rng = common::Rng::new(9);
    let conv = |rng: &mut common::Rng| {
        Conv2d::new(
            rng.array::<f64>(&[2, 2, 3, 3], -0.5, 0.5)
                .into_dimensionality()
                .unwrap(),
            None,
            Conv2dConfig::default().padding(1),
        )
        .unwrap()
    };
    let bn = |rng: &mut common::Rng| {
        let v = |rng: &mut common::Rng, lo, hi| -> Array1<f64> {
            rng.array::<f64>(&[2], lo, hi).into_dimensionality().unwrap()
        };
        BatchNorm2d::new(
            v(rng, -0.3, 0.3),
            v(rng, 0.5, 2.0),
            v(rng, 0.5, 1.5),
            v(rng, -0.2, 0.2),
            1e-5,
        )
        .unwrap()
    };
    let mut g = GraphBuilder::<f64>::new(&[2, 5, 5]).unwrap();
    let x = g.input();
    let c1 = g.add("block.conv1", conv(&mut rng), x).unwrap();
    let b1 = g.add("block.bn1", bn(&mut rng), c1).unwrap();
    let r1 = g.add("block.relu1", Relu, b1).unwrap();
    let c2 = g.add("block.conv2", conv(&mut rng), r1).unwrap();
    let b2 = g.add("block.bn2", bn(&mut rng), c2).unwrap();
    let sum = g.merge("block.add", Add::new(), &[b2, x]).unwrap();
    let r2 = g.add("block.relu2", Relu, sum).unwrap();
    let pool = g.add("pool", AvgPool2d::global(), r2).unwrap();
    let flat = g.add("flatten", Flatten, pool).unwrap();
    let fc = g.add("fc", dense(3, 2, 4), flat).unwrap();
    let net = g.build(fc).unwrap();
    assert_eq!(net.nodes().len(), 10);
    let xs = rng.array::<f64>(&[2, 2, 5, 5], -1.0, 1.0);
    let before = net.forward(&xs).unwrap();
    let target = Target::Class(1);
    let dl_before = net
        .deeplift(&xs, &target, &DeepLift::rescale(), &relevance::Baseline::Zero)
        .unwrap();
    let merged = net.merge_batch_norm().unwrap();
    let names: Vec<&str> = merged.nodes().iter().map(|n| n.name()).collect();
    assert_eq!(
        names,
        [
            "block.conv1",
            "block.relu1",
            "block.conv2",
            "block.add",
            "block.relu2",
            "pool",
            "flatten",
            "fc"
        ]
    );
    assert!(rel_dev(&merged.forward(&xs).unwrap(), &before) < 1e-13);
    // DeepLIFT does not care whether BN is merged
    let dl = merged
        .deeplift(&xs, &target, &DeepLift::rescale(), &relevance::Baseline::Zero)
        .unwrap();
    assert!(rel_dev(&dl.attribution, &dl_before.attribution) < 1e-12);
    assert!(dl.delta.iter().all(|d| d.abs() < 1e-12));
    // LRP-0 conserves through the residual sum and the pool up to the biases, and equals
    // gradient × input on this ReLU graph
    let a = merged.attribute(&xs, &target, &Lrp0).unwrap();
    let g = merged.gradient(&xs, &target).unwrap();
    // (with the default seed R = f_c(x), LRP-0 is x ⊙ ∇f_c(x))
    let gxi = &g * &xs;
    let d = rel_dev(&a.relevance, &gxi);
    assert!(d < 1e-10, "LRP-0 vs gradient × input: {d:e}");
    // rules by name: γ on the block's convolutions, Gradient on the sum
    let rules = Composite::new(LrpEpsilon::default())
        .with(Selector::Pattern("block.conv*".into()), LrpGamma::default())
        .with(Selector::Name("block.add".into()), Gradient);
    let chosen: Vec<String> = relevance::RuleSet::<f64>::resolve(&rules, &merged.node_infos())
        .iter()
        .map(|r| r.name())
        .collect();
    assert_eq!(chosen[0], "LrpGamma(0.25)");
    assert_eq!(chosen[2], "LrpGamma(0.25)");
    assert_eq!(chosen[3], "Gradient");
    assert_eq!(chosen[7], "LrpEpsilon(1e-6)");
    let a = merged.attribute(&xs, &target, &rules).unwrap();
    assert!(a.relevance.iter().all(|v| v.is_finite()));
    // per-node relevance by name
    let a = merged
        .attribute_with(
            &xs,
            &target,
            &Lrp0,
            relevance::Options {
                keep_layers: true,
                ..Default::default()
            },
        )
        .unwrap();
    let layers = a.layers.unwrap();
    let at_add = &layers[merged.node_index("block.add").unwrap() + 1];
    assert_eq!(at_add.shape(), &[2, 2, 5, 5]);
    assert_eq!(layers.len(), merged.nodes().len() + 1);
}

/// A batch norm whose input feeds another node too is not merged (it would change that
/// node's input), nor is one after a non-affine layer.
#[test]
fn batch_norm_merges_only_into_a_sole_affine_producer() {
    let bn = || {
        BatchNorm2d::new(
            array![0.5, -1.0],
            array![4.0, 1.0],
            array![1.0, 2.0],
            array![0.0, 0.1],
            1e-5,
        )
        .unwrap()
    };
    let mut g = GraphBuilder::<f64>::new(&[2]).unwrap();
    let fc = g.add("fc", dense(2, 2, 3), g.input()).unwrap();
    let b = g.add("bn", bn(), fc).unwrap();
    let sum = g.merge("sum", Add::new(), &[b, fc]).unwrap();
    let r = g.add("relu", Relu, sum).unwrap();
    let b2 = g.add("bn2", bn(), r).unwrap();
    let net = g.build(b2).unwrap();
    let x = array![[1.0, -2.0], [0.5, 0.25]].into_dyn();
    let before = net.forward(&x).unwrap();
    let merged = net.merge_batch_norm().unwrap();
    assert_eq!(merged.nodes().len(), 5);
    assert_eq!(merged.forward(&x).unwrap(), before);
}

/// A squeeze-and-excitation gate: LRP sends all relevance to the signal, none to the gate;
/// DeepLIFT's Shapley split conserves exactly for any baseline.
#[test]
fn gates_take_nothing_under_lrp_and_conserve_under_deeplift() {
    let mut rng = common::Rng::new(21);
    let mut g = GraphBuilder::<f64>::new(&[3, 4, 4]).unwrap();
    let x = g.input();
    let conv = Conv2d::new(
        rng.array::<f64>(&[3, 3, 3, 3], -0.5, 0.5)
            .into_dimensionality()
            .unwrap(),
        Some(rng.array::<f64>(&[3], -0.1, 0.1).into_dimensionality().unwrap()),
        Conv2dConfig::default().padding(1),
    )
    .unwrap();
    let c = g.add("conv", conv, x).unwrap();
    let r = g.add("relu", Relu, c).unwrap();
    let squeeze = g.add("se.pool", AvgPool2d::global(), r).unwrap();
    let fc = Conv2d::new(
        rng.array::<f64>(&[3, 3, 1, 1], -1.0, 1.0)
            .into_dimensionality()
            .unwrap(),
        Some(rng.array::<f64>(&[3], -0.1, 0.1).into_dimensionality().unwrap()),
        Conv2dConfig::default(),
    )
    .unwrap();
    let excite = g.add("se.fc", fc, squeeze).unwrap();
    let gate = g.add("se.gate", Sigmoid, excite).unwrap();
    let scaled = g.merge("se.scale", Mul::new(), &[r, gate]).unwrap();
    let flat = g.add("flatten", Flatten, scaled).unwrap();
    let out = g.add("fc", dense(2, 48, 2), flat).unwrap();
    let net = g.build(out).unwrap();
    let xs = rng.array::<f64>(&[2, 3, 4, 4], -1.0, 1.0);
    let a = net
        .attribute_with(
            &xs,
            &Target::Class(0),
            &Lrp0,
            relevance::Options {
                keep_layers: true,
                ..Default::default()
            },
        )
        .unwrap();
    let layers = a.layers.unwrap();
    let gate_value = net.node_index("se.gate").unwrap() + 1;
    assert!(
        layers[gate_value].iter().all(|&v| v == 0.0),
        "the gate gets no relevance"
    );
    let scale_value = net.node_index("se.scale").unwrap() + 1;
    let relu_value = net.node_index("relu").unwrap() + 1;
    // the relu output gets the product's relevance (the signal takes all) plus nothing from
    // the squeeze path (the gate sent nothing back)
    assert!(rel_dev(&layers[relu_value], &layers[scale_value]) < 1e-14);
    let baseline = rng.array::<f64>(&[1, 3, 4, 4], -1.0, 1.0);
    for b in [relevance::Baseline::Zero, relevance::Baseline::Shared(baseline)] {
        let d = net
            .deeplift(&xs, &Target::Class(1), &DeepLift::rescale(), &b)
            .unwrap();
        assert!(d.delta.iter().all(|v| v.abs() < 1e-12), "{:?}", d.delta);
        assert!(d.attribution.iter().any(|&v| v != 0.0));
    }
}

/// Node categories, for selection.
#[test]
fn categories() {
    assert_eq!(
        Layer::<f32>::class(&AvgPool2d::global()).category(),
        Category::AvgPool
    );
    assert_eq!(
        Layer::<f32>::class(&MaxPool2d::square(2).unwrap()).category(),
        Category::MaxPool
    );
    assert_eq!(
        Layer::<f32>::class(&Clip::relu6()).category(),
        Category::Activation
    );
    assert!(Layer::<f32>::is_gate(&HardSigmoid::default()) && Layer::<f32>::is_gate(&Sigmoid));
    assert!(!Layer::<f32>::is_gate(&Silu));
    let bn = BatchNorm2d::<f32>::from_scale_shift(ndarray::arr1(&[1.0]), ndarray::arr1(&[0.0])).unwrap();
    assert_eq!(bn.class().category(), Category::BatchNorm);
}

/// Parameters that cannot make a layer are typed errors.
#[test]
fn bad_layer_parameters_are_errors() {
    assert!(Clip::new(1.0, 0.0).is_err() && Clip::new(f64::NAN, 1.0).is_err());
    assert!(LeakyRelu::new(f64::INFINITY).is_err() && Elu::new(f64::NAN).is_err());
    assert!(HardSigmoid::new(0.0, 0.5).is_err());
    assert!(
        AvgPool2d::new((0, 2), (1, 1), (0, 0)).is_err() && AvgPool2d::new((2, 2), (1, 1), (2, 0)).is_err()
    );
    assert!(AvgPool2d::adaptive((0, 1)).is_err());
    let w = Array4::<f64>::zeros((3, 2, 3, 3));
    assert!(Conv2d::new(w.clone(), None, Conv2dConfig::default().groups(2)).is_err()); // 3 outputs, 2 groups
    assert!(Conv2d::new(w, None, Conv2dConfig::default().groups(0)).is_err());
    assert!(BatchNorm2d::<f64>::new(array![0.0], array![-1.0], array![1.0], array![0.0], 0.5).is_err());
    assert!(BatchNorm2d::<f64>::new(array![0.0, 1.0], array![1.0], array![1.0], array![0.0], 1e-5).is_err());
    // a grouped convolution needs all its input channels
    let conv = Conv2d::new(
        Array4::<f64>::zeros((4, 1, 3, 3)),
        None,
        Conv2dConfig::default().groups(4),
    )
    .unwrap();
    assert!(Layer::<f64>::output_shape(&conv, &[4, 5, 5]).is_ok());
    assert!(Layer::<f64>::output_shape(&conv, &[1, 5, 5]).is_err());
    let _ = Network::<f64>::new(&[4, 5, 5], vec![Box::new(conv)]).unwrap();
    let _unused: Option<(ArrayD<f64>, Array2<f64>)> = None;
    let _ = IxDyn(&[1]);
}

/// `Narrow` (ONNX `Slice`/`Split` of data): the kept range forward, its gradient scattered
/// back, and relevance passed through unchanged (summed over a split's parts it conserves).
#[test]
fn narrow_forward_gradient_and_errors() {
    use relevance::{Lrp0, Narrow, Step};
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 4, 1, 2]), (0..16).map(f64::from).collect()).unwrap();
    let (a, b) = (Narrow::new(0, 0, 1), Narrow::new(0, 1, 3));
    let ya = Layer::<f64>::forward(&a, x.view()).unwrap();
    let yb = Layer::<f64>::forward(&b, x.view()).unwrap();
    assert_eq!(ya.shape(), &[2, 1, 1, 2]);
    assert_eq!(yb.shape(), &[2, 3, 1, 2]);
    assert_eq!(ya[[1, 0, 0, 1]], 9.0);
    assert_eq!(yb[[0, 2, 0, 0]], 6.0);
    // relevance of both parts adds up to the input's
    let ra = Layer::<f64>::class(&a)
        .relevance(&Lrp0, &Step::new(0, x.view(), ya.view(), ya.view()))
        .unwrap();
    let rb = Layer::<f64>::class(&b)
        .relevance(&Lrp0, &Step::new(1, x.view(), yb.view(), yb.view()))
        .unwrap();
    assert_eq!(ra + rb, x);
    // a range outside the axis, or an axis the input does not have: typed errors
    assert!(Layer::<f64>::forward(&Narrow::new(0, 3, 2), x.view()).is_err());
    assert!(Layer::<f64>::forward(&Narrow::new(5, 0, 1), x.view()).is_err());
    assert!(Layer::<f64>::output_shape(&Narrow::new(0, 0, 0), &[4, 1, 2]).is_err());
    assert!(Layer::<f64>::output_shape(&Narrow::new(0, usize::MAX, 2), &[4, 1, 2]).is_err());
}

/// `Target::Predicted` explains each sample's predicted class (the first largest output)
/// in every entry point, alone or in a batch.
#[test]
fn target_predicted_is_the_argmax() {
    use relevance::{Baseline, Composite, DeepLift, Dense, LrpEpsilon, Network, Relu, Target};
    let net = Network::<f64>::new(
        &[3],
        vec![
            Box::new(Dense::new(array![[1.0, -1.0, 0.5], [0.5, 2.0, -1.0], [-1.0, 0.3, 0.2]], None).unwrap()),
            Box::new(Relu),
            Box::new(Dense::new(array![[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]], Some(array![0.1, -0.1])).unwrap()),
        ],
    )
    .unwrap();
    let x = array![[1.0, 2.0, 3.0], [3.0, -1.0, 0.5], [0.0, 0.0, 0.0]].into_dyn();
    let classes = net.predict(&x).unwrap();
    let y = net.forward(&x).unwrap();
    for (i, &c) in classes.iter().enumerate() {
        assert!(y.index_axis(ndarray::Axis(0), i).iter().all(|&v| v <= y[[i, c]]));
    }
    assert!(classes.contains(&0) && classes.contains(&1), "{classes:?}");
    let rules = Composite::new(LrpEpsilon::default());
    let a = net.attribute(&x, &Target::Predicted, &rules).unwrap();
    let b = net
        .attribute(&x, &Target::PerSample(classes.clone()), &rules)
        .unwrap();
    assert_eq!(a.relevance, b.relevance);
    let d1 = net
        .deeplift(&x, &Target::Predicted, &DeepLift::rescale(), &Baseline::Zero)
        .unwrap();
    let d2 = net
        .deeplift(
            &x,
            &Target::PerSample(classes),
            &DeepLift::rescale(),
            &Baseline::Zero,
        )
        .unwrap();
    assert_eq!(d1.attribution, d2.attribution);
}
