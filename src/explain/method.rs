//! Methods as values ([`Method`], what [`Network::explain`](crate::Network::explain) takes)
//! and by name ([`MethodName`]: one parser from `"epsilon=0.25"`, `"deeplift"`,
//! `"epsilon-gamma-box"`, ... to a method, which serves the command line, the examples and
//! the benches).

use super::Baseline;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::rules::{
    Composite, DeepLift, Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus,
    MaxPoolRule, RuleSet,
};
use ndarray::ArrayD;
use std::fmt;
use std::sync::Arc;

/// A method of explanation, as a value: what [`Network::explain`](crate::Network::explain)
/// takes. Cheap to clone (a rule set is shared).
///
/// ```
/// use relevance::{Baseline, Composite, DeepLift, Method};
/// let lrp = Method::<f32>::lrp(Composite::epsilon_plus());
/// let dl = Method::<f32>::deeplift(DeepLift::rescale(), Baseline::Zero);
/// assert!(lrp.name().contains("Composite"));
/// assert!(dl.name().starts_with("DeepLift"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum Method<F: Float = f32> {
    /// Layer-wise Relevance Propagation under a rule set: one rule on every node, or a
    /// [`Composite`] that picks one per node. Starts from the target logit by default.
    Lrp(Arc<dyn RuleSet<F>>),
    /// DeepLIFT (Shrikumar et al. 2017) with its rule, against a baseline: explains
    /// `f(x) − f(x̄)`.
    DeepLift {
        /// Rescale or RevealCancel, the max-pool rule, the threshold.
        rule: DeepLift,
        /// The reference input(s) `x̄`.
        baseline: Baseline<F>,
    },
    /// The plain gradient `∇f_c(x)` (captum's `Saliency(abs=False)`).
    Gradient,
    /// Gradient × input, `x ⊙ ∇f_c(x)` (captum's `InputXGradient`).
    GradientTimesInput,
}

impl<F: Float> Method<F> {
    /// LRP under `rules` (a rule such as [`LrpEpsilon`], or a [`Composite`]).
    pub fn lrp(rules: impl RuleSet<F> + 'static) -> Self {
        Method::Lrp(Arc::new(rules))
    }

    /// DeepLIFT with `rule` against `baseline`.
    pub fn deeplift(rule: DeepLift, baseline: Baseline<F>) -> Self {
        Method::DeepLift { rule, baseline }
    }

    /// A description with parameters, e.g. `Lrp(LrpEpsilon(2.5e-1))`.
    pub fn name(&self) -> String {
        match self {
            Method::Lrp(rules) => format!("Lrp({rules:?})"),
            Method::DeepLift { rule, .. } => {
                format!("DeepLift({:?}, max-pool {:?})", rule.nonlinear(), rule.max_pool())
            }
            Method::Gradient => "Gradient".into(),
            Method::GradientTimesInput => "GradientTimesInput".into(),
        }
    }
}

impl<F: Float> fmt::Debug for Method<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::DeepLift { rule, baseline } => f
                .debug_struct("DeepLift")
                .field("rule", rule)
                .field("baseline", baseline)
                .finish(),
            m => f.write_str(&m.name()),
        }
    }
}

