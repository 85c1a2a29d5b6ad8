//! The [`Affine`] pair of [`Conv2d`]: the convolution with substituted weights (im2col and one
//! matrix product per group, or Winograd) and its transpose (one col2im for a sum of terms),
//! and the convolution of an all-ones image.

use super::Conv2d;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::gemm::{gemm, gemm_acc};
use crate::kernels::im2col::swap_plane_axes;
use crate::kernels::{winograd, winograd1d};
use crate::layers::{Affine, Layer};
use crate::pool::{output_buffer, with_scratch};
use ndarray::{
    Array1, Array2, Array4, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, CowArray, Ix2,
    Ix4,
};

impl<F: Float> Affine<F> for Conv2d<F> {
    fn weight(&self) -> ArrayViewD<'_, F> {
        self.weight.view().into_dyn()
    }

    fn bias(&self) -> Option<ArrayView1<'_, F>> {
        self.bias.as_ref().map(|b| b.view())
    }

    fn kept_weights(&self) -> Option<&crate::layers::KeptWeights<F>> {
        Some(&self.transformed.kept)
    }

    fn apply_with(&self, x: ArrayViewD<'_, F>, w: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        Ok(self.apply_many(x, &[w])?.pop().expect("one weight, one result"))
    }

    /// True for one group (with several, weight column `k` meets a different input
    /// channel in each group).
    fn weight_columns_are_input_channels(&self) -> bool {
        self.config.groups == 1
    }

    fn with_parameters(&self, weight: ArrayD<F>, bias: Array1<F>) -> Option<Result<Box<dyn Layer<F>>>> {
        let shape = weight.shape().to_vec();
        Some(match weight.into_dimensionality::<Ix4>() {
            Ok(w) => Conv2d::new(w, Some(bias), self.config).map(|c| Box::new(c) as Box<dyn Layer<F>>),
            Err(_) => Err(Error::Shape {
                what: "Conv2d weight".into(),
                expected: self.weight.shape().to_vec(),
                got: shape,
            }),
        })
    }

    /// The convolution of an image of ones is, at each output position, the sum of the
    /// weight over the taps that fall inside the image: per output row the valid kernel rows
    /// are an interval, and so are the valid kernel columns per output column, so interior
    /// positions share one sum and no product is formed.
    fn apply_ones(&self, w: ArrayViewD<'_, F>, input_shape: &[usize]) -> Result<ArrayD<F>> {
        let g = self.geometry(1, input_shape)?;
        let wm = self.weight_matrix(w)?;
        let (o, taps, kw) = (self.out_channels(), g.kh * g.kw, g.kw);
        let c = self.config;
        // the kernel positions k with 0 ≤ out·stride + k·dilation − pad < len, an interval
        let valid = |out: usize, k: usize, stride: usize, pad: usize, dil: usize, len: usize| {
            // (pad is the leading padding; the trailing one only limits the output size)
            let at = |k: usize| (out * stride + k * dil) as isize - pad as isize;
            let lo = (0..k).find(|&i| at(i) >= 0).unwrap_or(k);
            let hi = (lo..k).find(|&i| at(i) >= len as isize).unwrap_or(k);
            (lo, hi)
        };
        // runs of output rows (columns) sharing their interval of valid kernel rows (columns)
        let runs = |n: usize, f: &dyn Fn(usize) -> (usize, usize)| {
            let mut runs: Vec<(std::ops::Range<usize>, (usize, usize))> = Vec::new();
            for i in 0..n {
                let v = f(i);
                match runs.last_mut() {
                    Some((range, last)) if *last == v => range.end = i + 1,
                    _ => runs.push((i..i + 1, v)),
                }
            }
            runs
        };
        let row_runs = runs(g.ho, &|oy| {
            valid(oy, g.kh, c.stride.0, c.padding.0, c.dilation.0, g.h)
        });
        let col_runs = runs(g.wo, &|ox| {
            valid(ox, g.kw, c.stride.1, c.padding.1, c.dilation.1, g.w)
        });
        let mut out = output_buffer(o * g.ho * g.wo); // every element is written below
        let mut kernel = vec![F::zero(); taps];
        let mut col_sums = vec![F::zero(); kw];
        let mut sums = vec![F::zero(); col_runs.len()];
        for (oc, plane) in out.chunks_mut(g.ho * g.wo).enumerate() {
            // Σ over input channels
            kernel.fill(F::zero());
            let w_row = wm.row(oc);
            for (t, k) in kernel.iter_mut().enumerate() {
                // the output channel's own group of input channels, all ones
                for ch in 0..self.in_channels() {
                    *k += w_row[ch * taps + t];
                }
            }
            for (rows, (i0, i1)) in &row_runs {
                // the run's sums, then its rows (short fills, no copies)
                col_sums.fill(F::zero());
                for i in *i0..*i1 {
                    for (s, v) in col_sums.iter_mut().zip(&kernel[i * kw..(i + 1) * kw]) {
                        *s += *v;
                    }
                }
                for (sum, (_, (j0, j1))) in sums.iter_mut().zip(&col_runs) {
                    *sum = col_sums[*j0..*j1].iter().fold(F::zero(), |a, &v| a + v);
                }
                for row in plane[rows.start * g.wo..rows.end * g.wo].chunks_mut(g.wo) {
                    for (&sum, (cols, _)) in sums.iter().zip(&col_runs) {
                        for y in &mut row[cols.clone()] {
                            *y = sum;
                        }
                    }
                }
            }
        }
        Ok(crate::tensor::layout::shaped(vec![1, o, g.ho, g.wo], out))
    }

    /// One im2col matrix (or Winograd input transform) for every weight.
    fn apply_many(&self, x: ArrayViewD<'_, F>, ws: &[ArrayViewD<'_, F>]) -> Result<Vec<ArrayD<F>>> {
        let x4 = Self::as_batch4("Conv2d input", x)?;
        let g = self.geometry(x4.shape()[0], crate::tensor::checks::per_sample(x4.shape()))?;
        let wms = ws
            .iter()
            .map(|w| self.weight_matrix(w.clone()))
            .collect::<Result<Vec<_>>>()?;
        let x4 = x4.as_standard_layout();
        let x = crate::tensor::layout::standard(&x4);
        let o = self.out_channels();
        let (wino, wino1d) = (self.winograd_shape(&g), self.winograd1d_shape(&g));
        if wino.is_some() || wino1d.is_some() {
            let std: Vec<_> = wms.iter().map(|w| w.as_standard_layout()).collect();
            let slices: Vec<&[F]> = std.iter().map(crate::tensor::layout::standard).collect();
            // the output transform overwrites every element
            let dim = (g.n, o, g.ho, g.wo);
            let mut outs: Vec<Array4<F>> = ws
                .iter()
                .map(|_| crate::tensor::layout::shaped(dim, output_buffer(g.n * o * g.ho * g.wo)))
                .collect();
            let mut ys: Vec<&mut [F]> = outs.iter_mut().map(crate::tensor::layout::standard_mut).collect();
            match (wino, wino1d) {
                (Some(shape), _) => self.with_transforms_3x3(&shape, &slices, |us| {
                    winograd::conv3x3_transformed(x, &shape, us, &mut ys)
                }),
                (None, Some(shape)) => {
                    let us: Vec<_> = slices.iter().map(|w| self.transformed_1x3(w, false)).collect();
                    let us: Vec<&[F]> = us.iter().map(|u| &u[..]).collect();
                    winograd1d::conv_many(x, &shape, &us, &mut ys);
                }
                (None, None) => {}
            }
            return Ok(outs.into_iter().map(|a| a.into_dyn()).collect());
        }
        if self.is_pointwise(&g) {
            // a 1×1 convolution with stride 1 and no padding: each sample's [C, H·W] is
            // already its im2col matrix, so one product per sample reads the input in place
            // (the product im2col's path would run on a copy: the same bits)
            let plane = g.ho * g.wo;
            let work = o * g.c * plane;
            return Ok(wms
                .iter()
                .map(|wm| {
                    // every element is overwritten by the products
                    let mut out = output_buffer(g.n * o * plane);
                    for (xs, ys) in x.chunks_exact(g.c * plane).zip(out.chunks_exact_mut(o * plane)) {
                        let xs = crate::tensor::layout::view((g.c, plane), xs);
                        gemm(
                            wm,
                            &xs,
                            &mut crate::tensor::layout::view_mut((o, plane), ys),
                            work,
                        );
                    }
                    crate::tensor::layout::shaped(vec![g.n, o, g.ho, g.wo], out)
                })
                .collect());
        }
        if let Some(ds) = self.direct_shape(&g) {
            return Ok(wms
                .iter()
                .map(|wm| self.direct_forward(&g, &ds, x, wm, None, crate::kernels::direct::Post::default()))
                .collect());
        }
        // [O, N·Ho·Wo] = W[O, C·kh·kw] · cols, for each W (block-diagonal with groups: group
        // k's outputs take group k's rows of the columns)
        let groups = self.config.groups;
        let rows = self.in_channels() * g.kh * g.kw;
        let ncols = g.n * g.ho * g.wo;
        let work = o * rows * g.ho * g.wo;
        Ok(with_scratch(rows * groups * ncols, |buf| {
            g.im2col(x, buf);
            let cols = crate::tensor::layout::view((rows * groups, ncols), &*buf);
            wms.iter()
                .map(|wm| {
                    let og = o / groups;
                    let product = |out: &mut ArrayViewMut2<'_, F>| {
                        for k in 0..groups {
                            let block = |r: usize| ndarray::Slice::from(k * r..(k + 1) * r);
                            gemm(
                                &wm.slice_axis(Axis(0), block(og)),
                                &cols.slice_axis(Axis(0), block(rows)),
                                &mut out.slice_axis_mut(Axis(0), block(og)),
                                work / groups,
                            );
                        }
                    };
                    // [O, N·Ho·Wo], overwritten by the product; for one sample the output's
                    // layout already
                    let mut prod = output_buffer(o * ncols);
                    product(&mut crate::tensor::layout::view_mut((o, ncols), &mut prod));
                    if g.n == 1 {
                        return crate::tensor::layout::shaped(vec![1, o, g.ho, g.wo], prod);
                    }
                    // one plane copy per (sample, channel); the spent product goes back to the
                    // pool (not to this thread's scratch, which would keep it beyond the pool's cap)
                    let mut out = output_buffer(g.n * o * g.ho * g.wo);
                    swap_plane_axes(&prod, o, g.n, &mut out);
                    crate::pool::recycle(crate::tensor::layout::shaped(vec![prod.len()], prod));
                    crate::tensor::layout::shaped(vec![g.n, o, g.ho, g.wo], out)
                })
                .collect()
        }))
    }

    fn apply_transpose(
        &self,
        s: ArrayViewD<'_, F>,
        w: ArrayViewD<'_, F>,
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        self.apply_transpose_sum(&[(s, w)], input_shape)
    }

    /// One col2im (or Winograd output transform) for the whole sum.
    fn apply_transpose_sum(
        &self,
        terms: &[(ArrayViewD<'_, F>, ArrayViewD<'_, F>)],
        input_shape: &[usize],
    ) -> Result<ArrayD<F>> {
        let Some((first, _)) = terms.first() else {
            return Err(Error::Unsupported {
                rule: "Conv2d".into(),
                reason: "a sum of transposed maps needs at least one term".into(),
            });
        };
        let (_, g) = self.output_side(first.clone(), input_shape)?;
        let mut sides = Vec::with_capacity(terms.len());
        for (s, w) in terms {
            let (s4, gs) = self.output_side(s.clone(), input_shape)?;
            if gs.n != g.n {
                return Err(Error::BatchMismatch {
                    what: "Conv2d output relevance of a summed term".into(),
                    batch: g.n,
                    got: gs.n,
                });
            }
            sides.push((s4, self.weight_matrix(w.clone())?));
        }
        let o = self.out_channels();
        let (wino, wino1d) = (self.winograd_shape(&g), self.winograd1d_shape(&g));
        if wino.is_some() || wino1d.is_some() {
            let s_std: Vec<_> = sides.iter().map(|(s4, _)| s4.as_standard_layout()).collect();
            let w_std: Vec<_> = sides.iter().map(|(_, wm)| wm.as_standard_layout()).collect();
            let xs: Vec<&[F]> = s_std.iter().map(crate::tensor::layout::standard).collect();
            let wts: Vec<&[F]> = w_std.iter().map(crate::tensor::layout::standard).collect();
            // the output transform overwrites every element
            let mut out =
                crate::tensor::layout::shaped((g.n, g.c, g.h, g.w), output_buffer(g.n * g.c * g.h * g.w));
            let y = crate::tensor::layout::standard_mut(&mut out);
            match (wino, wino1d) {
                (Some(ws), _) => {
                    // the correlation of s with the kernel flipped in space, channels swapped,
                    // and padding 2 − p (winograd module docs)
                    let ts = winograd::Shape {
                        n: g.n,
                        c: o,
                        o: g.c,
                        h: g.ho,
                        w: g.wo,
                        pad: 2 - ws.pad,
                    };
                    // through the weights' forward transforms: kept for the layer's own
                    // weight and kept rule-modified ones, made for this call otherwise
                    self.with_transforms_3x3(&ws, &wts, |us| winograd::conv3x3_sum(&xs, &ts, us, y));
                }
                (None, Some(ws)) => {
                    // the correlation of s with the kernel reversed, channels swapped
                    // (winograd1d docs)
                    let us: Vec<_> = wts.iter().map(|w| self.transformed_1x3(w, true)).collect();
                    let us: Vec<&[F]> = us.iter().map(|u| &u[..]).collect();
                    winograd1d::conv_sum(&xs, &ws.transposed(), &us, y);
                }
                (None, None) => {}
            }
            return Ok(out.into_dyn());
        }
        // cols = Σ Wᵀ[C·kh·kw, O] · s2, with s2 = s as [O, N·Ho·Wo]
        let plane = g.ho * g.wo;
        let (rows, ncols) = (self.in_channels() * g.kh * g.kw, g.n * plane);
        let work = o * rows * plane;
        // s as [O, N·Ho·Wo]: a view for one sample, else written into `dst`
        let put = |s4: &ndarray::ArrayView4<'_, F>, mut dst: ArrayViewMut2<'_, F>| {
            let mut dst = dst
                .view_mut()
                .into_shape_with_order((o, g.n, g.ho, g.wo))
                .expect("sizes agree");
            match (s4.to_slice(), dst.as_slice_mut()) {
                // one plane copy per (channel, sample)
                (Some(src), Some(d)) => swap_plane_axes(src, g.n, o, d),
                _ => dst.assign(&s4.view().permuted_axes([1, 0, 2, 3])),
            }
        };
        let stacked = |sides: &[(ndarray::ArrayView4<'_, F>, ArrayView2<'_, F>)]| -> Array2<F> {
            let t = sides.len();
            // every element is written
            let mut s2 = crate::tensor::layout::shaped((t * o, ncols), output_buffer(t * o * ncols));
            for (k, (s4, _)) in sides.iter().enumerate() {
                put(
                    s4,
                    s2.slice_axis_mut(Axis(0), ndarray::Slice::from(k * o..(k + 1) * o)),
                );
            }
            s2
        };
        if self.is_pointwise(&g) {
            // a 1×1 convolution with stride 1 and no padding: col2im would only copy, so each
            // sample's product is written in place (the same products as below, sample by
            // sample: the same bits)
            let t = sides.len();
            let unstacked = t > 1 && !stacks(&sides);
            let run = self.kept_run_of(&sides);
            let wcat = (!unstacked).then(|| stacked_weights(&sides, run.as_ref()));
            let s_std: Vec<_> = sides.iter().map(|(s4, _)| s4.as_standard_layout()).collect();
            let s_sl: Vec<&[F]> = s_std.iter().map(crate::tensor::layout::standard).collect();
            // every element is overwritten by the products
            let mut out =
                crate::tensor::layout::shaped((g.n, g.c, g.h, g.w), output_buffer(g.n * g.c * plane));
            let buf = crate::tensor::layout::standard_mut(&mut out);
            let side = o * plane;
            for (k, dst) in buf.chunks_exact_mut(g.c * plane).enumerate() {
                let mut dst = crate::tensor::layout::view_mut((g.c, plane), dst);
                let Some(wcat) = wcat.as_ref() else {
                    // large weights: one product per term, accumulated
                    for (i, ((_, wm), s)) in sides.iter().zip(&s_sl).enumerate() {
                        let s = crate::tensor::layout::view((o, plane), &s[k * side..(k + 1) * side]);
                        gemm_acc(&wm.t(), &s, &mut dst, work, i > 0);
                    }
                    continue;
                };
                if let [s] = s_sl.as_slice() {
                    let s = crate::tensor::layout::view((o, plane), &s[k * side..(k + 1) * side]);
                    gemm(&wcat.t(), &s, &mut dst, work);
                    continue;
                }
                with_scratch(t * side, |stack: &mut [F]| {
                    for (part, s) in stack.chunks_exact_mut(side).zip(&s_sl) {
                        part.copy_from_slice(&s[k * side..(k + 1) * side]);
                    }
                    let stack = crate::tensor::layout::view((t * o, plane), &*stack);
                    gemm(&wcat.t(), &stack, &mut dst, work * t);
                });
            }
            return Ok(out.into_dyn());
        }
        let groups = self.config.groups;
        if groups > 1 {
            // block-diagonal: group k's columns gather Σ_t W_t[k]ᵀ · s_t[k]
            let s2 = stacked(&sides);
            let og = o / groups;
            return Ok(with_scratch(rows * groups * ncols, |buf| {
                let mut cols = crate::tensor::layout::view_mut((rows * groups, ncols), &mut *buf);
                for k in 0..groups {
                    let mut ck = cols.slice_axis_mut(Axis(0), ndarray::Slice::from(k * rows..(k + 1) * rows));
                    for (t, (_, wm)) in sides.iter().enumerate() {
                        let wk = wm.slice_axis(Axis(0), ndarray::Slice::from(k * og..(k + 1) * og));
                        let sk = s2.slice_axis(
                            Axis(0),
                            ndarray::Slice::from(t * o + k * og..t * o + (k + 1) * og),
                        );
                        gemm_acc(&wk.t(), &sk, &mut ck, work / groups, t > 0);
                    }
                }
                g.col2im(buf)
            })
            .into_dyn());
        }
        if let Some(out) = self.direct_transpose(&g, &sides) {
            return Ok(out);
        }
        // several terms: one product of the stacked weights [W₁ᵀ | W₂ᵀ | …] and the stacked
        // [s₁; s₂; …], rather than one product per term accumulated into the columns
        if sides.len() > 1 && !stacks(&sides) {
            // large weights: one product per term, accumulated into the columns
            return Ok(with_scratch(rows * ncols, |buf| {
                let mut cols = crate::tensor::layout::view_mut((rows, ncols), &mut *buf);
                for (i, (s4, wm)) in sides.iter().enumerate() {
                    let one = std::slice::from_ref(&sides[i]);
                    let s2: CowArray<'_, F, Ix2> = match s4.view().into_shape_with_order((o, ncols)) {
                        Ok(v) if g.n == 1 => v.into(),
                        _ => stacked(one).into(),
                    };
                    gemm_acc(&wm.t(), &s2.view(), &mut cols, work, i > 0);
                    if !s2.is_view() {
                        crate::pool::recycle(s2.into_owned().into_dyn());
                    }
                }
                g.col2im(buf)
            })
            .into_dyn());
        }
        let run = self.kept_run_of(&sides);
        let wm = stacked_weights(&sides, run.as_ref());
        let s2: CowArray<'_, F, Ix2> = match sides.as_slice() {
            [(s4, _)] => match s4.view().into_shape_with_order((o, ncols)) {
                Ok(v) if g.n == 1 => v.into(),
                _ => stacked(&sides).into(),
            },
            _ => stacked(&sides).into(),
        };
        Ok(with_scratch(rows * ncols, |buf| {
            let mut cols = crate::tensor::layout::view_mut((rows, ncols), &mut *buf);
            gemm(&wm.t(), &s2.view(), &mut cols, work * sides.len());
            g.col2im(buf)
        })
        .into_dyn())
    }
}

