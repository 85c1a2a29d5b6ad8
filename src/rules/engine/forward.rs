//! Step 1 of the engine: the modified forward passes `z_g = Σₜ signₜ · (apply_with(xₜ, Wₜ) +
//! bₜ)`, one per group, with its named fast paths (see [`FastPaths`]).

use super::plan::{Plan, Slot};
use super::{FastPaths, Input, Param, Recipe, Term};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::elementwise::update2;
use crate::layers::{Affine, Step};
use ndarray::{Array1, ArrayD, ArrayViewD, CowArray, IxDyn, Zip};

/// Whether a term's forward pass is the recorded output (the unmodified layer on the
/// unmodified input, with its bias).
fn recorded<F: Float>(t: &Term, b: &Option<ndarray::ArrayView1<'_, F>>) -> bool {
    t.input == Input::All && t.weight == Param::Keep && (t.bias == Some(Param::Keep) || b.is_none())
}

/// `z_g` for every group (`None` for a group none of whose terms contributes).
pub(super) fn modified_outputs<'s, F: Float>(
    layer: &dyn Affine<F>,
    step: &Step<'s, F>,
    recipe: &Recipe<'_, F>,
    plan: &Plan<'_, '_, F>,
    fast: FastPaths,
) -> Result<Vec<Option<CowArray<'s, F, IxDyn>>>> {
    let x = &step.input;
    let input_shape = crate::tensor::checks::per_sample(x.shape());
    let b = layer.bias();
    let reuse = |t: &Term| fast.recorded_output && recorded(t, &b);
    let mut forward: Vec<Option<ArrayD<F>>> = plan.active.iter().map(|_| None).collect();
    for (p, (part, xp)) in plan.inputs.iter().enumerate() {
        let which: Vec<usize> = (0..plan.active.len())
            .filter(|&i| {
                let a = &plan.active[i];
                a.input == p && !plan.plain[a.group] && !reuse(&a.term)
            })
            .collect();
        if which.is_empty() {
            continue;
        }
        // Fast path `gamma_derived`: γ's two weights sum to (2 + γ)W, so on the unmodified
        // input (x itself) W↓x = (2 + γ)·Wx − W↑x, with Wx the recorded output less the
        // bias: one product fewer per layer.
        let whole = *part == Input::All || (*part == Input::Positive && plan.signs.non_negative(x));
        let derived: Vec<(usize, usize, f64)> = which
            .iter()
            .filter_map(|&i| match plan.active[i].term.weight {
                Param::GammaDown(g) if whole && fast.gamma_derived => which
                    .iter()
                    .find(|&&j| plan.active[j].term.weight == Param::GammaUp(g))
                    .map(|&j| (i, j, g)),
                _ => None,
            })
            .collect();
        let which: Vec<usize> = which
            .into_iter()
            .filter(|i| !derived.iter().any(|d| d.0 == *i))
            .collect();
        let ws: Vec<ArrayViewD<'_, F>> = which.iter().map(|&i| plan.active[i].weight.view()).collect();
        // Fast path `shared_forward`: one call for every weight on this input part, so a
        // layer shares the work that depends on x alone (a convolution's im2col).
        let zs = if fast.shared_forward {
            layer.apply_many(xp.view(), &ws)?
        } else {
            ws.iter()
                .map(|w| layer.apply_with(xp.view(), w.clone()))
                .collect::<Result<Vec<_>>>()?
        };
        for (i, z) in which.into_iter().zip(zs) {
            forward[i] = Some(z);
        }
        for (down, up, g) in derived {
            let k = F::lit(2.0 + g);
            let mut z = crate::pool::copied(&step.output);
            if let Some(bias) = b.as_ref() {
                layer.add_bias(&mut z, bias.mapv(|v| -v).view());
            }
            let Some(up) = forward[up].as_ref() else {
                return Err(missing(layer));
            };
            update2(&mut z, &up.view(), |z, u| *z = k * *z - u);
            forward[down] = Some(z);
        }
    }
    let mut zs = Vec::with_capacity(recipe.groups.len());
    for (gi, group) in recipe.groups.iter().enumerate() {
        if plan.plain[gi] {
            // Fast path `recorded_output`: the unmodified layer's output was recorded.
            zs.push(Some(step.output.clone().into()));
            continue;
        }
        let mut z: Option<ArrayD<F>> = None;
        for (t, slot) in group.terms.iter().zip(&plan.slots[gi]) {
            let mut zt = match *slot {
                Slot::Folded => continue,
                Slot::Active(i) => forward[i].take(),
                Slot::Vanishes => None,
            };
            if matches!(slot, Slot::Active(_)) && reuse(t) {
                // the recorded output, bias included
                zt = Some(crate::pool::copied(&step.output));
            } else if let (Some(bm), Some(bias)) = (t.bias, b.as_ref()) {
                let bt: Array1<F> = bias.mapv(|p| bm.apply(p));
                let zt = zt.get_or_insert_with(|| {
                    crate::tensor::layout::shaped(
                        step.output.raw_dim(),
                        crate::pool::written_zeros(step.output.len()),
                    )
                });
                layer.add_bias(zt, bt.view());
            }
            if let Some(zt) = zt {
                let sign = F::lit(t.sign);
                z = Some(match z {
                    None if t.sign == 1.0 => zt,
                    None => {
                        let mut zt = zt;
                        zt.mapv_inplace(|v| v * sign);
                        zt
                    }
                    Some(mut acc) => {
                        Zip::from(&mut acc).and(&zt).for_each(|a, &v| *a += sign * v);
                        crate::pool::recycle(zt);
                        acc
                    }
                });
            }
        }
        if let Some(v) = plan.folded[gi].as_ref() {
            let c = folded_output(layer, step, v, plan.folded_bias[gi].as_ref(), input_shape)?;
            z = Some(match z {
                None => c
                    .broadcast(step.output.raw_dim())
                    .ok_or_else(|| missing(layer))?
                    .to_owned(),
                Some(mut acc) => {
                    add_rows(&mut acc, &c)?;
                    acc
                }
            });
        }
        zs.push(z.map(CowArray::from));
    }
    Ok(zs)
}