/// A method named by text, with its parameters: what [`MethodName::from_str`](std::str::FromStr)
/// reads from `"lrp0"`, `"epsilon=0.25"`, `"gamma"`, `"alpha-beta=2,1"`,
/// `"epsilon-gamma-box"`, `"deeplift"`, `"gradient"`, ... ([`MethodName::all`] lists every
/// name). Parameters are checked when parsing; the arrays a method needs (z^B's pixel bounds,
/// DeepLIFT's baseline) are given when it is made into a [`Method`] with
/// [`MethodName::method`].
///
/// ```
/// use relevance::{Baseline, MethodName};
/// let name: MethodName = "epsilon=0.25".parse()?;
/// assert_eq!(name, MethodName::Epsilon(0.25));
/// assert_eq!(name.to_string(), "epsilon=0.25"); // reads back as itself
/// assert!("gamma=-1".parse::<MethodName>().is_err()); // checked as LrpGamma::new checks
/// let method = name.method::<f32>(None, Baseline::Zero)?;
/// assert!("epsilon-gamma-box".parse::<MethodName>()?.needs_bounds());
/// # Ok::<(), relevance::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum MethodName {
    /// `lrp0`: [`Lrp0`].
    Lrp0,
    /// `epsilon[=E]`: [`LrpEpsilon`] (default 1e-6).
    Epsilon(f64),
    /// `gamma[=G]`: [`LrpGamma`] (default 0.25).
    Gamma(f64),
    /// `alpha-beta[=A,B]` (or `alpha2beta1`): [`LrpAlphaBeta`] (default 2, 1).
    AlphaBeta(f64, f64),
    /// `zplus`: [`LrpZPlus`].
    ZPlus,
    /// `flat`: [`LrpFlat`].
    Flat,
    /// `wsquare`: [`LrpWSquare`].
    WSquare,
    /// `zbox`: [`LrpZBox`] on every affine node (needs the input's bounds).
    ZBox,
    /// `epsilon-plus`: [`Composite::epsilon_plus`].
    EpsilonPlus,
    /// `epsilon-plus-flat`: [`Composite::epsilon_plus_flat`].
    EpsilonPlusFlat,
    /// `epsilon-alpha2-beta1`: [`Composite::epsilon_alpha2_beta1`].
    EpsilonAlpha2Beta1,
    /// `epsilon-alpha2-beta1-flat`: [`Composite::epsilon_alpha2_beta1_flat`].
    EpsilonAlpha2Beta1Flat,
    /// `epsilon-gamma-box`: [`Composite::epsilon_gamma_box`] (needs the input's bounds).
    EpsilonGammaBox,
    /// `layered`: [`Composite::layered`] (needs the input's bounds).
    Layered,
    /// `deeplift` (Rescale), `deeplift-reveal-cancel`, `deeplift-genomics`,
    /// `deeplift-captum` (Rescale with gradient routing at max-pools, captum 0.9.0's numbers).
    DeepLift(DeepLift),
    /// `attn-lrp[=E]`: [`AttnLrp`](crate::AttnLrp) at every node (transformers; ε default
    /// 1e-6).
    AttnLrp(f64),
    /// `cp-lrp[=E]`: [`CpLrp`](crate::CpLrp) at every node (attention weights constant).
    CpLrp(f64),
    /// `gradient`: [`Method::Gradient`].
    Gradient,
    /// `gradient-x-input`: [`Method::GradientTimesInput`].
    GradientTimesInput,
}

/// One entry of [`MethodName::all`]: the name with its parameter syntax, what the method
/// does, and when to use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodNameInfo {
    /// The name as written, with optional parameters in brackets, e.g. `epsilon[=E]`.
    pub name: &'static str,
    /// What it computes.
    pub what: &'static str,
    /// When to use it.
    pub when: &'static str,
    /// Whether it is a composite (a rule chosen per node).
    pub composite: bool,
}

const fn info(name: &'static str, what: &'static str, when: &'static str, composite: bool) -> MethodNameInfo {
    MethodNameInfo {
        name,
        what,
        when,
        composite,
    }
}

