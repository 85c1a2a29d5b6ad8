//! Composites: a rule chosen per node. Plain data — an ordered list of (selector, rule)
//! pairs, first match wins, and a default — with named presets mirroring zennit's
//! `composites.py`.

use super::{Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus, Rule};
use crate::error::Result;
use crate::float::Float;
use crate::layers::Category;
use ndarray::ArrayD;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

/// Which nodes an entry of a [`Composite`] applies to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Selector {
    /// The node at this index (0 = first node of the network, in the order the nodes were
    /// added).
    Index(usize),
    /// Nodes with an index in this range.
    Range(Range<usize>),
    /// Every node of this category.
    Category(Category),
    /// The first affine (dense or convolution) node, or the first node of the given
    /// category — zennit's "first layer" override.
    First(Option<Category>),
    /// Nodes of `category` whose rank `r` among the `n` nodes of that category
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
    /// The node with exactly this name (zennit's `NameMapComposite`).
    Name(String),
    /// Nodes whose name matches this pattern, where `*` stands for any run of characters
    /// (dots included) and `?` for one character: `"layer1.*"`, `"*.conv2"`,
    /// `"features.?"`.
    Pattern(String),
}

impl Selector {
    fn matches(&self, index: usize, node: &NodeInfo<'_>, ctx: &Context) -> bool {
        match self {
            Selector::Index(i) => *i == index,
            Selector::Range(r) => r.contains(&index),
            Selector::Category(c) => *c == node.category,
            Selector::First(None) => ctx.first_affine == Some(index),
            Selector::First(Some(c)) => *c == node.category && ctx.rank[index] == 0,
            Selector::Fraction {
                category: c,
                start,
                end,
            } => {
                if *c != node.category {
                    return false;
                }
                let n = ctx.count(*c) as f64;
                let f = ctx.rank[index] as f64 / n;
                *start <= f && f < *end
            }
            Selector::Name(name) => name == node.name,
            Selector::Pattern(p) => glob(p.as_bytes(), node.name.as_bytes()),
        }
    }
}

/// Whether `text` matches `pattern` (`*` any run, `?` one byte), by the classic
/// backtracking over the last `*`: linear in practice, never exponential.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// What a [`RuleSet`] knows of one node of a network: its name and its category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeInfo<'a> {
    /// The node's name (given when it was added, or generated: its index).
    pub name: &'a str,
    /// The node's category.
    pub category: Category,
}

impl<'a> NodeInfo<'a> {
    /// Describes a node.
    pub fn new(name: &'a str, category: Category) -> Self {
        NodeInfo { name, category }
    }
}

/// Per-network facts the selectors need: each node's rank within its category.
struct Context {
    rank: Vec<usize>,
    counts: std::collections::HashMap<Category, usize>,
    first_affine: Option<usize>,
}

