//! The work behind `/api/predict` and `/api/explain`, all through the library: prediction,
//! the explanations of every method asked for, heatmaps as PNG, the relevance at every node,
//! the pixel-flipping curves. Nothing here knows about HTTP.

use super::model::ServedModel;
use super::request::{self, BadRequest, ExplainRequest, PredictRequest, Prepared, MAX_METHODS};
use base64::Engine as _;
use ndarray::{stack, ArrayD, ArrayViewD, Axis};
use relevance::eval::{random_attribution, Order, RegionPerturbation, Score};
use relevance::heatmap::{Heatmap, RgbImage};
use relevance::Options;
use relevance::{Attribution, Target};
use serde::Serialize;

/// One class with its score.
#[derive(Serialize)]
pub struct Ranked {
    pub class: usize,
    pub label: String,
    pub logit: f32,
    pub probability: f32,
}

/// What the model predicts on the input, and the input as it sees it.
#[derive(Serialize)]
pub struct Prediction {
    pub class: usize,
    pub label: String,
    /// Every class, in class order.
    pub scores: Vec<Ranked>,
    /// The five best (fewer for fewer classes), best first.
    pub top: Vec<Ranked>,
    /// The input as the model sees it (pixels in [0, 1]), PNG base64, one pixel per value.
    pub input_png: String,
    /// What happened to an image on the way (resize, crop).
    pub note: Option<String>,
}

/// The relevance arriving at one node's output (or the input).
#[derive(Serialize)]
pub struct LayerMap {
    pub name: String,
    pub shape: Vec<usize>,
    pub sum: f32,
    /// Channels summed, symmetric colour scale, one pixel per value (PNG base64).
    pub png: String,
}

/// The pixel-flipping (MoRF) curve of one ordering.
#[derive(Serialize)]
pub struct Flipping {
    /// The target logit after each step (the first point: the unperturbed input).
    pub curve: Vec<f32>,
    /// The fraction of pixels replaced at each point.
    pub fraction: Vec<f32>,
    /// AOPC: mean of f(x) − f(x_k) over the points; larger = the most relevant pixels
    /// matter more.
    pub aopc: f32,
}

/// One method's explanation.
#[derive(Serialize)]
pub struct MethodResult {
    pub method: String,
    /// The heatmap (PNG base64): red for the class, blue against, scaled by the largest |R|.
    pub heatmap_png: String,
    /// The heatmap over the grey input.
    pub overlay_png: Option<String>,
    /// The starting relevance (LRP: the logit; DeepLIFT: f(x) − f(x̄)).
    pub total: f32,
    /// Σ of the input relevance.
    pub sum: f32,
    /// The conservation gap, total − Σ R (biases and stabilisers absorb it for LRP).
    pub gap: f32,
    pub max_abs: f32,
    pub layers: Option<Vec<LayerMap>>,
    pub flipping: Option<Flipping>,
    /// The raw relevance `[C, H, W]` as a `.npy` file, base64.
    pub npy: Option<String>,
}

/// `/api/explain`'s answer.
#[derive(Serialize)]
pub struct Explained {
    pub prediction: Prediction,
    pub class: usize,
    pub versus: Option<usize>,
    pub baseline: String,
    pub results: Vec<MethodResult>,
    /// The random order's flipping curve, for comparison.
    pub random_flipping: Option<Flipping>,
    /// Time spent computing, in milliseconds.
    pub server_ms: f64,
}

/// A failure of the work itself (the library refused the input): 422.
pub enum Failed {
    Bad(BadRequest),
    Unprocessable(String),
}

