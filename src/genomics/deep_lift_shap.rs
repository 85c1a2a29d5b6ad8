//! DeepLIFT-SHAP over explicit references, with hypothetical contributions (tangermeme 1.6.0's
//! `deep_lift_shap`, after kundajelab's `hypothetical_contributions`).

use crate::error::{Error, Result};
use crate::explain::{Baseline, Target};
use crate::float::Float;
use crate::network::Network;
use crate::rules::DeepLift;
use crate::tensor::checks::check_finite;
use ndarray::{Array1, Array2, Array3, ArrayD, ArrayView3, Axis, Ix3, Ix4};

/// The threshold below which tangermeme's Rescale rule takes the gradient instead of the
/// ratio `Δy / Δx` (`|Δx| < 1e-6`; captum's is 1e-10).
pub const TANGERMEME_THRESHOLD: f64 = 1e-6;

/// At most this many (sequence, reference) pairs go through the network at once (at least
/// one sequence with all its references).
const PAIRS_PER_PASS: usize = 64;

/// What [`deep_lift_shap`] returns.
///
/// # Shapes
/// `attributions` and `hypothetical` are `[N, A, L]` (A letters, 4 for DNA); `gap` is `[N]`;
/// `pair_deltas` is `[N, R]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SequenceAttribution<F: Float = f32> {
    /// The contributions of the observed letters: `hypothetical ⊙ x` (tangermeme's result
    /// with `hypothetical=False`).
    pub attributions: ArrayD<F>,
    /// The hypothetical contributions of every letter at every position, averaged over the
    /// references (tangermeme's result with `hypothetical=True`): for reference `k` with
    /// multipliers `m_k`, letter `a` at position `l` gets
    /// `Σ_c (e_a − ref_k[:, l])_c · m_k[c, l] = m_k[a, l] − Σ_c ref_k[c, l] · m_k[c, l]`.
    pub hypothetical: ArrayD<F>,
    /// Per sequence, `Σ attributions − (f(x) − mean_k f(ref_k))`: zero up to rounding for a
    /// one-hot `x` (exactly one 1 per position) and layers with exact DeepLIFT rules.
    pub gap: Array1<F>,
    /// Per (sequence, reference) pair, `f(x) − f(ref_k) − Σ (x − ref_k) ⊙ m_k`: tangermeme's
    /// convergence delta, signed (it warns when the absolute value exceeds 1e-3).
    pub pair_deltas: Array2<F>,
    /// The output being explained at `x` (the target's component of `f(x)`, or the seed's
    /// weighted sum), per sequence.
    pub output: Array1<F>,
    /// The same on the references, averaged over them, per sequence.
    pub reference_output: Array1<F>,
}

/// DeepLIFT-SHAP of one-hot sequences against explicit references, with hypothetical
/// contributions, as tangermeme 1.6.0's `deep_lift_shap(model, X, references=refs,
/// target=c)`: DeepLIFT Rescale per (sequence, reference) pair with tangermeme's threshold
/// ([`TANGERMEME_THRESHOLD`]) and cross-max at max-pools, the hypothetical contributions of
/// each pair, their mean over the references, and that mean times `x`.
///
/// The target picks the explained output per sequence (a class index for all, one per
/// sequence, the predicted class, or a seed `[N, outputs]`); it is used for every reference
/// of the sequence.
///
/// # Shapes
/// `x` is `[N, A, L]` and must be the network's input shape; `references` is
/// `[N, R, A, L]`, R ≥ 1 references per sequence. See [`SequenceAttribution`] for the result.
///
/// # Errors
/// [`Error::Rank`] or [`Error::Shape`] for arrays of the wrong shape; [`Error::EmptyBatch`]
/// for no sequence or no reference; [`Error::NonFinite`] for NaN or infinite inputs; any
/// error of [`Network::deeplift`].
///
/// # Example
/// ```
/// use ndarray::{Array2, Array3, Axis};
/// use relevance::genomics::deep_lift_shap;
/// use relevance::{AvgPool1d, Conv1d, Conv1dConfig, Flatten, Layer, Network, Relu, Target};
/// # fn main() -> relevance::Result<()> {
/// let w = Array3::from_shape_fn((2, 4, 3), |(o, c, k)| ((o + 2 * c + k) % 5) as f64 - 2.0);
/// let net = Network::<f64>::new(&[4, 6], vec![
///     Box::new(Conv1d::new(w, None, Conv1dConfig::default().same())?) as Box<dyn Layer<f64>>,
///     Box::new(Relu),
///     Box::new(AvgPool1d::global()),
///     Box::new(Flatten),
/// ])?;
/// let one_hot = |bases: &[usize]| Array2::from_shape_fn((4, 6), |(c, l)| f64::from(u8::from(bases[l] == c)));
/// let x = one_hot(&[0, 1, 2, 3, 0, 1]).insert_axis(Axis(0)).into_dyn(); // [1, 4, 6]
/// let refs = ndarray::stack![Axis(0), one_hot(&[1, 0, 3, 2, 1, 0]), one_hot(&[2, 2, 0, 1, 3, 3])]
///     .insert_axis(Axis(0))
///     .into_dyn(); // [1, 2, 4, 6]: two references
/// let r = deep_lift_shap(&net, &x, &refs, &Target::Class(1))?;
/// assert_eq!(r.hypothetical.shape(), &[1, 4, 6]);
/// assert!(r.gap[0].abs() < 1e-12); // Σ attributions = f(x) − mean f(refs)
/// # Ok(()) }
/// ```
pub fn deep_lift_shap<F: Float>(
    net: &Network<F>,
    x: &ArrayD<F>,
    references: &ArrayD<F>,
    target: &Target<F>,
) -> Result<SequenceAttribution<F>> {
    let rule = DeepLift::rescale().with_threshold(TANGERMEME_THRESHOLD)?;
    deep_lift_shap_with(net, x, references, target, &rule)
}

