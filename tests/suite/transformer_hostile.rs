//! Hostile input for the transformer paths (issue #21): bad token ids given to the tiny
//! BERT, and copies of the tiny BERT and ViT ONNX files edited by hand (a graph input of
//! another type, an embedding table that declares more rows than its data holds, a Softmax
//! or LayerNormalization with a bad attribute, a MatMul of mismatched shapes). Each must be
//! a typed error naming what was wrong and where; none may panic.
//!
//! The files are edited with a protobuf walker that keeps every field it does not touch
//! (the crate's own prost types decode only the fields the importer reads, so re-encoding
//! through them would drop the rest).

use ndarray::{Array2, ArrayD, IxDyn};
use relevance::io::{from_onnx, load_onnx};
use relevance::{AttnLrp, Error, MatMul, Merge, Network, Target};

fn fixture(file: &str) -> String {
    format!(
        "{}/tests/fixtures/transformers/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn bytes(file: &str) -> Vec<u8> {
    std::fs::read(fixture(file)).unwrap()
}

const BERT: &str = "tiny_bert.f32.onnx";
const VIT: &str = "tiny_vit.f32.onnx";
const WORDS: &str = "/embeddings/word_embeddings/Gather";

/// The first fixture sentence (vocabulary 20, 6 tokens), as the network's float ids.
fn ids(rows: usize) -> ArrayD<f32> {
    const IDS: [f32; 6] = [3.0, 13.0, 16.0, 4.0, 13.0, 0.0];
    Array2::from_shape_fn((rows, 6), |(_, t)| IDS[t]).into_dyn()
}

// ---------------------------------------------------------------------------------------
// A protobuf message as its fields in order, each kept as it was read.

#[derive(Clone, Debug)]
enum Value {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

type Message = Vec<(u32, Value)>;

fn read_varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

fn parse(b: &[u8]) -> Message {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let key = read_varint(b, &mut i);
        let value = match key & 7 {
            0 => Value::Varint(read_varint(b, &mut i)),
            1 => {
                i += 8;
                Value::Fixed64(b[i - 8..i].try_into().unwrap())
            }
            2 => {
                let len = read_varint(b, &mut i) as usize;
                i += len;
                Value::Bytes(b[i - len..i].to_vec())
            }
            5 => {
                i += 4;
                Value::Fixed32(b[i - 4..i].try_into().unwrap())
            }
            w => panic!("wire type {w} in a fixture"),
        };
        out.push(((key >> 3) as u32, value));
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    for (number, value) in m {
        let wire = match value {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32(_) => 5,
        };
        put_varint(&mut out, u64::from(*number) << 3 | wire);
        match value {
            Value::Varint(v) => put_varint(&mut out, *v),
            Value::Fixed64(b) => out.extend_from_slice(b),
            Value::Bytes(b) => {
                put_varint(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Fixed32(b) => out.extend_from_slice(b),
        }
    }
    out
}

/// The text of the first string field `number`.
fn text(m: &Message, number: u32) -> String {
    m.iter()
        .find_map(|(n, v)| match v {
            Value::Bytes(b) if *n == number => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Applies `f` to every sub-message in field `number` of `m`; returns how many there were.
fn each(m: &mut Message, number: u32, mut f: impl FnMut(&mut Message)) -> usize {
    let mut count = 0;
    for (n, v) in m.iter_mut() {
        if let (true, Value::Bytes(b)) = (*n == number, &mut *v) {
            let mut sub = parse(b);
            f(&mut sub);
            *b = encode(&sub);
            count += 1;
        }
    }
    count
}

/// A copy of the model `file` with its graph (ModelProto field 7) edited by `f`.
fn edited(file: &str, f: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut model = parse(&bytes(file));
    let mut f = Some(f);
    assert_eq!(each(&mut model, 7, |g| (f.take().unwrap())(g)), 1);
    encode(&model)
}

/// Edits the node called `name` (GraphProto.node, field 1); it must exist.
fn edit_node(graph: &mut Message, name: &str, mut f: impl FnMut(&mut Message)) {
    let mut found = 0;
    each(graph, 1, |node| {
        if text(node, 3) == name {
            f(node);
            found += 1;
        }
    });
    assert_eq!(found, 1, "node {name}");
}

/// Sets the attribute `name` of a node (field 5; `i` is field 3, `f` field 2).
fn set_attribute(node: &mut Message, name: &str, value: Value) {
    let mut found = 0;
    each(node, 5, |a| {
        if text(a, 1) == name {
            let field = if matches!(value, Value::Fixed32(_)) { 2 } else { 3 };
            a.retain(|(n, _)| *n != field);
            a.push((field, value.clone()));
            found += 1;
        }
    });
    assert_eq!(found, 1, "attribute {name}");
}

/// Sets the dims (field 1) of the initializer `name` (GraphProto.initializer, field 5),
/// leaving its data as it is.
fn set_dims(graph: &mut Message, name: &str, dims: &[i64]) {
    let mut found = 0;
    each(graph, 5, |t| {
        if text(t, 8) == name {
            t.retain(|(n, _)| *n != 1);
            t.extend(dims.iter().map(|&d| (1, Value::Varint(d as u64))));
            found += 1;
        }
    });
    assert_eq!(found, 1, "initializer {name}");
}

/// The error of loading `data`, with its message.
fn load_error(data: &[u8]) -> (Error, String) {
    match from_onnx::<f32>(data) {
        Ok(_) => panic!("the edited file loaded"),
        Err(e) => {
            let msg = e.to_string();
            eprintln!("{msg}");
            (e, msg)
        }
    }
}

fn assert_names(msg: &str, words: &[&str]) {
    for w in words {
        assert!(msg.contains(w), "{w:?} missing from: {msg}");
    }
}

// ---------------------------------------------------------------------------------------

#[test]
fn bad_token_ids_are_typed_errors_naming_position_and_vocabulary() {
    let net: Network<f32> = load_onnx(fixture(BERT)).unwrap();
    for (value, row) in [(20.0, 0), (1e9, 1), (-1.0, 1), (2.5, 0), (f32::INFINITY, 1)] {
        let mut x = ids(2);
        x[[row, 4]] = value;
        let forward = net.forward(&x).unwrap_err();
        let explained = net
            .attribute(&x, &Target::Class(0), &AttnLrp::new(0.0).unwrap())
            .unwrap_err();
        for e in [forward, explained] {
            let msg = e.to_string();
            if value.is_finite() {
                match e.root() {
                    Error::TokenId {
                        position,
                        vocabulary,
                        value: got,
                    } => {
                        assert_eq!((position.as_slice(), *vocabulary), (&[row, 4][..], 20), "{msg}");
                        assert_eq!(*got, f64::from(value));
                    }
                    other => panic!("{value}: {other:?}"),
                }
                assert_names(&msg, &[WORDS, "0..20", &format!("[{row}, 4]")]);
                assert_eq!(e.layer_index(), Some(0), "{msg}");
            } else {
                // the network's input check comes first: NaN and ∞ never reach the lookup
                assert!(matches!(e.root(), Error::NonFinite { .. }), "{msg}");
                assert_names(&msg, &["input", &format!("index {}", row * 6 + 4)]);
            }
        }
    }
    // NaN as well
    let mut x = ids(1);
    x[[0, 2]] = f32::NAN;
    let e = net.forward(&x).unwrap_err();
    assert!(matches!(e.root(), Error::NonFinite { .. }), "{e}");
    // the valid ids still run
    assert_eq!(net.forward(&ids(2)).unwrap().shape(), &[2, 3]);
}

#[test]
fn a_graph_input_of_another_type_is_refused_or_taken_as_ids() {
    let set_type = |elem: u64| {
        edited(BERT, |g| {
            let mut found = 0;
            each(g, 11, |input| {
                if text(input, 1) == "ids" {
                    each(input, 2, |ty| {
                        each(ty, 1, |tensor| {
                            tensor.retain(|(n, _)| *n != 1);
                            tensor.insert(0, (1, Value::Varint(elem)));
                        });
                    });
                    found += 1;
                }
            });
            assert_eq!(found, 1);
        })
    };
    // int32 ids are ids as int64 ones are
    let net: Network<f32> = from_onnx(&set_type(6)).unwrap();
    assert_eq!(net.forward(&ids(1)).unwrap().shape(), &[1, 3]);
    // a string, a boolean, a complex number: not ids
    for elem in [8, 9, 14] {
        let (e, msg) = load_error(&set_type(elem));
        assert!(matches!(e, Error::Format { .. }), "{e:?}");
        assert_names(&msg, &["ids", &format!("element type {elem}")]);
    }
    // float ids: loaded as the network's float input, checked as ids when it runs
    if let Ok(net) = from_onnx::<f32>(&set_type(1)) {
        assert_eq!(net.forward(&ids(1)).unwrap().shape(), &[1, 3]);
        let mut x = ids(1);
        x[[0, 1]] = 0.5;
        assert!(matches!(
            net.forward(&x).unwrap_err().root(),
            Error::TokenId { .. }
        ));
    }
}

#[test]
fn an_embedding_table_larger_than_its_data_is_refused() {
    for rows in [21, 2000, 1 << 40, i64::MAX / 8] {
        let data = edited(BERT, |g| {
            set_dims(g, "embeddings.word_embeddings.weight", &[rows, 8])
        });
        let (e, msg) = load_error(&data);
        assert_names(&msg, &["embeddings.word_embeddings.weight"]);
        assert!(
            matches!(e.root(), Error::Format { .. } | Error::Shape { .. }),
            "{rows}: {e:?}"
        );
    }
    // fewer rows than the data: refused too, not read as a smaller vocabulary
    let data = edited(BERT, |g| {
        set_dims(g, "embeddings.word_embeddings.weight", &[10, 8])
    });
    let (_, msg) = load_error(&data);
    assert_names(&msg, &["embeddings.word_embeddings.weight"]);
}

#[test]
fn a_softmax_axis_out_of_range_is_refused_naming_the_node() {
    for (file, node) in [
        (BERT, "/encoder/layer.0/attention/self/softmax/Softmax"),
        (VIT, "/encoder/layers.0/self_attention/softmax/Softmax"),
    ] {
        for axis in [4i64, -5, i64::MAX, i64::MIN] {
            let data = edited(file, |g| {
                edit_node(g, node, |n| set_attribute(n, "axis", Value::Varint(axis as u64)))
            });
            let (_, msg) = load_error(&data);
            assert_names(&msg, &[node, "axis"]);
        }
    }
}

#[test]
fn a_layer_norm_with_a_bad_axis_or_epsilon_is_refused_naming_the_node() {
    let node = "/encoder/layer.0/attention/output/LayerNorm/LayerNormalization";
    for axis in [3i64, -4, i64::MIN] {
        let data = edited(BERT, |g| {
            edit_node(g, node, |n| set_attribute(n, "axis", Value::Varint(axis as u64)))
        });
        let (_, msg) = load_error(&data);
        assert_names(&msg, &[node, "axis"]);
    }
    for eps in [-1.0f32, f32::NAN, f32::INFINITY] {
        let data = edited(BERT, |g| {
            edit_node(g, node, |n| {
                set_attribute(n, "epsilon", Value::Fixed32(eps.to_le_bytes()))
            })
        });
        let (_, msg) = load_error(&data);
        assert_names(&msg, &[node, "eps", &format!("{eps:e}")]);
    }
}

#[test]
fn matmuls_of_mismatched_shapes_are_refused_naming_the_node_and_shapes() {
    // a weight of 64 values as [4, 16] where [8, 8] is read: the data fits, the shape not
    let node = "/encoder/layer.0/attention/self/query/MatMul";
    let data = edited(BERT, |g| set_dims(g, "onnx::MatMul_221", &[4, 16]));
    let (_, msg) = load_error(&data);
    assert_names(
        &msg,
        &[
            node,
            "the weight's 4 input features",
            "expected shape [6, 4], got [6, 8]",
        ],
    );
    // the attention scores of queries [.., 6, 4] with the untransposed values [.., 6, 4]
    let node = "/encoder/layer.0/attention/self/MatMul";
    let data = edited(BERT, |g| {
        edit_node(g, node, |n| {
            let inputs: Vec<usize> = (0..n.len()).filter(|&i| n[i].0 == 1).collect();
            n[inputs[1]].1 = Value::Bytes(b"/encoder/layer.0/attention/self/Transpose_1_output_0".to_vec());
        })
    });
    let (e, msg) = load_error(&data);
    assert_names(
        &msg,
        &[
            node,
            "the first input is [2, 6, 4]",
            "axis −2 (6) must equal the first input's last axis (4)",
        ],
    );
    match e.root() {
        Error::Shape { expected, got, .. } => {
            assert_eq!((&expected[..], &got[..]), (&[2, 4, 4][..], &[2, 6, 4][..]))
        }
        other => panic!("{other:?}"),
    }
}

/// The product of two computed tensors says which axis does not fit (it used to print the
/// two input shapes as "expected" and "got", equal when only k differed).
#[test]
fn matmul_layer_shape_errors_name_the_axis() {
    let m = MatMul::new();
    let a = ArrayD::<f64>::zeros(IxDyn(&[2, 2, 3]));
    for (b, words) in [
        (
            vec![2, 2, 3],
            &[
                "axis −2 (2) must equal the first input's last axis (3)",
                "[2, 3, 3]",
            ][..],
        ),
        (
            vec![3, 3, 4],
            &["leading axes [3] do not broadcast with the first input's [2]"][..],
        ),
        (vec![3], &["MatMul input", "expected 3 dimensions, got 1"][..]),
    ] {
        let b = ArrayD::<f64>::zeros(IxDyn(&b));
        let e = m.forward(&[a.view(), b.view()]).unwrap_err();
        assert!(matches!(e, Error::Shape { .. } | Error::Rank { .. }), "{e:?}");
        assert_names(&e.to_string(), words);
    }
    // shapes that fit still multiply, broadcasting a leading axis of 1
    let b = ArrayD::<f64>::ones(IxDyn(&[1, 3, 5]));
    assert_eq!(m.forward(&[a.view(), b.view()]).unwrap().shape(), &[2, 2, 5]);
}

/// The walker reads and writes the fixtures unchanged, and an edit that changes nothing
/// loads the same network.
#[test]
fn the_protobuf_walker_round_trips_the_fixtures() {
    for file in [BERT, VIT] {
        let b = bytes(file);
        assert_eq!(encode(&parse(&b)), b, "{file}");
    }
    let same = edited(BERT, |g| {
        edit_node(g, "/encoder/layer.0/attention/self/softmax/Softmax", |n| {
            set_attribute(n, "axis", Value::Varint(-1i64 as u64))
        })
    });
    let net: Network<f32> = from_onnx(&same).unwrap();
    let want: Network<f32> = load_onnx(fixture(BERT)).unwrap();
    assert_eq!(net.forward(&ids(1)).unwrap(), want.forward(&ids(1)).unwrap());
}
