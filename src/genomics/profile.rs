//! DeepLIFT-SHAP of a profile head through `Σ softmax(z) · z`, the scalar bpnet-lite 1.1.0's
//! `ProfileWrapper` (`bpnetlite/bpnet.py`, with `_ProfileLogitScaling`) makes of a BPNet's
//! profile logits, and the stop-gradient form of ChromBPNet's TensorFlow code.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::network::Network;
use crate::rules::DeepLift;
use crate::tensor::checks::check_finite;
use ndarray::{Array2, ArrayD, Axis, IxDyn};

use super::deep_lift_shap::{check, run, PerSequence, SequenceAttribution, TANGERMEME_THRESHOLD};

/// How the softmax weights of the profile scalar `f = Σ_j softmax(z)_j · z_j` are treated,
/// `z` being the network's output (all of it, flattened per sequence: both strands of a
/// BPNet profile head together, as bpnet-lite's `Flatten`) minus its mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProfileWeights {
    /// bpnet-lite 1.1.0's `deep_lift_shap` (`bpnetlite/attribute.py`): the whole step
    /// `z ↦ z ⊙ softmax(z)` (`_ProfileLogitScaling`) gets tangermeme's Rescale rule
    /// (`_nonlinear`) position by position, multiplier `Δ(z_j s_j) / Δz_j`. **Additive**:
    /// the attributions of each pair sum to `f(x) − f(ref)` (the gap is rounding only).
    /// Where `|Δz_j| < 1e-6` the multiplier falls back, as tangermeme's does, to the gradient
    /// at the input with the inner `Softmax` module's own DeepLIFT rule (tangermeme's
    /// `_softmax`) in place of its Jacobian: the plain gradient `s_j (1 + z_j − f)` when the
    /// reference equals the input. Only where that fallback is taken are the attributions not
    /// exactly additive (a toy network built to take it at a third of its logits showed a
    /// gap of 0.0066, as tangermeme's).
    #[default]
    Additive,
    /// ChromBPNet's TensorFlow code (`tf.stop_gradient(softmax(z)) · z`, summed): the
    /// softmax weights of the input sequence are held constant, so the seed on `z` is
    /// `softmax(z(x))`, the same for every reference. **Not additive**: the attributions sum
    /// to `Σ_j softmax(z(x))_j Δz_j`, not to `f(x) − f(ref)`; the difference is in
    /// [`SequenceAttribution::gap`] (and `pair_deltas`). On the small random BPNet of the
    /// tests (`tools/gen_profile_fixtures.py`) the gap is about half of `f(x) − mean f(ref)`
    /// (0.0045 of 0.0087 and 0.0057 of 0.0120), the same as tangermeme's on a
    /// `softmax(z).detach()` wrapper.
    StopGradient,
}

/// [`deep_lift_shap`](super::deep_lift_shap) of the profile scalar `f(x) = Σ_j softmax(z)_j ·
/// z_j`, `z` the network's output minus its mean (bpnet-lite's `ProfileWrapper`), against
/// explicit references, with the softmax weights treated as `weights` says.
///
/// The network is the profile head alone, its output the logits (`[N, S, L']` or already
/// flattened); the scalar is built here, as a seed on the logits per (sequence, reference)
/// pair. `output` and `reference_output` of the result are `f`, and `gap` and `pair_deltas`
/// are measured against `f` (so they show that [`ProfileWeights::StopGradient`] is not
/// additive).
///
/// # Errors
/// As [`deep_lift_shap`](super::deep_lift_shap) ([`Error::NonFinite`] for NaN or infinite
/// inputs); [`Error::NonFiniteResult`] if the network's outputs overflow.
///
/// # Example
/// ```
/// use ndarray::{Array2, Array3, Axis};
/// use relevance::genomics::{deep_lift_shap_profile, ProfileWeights};
/// use relevance::{Conv1d, Conv1dConfig, Flatten, Layer, Network, Relu};
/// # fn main() -> relevance::Result<()> {
/// let w1 = Array3::from_shape_fn((3, 4, 3), |(o, c, k)| ((o + 2 * c + k) % 5) as f64 / 4.0 - 0.5);
/// let w2 = Array3::from_shape_fn((2, 3, 3), |(o, c, k)| ((2 * o + c + k) % 3) as f64 / 2.0 - 0.4);
/// let net = Network::<f64>::new(&[4, 8], vec![
///     Box::new(Conv1d::new(w1, None, Conv1dConfig::default().same())?) as Box<dyn Layer<f64>>,
///     Box::new(Relu),
///     Box::new(Conv1d::new(w2, None, Conv1dConfig::default())?), // logits [N, 2, 6]
///     Box::new(Flatten),
/// ])?;
/// let one_hot = |bases: &[usize]| Array2::from_shape_fn((4, 8), |(c, l)| f64::from(u8::from(bases[l] == c)));
/// let x = one_hot(&[0, 1, 2, 3, 0, 1, 2, 2]).insert_axis(Axis(0)).into_dyn();
/// let refs = ndarray::stack![Axis(0), one_hot(&[0, 2, 2, 1, 3, 0, 1, 2]), one_hot(&[0, 1, 2, 2, 3, 0, 1, 2])]
///     .insert_axis(Axis(0))
///     .into_dyn();
/// let additive = deep_lift_shap_profile(&net, &x, &refs, ProfileWeights::Additive)?;
/// assert!(additive.gap[0].abs() < 1e-12); // Σ attributions = f(x) − mean f(refs)
/// let held = deep_lift_shap_profile(&net, &x, &refs, ProfileWeights::StopGradient)?;
/// assert_eq!(held.hypothetical.shape(), &[1, 4, 8]); // its gap is not 0 in general
/// # Ok(()) }
/// ```
pub fn deep_lift_shap_profile<F: Float>(
    net: &Network<F>,
    x: &ArrayD<F>,
    references: &ArrayD<F>,
    weights: ProfileWeights,
) -> Result<SequenceAttribution<F>> {
    let rule = DeepLift::rescale().with_threshold(TANGERMEME_THRESHOLD)?;
    deep_lift_shap_profile_with(net, x, references, weights, &rule)
}

