//! `Resize` from ONNX (`tools/gen_resize_fixtures.py`): upsampling of data (bilinear,
//! bicubic, nearest; `align_corners` both ways), a bicubic downsampling, and a bicubic
//! resize of a constant grid added to data (what `interpolate_pos_encoding` exports) give
//! PyTorch's float64 outputs and input gradients; DeepLIFT sums to the difference through
//! them.

use crate::common;

use ndarray::{ArrayD, Axis};
use relevance::io::load_onnx;
use relevance::{Baseline, DeepLift, Gradient, Network, Target};

#[test]
fn resize_matches_torch_forward_and_gradient() {
    let fx = common::load("onnx/resize/resize");
    let x: ArrayD<f64> = common::tensor(&fx["x"]);
    let nets = fx["networks"].as_object().unwrap();
    assert_eq!(nets.len(), 7);
    for (name, case) in nets {
        let path = format!(
            "{}/tests/fixtures/onnx/resize/{name}.onnx",
            env!("CARGO_MANIFEST_DIR")
        );
        let net: Network<f64> = load_onnx(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let y = net.forward(&x).unwrap();
        let d = common::rel_dev(&y, &common::tensor(&case["output"]));
        assert!(
            d <= common::bounds::RESIZE_F64,
            "{name}: output deviates from torch by {d:e}"
        );
        let s: ArrayD<f64> = common::tensor(&case["s"]);
        let g = net.attribute(&x, &Target::Relevance(s), &Gradient).unwrap();
        let dg = common::rel_dev(&g.relevance, &common::tensor(&case["gradient"]));
        assert!(
            dg <= common::bounds::RESIZE_F64,
            "{name}: gradient deviates from torch by {dg:e}"
        );
        let dl = net
            .deeplift(&x, &Target::Class(3), &DeepLift::rescale(), &Baseline::Zero)
            .unwrap();
        for (sum, total) in dl
            .attribution
            .sum_axis(Axis(3))
            .sum_axis(Axis(2))
            .sum_axis(Axis(1))
            .iter()
            .zip(&dl.total)
        {
            assert!(
                (sum - total).abs() <= 1e-10 * total.abs().max(1.0),
                "{name}: {sum} vs {total}"
            );
        }
        eprintln!("resize {name}: output {d:.1e}, gradient {dg:.1e}");
    }
}
