//! Heatmap rendering: palettes byte-equal to zennit / matplotlib (tests/fixtures/palettes.json,
//! made by tools/gen_palettes.py), normalisation, layout, and golden images in tests/golden/.
//!
//! Golden images are compared pixel by pixel (decoded, so a different PNG compressor does not
//! matter). Regenerate them only on purpose: `REGENERATE=1 cargo test --test suite heatmap::golden`, then
//! look at the PNGs before committing them.

use ndarray::{array, Array2, Array3, ArrayD};
use relevance::heatmap::{
    colorize, grid, normalize, overlay, percentile_threshold, reduce_channels, Heatmap, Normalization,
    Palette, Reduction, RgbImage, MAX_PIXELS,
};
use relevance::Error;
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/palettes.json"
    ))
    .expect("tests/fixtures/palettes.json (run tools/gen_palettes.py)");
    serde_json::from_str(&text).unwrap()
}

fn palette_rows(v: &Value) -> Vec<[u8; 3]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let r: Vec<u8> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap() as u8)
                .collect();
            [r[0], r[1], r[2]]
        })
        .collect()
}

fn assert_palette(ours: &Palette, theirs: &Value, name: &str) {
    let theirs = palette_rows(theirs);
    assert_eq!(theirs.len(), 256, "{name}");
    for (k, (a, b)) in ours.colors().iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "{name}: entry {k}");
    }
}

// ---------------------------------------------------------------- palettes

#[test]
fn bwr_and_coldnhot_equal_zennit_byte_for_byte() {
    let fx = fixture();
    assert_palette(&Palette::bwr(), &fx["zennit"]["bwr"]["palette"], "bwr");
    assert_palette(
        &Palette::coldnhot(),
        &fx["zennit"]["coldnhot"]["palette"],
        "coldnhot",
    );
    assert_palette(&Palette::gray(), &fx["zennit"]["gray"]["palette"], "gray");
}

#[test]
fn every_zennit_builtin_and_level_equals_zennit() {
    let fx = fixture();
    let maps = fx["zennit"].as_object().unwrap();
    assert_eq!(maps.len(), 11);
    for (name, entry) in maps {
        assert_palette(&Palette::zennit(name).unwrap(), &entry["palette"], name);
        let source = entry["source"].as_str().unwrap();
        assert_palette(
            &Palette::from_cmsl(source, 1.0).unwrap(),
            &entry["palette"],
            source,
        );
    }
    for case in fx["zennit_level"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let level = case["level"].as_f64().unwrap();
        let source = fx["zennit"][name]["source"].as_str().unwrap();
        let ours = Palette::from_cmsl(source, level).unwrap();
        assert_palette(&ours, &case["palette"], &format!("{name} level {level}"));
    }
}

#[test]
fn seismic_equals_matplotlib() {
    let fx = fixture();
    assert_palette(
        &Palette::seismic(),
        &fx["matplotlib"]["seismic"],
        "matplotlib seismic",
    );
    // `gray` is zennit's (entry k = (k, k, k)); matplotlib's own gray LUT truncates k/255·255
    // and so differs by one at some entries (33 → 32): not compared.
    let mpl_gray = palette_rows(&fx["matplotlib"]["gray"]);
    assert_eq!(mpl_gray[33], [32, 32, 32]);
    assert_eq!(Palette::gray().color(33), [33, 33, 33]);
}

#[test]
fn bwr_matches_the_closed_form() {
    let bwr = Palette::bwr();
    for k in 0..256usize {
        let want = if k < 128 {
            let v = (255 * k / 128) as u8;
            [v, v, 255]
        } else {
            let g = (255.0 * (1.0 - (k as f64 - 128.0) / 127.0)).floor() as u8;
            [255, g, g]
        };
        assert_eq!(bwr.color(k as u8), want, "entry {k}");
    }
}

