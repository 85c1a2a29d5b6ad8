//! From relevance to palette indices: channel reduction, then normalisation.

use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewD, Axis, Ix2, Ix3};

use crate::{Error, Float, Result};

/// How the channels of a `[C, H, W]` relevance map are combined into one `[H, W]` map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// `Σ_c R_c` (the default; zennit's examples and captum's `_normalize_attr` do this).
    /// Keeps the sign, and the total relevance of each pixel.
    #[default]
    Sum,
    /// `Σ_c R_c / C`. Differs from `Sum` only by a factor, which every normalisation removes.
    Mean,
    /// `Σ_c |R_c|`, non-negative.
    SumAbs,
    /// `max_c |R_c|`, non-negative.
    MaxAbs,
}

/// How a reduced `[H, W]` map is mapped to palette indices 0..=255.
///
/// Every variant ends with zennit's `uint8(clip(255·(x − vmin)/(vmax − vmin), 0, 255))`,
/// computed in the relevance's float type, with **truncation**; they differ in `vmin`,
/// `vmax` and whether `x` is first replaced by `|x|`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Normalization {
    /// zennit's `imgify(symmetric=True)`: `vmax = max|x|`, `vmin = −vmax`, so 0 ↦ 127,
    /// `+max` ↦ 255 and `−max` ↦ 0. The default. An all-zero map renders as index 127
    /// everywhere (the colour of zero) instead of dividing by zero.
    #[default]
    Symmetric,
    /// `|x|` from `vmin = 0` to `vmax = max|x|`: 0 ↦ 0, ±max ↦ 255. Pair it with a one-sided
    /// palette ([`Palette::gray`](super::Palette::gray), `Palette::zennit("hot")`). An
    /// all-zero map renders as index 0.
    Absolute,
    /// zennit's `imgify(symmetric=False)`: `vmin = min x`, `vmax = max x` (zero has no fixed
    /// colour). A constant map renders as index 127.
    Unaligned,
    /// captum's outlier clipping (`visualize_image_attr`, sign `"all"`): the threshold `t`
    /// is the first value of the ascending sorted `|x|` at which their cumulative sum
    /// reaches `(100 − outlier_perc) %` of the total; then symmetric with `vmax = t`,
    /// `vmin = −t`, so values beyond `±t` saturate. captum's default is `Percentile(2.0)`.
    /// Needs `0 ≤ outlier_perc ≤ 100`. An all-zero map renders as index 127; if `t` is 0
    /// but the map is not (a huge outlier share), zeros render 127, positive values 255
    /// and negative values 0.
    Percentile(f64),
}

/// Combines the channels of a `[C, H, W]` relevance map into `[H, W]`; a `[H, W]` map is
/// returned unchanged.
///
/// ```
/// use ndarray::array;
/// use relevance::heatmap::{reduce_channels, Reduction};
/// # fn main() -> relevance::Result<()> {
/// let r = array![[[1.0, -2.0]], [[3.0, 1.0]]]; // [C = 2, H = 1, W = 2]
/// assert_eq!(reduce_channels(&r.view().into_dyn(), Reduction::Sum)?, array![[4.0, -1.0]]);
/// assert_eq!(reduce_channels(&r.view().into_dyn(), Reduction::Mean)?, array![[2.0, -0.5]]);
/// assert_eq!(reduce_channels(&r.view().into_dyn(), Reduction::SumAbs)?, array![[4.0, 3.0]]);
/// assert_eq!(reduce_channels(&r.view().into_dyn(), Reduction::MaxAbs)?, array![[3.0, 2.0]]);
/// # Ok(()) }
/// ```
///
/// # Shapes
/// `[C, H, W]` or `[H, W]` in, `[H, W]` out.
///
/// # Errors
/// [`Error::Rank`] if the map has neither 2 nor 3 dimensions; [`Error::Image`] if it is
/// empty (a zero-length axis); [`Error::NonFinite`] for a NaN or infinite value.
pub fn reduce_channels<T: Float>(relevance: &ArrayViewD<'_, T>, reduction: Reduction) -> Result<Array2<T>> {
    if let Some((index, value)) = relevance.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "relevance".into(),
            index,
            value: value.as_f64(),
        });
    }
    if relevance.is_empty() {
        return Err(Error::Image {
            what: "relevance".into(),
            reason: format!("empty map of shape {:?}", relevance.shape()),
        });
    }
    if let Ok(map) = relevance.view().into_dimensionality::<Ix2>() {
        return Ok(map.to_owned());
    }
    let map: ArrayView3<'_, T> = relevance
        .view()
        .into_dimensionality::<Ix3>()
        .map_err(|_| Error::Rank {
            what: "relevance ([C, H, W] or [H, W])".into(),
            expected: 3,
            got: relevance.ndim(),
            shape: relevance.shape().to_vec(),
        })?;
    let channels = map.len_of(Axis(0));
    Ok(match reduction {
        Reduction::Sum => map.sum_axis(Axis(0)),
        Reduction::Mean => map.sum_axis(Axis(0)) / T::lit(channels as f64),
        Reduction::SumAbs => map.map(|v| v.abs()).sum_axis(Axis(0)),
        Reduction::MaxAbs => map.fold_axis(Axis(0), T::zero(), |&m, &v| m.max(v.abs())),
    })
}

