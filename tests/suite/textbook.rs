//! Slow textbook references for every LRP rule, compared elementwise with the crate.
//!
//! Each affine layer is unrolled into an explicit list of connections `(j, i, w_ji)` by plain
//! nested loops (two for a dense layer, six for a convolution with stride, padding and
//! dilation), and every rule is then written as the formula in the doc comments of
//! `src/rules/lrp.rs` (zennit's `rules.py`): loops over the connections with
//! `z_ij = a_i w_ji`, a stabilised division, and a sum over `j`. Nothing of the crate's
//! engine (im2col, matrix products, term lists) is reused, so a mistake in either shows up.
//!
//! The max-pool reference is a loop over windows with PyTorch's tie rule (first maximum in
//! row-major order) and −∞ padding.

use crate::common;

use common::Rng;
use ndarray::{Array1, Array2, Array4, ArrayD, Axis, IxDyn};
use relevance::{
    Affine, Conv2d, Conv2dConfig, Dense, Layer, Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma,
    LrpWSquare, LrpZBox, LrpZPlus, MaxPool2d, Rule, Step,
};

// The seeded RNG (`Rng`) lives in tests/suite/common.

// ---------------------------------------------------------------------------------------------
// One affine layer as an explicit list of connections.

/// An affine layer unrolled: output `j` (flat, per sample) receives `w · a_i` from input `i`
/// for every link `(j, i, w)`, plus `bias[j]`.
struct Links {
    n_in: usize,
    n_out: usize,
    links: Vec<(usize, usize, f64)>,
    bias: Vec<f64>,
}

fn dense_links(w: &Array2<f64>, b: Option<&Array1<f64>>) -> Links {
    let (n_out, n_in) = w.dim();
    let mut links = Vec::new();
    for j in 0..n_out {
        for i in 0..n_in {
            links.push((j, i, w[[j, i]]));
        }
    }
    let bias = (0..n_out).map(|j| b.map_or(0.0, |b| b[j])).collect();
    Links {
        n_in,
        n_out,
        links,
        bias,
    }
}

/// Output size of one axis: `(len + 2·pad − dil·(k − 1) − 1) / stride + 1`.
fn out_len(len: usize, k: usize, stride: usize, pad: usize, dil: usize) -> usize {
    (len + 2 * pad - dil * (k - 1) - 1) / stride + 1
}

/// The six-deep convolution loop: output channel, output row, output column, input channel,
/// kernel row, kernel column; taps in the zero padding are skipped.
fn conv_links(w: &Array4<f64>, b: Option<&Array1<f64>>, cfg: Conv2dConfig, input: [usize; 3]) -> Links {
    let (o_ch, i_ch, kh, kw) = w.dim();
    let [c, h, wd] = input;
    assert_eq!(c, i_ch);
    let ho = out_len(h, kh, cfg.stride.0, cfg.padding.0, cfg.dilation.0);
    let wo = out_len(wd, kw, cfg.stride.1, cfg.padding.1, cfg.dilation.1);
    let mut links = Vec::new();
    let mut bias = Vec::new();
    for o in 0..o_ch {
        for oy in 0..ho {
            for ox in 0..wo {
                let j = (o * ho + oy) * wo + ox;
                bias.push(b.map_or(0.0, |b| b[o]));
                for ci in 0..c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy =
                                (oy * cfg.stride.0 + ky * cfg.dilation.0) as isize - cfg.padding.0 as isize;
                            let ix =
                                (ox * cfg.stride.1 + kx * cfg.dilation.1) as isize - cfg.padding.1 as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                continue;
                            }
                            let i = (ci * h + iy as usize) * wd + ix as usize;
                            links.push((j, i, w[[o, ci, ky, kx]]));
                        }
                    }
                }
            }
        }
    }
    Links {
        n_in: c * h * wd,
        n_out: o_ch * ho * wo,
        links,
        bias,
    }
}

impl Links {
    /// `z_j = Σ_i a_i w_ji + b_j`.
    fn forward(&self, a: &[f64]) -> Vec<f64> {
        let mut z = self.bias.clone();
        for &(j, i, w) in &self.links {
            z[j] += a[i] * w;
        }
        z
    }
}

