//! Regression tests of the hardening issue: each case panicked, returned a silently wrong
//! result, or built a network that could not run, before its fix.

use ndarray::{array, Array2, Array4, ArrayD, IxDyn};
use relevance::io::{read_npy, write_npy};
use relevance::{
    Baseline, Composite, Conv2d, Conv2dConfig, DeepLift, Dense, Error, Flatten, Layer, LrpEpsilon, LrpGamma,
    MaxPool2d, Network, Relu, Target, MAX_RANK,
};

fn small() -> Network<f64> {
    let w = array![[1.0, -1.0, 0.5], [0.5, 2.0, -1.0]];
    Network::new(
        &[3],
        vec![
            Box::new(Dense::new(w, Some(array![0.1, -0.2])).unwrap()),
            Box::new(Relu),
            Box::new(Dense::new(array![[1.0, 1.0]], None).unwrap()),
        ],
    )
    .unwrap()
}

/// The error inside an `AtLayer`, with the layer's index.
fn inner(e: &Error) -> (Option<usize>, &Error) {
    match e {
        Error::AtLayer { index, source, .. } => (Some(*index), source),
        e => (None, e),
    }
}

#[test]
fn deeplift_relevance_target_of_the_wrong_batch_is_an_error() {
    let net = small();
    let x = array![[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]].into_dyn();
    let rule = DeepLift::rescale();
    let dist = Baseline::Distribution(ArrayD::zeros(IxDyn(&[3, 3])));
    for r in [
        ArrayD::<f64>::ones(IxDyn(&[1, 1])), // fewer rows
        ArrayD::<f64>::ones(IxDyn(&[])),     // 0-d
        ArrayD::<f64>::ones(IxDyn(&[3, 1])), // extra rows (used to be silently cut)
        ArrayD::<f64>::ones(IxDyn(&[2, 2])), // not the output's shape
    ] {
        let t = Target::Relevance(r.clone());
        for b in [&Baseline::Zero, &dist] {
            let e = net.deeplift(&x, &t, &rule, b).unwrap_err();
            assert!(matches!(e, Error::Shape { .. }), "{:?}: {e:?}", r.shape());
        }
    }
    // the right shape works
    let ok = Target::Relevance(ArrayD::ones(IxDyn(&[2, 1])));
    assert!(net.deeplift(&x, &ok, &rule, &dist).is_ok());
}

#[test]
fn maxpool_route_rejects_empty_planes_and_foreign_indices() {
    let pool = MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap();
    let idx = Array4::<usize>::zeros((1, 1, 1, 1));
    let v = ArrayD::<f64>::ones(IxDyn(&[1, 1, 1, 1]));
    assert!(pool.route(&[1, 1, 0, 2], &idx, &v.view()).is_err());
    let far = Array4::<usize>::from_elem((1, 1, 1, 1), 4);
    let e = pool.route(&[1, 1, 2, 2], &far, &v.view()).unwrap_err();
    assert!(e.to_string().contains("outside the input plane"), "{e}");
    assert!(pool.route(&[1, 1, usize::MAX, 3], &idx, &v.view()).is_err());
    // a valid routing still works
    let r = pool.route(&[1, 1, 2, 2], &idx, &v.view()).unwrap();
    assert_eq!(r.sum(), 1.0);
}

#[test]
fn a_layer_that_could_not_run_is_refused_when_the_network_is_built() {
    // 100×100 kernel on a 1000×1000 image: a 10⁴ × 9·10⁵ unfolded input (36 GB as f32)
    let w = ndarray::Array4::<f32>::zeros((1, 1, 100, 100));
    let conv = Conv2d::new(w, None, Conv2dConfig::default()).unwrap();
    let e = Network::new(&[1, 1000, 1000], vec![Box::new(conv) as Box<dyn Layer<f32>>]).unwrap_err();
    let (at, e) = inner(&e);
    assert_eq!(at, Some(0));
    assert!(e.to_string().contains("working memory"), "{e}");
    // too many axes
    let shape = vec![1; MAX_RANK + 1];
    assert!(Network::<f32>::new(&shape, vec![Box::new(Flatten)]).is_err());
}