/// Maps an `[H, W]` map to palette indices under a [`Normalization`].
///
/// ```
/// use ndarray::array;
/// use relevance::heatmap::{normalize, Normalization};
/// # fn main() -> relevance::Result<()> {
/// let r = array![[-2.0f32, -1.0, 0.0, 1.0, 2.0]];
/// assert_eq!(normalize(&r.view(), Normalization::Symmetric)?, array![[0u8, 63, 127, 191, 255]]);
/// assert_eq!(normalize(&r.view(), Normalization::Absolute)?, array![[255u8, 127, 0, 127, 255]]);
/// assert_eq!(normalize(&r.view(), Normalization::Unaligned)?, array![[0u8, 63, 127, 191, 255]]);
/// // All zero: no division by zero, every pixel gets the colour of zero.
/// assert_eq!(normalize(&array![[0.0f32, 0.0]].view(), Normalization::Symmetric)?, array![[127u8, 127]]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::NonFinite`] for a NaN or infinite value; [`Error::Image`] for an empty map or
/// an `outlier_perc` outside `[0, 100]`.
pub fn normalize<T: Float>(map: &ArrayView2<'_, T>, normalization: Normalization) -> Result<Array2<u8>> {
    if let Some((index, value)) = map.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "relevance".into(),
            index,
            value: value.as_f64(),
        });
    }
    if map.is_empty() {
        return Err(Error::Image {
            what: "relevance".into(),
            reason: format!("empty map of shape {:?}", map.shape()),
        });
    }
    let max_abs = map.fold(T::zero(), |m, &v| m.max(v.abs()));
    let (vmin, vmax, absolute) = match normalization {
        Normalization::Symmetric => (-max_abs, max_abs, false),
        Normalization::Absolute => (T::zero(), max_abs, true),
        Normalization::Unaligned => {
            let lo = map.fold(T::infinity(), |m, &v| m.min(v));
            let hi = map.fold(T::neg_infinity(), |m, &v| m.max(v));
            (lo, hi, false)
        }
        Normalization::Percentile(outlier_perc) => {
            let t = percentile_threshold(map.iter().copied(), outlier_perc)?;
            (-t, t, false)
        }
    };
    let scale = T::lit(255.0);
    // a range beyond the float type (values near ±f32::MAX) is computed in f64
    let wide = !(vmax - vmin).is_finite();
    Ok(map.mapv(|x| {
        let x = if absolute { x.abs() } else { x };
        if vmax > vmin && wide {
            let v = (x.as_f64() - vmin.as_f64()) / (vmax.as_f64() - vmin.as_f64()) * 255.0;
            v.clamp(0.0, 255.0) as u8
        } else if vmax > vmin {
            // uint8(clip(255 (x - vmin) / (vmax - vmin), 0, 255)): truncation, 0 -> 127.
            let v = (x - vmin) / (vmax - vmin) * scale;
            v.max(T::zero()).min(scale).as_f64() as u8
        } else if absolute {
            0
        } else if x > vmax {
            255
        } else if x < vmin {
            0
        } else {
            127
        }
    }))
}

/// captum's `_cumulative_sum_threshold(|x|, 100 − outlier_perc)`: sorts `|x|` ascending and
/// returns the first value at which the cumulative sum reaches `total · 0.01 · (100 −
/// outlier_perc)`. Values above it are the "outliers" that [`Normalization::Percentile`]
/// saturates.
///
/// ```
/// use relevance::heatmap::percentile_threshold;
/// # fn main() -> relevance::Result<()> {
/// // |x| sorted: 1, 1, 1, 1, 96; cumulative 1, 2, 3, 4, 100. 98 % of 100 is reached only by 96.
/// assert_eq!(percentile_threshold([1.0, -1.0, 96.0, 1.0, 1.0], 2.0)?, 96.0);
/// // Sorted 1, 2, 3, 4 (cumulative 1, 3, 6, 10): 50 % of 10 is reached at the third value.
/// assert_eq!(percentile_threshold([4.0, 1.0, 2.0, 3.0], 50.0)?, 3.0);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Image`] if `outlier_perc` is outside `[0, 100]` or there are no values;
/// [`Error::NonFinite`] for a NaN or infinite value.
pub fn percentile_threshold<T: Float>(values: impl IntoIterator<Item = T>, outlier_perc: f64) -> Result<T> {
    if !(0.0..=100.0).contains(&outlier_perc) {
        return Err(Error::Image {
            what: "outlier_perc".into(),
            reason: format!("must lie in [0, 100], got {outlier_perc}"),
        });
    }
    let mut sorted: Vec<T> = Vec::new();
    for (index, v) in values.into_iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: "relevance".into(),
                index,
                value: v.as_f64(),
            });
        }
        sorted.push(v.abs());
    }
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let mut cumsum = Vec::with_capacity(sorted.len());
    let mut acc = T::zero();
    for &v in &sorted {
        acc += v;
        cumsum.push(acc);
    }
    let total = *cumsum.last().ok_or_else(|| Error::Image {
        what: "relevance".into(),
        reason: "no values".into(),
    })?;
    let cutoff = total * T::lit(0.01) * T::lit(100.0 - outlier_perc);
    let i = cumsum
        .iter()
        .position(|&c| c >= cutoff)
        .unwrap_or(sorted.len() - 1);
    Ok(sorted[i])
}
