//! Peak memory of one VGG16 or ResNet-50 call (forward, LRP-ε, EpsilonGammaBox, the same with
//! the rule-modified weights kept (`Network::keep_rule_weights`), DeepLift) and one
//! ViT-B/16 call at batch 1 and 8 (forward, AttnLRP, CP-LRP, DeepLift), as the speed issues
//! measure it: the process's peak resident set while the call runs (weights included),
//! against the weights plus the recorded activations. Each call runs in a process of its
//! own (this binary again, with `RELEVANCE_MEMORY_CASE=model/call`), so that what one call
//! leaves behind (the allocator's retained heap, recycled buffers) does not count in the
//! next one's peak.
//!
//! Linux only (reads and resets the peak through `/proc/self`); elsewhere it prints nothing.
//! `cargo bench -p relevance-benches --bench memory`; `tools/bench_compare.py` runs it next to the Python peaks.

use relevance::{AttnLrp, Baseline, Composite, CpLrp, DeepLift, LrpEpsilon, Network, Target};

use relevance_benches as common;

/// A `/proc/self/status` field in GB.
fn status_gb(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1e6)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` (criterion convention): nothing to list
    }
    if status_gb("VmHWM:").is_none() {
        eprintln!("memory bench: /proc/self/status not available, skipped");
        return;
    }
    if let Ok(case) = std::env::var("RELEVANCE_MEMORY_CASE") {
        run_case(&case);
        return;
    }
    let Ok(me) = std::env::current_exe() else {
        eprintln!("memory bench: cannot find its own executable, skipped");
        return;
    };
    for model in ["vgg16_b1", "resnet50_b1", "vit_b16_b1", "vit_b16_b8"] {
        let calls: &[&str] = if !model.starts_with("vit") {
            &[
                "forward",
                "epsilon",
                "epsilon_gamma_box",
                "epsilon_gamma_box_kept",
                "deeplift",
            ]
        } else {
            &["forward", "attn_lrp", "cp_lrp", "deeplift"]
        };
        for call in calls {
            match std::process::Command::new(&me)
                .env("RELEVANCE_MEMORY_CASE", format!("{model}/{call}"))
                .output()
            {
                Ok(o) => print!("{}", String::from_utf8_lossy(&o.stdout)),
                Err(e) => eprintln!("memory bench: {model}/{call}: {e}"),
            }
        }
    }
}

/// One call of one model, `model/call`, measured in this process.
fn run_case(case: &str) {
    let Some((model, only)) = case.split_once('/') else {
        return;
    };
    if model == "vgg16_b1" || model == "resnet50_b1" {
        let net = if model == "vgg16_b1" {
            common::vgg16()
        } else {
            common::resnet50()
        };
        let x = common::input(&net, 1, 7);
        let (low, high) = common::bounds(3);
        let egb = Composite::epsilon_gamma_box(low, high).unwrap();
        let target = Target::Class(3);
        let calls: Vec<(&str, usize, Call)> = vec![
            ("forward", 0, Box::new(|| drop(net.forward(&x).unwrap()))),
            (
                "epsilon",
                1,
                Box::new(|| drop(net.attribute(&x, &target, &LrpEpsilon::default()).unwrap())),
            ),
            (
                "epsilon_gamma_box",
                1,
                Box::new(|| drop(net.attribute(&x, &target, &egb).unwrap())),
            ),
            // the first call with the rule-modified weights kept (`keep_rule_weights`): it
            // makes them, and they stay
            (
                "epsilon_gamma_box_kept",
                1,
                Box::new(|| {
                    net.keep_rule_weights(true);
                    drop(net.attribute(&x, &target, &egb).unwrap());
                    println!(
                        "  kept rule weights {:.3} GB",
                        net.kept_weight_bytes() as f64 * 1e-9
                    );
                }),
            ),
            (
                "deeplift",
                2,
                Box::new(|| {
                    drop(
                        net.deeplift(&x, &target, &DeepLift::rescale(), &Baseline::Zero)
                            .unwrap(),
                    )
                }),
            ),
        ];
        measure(model, &net, 1, calls, only);
        return;
    }
    // torchvision's vit_b_16 architecture (issue #21: ≤ 1.3 × weights + activations)
    let net = common::vit(224, 16, 768, 12, 12, 3072, 1000);
    for batch in [1, 8] {
        if model != format!("vit_b16_b{batch}") {
            continue;
        }
        let x = common::input(&net, batch, 7);
        let target = Target::Class(3);
        let calls: Vec<(&str, usize, Call)> = vec![
            ("forward", 0, Box::new(|| drop(net.forward(&x).unwrap()))),
            (
                "attn_lrp",
                1,
                Box::new(|| drop(net.attribute(&x, &target, &AttnLrp::default()).unwrap())),
            ),
            (
                "cp_lrp",
                1,
                Box::new(|| drop(net.attribute(&x, &target, &CpLrp::default()).unwrap())),
            ),
            (
                "deeplift",
                2,
                Box::new(|| {
                    drop(
                        net.deeplift(&x, &target, &DeepLift::rescale(), &Baseline::Zero)
                            .unwrap(),
                    )
                }),
            ),
        ];
        measure(model, &net, batch, calls, only);
    }
}

type Call<'a> = Box<dyn Fn() + 'a>;

/// Runs the call named `only` after resetting the peak resident set, and prints the peak
/// against the weights plus `traces` recorded forward passes of `batch` samples.
fn measure(label: &str, net: &Network<f32>, batch: usize, calls: Vec<(&str, usize, Call)>, only: &str) {
    let weights: usize = net
        .nodes()
        .iter()
        .filter_map(|n| n.affine())
        .map(|a| a.weight().len() + a.bias().map_or(0, |b| b.len()))
        .sum();
    let activations: usize = net
        .shapes()
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum::<usize>()
        * batch;
    let (wgb, agb) = (weights as f64 * 4e-9, activations as f64 * 4e-9);
    for (name, traces, call) in calls.into_iter().filter(|c| c.0 == only) {
        println!("{label} weights {wgb:.3} GB, activations (one trace) {agb:.3} GB");
        // reset the peak to the current resident set ("5": clear the high-water mark)
        if std::fs::write("/proc/self/clear_refs", "5").is_err() {
            eprintln!("memory bench: cannot reset the peak, skipped");
            return;
        }
        call();
        let peak = status_gb("VmHWM:").unwrap_or(f64::NAN);
        let base = wgb + traces as f64 * agb;
        println!(
            "{label}/{name}: peak {peak:.3} GB = {:.2} × (weights + {traces} recorded trace(s))",
            peak / base
        );
    }
}
