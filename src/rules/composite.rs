//! Composites: a rule chosen per layer. Plain data — an ordered list of (selector, rule)
//! pairs, first match wins, and a default — with named presets mirroring zennit's
//! `composites.py`.

use super::{Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus, Rule};
use crate::error::Result;
use crate::float::Float;
use crate::layers::{Category, Layer};
use ndarray::ArrayD;
use std::ops::Range;
use std::sync::Arc;

/// Which layers an entry of a [`Composite`] applies to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Selector {
    /// The layer at this index (0 = first layer of the network).
    Index(usize),
    /// Layers with an index in this range.
    Range(Range<usize>),
    /// Every layer of this category.
    Category(Category),
    /// The first affine (dense or convolution) layer, or the first layer of the given
    /// category — zennit's "first layer" override.
    First(Option<Category>),
    /// Layers of `category` whose rank `r` among the `n` layers of that category
    /// (0-based, in network order) satisfies `start ≤ r / n < end`; e.g. `0.0..0.5` is the
    /// lower half of the convolutions.
    Fraction {
        /// The category counted.
        category: Category,
        /// Lower end of `r / n`, inclusive.
        start: f64,
        /// Upper end of `r / n`, exclusive.
        end: f64,
    },
}

impl Selector {
    fn matches(&self, index: usize, category: Category, ctx: &Context) -> bool {
        match self {
            Selector::Index(i) => *i == index,
            Selector::Range(r) => r.contains(&index),
            Selector::Category(c) => *c == category,
            Selector::First(None) => ctx.first_affine == Some(index),
            Selector::First(Some(c)) => *c == category && ctx.rank[index] == 0,
            Selector::Fraction {
                category: c,
                start,
                end,
            } => {
                if *c != category {
                    return false;
                }
                let n = ctx.count(*c) as f64;
                let f = ctx.rank[index] as f64 / n;
                *start <= f && f < *end
            }
        }
    }
}

/// Per-network facts the selectors need: each layer's rank within its category.
struct Context {
    categories: Vec<Category>,
    rank: Vec<usize>,
    first_affine: Option<usize>,
}

impl Context {
    fn new<F: Float>(layers: &[&dyn Layer<F>]) -> Self {
        let categories: Vec<Category> = layers.iter().map(|l| l.category()).collect();
        let rank = (0..categories.len())
            .map(|i| categories[..i].iter().filter(|c| **c == categories[i]).count())
            .collect();
        let first_affine = categories.iter().position(|c| c.is_affine());
        Context {
            categories,
            rank,
            first_affine,
        }
    }

    fn count(&self, c: Category) -> usize {
        self.categories.iter().filter(|x| **x == c).count()
    }
}

/// Anything that assigns a rule to every layer of a network: a single rule (the same for
/// every layer) or a [`Composite`].
pub trait RuleSet<F: Float>: Sync {
    /// One rule per layer, in order.
    fn resolve<'a>(&'a self, layers: &[&dyn Layer<F>]) -> Vec<&'a dyn Rule<F>>;
}

/// Implements [`RuleSet`] for rule types: the same rule on every layer.
macro_rules! uniform_rule_set {
    ($($t:ty),*) => {$(
        impl<F: Float> RuleSet<F> for $t {
            fn resolve<'a>(&'a self, layers: &[&dyn Layer<F>]) -> Vec<&'a dyn Rule<F>> {
                vec![self as &dyn Rule<F>; layers.len()]
            }
        }
    )*};
}
uniform_rule_set!(
    Lrp0,
    LrpEpsilon,
    LrpGamma,
    LrpAlphaBeta,
    LrpZPlus,
    LrpFlat,
    LrpWSquare,
    LrpZBox<F>
);

/// Any rule behind a reference to `dyn Rule`, e.g. a rule of your own.
impl<F: Float> RuleSet<F> for dyn Rule<F> {
    fn resolve<'a>(&'a self, layers: &[&dyn Layer<F>]) -> Vec<&'a dyn Rule<F>> {
        vec![self; layers.len()]
    }
}

/// A rule per layer: ordered (selector, rule) entries, first match wins, then a default.
///
/// Non-affine layers use the matched rule's `activation` / `max_pool` methods, which for
/// every LRP rule are zennit's: ReLU passes relevance, max-pool routes it to the maximum.
///
/// ```
/// use relevance::{Category, Composite, LrpEpsilon, LrpGamma, Lrp0, Selector};
/// let c = Composite::<f32>::new(LrpEpsilon::new(0.25).unwrap())
///     .with(Selector::Category(Category::Convolution), LrpGamma::default())
///     .with(Selector::Index(7), Lrp0);
/// assert_eq!(c.entries().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Composite<F: Float = f32> {
    entries: Vec<(Selector, Arc<dyn Rule<F>>)>,
    default: Arc<dyn Rule<F>>,
}

