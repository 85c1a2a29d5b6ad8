//! DeepLIFT-SHAP over explicit references, with hypothetical contributions (tangermeme 1.6.0's
//! `deep_lift_shap`, after kundajelab's `hypothetical_contributions`).

use crate::error::{Error, Result};
use crate::explain::{Attribution, Baseline, Target};
use crate::float::Float;
use crate::layers::Category;
use crate::network::Network;
use crate::rules::{DeepLift, NonlinearRule};
use crate::tensor::checks::check_finite;
use ndarray::{Array1, Array2, Array3, ArrayD, ArrayView3, Axis, Ix3, Ix4};

/// The threshold below which tangermeme's Rescale rule takes the gradient instead of the
/// ratio `Δy / Δx` (`|Δx| < 1e-6`; captum's is 1e-10).
pub const TANGERMEME_THRESHOLD: f64 = 1e-6;

/// At most this many (sequence, reference) pairs go through the network at once (at least
/// one sequence with all its references), on the path for rules that are not symmetric.
const PAIRS_PER_PASS: usize = 64;

/// The forward passes of at most this many bytes of references are kept at once (at least
/// one reference): the memory bound of [`deep_lift_shap`] with the Rescale rule.
const TRACE_BYTES: usize = 384 << 20;

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

impl<F: Float> SequenceAttribution<F> {
    /// The attributions of consecutive batches as one, in order (as if the batches had
    /// been one call).
    ///
    /// # Errors
    /// [`Error::EmptyBatch`] for no part; [`Error::Shape`] if the parts' sequences differ in
    /// shape or their numbers of references differ.
    pub fn concat(parts: &[SequenceAttribution<F>]) -> Result<SequenceAttribution<F>> {
        let first = parts.first().ok_or(Error::EmptyBatch)?;
        for p in parts {
            if p.attributions.shape()[1..] != first.attributions.shape()[1..]
                || p.pair_deltas.shape()[1] != first.pair_deltas.shape()[1]
            {
                return Err(Error::Shape {
                    what: "SequenceAttribution::concat (parts of one shape)".into(),
                    expected: first.attributions.shape().to_vec(),
                    got: p.attributions.shape().to_vec(),
                });
            }
        }
        let cat = |f: &dyn Fn(&SequenceAttribution<F>) -> ndarray::ArrayViewD<'_, F>| {
            let views: Vec<_> = parts.iter().map(f).collect();
            ndarray::concatenate(Axis(0), &views).expect("parts of one shape")
        };
        let one = |a: ArrayD<F>| a.into_dimensionality::<ndarray::Ix1>().expect("1-D");
        Ok(SequenceAttribution {
            attributions: cat(&|p| p.attributions.view()),
            hypothetical: cat(&|p| p.hypothetical.view()),
            gap: one(cat(&|p| p.gap.view().into_dyn())),
            pair_deltas: cat(&|p| p.pair_deltas.view().into_dyn())
                .into_dimensionality()
                .expect("2-D"),
            output: one(cat(&|p| p.output.view().into_dyn())),
            reference_output: one(cat(&|p| p.reference_output.view().into_dyn())),
        })
    }
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
/// # Cost and memory
/// On networks of affine layers, elementwise activations, average pools, sums and
/// reshapes (BPNet, ChromBPNet), each sequence's forward pass runs once and its references
/// go through the network as a batch against it, a few at a time (at most 384 MB of
/// recorded activations): `R + 1` forward and `R` backward passes per sequence (tangermeme
/// runs `2R` forward passes), and memory bounded whatever `R`. This uses the symmetry of
/// Rescale (the multipliers of the pair (x, ref) are those of (ref, x)); the one place it
/// does not hold is the threshold's gradient fallback, here taken at the reference, which
/// differs from the gradient at the sequence only where the two pre-activations lie within
/// the threshold on either side of a kink without being equal. With max-pools, products,
/// softmaxes or RevealCancel, every (sequence, reference) pair is run as an ordinary
/// DeepLIFT pair, 64 pairs at a time.
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
    if rule.nonlinear() == NonlinearRule::Rescale && symmetric(net) {
        return shared_sequence(net, x3, refs, targets, rule);
    }
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
        let m = multipliers3(Some(d.multipliers), [pairs, a, l])?;
        let scale = F::one() / F::lit(r as f64);
        for p in 0..pairs {
            let (seq, k) = (start + p / r, p % r);
            add_hypothetical(
                hypothetical.index_axis_mut(Axis(0), seq),
                m.index_axis(Axis(0), p),
                bs.index_axis(Axis(0), p),
                scale,
            );
            pair_deltas[[seq, k]] = d.delta[p];
            if k == 0 {
                output[seq] = d.total[p] + explained(&d.baseline_output, &pair_target, p);
            }
            reference_output[seq] += explained(&d.baseline_output, &pair_target, p) * scale;
        }
        start = end;
    }
    Ok(finish(hypothetical, x3, pair_deltas, output, reference_output))
}

