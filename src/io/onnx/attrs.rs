//! Reading an ONNX node's attributes, with errors that name the node.

use super::import::unsupported;
use super::proto::AttributeProto;
use crate::error::{Error, Result};
use crate::io::MAX_DIM;

/// A node's attributes, read with defaults and range checks.
pub(super) struct Attrs<'a> {
    pub(super) node: &'a str,
    pub(super) op: &'a str,
    pub(super) list: &'a [AttributeProto],
}

impl Attrs<'_> {
    pub(super) fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.list.iter().find(|a| a.name == name)
    }

    pub(super) fn bad(&self, reason: String) -> Error {
        Error::Format {
            what: format!("node {} ({})", self.node, self.op),
            reason,
        }
    }

    /// Rejects attributes outside `known`.
    pub(super) fn only(&self, known: &[&str]) -> Result<()> {
        match self.list.iter().find(|a| !known.contains(&a.name.as_str())) {
            Some(a) => Err(unsupported(self.node, self.op, format!("attribute {:?}", a.name))),
            None => Ok(()),
        }
    }

    pub(super) fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.get(name).map_or(default, |a| a.i))
    }

    pub(super) fn float(&self, name: &str, default: f32) -> Result<f32> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.f.is_finite() => Ok(a.f),
            Some(a) => Err(self.bad(format!("attribute {name} is {}", a.f))),
        }
    }

    pub(super) fn string(&self, name: &str) -> Result<String> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(a) => {
                String::from_utf8(a.s.clone()).map_err(|_| self.bad(format!("attribute {name} is not UTF-8")))
            }
        }
    }

    /// A list of non-negative sizes, each at most [`MAX_DIM`].
    pub(super) fn ints(&self, name: &str) -> Result<Option<Vec<usize>>> {
        let Some(a) = self.get(name) else { return Ok(None) };
        a.ints
            .iter()
            .map(|&v| {
                usize::try_from(v).ok().filter(|&v| v <= MAX_DIM).ok_or_else(|| {
                    self.bad(format!(
                        "attribute {name} = {:?} is out of range 0..={MAX_DIM}",
                        a.ints
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A 2-D (height, width) attribute such as `strides`.
    pub(super) fn pair(&self, name: &str, default: usize) -> Result<(usize, usize)> {
        match self.ints(name)?.as_deref() {
            None => Ok((default, default)),
            Some([h, w]) => Ok((*h, *w)),
            Some(v) => Err(unsupported(
                self.node,
                self.op,
                format!("{name} {v:?} is not 2-D"),
            )),
        }
    }
}