#[test]
fn rule_parameters_are_checked_in_the_network_float_type() {
    let net32 = Network::<f32>::new(
        &[2],
        vec![Box::new(Dense::new(array![[1.0f32, 1.0]], None).unwrap())],
    )
    .unwrap();
    let x = array![[1.0f32, 2.0]].into_dyn();
    for rules in [
        Composite::new(LrpGamma::new(1e39).unwrap()),
        Composite::new(LrpEpsilon::new(1e-50).unwrap()),
    ] {
        let e = net32.attribute(&x, &Target::Class(0), &rules).unwrap_err();
        assert!(matches!(inner(&e).1, Error::InvalidParameter { .. }), "{e:?}");
    }
    // the same rules are fine in f64
    let net64 = small();
    let x64 = array![[1.0, 2.0, 3.0]].into_dyn();
    assert!(net64
        .attribute(
            &x64,
            &Target::Class(0),
            &Composite::new(LrpGamma::new(1e39).unwrap())
        )
        .is_ok());
}

#[test]
fn overflow_is_an_error_naming_the_node_and_pass() {
    // f32 weights and inputs that are finite but whose products are not
    let w = Array2::from_elem((2, 2), 1e20f32);
    let net = Network::<f32>::new(
        &[2],
        vec![
            Box::new(Dense::new(array![[1.0f32, 0.0], [0.0, 1.0]], None).unwrap()),
            Box::new(Dense::new(w, None).unwrap()),
            Box::new(Relu),
        ],
    )
    .unwrap();
    let x = array![[1e30f32, 1e30]].into_dyn();
    let e = net.forward(&x).unwrap_err();
    let (at, inner_e) = inner(&e);
    assert_eq!(at, Some(1), "{e}");
    assert!(
        matches!(
            inner_e,
            Error::NonFiniteResult {
                pass: "forward pass",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(net.trace(&x).is_err());
    assert!(net
        .attribute(&x, &Target::Class(0), &Composite::new(LrpEpsilon::default()))
        .is_err());
    // DeepLIFT with an input and a baseline near ±f32::MAX: their difference overflows
    let id = Network::<f32>::new(
        &[2],
        vec![Box::new(Dense::new(array![[1.0f32, 1.0]], None).unwrap())],
    )
    .unwrap();
    let big = array![[3e38f32, -3e38]].into_dyn();
    let base = Baseline::Shared(array![-3e38f32, 3e38].into_dyn());
    let e = id
        .deeplift(&big, &Target::Class(0), &DeepLift::rescale(), &base)
        .unwrap_err();
    assert!(
        matches!(
            inner(&e).1,
            Error::NonFiniteResult {
                pass: "DeepLIFT pass",
                ..
            }
        ),
        "{e:?}"
    );
    // relevance that overflows although the forward pass does not: ε = 0 on an output
    // that is exactly zero is fine (dropped), but 1e38 relevance through weights of 1e10 is not
    let amp = Network::<f32>::new(
        &[1],
        vec![
            Box::new(Dense::new(array![[1e-10f32]], None).unwrap()),
            Box::new(Dense::new(array![[1e10f32]], None).unwrap()),
        ],
    )
    .unwrap();
    let r = amp.attribute(
        &array![[1.0f32]].into_dyn(),
        &Target::Relevance(array![[3e38f32]].into_dyn()),
        &Composite::new(relevance::Gradient),
    );
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn npy_with_very_many_axes_is_a_valid_file() {
    // 30 000 axes of length 1: a header beyond 64 KiB, which format version 1 cannot
    // describe (its length field has 2 bytes); version 2 has 4
    let a = ArrayD::<f64>::from_elem(IxDyn(&vec![1; 30_000]), 2.5);
    let bytes = write_npy(&a);
    assert_eq!(bytes[6], 2, "format version");
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    assert_eq!((12 + len) % 64, 0);
    assert_eq!(bytes[12 + len - 1], b'\n');
    assert_eq!(bytes.len(), 12 + len + 8);
    assert_eq!(f64::from_le_bytes(bytes[12 + len..].try_into().unwrap()), 2.5);
    // the reader's header limit (64 KiB) refuses it with an error, not a misparse
    assert!(read_npy::<f64>(&bytes).is_err());
    // below the limit, version 1 round-trips
    let b = ArrayD::<f64>::from_elem(IxDyn(&vec![1; 10_000]), 1.5);
    assert_eq!(read_npy::<f64>(&write_npy(&b)).unwrap(), b);
}

#[test]
fn heatmaps_of_values_near_the_float_limit_keep_the_palette() {
    use relevance::heatmap::{normalize, Normalization};
    let r = array![[-3e38f32, 0.0, 3e38]];
    assert_eq!(
        normalize(&r.view(), Normalization::Symmetric).unwrap(),
        array![[0u8, 127, 255]]
    );
    assert_eq!(
        normalize(&r.view(), Normalization::Unaligned).unwrap(),
        array![[0u8, 127, 255]]
    );
}

/// The output size of one axis of a window operation in exact arithmetic (`u128`): `None`
/// where the padded input is smaller than the window or the size exceeds `MAX_SAMPLE_LEN`;
/// and whether the padded length or the window's span exceed `isize::MAX` (the kernels
/// index with signed offsets: beyond it, a geometry is refused as absurd).
fn exact_window_out(len: usize, k: usize, stride: usize, pad: usize, dil: usize) -> (Option<usize>, bool) {
    let (len, k, stride, pad, dil) = (len as u128, k as u128, stride as u128, pad as u128, dil as u128);
    let span = dil * (k - 1) + 1;
    let padded = len + 2 * pad;
    let overflows = span.max(padded) > isize::MAX as u128;
    let out = padded.checked_sub(span).map(|room| room / stride + 1);
    let fits = out.filter(|&o| {
        o.checked_mul(o)
            .is_some_and(|n| n <= relevance::MAX_SAMPLE_LEN as u128)
    });
    (fits.map(|o| o as usize), overflows)
}

/// Huge strides, dilations and paddings: the network is built with exactly the output size
/// that exact arithmetic gives, or refused with a typed error — never an overflowed size, a
/// panic or a network that cannot run. A geometry whose size is invalid or too large must
/// be refused; one whose size is fine may be refused only when its intermediate values
/// overflow `usize` (absurd configurations are errors).
#[test]
fn huge_geometry_through_the_api_is_an_error_not_an_overflow() {
    let big = [1usize << 62, usize::MAX / 2, usize::MAX];
    let (mut built, mut refused, mut refused_early) = (0, 0, 0);
    let mut check = |what: String,
                     net: relevance::Result<Network<f64>>,
                     exact: Option<(usize, usize)>,
                     overflows: bool| {
        match (net, exact) {
            (Ok(net), Some((h, w))) => {
                assert_eq!(net.output_shape(), &[1, h, w], "{what}: output shape");
                let x = ArrayD::from_elem(IxDyn(&[1, 1, 4, 4]), 1.0);
                assert_eq!(net.forward(&x).unwrap().shape(), &[1, 1, h, w], "{what}: runs");
                built += 1;
            }
            (Ok(net), None) => panic!(
                "{what}: built with output {:?} although the exact size is invalid or too large",
                net.output_shape()
            ),
            (Err(e), exact) => {
                assert!(
                    matches!(e.root(), Error::Shape { .. } | Error::InvalidLayer { .. }),
                    "{what}: {e:?}"
                );
                if let Some(size) = exact {
                    // a valid size may be refused only if computing it overflows usize
                    assert!(
                        overflows,
                        "{what}: refused although its size {size:?} is fine: {e}"
                    );
                }
                refused += 1;
            }
        }
    };
    for &v in &big {
        for (stride, dilation, padding) in [(v, 1, 0), (1, v, v), (v, 1, v)] {
            let cfg = Conv2dConfig::default()
                .stride(stride)
                .dilation(dilation)
                .padding(padding);
            let what = format!("conv stride {stride}, dilation {dilation}, padding {padding}");
            let (exact, overflows) = exact_window_out(4, 2, stride, padding, dilation);
            let net = match Conv2d::new(ndarray::Array4::<f64>::ones((1, 1, 2, 2)), None, cfg) {
                Ok(c) => Network::new(&[1, 4, 4], vec![Box::new(c)]),
                Err(e) => panic!("{what}: the constructor refused {e}; the network builder checks sizes"),
            };
            check(what, net, exact.map(|h| (h, h)), overflows);
        }
        // PyTorch's pools want padding ≤ kernel / 2: refused when built
        let what = format!("pool stride {v}, padding ({}, 0)", v / 4);
        match MaxPool2d::new((2, 2), (v, v), (v / 4, 0)) {
            Ok(p) => {
                let ((h, o1), (w, o2)) = (
                    exact_window_out(4, 2, v, v / 4, 1),
                    exact_window_out(4, 2, v, 0, 1),
                );
                check(
                    what,
                    Network::new(&[1, 4, 4], vec![Box::new(p)]),
                    h.zip(w),
                    o1 || o2,
                )
            }
            Err(e) => {
                assert!(
                    v / 4 > 1 && matches!(e, Error::InvalidLayer { .. }),
                    "{what}: {e:?}"
                );
                refused_early += 1;
            }
        }
    }
    // both outcomes occur: the checks above are not vacuous
    let refused = refused + refused_early;
    assert!(built >= 3 && refused >= 3, "{built} built, {refused} refused");
}

/// Resolving a composite is linear in the number of nodes (it was quadratic: 100 000
/// ReLUs took 9 s).
#[test]
fn composites_resolve_in_linear_time() {
    let layers: Vec<Box<dyn Layer<f32>>> = (0..100_000)
        .map(|_| Box::new(Relu) as Box<dyn Layer<f32>>)
        .collect();
    let net = Network::<f32>::new(&[4], layers).unwrap();
    let x = array![[1.0f32, -1.0, 2.0, 0.5]].into_dyn();
    let t = std::time::Instant::now();
    let a = net
        .attribute(&x, &Target::Class(0), &Composite::epsilon_plus_flat())
        .unwrap();
    assert_eq!(a.relevance[[0, 0]], 1.0);
    assert!(t.elapsed().as_secs_f64() < 3.0, "{:?}", t.elapsed());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, failure_persistence: None, ..Default::default() })]

    /// Heatmap rendering of arbitrary finite values (any magnitude, any shape up to 8×8×3)
    /// never fails or panics; the proptest counterpart of `fuzz/fuzz_targets/heatmap.rs`.
    #[test]
    fn heatmaps_of_any_finite_values_render(
        h in 1usize..8,
        w in 1usize..8,
        c in proptest::sample::select(vec![1usize, 3]),
        bits in proptest::collection::vec(proptest::prelude::any::<u32>(), 192),
    ) {
        use relevance::heatmap::{normalize, Heatmap, Normalization};
        let vals: Vec<f32> = bits
            .iter()
            .map(|&b| f32::from_bits(b))
            .map(|v| if v.is_finite() { v } else { 0.0 })
            .take(c * h * w)
            .collect();
        let map = ArrayD::from_shape_vec(IxDyn(&[c, h, w]), vals).unwrap();
        let img = Heatmap::default().render(&map.view()).unwrap();
        proptest::prop_assert_eq!((img.width(), img.height()), (w, h));
        let flat = map.index_axis(ndarray::Axis(0), 0).to_owned().into_dimensionality::<ndarray::Ix2>().unwrap();
        for n in [Normalization::Symmetric, Normalization::Absolute, Normalization::Unaligned, Normalization::Percentile(2.0)] {
            normalize(&flat.view(), n).unwrap();
        }
    }
}

/// A custom layer that breaks its promises: its forward pass returns fewer values than
/// `output_shape` said, or its relevance pass the wrong shape. Both are shape errors naming
/// the layer, not index panics inside the network.
#[derive(Debug)]
struct Liar {
    forward_short: bool,
}

impl Layer<f64> for Liar {
    fn name(&self) -> String {
        "Liar".into()
    }
    /// A rearrangement: its relevance pass is its gradient, which lies about its shape.
    fn class(&self) -> relevance::Class<'_, f64> {
        relevance::Class::Reshape(self)
    }
    fn output_shape(&self, input_shape: &[usize]) -> relevance::Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }
    fn forward(&self, input: ndarray::ArrayViewD<'_, f64>) -> relevance::Result<ArrayD<f64>> {
        if self.forward_short {
            Ok(ArrayD::zeros(IxDyn(&[input.shape()[0], 1])))
        } else {
            Ok(input.to_owned())
        }
    }
    fn gradient(
        &self,
        step: &relevance::Step<'_, f64>,
        _grad_output: ndarray::ArrayViewD<'_, f64>,
    ) -> relevance::Result<ArrayD<f64>> {
        Ok(ArrayD::zeros(IxDyn(&[step.input.shape()[0], 1])))
    }
}

