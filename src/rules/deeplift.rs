//! DeepLIFT (Shrikumar, Greenside & Kundaje 2017, "Learning Important Features Through
//! Propagating Activation Differences") as a [`Rule`]: the Linear rule at dense and
//! convolutional layers and at parameter-free linear maps (sums, average pools, batch
//! norm), Rescale or RevealCancel at elementwise nonlinearities, a max-pool rule, and the
//! Shapley split at products of two computed tensors.
//!
//! What travels backwards is the **multiplier** `m = ∂ᴰ f_c / ∂ᴰ a` (the paper's "modified
//! gradient", captum's `gradients`), not a contribution: the contribution of a unit is
//! `m ⊙ (a − ā)`, with `ā` the unit's value on the baseline (reference) pass. Multipliers
//! must travel because a unit with `a = ā` still passes its multiplier to the units below
//! through the gradient fallback, exactly as captum does.
//!
//! The whole method, with RevealCancel's state between a linear layer and the activation
//! above it, runs in [`Network::deeplift`](crate::Network::deeplift); the trait methods here
//! are the per-layer steps it uses.

use super::{NodeInfo, Rule};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Affine, Category, Layer, LinearMap, MergeStep, Select, Step};
use crate::network::Network;
use crate::tensor::{negative, positive, sum_to_shape};
use ndarray::{ArrayD, ArrayViewD, Zip};

/// captum's default threshold (`DeepLift(eps=1e-10)`, `captum/attr/_core/deep_lift.py`):
/// where `|Δx|` is below it, the multiplier is the ordinary gradient at the input.
pub const DEEPLIFT_THRESHOLD: f64 = 1e-10;

/// The rule at an elementwise nonlinearity (ReLU, sigmoid, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NonlinearRule {
    /// Rescale everywhere: `m_in = m_out · Δy / Δx`.
    Rescale,
    /// RevealCancel at every activation directly above a dense or convolutional layer,
    /// Rescale elsewhere.
    RevealCancel,
    /// kundajelab/deeplift's `DeepLIFT_GenomicsDefault` (`layers/activations.py`):
    /// RevealCancel at activations directly above a dense layer, Rescale elsewhere (above
    /// convolutions in particular).
    RevealCancelAfterDense,
}

/// The rule at a max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MaxPoolRule {
    /// captum's "cross-max" rule, with contributions **added** where windows overlap:
    /// with `y`, `ȳ` the pooled values and `ŷ = max(y, ȳ)`, each output sends
    /// `m·(ŷ − ȳ)` to the argmax of its window in `x` and `m·(y − ŷ)` to the argmax in
    /// `x̄`; the input multiplier is that sum divided by `Δx` (the gradient where
    /// `|Δx|` is below the threshold). Summation-to-delta holds exactly, even when the
    /// argmax of `x` and of `x̄` differ.
    CrossMax,
    /// The multiplier goes to the argmax of each window in `x` (the plain gradient), as
    /// kundajelab/deeplift's `MaxPoolDeepLiftMode.gradient` and as captum 0.9.0 does in
    /// practice when a `ReLU` module directly precedes the pool (captum issue #1104).
    /// Summation-to-delta can fail where the argmax of `x` and `x̄` differ.
    Gradient,
}

/// DeepLIFT as a rule object: the Linear rule at affine layers (the bias cancels in
/// `Δz = W Δx`) and at sums, average pools and concatenations, Rescale or RevealCancel at
/// elementwise layers (activations of any kind, and batch norm, where Rescale is exactly
/// the Linear rule), cross-max or gradient routing at max-pools, and at a product of two
/// computed tensors the two-player Shapley split
/// `Δ(ab) = ½(b + b̄)·Δa + ½(a + ā)·Δb`, which keeps summation-to-delta exact
/// (captum has no rule there and uses the gradient, which does not).
/// Use it with [`Network::deeplift`](crate::Network::deeplift).
///
/// Conventions (captum's, so that results match `captum.attr.DeepLift` in float64):
/// where `|Δx|` is below the threshold (default [`DEEPLIFT_THRESHOLD`] = 1e-10), Rescale
/// and the cross-max rule use the ordinary gradient **at the actual input** `x`.
/// (kundajelab/deeplift uses the gradient at the reference and 1e-7.) RevealCancel uses
/// the same threshold and fallback for `Δx⁺` and `Δx⁻` separately, and no pseudocount, so
/// summation-to-delta stays exact.
///
/// ```
/// use relevance::rules::{MaxPoolRule, NonlinearRule};
/// use relevance::DeepLift;
/// let d = DeepLift::default();
/// assert_eq!(d.nonlinear(), NonlinearRule::RevealCancelAfterDense);
/// assert_eq!(d.max_pool(), MaxPoolRule::CrossMax);
/// assert_eq!(DeepLift::rescale().threshold(), 1e-10);
/// assert!(DeepLift::rescale().with_threshold(-1.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeepLift {
    nonlinear: NonlinearRule,
    max_pool: MaxPoolRule,
    threshold: f64,
}

