//! `relevance::image` against torchvision's evaluation transform on the same files
//! (`tests/fixtures/images/`, from `tools/gen_image_fixtures.py`), the presets' z^B bounds,
//! uint8 `.npy` inputs, and typed errors for files that are not images or are hostile.

use crate::common::bounds::{IMAGE_CASES, JPEG_MEAN, JPEG_WORST};
use crate::common::{load, mutate, zip_exact};
use ndarray::{Array3, ArrayD, IxDyn};
use relevance::image::{decode_image, load_image, read_npy_input, Preprocess, MAX_SIDE};
use relevance::io::write_npy;
use relevance::{Composite, Error, Network};

fn fixture(file: &str) -> String {
    format!("{}/tests/fixtures/images/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// The largest difference per pixel (in 1/255) between our `[0, 1]` pixels and
/// torchvision's ToTensor(), and the mean difference.
fn deviation(case: &serde_json::Value) -> (f64, f64) {
    let shape: Vec<usize> = case["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let ratio = case["resize_ratio"].as_f64().unwrap();
    let pre = Preprocess::none().with_resize_ratio(ratio).unwrap();
    let img = load_image::<f64>(fixture(case["file"].as_str().unwrap()), &shape, &pre).unwrap();
    assert_eq!(img.pixels.shape(), &shape[..]);
    let original = &case["original"];
    assert_eq!(
        img.original,
        (
            original[0].as_u64().unwrap() as usize,
            original[1].as_u64().unwrap() as usize
        )
    );
    let expected: Vec<f64> = case["expected_u8"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let diffs: Vec<f64> = zip_exact(img.pixels.iter(), &expected)
        .map(|(&ours, &theirs)| (ours * 255.0 - theirs).abs())
        .collect();
    let worst = diffs.iter().copied().fold(0.0, f64::max);
    (worst, diffs.iter().sum::<f64>() / diffs.len() as f64)
}

#[test]
fn resize_and_crop_match_torchvision() {
    let fx = load("images/expected");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), IMAGE_CASES);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (worst, mean) = deviation(case);
        println!("{name}: worst {worst:.3}/255, mean {mean:.3}/255");
        if name.starts_with("jpeg") {
            // two JPEG decoders (libjpeg-turbo in PIL, zune-jpeg here) may differ in IDCT
            // rounding and chroma upsampling (measured: 2/255 worst, 0.32/255 mean)
            assert!(
                worst <= JPEG_WORST && mean <= JPEG_MEAN,
                "{name}: worst {worst}/255, mean {mean}/255"
            );
        } else {
            // Pillow's resampling re-implemented: the same bytes (ours are u8 / 255 as
            // floats, so 255 times them is the byte up to the last bit)
            assert!(worst < 1e-9, "{name}: worst {worst}/255 (mean {mean})");
        }
    }
}

#[test]
fn an_image_of_the_input_size_is_taken_as_it_is() {
    let img = load_image::<f32>(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/seven.png"),
        &[1, 28, 28],
        &Preprocess::mnist(),
    )
    .unwrap();
    assert_eq!(img.resized, None);
    let p = img.pixels[[0, 14, 14]];
    assert!((img.input[[0, 14, 14]] - (p - 0.1307) / 0.3081).abs() < 1e-6);
}

#[test]
fn presets_give_the_bounds_of_black_and_white() {
    let pre = Preprocess::imagenet();
    let (low, high) = pre.bounds::<f64>(&[3, 8, 8]).unwrap();
    assert_eq!(low.shape(), &[3, 1, 1]);
    for (c, (m, s)) in [(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)]
        .into_iter()
        .enumerate()
    {
        assert!((low[[c, 0, 0]] + m / s).abs() < 1e-12);
        assert!((high[[c, 0, 0]] - (1.0 - m) / s).abs() < 1e-12);
    }
    // normalising black and white pixels gives exactly the bounds
    let mut black = ArrayD::<f64>::zeros(IxDyn(&[3, 2, 2]));
    pre.normalize(&mut black).unwrap();
    assert!((black[[2, 1, 1]] - low[[2, 0, 0]]).abs() < 1e-12);
    let mut batch = ArrayD::<f64>::ones(IxDyn(&[2, 3, 2, 2]));
    pre.normalize(&mut batch).unwrap();
    assert!((batch[[1, 1, 0, 1]] - high[[1, 0, 0]]).abs() < 1e-12);
    pre.denormalize(&mut batch).unwrap();
    assert!(batch.iter().all(|&v| (v - 1.0).abs() < 1e-12));
    // the bounds fit EpsilonGammaBox on a 3-channel network
    let net = Network::<f64>::new(
        &[3, 8, 8],
        vec![
            Box::new(relevance::Flatten),
            Box::new(relevance::Dense::new(ndarray::Array2::ones((2, 192)), None).unwrap()),
        ],
    )
    .unwrap();
    let rules = Composite::epsilon_gamma_box(low, high).unwrap();
    let x = ArrayD::<f64>::from_elem(IxDyn(&[1, 3, 8, 8]), 0.5);
    assert!(net.attribute(&x, &relevance::Target::Class(0), &rules).is_ok());
    // scalar bounds for a non-image input need one mean and std
    assert!(pre.bounds::<f64>(&[10]).is_err());
    assert_eq!(Preprocess::mnist().bounds::<f32>(&[10]).unwrap().0.ndim(), 0);
    assert!(matches!(
        Preprocess::mnist().bounds::<f32>(&[2, 4, 4]),
        Ok((l, _)) if l.shape() == [2, 1, 1]
    ));
    assert!(matches!(
        pre.bounds::<f32>(&[2, 4, 4]),
        Err(Error::InvalidParameter { .. })
    ));
}

#[test]
fn presets_parse_and_refuse_bad_values() {
    assert_eq!(Preprocess::parse("mnist").unwrap(), Preprocess::mnist());
    let custom = Preprocess::parse("mean=0.5,0.4,0.3,std=0.2,0.2,0.2").unwrap();
    assert_eq!(
        (custom.mean(), custom.std(), custom.name()),
        (&[0.5, 0.4, 0.3][..], &[0.2; 3][..], "custom")
    );
    for bad in [
        "fancy",
        "mean=0.5",
        "mean=0.5,std=0",
        "mean=x,std=1",
        "mean=1,2,std=1,2,3",
        "std=inf,mean=0",
    ] {
        assert!(
            matches!(Preprocess::parse(bad), Err(Error::InvalidParameter { .. })),
            "{bad}"
        );
    }
    assert!(Preprocess::none().with_resize_ratio(0.5).is_err());
    assert!(Preprocess::none().with_resize_ratio(f64::NAN).is_err());
}

/// `bytes` with the first `from` replaced by `to` (of the same length).
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn uint8_arrays_are_scaled_and_other_integers_refused() {
    let pixels = Array3::<f64>::from_shape_fn((1, 2, 2), |(_, y, x)| (y * 2 + x) as f64 * 85.0).into_dyn();
    // write_npy writes floats: build a uint8 file by hand
    let mut bytes = write_npy(&pixels);
    let header_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes = replace(&bytes[..header_end], b"<f8", b"|u1");
    bytes.extend(pixels.iter().map(|&v| v as u8));
    let x = read_npy_input::<f64>(&bytes, &Preprocess::none()).unwrap();
    assert!(x.scaled_uint8);
    assert_eq!(
        x.input.iter().copied().collect::<Vec<_>>(),
        vec![0.0, 85.0 / 255.0, 170.0 / 255.0, 1.0]
    );
    let floats = write_npy(&pixels);
    assert!(
        !read_npy_input::<f64>(&floats, &Preprocess::mnist())
            .unwrap()
            .scaled_uint8
    );
    let ints = write_npy(&pixels);
    let header_end = ints.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut ints2 = replace(&ints[..header_end], b"<f8", b"<i8");
    ints2.extend(pixels.iter().flat_map(|&v| (v as i64).to_le_bytes()));
    assert!(matches!(
        read_npy_input::<f64>(&ints2, &Preprocess::none()),
        Err(Error::Format { reason, .. }) if reason.contains("uint8")
    ));
}

#[test]
fn bad_images_are_typed_errors() {
    let pre = Preprocess::none();
    // not an image shape
    assert!(matches!(
        load_image::<f32>(fixture("photo.png"), &[2, 8, 8], &pre),
        Err(Error::Image { .. })
    ));
    assert!(matches!(
        load_image::<f32>(fixture("photo.png"), &[3, MAX_SIDE + 1, 8], &pre),
        Err(Error::Image { .. })
    ));
    // a missing file names it
    match load_image::<f32>("no/such/file.png", &[3, 8, 8], &pre) {
        Err(Error::Io { path, .. }) => assert!(path.contains("no/such/file.png")),
        other => panic!("{other:?}"),
    }
    // not a PNG or JPEG, truncated, empty
    let png = std::fs::read(fixture("photo.png")).unwrap();
    let jpg = std::fs::read(fixture("photo.jpg")).unwrap();
    for bytes in [
        b"GIF89a not really".to_vec(),
        png[..png.len() / 2].to_vec(),
        jpg[..jpg.len() / 3].to_vec(),
        Vec::new(),
        vec![0u8; 100],
    ] {
        assert!(
            matches!(
                decode_image::<f32>(&bytes, &[3, 8, 8], &pre),
                Err(Error::Image { .. })
            ),
            "{} bytes",
            bytes.len()
        );
    }
    // a PNG header claiming 2^31 × 2^31 pixels is refused before any allocation
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&(1u32 << 31).to_be_bytes());
    huge[20..24].copy_from_slice(&(1u32 << 31).to_be_bytes());
    assert!(matches!(
        decode_image::<f32>(&huge, &[3, 8, 8], &pre),
        Err(Error::Image { .. })
    ));
    // a long thin image whose resize would be enormous is refused, not allocated
    let thin = relevance::heatmap::RgbImage::filled(MAX_SIDE, 1, [9, 9, 9])
        .unwrap()
        .to_png()
        .unwrap();
    assert!(matches!(
        decode_image::<f32>(&thin, &[3, 224, 224], &Preprocess::imagenet()),
        Err(Error::Image { reason, .. }) if reason.contains("resizing")
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Bit flips and truncations of real PNG and JPEG files decode or fail with a typed
    /// error; they never panic, and what decodes has the asked shape and finite pixels in
    /// [0, 1].
    #[test]
    fn mutated_images_never_panic(
        flips in proptest::collection::vec((0usize..4096, 0u8..8), 0..6),
        cut in proptest::option::of(0usize..4096),
        jpeg in proptest::bool::ANY,
        grey in proptest::bool::ANY,
    ) {
        let file = if jpeg { "photo.jpg" } else { "photo.png" };
        let data = mutate(std::fs::read(fixture(file)).unwrap(), &flips, cut);
        let shape = if grey { [1, 28, 28] } else { [3, 32, 32] };
        match decode_image::<f32>(&data, &shape, &Preprocess::none().with_resize_ratio(1.2).unwrap()) {
            Ok(img) => {
                proptest::prop_assert_eq!(img.pixels.shape(), &shape[..]);
                proptest::prop_assert!(img.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
            }
            Err(e) => proptest::prop_assert!(matches!(e, Error::Image { .. }), "{e:?}"),
        }
    }
}
