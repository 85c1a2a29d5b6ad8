//! The engine's fast paths against its plain reference path, on random dense and
//! convolutional layers (im2col and Winograd, strided, padded, grouped) for every LRP rule.
//!
//! Weights, inputs and relevance are drawn from a dyadic grid (multiples of 1/8 below 4 in
//! magnitude), so every forward pass is exact in f64 whatever the order of its sums: the
//! paths can differ only by the rounding of the divisions and of the transposed sums. The
//! bound is `TOLERANCE` × the largest |R_in| of the reference.

use super::*;
use crate::layers::{Conv2d, Conv2dConfig, Dense, Layer};
use crate::rules::{Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus};
use crate::tensor::numerics::safe_ratio;
use ndarray::{Array1, Array2, Array4, IxDyn};

/// The stated bound of every fast path against the reference, relative to max |R_in| (measured
/// worst: 5.7e-16).
const TOLERANCE: f64 = 4e-15;

/// A deterministic stream of grid values k/8, |k| < 32.
struct Grid(u64);

impl Grid {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % 63) as f64 / 8.0 - 31.0 / 8.0
    }
    fn array(&mut self, shape: &[usize]) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.next())
    }
}

/// A named layer with its per-sample input shape.
type Case = (String, Box<dyn Affine<f64>>, Vec<usize>);

/// The layers: dense, and convolutions through im2col (small), Winograd (16 → 16 channels,
/// 3×3, 24×24), strided, padded asymmetrically, dilated and grouped.
fn layers(g: &mut Grid) -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    let dense = Dense::new(
        g.array(&[5, 7]).into_dimensionality::<ndarray::Ix2>().unwrap(),
        Some(g.array(&[5]).into_dimensionality().unwrap()),
    )
    .unwrap();
    out.push(("dense 7→5".into(), Box::new(dense), vec![7]));
    let dense_nb: Dense<f64> = Dense::new(Array2::from_shape_fn((3, 4), |_| g.next()), None).unwrap();
    out.push(("dense 4→3 without bias".into(), Box::new(dense_nb), vec![4]));
    let convs: [(&str, usize, usize, usize, Conv2dConfig, usize); 5] = [
        (
            "conv 2→3 3×3 pad 1",
            2,
            3,
            3,
            Conv2dConfig::default().padding(1),
            5,
        ),
        (
            "conv 3→4 3×3 stride 2",
            3,
            4,
            3,
            Conv2dConfig::default().stride(2),
            7,
        ),
        (
            "conv 2→2 2×2 pads (0,1)/(1,0) dilation 2",
            2,
            2,
            2,
            Conv2dConfig::default().pads((0, 1), (1, 0)).dilation(2),
            6,
        ),
        (
            "conv 4→4 3×3 groups 2",
            4,
            4,
            3,
            Conv2dConfig::default().padding(1).groups(2),
            5,
        ),
        (
            "conv 16→16 3×3 pad 1 (Winograd)",
            16,
            16,
            3,
            Conv2dConfig::default().padding(1),
            24,
        ),
    ];
    for (name, cin, cout, k, config, side) in convs {
        let per_group = cin / config.groups;
        let w = Array4::from_shape_fn((cout, per_group, k, k), |_| g.next());
        let b = Array1::from_shape_fn(cout, |_| g.next());
        let conv = Conv2d::new(w, Some(b), config).unwrap();
        out.push((name.into(), Box::new(conv), vec![cin, side, side]));
    }
    out
}

/// Every LRP rule's recipe, with z^B's bounds as a scalar, per channel and per element.
fn recipes<'a>(zbox: &'a [LrpZBox<f64>]) -> Vec<(String, Recipe<'a, f64>)> {
    let mut r: Vec<(String, Recipe<'a, f64>)> = vec![
        ("lrp0".into(), Lrp0.recipe()),
        ("epsilon 0.25".into(), LrpEpsilon::new(0.25).unwrap().recipe()),
        ("gamma 0.25".into(), LrpGamma::new(0.25).unwrap().recipe()),
        ("gamma 0".into(), LrpGamma::new(0.0).unwrap().recipe()),
        (
            "alpha2beta1".into(),
            LrpAlphaBeta::new(2.0, 1.0).unwrap().recipe(),
        ),
        (
            "alpha1beta0".into(),
            LrpAlphaBeta::new(1.0, 0.0).unwrap().recipe(),
        ),
        ("zplus".into(), LrpZPlus::new().recipe()),
        ("flat".into(), LrpFlat::new().recipe()),
        ("wsquare".into(), LrpWSquare::new().recipe()),
    ];
    for (k, z) in zbox.iter().enumerate() {
        r.push((format!("zbox {k}"), z.recipe()));
    }
    r
}

