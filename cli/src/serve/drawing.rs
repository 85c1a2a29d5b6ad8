//! A drawing on the page made into what a digit model saw when it was trained: MNIST's
//! recipe (LeCun et al. 1998, as described on the MNIST page) — the strokes' bounding box
//! scaled so that its longer side is 20 pixels (area averaging, aspect kept), placed in a
//! 28 × 28 frame with its centre of mass at the centre — and DeepLIFT's blurred baseline.

use ndarray::{Array2, ArrayD, Axis};

/// The longer side of the strokes' box in MNIST digits, as a fraction of the frame (20/28).
const BOX_FRACTION: f64 = 20.0 / 28.0;

/// Grey pixels in [0, 1] (`height × width`, row-major), strokes bright on dark, as the page
/// sends them: made into a `size.0 × size.1` image of the model's input, strokes centred by
/// their centre of mass. An empty drawing gives an all-zero image.
pub fn prepare(pixels: &Array2<f64>, size: (usize, usize)) -> Array2<f64> {
    let (h, w) = size;
    let mut out = Array2::zeros((h, w));
    // 1. the strokes' bounding box (pixels above a faint threshold)
    let ink = |v: f64| v > 0.02;
    let rows: Vec<usize> = (0..pixels.nrows())
        .filter(|&r| pixels.row(r).iter().any(|&v| ink(v)))
        .collect();
    let cols: Vec<usize> = (0..pixels.ncols())
        .filter(|&c| pixels.column(c).iter().any(|&v| ink(v)))
        .collect();
    let (Some(&r0), Some(&r1), Some(&c0), Some(&c1)) = (rows.first(), rows.last(), cols.first(), cols.last())
    else {
        return out;
    };
    let crop = pixels.slice(ndarray::s![r0..=r1, c0..=c1]).to_owned();
    // 2. scale so the longer side is 20/28 of the frame (area averaging, aspect kept)
    let (bh, bw) = crop.dim();
    let target = BOX_FRACTION * h.min(w) as f64;
    let factor = target / bh.max(bw) as f64;
    let nh = ((bh as f64 * factor).round() as usize).clamp(1, h);
    let nw = ((bw as f64 * factor).round() as usize).clamp(1, w);
    let small = resample(&crop, nh, nw);
    // 3. centre of mass of the scaled strokes, put at the frame's centre
    let total: f64 = small.sum();
    if total <= 0.0 {
        return out;
    }
    let (mut cy, mut cx) = (0.0, 0.0);
    for ((r, c), &v) in small.indexed_iter() {
        cy += (r as f64 + 0.5) * v;
        cx += (c as f64 + 0.5) * v;
    }
    let (cy, cx) = (cy / total, cx / total);
    let top = (h as f64 / 2.0 - cy).round() as isize;
    let left = (w as f64 / 2.0 - cx).round() as isize;
    for ((r, c), &v) in small.indexed_iter() {
        let (y, x) = (r as isize + top, c as isize + left);
        if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
            out[[y as usize, x as usize]] = v.clamp(0.0, 1.0);
        }
    }
    out
}

/// Area-averaging resample of `src` to `nh × nw` (each output pixel is the mean of the
/// source area it covers, partial pixels weighted by their overlap).
pub fn resample(src: &Array2<f64>, nh: usize, nw: usize) -> Array2<f64> {
    let rows = weights(src.nrows(), nh);
    let cols = weights(src.ncols(), nw);
    // rows first: [nh, W], then columns: [nh, nw]
    let mut tmp = Array2::zeros((nh, src.ncols()));
    for (o, ws) in rows.iter().enumerate() {
        for &(i, wgt) in ws {
            let mut row = tmp.row_mut(o);
            row.scaled_add(wgt, &src.row(i));
        }
    }
    let mut out = Array2::zeros((nh, nw));
    for (o, ws) in cols.iter().enumerate() {
        for &(i, wgt) in ws {
            let mut col = out.column_mut(o);
            col.scaled_add(wgt, &tmp.column(i));
        }
    }
    out
}

/// For each of `n` output cells, the source indices it covers and their normalised weights.
fn weights(len: usize, n: usize) -> Vec<Vec<(usize, f64)>> {
    let step = len as f64 / n as f64;
    (0..n)
        .map(|o| {
            let (a, b) = (o as f64 * step, (o + 1) as f64 * step);
            let mut ws = Vec::new();
            let mut i = a.floor() as usize;
            while (i as f64) < b && i < len {
                let overlap = (b.min(i as f64 + 1.0) - a.max(i as f64)).max(0.0);
                if overlap > 0.0 {
                    ws.push((i, overlap / step));
                }
                i += 1;
            }
            ws
        })
        .collect()
}

