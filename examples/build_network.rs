//! Builds a small convolutional network by hand from arrays and explains it.
//!
//! ```sh
//! cargo run --example build_network
//! ```
//!
//! The network sees an 8×8 single-channel image and has two outputs: "vertical bar" and
//! "horizontal bar". Its two 3×3 filters are hand-written edge detectors (PyTorch layout
//! `[out, in, kh, kw]`), followed by ReLU, 2×2 max-pooling, flatten and a dense layer that
//! sums each detector's map into its class. The example explains class 0 (vertical) for an
//! image holding a vertical and a horizontal bar under three rules, prints the relevance
//! of the two bars, and writes the input and the heatmaps as one PNG to `out/build_network/`.

use ndarray::{Array2, Array4, Axis};
use relevance::heatmap::{grid, Heatmap, RgbImage};
use relevance::{
    Composite, Conv2d, Conv2dConfig, Dense, Flatten, Lrp0, LrpEpsilon, MaxPool2d, Method, Network, Relu,
    Target,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // filter 0 responds to vertical lines, filter 1 to horizontal ones
    let vertical = [[-1.0, 2.0, -1.0], [-1.0, 2.0, -1.0], [-1.0, 2.0, -1.0]];
    let mut weight = Array4::<f32>::zeros((2, 1, 3, 3));
    for i in 0..3 {
        for j in 0..3 {
            weight[[0, 0, i, j]] = vertical[i][j];
            weight[[1, 0, i, j]] = vertical[j][i];
        }
    }
    let conv = Conv2d::new(
        weight,
        Some(ndarray::array![-0.5, -0.5]),
        Conv2dConfig::default().padding(1),
    )?;
    // after pooling: 2 channels × 4 × 4; class k sums channel k
    let dense = Dense::new(
        Array2::from_shape_fn(
            (2, 32),
            |(class, feature)| if feature / 16 == class { 0.25 } else { -0.05 },
        ),
        Some(ndarray::array![0.0, 0.0]),
    )?;
    let net = Network::new(
        &[1, 8, 8],
        vec![
            Box::new(conv),
            Box::new(Relu),
            Box::new(MaxPool2d::square(2)?),
            Box::new(Flatten),
            Box::new(dense),
        ],
    )?;

    // one image: a long vertical bar in column 2 and a shorter horizontal bar in row 5
    let mut x = Array4::<f32>::zeros((1, 1, 8, 8));
    for k in 1..7 {
        x[[0, 0, k, 2]] = 1.0;
        if k >= 3 {
            x[[0, 0, 5, k]] = 1.0;
        }
    }
    let x = x.into_dyn();
    let logits = net.forward(&x)?;
    println!(
        "logits: vertical {:.3}, horizontal {:.3}",
        logits[[0, 0]],
        logits[[0, 1]]
    );

    let methods = [
        ("LRP-0", Method::lrp(Lrp0)),
        ("LRP-ε (0.1)", Method::lrp(LrpEpsilon::new(0.1)?)),
        ("EpsilonPlus", Method::lrp(Composite::epsilon_plus())),
    ];
    let heatmap = Heatmap {
        scale: 16,
        ..Heatmap::default()
    };
    let mut cells = vec![RgbImage::from_array(&x.index_axis(Axis(0), 0), Some((0.0, 1.0)))?.upscale(16)?];
    for (name, method) in &methods {
        let a = net.explain(&x, &Target::Class(0), method)?;
        let r = a
            .relevance
            .index_axis(Axis(0), 0)
            .index_axis(Axis(0), 0)
            .to_owned();
        let on_vertical: f32 = (1..7).filter(|&k| k != 5).map(|k| r[[k, 2]]).sum();
        let on_horizontal: f32 = (3..7).map(|k| r[[5, k]]).sum();
        println!(
            "{name:>12}: relevance on the vertical bar {on_vertical:+.3}, on the horizontal bar {on_horizontal:+.3}, \
             total {:+.3} (logit {:.3}, gap {:+.3})",
            r.sum(),
            a.total[0],
            a.delta[0]
        );
        cells.push(heatmap.render(&a.relevance.index_axis(Axis(0), 0))?);
    }
    let out = std::path::Path::new("out/build_network");
    std::fs::create_dir_all(out)?;
    let file = out.join("relevance.png");
    grid(&cells, 1, cells.len(), 4, [255, 255, 255])?.save_png(&file)?;
    println!(
        "wrote {} (input | LRP-0 | LRP-ε | EpsilonPlus; red = for \"vertical\")",
        file.display()
    );
    Ok(())
}