impl Default for DeepLift {
    /// [`DeepLift::genomics_default`].
    fn default() -> Self {
        Self::genomics_default()
    }
}

impl DeepLift {
    fn with_nonlinear(nonlinear: NonlinearRule) -> Self {
        DeepLift {
            nonlinear,
            max_pool: MaxPoolRule::CrossMax,
            threshold: DEEPLIFT_THRESHOLD,
        }
    }

    /// Rescale at every activation, cross-max at max-pools (captum's `DeepLift`, with the
    /// max-pool rule that captum intends).
    pub fn rescale() -> Self {
        Self::with_nonlinear(NonlinearRule::Rescale)
    }

    /// RevealCancel at every activation above an affine layer, cross-max at max-pools.
    pub fn reveal_cancel() -> Self {
        Self::with_nonlinear(NonlinearRule::RevealCancel)
    }

    /// The reference implementation's default: RevealCancel above dense layers, Rescale
    /// above convolutions; cross-max at max-pools.
    pub fn genomics_default() -> Self {
        Self::with_nonlinear(NonlinearRule::RevealCancelAfterDense)
    }

    /// The same rule with another max-pool rule.
    pub fn with_max_pool(mut self, max_pool: MaxPoolRule) -> Self {
        self.max_pool = max_pool;
        self
    }

