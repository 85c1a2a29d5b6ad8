//! Criterion benches of a ViT-B/16-shaped vision transformer (torchvision's `vit_b_16`:
//! 224×224 input, 16×16 patches, 12 blocks of width 768 with 12 heads, MLP 3072): forward,
//! AttnLRP, CP-LRP and DeepLIFT (zero baseline) at batch 1 and 8, float32.
//!
//! `cargo bench -p relevance-benches --bench transformer` (a few minutes);
//! `tools/bench_transformers.py` runs it next to PyTorch, lxt's efficient mode and captum on
//! the same architecture and prints the ratios.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::ArrayD;
use relevance::{AttnLrp, Baseline, CpLrp, DeepLift, Method, Network, Target};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use relevance_benches as common;

fn vit_b16() -> Network<f32> {
    common::vit(224, 16, 768, 12, 12, 3072, 1000)
}

fn bench(c: &mut Criterion, batch: usize) {
    static NET: OnceLock<Network<f32>> = OnceLock::new();
    let net = || NET.get_or_init(vit_b16);
    let inputs: OnceLock<Vec<ArrayD<f32>>> = OnceLock::new();
    // four different inputs cycled, so that no call repeats the last
    let xs = || inputs.get_or_init(|| (0..4).map(|s| common::input(net(), batch, 7 + s)).collect());
    let mut group = c.benchmark_group(format!("vit_b16_b{batch}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(if batch == 1 { 15 } else { 40 }))
        .warm_up_time(Duration::from_secs(3));
    let target = Target::Class(3);
    let methods: Vec<(&str, Method<f32>)> = vec![
        ("attn_lrp", Method::lrp(AttnLrp::default())),
        ("cp_lrp", Method::lrp(CpLrp::default())),
        ("deeplift", Method::deeplift(DeepLift::rescale(), Baseline::Zero)),
    ];
    let mut k = 0usize;
    group.bench_function(BenchmarkId::new("forward", batch), |b| {
        b.iter(|| {
            k += 1;
            black_box(net().forward(&xs()[k % 4]).unwrap())
        })
    });
    for (name, method) in &methods {
        group.bench_function(BenchmarkId::new(*name, batch), |b| {
            b.iter(|| {
                k += 1;
                black_box(net().explain(&xs()[k % 4], &target, method).unwrap())
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench(c, 1);
    bench(c, 8);
}

criterion_group!(transformer, benches);
criterion_main!(transformer);
