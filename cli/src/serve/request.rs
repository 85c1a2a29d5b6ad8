//! What the page (or any client) sends, read strictly: unknown fields, methods, classes and
//! out-of-range parameters are refused with a sentence saying what was wrong.

use super::drawing;
use super::model::ServedModel;
use base64::Engine as _;
use ndarray::{Array2, ArrayD, Axis};
use relevance::{
    Baseline, Category, Composite, Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox,
    LrpZPlus, Method, MethodName, Selector,
};
use serde::Deserialize;

/// The largest drawing side the server takes, in pixels.
pub const MAX_DRAWING_SIDE: usize = 2048;
/// At most this many methods in one request.
pub const MAX_METHODS: usize = 12;

/// A request's failure: the client's (400) with a sentence.
#[derive(Debug)]
pub struct BadRequest(pub String);

impl From<String> for BadRequest {
    fn from(s: String) -> Self {
        BadRequest(s)
    }
}

type Result<T> = std::result::Result<T, BadRequest>;

fn bad<T>(msg: impl Into<String>) -> Result<T> {
    Err(BadRequest(msg.into()))
}

/// A drawing: `width × height` grey bytes (0 background, 255 ink), base64.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Drawing {
    pub width: usize,
    pub height: usize,
    pub data: String,
}

/// The input: exactly one of a drawing, an image file (PNG/JPEG, base64) or a bundled
/// example.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub drawing: Option<Drawing>,
    pub image: Option<String>,
    pub sample: Option<usize>,
}

/// Which output to explain: the predicted class (nothing given), a class, or a class against
/// another (`R(class) − R(versus)`: why `class` and not `versus`).
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub class: Option<usize>,
    pub versus: Option<usize>,
}

/// DeepLIFT's reference input.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    /// zero (default), blur, mean, or drawn.
    pub kind: Option<String>,
    /// The drawn reference (kind "drawn").
    pub drawing: Option<Drawing>,
    /// The blur's standard deviation in pixels (kind "blur"; default 1/14 of the image side).
    pub sigma: Option<f64>,
}

/// A rule per layer group on top of a default rule.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CompositeSpec {
    /// The rule wherever no group matches (a single-rule name, e.g. "epsilon=0.25").
    pub default: String,
    /// Groups in order of precedence (earlier wins).
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
}

/// One group: which nodes and their rule.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// first, convolutions, lower-convolutions, upper-convolutions, dense, index:K, or
    /// name:PATTERN.
    pub select: String,
    pub rule: String,
}

/// One method: a name `relevance rules` lists (with parameters), or a composite.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    pub name: Option<String>,
    pub composite: Option<CompositeSpec>,
}

/// `POST /api/explain`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    #[serde(default)]
    pub model: usize,
    pub input: InputSpec,
    pub methods: Vec<MethodSpec>,
    #[serde(default)]
    pub target: TargetSpec,
    #[serde(default)]
    pub baseline: BaselineSpec,
    /// Small maps of the relevance at every node.
    #[serde(default)]
    pub layers: bool,
    /// The pixel-flipping curve (MoRF) and its AOPC per method, and of a random order.
    #[serde(default)]
    pub flipping: bool,
    /// The raw relevance as a `.npy` file (base64) per method.
    #[serde(default)]
    pub npy: bool,
}

/// `POST /api/predict`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    #[serde(default)]
    pub model: usize,
    pub input: InputSpec,
}

/// A prepared input: the model input (per-sample shape, normalised) and the pixels in [0, 1]
/// to show.
pub struct Prepared {
    pub x: ArrayD<f32>,
    pub pixels: ArrayD<f32>,
    pub note: Option<String>,
}

fn decode_b64(what: &str, text: &str) -> Result<Vec<u8>> {
    let text = text
        .split_once(',')
        .filter(|(h, _)| h.starts_with("data:"))
        .map_or(text, |(_, b)| b);
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| BadRequest(format!("{what} is not valid base64: {e}")))
}

/// A drawing as grey values in [0, 1], checked.
fn drawing_pixels(d: &Drawing) -> Result<Array2<f64>> {
    if d.width == 0 || d.height == 0 || d.width > MAX_DRAWING_SIDE || d.height > MAX_DRAWING_SIDE {
        return bad(format!(
            "a drawing must be 1 to {MAX_DRAWING_SIDE} pixels on each side, got {} × {}",
            d.width, d.height
        ));
    }
    let bytes = decode_b64("the drawing", &d.data)?;
    if bytes.len() != d.width * d.height {
        return bad(format!(
            "the drawing has {} bytes; {} × {} grey pixels need {}",
            bytes.len(),
            d.width,
            d.height,
            d.width * d.height
        ));
    }
    Ok(Array2::from_shape_fn((d.height, d.width), |(r, c)| {
        f64::from(bytes[r * d.width + c]) / 255.0
    }))
}