impl From<BadRequest> for Failed {
    fn from(b: BadRequest) -> Self {
        Failed::Bad(b)
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn png(img: &RgbImage) -> Result<String, Failed> {
    img.to_png()
        .map(|b| b64(&b))
        .map_err(|e| Failed::Unprocessable(format!("cannot encode a PNG: {e}")))
}

fn lib(what: &str) -> impl Fn(relevance::Error) -> Failed + '_ {
    move |e| Failed::Unprocessable(format!("{what}: {e}"))
}

fn model_of(models: &[ServedModel], k: usize) -> Result<&ServedModel, BadRequest> {
    models.get(k).ok_or_else(|| {
        BadRequest(format!(
            "model {k} does not exist: the server has models 0 to {}",
            models.len() - 1
        ))
    })
}

fn predict_prepared(model: &ServedModel, p: &Prepared) -> Result<Prediction, Failed> {
    let x = p.x.clone().insert_axis(Axis(0));
    let out = model.net.forward(&x).map_err(lib("the forward pass failed"))?;
    let logits: Vec<f32> = out.iter().copied().collect();
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let exp: Vec<f64> = logits.iter().map(|&v| f64::from(v - max).exp()).collect();
    let z: f64 = exp.iter().sum();
    let scores: Vec<Ranked> = logits
        .iter()
        .enumerate()
        .map(|(c, &logit)| Ranked {
            class: c,
            label: model.labels.get(c).cloned().unwrap_or_else(|| c.to_string()),
            logit,
            probability: (exp[c] / z) as f32,
        })
        .collect();
    let top = model
        .net
        .top_k(&x, scores.len().min(5))
        .map_err(lib("the ranking failed"))?;
    let ranked: Vec<usize> = top
        .first()
        .map(|r| r.iter().map(|&(c, _)| c).collect())
        .unwrap_or_default();
    let Some(&class) = ranked.first() else {
        return Err(Failed::Unprocessable("the model has no output".into()));
    };
    let top = ranked
        .iter()
        .map(|&c| Ranked {
            label: scores[c].label.clone(),
            ..scores[c]
        })
        .collect();
    let input =
        RgbImage::from_array(&p.pixels.view(), Some((0.0, 1.0))).map_err(lib("cannot draw the input"))?;
    Ok(Prediction {
        class,
        label: scores[class].label.clone(),
        scores,
        top,
        input_png: png(&input)?,
        note: p.note.clone(),
    })
}

/// `/api/predict`.
pub fn predict(models: &[ServedModel], req: &PredictRequest) -> Result<Prediction, Failed> {
    let model = model_of(models, req.model)?;
    let p = request::prepare_input(model, &req.input)?;
    predict_prepared(model, &p)
}

/// A map `[...]` of one sample as a heatmap: `[C, H, W]` and `[H, W]` as images, anything
/// else as one row.
fn render(map: &ArrayViewD<'_, f32>, scale: usize) -> Result<RgbImage, Failed> {
    let heat = Heatmap {
        scale,
        ..Heatmap::default()
    };
    let row;
    let view = match map.ndim() {
        2 | 3 => map.view(),
        _ => {
            row = map
                .iter()
                .copied()
                .collect::<ndarray::Array1<f32>>()
                .insert_axis(Axis(0))
                .into_dyn();
            row.view()
        }
    };
    heat.render(&view).map_err(lib("cannot render a heatmap"))
}

fn explain_one(
    model: &ServedModel,
    x: &ArrayD<f32>,
    method: &relevance::Method<f32>,
    class: usize,
    versus: Option<usize>,
    keep: bool,
) -> Result<Attribution<f32>, Failed> {
    let options = Options {
        keep_layers: keep,
        ..Options::default()
    };
    let run = |c| model.net.explain_with(x, &Target::Class(c), method, options);
    let mut a = run(class).map_err(lib("the explanation failed"))?;
    if let Some(v) = versus {
        let b = run(v).map_err(lib("the explanation failed"))?;
        a.relevance = &a.relevance - &b.relevance;
        a.total = &a.total - &b.total;
        a.delta = &a.delta - &b.delta;
        if let (Some(la), Some(lb)) = (a.layers.as_mut(), b.layers.as_ref()) {
            for (l, r) in la.iter_mut().zip(lb) {
                *l = &*l - r;
            }
        }
    }
    Ok(a)
}

/// `/api/explain`.
pub fn explain(models: &[ServedModel], req: &ExplainRequest) -> Result<Explained, Failed> {
    let start = std::time::Instant::now();
    let model = model_of(models, req.model)?;
    if req.methods.is_empty() || req.methods.len() > MAX_METHODS {
        return Err(BadRequest(format!(
            "give 1 to {MAX_METHODS} methods, got {}",
            req.methods.len()
        ))
        .into());
    }
    let p = request::prepare_input(model, &req.input)?;
    let prediction = predict_prepared(model, &p)?;
    let (class, versus) = request::target(model, &req.target, prediction.class)?;
    let (baseline, baseline_text) = request::baseline(model, &req.baseline, &p.x)?;
    let methods = req
        .methods
        .iter()
        .map(|m| request::method(model, m, &baseline))
        .collect::<Result<Vec<_>, _>>()?;
    let x = p.x.clone().insert_axis(Axis(0));
    // one pixel per value: the page scales the maps up (pixelated); PNG encoding of
    // upscaled maps would cost more than the explanations of a small model
    let scale = 1;
    let image = p.pixels.ndim() == 3;
    let background = if image {
        Some(
            RgbImage::from_array(&p.pixels.view(), Some((0.0, 1.0)))
                .map(|b| b.to_grayscale())
                .map_err(lib("cannot draw the input"))?,
        )
    } else {
        None
    };
    let mut results = Vec::with_capacity(methods.len());
    let mut maps = Vec::with_capacity(methods.len());
    for (method, title) in &methods {
        let a = explain_one(model, &x, method, class, versus, req.layers)?;
        let sample = a.relevance.index_axis(Axis(0), 0).to_owned();
        let heat = render(&sample.view(), scale)?;
        let overlay_png = match &background {
            Some(bg) => Some(png(&Heatmap {
                scale,
                ..Heatmap::default()
            }
            .render_over(&sample.view(), bg, 0.6)
            .map_err(lib("cannot overlay"))?)?),
            None => None,
        };
        let layers = match &a.layers {
            Some(all) => Some(
                all.iter()
                    .enumerate()
                    .map(|(k, r)| {
                        let s = r.index_axis(Axis(0), 0);
                        let name = match k {
                            0 => "input".to_string(),
                            k => model
                                .net
                                .nodes()
                                .get(k - 1)
                                .map_or("output".into(), |n| n.name().to_string()),
                        };
                        Ok(LayerMap {
                            name,
                            shape: s.shape().to_vec(),
                            sum: s.sum(),
                            png: png(&render(&s, 1)?)?,
                        })
                    })
                    .collect::<Result<Vec<_>, Failed>>()?,
            ),
            None => None,
        };
        results.push(MethodResult {
            method: title.clone(),
            heatmap_png: png(&heat)?,
            overlay_png,
            total: a.total[0],
            sum: sample.sum(),
            gap: a.delta[0],
            max_abs: sample.iter().fold(0.0f32, |m, v| m.max(v.abs())),
            layers,
            flipping: None,
            npy: req.npy.then(|| b64(&relevance::io::write_npy(&sample))),
        });
        maps.push(sample);
    }
    let mut random_flipping = None;
    if req.flipping && image {
        let mut curves = flipping(model, &p.x, &maps, class)?;
        random_flipping = curves.pop();
        for (r, c) in results.iter_mut().zip(curves) {
            r.flipping = Some(c);
        }
    }
    Ok(Explained {
        prediction,
        class,
        versus,
        baseline: baseline_text,
        results,
        random_flipping,
        server_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// Pixel flipping (MoRF, about 50 steps, pixels replaced by the sample's minimum) of every
/// map and of a random order, in one batched call of the library's evaluation.
fn flipping(
    model: &ServedModel,
    x: &ArrayD<f32>,
    maps: &[ArrayD<f32>],
    class: usize,
) -> Result<Vec<Flipping>, Failed> {
    let mut all: Vec<ArrayD<f32>> = maps.to_vec();
    all.push(random_attribution(x.shape(), 7));
    let views: Vec<_> = all.iter().map(|a| a.view()).collect();
    let attribution = stack(Axis(0), &views).map_err(|e| Failed::Unprocessable(format!("flipping: {e}")))?;
    let xs = stack(Axis(0), &vec![x.view(); all.len()])
        .map_err(|e| Failed::Unprocessable(format!("flipping: {e}")))?;
    let shape = x.shape();
    let pixels = shape[shape.len() - 2] * shape[shape.len() - 1];
    let settings = RegionPerturbation {
        regions_per_step: pixels.div_ceil(50).max(1),
        ..RegionPerturbation::pixel_flipping()
    };
    let m = settings
        .evaluate_order(&model.net, &xs, &attribution, &Target::Class(class), Order::MoRF)
        .map_err(lib("pixel flipping failed"))?;
    let aopc = m.aopc(Score::Logit);
    let curve = m.curve(Score::Logit);
    let fraction: Vec<f32> = m.perturbed.iter().map(|&k| k as f32 / m.regions as f32).collect();
    Ok((0..all.len())
        .map(|i| Flipping {
            curve: curve.row(i).to_vec(),
            fraction: fraction.clone(),
            aopc: aopc[i],
        })
        .collect())
}
