//! Max pooling over any window, one plane at a time, in two passes: the first maximum of
//! every input row's window columns, then the first maximum of those over the window's rows.
//!
//! Row-major first maximum (strictly greater wins, as PyTorch) is kept exactly: within a row
//! the earliest column of the row's maximum is taken, and across rows the earliest row whose
//! maximum is strictly greater, which is the row-major first maximum of the window. Both
//! passes choose with selects instead of branches (a max pool over ReLU outputs mispredicts
//! about every other comparison), and rows shared by overlapping windows are scanned once.

use crate::float::Float;
use crate::pool::output_buffer;
use ndarray::{ArrayD, ArrayViewD};

/// The output size, kernel, stride and leading padding of a pool, (height, width) pairs.
pub(super) type Window = ((usize, usize), (usize, usize), (usize, usize), (usize, usize));

/// The pooled values alone (no index array) of a 4-D `input`, for any window: `None` if a
/// window lies wholly in the padding (then `MaxPool2d::argmax` decides).
pub(super) fn pool_values<F: Float>(
    input: &ArrayViewD<'_, F>,
    ((ho, wo), kernel, stride, padding): Window,
) -> Option<ArrayD<F>> {
    let (n, c, h, w) = (
        input.shape()[0],
        input.shape()[1],
        input.shape()[2],
        input.shape()[3],
    );
    let rows = intervals(ho, h, kernel.0, stride.0, padding.0)?;
    let cols = intervals(wo, w, kernel.1, stride.1, padding.1)?;
    let input = input.as_standard_layout();
    let src = crate::tensor::layout::standard(&input);
    // every element is written below
    let mut out = crate::tensor::layout::shaped((n, c, ho, wo), output_buffer(n * c * ho * wo));
    let buf = crate::tensor::layout::standard_mut(&mut out);
    let fill = |scratch: &mut Rows<F>, (plane, dst): (&[F], &mut [F])| {
        pool_plane(plane, w, (&rows, &cols), scratch, dst, None)
    };
    #[cfg(feature = "parallel")]
    if super::par_planes(src.len()) {
        use rayon::prelude::*;
        src.par_chunks_exact(h * w)
            .zip(buf.par_chunks_exact_mut(ho * wo))
            .for_each_init(Rows::new, fill);
        return Some(out.into_dyn());
    }
    let mut scratch = Rows::new();
    src.chunks_exact(h * w)
        .zip(buf.chunks_exact_mut(ho * wo))
        .for_each(|p| fill(&mut scratch, p));
    Some(out.into_dyn())
}

