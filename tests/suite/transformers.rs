//! Transformers (issue #21): tiny vision and text transformers built with the graph
//! builder — patch embedding, class token, positional embedding, pre-LN (ViT) and post-LN
//! (BERT) encoder blocks with multi-head attention, GELU MLPs — explained by AttnLRP,
//! CP-LRP, DeepLIFT and the gradient.
//!
//! * properties on random weights: CP-LRP conserves relevance exactly on a bias-free
//!   transformer (attention weights constant, every other rule conserving); AttnLRP
//!   conserves at every matrix product and layer norm; DeepLIFT with
//!   [`SoftmaxRule::Exact`] sums to `f(x) − f(x̄)` for zero, random and per-sample
//!   baselines (token ids too); the gradient equals central finite differences;
//! * lxt 2.1 (`tests/fixtures/transformers/tiny_{vit,bert}.json`, written by
//!   `tools/gen_transformer_fixtures.py` with lxt's explicit rule functions, every ε = 0):
//!   the logits, the relevance at the input (the ViT's pixels; the BERT's word embeddings
//!   and tokens) and at every recorded point (residual stream, layer-norm inputs, q/k/v,
//!   softmax inputs and outputs) under AttnLRP and CP-LRP;
//! * token inputs: ids that are negative, fractional, out of range or NaN are
//!   [`Error::TokenId`] naming the position.

use crate::common;