// ---------------------------------------------------------------------------------------------
// The rules, as formulas.

/// A rule as its textbook formula.
#[derive(Debug, Clone)]
enum Textbook {
    /// LRP-ε (ε = 0 is LRP-0, with relevance dropped where `z_j = 0`).
    Epsilon(f64),
    /// Generalised LRP-γ with its stabiliser.
    Gamma(f64, f64),
    /// αβ (α, β, stabiliser); z⁺ is (1, 0, ε).
    AlphaBeta(f64, f64, f64),
    /// z^B with the bounds per input (flat, per sample) and the stabiliser.
    ZBox(Vec<f64>, Vec<f64>, f64),
    /// Flat with its stabiliser.
    Flat(f64),
    /// w² with its stabiliser.
    WSquare(f64),
}

/// `z + ε·sign₀(z)`, sign₀(0) = +1.
fn stab(z: f64, eps: f64) -> f64 {
    if z >= 0.0 {
        z + eps
    } else {
        z - eps
    }
}

/// `r / d`, 0 where `d` is exactly zero (only LRP-0 can get there).
fn ratio(r: f64, d: f64) -> f64 {
    if d == 0.0 {
        0.0
    } else {
        r / d
    }
}

fn pos(v: f64) -> f64 {
    v.max(0.0)
}

fn neg(v: f64) -> f64 {
    v.min(0.0)
}

/// The relevance at the input of one sample: `a` its input, `r` the relevance at its output.
fn textbook(l: &Links, rule: &Textbook, a: &[f64], r: &[f64]) -> Vec<f64> {
    assert_eq!(a.len(), l.n_in);
    assert_eq!(r.len(), l.n_out);
    let mut out = vec![0.0; l.n_in];
    match rule {
        Textbook::Epsilon(eps) => {
            // R_i = Σ_j a_i w_ji R_j / stab(z_j), z_j = Σ_i a_i w_ji + b_j
            let z = l.forward(a);
            for &(j, i, w) in &l.links {
                let z_ij = a[i] * w;
                out[i] += z_ij * ratio(r[j], stab(z[j], *eps));
            }
        }
        Textbook::Gamma(gamma, eps) => {
            let up = |p: f64| p + gamma * pos(p);
            let down = |p: f64| p + gamma * neg(p);
            let z = l.forward(a);
            // The (ρ for a⁺, ρ for a⁻) pair of output j, by the sign of the original z_j.
            let rho = |j: usize, p: f64| {
                if z[j] > 0.0 {
                    (up(p), down(p))
                } else {
                    (down(p), up(p))
                }
            };
            // d_j = Σ a⁺ ρ₊(w) + Σ a⁻ ρ₋(w) + ρ₊(b_j): the bias only in the a⁺ term.
            let mut d: Vec<f64> = (0..l.n_out).map(|j| rho(j, l.bias[j]).0).collect();
            for &(j, i, w) in &l.links {
                let (wp, wn) = rho(j, w);
                d[j] += pos(a[i]) * wp + neg(a[i]) * wn;
            }
            for &(j, i, w) in &l.links {
                if z[j] == 0.0 {
                    continue; // relevance of outputs with z_j = 0 is dropped
                }
                let (wp, wn) = rho(j, w);
                let z_ij = pos(a[i]) * wp + neg(a[i]) * wn;
                out[i] += z_ij * ratio(r[j], stab(d[j], *eps));
            }
        }
        Textbook::AlphaBeta(alpha, beta, eps) => {
            // activator z⁺_j = Σ a⁺w⁺ + Σ a⁻w⁻ + b⁺_j, inhibitor z⁻_j = Σ a⁺w⁻ + Σ a⁻w⁺ + b⁻_j
            let mut act: Vec<f64> = l.bias.iter().map(|&b| pos(b)).collect();
            let mut inh: Vec<f64> = l.bias.iter().map(|&b| neg(b)).collect();
            for &(j, i, w) in &l.links {
                act[j] += pos(a[i]) * pos(w) + neg(a[i]) * neg(w);
                inh[j] += pos(a[i]) * neg(w) + neg(a[i]) * pos(w);
            }
            for &(j, i, w) in &l.links {
                let z_act = pos(a[i]) * pos(w) + neg(a[i]) * neg(w);
                let z_inh = pos(a[i]) * neg(w) + neg(a[i]) * pos(w);
                out[i] += alpha * z_act * ratio(r[j], stab(act[j], *eps))
                    - beta * z_inh * ratio(r[j], stab(inh[j], *eps));
            }
        }
        Textbook::ZBox(low, high, eps) => {
            // z_j = Σ x_i w_ji − l_i w⁺_ji − h_i w⁻_ji (the bias cancels)
            let mut z = vec![0.0; l.n_out];
            for &(j, i, w) in &l.links {
                z[j] += a[i] * w - low[i] * pos(w) - high[i] * neg(w);
            }
            for &(j, i, w) in &l.links {
                let z_ij = a[i] * w - low[i] * pos(w) - high[i] * neg(w);
                out[i] += z_ij * ratio(r[j], stab(z[j], *eps));
            }
        }
        Textbook::Flat(eps) => {
            // n_j = number of inputs of output j (zero padding excluded); R_i = Σ_j R_j / stab(n_j)
            let mut n = vec![0.0; l.n_out];
            for &(j, _, _) in &l.links {
                n[j] += 1.0;
            }
            for &(j, i, _) in &l.links {
                out[i] += ratio(r[j], stab(n[j], *eps));
            }
        }
        Textbook::WSquare(eps) => {
            // R_i = Σ_j w_ji² R_j / stab(Σ_i w_ji² + b_j²)
            let mut d: Vec<f64> = l.bias.iter().map(|&b| b * b).collect();
            for &(j, _, w) in &l.links {
                d[j] += w * w;
            }
            for &(j, i, w) in &l.links {
                out[i] += w * w * ratio(r[j], stab(d[j], *eps));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Comparison.

/// Elementwise `|got − want| ≤ 1e-10·|want| + 1e-12·max|want|`: relative, with a floor for
/// values that are small only by cancellation.
fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}: non-finite value {g} at {k}");
        let tol = 1e-10 * w.abs() + 1e-12 * scale;
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {k}: crate {g:e}, textbook {w:e} (diff {:e})",
            (g - w).abs()
        );
    }
}

