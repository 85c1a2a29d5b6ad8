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
    let (out, peak, _) = peak_and_kept(f);
    (out, peak)
}

/// Runs `f` and returns its result, the most bytes it held allocated at once on this thread
/// and the bytes still allocated when it returned (what the result holds).
pub fn peak_and_kept<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get) - start;
    let kept = CURRENT.with(Cell::get) - start;
    (out, peak.max(0) as usize, kept.max(0) as usize)
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

/// A protobuf varint field.
fn varint_field(number: u32, v: u64) -> Vec<u8> {
    let mut out = varint(u64::from(number) << 3);
    out.extend(varint(v));
    out
}

/// `v` as a protobuf varint.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A length-delimited field of any number.
fn bytes_field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = varint((u64::from(number) << 3) | 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

/// A `NodeProto`: inputs, one output, a name, an operator and integer attributes.
fn onnx_node(name: &str, op: &str, inputs: &[&str], output: &str, ints: &[(&str, i64)]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        n.extend(bytes_field(1, i.as_bytes()));
    }
    n.extend(bytes_field(2, output.as_bytes()));
    if !name.is_empty() {
        n.extend(bytes_field(3, name.as_bytes()));
    }
    n.extend(bytes_field(4, op.as_bytes()));
    for (a, v) in ints {
        let mut attr = bytes_field(1, a.as_bytes());
        attr.extend(varint_field(3, *v as u64));
        attr.extend(varint_field(20, 2)); // INT
        n.extend(bytes_field(5, &attr));
    }
    bytes_field(1, &n)
}

/// A `ValueInfoProto` of a float tensor `[batch, dims...]` (`graph` field `number`).
fn onnx_value_info(number: u32, name: &str, dims: &[i64]) -> Vec<u8> {
    let mut shape = bytes_field(1, &bytes_field(2, b"batch"));
    for &d in dims {
        shape.extend(bytes_field(1, &varint_field(1, d as u64)));
    }
    let mut tensor = varint_field(1, 1);
    tensor.extend(bytes_field(2, &shape));
    let mut info = bytes_field(1, name.as_bytes());
    info.extend(bytes_field(2, &bytes_field(1, &tensor)));
    bytes_field(number, &info)
}

/// A float32 initializer.
fn onnx_initializer(name: &str, dims: &[i64], values: &[f32]) -> Vec<u8> {
    let mut packed = Vec::new();
    for &d in dims {
        packed.extend(varint(d as u64));
    }
    let mut t = bytes_field(1, &packed);
    t.extend(varint_field(2, 1)); // FLOAT
    t.extend(bytes_field(8, name.as_bytes()));
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.extend(bytes_field(9, &raw));
    bytes_field(5, &t)
}

/// A model (opset 17) of the given graph nodes and initializers, input `x` `[batch,
/// input...]` and output `y`.
fn onnx_model(input: &[i64], nodes: &[Vec<u8>], initializers: &[Vec<u8>]) -> Vec<u8> {
    let mut graph: Vec<u8> = nodes.concat();
    graph.extend(initializers.concat());
    graph.extend(onnx_value_info(11, "x", input));
    graph.extend(onnx_value_info(12, "y", &[]));
    let mut model = varint_field(1, 8);
    let mut opset = bytes_field(1, b"");
    opset.extend(varint_field(2, 17));
    model.extend(bytes_field(8, &opset));
    model.extend(bytes_field(7, &graph));
    model
}

/// A chain of `n` nodes `op` from `x` to `y`, each reading the one before and `extra`.
fn chain(n: usize, op: &str, extra: &[&str], ints: &[(&str, i64)]) -> Vec<Vec<u8>> {
    (0..n)
        .map(|k| {
            let input = if k == 0 { "x".to_string() } else { format!("h{k}") };
            let output = if k + 1 == n {
                "y".to_string()
            } else {
                format!("h{}", k + 1)
            };
            let mut inputs = vec![input.as_str()];
            inputs.extend_from_slice(extra);
            onnx_node("", op, &inputs, &output, ints)
        })
        .collect()
}

/// Loading a file of 100 000 ReLU nodes (2.4 MB) takes at most 8 × its size + 64 MiB, and
/// the network keeps a few hundred bytes per node (it took 1.1 KiB per node at peak and
/// kept 234 bytes per node before the node layout was made compact).
#[test]
fn loading_100_000_relu_nodes_stays_within_the_policy() {
    let n = 100_000;
    let bytes = onnx_model(&[4], &chain(n, "Relu", &[], &[]), &[]);
    let (net, peak, kept) = peak_and_kept(|| from_onnx::<f32>(&bytes).unwrap());
    assert_eq!(net.nodes().len(), n);
    let bound = 8 * bytes.len() + 64 * MIB;
    println!(
        "{n} ReLU nodes: {} bytes, {peak} bytes at peak ({} per node), {kept} kept ({} per node)",
        bytes.len(),
        peak / n,
        kept / n
    );
    assert!(peak <= bound, "{peak} bytes at peak, bound {bound}");
    assert!(kept <= 200 * n, "the network keeps {kept} bytes");
}

/// One 64×64 weight read by 4 000 dense layers is stored once: loading takes at most 8 ×
/// the file's size + 64 MiB, and far less than copies into each layer would (64 MiB).
#[test]
fn a_weight_shared_by_4000_nodes_is_stored_once() {
    let (n, nodes) = (64, 4000);
    let w: Vec<f32> = (0..n * n)
        .map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    let graph = chain(nodes, "Gemm", &["W"], &[("transB", 1)]);
    let bytes = onnx_model(
        &[n as i64],
        &graph,
        &[onnx_initializer("W", &[n as i64, n as i64], &w)],
    );
    let (net, peak, kept) = peak_and_kept(|| from_onnx::<f32>(&bytes).unwrap());
    assert_eq!(net.nodes().len(), nodes);
    println!(
        "{nodes} nodes sharing a 16 KiB weight: {} bytes, {peak} bytes at peak, {kept} kept",
        bytes.len()
    );
    assert!(peak <= 8 * bytes.len() + 64 * MIB, "{peak} bytes at peak");
    let copies = nodes * n * n * 4;
    assert!(
        peak < copies / 4,
        "{peak} bytes at peak; copies would take {copies}"
    );
    assert!(kept < copies / 16, "the network keeps {kept} bytes");
}
