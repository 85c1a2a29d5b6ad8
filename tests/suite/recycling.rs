//! Recycled output buffers (see `relevance::release_buffers`) hold the values of an earlier
//! call: every layer must overwrite them in full. A call that reuses another call's buffers
//! must give the same bits as one on fresh memory, and a second call does reuse them.

use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use relevance::{
    buffer_stats, release_buffers, Baseline, Composite, Conv2d, Conv2dConfig, DeepLift, Dense, Flatten,
    Layer, LrpEpsilon, MaxPool2d, Network, Relu, Target,
};

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Activations of at least 2^16 elements (the recycled size) through both convolution
/// paths (Winograd: 16→16 channels on 64×64; im2col: 4→16, and a strided one), ReLU,
/// max-pool and a dense layer.
fn network() -> Network<f32> {
    let conv = |c: usize, o: usize, stride: usize, seed: u64| -> Box<dyn Layer<f32>> {
        let w = Array4::from_shape_vec((o, c, 3, 3), values(o * c * 9, seed)).unwrap();
        let b = Array1::from_vec(values(o, seed + 100));
        Box::new(Conv2d::new(w, Some(b), Conv2dConfig::default().padding(1).stride(stride)).unwrap())
    };
    let dense = Array2::from_shape_vec((5, 16 * 16 * 16), values(5 * 4096, 9)).unwrap();
    Network::new(
        &[4, 64, 64],
        vec![
            conv(4, 16, 1, 1),
            Box::new(Relu),
            conv(16, 16, 1, 2),
            Box::new(Relu),
            Box::new(MaxPool2d::square(2).unwrap()),
            conv(16, 16, 2, 3),
            Box::new(Relu),
            Box::new(Flatten),
            Box::new(Dense::new(dense, Some(Array1::from_vec(values(5, 10)))).unwrap()),
        ],
    )
    .unwrap()
}

fn input(seed: u64) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(&[2, 4, 64, 64]), values(2 * 4 * 64 * 64, seed)).unwrap()
}

/// Results of every entry point on `x`.
type Results = (ArrayD<f32>, ArrayD<f32>, ArrayD<f32>, ArrayD<f32>, ArrayD<f32>);

/// The forward pass, LRP-ε, ε-γ-box, the gradient and DeepLIFT on `x`.
fn run(net: &Network<f32>, x: &ArrayD<f32>) -> Results {
    let egb = Composite::epsilon_gamma_box(
        ArrayD::from_elem(IxDyn(&[4, 1, 1]), -0.5),
        ArrayD::from_elem(IxDyn(&[4, 1, 1]), 0.5),
    )
    .unwrap();
    let t = Target::Class(2);
    (
        net.forward(x).unwrap(),
        net.attribute(x, &t, &LrpEpsilon::default()).unwrap().relevance,
        net.attribute(x, &t, &egb).unwrap().relevance,
        net.gradient(x, &t).unwrap(),
        net.deeplift(x, &t, &DeepLift::rescale(), &Baseline::Zero)
            .unwrap()
            .attribution,
    )
}

#[test]
fn reused_buffers_give_the_same_bits_as_fresh_memory() {
    let net = network();
    let (x1, x2) = (input(20), input(21));
    let run = |x: &ArrayD<f32>| run(&net, x);
    release_buffers();
    let fresh = run(&x2);
    // fill the buffers with another input's activations, then reuse them
    for _ in 0..2 {
        run(&x1);
        let reused = run(&x2);
        assert_eq!(fresh, reused);
    }
    release_buffers();
    assert_eq!(fresh, run(&x2));
}

/// Set in the child process that [`a_second_call_reuses_the_first_calls_buffers`] starts.
const CHILD: &str = "RELEVANCE_RECYCLING_CHILD";

/// The pool is process-wide and the other tests of this binary run beside this one, taking
/// and recycling buffers of their own; so this test runs itself again in a child process,
/// alone (`--exact`, one thread), where the pool's counters count its calls only.
#[test]
fn a_second_call_reuses_the_first_calls_buffers() {
    let name = "recycling::a_second_call_reuses_the_first_calls_buffers";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "child failed:\n{text}");
        // the child ran this test (a filter matching nothing would pass too)
        assert!(text.contains("1 passed"), "child ran no test:\n{text}");
        println!("{text}");
        return;
    }
    let net = network();
    let x = input(30);
    release_buffers();
    let start = buffer_stats();
    assert_eq!(start.held_bytes, 0);
    let first = run(&net, &x);
    let warm = buffer_stats();
    assert!(warm.kept > start.kept, "the first call kept no buffer: {warm:?}");
    assert!(warm.held_bytes > 0);
    let second = run(&net, &x);
    let end = buffer_stats();
    let (within, reused) = (warm.reused - start.reused, end.reused - warm.reused);
    println!(
        "first call: {} kept, {within} reused; second call: {reused} reused",
        warm.kept - start.kept
    );
    // the first call could reuse only what it recycled itself (the pool started empty);
    // the second also takes what the first left
    assert!(
        reused > within,
        "the second call reused {reused} buffers, the first {within}"
    );
    assert_eq!(first, second);
    // each entry point on its own reuses what the one before left
    let calls: [(&str, &dyn Fn() -> bool); 4] = [
        ("forward", &|| net.forward(&x).is_ok()),
        ("attribute", &|| {
            net.attribute(&x, &Target::Class(2), &LrpEpsilon::default())
                .is_ok()
        }),
        ("gradient", &|| net.gradient(&x, &Target::Class(2)).is_ok()),
        ("deeplift", &|| {
            net.deeplift(&x, &Target::Class(2), &DeepLift::rescale(), &Baseline::Zero)
                .is_ok()
        }),
    ];
    for (what, call) in calls {
        let before = buffer_stats().reused;
        assert!(call());
        let n = buffer_stats().reused - before;
        println!("{what}: {n} reused");
        assert!(n > 0, "{what} reused no buffer");
    }
    release_buffers();
    assert_eq!(buffer_stats().held_bytes, 0);
}
