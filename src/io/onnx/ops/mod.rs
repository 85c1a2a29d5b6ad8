//! The operator registry: one entry per ONNX operator the importer knows, registered by
//! the file of its family (as tract's `register_all_ops`), with
//!
//! * what it becomes (one line, for [`onnx_operators`](crate::io::onnx_operators) and the
//!   README's table, which a test compares with this registry);
//! * `fold`: how it is evaluated when the file is read, if all its inputs are constants
//!   (or, for `Shape` and `Size`, whatever they are: only their shapes are read);
//! * `build`: how it becomes a layer (or nothing) when an input is computed data;
//! * `check`: why a node of it cannot be imported, for what the first pass can see —
//!   which inputs are computed, attributes, literal constants, readers — so that the
//!   error for a model lists these nodes together with the unknown operators.
//!
//! An operator is supported exactly when it is in the registry: the first pass refuses
//! every other one, and an operator with only `fold` is refused on data.

mod activation;
mod arithmetic;
mod constant;
mod conv;
mod conv_transpose;
mod dense;
mod gather;
mod logic;
mod norm;
mod pad;
mod pool;
mod reduce;
mod reshape;
mod resize;
mod shape;
mod slice;
mod softmax;
mod threshold;

use super::attrs::Attrs;
use super::check::Pre;
use super::import::{unsupported, Importer};
use super::pattern::Matcher;
use super::proto::NodeProto;
use super::values::{Const, Value};
use super::view::Data;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::network::NodeId;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Folds or builds one node: sets its outputs' values on the importer.
pub(super) type Handler<F> = for<'a, 'c> fn(&mut Importer<'a, F>, &Ctx<'a, 'c>) -> Result<()>;

/// Why a node cannot be imported, as far as the first pass can tell (`None`: nothing
/// against it yet).
pub(super) type Check = fn(&Pre<'_>) -> Option<String>;

/// One operator.
pub(super) struct OpDef<F: Float> {
    pub(super) name: &'static str,
    /// What a node of it becomes, in one line.
    pub(super) becomes: &'static str,
    pub(super) fold: Option<Handler<F>>,
    /// Folded whatever its inputs are (`Shape`, `Size`: only the inputs' shapes are read).
    pub(super) fold_always: bool,
    pub(super) build: Option<Handler<F>>,
    pub(super) check: Option<Check>,
    /// Whether its build sees data in any layout (`layout.rs`: the batch axis moved or
    /// merged); the other operators get their data inputs batch-first.
    pub(super) layouts: bool,
}

impl<F: Float> OpDef<F> {
    fn fold(&mut self, f: Handler<F>) -> &mut Self {
        self.fold = Some(f);
        self
    }

    fn fold_always(&mut self, f: Handler<F>) -> &mut Self {
        self.fold_always = true;
        self.fold(f)
    }

    fn build(&mut self, f: Handler<F>) -> &mut Self {
        self.build = Some(f);
        self
    }

    fn check(&mut self, f: Check) -> &mut Self {
        self.check = Some(f);
        self
    }

    /// Its build handles data in any layout (`View::Layout`).
    fn layouts(&mut self) -> &mut Self {
        self.layouts = true;
        self
    }
}

/// Every operator the importer knows, by name, and the patterns found from them.
pub(super) struct Registry<F: Float> {
    ops: BTreeMap<&'static str, OpDef<F>>,
    /// Matchers of subgraphs that one layer computes (`pattern.rs`), by the operator of the
    /// node they are found from, in the order the families register them.
    patterns: BTreeMap<&'static str, Vec<Matcher<F>>>,
}

impl<F: Float> Registry<F> {
    /// The operator `name` (of ONNX's default domain), if it is supported.
    pub(super) fn get(&self, name: &str) -> Option<&OpDef<F>> {
        self.ops.get(name)
    }

    /// Every operator, in name order.
    pub(super) fn all(&self) -> impl Iterator<Item = &OpDef<F>> {
        self.ops.values()
    }

    /// The matchers found from nodes of operator `op`.
    pub(super) fn patterns(&self, op: &str) -> &[Matcher<F>] {
        self.patterns.get(op).map_or(&[], Vec::as_slice)
    }

    /// Registers a matcher of a subgraph found from nodes of operator `anchor` (the
    /// operator's `becomes` says what the subgraph becomes).
    fn pattern(&mut self, anchor: &'static str, matcher: Matcher<F>) {
        self.patterns.entry(anchor).or_default().push(matcher);
    }

    /// Registers an operator (each name once: a second registration is a bug here).
    fn op(&mut self, name: &'static str, becomes: &'static str) -> &mut OpDef<F> {
        let def = OpDef {
            name,
            becomes,
            fold: None,
            fold_always: false,
            build: None,
            check: None,
            layouts: false,
        };
        let slot = self.ops.entry(name);
        assert!(
            matches!(slot, std::collections::btree_map::Entry::Vacant(_)),
            "ONNX operator {name} registered twice"
        );
        slot.or_insert(def)
    }
}

/// The registry, every family registering its operators.
pub(super) fn registry<F: Float>() -> Registry<F> {
    let mut reg = Registry {
        ops: BTreeMap::new(),
        patterns: BTreeMap::new(),
    };
    conv::register(&mut reg);
    conv_transpose::register(&mut reg);
    dense::register(&mut reg);
    norm::register(&mut reg);
    arithmetic::register(&mut reg);
    logic::register(&mut reg);
    activation::register(&mut reg);
    pool::register(&mut reg);
    reduce::register(&mut reg);
    softmax::register(&mut reg);
    reshape::register(&mut reg);
    resize::register(&mut reg);
    slice::register(&mut reg);
    pad::register(&mut reg);
    shape::register(&mut reg);
    gather::register(&mut reg);
    constant::register(&mut reg);
    reg
}

/// The node a handler works on.
pub(super) struct Ctx<'a, 'c> {
    pub(super) node: &'a NodeProto,
    /// How errors name the node.
    pub(super) label: &'c str,
    pub(super) attrs: Attrs<'c>,
}

impl Ctx<'_, '_> {
    /// The operator type.
    pub(super) fn op(&self) -> &str {
        &self.node.op_type
    }

    /// The node is refused: `reason` says for what.
    pub(super) fn refuse(&self, reason: impl Into<String>) -> Error {
        unsupported(self.label, self.op(), reason)
    }
}

/// Handler helpers: a node's inputs and outputs.
impl<'a, F: Float> Importer<'a, F> {
    /// Input `pos`, which must be present.
    pub(super) fn required_arg(&mut self, n: &Ctx<'a, '_>, pos: usize) -> Result<Rc<Value<F>>> {
        self.required(n.node, pos, n.label)
    }

    /// Input `pos` as a constant, if present.
    pub(super) fn const_arg(&mut self, n: &Ctx<'a, '_>, pos: usize) -> Result<Option<Const<F>>> {
        self.constant(n.node, pos, n.label)
    }

    /// Input `pos` as a constant, which must be present.
    pub(super) fn required_const(&mut self, n: &Ctx<'a, '_>, pos: usize) -> Result<Const<F>> {
        self.constant(n.node, pos, n.label)?
            .ok_or_else(|| n.refuse(format!("input {pos} is missing")))
    }

    /// Input `pos` as a list of integers (axes, pads, a shape), if present.
    pub(super) fn int_arg(&mut self, n: &Ctx<'a, '_>, pos: usize, limit: usize) -> Result<Option<Vec<i64>>> {
        self.const_arg(n, pos)?.map(|c| c.int_list(limit)).transpose()
    }

    /// Input `pos` as data (its pending view kept).
    pub(super) fn data_arg(&mut self, n: &Ctx<'a, '_>, pos: usize) -> Result<Data> {
        match self.required_arg(n, pos)?.as_ref() {
            Value::Data(d) => Ok(d.clone()),
            Value::Const(_) => Err(n.refuse(format!(
                "input {pos} is a constant where computed data is expected"
            ))),
        }
    }

    /// Input `pos` as a network node (its pending view applied).
    pub(super) fn node_arg(&mut self, n: &Ctx<'a, '_>, pos: usize) -> Result<NodeId> {
        let d = self.data_arg(n, pos)?;
        self.materialize(&d, n.label)
    }

    /// Sets output 0 to data.
    pub(super) fn out(&mut self, n: &Ctx<'a, '_>, d: Data) -> Result<()> {
        self.set(n.node, 0, Value::Data(d));
        Ok(())
    }

    /// Sets output 0 to data input 0 (the node computes nothing).
    pub(super) fn pass(&mut self, n: &Ctx<'a, '_>) -> Result<()> {
        let d = self.data_arg(n, 0)?;
        self.out(n, d)
    }

    /// Sets output `pos` to a folded constant, refusing a non-finite value (except where
    /// `ConstantOfShape` asks for one) and a rank beyond what folding may make.
    pub(super) fn folded(&mut self, n: &Ctx<'a, '_>, pos: usize, value: Const<F>) -> Result<()> {
        let op = n.op();
        if let Const::Float(a) = &value {
            if let Some(i) = a.iter().position(|v| !v.is_finite()) {
                if op != "ConstantOfShape" {
                    return Err(Error::Format {
                        what: n.label.to_string(),
                        reason: format!("folding {op} gave a non-finite value at index {i}"),
                    });
                }
            }
        }
        if value.shape().len() > super::values::MAX_FOLDED_RANK {
            return Err(Error::Format {
                what: n.label.to_string(),
                reason: format!(
                    "folding {op} gave a constant of rank {} (at most {})",
                    value.shape().len(),
                    super::values::MAX_FOLDED_RANK
                ),
            });
        }
        self.set(n.node, pos, Value::Const(value));
        Ok(())
    }
}

/// A list of non-negative sizes.
pub(super) fn to_shape(v: &[i64]) -> Result<Vec<usize>> {
    v.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| Error::Format {
                what: "constant folding".into(),
                reason: format!("negative size {d} in {v:?}"),
            })
        })
        .collect()
}
