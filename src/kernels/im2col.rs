//! im2col and col2im: a convolution's input unfolded into the columns of one matrix
//! product, and the product's columns folded back (overlapping taps added).

use crate::float::Float;
use crate::pool::written_zeros;
use ndarray::Array4;

/// Elements above which im2col and col2im run in parallel (feature `parallel`).
#[cfg(feature = "parallel")]
const PAR_LEN: usize = 1 << 18;

/// Sizes of one convolution call: batch, input and output sizes, kernel, stride, leading
/// padding and dilation, (height, width) pairs as in `Conv2dConfig`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) n: usize,
    /// Input channels (all groups).
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
    pub(crate) stride: (usize, usize),
    /// The padding before the input (top, left); the trailing padding only sets `ho`, `wo`.
    pub(crate) padding: (usize, usize),
    pub(crate) dilation: (usize, usize),
}

impl Geometry {
    /// For a convolution with stride 1 whose output rows are as wide as its input rows
    /// (`Wo = W`), a table indexed by im2col row `(c·kh + i)·kw + j` of `(base, rows, lo..hi)`:
    /// output position `d = oy·W + ox` of the tap reads input offset `d + base` (within a
    /// sample), for the output rows `rows` whose tap row lies inside the input and the
    /// columns `lo..hi` whose tap column does. `None` for other convolutions. Tabulated once
    /// per call: each entry divides, and im2col/col2im look them up per plane.
    #[allow(clippy::type_complexity)]
    fn same_rows(&self) -> Option<Vec<(isize, std::ops::Range<usize>, (usize, usize))>> {
        let g = self;
        if g.stride != (1, 1) || g.wo != g.w {
            return None;
        }
        let (ph, pw) = (g.padding.0 as isize, g.padding.1 as isize);
        let (dh, dw) = (g.dilation.0 as isize, g.dilation.1 as isize);
        let (h, w, ho) = (g.h as isize, g.w as isize, g.ho as isize);
        let (kh, kw) = (g.kh, g.kw);
        let entry = |row: usize| {
            let (j, rest) = ((row % kw) as isize, row / kw);
            let (i, ch) = ((rest % kh) as isize, (rest / kh) as isize);
            let (dy, dx) = (i * dh - ph, j * dw - pw);
            let rows = (-dy).clamp(0, ho) as usize..(h - dy).clamp(0, ho) as usize;
            let (lo, hi) = ((-dx).clamp(0, w) as usize, (w - dx).clamp(0, w) as usize);
            let rows = if lo < hi { rows } else { 0..0 };
            ((ch * h + dy) * w + dx, rows, (lo, hi))
        };
        Some((0..g.c * kh * kw).map(entry).collect())
    }

    /// For im2col row `row = (c·kh + i)·kw + j` and every output row `oy` whose tap row
    /// falls inside the input, calls `f(oy, lo, hi, offset)`: the valid output columns
    /// `lo..hi` and the input offset (within one sample) of the tap at `lo`; consecutive
    /// columns step by the stride in the input.
    fn row_runs(&self, row: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        let g = self;
        let (sh, sw) = g.stride;
        let (ph, pw) = g.padding;
        let (dh, dw) = g.dilation;
        let (j, rest) = (row % g.kw, row / g.kw);
        let (i, ch) = (rest % g.kh, rest / g.kh);
        // ix = ox·sw + j·dw − pw must lie in [0, w)
        let shift = (j * dw) as isize - pw as isize;
        let lo = if shift >= 0 {
            0
        } else {
            ((-shift) as usize).div_ceil(sw)
        };
        let hi = if (g.w as isize) > shift {
            (((g.w as isize - shift) as usize) - 1) / sw + 1
        } else {
            0
        }
        .min(g.wo);
        if lo >= hi {
            return;
        }
        let ix0 = (lo as isize * sw as isize + shift) as usize;
        for oy in 0..g.ho {
            let iy = (oy * sh + i * dh) as isize - ph as isize;
            if iy < 0 || iy >= g.h as isize {
                continue;
            }
            f(oy, lo, hi, (ch * g.h + iy as usize) * g.w + ix0);
        }
    }

