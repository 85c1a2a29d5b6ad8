//! DeepLIFT's cross-max rule at pools with general windows, through index arrays.

use super::MaxPool2d;
use crate::float::Float;
use ndarray::{ArrayD, ArrayViewD, Zip};

impl MaxPool2d {
    /// DeepLIFT's cross-max rule in its general form (`rules::deeplift`'s
    /// `cross_max_general`: the same formulas, routings and order of additions, so the same
    /// bits) with the first maxima of `input` and of `baseline` each found once: the
    /// general form routes through [`Select::route`], which finds `input`'s twice (for the
    /// difference and for the gradient), about a third of a DeepLIFT call's time in
    /// ResNet's 3×3 / stride-2 pool. The window maxima are the recorded outputs' values
    /// (the same first-maximum scan). `None` if the arrays do not fit (the general path
    /// then reports the error).
    pub(crate) fn cross_max_indexed<F: Float>(
        &self,
        input: &ArrayViewD<'_, F>,
        baseline: &ArrayViewD<'_, F>,
        multiplier: &ArrayViewD<'_, F>,
        threshold: F,
    ) -> Option<ArrayD<F>> {
        if input.ndim() != 4 || baseline.shape() != input.shape() {
            return None;
        }
        let (y, at) = self.argmax(input).ok()?;
        let (y0, at0) = self.argmax(baseline).ok()?;
        if multiplier.shape() != y.shape() {
            return None;
        }
        // m·(ŷ − ȳ), routed as on x, and m·(y − ŷ), routed as on x̄, with ŷ = max(y, ȳ)
        let mut from_x = multiplier.to_owned();
        let mut from_x0 = multiplier.to_owned();
        Zip::from(&mut from_x)
            .and(&mut from_x0)
            .and(y.view().into_dyn())
            .and(y0.view().into_dyn())
            .for_each(|a, b, &y, &y0| {
                let top = if y > y0 { y } else { y0 };
                *a *= top - y0;
                *b *= y - top;
            });
        let shape = input.shape();
        let mut sum = self.route(shape, &at, &from_x.view()).ok()?;
        sum += &self.route(shape, &at0, &from_x0.view()).ok()?;
        let grad = self.route(shape, &at, multiplier).ok()?;
        Zip::from(&mut sum)
            .and(&grad)
            .and(input)
            .and(baseline)
            .for_each(|s, &g, &x, &x0| {
                let dx = x - x0;
                *s = if dx.abs() < threshold { g } else { *s / dx };
            });
        Some(sum)
    }
}