    /// The same rule with another threshold for the gradient fallback.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the threshold is negative or not finite.
    pub fn with_threshold(mut self, threshold: f64) -> Result<Self> {
        if !threshold.is_finite() || threshold < 0.0 {
            return Err(Error::InvalidParameter {
                rule: "DeepLift",
                reason: format!("threshold must be finite and non-negative, got {threshold}"),
            });
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// The rule at activations.
    pub fn nonlinear(&self) -> NonlinearRule {
        self.nonlinear
    }

    /// The rule at max-pools.
    pub fn max_pool(&self) -> MaxPoolRule {
        self.max_pool
    }

    /// The threshold below which `|Δx|` falls back to the gradient.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The affine node below node `k` if node `k` gets RevealCancel: `k` is an activation
    /// whose input comes straight from an affine node of a kind the rule selects, and is
    /// that node's only reader (RevealCancel's split multipliers travel to it alone).
    pub(crate) fn reveal_cancel_below<F: Float>(&self, net: &Network<F>, k: usize) -> Option<usize> {
        let node = &net.nodes()[k];
        if node.layer()?.category() != Category::Activation {
            return None;
        }
        let u = node.inputs()[0];
        if u == 0 || net.consumers()[u] != [k] {
            return None;
        }
        let below = net.nodes()[u - 1].layer()?;
        below.as_affine()?;
        let selected = match self.nonlinear {
            NonlinearRule::Rescale => false,
            NonlinearRule::RevealCancel => below.category().is_affine(),
            NonlinearRule::RevealCancelAfterDense => below.category() == Category::Dense,
        };
        selected.then_some(u - 1)
    }
}

/// The baseline pass of a step, or the error that says it is missing.
fn baseline<'s, 'a, F>(step: &'s Step<'a, F>) -> Result<(&'s ArrayViewD<'a, F>, &'s ArrayViewD<'a, F>)> {
    match (&step.baseline_input, &step.baseline_output) {
        (Some(bi), Some(bo)) if bi.shape() == step.input.shape() && bo.shape() == step.output.shape() => {
            Ok((bi, bo))
        }
        (Some(bi), Some(_)) if bi.shape() != step.input.shape() => Err(Error::Shape {
            what: "baseline pass of the layer input".into(),
            expected: step.input.shape().to_vec(),
            got: bi.shape().to_vec(),
        }),
        (Some(_), Some(bo)) => Err(Error::Shape {
            what: "baseline pass of the layer output".into(),
            expected: step.output.shape().to_vec(),
            got: bo.shape().to_vec(),
        }),
        _ => Err(Error::Unsupported {
            rule: "DeepLift".into(),
            reason: "no baseline trace was recorded; use Network::deeplift".into(),
        }),
    }
}

fn check_same(what: &str, expected: &[usize], got: &[usize]) -> Result<()> {
    if expected != got {
        return Err(Error::Shape {
            what: what.into(),
            expected: expected.to_vec(),
            got: got.to_vec(),
        });
    }
    Ok(())
}

/// Rescale at an elementwise activation: `m_in = m_out · Δy / Δx`, and the gradient at the
/// input where `|Δx| < threshold` (captum's `nonlinear`, `deep_lift.py`).
pub(crate) fn rescale<F: Float>(layer: &dyn Layer<F>, step: &Step<'_, F>, threshold: F) -> Result<ArrayD<F>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (bx, by) = baseline(step)?;
    check_same(
        "DeepLIFT multiplier at the activation output",
        step.output.shape(),
        step.relevance.shape(),
    )?;
    check_same(
        "activation input (Rescale needs an elementwise activation)",
        step.output.shape(),
        step.input.shape(),
    )?;
    // One pass for the rescaled multipliers; the gradient is computed only if some input
    // falls below the threshold (rare away from the first layers), and only read there.
    if let Some((mut m, fallback)) = rescale_rows(step, bx, by, threshold) {
        if fallback {
            fill_fallback(layer, step, bx, threshold, &mut m)?;
        }
        return Ok(m);
    }
    let fallback = AtomicBool::new(false);
    let zip = Zip::from(&step.relevance)
        .and(&step.input)
        .and(bx)
        .and(&step.output)
        .and(by);
    let f = |&g: &F, &x: &F, &x0: &F, &y: &F, &y0: &F| {
        let dx = x - x0;
        if dx.abs() >= threshold {
            g * (y - y0) / dx
        } else {
            fallback.store(true, Ordering::Relaxed);
            F::zero()
        }
    };
    // every element is written
    let mut m = ArrayD::from_shape_vec(
        step.input.raw_dim(),
        crate::tensor::output_buffer(step.input.len()),
    )
    .expect("length matches the shape");
    let zip = zip.and(&mut m);
    let f = |g: &F, x: &F, x0: &F, y: &F, y0: &F, m: &mut F| *m = f(g, x, x0, y, y0);
    #[cfg(feature = "parallel")]
    if crate::tensor::par_elems(step.input.len()) {
        zip.par_for_each(f);
    } else {
        zip.for_each(f);
    }
    #[cfg(not(feature = "parallel"))]
    zip.for_each(f);
    if fallback.load(Ordering::Relaxed) {
        fill_fallback(layer, step, bx, threshold, &mut m)?;
    }
    Ok(m)
}

/// The gradient fallback of [`rescale`]: `m = ∂y/∂x · m_out` where `|Δx| < threshold`.
fn fill_fallback<F: Float>(
    layer: &dyn Layer<F>,
    step: &Step<'_, F>,
    bx: &ArrayViewD<'_, F>,
    threshold: F,
    m: &mut ArrayD<F>,
) -> Result<()> {
    let grad = layer.gradient(step, step.relevance.view())?;
    check_same("activation gradient", step.input.shape(), grad.shape())?;
    Zip::from(m)
        .and(&grad)
        .and(&step.input)
        .and(bx)
        .for_each(|m, &g, &x, &x0| {
            if (x - x0).abs() < threshold {
                *m = g;
            }
        });
    Ok(())
}

/// The rows of a batch array `[N, ...]` as one slice of `N · per` elements, or of a baseline
/// broadcast over the batch (stride 0 on axis 0) as the slice of its one sample, with the
/// step from one sample to the next (`per` or 0); `None` if neither is contiguous.
fn sample_rows<'a, F: Float>(a: &ArrayViewD<'a, F>, per: usize) -> Option<(&'a [F], usize)> {
    if let Some(s) = a.to_slice() {
        return Some((s, per));
    }
    if a.ndim() > 0 && a.strides()[0] == 0 {
        let row = a.clone().index_axis_move(ndarray::Axis(0), 0);
        return row.to_slice().filter(|s| s.len() == per).map(|s| (s, 0));
    }
    None
}

/// [`rescale`]'s pass over contiguous arrays (a baseline may be broadcast over the batch):
/// plain slice loops with the division on every element, vectorised, rather than a
/// six-way `Zip` over dynamic dimensions. Returns the multipliers and whether some `|Δx|` is
/// below the threshold; `None` (nothing written) for other layouts. Same bits as the `Zip`.
fn rescale_rows<F: Float>(
    step: &Step<'_, F>,
    bx: &ArrayViewD<'_, F>,
    by: &ArrayViewD<'_, F>,
    threshold: F,
) -> Option<(ArrayD<F>, bool)> {
    let n = step.input.shape().first().copied().filter(|&n| n > 0)?;
    let per = step.input.len() / n;
    let (g, x, y) = (
        step.relevance.to_slice()?,
        step.input.to_slice()?,
        step.output.to_slice()?,
    );
    let ((x0, sx0), (y0, sy0)) = (sample_rows(bx, per)?, sample_rows(by, per)?);
    let mut m = crate::tensor::output_buffer(step.input.len());
    // one block of a sample; whether some |Δx| is below the threshold
    let block = |m: &mut [F], g: &[F], x: &[F], x0: &[F], y: &[F], y0: &[F]| {
        let mut small = false;
        for (((m, &g), (&x, &x0)), (&y, &y0)) in
            m.iter_mut().zip(g).zip(x.iter().zip(x0)).zip(y.iter().zip(y0))
        {
            let dx = x - x0;
            let keep = dx.abs() >= threshold;
            small |= !keep;
            let q = g * (y - y0) / dx;
            *m = if keep { q } else { F::zero() };
        }
        small
    };
    let mut small = false;
    for s in 0..n {
        let r = s * per..(s + 1) * per;
        let (x0, y0) = (&x0[s * sx0..s * sx0 + per], &y0[s * sy0..s * sy0 + per]);
        let (m, g, x, y) = (&mut m[r.clone()], &g[r.clone()], &x[r.clone()], &y[r]);
        #[cfg(feature = "parallel")]
        if crate::tensor::par_elems(per) {
            use rayon::prelude::*;
            const CHUNK: usize = 1 << 14;
            let parts = m
                .par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK).zip(x.par_chunks(CHUNK)))
                .zip(
                    x0.par_chunks(CHUNK)
                        .zip(y.par_chunks(CHUNK).zip(y0.par_chunks(CHUNK))),
                );
            small |= parts
                .map(|((m, (g, x)), (x0, (y, y0)))| block(m, g, x, x0, y, y0))
                .reduce(|| false, |a, b| a | b);
            continue;
        }
        small |= block(m, g, x, x0, y, y0);
    }
    let m = ArrayD::from_shape_vec(step.input.raw_dim(), m).expect("length matches the shape");
    Some((m, small))
}

