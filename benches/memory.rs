//! Peak memory of one VGG16 call (forward, LRP-ε, EpsilonGammaBox, DeepLift), as the speed
//! issue measures it: the process's peak resident set while the call runs (weights
//! included), against the weights plus the recorded activations.
//!
//! Linux only (reads and resets the peak through `/proc/self`); elsewhere it prints nothing.
//! `cargo bench -p relevance-benches --bench memory`; `tools/bench_compare.py` runs it next to the Python peaks.

use relevance::{Baseline, Composite, DeepLift, LrpEpsilon, Target};

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
    let net = common::vgg16();
    let x = common::input(&net, 1, 7);
    let weights: usize = net
        .nodes()
        .iter()
        .filter_map(|n| n.affine())
        .map(|a| a.weight().len() + a.bias().map_or(0, |b| b.len()))
        .sum();
    let activations: usize = net.shapes().iter().map(|s| s.iter().product::<usize>()).sum();
    let (wgb, agb) = (weights as f64 * 4e-9, activations as f64 * 4e-9);
    println!("vgg16_b1 weights {wgb:.3} GB, activations (one trace) {agb:.3} GB");
    let (low, high) = common::bounds(3);
    let egb = Composite::epsilon_gamma_box(low, high).unwrap();
    let target = Target::Class(3);
    type Call<'a> = Box<dyn Fn() + 'a>;
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
    for (name, traces, call) in calls {
        // reset the peak to the current resident set ("5": clear the high-water mark)
        if std::fs::write("/proc/self/clear_refs", "5").is_err() {
            eprintln!("memory bench: cannot reset the peak, skipped");
            return;
        }
        call();
        let peak = status_gb("VmHWM:").unwrap_or(f64::NAN);
        let base = wgb + traces as f64 * agb;
        println!(
            "vgg16_b1/{name}: peak {peak:.3} GB = {:.2} × (weights + {traces} recorded trace(s))",
            peak / base
        );
    }
}