    /// im2col: `[N, C, H, W]` → `[C·kh·kw, N·Ho·Wo]`, overwriting every element of `buf`
    /// (which may hold stale values). Rows are filled in parallel for large inputs
    /// (feature `parallel`).
    pub(crate) fn im2col<F: Float>(&self, x: &[F], buf: &mut [F]) {
        let g = self;
        let plane = g.ho * g.wo;
        let sample = g.c * g.h * g.w;
        let ncols = g.n * plane;
        let sw = self.stride.1;
        let same = self.same_rows();
        let fill = |row: usize, dst_row: &mut [F]| {
            if let Some((base, rows, (lo, hi))) = same.as_ref().map(|t| t[row].clone()) {
                // One contiguous copy per sample: with stride 1 and Wo = W, output row oy of
                // the tap reads input row oy + dy at the same column shift, so the copy
                // wraps into the neighbouring row only at the `W − (hi − lo)` columns the
                // padding covers, which are then zeroed.
                let zero = F::zero();
                for s in 0..g.n {
                    let dst = &mut dst_row[s * plane..(s + 1) * plane];
                    let (d0, d1) = (
                        rows.start * g.w + lo,
                        (rows.end.max(rows.start + 1) - 1) * g.w + hi,
                    );
                    if rows.is_empty() {
                        dst.fill(zero);
                        continue;
                    }
                    dst[..d0].fill(zero);
                    let src = s * sample + d0;
                    let src = (src as isize + base) as usize;
                    dst[d0..d1].copy_from_slice(&x[src..src + (d1 - d0)]);
                    dst[d1..].fill(zero);
                    zero_columns(dst, g.w, rows.clone(), lo, hi);
                }
                return;
            }
            // zeros where the tap falls into the padding; one row is small enough to stay
            // in cache between this and the copies below
            dst_row.fill(F::zero());
            self.row_runs(row, |oy, lo, hi, offset| {
                let len = hi - lo;
                for s in 0..g.n {
                    let start = s * plane + oy * g.wo + lo;
                    let dst = &mut dst_row[start..start + len];
                    let src = &x[s * sample + offset..];
                    if sw == 1 {
                        dst.copy_from_slice(&src[..len]);
                    } else {
                        gather_strided(dst, src, sw);
                    }
                }
            })
        };
        #[cfg(feature = "parallel")]
        if buf.len() >= PAR_LEN {
            use rayon::prelude::*;
            buf.par_chunks_mut(ncols)
                .enumerate()
                .for_each(|(row, dst)| fill(row, dst));
            return;
        }
        for (row, dst) in buf.chunks_mut(ncols).enumerate() {
            fill(row, dst);
        }
    }

    /// col2im: `[C·kh·kw, N·Ho·Wo]` → `[N, C, H, W]`, adding overlapping taps. Planes are
    /// filled in parallel for large outputs (feature `parallel`).
    pub(crate) fn col2im<F: Float>(&self, src: &mut [F]) -> Array4<F> {
        let g = self;
        let plane = g.ho * g.wo;
        let ncols = g.n * plane;
        let sw = self.stride.1;
        let hw = g.h * g.w;
        let taps = g.kh * g.kw;
        let same = self.same_rows();
        if let Some(same) = &same {
            // Contiguous adds (see `im2col`): first zero the columns whose tap falls into the
            // padding, so that the adds may run across them.
            for (row, src_row) in src.chunks_mut(ncols).enumerate() {
                let (_, rows, (lo, hi)) = same[row].clone();
                for s in 0..g.n {
                    zero_columns(
                        &mut src_row[s * plane..(s + 1) * plane],
                        g.w,
                        rows.clone(),
                        lo,
                        hi,
                    );
                }
            }
        }
        let src = &*src;
        // gathered with `+=`: start from written zeros
        let mut out =
            crate::tensor::layout::shaped((g.n, g.c, g.h, g.w), written_zeros(g.n * g.c * g.h * g.w));
        let buf = crate::tensor::layout::standard_mut(&mut out);
        // one (sample, channel) plane gathers the rows (channel, i, j) of its sample's columns
        let gather = |index: usize, dst: &mut [F]| {
            let (s, ch) = (index / g.c, index % g.c);
            for row in ch * taps..(ch + 1) * taps {
                if let Some(same) = &same {
                    let (base, rows, _) = same[row].clone();
                    if rows.is_empty() {
                        continue;
                    }
                    // output positions d0..d1 add into input offsets d + base
                    let (d0, d1) = (rows.start * g.w, rows.end * g.w);
                    let from = &src[row * ncols + s * plane + d0..row * ncols + s * plane + d1];
                    // clip to this channel's plane: the clipped columns are padding (zeroed)
                    let at = |d: usize| (d as isize + base) - (ch * hw) as isize;
                    let (skip, end) = (
                        (-at(d0)).max(0) as usize,
                        (d1 - d0).min((hw as isize - at(d0)) as usize),
                    );
                    let start = (at(d0) + skip as isize) as usize;
                    for (d, v) in dst[start..start + (end - skip)].iter_mut().zip(&from[skip..end]) {
                        *d += *v;
                    }
                    continue;
                }
                self.row_runs(row, |oy, lo, hi, offset| {
                    let len = hi - lo;
                    let start = row * ncols + s * plane + oy * g.wo + lo;
                    let from = &src[start..start + len];
                    let dst = &mut dst[offset - ch * hw..];
                    if sw == 1 {
                        for (d, v) in dst[..len].iter_mut().zip(from) {
                            *d += *v;
                        }
                    } else {
                        scatter_add_strided(dst, from, sw);
                    }
                })
            }
        };
        #[cfg(feature = "parallel")]
        if src.len() >= PAR_LEN {
            use rayon::prelude::*;
            buf.par_chunks_mut(hw)
                .enumerate()
                .for_each(|(index, dst)| gather(index, dst));
            return out;
        }
        for (index, dst) in buf.chunks_mut(hw).enumerate() {
            gather(index, dst);
        }
        out
    }
}