/// The cross-max rule at a max-pool (see [`MaxPoolRule::CrossMax`]).
fn cross_max<F: Float>(layer: &dyn Select<F>, step: &Step<'_, F>, threshold: F) -> Result<ArrayD<F>> {
    let (bx, _) = baseline(step)?;
    if let Some(m) = layer.cross_max(&step.input, bx, &step.relevance, threshold) {
        return Ok(m);
    }
    cross_max_general(layer, step, threshold)
}

/// [`cross_max`] for any selection, through [`Select::route`]: with `y`, `ȳ` the recorded
/// outputs on `x` and `x̄` and `ŷ = max(y, ȳ)`, `m·(ŷ − ȳ)` is routed as on `x` and
/// `m·(y − ŷ)` as on `x̄`; their sum over `Δx` is the multiplier (the gradient where `|Δx|`
/// is below the threshold).
fn cross_max_general<F: Float>(layer: &dyn Select<F>, step: &Step<'_, F>, threshold: F) -> Result<ArrayD<F>> {
    let (bx, by) = baseline(step)?;
    check_same(
        "DeepLIFT multiplier at the max-pool output",
        step.output.shape(),
        step.relevance.shape(),
    )?;
    let mut from_x = step.relevance.to_owned();
    let mut from_x0 = step.relevance.to_owned();
    Zip::from(&mut from_x)
        .and(&mut from_x0)
        .and(&step.output)
        .and(by)
        .for_each(|a, b, &y, &y0| {
            let top = if y > y0 { y } else { y0 };
            *a *= top - y0;
            *b *= y - top;
        });
    // Routing adds, so overlapping windows keep every contribution (captum's
    // max_unpool overwrites instead).
    let mut sum = layer.route(&step.input, &from_x.view())?;
    sum += &layer.route(bx, &from_x0.view())?;
    let grad = layer.route(&step.input, &step.relevance)?;
    Zip::from(&mut sum)
        .and(&grad)
        .and(&step.input)
        .and(bx)
        .for_each(|s, &g, &x, &x0| {
            let dx = x - x0;
            *s = if dx.abs() < threshold { g } else { *s / dx };
        });
    Ok(sum)
}