impl<F: Float> Conv2d<F> {
    /// The kept rule-modified weights that the weights of `sides` are, one after the other
    /// in memory (see [`stacked_weights`]).
    fn kept_run_of(
        &self,
        sides: &[(ndarray::ArrayView4<'_, F>, ArrayView2<'_, F>)],
    ) -> Option<(std::sync::Arc<crate::layers::KeptSet<F>>, usize)> {
        if sides.len() < 2 {
            return None;
        }
        let ws: Option<Vec<&[F]>> = sides.iter().map(|(_, wm)| wm.as_slice()).collect();
        self.transformed.kept.find_run(&ws?)
    }
}

/// Weights of at least this many elements are not stacked for a sum of transposed terms
/// (the matrix products of the terms accumulate into the columns instead): the stacked copy
/// is as large as the weights it copies, held beside them (18.9 MB for the two LRP-γ
/// weights of a 512-channel 3×3 layer, at the peak of a ResNet-50 explanation), and on the
/// few columns of a deep layer, copying costs about as much as the products' one read of
/// the weights. A layer's size decides, never the batch: the same sums are rounded the same
/// way alone or in a batch.
pub(crate) const STACK_MAX: usize = 1 << 20;

/// Whether the weights of a sum of transposed terms are stacked into one product (small
/// weights) or multiplied term by term ([`STACK_MAX`]).
fn stacks<F: Float>(sides: &[(ndarray::ArrayView4<'_, F>, ArrayView2<'_, F>)]) -> bool {
    sides.first().is_none_or(|(_, wm)| wm.len() < STACK_MAX)
}

/// The weights of a sum of transposed terms stacked by rows, `[W₁; W₂; …]` (`[t·O, C·kh·kw]`),
/// so that their transposes form one product's left factor: a view for one term, or for
/// kept rule-modified weights stored one after the other (`run`: their set and the first's
/// index), else a copy.
fn stacked_weights<'a, F: Float>(
    sides: &'a [(ndarray::ArrayView4<'_, F>, ArrayView2<'_, F>)],
    run: Option<&'a (std::sync::Arc<crate::layers::KeptSet<F>>, usize)>,
) -> CowArray<'a, F, Ix2> {
    if let [(_, wm)] = sides {
        return wm.view().into();
    }
    let ws: Vec<_> = sides.iter().map(|(_, wm)| wm.view()).collect();
    if let (Some((set, first)), Some(w)) = (run, ws.first()) {
        let (o, k) = w.dim();
        if let Ok(v) = ArrayView2::from_shape((ws.len() * o, k), set.span(*first, ws.len())) {
            return v.into();
        }
    }
    ndarray::concatenate(Axis(0), &ws).expect("same columns").into()
}
