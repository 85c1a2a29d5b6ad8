//! Pictures of a faithfulness evaluation (cargo feature `plot`): the MoRF/LeRF curves of
//! several methods in one PNG, and the randomisation result as rows of heatmaps per
//! randomised layer above a similarity curve. Drawn with `plotters` on its bitmap backend,
//! text in the embedded DejaVu Sans Mono (its licence is `src/fonts/DejaVuSansMono.LICENSE`), encoded by the crate's own PNG writer.

use super::{Order, PerturbationCurves, RandomisationResult, Score};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::heatmap::{Heatmap, RgbImage};
use ndarray::{ArrayD, Axis};
use plotters::prelude::*;
use std::path::Path;
use text::GlyphText;

mod text;

static FONT: &[u8] = include_bytes!("../../fonts/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";

/// The plots' backend: a bitmap in `buffer`, its text drawn by [`text::GlyphText`].
fn backend<'a>(
    buffer: &'a mut [u8],
    (w, h): (usize, usize),
    font: &'a ab_glyph::FontRef<'a>,
) -> GlyphText<'a, BitMapBackend<'a>> {
    GlyphText {
        inner: BitMapBackend::with_buffer(buffer, (w as u32, h as u32)),
        font,
    }
}

/// The embedded font, for the text the plots draw themselves.
fn glyph_font() -> Result<ab_glyph::FontRef<'static>> {
    ab_glyph::FontRef::try_from_slice(FONT).map_err(|e| Error::Image {
        what: "the plots' font".into(),
        reason: e.to_string(),
    })
}

/// A tick value as printed: a value that rounds to zero is 0, never "-0.0".
fn tick(v: f64) -> f64 {
    if v.abs() < 0.05 {
        0.0
    } else {
        v
    }
}

/// Registers the embedded font once.
fn font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn drawing<E: std::fmt::Debug>(what: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Image {
        what: format!("plot {}", what.display()),
        reason: format!("{e:?}"),
    }
}