/// [`deep_lift_shap`] with another DeepLIFT rule (e.g. captum's threshold, or RevealCancel).
///
/// # Shapes
/// As [`deep_lift_shap`].
///
/// # Errors
/// As [`deep_lift_shap`].
pub fn deep_lift_shap_with<F: Float>(
    net: &Network<F>,
    x: &ArrayD<F>,
    references: &ArrayD<F>,
    target: &Target<F>,
    rule: &DeepLift,
) -> Result<SequenceAttribution<F>> {
    let (x3, _) = check(x, references)?;
    let targets = per_sequence(net, x, target, x3.dim().0)?;
    run(net, x, references, &targets, rule)
}

/// The DeepLIFT-SHAP loop of [`deep_lift_shap_with`] for targets already resolved per
/// sequence (or per pair).
pub(super) fn run<F: Float>(
    net: &Network<F>,
    x: &ArrayD<F>,
    references: &ArrayD<F>,
    targets: &PerSequence<F>,
    rule: &DeepLift,
) -> Result<SequenceAttribution<F>> {
    let (x3, refs) = check(x, references)?;
    let (n, r, a, l) = refs.dim();
    check_finite("deep_lift_shap references", &references.view())?;
    let mut hypothetical = Array3::<F>::zeros((n, a, l));
    let mut pair_deltas = Array2::<F>::zeros((n, r));
    let (mut output, mut reference_output) = (Array1::<F>::zeros(n), Array1::<F>::zeros(n));
    let per_pass = (PAIRS_PER_PASS / r).max(1);
    let mut start = 0;
    while start < n {
        let end = (start + per_pass).min(n);
        let pairs = (end - start) * r;
        // pair p = (sequence start + p / r, reference p % r), as tangermeme orders them
        let xs = ndarray::Array::from_shape_fn((pairs, a, l), |(p, c, i)| x3[[start + p / r, c, i]]);
        let bs = refs
            .slice_axis(Axis(0), ndarray::Slice::from(start..end))
            .to_owned()
            .into_shape_with_order((pairs, a, l))
            .expect("a standard-layout copy");
        let pair_target = targets.pairs(start, end, r);
        let d = net.deeplift(
            &xs.into_dyn(),
            &pair_target,
            rule,
            &Baseline::PerSample(bs.clone().into_dyn()),
        )?;
        let m = d
            .multipliers
            .into_dimensionality::<Ix3>()
            .map_err(|_| Error::Shape {
                what: "deep_lift_shap multipliers".into(),
                expected: vec![pairs, a, l],
                got: vec![],
            })?;
        let scale = F::one() / F::lit(r as f64);
        for p in 0..pairs {
            let (seq, k) = (start + p / r, p % r);
            let (mp, rp) = (m.index_axis(Axis(0), p), bs.index_axis(Axis(0), p));
            let mut h = hypothetical.index_axis_mut(Axis(0), seq);
            for i in 0..l {
                // Σ_c ref[c, i] · m[c, i]: what the reference's letter takes away
                let base = (0..a).fold(F::zero(), |acc, c| acc + rp[[c, i]] * mp[[c, i]]);
                for c in 0..a {
                    h[[c, i]] += (mp[[c, i]] - base) * scale;
                }
            }
            pair_deltas[[seq, k]] = d.delta[p];
            if k == 0 {
                output[seq] = d.total[p] + explained(&d.baseline_output, &pair_target, p);
            }
            reference_output[seq] += explained(&d.baseline_output, &pair_target, p) * scale;
        }
        start = end;
    }
    let attributions = &hypothetical * &x3;
    let gap = Array1::from_shape_fn(n, |i| {
        attributions.index_axis(Axis(0), i).sum() - (output[i] - reference_output[i])
    });
    Ok(SequenceAttribution {
        attributions: attributions.into_dyn(),
        hypothetical: hypothetical.into_dyn(),
        gap,
        pair_deltas,
        output,
        reference_output,
    })
}