/// z^B bounds for a per-sample input shape: scalar, per channel, per element.
fn bounds(g: &mut Grid, sample: &[usize]) -> Vec<LrpZBox<f64>> {
    let c = sample[0];
    let mut per_channel = vec![c];
    per_channel.extend(std::iter::repeat_n(1, sample.len() - 1));
    let low_c = g.array(&per_channel).mapv(|v| -v.abs() - 0.5);
    let low_e = g.array(sample).mapv(|v| -v.abs() - 0.5);
    vec![
        LrpZBox::new(
            ArrayD::from_elem(IxDyn(&[]), -1.5),
            ArrayD::from_elem(IxDyn(&[]), 2.0),
        )
        .unwrap(),
        LrpZBox::new(low_c.clone(), low_c.mapv(|v| -v + 1.0)).unwrap(),
        LrpZBox::new(low_e.clone(), low_e.mapv(|v| -v + 0.25)).unwrap(),
    ]
}

/// Each fast path alone, then all of them.
fn variants() -> Vec<(&'static str, FastPaths)> {
    let one = |f: fn(&mut FastPaths)| {
        let mut p = FastPaths::NONE;
        f(&mut p);
        p
    };
    vec![
        ("none", FastPaths::NONE),
        ("recorded_output", one(|p| p.recorded_output = true)),
        ("gamma_derived", one(|p| p.gamma_derived = true)),
        ("shared_forward", one(|p| p.shared_forward = true)),
        ("fold_constants", one(|p| p.fold_constants = true)),
        ("skip_vanishing", one(|p| p.skip_vanishing = true)),
        ("fused_ratio", one(|p| p.fused_ratio = true)),
        ("grouped_transpose", one(|p| p.grouped_transpose = true)),
        ("all", FastPaths::ALL),
    ]
}