/// Every name [`MethodName`] reads, in the order `relevance rules` lists them.
const ALL: &[MethodNameInfo] = &[
    info("lrp0", "LRP-0: R_i = Σ_j a_i w_ji R_j / z_j (equals gradient × input)", "upper dense layers; noisy on deep networks", false),
    info("epsilon[=E]", "LRP-ε, ε-stabilised LRP-0; E default 1e-6 (zennit's), must be ≥ 0", "middle layers; E ≈ 0.25 removes noise", false),
    info("gamma[=G]", "LRP-γ, weights w + γw⁺; G default 0.25, must be ≥ 0", "lower convolutions: stable, mostly positive maps", false),
    info("alpha-beta[=A,B]", "LRP-αβ, positive part weighted A, negative B; default 2,1; A − B = 1", "lower layers with explicit negative evidence", false),
    info("zplus", "LRP-z⁺ (= α1β0): positive contributions only", "convolutions (Deep Taylor)", false),
    info("flat", "LRP-flat: relevance spread uniformly over each receptive field", "first layer, coarse maps", false),
    info("wsquare", "LRP-w²: spread by squared weights, ignoring the input", "first layer with unbounded input", false),
    info("zbox", "LRP-z^B with the input's bounds (for images: the normalised pixel values 0 and 1)", "the pixel layer; on its own only for shallow models", false),
    info("deeplift", "DeepLIFT Rescale (captum's DeepLift; cross-max at max-pools, exact rules at softmaxes, layer norms and products), against a baseline", "a difference to a meaningful reference; exact summation-to-delta", false),
    info("deeplift-reveal-cancel", "DeepLIFT RevealCancel at every ReLU above a dense or convolutional layer", "when positive and negative inputs cancel", false),
    info("deeplift-genomics", "DeepLIFT genomics default: RevealCancel above dense layers, Rescale above convolutions", "the reference implementation's default", false),
    info("deeplift-captum", "DeepLIFT Rescale with gradient routing at max-pools and captum's softmax rule: captum 0.9.0's numbers", "to reproduce captum exactly (summation-to-delta can fail)", false),
    info("attn-lrp[=E]", "AttnLRP (Achtibat et al. 2024, lxt): ε-rule at dense layers, sums and layer norms (1/σ constant), Taylor rule at softmaxes, ε + half to each factor at attention products, identity at GELU; E default 1e-6", "transformers (vision and text)", false),
    info("cp-lrp[=E]", "CP-LRP (Ali et al. 2022): as attn-lrp, but attention weights are constants (no relevance into queries and keys)", "transformers; sharper, conservative maps", false),
    info("gradient", "the plain gradient ∇f_c(x) (captum's Saliency without abs)", "a baseline for comparisons", false),
    info("gradient-x-input", "gradient × input, x ⊙ ∇f_c(x) (captum's InputXGradient)", "a baseline for comparisons; equals LRP-0 on ReLU networks", false),
    info("epsilon-plus", "z⁺ on convolutions, ε = 1e-6 on dense layers (zennit's EpsilonPlus)", "the default: readable maps of CNNs", true),
    info("epsilon-plus-flat", "as epsilon-plus, flat on the first affine layer (EpsilonPlusFlat)", "when the input values should not shape the map", true),
    info("epsilon-alpha2-beta1", "α2β1 on convolutions, ε on dense layers (EpsilonAlpha2Beta1)", "CNNs, with negative evidence", true),
    info("epsilon-alpha2-beta1-flat", "as epsilon-alpha2-beta1, flat on the first affine layer", "as above, input-independent first layer", true),
    info("epsilon-gamma-box", "z^B on the first convolution (with the input's bounds), γ = 0.25 on the other convolutions, ε on dense layers (EpsilonGammaBox)", "image CNNs: zennit's recommendation", true),
    info("layered", "z^B at the pixels, γ = 0.25 on the lower half of the convolutions, ε = 0.25 on the upper half, LRP-0 on dense layers (Montavon et al. 2019)", "deep image CNNs: the most readable maps", true),
];