/// Checks `x` `[N, A, L]` and the references `[N, R, A, L]`.
pub(super) fn check<'a, F: Float>(
    x: &'a ArrayD<F>,
    refs: &'a ArrayD<F>,
) -> Result<(ArrayView3<'a, F>, ndarray::ArrayView4<'a, F>)> {
    let x3 = x.view().into_dimensionality::<Ix3>().map_err(|_| Error::Rank {
        what: "deep_lift_shap input ([N, A, L])".into(),
        expected: 3,
        got: x.ndim(),
        shape: x.shape().to_vec(),
    })?;
    let r4 = refs
        .view()
        .into_dimensionality::<Ix4>()
        .map_err(|_| Error::Rank {
            what: "deep_lift_shap references ([N, R, A, L])".into(),
            expected: 4,
            got: refs.ndim(),
            shape: refs.shape().to_vec(),
        })?;
    let (n, a, l) = x3.dim();
    let (rn, r, ra, rl) = r4.dim();
    if n == 0 || r == 0 {
        return Err(Error::EmptyBatch);
    }
    if (rn, ra, rl) != (n, a, l) {
        return Err(Error::Shape {
            what: "deep_lift_shap references ([N, R, A, L] for an input [N, A, L])".into(),
            expected: vec![n, r, a, l],
            got: refs.shape().to_vec(),
        });
    }
    Ok((x3, r4))
}

/// The target of each sequence, to repeat for its references, or of each pair.
pub(super) enum PerSequence<F> {
    /// One class for all.
    Class(usize),
    /// One class per sequence.
    Classes(Vec<usize>),
    /// One seed per sequence, `[N, outputs...]`.
    Seeds(ArrayD<F>),
    /// One seed per (sequence, reference) pair, `[N·R, outputs...]`, pair `i·R + k`.
    PairSeeds(ArrayD<F>),
}

fn per_sequence<F: Float>(
    net: &Network<F>,
    x: &ArrayD<F>,
    target: &Target<F>,
    n: usize,
) -> Result<PerSequence<F>> {
    Ok(match target {
        Target::Class(c) => PerSequence::Class(*c),
        Target::PerSample(v) if v.len() == n => PerSequence::Classes(v.clone()),
        Target::PerSample(v) => {
            return Err(Error::Shape {
                what: "deep_lift_shap target (one class per sequence)".into(),
                expected: vec![n],
                got: vec![v.len()],
            })
        }
        Target::Predicted => PerSequence::Classes(net.predict(x)?),
        Target::Relevance(seed) if seed.shape().first() == Some(&n) => PerSequence::Seeds(seed.clone()),
        Target::Relevance(seed) => {
            return Err(Error::Shape {
                what: "deep_lift_shap target seed ([N, outputs])".into(),
                expected: vec![n],
                got: seed.shape().to_vec(),
            })
        }
    })
}

impl<F: Float> PerSequence<F> {
    /// The target of the pairs of sequences `start..end`, each repeated `r` times.
    fn pairs(&self, start: usize, end: usize, r: usize) -> Target<F> {
        match self {
            PerSequence::Class(c) => Target::Class(*c),
            PerSequence::Classes(v) => Target::PerSample(
                v[start..end]
                    .iter()
                    .flat_map(|&c| std::iter::repeat_n(c, r))
                    .collect(),
            ),
            PerSequence::Seeds(seed) => {
                let rows: Vec<_> = (start..end)
                    .flat_map(|i| std::iter::repeat_n(seed.index_axis(Axis(0), i), r))
                    .collect();
                Target::Relevance(ndarray::stack(Axis(0), &rows).expect("rows of one shape"))
            }
            PerSequence::PairSeeds(seed) => Target::Relevance(
                seed.slice_axis(Axis(0), ndarray::Slice::from(start * r..end * r))
                    .to_owned(),
            ),
        }
    }
}

/// The explained value of pair `p` in an output array `[pairs, outputs...]`: the target's
/// component, or the seed-weighted sum.
fn explained<F: Float>(y: &ArrayD<F>, target: &Target<F>, p: usize) -> F {
    let row = y.index_axis(Axis(0), p);
    match target {
        Target::Class(c) => row.iter().nth(*c).copied().unwrap_or_else(F::zero),
        Target::PerSample(v) => row.iter().nth(v[p]).copied().unwrap_or_else(F::zero),
        Target::Relevance(seed) => seed
            .index_axis(Axis(0), p)
            .iter()
            .zip(row.iter())
            .fold(F::zero(), |acc, (&s, &v)| acc + s * v),
        _ => F::zero(),
    }
}