#[test]
fn palette_errors() {
    assert!(matches!(Palette::zennit("viridis"), Err(Error::Image { .. })));
    assert!(matches!(Palette::from_cmsl("fff", 1.0), Err(Error::Image { .. })));
    assert!(matches!(
        Palette::from_cmsl("fff,000", f64::NAN),
        Err(Error::Image { .. })
    ));
    assert!(matches!(
        Palette::from_cmsl("80:fff,10:000", 1.0),
        Err(Error::Image { .. })
    ));
    assert_eq!(Palette::default(), Palette::bwr());
}

// ---------------------------------------------------------------- normalisation

#[test]
fn symmetric_indices_equal_zennit_imgify() {
    let fx = fixture();
    let s = &fx["symmetric"];
    let shape: Vec<usize> = s["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = s["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let want: Vec<u8> = s["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let map = Array2::from_shape_vec((shape[0], shape[1]), data).unwrap();
    let got = normalize(&map.view(), Normalization::Symmetric).unwrap();
    assert_eq!(got.iter().copied().collect::<Vec<u8>>(), want);
}

#[test]
fn symmetric_maps_zero_to_127_and_extremes_to_0_and_255() {
    let m = array![[0.0f32, 3.0, -3.0, 1e-9], [-1e-9, 1.5, -1.5, 0.0]];
    let idx = normalize(&m.view(), Normalization::Symmetric).unwrap();
    assert_eq!(idx, array![[127u8, 255, 0, 127], [127, 191, 63, 127]]);
    let m64 = m.mapv(f64::from) * 1e-30; // tiny but non-zero scale still works
    assert_eq!(normalize(&m64.view(), Normalization::Symmetric).unwrap(), idx);
    // Only positive values: the minimum is still 127 at zero, not 0.
    let pos = array![[0.0, 2.0]];
    assert_eq!(
        normalize(&pos.view(), Normalization::Symmetric).unwrap(),
        array![[127u8, 255]]
    );
}

#[test]
fn all_zero_relevance_renders_the_colour_of_zero() {
    let z = Array2::<f32>::zeros((3, 4));
    let idx = |n| normalize(&z.view(), n).unwrap();
    assert!(idx(Normalization::Symmetric).iter().all(|&k| k == 127));
    assert!(idx(Normalization::Percentile(2.0)).iter().all(|&k| k == 127));
    assert!(idx(Normalization::Unaligned).iter().all(|&k| k == 127));
    assert!(idx(Normalization::Absolute).iter().all(|&k| k == 0));
    let img = Heatmap::default().render(&z.view().into_dyn()).unwrap();
    assert!(img.data().chunks(3).all(|p| p == [253, 253, 255]));
}

#[test]
fn percentile_threshold_equals_captum() {
    let fx = fixture();
    let c = &fx["captum_threshold"];
    let data: Vec<f64> = c["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let t = percentile_threshold(data, c["outlier_perc"].as_f64().unwrap()).unwrap();
    assert_eq!(t, c["threshold"].as_f64().unwrap());
}

#[test]
fn percentile_clipping_saturates_the_outliers() {
    // 99 values of 1 and one spike of 1000: the spike is 91 % of the total, so 98 % is reached
    // only at the spike itself; with outlier_perc = 95 the threshold drops to 1.
    let mut v = vec![1.0f64; 100];
    v[7] = 1000.0;
    assert_eq!(percentile_threshold(v.clone(), 2.0).unwrap(), 1000.0);
    assert_eq!(percentile_threshold(v.clone(), 95.0).unwrap(), 1.0);
    // 200 values of 1 and one spike of 2: the spike is < 2 % of the total and is clipped.
    let mut m = Array2::<f64>::from_elem((1, 201), 0.5);
    m[[0, 200]] = 2.0;
    m[[0, 0]] = -0.5;
    m[[0, 1]] = 0.0;
    assert_eq!(percentile_threshold(m.iter().copied(), 2.0).unwrap(), 0.5);
    let idx = normalize(&m.view(), Normalization::Percentile(2.0)).unwrap();
    assert_eq!(
        (idx[[0, 0]], idx[[0, 1]], idx[[0, 2]], idx[[0, 200]]),
        (0, 127, 255, 255)
    );
    // Symmetric keeps the spike as the only saturated value.
    let sym = normalize(&m.view(), Normalization::Symmetric).unwrap();
    assert_eq!((sym[[0, 2]], sym[[0, 200]]), (159, 255));
    // outlier_perc = 0: the threshold is max |x|, i.e. symmetric.
    assert_eq!(normalize(&m.view(), Normalization::Percentile(0.0)).unwrap(), sym);
    for bad in [-1.0, 100.5, f64::NAN] {
        assert!(matches!(
            normalize(&m.view(), Normalization::Percentile(bad)),
            Err(Error::Image { .. })
        ));
    }
}

#[test]
fn reductions_and_input_errors() {
    let r = Array3::from_shape_fn((3, 2, 2), |(c, y, x)| {
        (c as f64 - 1.0) * (1.0 + y as f64 + 2.0 * x as f64)
    });
    let d = r.view().into_dyn();
    assert_eq!(
        reduce_channels(&d, Reduction::Sum).unwrap(),
        Array2::<f64>::zeros((2, 2))
    );
    assert_eq!(
        reduce_channels(&d, Reduction::Mean).unwrap(),
        Array2::<f64>::zeros((2, 2))
    );
    assert_eq!(
        reduce_channels(&d, Reduction::MaxAbs).unwrap(),
        array![[1.0, 3.0], [2.0, 4.0]]
    );
    assert_eq!(
        reduce_channels(&d, Reduction::SumAbs).unwrap(),
        array![[2.0, 6.0], [4.0, 8.0]]
    );
    let hm = Heatmap::default();
    let four = ArrayD::<f32>::zeros(vec![1, 1, 2, 2]);
    assert!(matches!(hm.render(&four.view()), Err(Error::Rank { got: 4, .. })));
    let one = ArrayD::<f32>::zeros(vec![5]);
    assert!(matches!(hm.render(&one.view()), Err(Error::Rank { got: 1, .. })));
    let empty = ArrayD::<f32>::zeros(vec![3, 0, 2]);
    assert!(matches!(hm.render(&empty.view()), Err(Error::Image { .. })));
    let mut nan = ArrayD::<f32>::zeros(vec![2, 2]);
    nan[[1, 0]] = f32::NAN;
    assert!(matches!(
        hm.render(&nan.view()),
        Err(Error::NonFinite { index: 2, .. })
    ));
    let zero_scale = Heatmap {
        scale: 0,
        ..Heatmap::default()
    };
    assert!(matches!(
        zero_scale.render(&nan.mapv(|_| 1.0f32).view()),
        Err(Error::Image { .. })
    ));
}

// ---------------------------------------------------------------- layout

#[test]
fn upscaling_repeats_pixels() {
    let img = colorize(&array![[0u8, 255], [127, 128]].view(), &Palette::gray()).unwrap();
    let up = img.upscale(3).unwrap();
    assert_eq!((up.width(), up.height()), (6, 6));
    for y in 0..6 {
        for x in 0..6 {
            assert_eq!(up.pixel(x, y), img.pixel(x / 3, y / 3), "({x}, {y})");
        }
    }
    assert_eq!(img.upscale(1).unwrap(), img);
    assert!(matches!(img.upscale(0), Err(Error::Image { .. })));
    assert!(matches!(img.upscale(usize::MAX), Err(Error::Image { .. })));
    assert!(matches!(img.upscale(1 << 14), Err(Error::Image { .. }))); // 2^30 pixels > MAX_PIXELS
    assert_eq!(MAX_PIXELS, 1 << 28);
}

#[test]
fn grid_layout_sizes() {
    let a = RgbImage::filled(5, 4, [1, 2, 3]).unwrap();
    let b = RgbImage::filled(3, 6, [4, 5, 6]).unwrap();
    let g = grid(&[a.clone(), b.clone(), a.clone()], 2, 3, 2, [9, 9, 9]).unwrap();
    // Cells are max-width 5 × max-height 6; 2 px padding between and around.
    assert_eq!((g.width(), g.height()), (3 * 5 + 4 * 2, 2 * 6 + 3 * 2));
    assert_eq!(g.pixel(2, 2), Some([1, 2, 3]));
    assert_eq!(g.pixel(2 + 5 + 2, 2), Some([4, 5, 6]));
    assert_eq!(g.pixel(2 + 5 + 2 + 3, 2), Some([9, 9, 9])); // b is narrower than its cell
    assert_eq!(g.pixel(2 + 2 * 7, 2 + 3), Some([1, 2, 3]));
    assert_eq!(g.pixel(2, 2 + 6 + 2), Some([9, 9, 9])); // second row is empty
    assert_eq!(g.pixel(0, 0), Some([9, 9, 9]));
    let no_pad = grid(&[a.clone(), a.clone()], 1, 2, 0, [0; 3]).unwrap();
    assert_eq!((no_pad.width(), no_pad.height()), (10, 4));
    assert!(no_pad.data().chunks(3).all(|p| p == [1, 2, 3]));
    assert!(matches!(grid(&[], 1, 1, 0, [0; 3]), Err(Error::Image { .. })));
    assert!(matches!(
        grid(&[a.clone(), a.clone()], 1, 1, 0, [0; 3]),
        Err(Error::Image { .. })
    ));
    assert!(matches!(
        grid(std::slice::from_ref(&a), 0, 1, 0, [0; 3]),
        Err(Error::Image { .. })
    ));
    assert!(matches!(
        grid(&[a], 1, usize::MAX, 1, [0; 3]),
        Err(Error::Image { .. })
    ));
}

#[test]
fn overlay_blends_and_checks() {
    let x = array![[[0.0f32, 1.0], [0.5, 0.25]]]; // [1, 2, 2] grayscale input
    let bg = RgbImage::from_array(&x.view().into_dyn(), None).unwrap();
    assert_eq!(bg.pixel(1, 0), Some([255, 255, 255]));
    let heat = RgbImage::filled(2, 2, [255, 0, 0]).unwrap();
    let o = overlay(&bg, &heat, 0.5).unwrap();
    assert_eq!(o.pixel(0, 0), Some([128, 0, 0]));
    assert_eq!(o.pixel(1, 0), Some([255, 128, 128]));
    assert_eq!(overlay(&bg, &heat, 0.0).unwrap(), bg);
    assert_eq!(overlay(&bg, &heat, 1.0).unwrap(), heat);
    assert!(matches!(overlay(&bg, &heat, 1.5), Err(Error::Image { .. })));
    let wide = RgbImage::filled(3, 2, [0; 3]).unwrap();
    assert!(matches!(overlay(&bg, &wide, 0.5), Err(Error::Shape { .. })));
    // RGB input [3, H, W]: channels stay apart.
    let rgb = Array3::from_shape_fn((3, 1, 2), |(c, _, x)| if c == x { 1.0 } else { 0.0 });
    let img = RgbImage::from_array(&rgb.view().into_dyn(), Some((0.0, 1.0))).unwrap();
    assert_eq!(img.data(), &[255, 0, 0, 0, 255, 0]);
    assert_eq!(img.to_grayscale().data(), &[85, 85, 85, 85, 85, 85]);
    let two = Array3::<f64>::zeros((2, 1, 1));
    assert!(matches!(
        RgbImage::from_array(&two.view().into_dyn(), None),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        RgbImage::from_array(&rgb.view().into_dyn(), Some((1.0, 1.0))),
        Err(Error::Image { .. })
    ));
    assert!(matches!(
        RgbImage::from_raw(2, 2, vec![0; 11]),
        Err(Error::Shape { .. })
    ));
}

// ---------------------------------------------------------------- golden images

/// A smooth signed pattern with exact zeros on a cross: positive blob top-left, negative
/// bottom-right.
fn signed(h: usize, w: usize) -> Array2<f32> {
    Array2::from_shape_fn((h, w), |(y, x)| {
        let (fy, fx) = (y as f32 / (h - 1) as f32, x as f32 / (w - 1) as f32);
        if y == h / 2 || x == w / 2 {
            return 0.0;
        }
        let pos = (-((fy - 0.3).powi(2) + (fx - 0.3).powi(2)) * 12.0).exp();
        let neg = (-((fy - 0.7).powi(2) + (fx - 0.75).powi(2)) * 20.0).exp();
        pos - 0.8 * neg + 0.1 * (fx * 9.0).sin()
    })
}

/// The signed pattern plus one spike of 4 (about 3.5 × the pattern's max, but only ~1.5 % of
/// the total |R|): symmetric normalisation lets the spike wash the map out, captum's
/// percentile clipping saturates it instead.
fn outlier() -> Array2<f32> {
    let mut m = signed(32, 32);
    m[[6, 24]] = 4.0;
    m
}

#[test]
fn the_outlier_pattern_is_clipped() {
    let o = outlier();
    let t = percentile_threshold(o.iter().copied(), 2.0).unwrap();
    assert!(t < 1.2, "threshold {t}");
    let total: f32 = o.iter().map(|v| v.abs()).sum();
    assert!(4.0 / total < 0.02);
}

/// A `[3, H, W]` map whose channels disagree in sign.
fn channels() -> Array3<f64> {
    Array3::from_shape_fn((3, 12, 12), |(c, y, x)| {
        let (fy, fx) = (y as f64 / 11.0, x as f64 / 11.0);
        match c {
            0 => fx - 0.5,
            1 => 0.5 - fy,
            _ => ((fx - 0.5) * (fy - 0.5) * 8.0).tanh(),
        }
    })
}

fn golden_cases() -> Vec<(&'static str, RgbImage)> {
    let hm = |normalization, palette, reduction| Heatmap {
        reduction,
        normalization,
        palette,
        scale: 4,
    };
    let sym = Normalization::Symmetric;
    let pct = Normalization::Percentile(2.0);
    let s = signed(16, 16);
    let s = s.view().into_dyn();
    let o = outlier();
    let o = o.view().into_dyn();
    let c = channels();
    let c = c.view().into_dyn();
    let z = Array2::<f32>::zeros((8, 8));
    let sum = Reduction::Sum;
    let render = |h: Heatmap, r: &ndarray::ArrayViewD<'_, f32>| h.render(r).unwrap();
    let mut cases = vec![
        ("signed_bwr_symmetric", render(hm(sym, Palette::bwr(), sum), &s)),
        (
            "signed_coldnhot_symmetric",
            render(hm(sym, Palette::coldnhot(), sum), &s),
        ),
        (
            "signed_seismic_symmetric",
            render(hm(sym, Palette::seismic(), sum), &s),
        ),
        (
            "signed_gray_absolute",
            render(hm(Normalization::Absolute, Palette::gray(), sum), &s),
        ),
        (
            "signed_gray_unaligned",
            render(hm(Normalization::Unaligned, Palette::gray(), sum), &s),
        ),
        ("outlier_bwr_symmetric", render(hm(sym, Palette::bwr(), sum), &o)),
        ("outlier_bwr_percentile", render(hm(pct, Palette::bwr(), sum), &o)),
        (
            "zeros_coldnhot_symmetric",
            render(hm(sym, Palette::coldnhot(), sum), &z.view().into_dyn()),
        ),
        (
            "channels_bwr_sum",
            hm(sym, Palette::bwr(), sum).render(&c).unwrap(),
        ),
        (
            "channels_gray_maxabs",
            hm(Normalization::Absolute, Palette::gray(), Reduction::MaxAbs)
                .render(&c)
                .unwrap(),
        ),
    ];
    // Overlay of the signed heatmap on a grayscale "input" ramp, and a grid of four maps.
    let input = Array3::from_shape_fn((1, 16, 16), |(_, y, x)| ((x + y) % 8) as f32 / 7.0);
    let bg = RgbImage::from_array(&input.view().into_dyn(), Some((0.0, 1.0)))
        .unwrap()
        .upscale(4)
        .unwrap();
    cases.push(("overlay_bwr_gray", overlay(&bg, &cases[0].1, 0.5).unwrap()));
    let cells: Vec<RgbImage> = cases[..4].iter().map(|(_, img)| img.clone()).collect();
    cases.push(("grid_2x2", grid(&cells, 2, 2, 3, [255, 255, 255]).unwrap()));
    cases
}

#[cfg(feature = "png")]
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight)
    );
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[cfg(feature = "png")]
#[test]
fn golden_images() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let regenerate = std::env::var("REGENERATE").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for (name, img) in golden_cases() {
        let path = dir.join(format!("{name}.png"));
        if regenerate {
            std::fs::create_dir_all(&dir).unwrap();
            img.save_png(&path).unwrap();
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (REGENERATE=1 cargo test --test suite heatmap::golden)",
                path.display()
            )
        });
        let (w, h, data) = decode(&bytes);
        if (w as usize, h as usize) != (img.width(), img.height()) || data != img.data() {
            let differing = data.iter().zip(img.data()).filter(|(a, b)| a != b).count();
            failures.push(format!(
                "{name}: {w}×{h} golden vs {}×{} now, {differing} bytes differ",
                img.width(),
                img.height()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden images differ:\n{}",
        failures.join("\n")
    );
}

#[cfg(feature = "png")]
#[test]
fn png_round_trip_and_write_errors() {
    let img = Heatmap {
        scale: 2,
        ..Heatmap::default()
    }
    .render(&signed(5, 7).view().into_dyn())
    .unwrap();
    let (w, h, data) = decode(&img.to_png().unwrap());
    assert_eq!((w, h), (14, 10));
    assert_eq!(data, img.data());
    let missing = std::env::temp_dir().join("relevance-no-such-dir-4f1c/a/b.png");
    assert!(matches!(img.save_png(&missing), Err(Error::Image { .. })));
}

#[test]
fn golden_cases_render_without_png() {
    // Rendering needs no PNG support; CI runs this with --no-default-features too (.ci/run).
    let cases = golden_cases();
    assert_eq!(cases.len(), 12);
    assert!(cases
        .iter()
        .all(|(_, img)| img.width() >= 32 && img.height() >= 32));
}

/// A figure letters its titles and captions (ink appears where they go and nowhere in the
/// cells), places every image whole, draws the palette as its colour bar, and refuses rows
/// of the wrong length.
#[cfg(feature = "figure")]
#[test]
fn figures_title_caption_and_colour_bar() {
    use relevance::heatmap::Figure;
    let red = RgbImage::filled(20, 10, [255, 0, 0]).unwrap();
    let blue = RgbImage::filled(20, 10, [0, 0, 255]).unwrap();
    let make = |caption: &str| {
        let mut f = Figure::new(["first column", "b"]).padding(4);
        f.row(caption, vec![red.clone(), blue.clone()]).unwrap();
        f
    };
    let plain = make("").render().unwrap();
    // no caption: the first column starts one padding from the left
    let (w, h) = (plain.width(), plain.height());
    let count = |img: &RgbImage, color: [u8; 3]| {
        (0..img.height())
            .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.pixel(x, y) == Some(color))
            .count()
    };
    assert_eq!(count(&plain, [255, 0, 0]), 200, "the red image, whole");
    assert_eq!(count(&plain, [0, 0, 255]), 200, "the blue image, whole");
    // ink (dark grey or black pixels) in the header band above the images
    let first_red_row = (0..h)
        .find(|&y| (0..w).any(|x| plain.pixel(x, y) == Some([255, 0, 0])))
        .unwrap();
    let ink = |img: &RgbImage, ys: std::ops::Range<usize>, xs: std::ops::Range<usize>| {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| img.pixel(x, y).is_some_and(|p| p.iter().all(|&c| c < 128)))
            .count()
    };
    assert!(
        ink(&plain, 0..first_red_row, 0..w) > 20,
        "column titles are drawn"
    );
    // the first column is as wide as its title, wider than its 20-pixel image
    assert!(w > 2 * 20 + 3 * 4 + 40);

    let captioned = make("caption\nline 2").title("A title").render().unwrap();
    assert!(captioned.width() > w, "the caption column widens the figure");
    assert!(
        captioned.height() > h,
        "the title and two caption lines heighten it"
    );
    let red_x = (0..captioned.width())
        .find(|&x| (0..captioned.height()).any(|y| captioned.pixel(x, y) == Some([255, 0, 0])))
        .unwrap();
    assert!(
        ink(&captioned, 0..captioned.height(), 0..red_x) > 20,
        "the caption is drawn left of the row"
    );

    let barred = make("")
        .colour_bar(&Palette::bwr(), ["-", "0", "+"])
        .render()
        .unwrap();
    let bar_y = (0..barred.height()).rev().find(|&y| {
        barred.pixel(barred.width() / 2, y) == Some(Palette::bwr().color(128))
            || barred.pixel(barred.width() / 2, y) == Some(Palette::bwr().color(127))
    });
    assert!(
        bar_y.is_some(),
        "the bar's middle has the palette's middle colour"
    );
    assert!(count(&barred, Palette::bwr().color(0)) >= 1 && count(&barred, Palette::bwr().color(255)) >= 1);

    // a title and bar labels wider than the grid widen the figure instead of being cut
    let mut narrow = Figure::new(["a"])
        .title("a title far wider than one small image")
        .colour_bar(&Palette::bwr(), ["much against", "zero", "much for"]);
    narrow
        .row("", vec![RgbImage::filled(10, 10, [0, 0, 0]).unwrap()])
        .unwrap();
    let narrow = narrow.render().unwrap();
    assert!(narrow.width() > relevance::heatmap::text_width("a title far wider than one small image", 14.0));
    // draw_text refuses absurd sizes without allocating for them
    let mut tiny = RgbImage::filled(4, 4, [255, 255, 255]).unwrap();
    relevance::heatmap::draw_text(&mut tiny, "W", (0, 0), f32::INFINITY, [0, 0, 0]);
    relevance::heatmap::draw_text(&mut tiny, "W", (0, 0), 1e9, [0, 0, 0]);
    relevance::heatmap::draw_text(&mut tiny, "W", (100, 100), 14.0, [0, 0, 0]);

    let mut wrong = Figure::new(["a", "b"]);
    assert!(matches!(
        wrong.row("x", vec![red.clone()]),
        Err(Error::Image { .. })
    ));
    assert!(
        matches!(Figure::new(["a"]).render(), Err(Error::Image { .. })),
        "no rows"
    );
    assert!(matches!(
        Figure::new(Vec::<String>::new()).render(),
        Err(Error::Image { .. })
    ));
}