impl Context {
    fn new(nodes: &[NodeInfo<'_>]) -> Self {
        // one pass: a node's rank is the count of its category so far
        let mut counts = std::collections::HashMap::new();
        let rank = nodes
            .iter()
            .map(|n| {
                let c = counts.entry(n.category).or_insert(0);
                *c += 1;
                *c - 1
            })
            .collect();
        let first_affine = nodes.iter().position(|n| n.category.is_affine());
        Context {
            rank,
            counts,
            first_affine,
        }
    }

    fn count(&self, c: Category) -> usize {
        self.counts.get(&c).copied().unwrap_or(0)
    }
}

/// Anything that assigns a rule to every node of a network: a single rule (the same for
/// every node) or a [`Composite`].
pub trait RuleSet<F: Float>: Debug + Send + Sync {
    /// One rule per node, in order.
    fn resolve<'a>(&'a self, nodes: &[NodeInfo<'_>]) -> Vec<&'a dyn Rule<F>>;

    /// Whether the relevance arriving at the network input is to be multiplied by the
    /// input (what [`GradientTimesInput`](crate::GradientTimesInput) does). Default `false`.
    fn times_input(&self) -> bool {
        false
    }
}

/// Implements [`RuleSet`] for rule types: the same rule on every node.
macro_rules! uniform_rule_set {
    ($($t:ty),*) => {$(
        impl<F: Float> RuleSet<F> for $t {
            fn resolve<'a>(&'a self, nodes: &[NodeInfo<'_>]) -> Vec<&'a dyn Rule<F>> {
                vec![self as &dyn Rule<F>; nodes.len()]
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
    LrpZBox<F>,
    crate::rules::AttnLrp,
    crate::rules::CpLrp
);

/// Any rule behind a reference to `dyn Rule`, e.g. a rule of your own.
impl<F: Float> RuleSet<F> for dyn Rule<F> {
    fn resolve<'a>(&'a self, nodes: &[NodeInfo<'_>]) -> Vec<&'a dyn Rule<F>> {
        vec![self; nodes.len()]
    }
}

/// A rule per node: ordered (selector, rule) entries, first match wins, then a default.
///
/// Non-affine nodes use the matched rule's other methods, which for every LRP rule are
/// zennit's: activations and batch norm pass relevance, sums and average pools apply
/// `Norm`, max-pools route relevance to the maximum.
///
/// Select nodes by category, position, or name — `Selector::Pattern("layer1.*".into())`
/// picks every node of a ResNet's first stage, as zennit's `NameMapComposite` does by
/// listing names.
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

    /// Adds an entry ahead of every existing one (it wins over them): e.g. a rule for some
    /// nodes by name on top of a preset.
    ///
    /// ```
    /// use relevance::{Composite, Gradient, Selector};
    /// let c = Composite::<f32>::epsilon_plus().with_priority(Selector::Pattern("fc*".into()), Gradient);
    /// assert_eq!(c.entries()[0].0, Selector::Pattern("fc*".into()));
    /// ```
    pub fn with_priority(mut self, selector: Selector, rule: impl Rule<F> + 'static) -> Self {
        self.entries.insert(0, (selector, Arc::new(rule)));
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

    /// AttnLRP (Achtibat et al., ICML 2024) at every node: [`AttnLrp`](crate::AttnLrp) with
    /// ε = 1e-6 as the default rule. Give some layers other rules with
    /// [`Composite::with_priority`], e.g. LRP-γ on a vision transformer's patch embedding:
    ///
    /// ```
    /// use relevance::{Composite, LrpGamma, Selector};
    /// let c = Composite::<f32>::attn_lrp().with_priority(Selector::Pattern("conv_proj".into()), LrpGamma::new(0.25).unwrap());
    /// assert_eq!(c.entries().len(), 1); // the selected rule; AttnLRP is the default elsewhere
    /// assert_eq!(c.entries()[0].1.name(), "LrpGamma(0.25)");
    /// ```
    pub fn attn_lrp() -> Self {
        Composite::new(crate::rules::AttnLrp::default())
    }

    /// CP-LRP (Ali et al., ICML 2022) at every node: [`CpLrp`](crate::CpLrp) with ε = 1e-6
    /// as the default rule (attention weights constant, layer norms' `1/σ` constant).
    pub fn cp_lrp() -> Self {
        Composite::new(crate::rules::CpLrp::default())
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
    fn resolve<'a>(&'a self, nodes: &[NodeInfo<'_>]) -> Vec<&'a dyn Rule<F>> {
        let ctx = Context::new(nodes);
        nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                self.entries
                    .iter()
                    .find(|(s, _)| s.matches(i, node, &ctx))
                    .map_or(&*self.default, |(_, r)| &**r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_patterns() {
        let m = |p: &str, t: &str| glob(p.as_bytes(), t.as_bytes());
        assert!(m("layer1.*", "layer1.0.conv1"));
        assert!(!m("layer1.*", "layer2.0.conv1"));
        assert!(m("*.conv2", "layer3.1.conv2"));
        assert!(!m("*.conv2", "layer3.1.conv2.x"));
        assert!(m("features.?", "features.3"));
        assert!(!m("features.?", "features.13"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exac"));
    }
}