/// The result from the averaged hypothetical contributions and the outputs: the
/// attributions `hypothetical ⊙ x` and the additivity gap per sequence.
fn finish<F: Float>(
    hypothetical: Array3<F>,
    x3: ArrayView3<'_, F>,
    pair_deltas: Array2<F>,
    output: Array1<F>,
    reference_output: Array1<F>,
) -> SequenceAttribution<F> {
    let attributions = &hypothetical * &x3;
    let gap = Array1::from_shape_fn(hypothetical.shape()[0], |i| {
        attributions.index_axis(Axis(0), i).sum() - (output[i] - reference_output[i])
    });
    SequenceAttribution {
        attributions: attributions.into_dyn(),
        hypothetical: hypothetical.into_dyn(),
        gap,
        pair_deltas,
        output,
        reference_output,
    }
}

/// One pair's multipliers `[pairs, A, L]` from a DeepLIFT result.
fn multipliers3<F: Float>(m: Option<ArrayD<F>>, expected: [usize; 3]) -> Result<Array3<F>> {
    m.and_then(|m| m.into_dimensionality::<Ix3>().ok())
        .filter(|m| m.shape() == expected)
        .ok_or_else(|| Error::Shape {
            what: "deep_lift_shap multipliers".into(),
            expected: expected.to_vec(),
            got: vec![],
        })
}

/// `h += scale · (m − Σ_c ref[c, ·] · m[c, ·])`: one reference's hypothetical contributions
/// (kundajelab's formula: every letter's multiplier, minus what the reference's letter
/// contributes), `h`, `m` and `reference` `[A, L]`.
fn add_hypothetical<F: Float>(
    mut h: ndarray::ArrayViewMut2<'_, F>,
    m: ndarray::ArrayView2<'_, F>,
    reference: ndarray::ArrayView2<'_, F>,
    scale: F,
) {
    let (a, l) = m.dim();
    for i in 0..l {
        // Σ_c ref[c, i] · m[c, i]: what the reference's letter takes away
        let base = (0..a).fold(F::zero(), |acc, c| acc + reference[[c, i]] * m[[c, i]]);
        for c in 0..a {
            h[[c, i]] += (m[[c, i]] - base) * scale;
        }
    }
}

/// Whether DeepLIFT Rescale gives the pair (x, ref) the multipliers of (ref, x) on `net`:
/// its nodes are affine maps, elementwise activations, average pools, sums and nodes that
/// only move values. Not with max-pools (where `Δx = 0` their multiplier is the gradient
/// at the input, routed to the argmax of the input's window: the two orders route
/// differently), products, softmaxes or local response normalisation.
fn symmetric<F: Float>(net: &Network<F>) -> bool {
    net.nodes().iter().all(|node| match (node.layer(), node.merge()) {
        (Some(layer), _) => {
            matches!(
                layer.class().category(),
                Category::Dense
                    | Category::Convolution
                    | Category::Activation
                    | Category::AvgPool
                    | Category::Reshape
            ) || (layer.class().category() == Category::BatchNorm && layer.name().starts_with("BatchNorm"))
        }
        (None, Some(merge)) => matches!(merge.class().category(), Category::Sum | Category::Reshape),
        // a constant (a bound held input) is the same on both sides of every pair
        (None, None) => node.category() == Category::Constant,
    })
}