/// The multipliers of a product `y = a ⊙ b` of two computed tensors (broadcasting
/// allowed): the two-player Shapley split `Δy = ½(b + b̄)·Δa + ½(a + ā)·Δb`, exact for
/// every difference, so `m_a = Σ m·½(b + b̄)` and `m_b = Σ m·½(a + ā)` (sums over the axes
/// a factor is broadcast along).
fn shapley_product<F: Float>(step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
    let (Some(base), [a, b]) = (step.baseline_inputs.as_ref(), step.inputs.as_slice()) else {
        return Err(Error::Unsupported {
            rule: "DeepLift".into(),
            reason: "a product needs two inputs and their baseline values".into(),
        });
    };
    let [a0, b0] = base.as_slice() else {
        return Err(Error::Unsupported {
            rule: "DeepLift".into(),
            reason: "a product needs the baseline values of both inputs".into(),
        });
    };
    let half = F::lit(0.5);
    let out = step.relevance.raw_dim();
    let mid = |x: &ArrayViewD<'_, F>, x0: &ArrayViewD<'_, F>| -> Result<ArrayD<F>> {
        let m = (x + x0).mapv(|v| v * half);
        m.broadcast(out.clone())
            .map(|v| v.to_owned())
            .ok_or_else(|| Error::Shape {
                what: "factor of a product (must broadcast to the output)".into(),
                expected: step.relevance.shape().to_vec(),
                got: x.shape().to_vec(),
            })
    };
    let m_a = sum_to_shape(&step.relevance * &mid(b, b0)?, a.shape())?;
    let m_b = sum_to_shape(&step.relevance * &mid(a, a0)?, b.shape())?;
    Ok(vec![m_a, m_b])
}

/// `Δz⁺ = W⁺Δx⁺ + W⁻Δx⁻` and `Δz⁻ = W⁻Δx⁺ + W⁺Δx⁻` of an affine layer, bias excluded
/// (kundajelab/deeplift `layers/core.py`, `Dense` with `DenseMxtsMode.Linear`).
pub(crate) fn split_forward<F: Float>(
    layer: &dyn Affine<F>,
    dx: &ArrayD<F>,
) -> Result<(ArrayD<F>, ArrayD<F>)> {
    let w = layer.weight();
    let (wp, wn) = (positive(&w), negative(&w));
    let (dxp, dxn) = (positive(&dx.view()), negative(&dx.view()));
    let pos = layer.apply_with(dxp.view(), wp.view())? + layer.apply_with(dxn.view(), wn.view())?;
    let neg = layer.apply_with(dxp.view(), wn.view())? + layer.apply_with(dxn.view(), wp.view())?;
    Ok((pos, neg))
}