/// [`deep_lift_shap_profile`] with another DeepLIFT rule for the network's layers (the
/// profile step itself keeps tangermeme's threshold, 1e-6).
///
/// # Errors
/// As [`deep_lift_shap_profile`].
pub fn deep_lift_shap_profile_with<F: Float>(
    net: &Network<F>,
    x: &ArrayD<F>,
    references: &ArrayD<F>,
    weights: ProfileWeights,
    rule: &DeepLift,
) -> Result<SequenceAttribution<F>> {
    let (_, refs) = check(x, references)?;
    check_finite("deep_lift_shap_profile input", &x.view())?;
    check_finite("deep_lift_shap_profile references", &references.view())?;
    let (n, r, a, l) = refs.dim();
    let flat_refs = refs
        .to_owned()
        .into_shape_with_order((n * r, a, l))
        .expect("a standard-layout copy")
        .into_dyn();
    let yx = net.forward(x)?;
    let yr = net.forward(&flat_refs)?;
    let out_shape = yx.shape()[1..].to_vec();
    let k = out_shape.iter().product::<usize>();
    if k == 0 {
        return Err(Error::Shape {
            what: "deep_lift_shap_profile network output (at least one logit)".into(),
            expected: vec![n, 1],
            got: yx.shape().to_vec(),
        });
    }
    let zx = centred(yx, n, k)?;
    let zr = centred(yr, n * r, k)?;
    let (sx, fx) = softmax_and_value(&zx);
    let (sr, fr) = softmax_and_value(&zr);
    let threshold = F::lit(TANGERMEME_THRESHOLD);
    let kf = F::lit(k as f64);
    let mut seeds = Array2::<F>::zeros((n * r, k));
    for p in 0..n * r {
        let i = p / r;
        let (zxi, zrp) = (zx.index_axis(Axis(0), i), zr.index_axis(Axis(0), p));
        let fallback = (weights == ProfileWeights::Additive
            && zxi
                .iter()
                .zip(zrp.iter())
                .any(|(&a, &b)| (a - b).abs() < threshold))
        .then(|| nested_gradient(zxi, zrp, threshold));
        let mut row = seeds.index_axis_mut(Axis(0), p);
        for j in 0..k {
            let (a, b) = (zxi[j], zrp[j]);
            row[j] = match weights {
                ProfileWeights::StopGradient => sx[[i, j]],
                ProfileWeights::Additive => {
                    let dz = a - b;
                    match &fallback {
                        Some(g) if dz.abs() < threshold => g[j],
                        _ => (a * sx[[i, j]] - b * sr[[p, j]]) / dz,
                    }
                }
            };
        }
        // through the centring z = y − mean(y): the seed minus its mean
        let mean = row.sum() / kf;
        row.mapv_inplace(|v| v - mean);
    }
    let mut seed_shape = vec![n * r];
    seed_shape.extend_from_slice(&out_shape);
    let seeds_d = seeds
        .clone()
        .into_shape_with_order(IxDyn(&seed_shape))
        .expect("a standard-layout array");
    let mut out = run(net, x, references, &PerSequence::PairSeeds(seeds_d), rule)?;
    // the linear part the pair deltas were measured against, seed · (y(x) − y(ref)), is
    // Σ seed·Δz (the seed sums to zero); measure them against f instead
    let scale = F::one() / F::lit(r as f64);
    for i in 0..n {
        out.output[i] = fx[i];
        out.reference_output[i] = (0..r).fold(F::zero(), |acc, kk| acc + fr[i * r + kk]) * scale;
        for kk in 0..r {
            let p = i * r + kk;
            let linear = (0..k).fold(F::zero(), |acc, j| {
                acc + seeds[[p, j]] * (zx[[i, j]] - zr[[p, j]])
            });
            out.pair_deltas[[i, kk]] += linear - (fx[i] - fr[p]);
        }
        out.gap[i] =
            out.attributions.index_axis(Axis(0), i).sum() - (out.output[i] - out.reference_output[i]);
    }
    Ok(out)
}

