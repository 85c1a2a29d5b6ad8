//! The one-pass cross-max against the general path.

use super::steps::cross_max_general;
use super::*;
use crate::layers::MaxPool2d;
use ndarray::{Array, Array4, IxDyn};

/// A small deterministic generator with many ties (values on a coarse grid).
fn grid(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 7) as f64 - 3.0
        })
        .collect()
}

/// The one-pass 2×2 cross-max gives the general path's values bit for bit: ties,
/// `Δx = 0`, argmaxes of `x` and `x̄` that differ, odd sizes, a broadcast baseline.
#[test]
fn cross_max_2x2_matches_the_general_path() {
    let pool = MaxPool2d::square(2).unwrap();
    for (n, c, h, w, broadcast) in [(1, 3, 4, 6, false), (2, 2, 5, 7, false), (3, 2, 6, 5, true)] {
        let (ho, wo) = (h / 2, w / 2);
        let x = Array::from_shape_vec(IxDyn(&[n, c, h, w]), grid(n * c * h * w, 1)).unwrap();
        let x0_row = Array::from_shape_vec(IxDyn(&[1, c, h, w]), grid(c * h * w, 2)).unwrap();
        let x0 = if broadcast {
            x0_row.broadcast(IxDyn(&[n, c, h, w])).unwrap().to_owned()
        } else {
            Array::from_shape_vec(IxDyn(&[n, c, h, w]), grid(n * c * h * w, 2)).unwrap()
        };
        let x0_view = if broadcast {
            x0_row.broadcast(IxDyn(&[n, c, h, w])).unwrap()
        } else {
            x0.view()
        };
        assert!(x.iter().zip(x0.iter()).any(|(a, b)| a == b), "some Δx = 0");
        let m = Array4::from_shape_vec((n, c, ho, wo), grid(n * c * ho * wo, 3))
            .unwrap()
            .into_dyn();
        let y = Layer::<f64>::forward(&pool, x.view()).unwrap();
        let y0 = Layer::<f64>::forward(&pool, x0.view()).unwrap();
        let mut step = Step::new(0, x.view(), y.view(), m.view());
        step.baseline_input = Some(x0_view.clone());
        step.baseline_output = Some(y0.view());
        let fast = Select::cross_max(&pool, &step.input, &x0_view, &step.relevance, DEEPLIFT_THRESHOLD)
            .expect("a 2×2 pool takes the one-pass path");
        let general = cross_max_general(&pool, &step, DEEPLIFT_THRESHOLD).unwrap();
        assert_eq!(fast.shape(), general.shape());
        // `==` is bit equality here, up to the sign of zero
        for (a, b) in fast.iter().zip(general.iter()) {
            assert!(a == b, "{a} vs {b}");
        }
        // and it is not trivially zero
        assert!(fast.iter().any(|&v| v != 0.0));
    }
}
