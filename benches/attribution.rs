//! Criterion benches: forward, gradient, every LRP rule, EpsilonGammaBox and DeepLift (zero
//! baseline, whose trace the network keeps after the first call; and an explicit zero
//! array, traced on every call) on the small CNN
//! (batch 1 and 64), the VGG16-shaped network (batch 1) and the ResNet-18- and ResNet-50-shaped
//! graphs (ResNet-18 at batch 1, 8 and 16, ResNet-50 at 1 and 8; batch norms merged as zennit's
//! `ResNetCanonizer` does). Every call takes the next of four different inputs, so that no
//! call repeats the last one.
//!
//! `cargo bench -p relevance-benches --bench attribution` runs them all (the VGG16 group takes a few minutes);
//! `cargo bench -p relevance-benches --bench attribution -- small` only the small CNN, `-- resnet18` (`-- resnet50`) a ResNet. `tools/bench_compare.py`
//! runs them next to zennit and captum and prints the ratio table.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::ArrayD;
use relevance::{Baseline, DeepLift, Method, MethodName, Network, Target};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use relevance_benches as common;

/// The LRP methods by the library's names (bench ids with `_` for `-`).
fn rules(channels: usize) -> Vec<(String, Method<f32>)> {
    let bounds = common::bounds(channels);
    [
        "lrp0",
        "epsilon",
        "gamma",
        "alpha2beta1",
        "zplus",
        "flat",
        "wsquare",
        "epsilon-gamma-box",
    ]
    .into_iter()
    .map(|name| {
        let parsed: MethodName = name.parse().unwrap();
        (
            name.replace('-', "_"),
            parsed.method(Some(bounds.clone()), Baseline::Zero).unwrap(),
        )
    })
    .collect()
}

/// Four inputs, taken in turn.
struct Inputs {
    xs: Vec<ArrayD<f32>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Inputs {
    fn next(&self) -> &ArrayD<f32> {
        let k = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.xs[k % self.xs.len()]
    }
}

/// Benches one network at one batch size. The network is built lazily, on the first bench
/// that the command-line filter selects, so filtering out VGG16 also skips building it.
fn bench_network(c: &mut Criterion, name: &str, make: fn() -> Network<f32>, batch: usize, all_rules: bool) {
    let state: OnceLock<(Network<f32>, Inputs)> = OnceLock::new();
    let get = || {
        state.get_or_init(|| {
            let net = make();
            let xs = (7..11).map(|seed| common::input(&net, batch, seed)).collect();
            (
                net,
                Inputs {
                    xs,
                    next: Default::default(),
                },
            )
        })
    };
    let target = Target::Class(3);
    let mut group = c.benchmark_group(format!("{name}_b{batch}"));
    if name == "vgg16" || name.starts_with("resnet") {
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(20))
            .warm_up_time(Duration::from_secs(2));
    }
    group.bench_function("forward", |b| {
        let (net, xs) = get();
        b.iter(|| black_box(net.forward(xs.next()).unwrap()))
    });
    group.bench_function("gradient", |b| {
        let (net, xs) = get();
        b.iter(|| black_box(net.gradient(xs.next(), &target).unwrap()))
    });
    let channels = if name == "small" { 1 } else { 3 };
    for (rule_name, rule) in rules(channels) {
        if !all_rules && !matches!(rule_name.as_str(), "epsilon" | "epsilon_gamma_box") {
            continue;
        }
        group.bench_with_input(BenchmarkId::new("attribute", &rule_name), &rule, |b, method| {
            let (net, xs) = get();
            b.iter(|| black_box(net.explain(xs.next(), &target, method).unwrap()))
        });
    }
    // The same EpsilonGammaBox with the rule-modified weights kept between calls
    // (`Network::keep_rule_weights`), off again for the rows after it.
    if name != "small" {
        let (_, egb) = rules(channels).pop().expect("epsilon-gamma-box is the last rule");
        group.bench_with_input(
            BenchmarkId::new("attribute", "epsilon_gamma_box_kept"),
            &egb,
            |b, method| {
                let (net, xs) = get();
                net.keep_rule_weights(true);
                b.iter(|| black_box(net.explain(xs.next(), &target, method).unwrap()));
                net.keep_rule_weights(false);
            },
        );
    }
    for (name, rule) in [("rescale", DeepLift::rescale()), ("default", DeepLift::default())] {
        if !all_rules && name != "rescale" {
            continue;
        }
        group.bench_function(BenchmarkId::new("deeplift", name), |b| {
            let (net, xs) = get();
            let method = Method::deeplift(rule, Baseline::Zero);
            b.iter(|| black_box(net.explain(xs.next(), &target, &method).unwrap()))
        });
    }
    // The network keeps the zero baseline's trace after the first call, so the rows above
    // measure later calls. An explicit zero array (`Baseline::Shared`) is traced on every
    // call: this row is the cost of a first call, or of a baseline that is not reused.
    group.bench_function(BenchmarkId::new("deeplift", "rescale_untraced"), |b| {
        let (net, xs) = get();
        let zeros = Method::deeplift(
            DeepLift::rescale(),
            Baseline::Shared(ArrayD::zeros(net.input_shape())),
        );
        b.iter(|| black_box(net.explain(xs.next(), &target, &zeros).unwrap()))
    });
    group.finish();
}

fn small(c: &mut Criterion) {
    bench_network(c, "small", common::small_cnn, 1, true);
    bench_network(c, "small", common::small_cnn, 64, true);
}

fn vgg(c: &mut Criterion) {
    bench_network(c, "vgg16", common::vgg16, 1, false);
}

fn resnet(c: &mut Criterion) {
    bench_network(c, "resnet18", common::resnet18, 1, false);
    bench_network(c, "resnet18", common::resnet18, 8, false);
    bench_network(c, "resnet18", common::resnet18, 16, false);
    bench_network(c, "resnet50", common::resnet50, 1, false);
    bench_network(c, "resnet50", common::resnet50, 8, false);
}

criterion_group!(benches, small, vgg, resnet);
criterion_main!(benches);