/// The folded terms' output `V_g·1` plus their biases, the same for every sample: `[1, out...]`.
fn folded_output<F: Float>(
    layer: &dyn Affine<F>,
    step: &Step<'_, F>,
    v: &ArrayD<F>,
    bias: Option<&Array1<F>>,
    input_shape: &[usize],
) -> Result<ArrayD<F>> {
    let mut c = layer.apply_ones(v.view(), input_shape)?;
    if c.ndim() != step.output.ndim() || c.shape()[0] != 1 || c.shape()[1..] != step.output.shape()[1..] {
        return Err(Error::Shape {
            what: format!("{}: map of a constant input (one sample)", layer.name()),
            expected: [&[1], crate::tensor::checks::per_sample(step.output.shape())].concat(),
            got: c.shape().to_vec(),
        });
    }
    if let Some(fb) = bias {
        layer.add_bias(&mut c, fb.view());
    }
    Ok(c)
}

/// `acc += c` with `c` one sample `[1, ...]` added to every sample of `acc`.
fn add_rows<F: Float>(acc: &mut ArrayD<F>, c: &ArrayD<F>) -> Result<()> {
    match (acc.as_slice_mut(), c.as_slice()) {
        // sample by sample over contiguous rows
        (Some(a), Some(cs)) if !cs.is_empty() => {
            a.chunks_exact_mut(cs.len()).for_each(|row| {
                row.iter_mut().zip(cs).for_each(|(a, &v)| *a += v);
            });
        }
        _ => {
            let shape = acc.raw_dim();
            let c = c.broadcast(shape).ok_or_else(|| Error::Shape {
                what: "map of a constant input (must broadcast over the batch)".into(),
                expected: acc.shape().to_vec(),
                got: c.shape().to_vec(),
            })?;
            Zip::from(&mut *acc).and(&c).for_each(|a, &v| *a += v);
        }
    }
    Ok(())
}

/// The error for a forward pass the engine should have computed and did not.
fn missing<F: Float>(layer: &dyn Affine<F>) -> Error {
    Error::Unsupported {
        rule: layer.name(),
        reason: "a modified forward pass of the rule is missing".into(),
    }
}