/// The clipped input interval `[lo, hi)` of every output position along one axis, or `None`
/// if a window lies wholly in the padding (the caller then takes the scalar path).
pub(super) fn intervals(
    out: usize,
    len: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> Option<Vec<(usize, usize)>> {
    (0..out)
        .map(|o| {
            let start = o as isize * stride as isize - pad as isize;
            let lo = start.max(0) as usize;
            let hi = (start + kernel as isize).min(len as isize).max(0) as usize;
            (lo < hi).then_some((lo, hi))
        })
        .collect()
}

/// The clipped input intervals of every output row and column (see [`intervals`]).
pub(super) type Windows<'a> = (&'a [(usize, usize)], &'a [(usize, usize)]);

/// Scratch rows of one plane: every input row's window maxima (and their columns).
pub(super) struct Rows<F> {
    vals: Vec<F>,
    cols: Vec<usize>,
}

impl<F: Float> Rows<F> {
    pub(super) fn new() -> Self {
        Rows {
            vals: Vec::new(),
            cols: Vec::new(),
        }
    }
}

/// The max pool of one `h × w` `plane` into `vout` (`ho × wo`, `ho = rows.len()`,
/// `wo = cols.len()`) and, if given, the flat index within the plane of each window's first
/// maximum into `iout`. Input rows outside every window are skipped.
pub(super) fn pool_plane<F: Float>(
    plane: &[F],
    w: usize,
    (rows, cols): Windows<'_>,
    scratch: &mut Rows<F>,
    vout: &mut [F],
    iout: Option<&mut [usize]>,
) {
    let wo = cols.len();
    let h = plane.len() / w.max(1);
    let kernel = cols.iter().map(|&(lo, hi)| hi - lo).max().unwrap_or(0);
    let (first, last) = match (rows.first(), rows.last()) {
        (Some(f), Some(l)) => (f.0, l.1.min(h)),
        _ => return,
    };
    scratch.vals.resize(h * wo, F::zero());
    let track = iout.is_some();
    if track {
        scratch.cols.resize(h * wo, 0);
    }
    // pass 1: per input row, the first maximum over each window's columns
    for iy in first..last {
        let row = &plane[iy * w..(iy + 1) * w];
        let vals = &mut scratch.vals[iy * wo..(iy + 1) * wo];
        if track {
            let at = &mut scratch.cols[iy * wo..(iy + 1) * wo];
            for ((v, a), &(lo, hi)) in vals.iter_mut().zip(at.iter_mut()).zip(cols) {
                let (mut best, mut col) = (row[lo], lo);
                for (k, &x) in row[lo + 1..hi].iter().enumerate() {
                    let gt = x > best;
                    best = if gt { x } else { best };
                    col = if gt { lo + 1 + k } else { col };
                }
                *v = best;
                *a = col;
            }
        } else {
            for (v, &(lo, _)) in vals.iter_mut().zip(cols) {
                *v = row[lo];
            }
            // offset by offset across the row (the same comparisons in the same order per
            // window as a scan of each window, but a loop the compiler can unroll)
            for k in 1..kernel {
                for (v, &(lo, hi)) in vals.iter_mut().zip(cols) {
                    if lo + k < hi {
                        let x = row[lo + k];
                        *v = if x > *v { x } else { *v };
                    }
                }
            }
        }
    }
    // pass 2: per output row, the first maximum over the window's rows, column by column
    for (oy, &(lo, hi)) in rows.iter().enumerate() {
        let out = &mut vout[oy * wo..(oy + 1) * wo];
        out.copy_from_slice(&scratch.vals[lo * wo..(lo + 1) * wo]);
        for iy in lo + 1..hi {
            let vals = &scratch.vals[iy * wo..(iy + 1) * wo];
            for (o, &v) in out.iter_mut().zip(vals) {
                *o = if v > *o { v } else { *o };
            }
        }
    }
    // the indices, when asked: the first row (from the top) that holds the window's maximum
    // wins, since a later row only replaces an earlier one if strictly greater
    if let Some(iout) = iout {
        for (oy, &(lo, hi)) in rows.iter().enumerate() {
            let best = &vout[oy * wo..(oy + 1) * wo];
            let idx = &mut iout[oy * wo..(oy + 1) * wo];
            for (ox, (i, &m)) in idx.iter_mut().zip(best).enumerate() {
                // the first row whose maximum equals the window's (± 0 compare equal, and
                // the earlier one was kept by pass 2 as well)
                let mut at = lo * w + scratch.cols[lo * wo + ox];
                let mut found = scratch.vals[lo * wo + ox] == m;
                for iy in lo + 1..hi {
                    let hit = !found && scratch.vals[iy * wo + ox] == m;
                    at = if hit {
                        iy * w + scratch.cols[iy * wo + ox]
                    } else {
                        at
                    };
                    found |= hit;
                }
                *i = at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain scan of each window (row-major, strictly greater wins) on inputs with
    /// many ties, ±0 among them: the same value bits and the same index, for kernels, strides
    /// and paddings with overlapping, gapped and clipped windows.
    #[test]
    fn two_passes_equal_a_scan_of_each_window() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..300 {
            let (h, w) = (1 + (next() % 9) as usize, 1 + (next() % 9) as usize);
            let (kh, kw) = (1 + (next() % 4) as usize, 1 + (next() % 4) as usize);
            let (sh, sw) = (1 + (next() % 3) as usize, 1 + (next() % 3) as usize);
            let (ph, pw) = ((next() % kh as u64) as usize, (next() % kw as u64) as usize);
            // values from {−1, −0, +0, 1, 2}: ties everywhere
            let plane: Vec<f64> = (0..h * w)
                .map(|_| [-1.0, -0.0, 0.0, 1.0, 2.0][(next() % 5) as usize])
                .collect();
            let out = |len: usize, k: usize, s: usize, p: usize| (len + 2 * p).saturating_sub(k) / s + 1;
            let (ho, wo) = (out(h, kh, sh, ph), out(w, kw, sw, pw));
            if h + 2 * ph < kh || w + 2 * pw < kw {
                continue;
            }
            let (Some(rows), Some(cols)) = (intervals(ho, h, kh, sh, ph), intervals(wo, w, kw, sw, pw))
            else {
                continue;
            };
            let (mut v, mut i) = (vec![f64::NAN; ho * wo], vec![usize::MAX; ho * wo]);
            let mut values_only = vec![f64::NAN; ho * wo];
            let mut scratch = Rows::new();
            pool_plane(&plane, w, (&rows, &cols), &mut scratch, &mut v, Some(&mut i));
            pool_plane(&plane, w, (&rows, &cols), &mut scratch, &mut values_only, None);
            for (oy, &(ylo, yhi)) in rows.iter().enumerate() {
                for (ox, &(xlo, xhi)) in cols.iter().enumerate() {
                    let mut at = ylo * w + xlo;
                    for y in ylo..yhi {
                        for x in xlo..xhi {
                            if plane[y * w + x] > plane[at] {
                                at = y * w + x;
                            }
                        }
                    }
                    let k = oy * wo + ox;
                    assert_eq!(i[k], at, "case {case}: index at ({oy}, {ox})");
                    assert_eq!(
                        v[k].to_bits(),
                        plane[at].to_bits(),
                        "case {case}: value at ({oy}, {ox})"
                    );
                    assert_eq!(
                        values_only[k].to_bits(),
                        plane[at].to_bits(),
                        "case {case}: value alone"
                    );
                }
            }
        }
    }
}