/// A drawing prepared as the model's training digits were, then normalised.
fn prepare_drawing(model: &ServedModel, d: &Drawing) -> Result<Prepared> {
    let &[1, h, w] = model.input_shape() else {
        return bad(format!(
            "{} takes inputs {:?}; drawings are for one-channel image models: drop an image instead",
            model.name,
            model.input_shape()
        ));
    };
    let pixels = drawing::prepare(&drawing_pixels(d)?, (h, w))
        .mapv(|v| v as f32)
        .insert_axis(Axis(0))
        .into_dyn();
    normalised(model, pixels, None)
}

fn normalised(model: &ServedModel, pixels: ArrayD<f32>, note: Option<String>) -> Result<Prepared> {
    let mut x = pixels.clone();
    model.preprocess.normalize(&mut x).map_err(|e| {
        BadRequest(format!(
            "the preprocessing {} does not fit: {e}",
            model.preprocess.name()
        ))
    })?;
    Ok(Prepared { x, pixels, note })
}

/// The input of a request, prepared for `model`.
pub fn prepare_input(model: &ServedModel, input: &InputSpec) -> Result<Prepared> {
    match (&input.drawing, &input.image, input.sample) {
        (Some(d), None, None) => prepare_drawing(model, d),
        (None, Some(image), None) => {
            if !model.takes_images() {
                return bad(format!(
                    "{} takes inputs {:?}, not images",
                    model.name,
                    model.input_shape()
                ));
            }
            let bytes = decode_b64("the image", image)?;
            let img = relevance::image::decode_image::<f32>(&bytes, model.input_shape(), &model.preprocess)
                .map_err(|e| BadRequest(format!("the image cannot be used: {e}")))?;
            let note = img.resized.map(|(w, h)| {
                let (ow, oh) = img.original;
                let s = model.input_shape();
                format!(
                    "resized from {ow}×{oh} to {w}×{h} and centre-cropped to {}×{}",
                    s[2], s[1]
                )
            });
            Ok(Prepared {
                x: img.input,
                pixels: img.pixels,
                note,
            })
        }
        (None, None, Some(k)) => match model.samples.get(k) {
            Some((_, pixels)) => normalised(model, pixels.clone(), None),
            None => bad(format!(
                "{} has {} examples; example {k} does not exist",
                model.name,
                model.samples.len()
            )),
        },
        (None, None, None) => bad("give the input: a drawing, an image or an example (sample)"),
        _ => bad("give one input only: a drawing, an image or an example (sample)"),
    }
}

/// The class to explain and the class it is compared with, checked against the outputs.
pub fn target(model: &ServedModel, spec: &TargetSpec, predicted: usize) -> Result<(usize, Option<usize>)> {
    let classes = model.classes();
    let check = |c: usize, what: &str| {
        if c < classes {
            Ok(c)
        } else {
            bad(format!(
                "{what} {c} does not exist: {} has classes 0 to {}",
                model.name,
                classes - 1
            ))
        }
    };
    let class = check(spec.class.unwrap_or(predicted), "class")?;
    let versus = spec
        .versus
        .map(|v| check(v, "the class compared with"))
        .transpose()?;
    if versus == Some(class) {
        return bad("a class compared with itself explains nothing: choose two different classes");
    }
    Ok((class, versus))
}

/// DeepLIFT's baseline for the prepared input `x` (per-sample shape).
pub fn baseline(
    model: &ServedModel,
    spec: &BaselineSpec,
    x: &ArrayD<f32>,
) -> Result<(Baseline<f32>, String)> {
    let kind = spec.kind.as_deref().unwrap_or("zero");
    let shared = |a: ArrayD<f32>| Baseline::Shared(a.insert_axis(Axis(0)));
    Ok(match kind {
        "zero" => (Baseline::Zero, "zero input".into()),
        "blur" => {
            let side = x.shape().iter().rev().take(2).copied().max().unwrap_or(1) as f64;
            let sigma = spec.sigma.unwrap_or(side / 14.0);
            if !(sigma.is_finite() && (0.1..=side).contains(&sigma)) {
                return bad(format!(
                    "the blur's sigma must lie in [0.1, {side}] pixels, got {sigma}"
                ));
            }
            (
                shared(drawing::blur(x, sigma)),
                format!("the input blurred (σ = {sigma:.1} px)"),
            )
        }
        "mean" => match &model.mean_input {
            Some(mean) => {
                let mut m = mean.clone();
                let _ = model.preprocess.normalize(&mut m);
                (shared(m), "the mean of the test digits".into())
            }
            None => (
                Baseline::channel_mean(&x.clone().insert_axis(Axis(0))),
                "the input's mean colour".into(),
            ),
        },
        "drawn" => match &spec.drawing {
            Some(d) => (shared(prepare_drawing(model, d)?.x), "the drawn reference".into()),
            None => return bad("a drawn baseline needs its drawing (baseline.drawing)"),
        },
        other => {
            return bad(format!(
                "unknown baseline {other:?}: choose zero, blur, mean or drawn"
            ))
        }
    })
}