/// The gradient tangermeme falls back on where `|Δz_j| < 1e-6` in the additive variant:
/// the gradient of `Σ z ⊙ softmax(z)` at the input `zx`, with the inner `Softmax` module's
/// own DeepLIFT rule (tangermeme's `_softmax` in `_deep_lift_utils.py`: exp, sum,
/// reciprocal, product, chained with log-ratio multipliers) in place of the softmax's
/// Jacobian, since the outer module's full backward hook receives the gradient the inner
/// hook has already corrected: `s_j(x) + m_j`, `m` the softmax rule applied to the upstream
/// gradient `zx`. Equal to the plain gradient `s_j (1 + z_j − f)` when `zx = zr`.
fn nested_gradient<F: Float>(
    zx: ndarray::ArrayView1<'_, F>,
    zr: ndarray::ArrayView1<'_, F>,
    threshold: F,
) -> Vec<F> {
    let c = zx
        .iter()
        .chain(zr.iter())
        .fold(F::neg_infinity(), |m, &v| m.max(v));
    let a: Vec<F> = zx.iter().map(|&v| (v - c).exp()).collect();
    let ar: Vec<F> = zr.iter().map(|&v| (v - c).exp()).collect();
    let tiny = F::min_positive_value();
    let v = F::one() / a.iter().fold(F::zero(), |acc, &t| acc + t).max(tiny);
    let vr = F::one() / ar.iter().fold(F::zero(), |acc, &t| acc + t).max(tiny);
    let dv = v - vr;
    let dlog_v = v.ln() - vr.ln();
    let dlogv_over_dv = if dv.abs() > threshold {
        dlog_v / dv
    } else {
        F::one() / vr
    };
    let k = zx.len();
    let mut dy_over_dlogy = vec![F::zero(); k];
    let mut mult_x_to_a = vec![F::zero(); k];
    let mut total = F::zero();
    for j in 0..k {
        let dx = zx[j] - zr[j];
        let (y, yr) = (a[j] * v, ar[j] * vr);
        let dlog_y = dx + dlog_v;
        dy_over_dlogy[j] = if dlog_y.abs() > threshold {
            (y - yr) / dlog_y
        } else {
            yr
        };
        mult_x_to_a[j] = if dx.abs() > threshold {
            (a[j] - ar[j]) / dx
        } else {
            ar[j]
        };
        // upstream gradient of Σ z_i s_i with respect to s_i: z_i at the input
        total += zx[j] * dy_over_dlogy[j] * dlogv_over_dv * (-(v * vr));
    }
    (0..k)
        .map(|j| a[j] * v + zx[j] * dy_over_dlogy[j] + mult_x_to_a[j] * total)
        .collect()
}

/// The outputs `[m, outputs...]` as `[m, k]`, each row minus its mean.
fn centred<F: Float>(y: ArrayD<F>, m: usize, k: usize) -> Result<Array2<F>> {
    let mut z = y
        .as_standard_layout()
        .to_owned()
        .into_shape_with_order((m, k))
        .map_err(|_| Error::Shape {
            what: "deep_lift_shap_profile network output".into(),
            expected: vec![m, k],
            got: vec![],
        })?;
    let kf = F::lit(k as f64);
    for mut row in z.rows_mut() {
        let mean = row.sum() / kf;
        row.mapv_inplace(|v| v - mean);
    }
    if z.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFiniteResult {
            pass: "deep_lift_shap_profile forward pass",
            float: std::any::type_name::<F>(),
        });
    }
    Ok(z)
}

/// The softmax of each row of `z` and `f = Σ softmax · z` per row.
fn softmax_and_value<F: Float>(z: &Array2<F>) -> (Array2<F>, Vec<F>) {
    let mut s = z.clone();
    let mut f = Vec::with_capacity(z.nrows());
    for (mut row, zrow) in s.rows_mut().into_iter().zip(z.rows()) {
        let max = zrow.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let total = row.sum();
        row.mapv_inplace(|v| v / total);
        f.push(
            row.iter()
                .zip(zrow.iter())
                .fold(F::zero(), |acc, (&a, &b)| acc + a * b),
        );
    }
    (s, f)
}
