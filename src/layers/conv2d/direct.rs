//! The direct path of [`Conv2d`] (`kernels::direct`): stride-1, one-group convolutions with
//! few output channels and taps, forward (with the bias) and transposed (a sum of terms).

use super::Conv2d;
use crate::float::Float;
use crate::kernels::direct::{self, Packed, Post};
use crate::kernels::im2col::Geometry;
use crate::pool::output_vec;
use ndarray::{ArrayD, ArrayView2, ArrayView4, ArrayViewD};

/// Output channels up to which a stride-1 convolution takes the direct path. Wider layers
/// go through im2col and a matrix product, whose packing then pays for itself.
const DIRECT_MAX_OUT: usize = 32;

/// Taps per output channel (`C·kh·kw`) up to which a convolution takes the direct path.
const DIRECT_MAX_TAPS: usize = 512;

#[cfg(test)]
thread_local! {
    /// Set by tests to check the im2col path on layers that would take the direct one.
    static IM2COL_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread's tests keep layers off the direct path.
fn im2col_only() -> bool {
    #[cfg(test)]
    return IM2COL_ONLY.with(|c| c.get());
    #[cfg(not(test))]
    false
}

/// Runs `f` with every layer off the direct path on this thread (tests of the im2col path).
#[cfg(test)]
pub(super) fn on_im2col<R>(f: impl FnOnce() -> R) -> R {
    IM2COL_ONLY.with(|c| c.set(true));
    let r = f();
    IM2COL_ONLY.with(|c| c.set(false));
    r
}

impl<F: Float> Conv2d<F> {
    /// The direct kernel's shape for the forward pass on `g`, if this layer takes the direct
    /// path: stride 1, one group, at most [`DIRECT_MAX_OUT`] output channels and
    /// [`DIRECT_MAX_TAPS`] taps, on a machine with vector fused multiply-adds. Like the
    /// Winograd choice it depends on the layer and the per-sample shape only, never on the
    /// batch size. Checked after the Winograd and 1×1 paths.
    pub(super) fn direct_shape(&self, g: &Geometry) -> Option<direct::Shape> {
        let c = &self.config;
        let o = self.out_channels();
        let end = c.pad_end();
        let eligible = c.stride == (1, 1)
            && c.groups == 1
            && !im2col_only()
            && o <= DIRECT_MAX_OUT
            && g.c * g.kh * g.kw <= DIRECT_MAX_TAPS
            && direct::available();
        let shape = direct::Shape {
            c: g.c,
            o,
            h: g.h,
            w: g.w,
            kh: g.kh,
            kw: g.kw,
            dilation: c.dilation,
            pad: [c.padding.0, c.padding.1, end.0, end.1],
        };
        (eligible && shape.out() == Some((g.ho, g.wo))).then_some(shape)
    }

    /// The transposed pass of a sum of `terms` on the direct path: the correlation of the
    /// stacked output-side maps with the flipped kernels (`Packed::transposed`) and padding
    /// `d·(k − 1) − p`; `None` where the forward pass does not take the direct path or a
    /// padding exceeds `d·(k − 1)`.
    pub(super) fn direct_transpose(
        &self,
        g: &Geometry,
        terms: &[(ArrayView4<'_, F>, ArrayView2<'_, F>)],
    ) -> Option<ArrayD<F>> {
        if terms.is_empty() {
            return None;
        }
        let fwd = self.direct_shape(g)?;
        let (dh, dw) = fwd.dilation;
        let reach = [dh * (g.kh - 1), dw * (g.kw - 1), dh * (g.kh - 1), dw * (g.kw - 1)];
        let mut pad = [0; 4];
        for (p, (&r, &q)) in pad.iter_mut().zip(reach.iter().zip(&fwd.pad)) {
            *p = r.checked_sub(q)?;
        }
        let o = fwd.o;
        let shape = direct::Shape {
            c: terms.len() * o,
            o: g.c,
            h: g.ho,
            w: g.wo,
            pad,
            ..fwd
        };
        if shape.out() != Some((g.h, g.w)) {
            return None;
        }
        let s_std: Vec<_> = terms.iter().map(|(s, _)| s.as_standard_layout()).collect();
        let w_std: Vec<_> = terms.iter().map(|(_, w)| w.as_standard_layout()).collect();
        let sources: Vec<(&[F], usize)> = s_std
            .iter()
            .map(|s| (crate::tensor::layout::standard(s), o))
            .collect();
        let ws: Vec<&[F]> = w_std.iter().map(crate::tensor::layout::standard).collect();
        let packed = Packed::transposed(&ws, o, g.c, g.kh, g.kw);
        let len = g.n * g.c * g.h * g.w;
        let mut out = output_vec(len);
        direct::conv(&shape, g.n, &sources, &packed, None, Post::default(), &mut out);
        out.resize(len, F::zero()); // (full already: the shape was checked)
        Some(crate::tensor::layout::shaped(vec![g.n, g.c, g.h, g.w], out).into_dyn())
    }

    /// The forward pass of `input` with the steps `post` if this layer takes the direct path
    /// on it; `None` if not (and for an input it cannot take, whose error the general path
    /// reports). The direct path adds the bias as it stores each sum: the same bits as the
    /// product followed by a bias pass.
    pub(super) fn direct_run(&self, input: &ArrayViewD<'_, F>, post: Post) -> Option<ArrayD<F>> {
        let x4 = Self::as_batch4("Conv2d input", input.view()).ok()?;
        let g = self
            .geometry(x4.shape()[0], crate::tensor::checks::per_sample(x4.shape()))
            .ok()?;
        let ds = self.direct_shape(&g)?;
        let x4 = x4.as_standard_layout();
        // the weight is kept in standard layout, so packed once
        let own;
        let packed = match self.weight.as_slice() {
            Some(w) => self.transformed.packed.get_or_init(|| Packed::forward(w, ds.o)),
            None => {
                own = Packed::forward(&self.weight.iter().copied().collect::<Vec<F>>(), ds.o);
                &own
            }
        };
        let bias = self.bias.as_ref().map(|b| b.as_standard_layout());
        let bias = bias.as_ref().map(crate::tensor::layout::standard);
        let x = crate::tensor::layout::standard(&x4);
        Some(self.direct_packed(&g, &ds, x, packed, bias, post))
    }

    /// The forward pass on the direct path of `x` (`[N, C, H, W]`, standard layout) with the
    /// weight matrix `wm` (`[O, C·kh·kw]`), plus `bias` if given, then the fused steps `post`.
    pub(super) fn direct_forward(
        &self,
        g: &Geometry,
        shape: &direct::Shape,
        x: &[F],
        wm: &ArrayView2<'_, F>,
        bias: Option<&[F]>,
        post: Post,
    ) -> ArrayD<F> {
        let wm = wm.as_standard_layout();
        let packed = Packed::forward(crate::tensor::layout::standard(&wm), shape.o);
        self.direct_packed(g, shape, x, &packed, bias, post)
    }

    /// [`direct_forward`](Self::direct_forward) with the weight packed.
    fn direct_packed(
        &self,
        g: &Geometry,
        shape: &direct::Shape,
        x: &[F],
        packed: &Packed<F>,
        bias: Option<&[F]>,
        post: Post,
    ) -> ArrayD<F> {
        let (ho, wo) = post.out((g.ho, g.wo));
        let len = g.n * shape.o * ho * wo;
        let mut out = output_vec(len);
        direct::conv(shape, g.n, &[(x, g.c)], packed, bias, post, &mut out);
        out.resize(len, F::zero()); // (full already: the shape was checked)
        crate::tensor::layout::shaped(vec![g.n, shape.o, ho, wo], out).into_dyn()
    }
}