/// The colours in a column's pixels between rows `y0..y1`: how many are (nearly) `colour`.
#[cfg(feature = "figure")]
fn count_colour(
    image: &RgbImage,
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
    colour: [u8; 3],
) -> usize {
    let mut n = 0;
    for y in ys {
        for x in xs.clone() {
            let p = image.pixel(x, y).unwrap();
            if (0..3).all(|k| (i32::from(p[k]) - i32::from(colour[k])).abs() <= 8) {
                n += 1;
            }
        }
    }
    n
}

#[cfg(feature = "figure")]
#[test]
fn sequence_logo_stacks_letters_above_and_below_the_zero_line() {
    use relevance::heatmap::{SequenceLogo, DNA_COLOURS};
    let [a, c, g, t] = DNA_COLOURS;
    // position 0: A +0.75 and G +0.25; position 1: T −0.5; position 2: C +0.5 and A −0.25
    let x = array![
        [0.75, 0.0, -0.25],
        [0.0, 0.0, 0.5],
        [0.25, 0.0, 0.0],
        [0.0, -0.5, 0.0]
    ];
    let logo = SequenceLogo::new()
        .base_width(40)
        .height(150)
        .render(&x.view())
        .unwrap();
    assert_eq!((logo.width(), logo.height()), (120, 150));
    // tallest stack above 1.0, deepest below 0.5: the zero line at 100 of 150 px
    let zero = 100;
    let grey = logo.pixel(60, zero).unwrap();
    assert_eq!(grey, [150, 150, 150]);
    // position 0: G (25 px) sits on the line, A (75 px) above it; nothing below
    assert!(
        count_colour(&logo, 0..40, 2..22, a) > 100,
        "A on top at position 0"
    );
    assert!(
        count_colour(&logo, 0..40, 80..98, g) > 80,
        "G next to the line at position 0"
    );
    assert_eq!(count_colour(&logo, 0..40, 0..75, g), 0);
    assert_eq!(
        count_colour(&logo, 0..40, zero + 1..150, a) + count_colour(&logo, 0..40, zero + 1..150, g),
        0
    );
    // position 1: T below the line, down to the bottom, nothing above
    assert!(
        count_colour(&logo, 40..80, zero + 5..150, t) > 200,
        "T below the line"
    );
    assert!(count_colour(&logo, 40..80, 0..zero, [255, 255, 255]) == 40 * zero);
    // position 2: C up to half the height above, A a quarter below
    assert!(count_colour(&logo, 80..120, 52..98, c) > 200);
    assert_eq!(count_colour(&logo, 80..120, 0..48, c), 0);
    assert!(count_colour(&logo, 80..120, zero + 2..123, a) > 80);
    assert_eq!(count_colour(&logo, 80..120, 128..150, a), 0);
    // with a fixed scale, the same logo at half the scale fills the top half as much
    let half = SequenceLogo::new()
        .base_width(40)
        .height(150)
        .scale(50.0)
        .unwrap()
        .render(&x.view())
        .unwrap();
    assert!(count_colour(&half, 0..40, 52..98, a) > 100);
    assert_eq!(count_colour(&half, 0..40, 0..48, a), 0);
}