/// Eleven well separated colours (Tableau 10 and grey).
fn colour(i: usize) -> RGBColor {
    const C: [(u8, u8, u8); 11] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (188, 189, 34),
        (23, 190, 207),
        (0, 0, 0),
        (127, 127, 127),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

/// Writes the mean MoRF curve (left) and LeRF curve (right) of every method, against the
/// fraction of regions perturbed, with a legend, as a 1400×600 PNG.
///
/// # Errors
/// [`Error::Image`] when there is nothing to draw, the curves have different lengths, or
/// drawing or writing the file fails.
pub fn perturbation_curves<F: Float>(
    path: impl AsRef<Path>,
    methods: &[(String, PerturbationCurves<F>)],
    score: Score,
) -> Result<()> {
    font();
    let path = path.as_ref();
    let bad = |reason: &str| Error::Image {
        what: format!("plot {}", path.display()),
        reason: reason.into(),
    };
    let first = methods.first().ok_or_else(|| bad("no curves to draw"))?;
    if methods
        .iter()
        .any(|(_, c)| c.perturbed != first.1.perturbed || c.is_empty())
    {
        return Err(bad("the curves must have the same steps and at least one sample"));
    }
    let xs: Vec<f64> = first
        .1
        .perturbed
        .iter()
        .map(|&k| k as f64 / first.1.regions as f64)
        .collect();
    let means = |c: &PerturbationCurves<F>, order| -> Vec<f64> {
        let m = c.curve(order, score).mapv(|v| v.as_f64());
        m.mean_axis(Axis(0)).expect("samples").to_vec()
    };
    let all: Vec<f64> = methods
        .iter()
        .flat_map(|(_, c)| means(c, Order::MoRF).into_iter().chain(means(c, Order::LeRF)))
        .collect();
    let (lo, hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
        (l.min(v), h.max(v))
    });
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let (w, h) = (1400usize, 600usize);
    let glyphs = glyph_font()?;
    let mut buffer = vec![255u8; w * h * 3];
    {
        let err = drawing(path);
        let root = backend(&mut buffer, (w, h), &glyphs).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let panels = root.split_evenly((1, 2));
        let y_desc = match score {
            Score::Logit => "mean target logit",
            Score::Probability => "mean target probability",
        };
        for (area, (order, title)) in panels.iter().zip([
            (Order::MoRF, "MoRF: most relevant first (falls fast = good)"),
            (Order::LeRF, "LeRF: least relevant first (stays high = good)"),
        ]) {
            let mut chart = ChartBuilder::on(area)
                .caption(title, (FAMILY, 20))
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..1f64, (lo - pad)..(hi + pad))
                .map_err(&err)?;
            chart
                .configure_mesh()
                .x_desc("fraction of regions perturbed")
                .y_desc(y_desc)
                .y_label_formatter(&|v: &f64| format!("{:.1}", tick(*v)))
                .label_style((FAMILY, 15))
                .draw()
                .map_err(&err)?;
            for (i, (name, c)) in methods.iter().enumerate() {
                let style = colour(i).stroke_width(2);
                chart
                    .draw_series(LineSeries::new(xs.iter().copied().zip(means(c, order)), style))
                    .map_err(&err)?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            }
            chart
                .configure_series_labels()
                .position(if order == Order::MoRF {
                    SeriesLabelPosition::UpperRight
                } else {
                    SeriesLabelPosition::LowerLeft
                })
                .label_font((FAMILY, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    RgbImage::from_raw(w, h, buffer)?.save_png(path)
}

/// Writes the randomisation result of one method: a row per shown sample (`samples` of
/// them, evenly spaced over the batch) with the input, the original explanation and the explanation after each
/// cascading step (red for, blue against, each map scaled by its own largest |R|), and
/// below them the mean similarity to the original (Spearman |R|, Spearman R, SSIM) per
/// step. `x` is the evaluated batch `[N, C, H, W]` with values in [0, 1].
///
/// # Errors
/// [`Error::Image`] for no samples or maps that are not images, or when drawing or
/// writing the file fails; errors of rendering the heatmaps.
pub fn randomisation<F: Float>(
    path: impl AsRef<Path>,
    method: &str,
    result: &RandomisationResult<F>,
    x: &ArrayD<F>,
    samples: usize,
) -> Result<()> {
    font();
    let path = path.as_ref();
    let n = samples.min(x.shape()[0]).min(result.original.shape()[0]);
    if n == 0 || x.ndim() != 4 {
        return Err(Error::Image {
            what: format!("plot {}", path.display()),
            reason: "needs at least one sample of images [N, C, H, W]".into(),
        });
    }
    let scale = 3;
    let heatmap = Heatmap {
        scale,
        ..Heatmap::default()
    };
    let mut rows: Vec<Vec<RgbImage>> = Vec::new();
    let total = x.shape()[0].min(result.original.shape()[0]);
    for i in (0..n).map(|j| j * total / n) {
        let mut row = vec![
            RgbImage::from_array(&x.index_axis(Axis(0), i), Some((F::zero(), F::one())))?.upscale(scale)?,
        ];
        for r in std::iter::once(&result.original).chain(result.randomised.iter()) {
            row.push(heatmap.render(&r.index_axis(Axis(0), i))?);
        }
        rows.push(row);
    }
    let (cw, ch) = (rows[0][0].width(), rows[0][0].height());
    let cols = rows[0].len();
    let gap = 8;
    let label_h = 40;
    let left = 20;
    let grid_w = left + cols * (cw + gap);
    let (w, curve_h) = (grid_w.max(700), 360);
    let h = label_h + n * (ch + gap) + curve_h;
    let glyphs = glyph_font()?;
    let mut buffer = vec![255u8; w * h * 3];
    {
        let err = drawing(path);
        let root = backend(&mut buffer, (w, h), &glyphs).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut titles = vec!["input".to_string(), "original".to_string()];
        titles.extend(result.layers.iter().map(|l| format!("−{l}")));
        let style = TextStyle::from((FAMILY, 13).into_font()).color(&BLACK);
        for (c, t) in titles.iter().enumerate() {
            root.draw_text(t, &style, ((left + c * (cw + gap)) as i32, 12))
                .map_err(&err)?;
        }
        for (r, row) in rows.iter().enumerate() {
            for (c, img) in row.iter().enumerate() {
                let (x0, y0) = (left + c * (cw + gap), label_h + r * (ch + gap));
                for py in 0..img.height() {
                    for px in 0..img.width() {
                        let [cr, cg, cb] = img.pixel(px, py).expect("inside");
                        root.draw_pixel(((x0 + px) as i32, (y0 + py) as i32), &RGBColor(cr, cg, cb))
                            .map_err(&err)?;
                    }
                }
            }
        }
        let (_, lower) = root.split_vertically((label_h + n * (ch + gap)) as u32);
        let steps = result.layers.len();
        let mut chart = ChartBuilder::on(&lower)
            .caption(
                format!("{method}: similarity to the original explanation"),
                (FAMILY, 18),
            )
            .margin(15)
            // room for the last layer's name, centred on the right edge
            .margin_right(40)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..steps as f64, -1.05f64..1.05f64)
            .map_err(&err)?;
        let names = result.layers.clone();
        chart
            .configure_mesh()
            .x_labels(steps + 1)
            .x_label_formatter(&|v: &f64| {
                let k = v.round() as usize;
                if k == 0 {
                    "original".into()
                } else {
                    format!("−{}", names.get(k - 1).cloned().unwrap_or_default())
                }
            })
            .y_label_formatter(&|v: &f64| format!("{:.1}", tick(*v)))
            .x_desc("layers randomised, top down (cascading)")
            .label_style((FAMILY, 13))
            .draw()
            .map_err(&err)?;
        let series = [
            ("Spearman |R|", &result.spearman_abs),
            ("Spearman R", &result.spearman),
            ("SSIM", &result.ssim),
        ];
        for (i, (name, values)) in series.into_iter().enumerate() {
            let mean = values.mean_axis(Axis(1)).expect("samples");
            let points: Vec<(f64, f64)> = std::iter::once((0.0, 1.0))
                .chain(mean.iter().enumerate().map(|(k, &v)| ((k + 1) as f64, v)))
                .collect();
            let style = colour(i).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(&err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    RgbImage::from_raw(w, h, buffer)?.save_png(path)
}
