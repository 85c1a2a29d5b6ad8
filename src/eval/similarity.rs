//! Similarity of two explanations: Spearman rank correlation and SSIM, as Quantus computes
//! them for its randomisation metrics (`similarity_func.py`: scipy's `spearmanr`,
//! scikit-image's `structural_similarity`).

use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{ArrayD, ArrayViewD, Axis};

/// Checks two arrays to compare: the same non-empty shape, finite values.
fn check_pair<F: Float>(a: &ArrayViewD<'_, F>, b: &ArrayViewD<'_, F>) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::Shape {
            what: "second explanation (the first one's shape)".into(),
            expected: a.shape().to_vec(),
            got: b.shape().to_vec(),
        });
    }
    if a.is_empty() {
        return Err(Error::EmptyBatch);
    }
    crate::tensor::checks::check_finite("first explanation", a)?;
    crate::tensor::checks::check_finite("second explanation", b)
}

/// Ranks 1..=n with ties given their average rank (scipy's `rankdata(method="average")`).
fn ranks<F: Float>(v: &[F]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&p, &q| v[p].partial_cmp(&v[q]).unwrap_or(std::cmp::Ordering::Equal));
    let mut r = vec![0.0; v.len()];
    let mut start = 0;
    while start < idx.len() {
        let mut end = start + 1;
        while end < idx.len() && v[idx[end]] == v[idx[start]] {
            end += 1;
        }
        // positions start..end (0-based) share the mean of ranks start+1..=end
        let mean = (start + end + 1) as f64 / 2.0;
        for &i in &idx[start..end] {
            r[i] = mean;
        }
        start = end;
    }
    r
}

/// Spearman's rank correlation of the values of two arrays (flattened in C order): the
/// Pearson correlation of their ranks, ties ranked by their average (scipy's `spearmanr`,
/// Quantus' `correlation_spearman`). NaN when either array is constant (as scipy).
///
/// ```
/// use ndarray::array;
/// use relevance::eval::spearman;
/// # fn main() -> relevance::Result<()> {
/// let a = array![1.0, 2.0, 3.0, 4.0].into_dyn();
/// let b = array![10.0, 20.0, 25.0, 100.0].into_dyn(); // same order
/// assert!((spearman(&a.view(), &b.view())? - 1.0).abs() < 1e-12);
/// let c = array![4.0, 3.0, 2.0, 1.0].into_dyn();
/// assert!((spearman(&a.view(), &c.view())? + 1.0).abs() < 1e-12);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Shape`] for arrays of different shapes, [`Error::EmptyBatch`] for empty ones,
/// [`Error::NonFinite`] for NaN or ∞.
pub fn spearman<F: Float>(a: &ArrayViewD<'_, F>, b: &ArrayViewD<'_, F>) -> Result<f64> {
    check_pair(a, b)?;
    let (ra, rb) = (
        ranks(&a.iter().copied().collect::<Vec<_>>()),
        ranks(&b.iter().copied().collect::<Vec<_>>()),
    );
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    Ok(sab / (saa * sbb).sqrt())
}

/// The mean of every full `win`-wide window along every axis ("valid" positions only).
fn window_mean(x: &ArrayD<f64>, win: usize) -> ArrayD<f64> {
    let mut cur = x.clone();
    for axis in 0..x.ndim() {
        let mut shape = cur.shape().to_vec();
        shape[axis] -= win - 1;
        let mut out = ArrayD::<f64>::zeros(shape);
        for (src, mut dst) in cur.lanes(Axis(axis)).into_iter().zip(out.lanes_mut(Axis(axis))) {
            for (k, d) in dst.iter_mut().enumerate() {
                *d = (k..k + win).map(|j| src[j]).sum::<f64>() / win as f64;
            }
        }
        cur = out;
    }
    cur
}

/// The structural similarity (SSIM; Wang et al. 2004) of two arrays of any number of axes,
/// as scikit-image's `structural_similarity` with Quantus' settings: a `win`-wide uniform
/// window along every axis (skimage's default is 7), sample covariances,
/// `K1 = 0.01`, `K2 = 0.03`, the data range `max − min` of both arrays together, and the
/// mean over the positions whose window lies inside the array.
///
/// Quantus' randomisation metric flattens each explanation before calling it (a 1-D SSIM
/// over the pixels in C order); Adebayo et al. (2018) compare images: pass `[H, W]` maps
/// for that. NaN when both arrays are the same constant (zero data range, as skimage).
///
/// ```
/// use ndarray::Array2;
/// use relevance::eval::ssim;
/// # fn main() -> relevance::Result<()> {
/// let a = Array2::from_shape_fn((8, 8), |(i, j)| (i * j) as f64).into_dyn();
/// assert!((ssim(&a.view(), &a.view(), 7)? - 1.0).abs() < 1e-12);
/// let b = a.mapv(|v| 63.0 - v);
/// assert!(ssim(&a.view(), &b.view(), 7)? < 0.0);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`spearman`]; [`Error::InvalidParameter`] for an even or zero window, or a window
/// larger than a side of the arrays.
pub fn ssim<F: Float>(a: &ArrayViewD<'_, F>, b: &ArrayViewD<'_, F>, win: usize) -> Result<f64> {
    check_pair(a, b)?;
    if win % 2 == 0 || a.shape().iter().any(|&s| s < win) {
        return Err(super::invalid(
            "ssim",
            format!(
                "the window ({win}) must be odd and fit in every axis of {:?}",
                a.shape()
            ),
        ));
    }
    let x = a.mapv(|v| v.as_f64());
    let y = b.mapv(|v| v.as_f64());
    let (lo, hi) = x
        .iter()
        .chain(y.iter())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let range = hi - lo;
    let (c1, c2) = ((0.01 * range).powi(2), (0.03 * range).powi(2));
    let np = (win as f64).powi(x.ndim() as i32);
    let cov_norm = np / (np - 1.0);
    let (ux, uy) = (window_mean(&x, win), window_mean(&y, win));
    let uxx = window_mean(&(&x * &x), win);
    let uyy = window_mean(&(&y * &y), win);
    let uxy = window_mean(&(&x * &y), win);
    let mut total = 0.0;
    for ((((&mx, &my), &sxx), &syy), &sxy) in ux.iter().zip(&uy).zip(&uxx).zip(&uyy).zip(&uxy) {
        let vx = cov_norm * (sxx - mx * mx);
        let vy = cov_norm * (syy - my * my);
        let vxy = cov_norm * (sxy - mx * my);
        let s = ((2.0 * mx * my + c1) * (2.0 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
        total += s;
    }
    Ok(total / ux.len() as f64)
}
