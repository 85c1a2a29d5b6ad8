//! DeepLIFT-SHAP with hypothetical contributions on bpnet-lite's BPNet count head, as
//! genomics runs it: one sequence against 20 references (`genomics::deep_lift_shap`), f32.
//!
//! `cargo bench -p relevance-benches --bench genomics` runs the small BPNet (64 filters,
//! 1 000 bp) and the ChromBPNet-sized one (512 filters, 8 dilated layers, 2 114 bp in, which
//! takes a few minutes); `-- small` only the first. `tools/bench_genomics.py` runs tangermeme
//! on the same shapes and prints the ratio table.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{ArrayD, Axis};
use relevance::genomics::deep_lift_shap;
use relevance::{Network, Target};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use relevance_benches as common;

/// References per sequence (tangermeme's default `n_shuffles`).
const REFERENCES: usize = 20;

fn bench(c: &mut Criterion, name: &str, make: fn() -> Network<f32>, length: usize) {
    let state: OnceLock<(Network<f32>, ArrayD<f32>, ArrayD<f32>)> = OnceLock::new();
    let get = || {
        state.get_or_init(|| {
            let net = make();
            let x = common::one_hot(1, length, 5);
            let refs = common::one_hot(REFERENCES, length, 6).insert_axis(Axis(0));
            (net, x, refs)
        })
    };
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(if length > 2000 { 60 } else { 10 }));
    group.bench_function("deep_lift_shap_20_refs", |b| {
        let (net, x, refs) = get();
        b.iter(|| black_box(deep_lift_shap(net, x, refs, &Target::Class(0)).unwrap()))
    });
    group.bench_function("forward", |b| {
        let (net, x, _) = get();
        b.iter(|| black_box(net.forward(x).unwrap()))
    });
    group.finish();
}

fn small(c: &mut Criterion) {
    bench(c, "bpnet_small", || common::bpnet(64, 8, 1000, 346), 1000);
}

fn chrombpnet(c: &mut Criterion) {
    bench(c, "bpnet_chrombpnet", || common::bpnet(512, 8, 2114, 557), 2114);
}

criterion_group!(benches, small, chrombpnet);
criterion_main!(benches);