use common::bounds::{LXT_F64, TRANSFORMER_DELTA};
use common::Rng;
use ndarray::{Array1, Array2, ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use relevance::rules::SoftmaxRule;
use relevance::{
    Add, AttnLrp, Baseline, Concat, Conv2d, Conv2dConfig, CpLrp, DeepLift, Dense, Embedding, Error, Gelu,
    Gradient, GraphBuilder, LayerNorm, MatMul, Narrow, Network, NodeId, Options, Permute, Reshape, Seed,
    Softmax, Tanh, Target,
};

/// Where a builder takes its parameters from: by PyTorch name and shape.
pub trait Params {
    fn get(&mut self, name: &str, shape: &[usize]) -> ArrayD<f64>;
}

/// Random parameters, `N(0, 1/fan_in)`-like (uniform), layer norms around 1; biases zero
/// when `biases` is false.
pub struct RandomParams {
    rng: Rng,
    biases: bool,
}

impl RandomParams {
    pub fn new(seed: u64, biases: bool) -> Self {
        RandomParams {
            rng: Rng::new(seed),
            biases,
        }
    }
}

impl Params for RandomParams {
    fn get(&mut self, name: &str, shape: &[usize]) -> ArrayD<f64> {
        let is_bias = name.ends_with(".bias");
        if is_bias && !self.biases {
            return ArrayD::zeros(IxDyn(shape));
        }
        let norm = name.contains("ln") || name.contains("LayerNorm");
        if norm && name.ends_with(".weight") {
            return self.rng.array(shape, 0.5, 1.5);
        }
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let a = if is_bias {
            0.3
        } else {
            (3.0 / fan_in as f64).sqrt()
        };
        self.rng.array(shape, -a, a)
    }
}

/// The sizes of the tiny transformers (those of `tools/gen_transformer_fixtures.py`).
pub const D: usize = 8;
pub const HEADS: usize = 2;
pub const MLP: usize = 16;
pub const BLOCKS: usize = 2;
pub const CLASSES: usize = 3;

fn dense(
    g: &mut GraphBuilder<f64>,
    p: &mut dyn Params,
    name: &str,
    inp: usize,
    out: usize,
    x: NodeId,
) -> NodeId {
    dense_scaled(g, p, name, inp, out, 1.0, x)
}

/// A dense layer whose output is scaled by `scale` (the attention's `1/√d` folded into
/// the query: the same forward pass, and the same relevance under every rule here).
fn dense_scaled(
    g: &mut GraphBuilder<f64>,
    p: &mut dyn Params,
    name: &str,
    inp: usize,
    out: usize,
    scale: f64,
    x: NodeId,
) -> NodeId {
    let w = p
        .get(&format!("{name}.weight"), &[out, inp])
        .into_dimensionality()
        .unwrap()
        * scale;
    let b = p
        .get(&format!("{name}.bias"), &[out])
        .into_dimensionality()
        .unwrap()
        * scale;
    g.add(name, Dense::new(w, Some(b)).unwrap(), x).unwrap()
}

fn layer_norm(g: &mut GraphBuilder<f64>, p: &mut dyn Params, name: &str, eps: f64, x: NodeId) -> NodeId {
    let w: Array1<f64> = p
        .get(&format!("{name}.weight"), &[D])
        .into_dimensionality()
        .unwrap();
    let b: Array1<f64> = p
        .get(&format!("{name}.bias"), &[D])
        .into_dimensionality()
        .unwrap();
    g.add(name, LayerNorm::new(&[D], Some(w), Some(b), eps).unwrap(), x)
        .unwrap()
}

/// Multi-head self-attention on `[N, T, D]`: names `{prefix}.{q,k,v,out}`.
#[allow(clippy::too_many_arguments)]
fn attention(
    g: &mut GraphBuilder<f64>,
    p: &mut dyn Params,
    prefix: &str,
    [q, k, v, out]: [&str; 4],
    t: usize,
    x: NodeId,
) -> NodeId {
    let d = D / HEADS;
    let scale = 1.0 / (d as f64).sqrt();
    let q = dense_scaled(g, p, &format!("{prefix}.{q}"), D, D, scale, x);
    let k = dense(g, p, &format!("{prefix}.{k}"), D, D, x);
    let v = dense(g, p, &format!("{prefix}.{v}"), D, D, x);
    let heads = |g: &mut GraphBuilder<f64>, name: &str, id: NodeId, perm: &[usize]| {
        let r = g
            .add(&format!("{name}.heads"), Reshape::new(&[t, HEADS, d]), id)
            .unwrap();
        g.add(&format!("{name}.perm"), Permute::new(perm).unwrap(), r)
            .unwrap()
    };
    let qh = heads(g, &format!("{prefix}.q_"), q, &[1, 0, 2]); // [H, T, d]
    let kt = heads(g, &format!("{prefix}.k_"), k, &[1, 2, 0]); // [H, d, T]
    let vh = heads(g, &format!("{prefix}.v_"), v, &[1, 0, 2]); // [H, T, d]
    let scores = g
        .merge(&format!("{prefix}.scores"), MatMul::new(), &[qh, kt])
        .unwrap();
    let probs = g
        .add(&format!("{prefix}.softmax"), Softmax::new(2), scores)
        .unwrap();
    let ctx = g
        .merge(&format!("{prefix}.context"), MatMul::new(), &[probs, vh])
        .unwrap();
    let ctx = g
        .add(&format!("{prefix}.merge"), Permute::new(&[1, 0, 2]).unwrap(), ctx)
        .unwrap();
    let ctx = g
        .add(&format!("{prefix}.flat"), Reshape::new(&[t, D]), ctx)
        .unwrap();
    dense(g, p, &format!("{prefix}.{out}"), D, D, ctx)
}

/// The tiny ViT: `[N, 3, 8, 8]` → 4 patches of 4×4 + a class token, 2 pre-LN blocks,
/// the class token's logits `[N, 3]`.
pub fn tiny_vit(p: &mut dyn Params) -> Network<f64> {
    let mut g = GraphBuilder::<f64>::new(&[3, 8, 8]).unwrap();
    let w = p
        .get("conv_proj.weight", &[D, 3, 4, 4])
        .into_dimensionality()
        .unwrap();
    let b = p.get("conv_proj.bias", &[D]).into_dimensionality().unwrap();
    let config = Conv2dConfig {
        stride: (4, 4),
        ..Conv2dConfig::default()
    };
    let x = g
        .add("conv_proj", Conv2d::new(w, Some(b), config).unwrap(), g.input())
        .unwrap();
    let x = g.add("flatten", Reshape::new(&[D, 4]), x).unwrap();
    let x = g.add("tokens", Permute::new(&[1, 0]).unwrap(), x).unwrap(); // [4, D]
    let cls = p.get("class_token", &[1, 1, D]);
    let cls = g.constant("class_token", cls).unwrap();
    let x = g.merge("concat", Concat::new(0), &[cls, x]).unwrap(); // [5, D]
    let pos = g
        .constant(
            "encoder.pos_embedding",
            p.get("encoder.pos_embedding", &[1, 5, D]),
        )
        .unwrap();
    let mut x = g.merge("encoder.pos", Add::new(), &[x, pos]).unwrap();
    for i in 0..BLOCKS {
        let pre = format!("encoder.layers.{i}");
        let h = layer_norm(&mut g, p, &format!("{pre}.ln_1"), 1e-6, x);
        let names = ["q", "k", "v", "out_proj"];
        let a = attention(&mut g, p, &format!("{pre}.self_attention"), names, 5, h);
        x = g.merge(&format!("{pre}.add_1"), Add::new(), &[x, a]).unwrap();
        let h = layer_norm(&mut g, p, &format!("{pre}.ln_2"), 1e-6, x);
        let h = dense(&mut g, p, &format!("{pre}.mlp.0"), D, MLP, h);
        let h = g.add(&format!("{pre}.mlp.1"), Gelu::new(), h).unwrap();
        let h = dense(&mut g, p, &format!("{pre}.mlp.3"), MLP, D, h);
        x = g.merge(&format!("{pre}.add_2"), Add::new(), &[x, h]).unwrap();
    }
    let x = layer_norm(&mut g, p, "encoder.ln", 1e-6, x);
    let x = g.add("cls", Narrow::new(0, 0, 1), x).unwrap();
    let x = g.add("cls.flat", Reshape::new(&[D]), x).unwrap();
    let out = dense(&mut g, p, "heads.head", D, CLASSES, x);
    g.build(out).unwrap()
}

/// Token count and vocabulary of the tiny BERT.
pub const T: usize = 6;
pub const VOCAB: usize = 20;

/// The tiny BERT: token ids `[N, 6]` → word + position embeddings, layer norm, 2 post-LN
/// blocks, the first token through a tanh pooler, logits `[N, 3]`.
pub fn tiny_bert(p: &mut dyn Params) -> Network<f64> {
    let mut g = GraphBuilder::<f64>::new(&[T]).unwrap();
    let table: Array2<f64> = p
        .get("embeddings.word_embeddings.weight", &[VOCAB, D])
        .into_dimensionality()
        .unwrap();
    let e = g
        .add(
            "embeddings.word_embeddings",
            Embedding::new(table).unwrap(),
            g.input(),
        )
        .unwrap();
    let pos = p
        .get("embeddings.position_embeddings.weight", &[T, D])
        .insert_axis(Axis(0));
    let pos = g.constant("embeddings.position_embeddings", pos).unwrap();
    let e = g.merge("embeddings.add", Add::new(), &[e, pos]).unwrap();
    let mut x = layer_norm(&mut g, p, "embeddings.LayerNorm", 1e-12, e);
    for i in 0..BLOCKS {
        let pre = format!("encoder.layer.{i}");
        let names = ["self.query", "self.key", "self.value", "output.dense"];
        let a = attention(&mut g, p, &format!("{pre}.attention"), names, T, x);
        let s = g
            .merge(&format!("{pre}.attention.add"), Add::new(), &[x, a])
            .unwrap();
        x = layer_norm(&mut g, p, &format!("{pre}.attention.output.LayerNorm"), 1e-12, s);
        let h = dense(&mut g, p, &format!("{pre}.intermediate.dense"), D, MLP, x);
        let h = g
            .add(&format!("{pre}.intermediate.gelu"), Gelu::new(), h)
            .unwrap();
        let h = dense(&mut g, p, &format!("{pre}.output.dense"), MLP, D, h);
        let s = g
            .merge(&format!("{pre}.output.add"), Add::new(), &[x, h])
            .unwrap();
        x = layer_norm(&mut g, p, &format!("{pre}.output.LayerNorm"), 1e-12, s);
    }
    let x = g.add("first", Narrow::new(0, 0, 1), x).unwrap();
    let x = g.add("first.flat", Reshape::new(&[D]), x).unwrap();
    let x = dense(&mut g, p, "pooler.dense", D, D, x);
    let x = g.add("pooler.activation", Tanh, x).unwrap();
    let out = dense(&mut g, p, "classifier", D, CLASSES, x);
    g.build(out).unwrap()
}

fn images(seed: u64, n: usize) -> ArrayD<f64> {
    Rng::new(seed).array(&[n, 3, 8, 8], -2.0, 2.0)
}

fn ids(seed: u64, n: usize) -> ArrayD<f64> {
    let mut rng = Rng::new(seed);
    ArrayD::from_shape_fn(IxDyn(&[n, T]), |_| rng.below(VOCAB) as f64)
}

fn targets(n: usize) -> Target<f64> {
    Target::PerSample((0..n).map(|i| i % CLASSES).collect())
}

/// `|Σ_sample relevance − total| / max(1, |total|)`, the worst sample.
fn worst_gap(relevance: &ArrayD<f64>, total: &Array1<f64>) -> f64 {
    let sums = relevance
        .view()
        .into_shape_with_order((relevance.shape()[0], relevance.len() / relevance.shape()[0]))
        .unwrap()
        .sum_axis(Axis(1));
    sums.iter()
        .zip(total)
        .map(|(s, t)| (s - t).abs() / t.abs().max(1.0))
        .fold(0.0, f64::max)
}

/// CP-LRP with ε = 0 conserves exactly on a bias-free transformer: every rule it applies
/// conserves (the ε-rule without bias, `Norm` at sums, the identity at GELU, layer norms
/// with `1/σ` constant and no bias), and the attention weights pass nothing.
#[test]
fn cp_lrp_conserves_on_bias_free_transformers() {
    let rule = CpLrp::new(0.0).unwrap();
    let opts = Options {
        seed: Seed::Logit,
        ..Options::default()
    };
    // no positional embedding or class token: constants absorb their share, as biases
    for (net, x) in [
        (
            tiny_vit(&mut ZeroConstants(RandomParams::new(1, false))),
            images(2, 3),
        ),
        (
            tiny_bert(&mut ZeroConstants(RandomParams::new(3, false))),
            ids(4, 3),
        ),
    ] {
        let a = net.attribute_with(&x, &targets(3), &rule, opts).unwrap();
        let gap = worst_gap(&a.relevance, &a.total);
        assert!(gap < 1e-12, "CP-LRP conservation gap {gap:e}");
        assert!(a.relevance.iter().any(|&r| r != 0.0));
    }
}

/// Parameters with the class token and positional embeddings set to zero (so nothing is
/// absorbed by a constant).
struct ZeroConstants(RandomParams);

impl Params for ZeroConstants {
    fn get(&mut self, name: &str, shape: &[usize]) -> ArrayD<f64> {
        let v = self.0.get(name, shape);
        if name == "class_token" || name.contains("pos") || name.contains("position") {
            v * 0.0
        } else {
            v
        }
    }
}

/// AttnLRP's rules conserve where the paper says they do: at matrix products (ε = 0:
/// `Σ R_a + Σ R_b = Σ R`) and bias-free layer norms; the softmax's Taylor rule does not
/// (the paper's "with bias" form: it keeps `Σ x ⊙ (R − s Σ R)`).
#[test]
fn attn_lrp_conserves_at_products_and_norms() {
    let net = tiny_vit(&mut RandomParams::new(5, true));
    let x = images(6, 2);
    let opts = Options::keep_layers();
    let a = net
        .attribute_with(&x, &targets(2), &AttnLrp::new(0.0).unwrap(), opts)
        .unwrap();
    let layers = a.layers.as_ref().unwrap();
    let sum = |v: usize| layers[v].sum();
    let mut checked = 0;
    for (k, node) in net.nodes().iter().enumerate() {
        let name = node.name();
        if name.ends_with(".context") || name.ends_with(".scores") {
            let inputs: f64 = node.inputs().iter().map(|&u| sum(u)).sum();
            let out = sum(k + 1);
            // the inputs of a product feed nothing else (heads are reshaped copies)
            assert!(
                (inputs - out).abs() <= 1e-10 * out.abs().max(1.0),
                "{name}: {inputs} vs {out}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * BLOCKS);
    assert!(a.relevance.iter().all(|r| r.is_finite()));
}

/// The gradient through attention, layer norms, GELU and the embedding equals central
/// differences of the network's output.
#[test]
fn gradient_matches_finite_differences() {
    let net = tiny_vit(&mut RandomParams::new(7, true));
    let x = images(8, 1);
    let opts = Options {
        seed: Seed::OneHot,
        ..Options::default()
    };
    let g = net
        .attribute_with(&x, &Target::Class(1), &Gradient, opts)
        .unwrap();
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    for i in (0..x.len()).step_by(7) {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.as_slice_mut().unwrap()[i] += h;
        xm.as_slice_mut().unwrap()[i] -= h;
        let fd = (net.forward(&xp).unwrap()[[0, 1]] - net.forward(&xm).unwrap()[[0, 1]]) / (2.0 * h);
        worst = worst.max((fd - g.relevance.as_slice().unwrap()[i]).abs());
    }
    assert!(worst < 1e-8, "gradient vs central differences: {worst:e}");
}

/// DeepLIFT's default (Rescale, the exact softmax rule).
fn deeplift_exact() -> DeepLift {
    let d = DeepLift::rescale();
    assert_eq!(d.softmax(), SoftmaxRule::Exact);
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// DeepLIFT with the exact softmax rule sums to `f(x) − f(x̄)` through attention, layer
    /// norms and GELU, for zero, shared and per-sample baselines.
    #[test]
    fn deeplift_sums_to_delta_on_vit(seed in 0u64..1_000, kind in 0usize..3) {
        let net = tiny_vit(&mut RandomParams::new(seed, true));
        let x = images(seed + 1, 2);
        let baseline = match kind {
            0 => Baseline::Zero,
            1 => Baseline::Shared(images(seed + 2, 1)),
            _ => Baseline::PerSample(images(seed + 3, 2)),
        };
        let d = net.deeplift(&x, &targets(2), &deeplift_exact(), &baseline).unwrap();
        let gap = worst_gap(&d.attribution, &d.total);
        prop_assert!(gap < TRANSFORMER_DELTA, "summation-to-delta gap {:e}", gap);
    }

    /// The same on token ids, against a baseline of id 0 (`[PAD]`) or of other tokens:
    /// the contribution of a token equal to the baseline's is 0.
    #[test]
    fn deeplift_sums_to_delta_on_tokens(seed in 0u64..1_000, kind in 0usize..2) {
        let net = tiny_bert(&mut RandomParams::new(seed, true));
        let x = ids(seed + 1, 2);
        let base = if kind == 0 { ArrayD::zeros(IxDyn(&[1, T])) } else { ids(seed + 2, 1) };
        let d = net.deeplift(&x, &targets(2), &deeplift_exact(), &Baseline::Shared(base.clone())).unwrap();
        let gap = worst_gap(&d.attribution, &d.total);
        prop_assert!(gap < TRANSFORMER_DELTA, "summation-to-delta gap {:e}", gap);
        for s in 0..2 {
            for t in 0..T {
                if x[[s, t]] == base[[0, t]] {
                    prop_assert_eq!(d.attribution[[s, t]], 0.0);
                }
            }
        }
    }
}

/// captum's softmax rule (`deeplift-captum`) does not conserve inside attention: the gap is the
/// mean multiplier times `Σ Δx` of each softmax; the exact rule closes it.
#[test]
fn captum_softmax_rule_leaves_a_gap_inside_attention() {
    let net = tiny_vit(&mut RandomParams::new(11, true));
    let x = images(12, 2);
    let captum = net
        .deeplift(
            &x,
            &targets(2),
            &DeepLift::rescale().with_softmax(SoftmaxRule::Captum),
            &Baseline::Zero,
        )
        .unwrap();
    let exact = net
        .deeplift(&x, &targets(2), &deeplift_exact(), &Baseline::Zero)
        .unwrap();
    let (gc, ge) = (
        worst_gap(&captum.attribution, &captum.total),
        worst_gap(&exact.attribution, &exact.total),
    );
    assert!(ge < TRANSFORMER_DELTA, "exact: {ge:e}");
    assert!(gc > 1e-6, "captum's rule unexpectedly conserves here: {gc:e}");
}

/// Token ids that are not integers in `0..vocabulary` are typed errors naming the position.
#[test]
fn bad_token_ids_are_errors() {
    let net = tiny_bert(&mut RandomParams::new(13, true));
    let mut x = ids(14, 2);
    x[[1, 3]] = f64::NAN;
    // NaN is refused with every input, before any layer
    assert!(matches!(net.forward(&x), Err(Error::NonFinite { .. })));
    for (bad, pos) in [(-1.0, 2), (VOCAB as f64, 0), (2.5, 5), (1e300, 1), (-0.5, 4)] {
        let mut x = ids(14, 2);
        x[[1, pos]] = bad;
        let err = net.forward(&x).unwrap_err();
        let msg = err.to_string();
        let inner = match &err {
            Error::AtLayer { source, .. } | Error::AtNode { source, .. } => source.as_ref(),
            e => e,
        };
        match inner {
            Error::TokenId {
                position, vocabulary, ..
            } => {
                assert_eq!(position, &vec![1, pos], "{msg}");
                assert_eq!(*vocabulary, VOCAB);
            }
            other => panic!("{bad}: expected a TokenId error, got {other:?}"),
        }
        // the same through every method
        assert!(net.attribute(&x, &Target::Class(0), &AttnLrp::default()).is_err());
    }
}

/// Parameters read from a fixture's `weights`.
struct FixtureParams<'a>(&'a serde_json::Value);

impl Params for FixtureParams<'_> {
    fn get(&mut self, name: &str, shape: &[usize]) -> ArrayD<f64> {
        let t = common::tensor::<f64>(&self.0["weights"][name]);
        assert_eq!(t.shape(), shape, "{name}");
        t
    }
}

/// The value (0 = input, k + 1 = node k's output) where a fixture's point is, in the
/// networks above.
fn value_of(net: &Network<f64>, point: &str) -> Option<usize> {
    let node = |name: &str| Some(net.node_index(name).unwrap_or_else(|| panic!("no node {name}")) + 1);
    let block = |p: &str, what: &str| -> Option<(usize, String)> {
        let rest = p.strip_prefix(what)?;
        let (i, tail) = rest.split_once('.')?;
        Some((i.parse().ok()?, tail.to_string()))
    };
    if let Some((i, tail)) = block(point, "encoder.layers.") {
        let pre = format!("encoder.layers.{i}");
        return match tail.as_str() {
            "input" if i == 0 => node("encoder.pos"),
            "input" => node(&format!("encoder.layers.{}.add_2", i - 1)),
            "add.output" => node(&format!("{pre}.add_1")),
            "output" => node(&format!("{pre}.add_2")),
            "self_attention.softmax.input" => node(&format!("{pre}.self_attention.scores")),
            "self_attention.softmax.output" => node(&format!("{pre}.self_attention.softmax")),
            t if t.starts_with("self_attention.") && t.ends_with(".output") => {
                node(&format!("{pre}.{}", t.trim_end_matches(".output")))
            }
            // the layer norms' own shares of a value two nodes read: not a value here
            _ => None,
        };
    }
    if let Some((i, tail)) = block(point, "encoder.layer.") {
        let pre = format!("encoder.layer.{i}");
        return match tail.as_str() {
            "input" if i == 0 => node("embeddings.LayerNorm"),
            "input" => node(&format!("encoder.layer.{}.output.LayerNorm", i - 1)),
            "attention.output.LayerNorm.input" => node(&format!("{pre}.attention.add")),
            "output.LayerNorm.input" => node(&format!("{pre}.output.add")),
            "output" => node(&format!("{pre}.output.LayerNorm")),
            "attention.self.softmax.input" => node(&format!("{pre}.attention.scores")),
            "attention.self.softmax.output" => node(&format!("{pre}.attention.softmax")),
            t if t.starts_with("attention.self.") && t.ends_with(".output") => {
                node(&format!("{pre}.{}", t.trim_end_matches(".output")))
            }
            _ => None,
        };
    }
    match point {
        "encoder.ln.input" => node(&format!("encoder.layers.{}.add_2", BLOCKS - 1)),
        "embeddings.LayerNorm.input" => node("embeddings.add"),
        _ => None,
    }
}

/// The tiny ViT and BERT against lxt 2.1: logits, and AttnLRP and CP-LRP (ε = 0) at the
/// input and at every recorded point.
#[test]
fn tiny_transformers_match_lxt() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for model in ["tiny_vit", "tiny_bert"] {
        let fx = common::load(&format!("transformers/{model}"));
        let mut params = FixtureParams(&fx);
        let (net, x) = if model == "tiny_vit" {
            (tiny_vit(&mut params), common::tensor::<f64>(&fx["x"]))
        } else {
            (tiny_bert(&mut params), common::tensor::<f64>(&fx["ids"]))
        };
        let logits = net.forward(&x).unwrap();
        let d = common::rel_dev(&logits, &common::tensor(&fx["logits"]));
        assert!(d < 1e-13, "{model}: logits deviate from PyTorch by {d:e}");
        let classes: Vec<usize> = fx["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let target = Target::PerSample(classes);
        // lxt starts from the target's logit
        let opts = Options {
            seed: Seed::Logit,
            keep_layers: true,
        };
        for case in ["attn_lrp", "cp_lrp"] {
            let want = &fx["cases"][case];
            let a = if case == "attn_lrp" {
                net.attribute_with(&x, &target, &AttnLrp::new(0.0).unwrap(), opts)
            } else {
                net.attribute_with(&x, &target, &CpLrp::new(0.0).unwrap(), opts)
            }
            .unwrap();
            let layers = a.layers.as_ref().unwrap();
            let mut worst: f64 = 0.0;
            let mut check = |what: &str, got: &ArrayD<f64>, want: &serde_json::Value| {
                let want = common::tensor::<f64>(want);
                assert_eq!(got.shape(), want.shape(), "{model} {case} {what}");
                let d = common::rel_dev(got, &want);
                worst = worst.max(d);
                if d >= LXT_F64 {
                    failures.push(format!("{model} {case} {what}: {d:e} from lxt"));
                }
            };
            if model == "tiny_vit" {
                check("input", &a.relevance, &want["relevance"]);
            } else {
                check("tokens", &a.relevance, &want["relevance_tokens"]);
                check("word embeddings", &layers[1], &want["relevance"]);
            }
            let mut points = 0;
            for (point, v) in want["per_node"].as_object().unwrap() {
                if let Some(value) = value_of(&net, point) {
                    check(point, &layers[value], v);
                    points += 1;
                }
            }
            assert!(points >= 10, "{model}: {points} points compared");
            report.push(format!("{model} {case}: {worst:.1e} over {points} points"));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A sample gets the same bits alone, in a batch, and on one or two threads (AttnLRP and
/// DeepLIFT through attention, whose products run one per thread).
#[test]
fn transformer_explanations_are_deterministic() {
    let net = tiny_vit(&mut RandomParams::new(17, true));
    let x = images(18, 5);
    let explain = |x: &ArrayD<f64>| {
        let a = net
            .attribute(x, &Target::Class(1), &AttnLrp::default())
            .unwrap()
            .relevance;
        let d = net
            .deeplift(x, &Target::Class(1), &DeepLift::rescale(), &Baseline::Zero)
            .unwrap()
            .attribution;
        [a, d]
    };
    let bits = |a: &ArrayD<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let batch = explain(&x);
    for s in [0, 3] {
        let alone = explain(&x.slice_axis(Axis(0), (s..s + 1).into()).to_owned());
        for (b, a) in batch.iter().zip(&alone) {
            assert_eq!(
                bits(&b.index_axis(Axis(0), s).to_owned()),
                bits(&a.index_axis(Axis(0), 0).to_owned())
            );
        }
    }
    #[cfg(feature = "parallel")]
    {
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| explain(&x));
        for (a, b) in one.iter().zip(&batch) {
            assert_eq!(bits(a), bits(b));
        }
    }
}

/// The evaluation module on token inputs: tokens replaced by a given id (`[PAD]` = 0 here),
/// most relevant first and least relevant first; every perturbed input is valid ids, and
/// AttnLRP beats a random order on the tiny BERT's own prediction.
#[test]
fn token_perturbation_curves() {
    use relevance::eval::{random_attribution, Perturbation, RegionPerturbation, Score};
    let net = tiny_bert(&mut RandomParams::new(19, true));
    let x = ids(20, 6);
    let target = Target::PerSample(net.predict(&x).unwrap());
    let flipping = RegionPerturbation {
        perturbation: Perturbation::Constant(0.0),
        ..RegionPerturbation::pixel_flipping()
    };
    let r = net.attribute(&x, &target, &AttnLrp::default()).unwrap().relevance;
    let c = flipping.evaluate(&net, &x, &r, &target).unwrap();
    assert_eq!(
        c.curve(relevance::eval::Order::MoRF, Score::Logit).shape(),
        &[6, T + 1]
    );
    let rand = flipping
        .evaluate(&net, &x, &random_attribution(x.shape(), 1), &target)
        .unwrap();
    let mean = |a: Array1<f64>| a.mean().unwrap();
    assert!(mean(c.abpc(Score::Logit)) > mean(rand.abpc(Score::Logit)));
    // a replacement that is not a token id is refused by the embedding, not silently used
    let bad = RegionPerturbation {
        perturbation: Perturbation::Constant(0.5),
        ..RegionPerturbation::pixel_flipping()
    };
    assert!(bad.evaluate(&net, &x, &r, &target).is_err());
}