impl MethodName {
    /// Every name it reads, with parameter syntax, what each does and when to use it.
    pub fn all() -> &'static [MethodNameInfo] {
        ALL
    }

    /// Whether the method uses z^B's bounds on the input (`zbox`, `epsilon-gamma-box`,
    /// `layered`).
    pub fn needs_bounds(&self) -> bool {
        matches!(
            self,
            MethodName::ZBox | MethodName::EpsilonGammaBox | MethodName::Layered
        )
    }

    /// Whether the method is a composite preset.
    pub fn is_composite(&self) -> bool {
        matches!(
            self,
            MethodName::EpsilonPlus
                | MethodName::EpsilonPlusFlat
                | MethodName::EpsilonAlpha2Beta1
                | MethodName::EpsilonAlpha2Beta1Flat
                | MethodName::EpsilonGammaBox
                | MethodName::Layered
        )
    }

    /// Whether the method is DeepLIFT (and uses the baseline).
    pub fn is_deeplift(&self) -> bool {
        matches!(self, MethodName::DeepLift(_))
    }

    /// The method, given the input's bounds `(low, high)` (per-sample shape or one that
    /// broadcasts to it, e.g. `[C, 1, 1]`; needed by [`MethodName::needs_bounds`] methods,
    /// ignored by the others) and the baseline (used by DeepLIFT, ignored by the others).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if bounds are needed and not given; as
    /// [`LrpZBox::new`] for bad bounds; as the rules' constructors.
    pub fn method<F: Float>(
        &self,
        bounds: Option<(ArrayD<F>, ArrayD<F>)>,
        baseline: Baseline<F>,
    ) -> Result<Method<F>> {
        let bounds = || {
            bounds.clone().ok_or_else(|| Error::InvalidParameter {
                rule: "z^B",
                reason: format!(
                    "the method `{self}` needs the input's bounds (low, high), e.g. from Preprocess::bounds"
                ),
            })
        };
        Ok(match *self {
            MethodName::Lrp0 => Method::lrp(Lrp0),
            MethodName::Epsilon(e) => Method::lrp(LrpEpsilon::new(e)?),
            MethodName::Gamma(g) => Method::lrp(LrpGamma::new(g)?),
            MethodName::AlphaBeta(a, b) => Method::lrp(LrpAlphaBeta::new(a, b)?),
            MethodName::ZPlus => Method::lrp(LrpZPlus::new()),
            MethodName::Flat => Method::lrp(LrpFlat::new()),
            MethodName::WSquare => Method::lrp(LrpWSquare::new()),
            MethodName::ZBox => {
                let (low, high) = bounds()?;
                Method::lrp(LrpZBox::new(low, high)?)
            }
            MethodName::EpsilonPlus => Method::lrp(Composite::epsilon_plus()),
            MethodName::EpsilonPlusFlat => Method::lrp(Composite::epsilon_plus_flat()),
            MethodName::EpsilonAlpha2Beta1 => Method::lrp(Composite::epsilon_alpha2_beta1()),
            MethodName::EpsilonAlpha2Beta1Flat => Method::lrp(Composite::epsilon_alpha2_beta1_flat()),
            MethodName::EpsilonGammaBox => {
                let (low, high) = bounds()?;
                Method::lrp(Composite::epsilon_gamma_box(low, high)?)
            }
            MethodName::Layered => {
                let (low, high) = bounds()?;
                Method::lrp(Composite::layered(low, high)?)
            }
            MethodName::DeepLift(rule) => Method::deeplift(rule, baseline),
            MethodName::AttnLrp(e) => Method::lrp(crate::AttnLrp::new(e)?),
            MethodName::CpLrp(e) => Method::lrp(crate::CpLrp::new(e)?),
            MethodName::Gradient => Method::Gradient,
            MethodName::GradientTimesInput => Method::GradientTimesInput,
        })
    }

    /// A short label for file names: the name with each parameter written as its own name
    /// followed by its value, without `=` (`epsilon0.25`, `gamma0.25`, `alpha2beta1`,
    /// `attn-lrp-epsilon0.000001`, `deeplift`). AttnLRP's and CP-LRP's ε is named, so that
    /// `attn-lrp=0` is not read as AttnLRP with LRP-0 (`attn-lrp0`).
    pub fn label(&self) -> String {
        match self {
            MethodName::AlphaBeta(a, b) => format!("alpha{a}beta{b}"),
            MethodName::AttnLrp(e) => format!("attn-lrp-epsilon{e}"),
            MethodName::CpLrp(e) => format!("cp-lrp-epsilon{e}"),
            m => m.to_string().replace('=', ""),
        }
    }
}

/// The canonical text of a name: reads back as the same [`MethodName`].
impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MethodName::Lrp0 => f.write_str("lrp0"),
            MethodName::Epsilon(e) => write!(f, "epsilon={e}"),
            MethodName::Gamma(g) => write!(f, "gamma={g}"),
            MethodName::AlphaBeta(a, b) => write!(f, "alpha-beta={a},{b}"),
            MethodName::ZPlus => f.write_str("zplus"),
            MethodName::Flat => f.write_str("flat"),
            MethodName::WSquare => f.write_str("wsquare"),
            MethodName::ZBox => f.write_str("zbox"),
            MethodName::EpsilonPlus => f.write_str("epsilon-plus"),
            MethodName::EpsilonPlusFlat => f.write_str("epsilon-plus-flat"),
            MethodName::EpsilonAlpha2Beta1 => f.write_str("epsilon-alpha2-beta1"),
            MethodName::EpsilonAlpha2Beta1Flat => f.write_str("epsilon-alpha2-beta1-flat"),
            MethodName::EpsilonGammaBox => f.write_str("epsilon-gamma-box"),
            MethodName::Layered => f.write_str("layered"),
            MethodName::DeepLift(d) => f.write_str(deeplift_name(d)),
            MethodName::AttnLrp(e) => write!(f, "attn-lrp={e}"),
            MethodName::CpLrp(e) => write!(f, "cp-lrp={e}"),
            MethodName::Gradient => f.write_str("gradient"),
            MethodName::GradientTimesInput => f.write_str("gradient-x-input"),
        }
    }
}