impl<F: Float> Composite<F> {
    /// A composite that uses `default` wherever no entry matches.
    pub fn new(default: impl Rule<F> + 'static) -> Self {
        Composite {
            entries: Vec::new(),
            default: Arc::new(default),
        }
    }

    /// Adds an entry after the existing ones (earlier entries win).
    pub fn with(mut self, selector: Selector, rule: impl Rule<F> + 'static) -> Self {
        self.entries.push((selector, Arc::new(rule)));
        self
    }

    /// Puts `rule` on the first affine layer, ahead of every other entry.
    pub fn with_first(mut self, rule: impl Rule<F> + 'static) -> Self {
        self.entries.insert(0, (Selector::First(None), Arc::new(rule)));
        self
    }

    /// The entries, in order of precedence.
    pub fn entries(&self) -> &[(Selector, Arc<dyn Rule<F>>)] {
        &self.entries
    }

    /// zennit's `EpsilonGammaBox(low, high)`: z^B on the first convolution, γ = 0.25 on the
    /// other convolutions, ε = 1e-6 on dense layers (so on an MLP, ε everywhere).
    ///
    /// # Errors
    /// As [`LrpZBox::new`].
    pub fn epsilon_gamma_box(low: ArrayD<F>, high: ArrayD<F>) -> Result<Self> {
        Ok(Composite::new(LrpEpsilon::default())
            .with(
                Selector::First(Some(Category::Convolution)),
                LrpZBox::new(low, high)?,
            )
            .with(Selector::Category(Category::Convolution), LrpGamma::default()))
    }

    /// zennit's `EpsilonPlus`: z⁺ on convolutions, ε = 1e-6 on dense layers.
    pub fn epsilon_plus() -> Self {
        Composite::new(LrpEpsilon::default()).with(Selector::Category(Category::Convolution), LrpZPlus::new())
    }

    /// zennit's `EpsilonPlusFlat`: flat on the first affine layer, then as
    /// [`Composite::epsilon_plus`].
    pub fn epsilon_plus_flat() -> Self {
        Self::epsilon_plus().with_first(LrpFlat::new())
    }

    /// zennit's `EpsilonAlpha2Beta1`: α2β1 on convolutions, ε = 1e-6 on dense layers.
    pub fn epsilon_alpha2_beta1() -> Self {
        Composite::new(LrpEpsilon::default())
            .with(Selector::Category(Category::Convolution), LrpAlphaBeta::default())
    }

    /// zennit's `EpsilonAlpha2Beta1Flat`: flat on the first affine layer, then as
    /// [`Composite::epsilon_alpha2_beta1`].
    pub fn epsilon_alpha2_beta1_flat() -> Self {
        Self::epsilon_alpha2_beta1().with_first(LrpFlat::new())
    }

    /// The layered recipe of Montavon et al. 2019 ("Layer-wise Relevance Propagation: an
    /// overview", sec. 10.2): z^B at the pixel input (the first affine layer), LRP-γ
    /// (γ = 0.25) on the lower half of the convolutions, LRP-ε (ε = 0.25) on the upper
    /// half, LRP-0 on the dense layers at the top.
    ///
    /// # Errors
    /// As [`LrpZBox::new`].
    pub fn layered(low: ArrayD<F>, high: ArrayD<F>) -> Result<Self> {
        let conv = Category::Convolution;
        Ok(Composite::new(Lrp0)
            .with(Selector::First(None), LrpZBox::new(low, high)?)
            .with(
                Selector::Fraction {
                    category: conv,
                    start: 0.0,
                    end: 0.5,
                },
                LrpGamma::default(),
            )
            .with(Selector::Category(conv), LrpEpsilon::new(0.25)?))
    }
}

impl<F: Float> RuleSet<F> for Composite<F> {
    fn resolve<'a>(&'a self, layers: &[&dyn Layer<F>]) -> Vec<&'a dyn Rule<F>> {
        let ctx = Context::new(layers);
        (0..layers.len())
            .map(|i| {
                self.entries
                    .iter()
                    .find(|(s, _)| s.matches(i, ctx.categories[i], &ctx))
                    .map_or(&*self.default, |(_, r)| &**r)
            })
            .collect()
    }
}
