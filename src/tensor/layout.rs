//! Building and slicing arrays where a failure would be a bug of this crate, never a fault
//! of its input: each helper states its invariant once, instead of an `expect` at every
//! call. (User input never reaches them: shapes are checked before; the proptest of
//! `tests/suite/misuse.rs` calls every public entry point with arrays of any shape.)

use ndarray::{Array, ArrayBase, ArrayView, ArrayViewMut, Data, DataMut, Dimension, StrideShape};

/// An array of `shape` holding `data`: the caller made `data` exactly as long as the shape
/// holds.
pub(crate) fn shaped<F, D: Dimension, Sh: Into<StrideShape<D>>>(shape: Sh, data: Vec<F>) -> Array<F, D> {
    Array::from_shape_vec(shape, data).expect("invariant: the data has the shape's length")
}

/// The elements of an array in standard (C) layout, as one slice: the caller made it with
/// `as_standard_layout()`, or allocated it itself.
pub(crate) fn standard<S: Data, D: Dimension>(a: &ArrayBase<S, D>) -> &[S::Elem] {
    a.as_slice()
        .expect("invariant: an array in standard layout is one slice")
}

/// [`standard`] for writing.
pub(crate) fn standard_mut<S: DataMut, D: Dimension>(a: &mut ArrayBase<S, D>) -> &mut [S::Elem] {
    a.as_slice_mut()
        .expect("invariant: an array in standard layout is one slice")
}

/// A view of `shape` on `data`: the caller made `data` exactly as long as the shape holds.
pub(crate) fn view<'a, F, D: Dimension, Sh: Into<StrideShape<D>>>(
    shape: Sh,
    data: &'a [F],
) -> ArrayView<'a, F, D> {
    ArrayView::from_shape(shape, data).expect("invariant: the data has the shape's length")
}

/// [`view`] for writing.
pub(crate) fn view_mut<'a, F, D: Dimension, Sh: Into<StrideShape<D>>>(
    shape: Sh,
    data: &'a mut [F],
) -> ArrayViewMut<'a, F, D> {
    ArrayViewMut::from_shape(shape, data).expect("invariant: the data has the shape's length")
}

/// A one-axis array as such: the caller made it with one axis (per-sample totals).
pub(crate) fn one_axis<F>(a: ndarray::ArrayD<F>) -> ndarray::Array1<F> {
    a.into_dimensionality()
        .expect("invariant: the array has one axis")
}

/// `a` broadcast to `shape`: the caller computed `shape` as one that `a` broadcasts to
/// (`broadcast::broadcast_shape`) or checked it.
pub(crate) fn broadcast<'a, S: Data, D: Dimension, E: ndarray::IntoDimension>(
    a: &'a ArrayBase<S, D>,
    shape: E,
) -> ArrayView<'a, S::Elem, E::Dim> {
    a.broadcast(shape)
        .expect("invariant: the shape was checked to be a broadcast of the array's")
}