/// The DeepLIFT variants by name.
fn deeplift_variants() -> [(&'static str, DeepLift); 4] {
    [
        ("deeplift", DeepLift::rescale()),
        ("deeplift-reveal-cancel", DeepLift::reveal_cancel()),
        ("deeplift-genomics", DeepLift::genomics_default()),
        (
            "deeplift-captum",
            DeepLift::rescale()
                .with_max_pool(MaxPoolRule::Gradient)
                .with_softmax(crate::rules::SoftmaxRule::Captum),
        ),
    ]
}

fn deeplift_name(d: &DeepLift) -> &'static str {
    // a rule with another threshold prints as its variant (the threshold is not a name)
    deeplift_variants()
        .into_iter()
        .find(|(_, v)| {
            v.nonlinear() == d.nonlinear() && v.max_pool() == d.max_pool() && v.softmax() == d.softmax()
        })
        .map_or("deeplift", |(n, _)| n)
}

impl std::str::FromStr for MethodName {
    type Err = Error;

    /// Reads a method's name and optional parameters (`name` or `name=P` or `name=A,B`),
    /// checking the parameters as the rules' constructors do.
    fn from_str(text: &str) -> Result<Self> {
        let err = |reason: String| Error::MethodName {
            text: text.to_string(),
            reason,
        };
        let (name, param) = match text.split_once('=') {
            Some((n, p)) => (n.trim(), Some(p.trim())),
            None => (text.trim(), None),
        };
        let number = |p: &str| -> Result<f64> {
            p.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| err(format!("the parameter must be a finite number, e.g. {name}=0.25")))
        };
        let one = |default: f64| param.map(number).transpose().map(|v| v.unwrap_or(default));
        let fixed = |m: MethodName| match param {
            Some(_) => Err(err(format!("{name} takes no parameter; write {name}"))),
            None => Ok(m),
        };
        let m = match name {
            "lrp0" => fixed(MethodName::Lrp0)?,
            "epsilon" => MethodName::Epsilon(one(1e-6)?),
            "gamma" => MethodName::Gamma(one(0.25)?),
            "alpha2beta1" => fixed(MethodName::AlphaBeta(2.0, 1.0))?,
            "alpha-beta" => match param {
                None => MethodName::AlphaBeta(2.0, 1.0),
                Some(p) => {
                    let (a, b) = p
                        .split_once(',')
                        .ok_or_else(|| err("give both parameters, e.g. alpha-beta=2,1".into()))?;
                    MethodName::AlphaBeta(number(a.trim())?, number(b.trim())?)
                }
            },
            "zplus" => fixed(MethodName::ZPlus)?,
            "flat" => fixed(MethodName::Flat)?,
            "wsquare" => fixed(MethodName::WSquare)?,
            "zbox" => fixed(MethodName::ZBox)?,
            "epsilon-plus" => fixed(MethodName::EpsilonPlus)?,
            "epsilon-plus-flat" => fixed(MethodName::EpsilonPlusFlat)?,
            "epsilon-alpha2-beta1" => fixed(MethodName::EpsilonAlpha2Beta1)?,
            "epsilon-alpha2-beta1-flat" => fixed(MethodName::EpsilonAlpha2Beta1Flat)?,
            "epsilon-gamma-box" => fixed(MethodName::EpsilonGammaBox)?,
            "layered" => fixed(MethodName::Layered)?,
            "attn-lrp" | "attnlrp" => MethodName::AttnLrp(one(1e-6)?),
            "cp-lrp" | "cplrp" => MethodName::CpLrp(one(1e-6)?),
            "gradient" => fixed(MethodName::Gradient)?,
            "gradient-x-input" | "input-x-gradient" => fixed(MethodName::GradientTimesInput)?,
            "deeplift-rescale" => fixed(MethodName::DeepLift(DeepLift::rescale()))?,
            _ => match deeplift_variants().into_iter().find(|(n, _)| *n == name) {
                Some((_, d)) => fixed(MethodName::DeepLift(d))?,
                None => {
                    let known: Vec<&str> = ALL.iter().map(|i| i.name).collect();
                    return Err(err(format!("unknown method; choose one of {}", known.join(", "))));
                }
            },
        };
        // the rules' own checks (ε ≥ 0, γ ≥ 0, α − β = 1), before any model is loaded
        let check = match m {
            MethodName::Epsilon(e) => LrpEpsilon::new(e).map(drop),
            MethodName::AttnLrp(e) => crate::AttnLrp::new(e).map(drop),
            MethodName::CpLrp(e) => crate::CpLrp::new(e).map(drop),
            MethodName::Gamma(g) => LrpGamma::new(g).map(drop),
            MethodName::AlphaBeta(a, b) => LrpAlphaBeta::new(a, b).map(drop),
            _ => Ok(()),
        };
        check.map_err(|e| err(e.to_string()))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses_and_prints_back() {
        for info in MethodName::all() {
            let bare = info.name.split('[').next().unwrap();
            let m: MethodName = bare.parse().unwrap_or_else(|e| panic!("{bare}: {e}"));
            assert_eq!(m.is_composite(), info.composite, "{bare}");
            assert_eq!(m.to_string().parse::<MethodName>().unwrap(), m, "{bare}");
        }
        assert_eq!(MethodName::all().len(), 22);
        assert_eq!(MethodName::AlphaBeta(2.0, 1.0).label(), "alpha2beta1");
        assert_eq!(MethodName::Epsilon(0.25).label(), "epsilon0.25");
    }

