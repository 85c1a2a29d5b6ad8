//! Peak memory of loading hostile files, measured by a counting allocator (per thread, so
//! that the tests running beside it do not count), against the resource policy in the
//! README: decoding an ONNX file allocates at most `DECODE_FACTOR` (8) × its size + 64 MiB
//! before any check fails, and the layers' weights together hold at most what the file
//! stores (half its tensor bytes in values) + 2²⁴ values.

use relevance::io::from_onnx;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = CURRENT.try_with(|c| {
        let v = c.get() + delta;
        c.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most bytes it held allocated at once on this
/// thread.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get) - start;
    (out, peak.max(0) as usize)
}

/// A protobuf length-delimited field.
fn field(number: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = payload.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(payload);
    out
}

/// A model whose graph (field 7) holds `inner` repeated `n` times.
fn model_with_graph_of(inner: &[u8], n: usize) -> Vec<u8> {
    let graph = inner.repeat(n);
    field(7, &graph)
}

const MIB: usize = 1 << 20;

#[test]
fn amplification_shaped_onnx_files_are_refused_within_the_budget() {
    let empty_node = field(1, &[]); // graph.node: an empty NodeProto, 2 bytes
    let empty_initializer = field(5, &[]); // graph.initializer: an empty TensorProto
                                           // a node of many empty attributes, and a node of many empty input names
    let node_of = |inner: &[u8], n: usize| field(1, &inner.repeat(n));
    // (what, bytes, refused before decoding)
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("empty nodes", model_with_graph_of(&empty_node, 2 << 20), true),
        (
            "40 MB of empty nodes",
            model_with_graph_of(&empty_node, 20 << 20),
            true,
        ),
        (
            "empty initializers",
            model_with_graph_of(&empty_initializer, 2 << 20),
            true,
        ),
        (
            "empty attributes",
            model_with_graph_of(&node_of(&field(5, &[]), 2 << 20), 1),
            true,
        ),
        // 24 bytes per empty name: decoded, within the policy
        (
            "empty input names",
            model_with_graph_of(&node_of(&field(1, &[]), 2 << 20), 1),
            false,
        ),
    ];
    for (what, bytes, early) in cases {
        assert!(bytes.len() >= 4 * MIB, "{what}: {} bytes", bytes.len());
        let (result, peak) = peak_during(|| from_onnx::<f32>(&bytes));
        let err = result.unwrap_err();
        if early {
            assert!(err.to_string().contains("would take"), "{what}: {err}");
            // refused before decoding: nothing near the file's size was allocated
            assert!(peak < MIB, "{what}: {peak} bytes at peak");
        }
        assert!(peak <= 8 * bytes.len() + 64 * MIB, "{what}: {peak} bytes at peak");
        println!("{what}: {} bytes, {peak} bytes at peak: {err}", bytes.len());
    }
}

#[test]
fn loading_a_real_model_stays_within_the_policy() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/onnx/exported/resnet_torchscript.onnx"
    );
    let bytes = std::fs::read(path).unwrap();
    let (net, peak) = peak_during(|| from_onnx::<f32>(&bytes).unwrap());
    assert!(net.nodes().len() > 10);
    // decoded model + weights (a few copies while layers are built and merged)
    let bound = 8 * bytes.len() + 64 * MIB;
    assert!(
        peak < bound,
        "{peak} bytes at peak for a {} byte file",
        bytes.len()
    );
    println!(
        "resnet_torchscript.onnx: {} bytes, {peak} bytes at peak",
        bytes.len()
    );
}
