//! The per-node steps of DeepLIFT: Rescale (with its gradient fallback), RevealCancel and
//! the split multipliers of the affine layer below it, cross-max at selections, and the
//! Shapley split at products.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Affine, Layer, MergeStep, Select, Step};
use crate::tensor::broadcast::sum_to_shape;
use crate::tensor::numerics::{negative, positive};
use ndarray::{ArrayD, ArrayViewD, Zip};

/// The baseline pass of a step, or the error that says it is missing.
pub(super) fn baseline<'s, 'a, F>(
    step: &'s Step<'a, F>,
) -> Result<(&'s ArrayViewD<'a, F>, &'s ArrayViewD<'a, F>)> {
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
        _ => Err(no_baseline()),
    }
}

/// The error for a DeepLIFT step without the baseline's pass.
pub(super) fn no_baseline() -> Error {
    Error::Unsupported {
        rule: "DeepLift".into(),
        reason: "no baseline pass was recorded for this step; DeepLIFT runs through Network::explain".into(),
    }
}

pub(super) fn check_same(what: &str, expected: &[usize], got: &[usize]) -> Result<()> {
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
    let mut m =
        crate::tensor::layout::shaped(step.input.raw_dim(), crate::pool::output_buffer(step.input.len()));
    let zip = zip.and(&mut m);
    let f = |g: &F, x: &F, x0: &F, y: &F, y0: &F, m: &mut F| *m = f(g, x, x0, y, y0);
    #[cfg(feature = "parallel")]
    if crate::kernels::elementwise::par_elems(step.input.len()) {
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
    if fill_fallback_sparse(layer, step, bx, threshold, m)? {
        return Ok(());
    }
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

/// [`fill_fallback`] on the few elements that need it: where fewer than a quarter of the
/// inputs have `|Δx|` below the threshold (in genomics, the positions a shuffled reference
/// shares with its sequence), their inputs, outputs and multipliers are gathered into a
/// `[1, k]` step and the gradient is taken there only. An activation is elementwise, one
/// function for every element
/// (`y_i = f(x_i)`, [`Class::Activation`](crate::layers::Class::Activation)), so each
/// element's gradient is the same as in the whole array. Returns `false` (nothing written)
/// for arrays that are not contiguous or for many such elements.
fn fill_fallback_sparse<F: Float>(
    layer: &dyn Layer<F>,
    step: &Step<'_, F>,
    bx: &ArrayViewD<'_, F>,
    threshold: F,
    m: &mut ArrayD<F>,
) -> Result<bool> {
    // only for a function applied alike to every element (not batch norm, whose scale
    // depends on the channel)
    if !matches!(layer.class(), crate::layers::Class::Activation(_)) {
        return Ok(false);
    }
    let Some(n) = step.input.shape().first().copied().filter(|&n| n > 0) else {
        return Ok(false);
    };
    let per = step.input.len() / n;
    let (Some(g), Some(x), Some(y), Some((x0, sx0))) = (
        step.relevance.to_slice(),
        step.input.to_slice(),
        step.output.to_slice(),
        sample_rows(bx, per),
    ) else {
        return Ok(false);
    };
    let Some(ms) = m.as_slice_mut() else {
        return Ok(false);
    };
    let mut at = Vec::new();
    for s in 0..n {
        let (xs, x0s) = (&x[s * per..(s + 1) * per], &x0[s * sx0..s * sx0 + per]);
        for (i, (&a, &b)) in xs.iter().zip(x0s).enumerate() {
            if (a - b).abs() < threshold {
                at.push(s * per + i);
                if at.len() * 4 > x.len() {
                    return Ok(false);
                }
            }
        }
    }
    if at.is_empty() {
        return Ok(true);
    }
    let gather =
        |v: &[F]| crate::tensor::layout::shaped(vec![1, at.len()], at.iter().map(|&i| v[i]).collect());
    let (gx, gy, gg) = (gather(x), gather(y), gather(g));
    let small = Step::new(step.index, gx.view(), gy.view(), gg.view());
    let grad = layer.gradient(&small, gg.view())?;
    check_same("activation gradient", gx.shape(), grad.shape())?;
    for (&i, &v) in at.iter().zip(grad.iter()) {
        ms[i] = v;
    }
    Ok(true)
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
    let mut m = crate::pool::output_buffer(step.input.len());
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
        if crate::kernels::elementwise::par_elems(per) {
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
    let m = crate::tensor::layout::shaped(step.input.raw_dim(), m);
    Some((m, small))
}

/// The cross-max rule at a max-pool (see [`MaxPoolRule::CrossMax`](super::MaxPoolRule::CrossMax)).
pub(super) fn cross_max<F: Float>(
    layer: &dyn Select<F>,
    step: &Step<'_, F>,
    threshold: F,
) -> Result<ArrayD<F>> {
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
///
/// Where a window of `x̄` holds several equal maxima (a zero baseline is constant across
/// space away from the borders), `m·(y − ŷ)` goes to the first, PyTorch's choice in exact
/// arithmetic; captum's index follows PyTorch's rounding of those maxima instead
/// (`tests/suite/deeplift_squeezenet.rs`).
pub(super) fn cross_max_general<F: Float>(
    layer: &dyn Select<F>,
    step: &Step<'_, F>,
    threshold: F,
) -> Result<ArrayD<F>> {
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
pub(super) fn shapley_product<F: Float>(step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
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

/// The Shapley split of a matrix product (see `DeepLift::matmul`).
pub(super) fn shapley_matmul<F: Float>(step: &MergeStep<'_, F>) -> Result<Vec<ArrayD<F>>> {
    let [a, b] = crate::layers::matmul_two(step)?;
    let Some([a0, b0]) = step.baseline_inputs.as_deref() else {
        return Err(Error::Unsupported {
            rule: "DeepLift".into(),
            reason: "a matrix product needs the baseline values of both inputs".into(),
        });
    };
    let half = F::lit(0.5);
    let mid = |x: &ArrayViewD<'_, F>, x0: &ArrayViewD<'_, F>| -> Result<ArrayD<F>> {
        check_same("baseline of a matrix product's factor", x.shape(), x0.shape())?;
        Ok((x + x0).mapv(|v| v * half))
    };
    let (am, bm) = (mid(a, a0)?, mid(b, b0)?);
    let plan = crate::layers::MatMulPlan::new(a.shape(), b.shape())?;
    let (ma, mb) = plan.transposes(&am.view(), &bm.view(), &step.relevance)?;
    Ok(vec![ma, mb])
}

/// `Δz⁺ = W⁺Δx⁺ + W⁻Δx⁻` and `Δz⁻ = W⁻Δx⁺ + W⁺Δx⁻` of an affine layer, bias excluded
/// (kundajelab/deeplift `layers/core.py`, `Dense` with `DenseMxtsMode.Linear`).
pub(super) fn split_forward<F: Float>(
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
pub(super) fn split_transpose<F: Float>(
    layer: &dyn Affine<F>,
    dx: &ArrayD<F>,
    m_pos: &ArrayD<F>,
    m_neg: &ArrayD<F>,
) -> Result<ArrayD<F>> {
    let w = layer.weight();
    let (wp, wn) = (positive(&w), negative(&w));
    let shape = crate::tensor::checks::per_sample(dx.shape());
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
pub(super) fn reveal_cancel<F: Float>(
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

/// captum's `softmax` rule, per sample (see `DeepLift::softmax`): `u = m_out · Δy / Δx`
/// (the gradient where `|Δx| < threshold`: at the input for the input's copy, at the
/// baseline for the baseline's), then `m = u − (Σ u + Σ u₀) / (2 n)` with `n` the values
/// per sample.
pub(crate) fn softmax<F: Float>(layer: &dyn Layer<F>, step: &Step<'_, F>, threshold: F) -> Result<ArrayD<F>> {
    let (bx, by) = baseline(step)?;
    check_same(
        "DeepLIFT multiplier at the softmax output",
        step.output.shape(),
        step.relevance.shape(),
    )?;
    check_same("softmax input", step.output.shape(), step.input.shape())?;
    // the gradient fallbacks (read only where |Δx| is small), at the input and at the
    // baseline
    let at_input = layer.gradient(step, step.relevance.view())?;
    let at_baseline_step = Step::new(step.index, bx.view(), by.view(), step.relevance.view());
    let at_baseline = layer.gradient(&at_baseline_step, step.relevance.view())?;
    check_same("softmax gradient", step.input.shape(), at_input.shape())?;
    check_same("softmax gradient", step.input.shape(), at_baseline.shape())?;
    let mut m = ArrayD::<F>::zeros(step.input.raw_dim());
    let rows = step.input.shape()[0];
    let per_sample = step.input.len() / rows.max(1);
    let two_n = F::lit((2 * per_sample) as f64);
    for r in 0..rows {
        let row = |a: &ArrayViewD<'_, F>| a.index_axis(ndarray::Axis(0), r).to_owned();
        let (g, x, x0, y, y0) = (
            row(&step.relevance),
            row(&step.input),
            row(bx),
            row(&step.output),
            row(by),
        );
        let (gi, gb) = (row(&at_input.view()), row(&at_baseline.view()));
        let mut sum = F::zero();
        let mut mr = m.index_axis_mut(ndarray::Axis(0), r);
        let inputs = g
            .iter()
            .zip(&x)
            .zip(&x0)
            .zip(y.iter().zip(&y0))
            .zip(gi.iter().zip(&gb));
        for (m, ((((&g, &x), &x0), (&y, &y0)), (&gi, &gb))) in mr.iter_mut().zip(inputs) {
            let dx = x - x0;
            if dx.abs() < threshold {
                *m = gi;
                sum = sum + gi + gb;
            } else {
                *m = g * (y - y0) / dx;
                sum = sum + *m + *m;
            }
        }
        let mean = sum / two_n;
        mr.mapv_inplace(|v| v - mean);
    }
    Ok(m)
}

/// DeepLIFT through a softmax's own graph (`SoftmaxRule::Exact`), per lane of its axis.
pub(crate) fn softmax_exact<F: Float>(
    layer: &dyn Layer<F>,
    step: &Step<'_, F>,
    threshold: F,
) -> Result<ArrayD<F>> {
    let (bx, _) = baseline(step)?;
    let axis = crate::rules::attention::softmax_lanes(layer, step)?;
    let half = F::lit(0.5);
    let mut m = step.relevance.to_owned();
    for ((mut m, x), x0) in m
        .lanes_mut(axis)
        .into_iter()
        .zip(step.input.lanes(axis))
        .zip(bx.lanes(axis))
    {
        let c = x
            .iter()
            .chain(x0.iter())
            .fold(F::neg_infinity(), |c, &v| if v > c { v } else { c });
        let c = if c.is_finite() { c } else { F::zero() };
        let e: Vec<F> = x.iter().map(|&v| (v - c).exp()).collect();
        let e0: Vec<F> = x0.iter().map(|&v| (v - c).exp()).collect();
        let (z, z0) = (
            e.iter().fold(F::zero(), |a, &v| a + v),
            e0.iter().fold(F::zero(), |a, &v| a + v),
        );
        let (q, q0) = (F::one() / z, F::one() / z0);
        let mut m_q = F::zero();
        for (i, &mi) in m.iter().enumerate() {
            m_q += mi * half * (e[i] + e0[i]);
        }
        let dz = z - z0;
        let m_z = m_q
            * if dz.abs() < threshold {
                let zm = half * (z + z0);
                -F::one() / (zm * zm)
            } else {
                (q - q0) / dz
            };
        for (i, mi) in m.iter_mut().enumerate() {
            let m_e = *mi * half * (q + q0) + m_z;
            let dx = x[i] - x0[i];
            *mi = if e[i] == F::zero() && e0[i] == F::zero() {
                F::zero()
            } else if dx.abs() >= threshold {
                m_e * (e[i] - e0[i]) / dx
            } else {
                // also where dx is NaN (both −∞)
                m_e * e[i]
            };
        }
    }
    Ok(m)
}