    #[test]
    fn labels_name_every_parameter_and_differ() {
        assert_eq!(MethodName::Gamma(0.25).label(), "gamma0.25");
        assert_eq!(MethodName::AttnLrp(1e-6).label(), "attn-lrp-epsilon0.000001");
        assert_eq!(MethodName::AttnLrp(0.0).label(), "attn-lrp-epsilon0");
        assert_eq!(MethodName::CpLrp(0.5).label(), "cp-lrp-epsilon0.5");
        // one label per name: every listed method with its default and another parameter
        let mut seen = std::collections::HashSet::new();
        for info in MethodName::all() {
            let bare = info.name.split('[').next().unwrap();
            let m: MethodName = bare.parse().unwrap();
            let label = m.label();
            assert!(!label.contains('=') && !label.contains(','), "{label}");
            assert!(seen.insert(label.clone()), "{label} given twice");
        }
        assert_ne!(MethodName::AttnLrp(0.0).label(), MethodName::CpLrp(0.0).label());
    }

    #[test]
    fn parameters_are_checked() {
        assert_eq!(
            "epsilon=0.25".parse::<MethodName>().unwrap(),
            MethodName::Epsilon(0.25)
        );
        assert_eq!(
            "epsilon".parse::<MethodName>().unwrap(),
            MethodName::Epsilon(1e-6)
        );
        assert_eq!(
            "alpha-beta=3,2".parse::<MethodName>().unwrap(),
            MethodName::AlphaBeta(3.0, 2.0)
        );
        for bad in [
            "lrp0=3",
            "epsilon=-1",
            "epsilon=x",
            "gamma=inf",
            "alpha-beta=3,1",
            "alpha-beta=2",
            "nope",
            "",
        ] {
            let e = bad.parse::<MethodName>().unwrap_err();
            assert!(matches!(e, Error::MethodName { .. }), "{bad}: {e:?}");
        }
        let e = "nope".parse::<MethodName>().unwrap_err().to_string();
        assert!(
            e.contains("unknown method") && e.contains("epsilon-gamma-box"),
            "{e}"
        );
    }

    #[test]
    fn bounds_are_asked_for() {
        let zbox: MethodName = "zbox".parse().unwrap();
        let e = zbox.method::<f32>(None, Baseline::Zero).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { .. }), "{e:?}");
        let b = (
            ArrayD::zeros(ndarray::IxDyn(&[])),
            ArrayD::ones(ndarray::IxDyn(&[])),
        );
        assert!(zbox.method::<f32>(Some(b), Baseline::Zero).is_ok());
        assert_eq!(
            "deeplift-captum".parse::<MethodName>().unwrap().to_string(),
            "deeplift-captum"
        );
    }
}