#[cfg(feature = "figure")]
#[test]
fn sequence_logo_errors() {
    use relevance::heatmap::SequenceLogo;
    let ok = Array2::<f64>::zeros((4, 3));
    // all zero: a blank picture with the line at the bottom
    let blank = SequenceLogo::new().render(&ok.view()).unwrap();
    assert_eq!(blank.pixel(0, 0).unwrap(), [255, 255, 255]);
    let wrong = Array2::<f64>::zeros((5, 3));
    assert!(matches!(
        SequenceLogo::new().render(&wrong.view()),
        Err(Error::Shape { .. })
    ));
    let empty = Array2::<f64>::zeros((4, 0));
    assert!(matches!(
        SequenceLogo::new().render(&empty.view()),
        Err(Error::Image { .. })
    ));
    let mut nan = ok.clone();
    nan[[2, 1]] = f64::NAN;
    assert!(matches!(
        SequenceLogo::new().render(&nan.view()),
        Err(Error::NonFinite { index: 7, .. })
    ));
    assert!(SequenceLogo::new().scale(0.0).is_err());
    assert!(SequenceLogo::new().scale(f64::INFINITY).is_err());
    assert!(SequenceLogo::new().height(0).render(&ok.view()).is_err());
    let huge = Array2::<f64>::zeros((4, 1 << 22));
    assert!(matches!(
        SequenceLogo::new().base_width(1000).render(&huge.view()),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(SequenceLogo::new().alphabet(&['A', 'B'], &[[0, 0, 0]]).is_err());
    let protein = SequenceLogo::new()
        .alphabet(&['K', 'R'], &[[0, 0, 255], [255, 0, 0]])
        .unwrap();
    let two = array![[1.0f32, -1.0], [0.5, 0.0]];
    assert_eq!(protein.render(&two.view()).unwrap().width(), 32);
}

#[cfg(feature = "figure")]
#[test]
fn sequence_logo_zero_line_can_be_placed() {
    use relevance::heatmap::SequenceLogo;
    let x = array![[0.0, 0.0], [-0.5, 0.0], [0.0, 0.0], [0.0, 0.0]];
    let logo = SequenceLogo::new()
        .height(100)
        .scale(20.0)
        .unwrap()
        .zero_at(0.25)
        .unwrap();
    let image = logo.render(&x.view()).unwrap();
    assert_eq!(image.pixel(20, 25).unwrap(), [150, 150, 150]);
    // the C goes 10 px down from the line
    assert!(count_colour(&image, 0..16, 27..35, relevance::heatmap::DNA_COLOURS[1]) > 10);
    assert_eq!(
        count_colour(&image, 0..16, 40..100, relevance::heatmap::DNA_COLOURS[1]),
        0
    );
    assert!(SequenceLogo::new().zero_at(1.5).is_err());
    assert!(SequenceLogo::new().zero_at(f64::NAN).is_err());
}
