//! How faithful is each explanation method on the bundled digits CNN? Pixel flipping with
//! AOPC/ABPC, and the cascading model-parameter randomisation sanity check.
//!
//! ```sh
//! cargo run --release --example evaluate                    # 300 test digits
//! cargo run --release --example evaluate -- 100             # 100 (evenly spaced)
//! cargo run --release --example evaluate --features plot    # also writes the two plots
//! ```
//!
//! Methods: LRP-0, LRP-ε (ε = 0.25), LRP-γ (γ = 0.25), the composites EpsilonPlus,
//! EpsilonPlusFlat and EpsilonGammaBox, DeepLIFT (Rescale) with the zero and the
//! mean-digit baseline (the mean of the 500 bundled test digits), the plain gradient,
//! gradient × input and a seeded random attribution; each explains the true label.
//!
//! Pixel flipping: one pixel per step, 784 steps, each pixel replaced by the digit's
//! minimum (0, Quantus' "black"); the target logit is recorded after each step, most
//! relevant first (MoRF) and least relevant first (LeRF). AOPC = mean over the 785 points
//! of f(x) − f(x_k) (Samek et al. 2017); ABPC = AOPC_MoRF − AOPC_LeRF, the area between
//! the curves. Each is the mean over the digits ± the 95 % confidence interval.
//!
//! Randomisation: the four layers are re-initialised from the top (fc2) down, cascading;
//! the table shows the mean similarity to the original map after the last step (all
//! layers random): Spearman of |R|, Spearman of R and SSIM of the |R| maps.

use ndarray::{ArrayD, Axis};
use relevance::eval::{
    random_attribution, CascadingRandomisation, Order, RegionPerturbation, Score, Summary,
};
use relevance::io::{load_safetensors, Digits};
use relevance::{
    Baseline, Composite, DeepLift, GradientTimesInput, Lrp0, LrpEpsilon, LrpGamma, Method, Network, Target,
};
use std::sync::Arc;
use std::time::Instant;

/// One explanation method: a name and how it explains a batch on a network.
type Explain = Box<dyn Fn(&Network<f32>, &ArrayD<f32>, &Target<f32>) -> relevance::Result<ArrayD<f32>>>;

/// A method through the one entry point.
fn explain(method: Method<f32>) -> Explain {
    Box::new(move |net, x, t| Ok(net.explain(x, t, &method)?.relevance))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let net = Arc::new(load_safetensors::<f32>(
        format!("{dir}/models/digits.json"),
        format!("{dir}/models/digits.safetensors"),
    )?);
    let digits = Digits::load(format!("{dir}/data/digits_test.bin"))?;
    let count: usize = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .map_err(|e| format!("the argument is the number of digits: {e}"))?,
        None => 300,
    };
    let count = count.clamp(1, digits.len());
    // the test digits are sorted by label: take them evenly spaced, every class alike
    let indices: Vec<usize> = (0..count).map(|k| k * digits.len() / count).collect();
    let x = digits.images::<f32>(&indices)?;
    let target = Target::PerSample(indices.iter().map(|&i| digits.labels()[i] as usize).collect());
    let mean_digit = digits.all_images::<f32>().mean_axis(Axis(0)).expect("500 digits");

    let (low, high) = (ArrayD::zeros(vec![]), ArrayD::ones(vec![]));
    let mean = mean_digit.clone();
    let methods: Vec<(&str, Explain)> = vec![
        ("LRP-0", explain(Method::lrp(Lrp0))),
        ("LRP-ε 0.25", explain(Method::lrp(LrpEpsilon::new(0.25)?))),
        ("LRP-γ 0.25", explain(Method::lrp(LrpGamma::new(0.25)?))),
        ("EpsilonPlus", explain(Method::lrp(Composite::epsilon_plus()))),
        (
            "EpsilonPlusFlat",
            explain(Method::lrp(Composite::epsilon_plus_flat())),
        ),
        (
            "EpsilonGammaBox",
            explain(Method::lrp(Composite::epsilon_gamma_box(low, high)?)),
        ),
        (
            "DeepLIFT zero",
            explain(Method::deeplift(DeepLift::rescale(), Baseline::Zero)),
        ),
        (
            "DeepLIFT mean",
            explain(Method::deeplift(DeepLift::rescale(), Baseline::Shared(mean))),
        ),
        ("gradient", explain(Method::Gradient)),
        // as a rule set: starts from the logit, as LRP does (equal to LRP-0 on this ReLU network)
        ("gradient×input", explain(Method::lrp(GradientTimesInput))),
        (
            "random",
            Box::new(|_: &Network<f32>, x: &ArrayD<f32>, _: &Target<f32>| {
                Ok(random_attribution(x.shape(), 42))
            }),
        ),
    ];

    let flipping = RegionPerturbation::<f32>::pixel_flipping();
    println!("pixel flipping on {count} test digits, 784 one-pixel steps, target logit (mean ± 95 % CI)\n");
    println!(
        "{:<16} {:>16} {:>16} {:>16} {:>14} {:>9}",
        "method", "AOPC MoRF", "AOPC LeRF", "ABPC", "ABPC (prob.)", "time"
    );
    let mut curves = Vec::new();
    for (name, explain) in &methods {
        let r = explain(&net, &x, &target)?;
        let start = Instant::now();
        let c = flipping.evaluate(&net, &x, &r, &target)?;
        let took = start.elapsed();
        println!(
            "{name:<16} {:>16} {:>16} {:>16} {:>14} {:>7.0}ms",
            Summary::of(c.aopc(Order::MoRF, Score::Logit))?.to_string(),
            Summary::of(c.aopc(Order::LeRF, Score::Logit))?.to_string(),
            Summary::of(c.abpc(Score::Logit))?.to_string(),
            Summary::of(c.abpc(Score::Probability))?.to_string(),
            took.as_secs_f64() * 1e3
        );
        curves.push((name.to_string(), c));
    }

    println!("\ncascading randomisation (fc2, fc1, conv2, conv1), similarity after the last step (mean ± 95 % CI)\n");
    println!(
        "{:<16} {:>16} {:>16} {:>16}",
        "method", "Spearman |R|", "Spearman R", "SSIM"
    );
    let sanity = CascadingRandomisation::default();
    let mut randomised = Vec::new();
    for (name, explain) in &methods {
        if *name == "random" {
            continue;
        }
        let result = sanity.run(&net, &x, &target, explain)?;
        let last = result.layers.len() - 1;
        println!(
            "{name:<16} {:>16} {:>16} {:>16}",
            Summary::of(result.spearman_abs.row(last).iter().copied())?.to_string(),
            Summary::of(result.spearman.row(last).iter().copied())?.to_string(),
            Summary::of(result.ssim.row(last).iter().copied())?.to_string(),
        );
        randomised.push((name.to_string(), result));
    }

    #[cfg(feature = "plot")]
    {
        let out = std::path::Path::new("out/evaluate");
        std::fs::create_dir_all(out)?;
        let file = out.join("pixel_flipping.png");
        relevance::eval::plot::perturbation_curves(&file, &curves, Score::Logit)?;
        println!("\nwrote {}", file.display());
        let (name, result) = &randomised[1];
        let file = out.join("randomisation.png");
        relevance::eval::plot::randomisation(&file, name, result, &x, 4)?;
        println!("wrote {}", file.display());
    }
    #[cfg(not(feature = "plot"))]
    {
        let _ = (&curves, &randomised);
        println!("\n(run with --features plot to draw the curves and the randomisation result)");
    }
    Ok(())
}