/// DeepLIFT-SHAP with the sequence's forward pass run once: on networks where Rescale is
/// symmetric ([`symmetric`]), the multipliers of the pair (x, ref) are those of (ref, x) —
/// every ratio `Δy / Δx` is symmetric in the two — so the references go
/// through the network as the rows of a batch against the sequence as one shared row, in
/// chunks of at most [`TRACE_BYTES`] of recorded activations. `R + 1` forward passes and `R`
/// backward passes per sequence instead of `2R` and `R`, and memory bounded whatever `R`.
/// Where `|Δx|` is below the threshold the gradient is taken at the reference instead of at
/// the sequence; the two differ only where both lie within the threshold on either side of
/// a kink.
fn shared_sequence<F: Float>(
    net: &Network<F>,
    x3: ArrayView3<'_, F>,
    refs: ndarray::ArrayView4<'_, F>,
    targets: &PerSequence<F>,
    rule: &DeepLift,
) -> Result<SequenceAttribution<F>> {
    let (n, r, a, l) = refs.dim();
    let row_bytes = net
        .shapes()
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum::<usize>()
        .max(1)
        * std::mem::size_of::<F>();
    #[cfg(feature = "parallel")]
    let threads = rayon::current_num_threads().max(1);
    #[cfg(not(feature = "parallel"))]
    let threads = 1;
    // references per block: blocks run side by side, within the memory bound together, and
    // at most 4 rows each (as the batch split of `Network::deeplift`)
    let block = (TRACE_BYTES / (threads * row_bytes)).clamp(1, 4);
    let mut hypothetical = Array3::<F>::zeros((n, a, l));
    let mut pair_deltas = Array2::<F>::zeros((n, r));
    let (mut output, mut reference_output) = (Array1::<F>::zeros(n), Array1::<F>::zeros(n));
    let scale = F::one() / F::lit(r as f64);
    for seq in 0..n {
        let xs = x3
            .slice_axis(Axis(0), ndarray::Slice::from(seq..seq + 1))
            .to_owned()
            .into_dyn();
        let trace = net.trace(&xs)?;
        let starts: Vec<usize> = (0..r).step_by(block).collect();
        let run = |start: usize| -> Result<(Array3<F>, Attribution<F>, Target<F>)> {
            let end = (start + block).min(r);
            let rows = refs
                .index_axis(Axis(0), seq)
                .slice_axis(Axis(0), ndarray::Slice::from(start..end))
                .to_owned();
            let pair_target = targets.block(seq, start..end, r);
            let d = net.deeplift_against_trace(&rows.clone().into_dyn(), &pair_target, rule, &trace)?;
            Ok((rows, d, pair_target))
        };
        #[cfg(feature = "parallel")]
        let blocks: Vec<_> = {
            use rayon::prelude::*;
            starts
                .par_iter()
                .map(|&start| run(start))
                .collect::<Result<_>>()?
        };
        #[cfg(not(feature = "parallel"))]
        let blocks: Vec<_> = starts.iter().map(|&start| run(start)).collect::<Result<_>>()?;
        // summed in reference order: the result does not depend on the thread count
        let mut h = hypothetical.index_axis_mut(Axis(0), seq);
        for (&start, (rows, mut d, pair_target)) in starts.iter().zip(blocks) {
            let m = multipliers3(d.multipliers.take(), [rows.shape()[0], a, l])?;
            for p in 0..rows.shape()[0] {
                add_hypothetical(
                    h.view_mut(),
                    m.index_axis(Axis(0), p),
                    rows.index_axis(Axis(0), p),
                    scale,
                );
                // the pass explained f(ref) − f(x): the pair's delta with the sign turned
                pair_deltas[[seq, start + p]] = -d.delta[p];
                reference_output[seq] += explained(&d.output, &pair_target, p) * scale;
            }
            if let Some(b) = &d.baseline_output {
                output[seq] = explained(b, &pair_target, 0);
            }
        }
    }
    Ok(finish(hypothetical, x3, pair_deltas, output, reference_output))
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

impl<F: Float> PerSequence<F> {
    /// The target of references `refs` (of `r`) of sequence `seq`.
    fn block(&self, seq: usize, refs: std::ops::Range<usize>, r: usize) -> Target<F> {
        match self {
            PerSequence::PairSeeds(seed) => Target::Relevance(
                seed.slice_axis(
                    Axis(0),
                    ndarray::Slice::from(seq * r + refs.start..seq * r + refs.end),
                )
                .to_owned(),
            ),
            other => other.pairs(seq, seq + 1, refs.len()),
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