macro_rules! put {
    ($c:expr, $sel:expr, $rule:expr) => {
        match ($c, $sel) {
            (Some(c), Some(s)) => c.with(s, $rule),
            (_, _) => Composite::new($rule),
        }
    };
}

/// `c` with `rule` for `selector` (or, without a composite yet, a composite of default
/// `rule`).
fn with_rule(
    c: Option<Composite<f32>>,
    selector: Option<Selector>,
    rule: &str,
    bounds: Option<&(ArrayD<f32>, ArrayD<f32>)>,
) -> Result<Composite<f32>> {
    let name: MethodName = rule
        .parse()
        .map_err(|e: relevance::Error| BadRequest(format!("rule {rule:?}: {e}")))?;
    let err = |e: relevance::Error| BadRequest(format!("rule {rule:?}: {e}"));
    Ok(match name {
        MethodName::Lrp0 => put!(c, selector, Lrp0),
        MethodName::Epsilon(e) => put!(c, selector, LrpEpsilon::new(e).map_err(err)?),
        MethodName::Gamma(g) => put!(c, selector, LrpGamma::new(g).map_err(err)?),
        MethodName::AlphaBeta(a, b) => put!(c, selector, LrpAlphaBeta::new(a, b).map_err(err)?),
        MethodName::ZPlus => put!(c, selector, LrpZPlus::new()),
        MethodName::Flat => put!(c, selector, LrpFlat::new()),
        MethodName::WSquare => put!(c, selector, LrpWSquare::new()),
        MethodName::AttnLrp(e) => put!(c, selector, relevance::AttnLrp::new(e).map_err(err)?),
        MethodName::CpLrp(e) => put!(c, selector, relevance::CpLrp::new(e).map_err(err)?),
        MethodName::ZBox => {
            let Some((low, high)) = bounds else {
                return bad("zbox needs the input's bounds, which this model's input does not have");
            };
            put!(c, selector, LrpZBox::new(low.clone(), high.clone()).map_err(err)?)
        }
        _ => return bad(format!("{rule:?} is not a single LRP rule; a composite group takes lrp0, epsilon, gamma, alpha-beta, zplus, flat, wsquare, zbox, attn-lrp or cp-lrp")),
    })
}

fn selector(text: &str) -> Result<Selector> {
    let conv = Category::Convolution;
    Ok(match text {
        "first" => Selector::First(None),
        "convolutions" => Selector::Category(conv),
        "lower-convolutions" => Selector::Fraction {
            category: conv,
            start: 0.0,
            end: 0.5,
        },
        "upper-convolutions" => Selector::Fraction {
            category: conv,
            start: 0.5,
            end: 1.0,
        },
        "dense" => Selector::Category(Category::Dense),
        _ => match text.split_once(':') {
            Some(("index", k)) => Selector::Index(
                k.trim()
                    .parse()
                    .map_err(|_| BadRequest(format!("group {text:?}: write index:K with a node number K")))?,
            ),
            Some(("name", p)) if !p.is_empty() => Selector::Pattern(p.to_string()),
            _ => {
                return bad(format!(
                    "unknown group {text:?}: choose first, convolutions, lower-convolutions, upper-convolutions, dense, index:K or name:PATTERN"
                ))
            }
        },
    })
}

/// The method a spec names, with a title for the page.
pub fn method(
    model: &ServedModel,
    spec: &MethodSpec,
    baseline: &Baseline<f32>,
) -> Result<(Method<f32>, String)> {
    match (&spec.name, &spec.composite) {
        (Some(name), None) => {
            let parsed: MethodName = name
                .parse()
                .map_err(|e: relevance::Error| BadRequest(format!("method {name:?}: {e}")))?;
            let m = parsed
                .method(model.bounds.clone(), baseline.clone())
                .map_err(|e| BadRequest(format!("method {name:?}: {e}")))?;
            Ok((m, parsed.to_string()))
        }
        (None, Some(c)) => {
            if c.groups.len() > 16 {
                return bad("a composite takes at most 16 groups");
            }
            let mut composite = with_rule(None, None, &c.default, model.bounds.as_ref())?;
            let mut title = format!("composite: {}", c.default);
            for g in &c.groups {
                composite = with_rule(
                    Some(composite),
                    Some(selector(&g.select)?),
                    &g.rule,
                    model.bounds.as_ref(),
                )?;
                title.push_str(&format!(", {} {}", g.select, g.rule));
            }
            Ok((Method::lrp(composite), title))
        }
        _ => bad("a method is either a name (e.g. \"epsilon=0.25\") or a composite, not both"),
    }
}