/// `dst[k] = src[k·step]` for every `k` of `dst` (`src` holds at least
/// `(dst.len() − 1)·step + 1` elements). Stride 2 (downsampling convolutions) takes pairs,
/// which vectorises, where `step_by` would step one element at a time.
fn gather_strided<F: Copy>(dst: &mut [F], src: &[F], step: usize) {
    let Some(last) = dst.len().checked_sub(1) else {
        return;
    };
    let src = &src[..last * step + 1];
    if step == 2 {
        // `last` whole pairs, then the last element alone
        for (d, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
            *d = pair[0];
        }
        dst[last] = src[last * 2];
        return;
    }
    for (k, d) in dst.iter_mut().enumerate() {
        *d = src[k * step];
    }
}

/// `dst[k·step] += from[k]` for every `k` of `from` (`dst` holds at least
/// `(from.len() − 1)·step + 1` elements): the transpose of [`gather_strided`], the same
/// additions in the same order as a strided loop.
fn scatter_add_strided<F: Float>(dst: &mut [F], from: &[F], step: usize) {
    let Some(last) = from.len().checked_sub(1) else {
        return;
    };
    let dst = &mut dst[..last * step + 1];
    if step == 2 {
        // `last` whole pairs, then the last element alone
        for (pair, &v) in dst.chunks_exact_mut(2).zip(from) {
            pair[0] += v;
        }
        dst[last * 2] += from[last];
        return;
    }
    for (k, &v) in from.iter().enumerate() {
        dst[k * step] += v;
    }
}

/// Zeros columns `..lo` and `hi..` of rows `rows` of a row-major plane `width` wide: a
/// column at a time, as strided stores (per-row `fill`s of one or two elements would each be
/// a `memset` call).
fn zero_columns<F: Float>(plane: &mut [F], width: usize, rows: std::ops::Range<usize>, lo: usize, hi: usize) {
    for j in (0..lo).chain(hi..width) {
        for oy in rows.clone() {
            plane[oy * width + j] = F::zero();
        }
    }
}

/// `[a, b, plane…]` → `[b, a, plane…]` for contiguous `src` and `dst`: one copy per plane.
pub(crate) fn swap_plane_axes<F: Float>(src: &[F], a: usize, b: usize, dst: &mut [F]) {
    let plane = src.len() / (a * b).max(1);
    if plane == 0 {
        return;
    }
    for (k, d) in dst.chunks_exact_mut(plane).enumerate() {
        let (j, i) = (k / a, k % a);
        d.copy_from_slice(&src[(i * b + j) * plane..(i * b + j + 1) * plane]);
    }
}

#[cfg(test)]
mod tests {
    use super::{gather_strided, scatter_add_strided};

    /// The strided copies against `step_by`, for every short length, steps 2 and 3, and
    /// sources exactly as long as needed or longer (a stride-2 source of odd length ends
    /// in half a pair).
    #[test]
    fn strided_copies_match_step_by() {
        for step in [2usize, 3] {
            for len in 0..12usize {
                for extra in 0..3usize {
                    let need = if len == 0 { 0 } else { (len - 1) * step + 1 };
                    let src: Vec<f64> = (0..need + extra).map(|i| i as f64 * 0.5 + 1.0).collect();
                    let mut dst = vec![-1.0; len];
                    gather_strided(&mut dst, &src, step);
                    let want: Vec<f64> = src.iter().step_by(step).take(len).copied().collect();
                    assert_eq!(dst, want, "gather, step {step}, len {len}, extra {extra}");

                    let from: Vec<f64> = (0..len).map(|i| i as f64 + 0.25).collect();
                    let mut got = src.clone();
                    scatter_add_strided(&mut got, &from, step);
                    let mut want = src.clone();
                    for (d, v) in want.iter_mut().step_by(step).zip(&from) {
                        *d += *v;
                    }
                    assert_eq!(got, want, "scatter, step {step}, len {len}, extra {extra}");
                }
            }
        }
    }
}