fn sample(a: &ArrayD<f64>, n: usize) -> Vec<f64> {
    a.index_axis(Axis(0), n).iter().copied().collect()
}

/// Upper relevance of both signs, as random as the layer's output shape allows.
fn random_relevance(rng: &mut Rng, shape: &[usize]) -> ArrayD<f64> {
    rng.array(shape, -1.0, 1.0)
}

/// Runs `rule.affine` on one layer and compares every sample with the textbook formula.
fn check(
    layer: &dyn Affine<f64>,
    links: &Links,
    rule: &dyn Rule<f64>,
    tb: &Textbook,
    x: &ArrayD<f64>,
    r: &ArrayD<f64>,
) {
    let out = layer.forward(x.view()).expect("forward");
    let step = Step::new(0, x.view(), out.view(), r.view());
    let got = rule.affine(layer, &step).expect("rule.affine");
    assert_eq!(
        got.shape(),
        x.shape(),
        "{} on {}: shape",
        rule.name(),
        layer.name()
    );
    for n in 0..x.shape()[0] {
        let want = textbook(links, tb, &sample(x, n), &sample(r, n));
        let what = format!("{} on {} (sample {n})", rule.name(), layer.name());
        assert_close(&sample(&got, n), &want, &what);
    }
}

/// Every rule with the textbook formula it should compute; `low`/`high` are the ZBox bounds
/// as given to the crate, `low_flat`/`high_flat` the same broadcast to one value per input.
fn all_rules(
    low: &ArrayD<f64>,
    high: &ArrayD<f64>,
    low_flat: &[f64],
    high_flat: &[f64],
) -> Vec<(Box<dyn Rule<f64>>, Textbook)> {
    let zbox = |eps: f64| Textbook::ZBox(low_flat.to_vec(), high_flat.to_vec(), eps);
    vec![
        (Box::new(Lrp0), Textbook::Epsilon(0.0)),
        (Box::new(LrpEpsilon::default()), Textbook::Epsilon(1e-6)),
        (Box::new(LrpEpsilon::new(0.25).unwrap()), Textbook::Epsilon(0.25)),
        (Box::new(LrpEpsilon::new(0.0).unwrap()), Textbook::Epsilon(0.0)),
        (Box::new(LrpGamma::default()), Textbook::Gamma(0.25, 1e-6)),
        (
            Box::new(LrpGamma::with_stabilizer(1.5, 0.01).unwrap()),
            Textbook::Gamma(1.5, 0.01),
        ),
        (
            Box::new(LrpGamma::with_stabilizer(0.0, 0.0).unwrap()),
            Textbook::Gamma(0.0, 0.0),
        ),
        (Box::new(LrpGamma::new(0.1).unwrap()), Textbook::Gamma(0.1, 1e-6)),
        (
            Box::new(LrpAlphaBeta::default()),
            Textbook::AlphaBeta(2.0, 1.0, 1e-6),
        ),
        (
            Box::new(LrpAlphaBeta::new(1.0, 0.0).unwrap()),
            Textbook::AlphaBeta(1.0, 0.0, 1e-6),
        ),
        (
            Box::new(LrpAlphaBeta::with_stabilizer(3.0, 2.0, 0.1).unwrap()),
            Textbook::AlphaBeta(3.0, 2.0, 0.1),
        ),
        (Box::new(LrpZPlus::new()), Textbook::AlphaBeta(1.0, 0.0, 1e-6)),
        (
            Box::new(LrpZPlus::with_stabilizer(0.5).unwrap()),
            Textbook::AlphaBeta(1.0, 0.0, 0.5),
        ),
        (
            Box::new(LrpZBox::new(low.clone(), high.clone()).unwrap()),
            zbox(1e-6),
        ),
        (
            Box::new(LrpZBox::with_stabilizer(low.clone(), high.clone(), 0.3).unwrap()),
            zbox(0.3),
        ),
        (Box::new(LrpFlat::new()), Textbook::Flat(1e-6)),
        (
            Box::new(LrpFlat::with_stabilizer(0.3).unwrap()),
            Textbook::Flat(0.3),
        ),
        (Box::new(LrpWSquare::new()), Textbook::WSquare(1e-6)),
        (
            Box::new(LrpWSquare::with_stabilizer(0.2).unwrap()),
            Textbook::WSquare(0.2),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Dense.

fn random_dense(rng: &mut Rng, n_in: usize, n_out: usize, bias: bool) -> (Dense<f64>, Links) {
    let w = Array2::from_shape_fn((n_out, n_in), |_| rng.uniform(-1.0, 1.0));
    let b = bias.then(|| Array1::from_shape_fn(n_out, |_| rng.uniform(-0.5, 0.5)));
    let links = dense_links(&w, b.as_ref());
    (Dense::new(w, b).unwrap(), links)
}

#[test]
fn dense_forward_matches_textbook() {
    let mut rng = Rng::new(1);
    for &(n_in, n_out, batch, bias) in &[(1, 1, 1, true), (3, 2, 2, false), (7, 5, 3, true)] {
        let (dense, links) = random_dense(&mut rng, n_in, n_out, bias);
        let x = rng.array(&[batch, n_in], -1.0, 1.0);
        let y = dense.forward(x.view()).unwrap();
        for n in 0..batch {
            assert_close(&sample(&y, n), &links.forward(&sample(&x, n)), "Dense forward");
        }
    }
}

#[test]
fn every_rule_matches_textbook_on_dense_layers() {
    let mut rng = Rng::new(2);
    let shapes = [(1, 1, 1), (3, 2, 2), (5, 4, 3), (8, 3, 2), (2, 6, 1), (10, 10, 2)];
    for (case, &(n_in, n_out, batch)) in shapes.iter().enumerate() {
        for bias in [false, true] {
            let (dense, links) = random_dense(&mut rng, n_in, n_out, bias);
            let x = rng.array(&[batch, n_in], -1.0, 1.0);
            let r = random_relevance(&mut rng, &[batch, n_out]);
            // bounds per input feature, or one scalar for all
            let (low, high) = if case % 2 == 0 {
                (rng.array(&[n_in], -1.5, -0.5), rng.array(&[n_in], 0.5, 1.5))
            } else {
                (rng.array(&[], -1.5, -0.5), rng.array(&[], 0.5, 1.5))
            };
            let low_flat: Vec<f64> = (0..n_in)
                .map(|i| low.iter().nth(i % low.len()).copied().unwrap())
                .collect();
            let high_flat: Vec<f64> = (0..n_in)
                .map(|i| high.iter().nth(i % high.len()).copied().unwrap())
                .collect();
            for (rule, tb) in all_rules(&low, &high, &low_flat, &high_flat) {
                check(&dense, &links, rule.as_ref(), &tb, &x, &r);
            }
        }
    }
}

#[test]
fn every_rule_matches_textbook_on_non_negative_inputs() {
    // After a ReLU the inputs are ≥ 0 with exact zeros: the a⁻ terms vanish.
    let mut rng = Rng::new(3);
    let (dense, links) = random_dense(&mut rng, 6, 4, true);
    let x = rng.array(&[3, 6], -1.0, 1.0).mapv(pos);
    let r = random_relevance(&mut rng, &[3, 4]);
    let (low, high) = (ArrayD::zeros(IxDyn(&[])), ArrayD::from_elem(IxDyn(&[]), 1.0));
    for (rule, tb) in all_rules(&low, &high, &[0.0; 6], &[1.0; 6]) {
        check(&dense, &links, rule.as_ref(), &tb, &x, &r);
    }
    // All inputs ≤ 0: the a⁺ terms vanish (but the bias in them does not).
    let x = rng.array(&[2, 6], -1.0, 1.0).mapv(neg);
    let r = random_relevance(&mut rng, &[2, 4]);
    for (rule, tb) in all_rules(&low, &high, &[0.0; 6], &[1.0; 6]) {
        check(&dense, &links, rule.as_ref(), &tb, &x, &r);
    }
}

#[test]
fn every_rule_matches_textbook_where_a_pre_activation_is_exactly_zero() {
    // z = [1 − 1, 1 + 1 + 0.5] = [0, 2.5]: LRP-0 and γ drop output 0, ε divides by ε.
    let w = ndarray::array![[1.0, -1.0], [1.0, 1.0]];
    let b = ndarray::array![0.0, 0.5];
    let links = dense_links(&w, Some(&b));
    let dense = Dense::new(w, Some(b)).unwrap();
    let x = ndarray::array![[1.0, 1.0], [0.5, -0.25]].into_dyn();
    let r = ndarray::array![[0.7, -0.3], [1.0, 1.0]].into_dyn();
    let (low, high) = (
        ArrayD::from_elem(IxDyn(&[]), -1.0),
        ArrayD::from_elem(IxDyn(&[]), 1.0),
    );
    for (rule, tb) in all_rules(&low, &high, &[-1.0; 2], &[1.0; 2]) {
        check(&dense, &links, rule.as_ref(), &tb, &x, &r);
    }
    let out = dense.forward(x.view()).unwrap();
    let step = Step::new(0, x.view(), out.view(), r.view());
    let lrp0 = Lrp0.affine(&dense, &step).unwrap();
    // output 0 dropped: sample 0 gets only 1·(x_i w_1i)/2.5·(−0.3)
    assert_close(&sample(&lrp0, 0), &[-0.3 / 2.5, -0.3 / 2.5], "LRP-0 at z = 0");
}

// ---------------------------------------------------------------------------------------------
// Conv2d.

/// (in channels, H, W, out channels, kh, kw, stride, padding, dilation, batch)
type ConvCase = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    (usize, usize),
    (usize, usize),
    (usize, usize),
    usize,
);

const CONV_CASES: &[ConvCase] = &[
    (2, 5, 5, 3, 3, 3, (1, 1), (0, 0), (1, 1), 2),
    (2, 7, 6, 3, 3, 3, (2, 2), (1, 1), (1, 1), 2),
    (1, 7, 7, 2, 3, 3, (1, 1), (0, 0), (2, 2), 1),
    (3, 8, 7, 2, 3, 2, (2, 2), (1, 1), (2, 2), 2),
    (2, 6, 5, 4, 2, 3, (1, 2), (2, 1), (1, 2), 3),
    (1, 4, 4, 2, 1, 1, (1, 1), (1, 1), (1, 1), 2), // corner outputs see only padding
    (2, 5, 4, 1, 5, 4, (1, 1), (0, 0), (1, 1), 2), // kernel = input: one output
    (1, 9, 9, 3, 3, 3, (3, 2), (2, 0), (3, 1), 2),
];

fn random_conv(rng: &mut Rng, case: &ConvCase, bias: bool) -> (Conv2d<f64>, Links, ArrayD<f64>) {
    let &(c, h, w, o, kh, kw, stride, padding, dilation, batch) = case;
    let weight = Array4::from_shape_fn((o, c, kh, kw), |_| rng.uniform(-1.0, 1.0));
    let b = bias.then(|| Array1::from_shape_fn(o, |_| rng.uniform(-0.5, 0.5)));
    let cfg = Conv2dConfig {
        stride,
        padding,
        dilation,
        ..Conv2dConfig::default()
    };
    let links = conv_links(&weight, b.as_ref(), cfg, [c, h, w]);
    let conv = Conv2d::new(weight, b, cfg).unwrap();
    let x = rng.array(&[batch, c, h, w], -1.0, 1.0);
    (conv, links, x)
}

#[test]
fn conv_forward_matches_textbook() {
    let mut rng = Rng::new(4);
    for case in CONV_CASES {
        for bias in [false, true] {
            let (conv, links, x) = random_conv(&mut rng, case, bias);
            let y = conv.forward(x.view()).unwrap();
            assert_eq!(y.len() / x.shape()[0], links.n_out, "{case:?}: output size");
            assert_eq!(
                Layer::<f64>::output_shape(&conv, &x.shape()[1..]).unwrap(),
                y.shape()[1..]
            );
            for n in 0..x.shape()[0] {
                assert_close(
                    &sample(&y, n),
                    &links.forward(&sample(&x, n)),
                    &format!("conv {case:?}"),
                );
            }
        }
    }
}

#[test]
fn every_rule_matches_textbook_on_conv_layers() {
    let mut rng = Rng::new(5);
    for case in CONV_CASES {
        for bias in [false, true] {
            let (conv, links, x) = random_conv(&mut rng, case, bias);
            let (c, h, w) = (case.0, case.1, case.2);
            let out_shape = Layer::<f64>::output_shape(&conv, &x.shape()[1..]).unwrap();
            let mut r_shape = vec![x.shape()[0]];
            r_shape.extend(out_shape);
            let r = random_relevance(&mut rng, &r_shape);
            // per-channel bounds [C, 1, 1], as for a normalised image
            let low = rng.array(&[c, 1, 1], -1.5, -0.5);
            let high = rng.array(&[c, 1, 1], 0.5, 1.5);
            let low_flat: Vec<f64> = (0..c * h * w).map(|i| low[[i / (h * w), 0, 0]]).collect();
            let high_flat: Vec<f64> = (0..c * h * w).map(|i| high[[i / (h * w), 0, 0]]).collect();
            for (rule, tb) in all_rules(&low, &high, &low_flat, &high_flat) {
                check(&conv, &links, rule.as_ref(), &tb, &x, &r);
            }
            // full-shape bounds [C, H, W]
            let low = rng.array(&[c, h, w], -1.5, -0.5);
            let high = rng.array(&[c, h, w], 0.5, 1.5);
            let lf: Vec<f64> = low.iter().copied().collect();
            let hf: Vec<f64> = high.iter().copied().collect();
            let zbox = LrpZBox::new(low.clone(), high.clone()).unwrap();
            check(&conv, &links, &zbox, &Textbook::ZBox(lf, hf, 1e-6), &x, &r);
            // scalar bounds [] (folded into the weight like per-channel ones)
            let (low, high) = (
                ArrayD::from_elem(IxDyn(&[]), -1.25),
                ArrayD::from_elem(IxDyn(&[]), 0.75),
            );
            let zbox = LrpZBox::new(low, high).unwrap();
            let tb = Textbook::ZBox(vec![-1.25; c * h * w], vec![0.75; c * h * w], 1e-6);
            check(&conv, &links, &zbox, &tb, &x, &r);
        }
    }
}

#[test]
fn conv_rules_match_textbook_on_relu_outputs() {
    let mut rng = Rng::new(6);
    for case in CONV_CASES {
        let (conv, links, x) = random_conv(&mut rng, case, true);
        let x = x.mapv(pos);
        let out = conv.forward(x.view()).unwrap();
        let r = random_relevance(&mut rng, out.shape());
        let n_in = links.n_in;
        let (low, high) = (ArrayD::zeros(IxDyn(&[])), ArrayD::from_elem(IxDyn(&[]), 1.0));
        for (rule, tb) in all_rules(&low, &high, &vec![0.0; n_in], &vec![1.0; n_in]) {
            check(&conv, &links, rule.as_ref(), &tb, &x, &r);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Max-pool.

/// Output size of a max-pool: `(H + 2·pad − k) / stride + 1`, likewise W.
fn pool_out(h: usize, w: usize, k: (usize, usize), s: (usize, usize), p: (usize, usize)) -> (usize, usize) {
    ((h + 2 * p.0 - k.0) / s.0 + 1, (w + 2 * p.1 - k.1) / s.1 + 1)
}

/// Output values and routed relevance of a max-pool, by the loop over windows: −∞ padding,
/// first maximum in row-major order wins, overlapping windows add up.
fn textbook_pool(
    x: &Array4<f64>,
    r: &Array4<f64>,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
) -> (Array4<f64>, Array4<f64>) {
    let (n, c, h, w) = x.dim();
    let (ho, wo) = pool_out(h, w, k, s, p);
    assert_eq!(r.dim(), (n, c, ho, wo));
    let mut y = Array4::zeros((n, c, ho, wo));
    let mut routed = Array4::zeros((n, c, h, w));
    for b in 0..n {
        for ch in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut best: Option<(f64, usize, usize)> = None;
                    for ky in 0..k.0 {
                        for kx in 0..k.1 {
                            let iy = (oy * s.0 + ky) as isize - p.0 as isize;
                            let ix = (ox * s.1 + kx) as isize - p.1 as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue; // −∞ never wins
                            }
                            let v = x[[b, ch, iy as usize, ix as usize]];
                            let better = match best {
                                None => true,
                                Some((m, _, _)) => v > m,
                            };
                            if better {
                                best = Some((v, iy as usize, ix as usize));
                            }
                        }
                    }
                    let (v, iy, ix) = best.expect("every window overlaps the input");
                    y[[b, ch, oy, ox]] = v;
                    routed[[b, ch, iy, ix]] += r[[b, ch, oy, ox]];
                }
            }
        }
    }
    (y, routed)
}

/// (kernel, stride, padding, H, W)
type PoolCase = ((usize, usize), (usize, usize), (usize, usize), usize, usize);

const POOL_CASES: &[PoolCase] = &[
    ((2, 2), (2, 2), (0, 0), 4, 4),
    ((3, 3), (1, 1), (1, 1), 5, 4), // overlapping, padded
    ((3, 3), (2, 2), (1, 1), 6, 7),
    ((2, 2), (1, 1), (1, 1), 3, 3),
    ((3, 2), (1, 2), (1, 0), 5, 6),
    ((2, 3), (2, 1), (0, 1), 5, 5),
    ((1, 1), (1, 1), (0, 0), 2, 3),
];

fn check_pool(pool: &MaxPool2d, x: &Array4<f64>, r: &Array4<f64>, what: &str) {
    let (k, s, p) = pool.params();
    let (y_tb, routed_tb) = textbook_pool(x, r, k, s, p);
    let xd = x.clone().into_dyn();
    let rd = r.clone().into_dyn();
    let y = pool.forward(xd.view()).unwrap();
    assert_eq!(y, y_tb.clone().into_dyn(), "{what}: forward");
    let step = Step::new(0, xd.view(), y.view(), rd.view());
    let routed = Rule::<f64>::select(&Lrp0, pool, &step).unwrap();
    assert_close(
        routed.as_slice().unwrap(),
        routed_tb.as_slice().unwrap(),
        &format!("{what}: routing"),
    );
    let grad = pool.gradient(&step, rd.view()).unwrap();
    assert_close(
        grad.as_slice().unwrap(),
        routed_tb.as_slice().unwrap(),
        &format!("{what}: gradient"),
    );
    // The routing conserves relevance exactly.
    assert!((routed.sum() - r.sum()).abs() <= 1e-12 * r.iter().map(|v| v.abs()).sum::<f64>());
}

#[test]
fn maxpool_matches_textbook_with_continuous_values() {
    let mut rng = Rng::new(7);
    for &(k, s, p, h, w) in POOL_CASES {
        let pool = MaxPool2d::new(k, s, p).unwrap();
        let x = Array4::from_shape_fn((2, 3, h, w), |_| rng.uniform(-1.0, 1.0));
        let (ho, wo) = pool_out(h, w, k, s, p);
        let r = Array4::from_shape_fn((2, 3, ho, wo), |_| rng.uniform(-1.0, 1.0));
        check_pool(&pool, &x, &r, &format!("pool {k:?} {s:?} {p:?}"));
    }
}

#[test]
fn maxpool_matches_textbook_with_ties() {
    let mut rng = Rng::new(8);
    for &(k, s, p, h, w) in POOL_CASES {
        let pool = MaxPool2d::new(k, s, p).unwrap();
        for values in [
            &[-2.0, -1.0, 0.0, 1.0][..],
            &[0.0, 0.0, 1.0][..],
            &[-1.0][..],
            &[-3.0, -2.0][..],
        ] {
            let x = Array4::from_shape_fn((2, 2, h, w), |_| values[rng.below(values.len())]);
            let (ho, wo) = pool_out(h, w, k, s, p);
            let r = Array4::from_shape_fn((2, 2, ho, wo), |_| rng.uniform(-1.0, 1.0));
            check_pool(&pool, &x, &r, &format!("pool {k:?} {s:?} {p:?} ties {values:?}"));
        }
    }
}

#[test]
fn maxpool_first_maximum_wins_and_padding_never_does() {
    // All equal: each window routes to its top-left element.
    let pool = MaxPool2d::new((2, 2), (1, 1), (0, 0)).unwrap();
    let x = Array4::<f64>::zeros((1, 1, 3, 3));
    let r = Array4::<f64>::ones((1, 1, 2, 2));
    let xd = x.into_dyn();
    let y = pool.forward(xd.view()).unwrap();
    let rd = r.into_dyn();
    let step = Step::new(0, xd.view(), y.view(), rd.view());
    let routed = Rule::<f64>::select(&Lrp0, &pool, &step).unwrap();
    let want = ndarray::array![[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]];
    assert_eq!(
        routed,
        want.into_shape_with_order((1, 1, 3, 3)).unwrap().into_dyn()
    );

    // Negative inputs with padding: the padding is −∞, not 0.
    let pool = MaxPool2d::new((2, 2), (1, 1), (1, 1)).unwrap();
    let x = ndarray::array![[-1.0, -2.0], [-3.0, -4.0]]
        .into_shape_with_order((1, 1, 2, 2))
        .unwrap();
    let xd = x.into_dyn();
    let y = pool.forward(xd.view()).unwrap();
    let want_y = ndarray::array![[-1.0, -1.0, -2.0], [-1.0, -1.0, -2.0], [-3.0, -3.0, -4.0]];
    assert_eq!(y, want_y.into_shape_with_order((1, 1, 3, 3)).unwrap().into_dyn());
    let rd = ArrayD::from_shape_fn(IxDyn(&[1, 1, 3, 3]), |ix| (ix[2] * 3 + ix[3]) as f64);
    let step = Step::new(0, xd.view(), y.view(), rd.view());
    let routed = Rule::<f64>::select(&Lrp0, &pool, &step).unwrap();
    // -1 collects outputs 0,1,3,4; -2 outputs 2,5; -3 outputs 6,7; -4 output 8
    let want = ndarray::array![[8.0, 7.0], [13.0, 8.0]];
    assert_eq!(
        routed,
        want.into_shape_with_order((1, 1, 2, 2)).unwrap().into_dyn()
    );
}
