//! A bound on what decoding an ONNX file allocates, computed from its bytes before `prost`
//! decodes it.
//!
//! Protobuf lets a few bytes stand for a large decoded value: an empty message is two bytes
//! (a tag and a zero length) but a decoded `NodeProto` is a struct of vectors and strings,
//! a hundred times larger, and a packed `int64` of one byte decodes to eight. A file of
//! millions of empty messages would make the decoder allocate hundreds of megabytes before
//! any check. This pass walks the wire format along the importer's schema (`proto.rs`: the
//! fields it decodes; every other field is skipped by the decoder and costs nothing) and
//! adds up the memory the decoded model will hold. It allocates nothing itself.

use super::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use crate::error::{Error, Result};
use std::mem::size_of;

/// The decoded size a file may reach: this multiple of its length, plus [`DECODE_SLACK`].
pub(crate) const DECODE_FACTOR: usize = 8;
/// The decoded size every file may reach whatever its length (64 MiB).
pub(crate) const DECODE_SLACK: usize = 64 << 20;

/// The messages of the importer's schema.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Msg {
    Model,
    Opset,
    Graph,
    Node,
    Attribute,
    Tensor,
    Entry,
    ValueInfo,
    Type,
    TypeTensor,
    Shape,
    Dim,
}

/// What a field of a message decodes to.
enum Field {
    /// A sub-message (repeated or optional: each occurrence is one more struct).
    Message(Msg),
    /// A `string`/`bytes` field; `repeated`: each occurrence is one more `String` too.
    Bytes { repeated: bool },
    /// A repeated number of `size` bytes decoded, `varint` if packed as varints.
    Numbers { size: usize, varint: bool },
    /// A singular number (inside the struct) or a field the decoder skips.
    Nothing,
}

impl Msg {
    fn size(self) -> usize {
        match self {
            Msg::Model => size_of::<ModelProto>(),
            Msg::Opset => size_of::<OperatorSetIdProto>(),
            Msg::Graph => size_of::<GraphProto>(),
            Msg::Node => size_of::<NodeProto>(),
            Msg::Attribute => size_of::<AttributeProto>(),
            Msg::Tensor => size_of::<TensorProto>(),
            Msg::Entry => size_of::<StringStringEntryProto>(),
            Msg::ValueInfo => size_of::<ValueInfoProto>(),
            Msg::Type => size_of::<TypeProto>(),
            Msg::TypeTensor => size_of::<TypeProtoTensor>(),
            Msg::Shape => size_of::<TensorShapeProto>(),
            Msg::Dim => size_of::<Dimension>(),
        }
    }

    /// The field numbers of `proto.rs` (those of `onnx.proto`).
    fn field(self, number: u64) -> Field {
        use Field::{Bytes, Message, Nothing, Numbers};
        let string = Bytes { repeated: false };
        match (self, number) {
            (Msg::Model, 2 | 3) => string,
            (Msg::Model, 7) => Message(Msg::Graph),
            (Msg::Model, 8) => Message(Msg::Opset),
            (Msg::Opset, 1) => string,
            (Msg::Graph, 1) => Message(Msg::Node),
            (Msg::Graph, 5) => Message(Msg::Tensor),
            (Msg::Graph, 11 | 12) => Message(Msg::ValueInfo),
            (Msg::Node, 1 | 2) => Bytes { repeated: true },
            (Msg::Node, 3 | 4 | 7) => string,
            (Msg::Node, 5) => Message(Msg::Attribute),
            (Msg::Attribute, 1 | 4) => string,
            (Msg::Attribute, 5) => Message(Msg::Tensor),
            (Msg::Attribute, 7) => Numbers {
                size: 4,
                varint: false,
            },
            (Msg::Attribute, 8) => Numbers {
                size: 8,
                varint: true,
            },
            (Msg::Tensor, 1 | 7) => Numbers {
                size: 8,
                varint: true,
            },
            (Msg::Tensor, 4) => Numbers {
                size: 4,
                varint: false,
            },
            (Msg::Tensor, 5) => Numbers {
                size: 4,
                varint: true,
            },
            (Msg::Tensor, 8 | 9) => string,
            (Msg::Tensor, 10) => Numbers {
                size: 8,
                varint: false,
            },
            (Msg::Tensor, 13) => Message(Msg::Entry),
            (Msg::Entry, 1 | 2) => string,
            (Msg::ValueInfo, 1) => string,
            (Msg::ValueInfo, 2) => Message(Msg::Type),
            (Msg::Type, 1) => Message(Msg::TypeTensor),
            (Msg::TypeTensor, 2) => Message(Msg::Shape),
            (Msg::Shape, 1) => Message(Msg::Dim),
            (Msg::Dim, 2) => string,
            _ => Nothing,
        }
    }
}

fn malformed() -> Error {
    Error::Format {
        what: "ONNX model".into(),
        reason: "not a valid ONNX protobuf (a field runs past the end of its message)".into(),
    }
}

/// Reads a varint at `*pos`.
fn varint(bytes: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos).ok_or_else(malformed)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(malformed())
}

/// Adds the decoded size of the fields of a `msg` encoded in `bytes` to `total`.
fn walk(bytes: &[u8], msg: Msg, total: &mut usize) -> Result<()> {
    let mut pos = 0;
    while pos < bytes.len() {
        let key = varint(bytes, &mut pos)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = msg.field(number);
        let payload = match wire {
            0 => {
                varint(bytes, &mut pos)?;
                None
            }
            1 | 5 => {
                pos = pos
                    .checked_add(if wire == 1 { 8 } else { 4 })
                    .filter(|&p| p <= bytes.len())
                    .ok_or_else(malformed)?;
                None
            }
            2 => {
                let len = usize::try_from(varint(bytes, &mut pos)?).map_err(|_| malformed())?;
                let end = pos
                    .checked_add(len)
                    .filter(|&e| e <= bytes.len())
                    .ok_or_else(malformed)?;
                let p = &bytes[pos..end];
                pos = end;
                Some(p)
            }
            // groups (3, 4) are skipped by prost as a whole; treat them as malformed here
            _ => return Err(malformed()),
        };
        let add = match (field, payload) {
            (Field::Message(m), Some(p)) => {
                walk(p, m, total)?;
                m.size()
            }
            (Field::Bytes { repeated }, Some(p)) => p.len() + if repeated { size_of::<String>() } else { 0 },
            (Field::Numbers { size, varint }, Some(p)) => {
                // packed: one number per varint (bytes without the continuation bit) or per size
                let count = if varint {
                    p.iter().filter(|&&b| b & 0x80 == 0).count()
                } else {
                    p.len() / size
                };
                count * size
            }
            (Field::Numbers { size, .. }, None) => size,
            _ => 0,
        };
        *total = total.saturating_add(add);
    }
    Ok(())
}

/// Checks that decoding `bytes` as a model allocates at most [`DECODE_FACTOR`] times its
/// length plus [`DECODE_SLACK`].
pub(super) fn check(bytes: &[u8]) -> Result<()> {
    let mut total = Msg::Model.size();
    walk(bytes, Msg::Model, &mut total)?;
    let limit = bytes
        .len()
        .saturating_mul(DECODE_FACTOR)
        .saturating_add(DECODE_SLACK);
    if total > limit {
        return Err(Error::Format {
            what: "ONNX model".into(),
            reason: format!(
                "decoding these {} bytes would take {total} bytes of memory (more than {DECODE_FACTOR} × the \
                 file + {} MiB): a file of many empty or tiny messages",
                bytes.len(),
                DECODE_SLACK >> 20
            ),
        });
    }
    Ok(())
}
