//! What perturbation measures: the curves of both orders or of one, AOPC and ABPC.

use super::perturbation::{Order, Score};
use crate::float::Float;
use ndarray::{Array1, Array2};

/// What [`RegionPerturbation::evaluate`](super::RegionPerturbation::evaluate) measured: per sample, the target score before the
/// first step and after each step, in both orders.
#[derive(Debug, Clone, PartialEq)]
pub struct PerturbationCurves<F: Float> {
    /// The target logit along the MoRF order, `[N, L + 1]`; column 0 is `f(x)`.
    pub morf: Array2<F>,
    /// The target logit along the LeRF order, `[N, L + 1]`.
    pub lerf: Array2<F>,
    /// The target's softmax probability along the MoRF order, `[N, L + 1]`.
    pub morf_probability: Array2<F>,
    /// The target's softmax probability along the LeRF order, `[N, L + 1]`.
    pub lerf_probability: Array2<F>,
    /// How many regions are perturbed at each point of the curves (`L + 1` entries).
    pub perturbed: Vec<usize>,
    /// How many regions the image has.
    pub regions: usize,
}

impl<F: Float> PerturbationCurves<F> {
    /// One set of curves, `[N, L + 1]`.
    pub fn curve(&self, order: Order, score: Score) -> &Array2<F> {
        match (order, score) {
            (Order::MoRF, Score::Logit) => &self.morf,
            (Order::LeRF, Score::Logit) => &self.lerf,
            (Order::MoRF, Score::Probability) => &self.morf_probability,
            (Order::LeRF, Score::Probability) => &self.lerf_probability,
        }
    }

    /// AOPC per sample, Samek et al. (2017, eq. 12): `1/(L+1) Σ_{k=0..L} f(x) − f(x_k)`,
    /// the mean over the L + 1 points of the curve (the first is 0). Larger for MoRF means
    /// the relevant regions were found; small for LeRF means the irrelevant ones were.
    /// (Quantus' `RegionPerturbation` returns the L differences `f(x) − f(x_k)`, k ≥ 1,
    /// whose mean is this value × (L + 1)/L.)
    pub fn aopc(&self, order: Order, score: Score) -> Array1<F> {
        aopc_of(self.curve(order, score))
    }

    /// ABPC per sample (Schulz et al. 2020): the mean over the points of
    /// `f(x_k^LeRF) − f(x_k^MoRF)`, the area between the two curves, which equals
    /// `aopc(MoRF) − aopc(LeRF)`. Positive when the MoRF curve falls faster.
    pub fn abpc(&self, score: Score) -> Array1<F> {
        let (m, l) = (self.curve(Order::MoRF, score), self.curve(Order::LeRF, score));
        let points = F::lit(m.ncols() as f64);
        m.rows()
            .into_iter()
            .zip(l.rows())
            .map(|(m, l)| m.iter().zip(l.iter()).fold(F::zero(), |s, (&a, &b)| s + (b - a)) / points)
            .collect()
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.morf.nrows()
    }

    /// Whether there are no samples (never, for curves that were measured).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`RegionPerturbation::evaluate_order`](super::RegionPerturbation::evaluate_order) measured: the curves of one order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderCurve<F: Float> {
    /// The order the regions were perturbed in.
    pub order: Order,
    /// The target logit, `[N, L + 1]`; column 0 is `f(x)`.
    pub logit: Array2<F>,
    /// The target's softmax probability, `[N, L + 1]`.
    pub probability: Array2<F>,
    /// How many regions are perturbed at each point of the curves (`L + 1` entries).
    pub perturbed: Vec<usize>,
    /// How many regions the image has.
    pub regions: usize,
}

impl<F: Float> OrderCurve<F> {
    /// The curves of one score, `[N, L + 1]`.
    pub fn curve(&self, score: Score) -> &Array2<F> {
        match score {
            Score::Logit => &self.logit,
            Score::Probability => &self.probability,
        }
    }

    /// AOPC per sample, as [`PerturbationCurves::aopc`].
    pub fn aopc(&self, score: Score) -> Array1<F> {
        aopc_of(self.curve(score))
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.logit.nrows()
    }

    /// Whether there are no samples (never, for curves that were measured).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `1/(L+1) Σ_k f(x) − f(x_k)` per row.
fn aopc_of<F: Float>(c: &Array2<F>) -> Array1<F> {
    let points = F::lit(c.ncols() as f64);
    c.rows()
        .into_iter()
        .map(|row| row.iter().fold(F::zero(), |s, &v| s + (row[0] - v)) / points)
        .collect()
}