#[test]
fn a_custom_layer_that_breaks_its_promises_is_a_shape_error() {
    let x = array![[1.0, 2.0, 3.0]].into_dyn();
    for short in [true, false] {
        let net = Network::<f64>::new(
            &[3],
            vec![
                Box::new(Liar { forward_short: short }),
                Box::new(Dense::new(array![[1.0, 1.0, 1.0]], None).unwrap()),
            ],
        )
        .unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            net.attribute(&x, &Target::Class(0), &Composite::new(LrpEpsilon::default()))
        }));
        let e = r.expect("no panic").unwrap_err();
        let (at, inner_e) = inner(&e);
        assert_eq!(at, Some(0), "{e}");
        assert!(matches!(inner_e, Error::Shape { .. }), "{e:?}");
    }
}

/// `Digits` cannot be made inconsistent: its fields are private and `Digits::new` checks
/// one label per image.
#[test]
fn digits_are_consistent_by_construction() {
    use relevance::io::Digits;
    let pixels = ndarray::Array3::<u8>::zeros((3, 2, 2));
    assert!(Digits::new(pixels.clone(), vec![1, 2]).is_err());
    assert!(Digits::new(ndarray::Array3::<u8>::zeros((1, 0, 2)), vec![1]).is_err());
    let d = Digits::new(pixels, vec![1, 2, 3]).unwrap();
    assert_eq!(
        (d.len(), d.labels(), d.pixels().dim()),
        (3, &[1u8, 2, 3][..], (3, 2, 2))
    );
    assert_eq!(d.images::<f32>(&[2]).unwrap().shape(), &[1, 1, 2, 2]);
}

/// Finite relevance whose channel sum overflows f32 (found by the proptest above).
#[test]
fn heatmap_of_channels_summing_beyond_f32_renders() {
    use relevance::heatmap::Heatmap;
    let r =
        ndarray::Array3::<f32>::from_shape_fn((3, 2, 2), |(c, i, _)| if i == 0 { -3e38 } else { c as f32 })
            .into_dyn();
    let img = Heatmap::default().render(&r.view()).unwrap();
    assert_eq!((img.width(), img.height()), (2, 2));
}