/// The largest deviation of `got` from `want`, relative to max |want| (the shapes must agree).
fn relative_error(got: &ArrayD<f64>, want: &ArrayD<f64>) -> f64 {
    assert_eq!(got.shape(), want.shape());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    got.iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// Every fast path, alone and together, gives the reference's relevance to the stated
/// bound, on mixed-sign inputs and on non-negative ones (after a ReLU, where x⁻ vanishes).
#[test]
fn every_fast_path_matches_the_reference() {
    let mut g = Grid(7);
    let mut worst = 0.0f64;
    let mut compared = 0;
    for (name, layer, sample) in layers(&mut g) {
        let zbox = bounds(&mut g, &sample);
        for relu in [false, true] {
            let mut shape = vec![2];
            shape.extend_from_slice(&sample);
            let x = g.array(&shape).mapv(|v| if relu { v.max(0.0) } else { v });
            let out = Layer::forward(layer.as_ref(), x.view()).unwrap();
            let r = g.array(out.shape());
            let step = Step::new(0, x.view(), out.view(), r.view());
            for (rule, recipe) in recipes(&zbox) {
                let want = reference(layer.as_ref(), &step, &recipe).unwrap();
                for (fast_name, fast) in variants() {
                    let got = propagate_with(layer.as_ref(), &step, &recipe, fast).unwrap();
                    let err = relative_error(&got, &want);
                    assert!(
                        err <= TOLERANCE,
                        "{name}, relu {relu}, {rule}, fast path {fast_name}: {err:e} of max |R|"
                    );
                    worst = worst.max(err);
                    compared += 1;
                }
            }
        }
    }
    // 7 layers × 2 inputs × 12 recipes × 9 variants
    assert_eq!(compared, 7 * 2 * 12 * 9);
    eprintln!("engine fast paths vs reference: worst {worst:e} relative over {compared} cases");
}

/// A step whose arrays do not fit the layer is a shape error on every path, never a
/// panic.
#[test]
fn misfit_steps_are_errors() {
    let mut g = Grid(3);
    for (name, layer, sample) in layers(&mut g) {
        let mut shape = vec![2];
        shape.extend_from_slice(&sample);
        let x = g.array(&shape);
        let out = Layer::forward(layer.as_ref(), x.view()).unwrap();
        let mut wrong_out = out.shape().to_vec();
        *wrong_out.last_mut().unwrap() += 1;
        let wrong = ArrayD::zeros(IxDyn(&wrong_out));
        let one_row = ArrayD::zeros(IxDyn(&[&[1], &out.shape()[1..]].concat()));
        let recipe = Lrp0.recipe();
        for (what, step) in [
            ("output", Step::new(0, x.view(), wrong.view(), out.view())),
            ("relevance", Step::new(0, x.view(), out.view(), wrong.view())),
            ("batch", Step::new(0, x.view(), out.view(), one_row.view())),
        ] {
            for result in [
                propagate(layer.as_ref(), &step, &recipe),
                reference(layer.as_ref(), &step, &recipe),
            ] {
                assert!(
                    matches!(result, Err(Error::Shape { .. })),
                    "{name}, wrong {what}: {result:?}"
                );
            }
        }
    }
}

/// The fused pass gives the bits of the two masked passes, also where the original
/// output or the stabilised denominator is exactly zero.
#[test]
fn split_ratio_equals_two_masked_passes() {
    let n = 64;
    let v = |k: usize, m: usize| ((k * m) % 7) as f64 - 3.0;
    let r = ArrayD::from_shape_fn(IxDyn(&[2, n]), |d| v(d[1] + 1, 5) * 0.3);
    let zp = ArrayD::from_shape_fn(IxDyn(&[2, n]), |d| v(d[1] + d[0], 3));
    let zn = ArrayD::from_shape_fn(IxDyn(&[2, n]), |d| v(d[1] + 2 * d[0], 4) - 0.5);
    let orig = ArrayD::from_shape_fn(IxDyn(&[2, n]), |d| v(d[1], 2));
    for eps in [0.0, 1e-6, 0.5] {
        let (sp, sn) = split_ratio(&r.view(), &zp.view(), &zn.view(), &orig.view(), eps).unwrap();
        for i in 0..2 * n {
            let (o, r) = (orig.as_slice().unwrap()[i], r.as_slice().unwrap()[i]);
            let want_p = if o > 0.0 {
                safe_ratio(r, zp.as_slice().unwrap()[i], eps)
            } else {
                0.0
            };
            let want_n = if o < 0.0 {
                safe_ratio(r, zn.as_slice().unwrap()[i], eps)
            } else {
                0.0
            };
            assert_eq!(
                sp.as_slice().unwrap()[i].to_bits(),
                want_p.to_bits(),
                "s⁺ at {i}, ε = {eps}"
            );
            assert_eq!(
                sn.as_slice().unwrap()[i].to_bits(),
                want_n.to_bits(),
                "s⁻ at {i}, ε = {eps}"
            );
        }
    }
    // not contiguous: no fused pass
    let t = r.t();
    assert!(split_ratio(&t, &zp.t(), &zn.t(), &orig.t(), 0.0).is_none());
}

/// Layers whose weights are too large to be stacked for a sum of transposed terms
/// (`STACK_MAX`: one product per term, accumulated) give the reference's relevance: a 3×3
/// convolution through im2col and a 1×1 one (the pointwise path), under the rules with
/// several terms, on mixed-sign and non-negative inputs.
#[test]
fn unstacked_large_weights_match_the_reference() {
    let mut g = Grid(11);
    let layers: Vec<(Conv2d<f64>, Vec<usize>)> = vec![
        (
            Conv2d::new(
                Array4::from_shape_fn((128, 1024, 3, 3), |_| g.next()),
                Some(Array1::from_shape_fn(128, |_| g.next())),
                Conv2dConfig::default().padding(1),
            )
            .unwrap(),
            vec![1024, 2, 1],
        ),
        (
            Conv2d::new(
                Array4::from_shape_fn((1024, 1024, 1, 1), |_| g.next()),
                Some(Array1::from_shape_fn(1024, |_| g.next())),
                Conv2dConfig::default(),
            )
            .unwrap(),
            vec![1024, 1, 2],
        ),
    ];
    let mut compared = 0;
    for (layer, sample) in &layers {
        assert!(layer.weight().len() >= crate::layers::STACK_MAX);
        let zbox = bounds(&mut g, sample);
        let rules: Vec<(&str, Recipe<'_, f64>)> = vec![
            ("gamma 0.25", LrpGamma::new(0.25).unwrap().recipe()),
            ("alpha2beta1", LrpAlphaBeta::new(2.0, 1.0).unwrap().recipe()),
            ("zbox", zbox[2].recipe()),
        ];
        for relu in [false, true] {
            let mut shape = vec![2];
            shape.extend_from_slice(sample);
            let x = g.array(&shape).mapv(|v| if relu { v.max(0.0) } else { v });
            let out = Layer::forward(layer, x.view()).unwrap();
            let r = g.array(out.shape());
            let step = Step::new(0, x.view(), out.view(), r.view());
            for (rule, recipe) in &rules {
                let want = reference(layer, &step, recipe).unwrap();
                let got = propagate_with(layer, &step, recipe, FastPaths::ALL).unwrap();
                let err = relative_error(&got, &want);
                assert!(
                    err <= TOLERANCE,
                    "{} weights, relu {relu}, {rule}: {err:e}",
                    layer.weight().len()
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 2 * 2 * 3);
}

#[test]
fn apply_into_is_apply_per_element_on_small_and_large_weights() {
    // from PAR_WEIGHT elements on, the weight is split across threads (feature `parallel`)
    let params = [
        Param::Keep,
        Param::Positive,
        Param::Negative,
        Param::Ones,
        Param::Square,
        Param::GammaUp(0.25),
        Param::GammaDown(0.3),
    ];
    let mut g = Grid(17);
    for len in [0, 5, (1 << 18) + 3] {
        let src: Vec<f32> = (0..len).map(|_| g.next() as f32 * 1.1).collect();
        for p in params {
            let mut dst = vec![f32::NAN; len];
            p.apply_into(&src, &mut dst);
            let want: Vec<u32> = src.iter().map(|&v| p.apply(v).to_bits()).collect();
            let got: Vec<u32> = dst.iter().map(|v| v.to_bits()).collect();
            assert!(got == want, "{p:?}, {len} elements");
        }
    }
}