/// The input multiplier of an affine layer from separate multipliers of `Δz⁺` and `Δz⁻`:
/// an input with `Δx > 0` takes `W⁺ᵀm⁺ + W⁻ᵀm⁻`, one with `Δx < 0` takes `W⁻ᵀm⁺ + W⁺ᵀm⁻`,
/// one with `Δx = 0` the mean of both (kundajelab/deeplift `layers/core.py`).
pub(crate) fn split_transpose<F: Float>(
    layer: &dyn Affine<F>,
    dx: &ArrayD<F>,
    m_pos: &ArrayD<F>,
    m_neg: &ArrayD<F>,
) -> Result<ArrayD<F>> {
    let w = layer.weight();
    let (wp, wn) = (positive(&w), negative(&w));
    let shape = &dx.shape()[1..];
    let t = |m: &ArrayD<F>, w: &ArrayD<F>| layer.apply_transpose(m.view(), w.view(), shape);
    let mut up = t(m_pos, &wp)? + t(m_neg, &wn)?;
    let down = t(m_pos, &wn)? + t(m_neg, &wp)?;
    let half = F::lit(0.5);
    Zip::from(&mut up).and(&down).and(dx).for_each(|u, &d, &dx| {
        if dx < F::zero() {
            *u = d;
        } else if dx == F::zero() {
            *u = half * (*u + d);
        }
    });
    Ok(up)
}

/// RevealCancel at an activation `f` with baseline input `x̄`, given `Δx⁺`, `Δx⁻` from the
/// layer below (paper eq. for Δy⁺/Δy⁻; kundajelab `activations.py`):
/// `Δy⁺ = ½[f(x̄+Δx⁺) − f(x̄)] + ½[f(x̄+Δx⁻+Δx⁺) − f(x̄+Δx⁻)]`, `Δy⁻` likewise, and
/// `m± = m_out · Δy± / Δx±`, the gradient at the input where `|Δx±| < threshold`.
/// Returns `(m⁺, m⁻)`.
pub(crate) fn reveal_cancel<F: Float>(
    layer: &dyn Layer<F>,
    step: &Step<'_, F>,
    dpos: &ArrayD<F>,
    dneg: &ArrayD<F>,
    threshold: F,
) -> Result<(ArrayD<F>, ArrayD<F>)> {
    let (bx, by) = baseline(step)?;
    check_same(
        "DeepLIFT multiplier at the activation output",
        step.output.shape(),
        step.relevance.shape(),
    )?;
    let f = |a: ArrayD<F>| layer.forward(a.view());
    let f_pos = f(bx + dpos)?;
    let f_neg = f(bx + dneg)?;
    let f_both = f(bx + dpos + dneg)?;
    let ones = ArrayD::from_elem(step.output.raw_dim(), F::one());
    let slope = layer.gradient(step, ones.view())?;
    let half = F::lit(0.5);
    let ratio = |d: F, dy: F, s: F| if d.abs() < threshold { s } else { dy / d };
    let dy_pos = (&f_pos - by) * half + (&f_both - &f_neg) * half;
    let dy_neg = (&f_neg - by) * half + (&f_both - &f_pos) * half;
    let mut m_pos = step.relevance.to_owned();
    let mut m_neg = step.relevance.to_owned();
    Zip::from(&mut m_pos)
        .and(dpos)
        .and(&dy_pos)
        .and(&slope)
        .for_each(|m, &d, &dy, &s| *m *= ratio(d, dy, s));
    Zip::from(&mut m_neg)
        .and(dneg)
        .and(&dy_neg)
        .and(&slope)
        .for_each(|m, &d, &dy, &s| *m *= ratio(d, dy, s));
    Ok((m_pos, m_neg))
}

impl<F: Float> Rule<F> for DeepLift {
    fn name(&self) -> String {
        format!(
            "DeepLift({:?}, max-pool {:?}, threshold {:e})",
            self.nonlinear, self.max_pool, self.threshold
        )
    }

    /// The Linear rule: `m_in = Wᵀ m_out` (the bias cancels in `Δz = W Δx`).
    fn affine(&self, layer: &dyn Affine<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        check_same(
            "DeepLIFT multiplier at the layer output",
            step.output.shape(),
            step.relevance.shape(),
        )?;
        layer.apply_transpose(step.relevance.view(), layer.weight(), &step.input.shape()[1..])
    }

