//! Output sizes of sliding-window operations (convolution, max and average pooling).

/// Output size of one spatial axis of a window operation, as PyTorch computes it
/// (`pooling_output_shape_pad_lr` for pools, the plain formula for convolutions):
/// `⌊(len + pad_begin + pad_end − span) / stride⌋ + 1` with `span = dil·(k − 1) + 1`,
/// rounded up instead of down with `ceil`, in which case the last window must start inside
/// the input or its leading padding. `None` if the padded input is smaller than the window
/// (or a value overflows, or the padded length exceeds `isize::MAX`, beyond which the
/// kernels' signed index arithmetic would overflow: absurd configurations are errors, not
/// overflows).
pub(crate) fn window_out(
    len: usize,
    k: usize,
    stride: usize,
    pad: (usize, usize),
    dil: usize,
    ceil: bool,
) -> Option<usize> {
    let span = dil.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    let padded = pad.0.checked_add(pad.1)?.checked_add(len)?;
    if padded > isize::MAX as usize || padded < span || stride == 0 {
        return None;
    }
    let room = padded - span;
    let mut out = if ceil {
        room.checked_add(stride - 1)? / stride + 1
    } else {
        room / stride + 1
    };
    if ceil && (out - 1).checked_mul(stride)? >= len.checked_add(pad.0)? {
        out -= 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::window_out;

    #[test]
    fn matches_pytorch_output_sizes() {
        // nn.MaxPool2d(3, 2, ceil_mode=True) on 112 → 56 (ResNet stem: floor gives 55)
        assert_eq!(window_out(112, 3, 2, (0, 0), 1, true), Some(56));
        assert_eq!(window_out(112, 3, 2, (0, 0), 1, false), Some(55));
        // SqueezeNet's pool: 109 → 54
        assert_eq!(window_out(109, 3, 2, (0, 0), 1, true), Some(54));
        // ceil_mode never starts a window in the trailing padding: 5, k 2, s 2, pad 1
        assert_eq!(window_out(5, 2, 2, (1, 1), 1, true), Some(3));
        assert_eq!(window_out(4, 2, 2, (0, 0), 1, true), Some(2));
        assert_eq!(window_out(2, 3, 1, (0, 0), 1, false), None);
        // asymmetric padding: 5 + 0 + 1 = 6, k 3, s 2 → 2
        assert_eq!(window_out(5, 3, 2, (0, 1), 1, false), Some(2));
        assert_eq!(window_out(usize::MAX, 3, 1, (1, 1), 1, false), None);
    }
}
