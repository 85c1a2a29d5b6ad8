//! Criterion bench of the faithfulness evaluation on the bundled digits model: pixel flipping
//! of 100 test digits (784 one-pixel steps to black, gradient × input attributions), one
//! order (the work of Quantus' `PixelFlipping`) and both orders; and one order with seeded
//! uniform noise as the perturbation, which changes every flipped pixel (a step whose pixel
//! is already black changes nothing under the black perturbation).
//!
//! `cargo bench -p relevance-benches --bench eval`; `tools/bench_eval_quantus.py` times Quantus on the same work.

use criterion::{criterion_group, criterion_main, Criterion};
use relevance::eval::{Order, Perturbation, RegionPerturbation};
use relevance::io::{load_safetensors, Digits};
use relevance::{GradientTimesInput, Target};
use std::hint::black_box;
use std::time::Duration;

fn pixel_flipping(c: &mut Criterion) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let net = load_safetensors::<f32>(
        format!("{root}/models/digits.json"),
        format!("{root}/models/digits.safetensors"),
    )
    .expect("the bundled model loads");
    let digits = Digits::load(format!("{root}/data/digits_test.bin")).expect("the bundled digits load");
    let idx: Vec<usize> = (0..100).map(|k| k * digits.len() / 100).collect();
    let x = digits.images::<f32>(&idx).expect("indices in range");
    let target = Target::PerSample(idx.iter().map(|&i| usize::from(digits.labels()[i])).collect());
    let r = net
        .attribute(&x, &target, &GradientTimesInput)
        .expect("gradient × input")
        .relevance;
    let flipping = RegionPerturbation::<f32>::pixel_flipping();
    let mut group = c.benchmark_group("pixel_flipping_100_digits");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    group.bench_function("morf", |b| {
        b.iter(|| {
            black_box(
                flipping
                    .evaluate_order(&net, &x, &r, &target, Order::MoRF)
                    .unwrap(),
            )
        })
    });
    group.bench_function("morf_and_lerf", |b| {
        b.iter(|| black_box(flipping.evaluate(&net, &x, &r, &target).unwrap()))
    });
    let mut noise = RegionPerturbation::<f32>::pixel_flipping();
    noise.perturbation = Perturbation::Uniform {
        low: 0.0,
        high: 1.0,
        seed: 7,
    };
    group.bench_function("morf_noise", |b| {
        b.iter(|| black_box(noise.evaluate_order(&net, &x, &r, &target, Order::MoRF).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, pixel_flipping);
criterion_main!(benches);
