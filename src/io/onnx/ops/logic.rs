//! Comparisons and selection on constants (`Equal`, `Less`, `Greater`, `Not`, `Where`),
//! evaluated when the file is read: exporters write them into shape arithmetic. On data,
//! `Greater` and `Where` only as PyTorch's `Softplus` threshold (`threshold.rs`).

use super::arithmetic::fold_binary;
use super::threshold;
use super::{Ctx, Registry};
use crate::error::Result;
use crate::float::Float;
use crate::io::onnx::import::Importer;
use crate::io::onnx::values::{self, Const, Sym};

pub(super) fn register<F: Float>(reg: &mut Registry<F>) {
    for op in ["Equal", "Less"] {
        reg.op(op, "evaluated when the file is read (constants only)")
            .fold(fold_binary);
    }
    reg.op(
        "Greater",
        "evaluated when the file is read (constants); on data only in PyTorch's Softplus threshold",
    )
    .fold(fold_binary)
    .build(threshold::greater)
    .check(threshold::check_greater);
    reg.op("Not", "evaluated when the file is read (constants only)")
        .fold(not);
    reg.op(
        "Where",
        "evaluated when the file is read (constants); Where(Greater(x, t), x, Softplus(x)) of data: Softplus with threshold t",
    )
    .fold(where_)
    .build(threshold::where_softplus)
    .check(threshold::check_where);
}

fn not<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let v = imp.required_const(n, 0)?;
    let value = Const::Int(v.ints()?.mapv(|s| Sym::Int(i64::from(s.int() == Some(0)))));
    imp.folded(n, 0, value)
}

fn where_<'a, F: Float>(imp: &mut Importer<'a, F>, n: &Ctx<'a, '_>) -> Result<()> {
    let (cond, a, b) = (
        imp.required_const(n, 0)?,
        imp.required_const(n, 1)?,
        imp.required_const(n, 2)?,
    );
    let value = values::where_(&cond, &a, &b)?;
    imp.folded(n, 0, value)
}