/// A Gaussian blur (standard deviation `sigma` pixels, borders clamped) of every `H × W`
/// plane of a per-sample input `[C, H, W]` (or `[H, W]`): DeepLIFT's "blurred input"
/// baseline, which keeps the coarse shape and removes the detail.
pub fn blur(x: &ArrayD<f32>, sigma: f64) -> ArrayD<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|d| (-((d * d) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / norm).collect();
    let mut out = x.clone();
    if x.ndim() < 2 {
        return out;
    }
    let planes = x.ndim() - 2;
    let blur_plane = |mut plane: ndarray::ArrayViewMut2<f32>| {
        let (h, w) = plane.dim();
        let src = plane.mapv(f64::from);
        let mut tmp = Array2::<f64>::zeros((h, w));
        for r in 0..h {
            for c in 0..w {
                tmp[[r, c]] = (-radius..=radius)
                    .map(|d| {
                        let cc = (c as isize + d).clamp(0, w as isize - 1) as usize;
                        kernel[(d + radius) as usize] * src[[r, cc]]
                    })
                    .sum();
            }
        }
        for r in 0..h {
            for c in 0..w {
                let v: f64 = (-radius..=radius)
                    .map(|d| {
                        let rr = (r as isize + d).clamp(0, h as isize - 1) as usize;
                        kernel[(d + radius) as usize] * tmp[[rr, c]]
                    })
                    .sum();
                plane[[r, c]] = v as f32;
            }
        }
    };
    if planes == 0 {
        if let Ok(plane) = out.view_mut().into_dimensionality() {
            blur_plane(plane);
        }
        return out;
    }
    let shape = x.shape().to_vec();
    let (h, w) = (shape[planes], shape[planes + 1]);
    let count: usize = shape[..planes].iter().product();
    let Ok(mut flat) = out.into_shape_with_order((count, h, w)) else {
        return x.clone();
    };
    for plane in flat.axis_iter_mut(Axis(0)) {
        blur_plane(plane);
    }
    flat.into_shape_with_order(shape)
        .map_or_else(|_| x.clone(), |a| a.into_dyn())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stroke_is_scaled_to_twenty_pixels_and_centred_by_mass() {
        // a vertical bar 100 px tall, 10 px wide, in the top-left corner of a 200 × 200 canvas
        let mut canvas = Array2::zeros((200, 200));
        canvas.slice_mut(ndarray::s![5..105, 10..20]).fill(1.0);
        let img = prepare(&canvas, (28, 28));
        let rows: Vec<usize> = (0..28).filter(|&r| img.row(r).sum() > 0.0).collect();
        assert_eq!(rows.len(), 20, "the longer side becomes 20 pixels");
        assert_eq!((rows[0], rows[19]), (4, 23), "centred vertically");
        let cols: Vec<usize> = (0..28).filter(|&c| img.column(c).sum() > 0.0).collect();
        assert_eq!(
            cols,
            vec![13, 14],
            "10/100 of 20 pixels = 2 columns at the centre"
        );
        assert!(
            (img.sum() - 40.0).abs() < 1e-9,
            "area averaging keeps the ink: {}",
            img.sum()
        );
    }

    #[test]
    fn an_empty_drawing_is_an_empty_image() {
        assert_eq!(prepare(&Array2::zeros((50, 50)), (28, 28)).sum(), 0.0);
    }

    #[test]
    fn resampling_averages_areas() {
        let src = Array2::from_shape_fn((4, 4), |(r, c)| (r * 4 + c) as f64);
        let out = resample(&src, 2, 2);
        assert_eq!(out, ndarray::array![[2.5, 4.5], [10.5, 12.5]]);
        let third = resample(&Array2::from_elem((3, 3), 1.0), 2, 2);
        assert!(third.iter().all(|&v| (v - 1.0).abs() < 1e-12));
    }

    #[test]
    fn blur_keeps_a_constant_and_spreads_a_point() {
        let flat = ArrayD::from_elem(vec![1, 5, 5], 0.5f32);
        assert!(blur(&flat, 1.5).iter().all(|&v| (v - 0.5).abs() < 1e-6));
        let mut point = ArrayD::zeros(vec![1, 9, 9]);
        point[[0, 4, 4]] = 1.0f32;
        let b = blur(&point, 1.0);
        assert!((b.sum() - 1.0).abs() < 1e-5);
        assert!(b[[0, 4, 4]] < 0.2 && b[[0, 4, 5]] > 0.05 && b[[0, 4, 5]] == b[[0, 5, 4]]);
    }
}