    /// Rescale. (RevealCancel needs `Δx⁺` and `Δx⁻` from the layer below, which
    /// [`Network::deeplift`](crate::Network::deeplift) supplies; called alone, this method
    /// applies Rescale.)
    fn activation(&self, layer: &dyn Layer<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        rescale(layer, step, F::lit(self.threshold))
    }

    /// The Linear rule: the transposed map.
    fn linear(&self, map: &dyn LinearMap<F>, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        let shapes: Vec<&[usize]> = step.inputs.iter().map(|x| &x.shape()[1..]).collect();
        map.transpose(step.relevance.view(), &shapes)
    }

    fn select(&self, layer: &dyn Select<F>, step: &Step<'_, F>) -> Result<ArrayD<F>> {
        match self.max_pool {
            MaxPoolRule::CrossMax => cross_max(layer, step, F::lit(self.threshold)),
            MaxPoolRule::Gradient => layer.route(&step.input, &step.relevance),
        }
    }

    /// The two-player Shapley split (see [`DeepLift`]).
    fn product(&self, step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
        shapley_product(step)
    }

    fn needs_baseline(&self) -> bool {
        true
    }
}

impl<F: Float> super::RuleSet<F> for DeepLift {
    fn resolve<'a>(&'a self, nodes: &[NodeInfo<'_>]) -> Vec<&'a dyn Rule<F>> {
        vec![self as &dyn Rule<F>; nodes.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::MaxPool2d;
    use ndarray::{Array, Array4, IxDyn};

    /// A small deterministic generator with many ties (values on a coarse grid).
    fn grid(len: usize, seed: u64) -> Vec<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % 7) as f64 - 3.0
            })
            .collect()
    }

    /// The one-pass 2×2 cross-max gives the general path's values bit for bit: ties,
    /// `Δx = 0`, argmaxes of `x` and `x̄` that differ, odd sizes, a broadcast baseline.
    #[test]
    fn cross_max_2x2_matches_the_general_path() {
        let pool = MaxPool2d::square(2).unwrap();
        for (n, c, h, w, broadcast) in [(1, 3, 4, 6, false), (2, 2, 5, 7, false), (3, 2, 6, 5, true)] {
            let (ho, wo) = (h / 2, w / 2);
            let x = Array::from_shape_vec(IxDyn(&[n, c, h, w]), grid(n * c * h * w, 1)).unwrap();
            let x0_row = Array::from_shape_vec(IxDyn(&[1, c, h, w]), grid(c * h * w, 2)).unwrap();
            let x0 = if broadcast {
                x0_row.broadcast(IxDyn(&[n, c, h, w])).unwrap().to_owned()
            } else {
                Array::from_shape_vec(IxDyn(&[n, c, h, w]), grid(n * c * h * w, 2)).unwrap()
            };
            let x0_view = if broadcast {
                x0_row.broadcast(IxDyn(&[n, c, h, w])).unwrap()
            } else {
                x0.view()
            };
            assert!(x.iter().zip(x0.iter()).any(|(a, b)| a == b), "some Δx = 0");
            let m = Array4::from_shape_vec((n, c, ho, wo), grid(n * c * ho * wo, 3))
                .unwrap()
                .into_dyn();
            let y = Layer::<f64>::forward(&pool, x.view()).unwrap();
            let y0 = Layer::<f64>::forward(&pool, x0.view()).unwrap();
            let mut step = Step::new(0, x.view(), y.view(), m.view());
            step.baseline_input = Some(x0_view.clone());
            step.baseline_output = Some(y0.view());
            let fast = Select::cross_max(&pool, &step.input, &x0_view, &step.relevance, DEEPLIFT_THRESHOLD)
                .expect("a 2×2 pool takes the one-pass path");
            let general = cross_max_general(&pool, &step, DEEPLIFT_THRESHOLD).unwrap();
            assert_eq!(fast.shape(), general.shape());
            // `==` is bit equality here, up to the sign of zero
            for (a, b) in fast.iter().zip(general.iter()) {
                assert!(a == b, "{a} vs {b}");
            }
            // and it is not trivially zero
            assert!(fast.iter().any(|&v| v != 0.0));
        }
    }
}
