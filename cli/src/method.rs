//! The explanation methods by name: single LRP rules, composites and DeepLIFT variants,
//! parsed (and their parameters checked) before any model is loaded.

use ndarray::ArrayD;
use relevance::{
    Composite, DeepLift, Lrp0, LrpAlphaBeta, LrpEpsilon, LrpFlat, LrpGamma, LrpWSquare, LrpZBox, LrpZPlus,
    RuleSet,
};

/// A parsed `--rule` or `--composite` value.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// LRP-0.
    Lrp0,
    /// LRP-ε.
    Epsilon(f64),
    /// LRP-γ.
    Gamma(f64),
    /// LRP-αβ with α − β = 1.
    AlphaBeta(f64, f64),
    /// LRP-z⁺.
    ZPlus,
    /// LRP-flat.
    Flat,
    /// LRP-w².
    WSquare,
    /// LRP-z^B everywhere (bounds from the preprocessing).
    ZBox,
    /// A composite preset.
    Composite(Preset),
    /// DeepLIFT.
    DeepLift(DeepLiftKind),
}

/// The composite presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    EpsilonPlus,
    EpsilonPlusFlat,
    EpsilonAlpha2Beta1,
    EpsilonAlpha2Beta1Flat,
    EpsilonGammaBox,
    Layered,
}

/// The DeepLIFT variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeepLiftKind {
    Rescale,
    RevealCancel,
    Genomics,
}

/// One entry of the `rules` listing: name (with parameter syntax), what it does, when to use it.
pub struct Entry {
    pub name: &'static str,
    pub what: &'static str,
    pub when: &'static str,
}

/// The single rules (`--rule`).
pub const RULES: &[Entry] = &[
    Entry {
        name: "lrp0",
        what: "LRP-0: R_i = Σ_j a_i w_ji R_j / z_j (equals gradient × input)",
        when: "upper dense layers; noisy on deep networks",
    },
    Entry {
        name: "epsilon[=E]",
        what: "LRP-ε, ε-stabilised LRP-0; E default 1e-6 (zennit's), must be ≥ 0",
        when: "middle layers; E ≈ 0.25 removes noise",
    },
    Entry {
        name: "gamma[=G]",
        what: "LRP-γ, weights w + γw⁺; G default 0.25, must be ≥ 0",
        when: "lower convolutions: stable, mostly positive maps",
    },
    Entry {
        name: "alpha-beta[=A,B]",
        what: "LRP-αβ, positive part weighted A, negative B; default 2,1; A − B = 1",
        when: "lower layers with explicit negative evidence",
    },
    Entry {
        name: "zplus",
        what: "LRP-z⁺ (= α1β0): positive contributions only",
        when: "convolutions (Deep Taylor)",
    },
    Entry {
        name: "flat",
        what: "LRP-flat: relevance spread uniformly over each receptive field",
        when: "first layer, coarse maps",
    },
    Entry {
        name: "wsquare",
        what: "LRP-w²: spread by squared weights, ignoring the input",
        when: "first layer with unbounded input",
    },
    Entry {
        name: "zbox",
        what: "LRP-z^B with the pixel bounds of --preprocess (normalised 0 and 1)",
        when: "the pixel layer; on its own only for shallow models",
    },
    Entry {
        name: "deeplift",
        what: "DeepLIFT Rescale (captum's DeepLift; cross-max at max-pools), against --baseline",
        when: "a difference to a meaningful reference; exact summation-to-delta",
    },
    Entry {
        name: "deeplift-reveal-cancel",
        what: "DeepLIFT RevealCancel at every ReLU above a dense or convolutional layer",
        when: "when positive and negative inputs cancel",
    },
    Entry {
        name: "deeplift-genomics",
        what: "DeepLIFT genomics default: RevealCancel above dense layers, Rescale above convolutions",
        when: "the reference implementation's default",
    },
];

/// The composites (`--composite`).
pub const COMPOSITES: &[Entry] = &[
    Entry { name: "epsilon-plus", what: "z⁺ on convolutions, ε = 1e-6 on dense layers (zennit's EpsilonPlus)", when: "the default: readable maps of CNNs" },
    Entry { name: "epsilon-plus-flat", what: "as epsilon-plus, flat on the first affine layer (EpsilonPlusFlat)", when: "when the input values should not shape the map" },
    Entry { name: "epsilon-alpha2-beta1", what: "α2β1 on convolutions, ε on dense layers (EpsilonAlpha2Beta1)", when: "CNNs, with negative evidence" },
    Entry { name: "epsilon-alpha2-beta1-flat", what: "as epsilon-alpha2-beta1, flat on the first affine layer", when: "as above, input-independent first layer" },
    Entry { name: "epsilon-gamma-box", what: "z^B on the first convolution (bounds from --preprocess), γ = 0.25 on the other convolutions, ε on dense layers (EpsilonGammaBox)", when: "image CNNs: zennit's recommendation" },
    Entry { name: "layered", what: "z^B at the pixels, γ = 0.25 on the lower half of the convolutions, ε = 0.25 on the upper half, LRP-0 on dense layers (Montavon et al. 2019)", when: "deep image CNNs: the most readable maps" },
];

/// The names `--rule` accepts (for messages).
pub fn rule_names() -> String {
    RULES.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

/// The names `--composite` accepts (for messages).
pub fn composite_names() -> String {
    COMPOSITES.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

fn number(name: &str, text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{name}={text}: the parameter must be a finite number, e.g. {name}=0.25"))
}

fn no_parameter(name: &str, param: Option<&str>) -> Result<(), String> {
    match param {
        Some(_) => Err(format!("the rule {name} takes no parameter; write --rule {name}")),
        None => Ok(()),
    }
}

/// Parses a `--rule` value, checking its parameter.
pub fn parse_rule(text: &str) -> Result<Method, String> {
    let (name, param) = match text.split_once('=') {
        Some((n, p)) => (n.trim(), Some(p)),
        None => (text.trim(), None),
    };
    let method = match name {
        "lrp0" => no_parameter(name, param).map(|_| Method::Lrp0)?,
        "epsilon" => Method::Epsilon(param.map(|p| number(name, p)).transpose()?.unwrap_or(1e-6)),
        "gamma" => Method::Gamma(param.map(|p| number(name, p)).transpose()?.unwrap_or(0.25)),
        "alpha-beta" | "alpha2beta1" => {
            let (a, b) = match param {
                None => (2.0, 1.0),
                Some(_) if name == "alpha2beta1" => {
                    return Err(
                        "the rule alpha2beta1 takes no parameter; write alpha-beta=A,B for others".into(),
                    );
                }
                Some(p) => {
                    let (a, b) = p.split_once(',').ok_or_else(|| {
                        "give both parameters of alpha-beta, e.g. alpha-beta=2,1".to_string()
                    })?;
                    (number("alpha-beta", a)?, number("alpha-beta", b)?)
                }
            };
            Method::AlphaBeta(a, b)
        }
        "zplus" => no_parameter(name, param).map(|_| Method::ZPlus)?,
        "flat" => no_parameter(name, param).map(|_| Method::Flat)?,
        "wsquare" => no_parameter(name, param).map(|_| Method::WSquare)?,
        "zbox" => no_parameter(name, param).map(|_| Method::ZBox)?,
        "deeplift" | "deeplift-rescale" => {
            no_parameter(name, param).map(|_| Method::DeepLift(DeepLiftKind::Rescale))?
        }
        "deeplift-reveal-cancel" => {
            no_parameter(name, param).map(|_| Method::DeepLift(DeepLiftKind::RevealCancel))?
        }
        "deeplift-genomics" => no_parameter(name, param).map(|_| Method::DeepLift(DeepLiftKind::Genomics))?,
        _ => {
            if let Ok(m) = parse_composite(text) {
                return Ok(m);
            }
            return Err(format!(
                "unknown rule; choose one of {} (composites with --composite: {}); `relevance rules` describes them",
                rule_names(),
                composite_names()
            ));
        }
    };
    // the rule's own checks (ε ≥ 0, γ ≥ 0, α − β = 1 ...), before any model is loaded
    let check = |r: relevance::Result<Box<dyn RuleSet<f32>>>| r.map(|_| ()).map_err(|e| e.to_string());
    match method {
        Method::Epsilon(e) => check(LrpEpsilon::new(e).map(|r| Box::new(r) as Box<dyn RuleSet<f32>>))?,
        Method::Gamma(g) => check(LrpGamma::new(g).map(|r| Box::new(r) as Box<dyn RuleSet<f32>>))?,
        Method::AlphaBeta(a, b) => {
            check(LrpAlphaBeta::new(a, b).map(|r| Box::new(r) as Box<dyn RuleSet<f32>>))?
        }
        _ => {}
    }
    Ok(method)
}

/// Parses a `--composite` value.
pub fn parse_composite(text: &str) -> Result<Method, String> {
    let preset = match text.trim() {
        "epsilon-plus" => Preset::EpsilonPlus,
        "epsilon-plus-flat" => Preset::EpsilonPlusFlat,
        "epsilon-alpha2-beta1" => Preset::EpsilonAlpha2Beta1,
        "epsilon-alpha2-beta1-flat" => Preset::EpsilonAlpha2Beta1Flat,
        "epsilon-gamma-box" => Preset::EpsilonGammaBox,
        "layered" => Preset::Layered,
        _ => {
            return Err(format!(
                "unknown composite; choose one of {} (single rules with --rule: {}); `relevance rules` describes them",
                composite_names(),
                rule_names()
            ))
        }
    };
    Ok(Method::Composite(preset))
}

impl Preset {
    /// All presets, in the order of [`COMPOSITES`].
    pub const ALL: [Preset; 6] = [
        Preset::EpsilonPlus,
        Preset::EpsilonPlusFlat,
        Preset::EpsilonAlpha2Beta1,
        Preset::EpsilonAlpha2Beta1Flat,
        Preset::EpsilonGammaBox,
        Preset::Layered,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::EpsilonPlus => "epsilon-plus",
            Preset::EpsilonPlusFlat => "epsilon-plus-flat",
            Preset::EpsilonAlpha2Beta1 => "epsilon-alpha2-beta1",
            Preset::EpsilonAlpha2Beta1Flat => "epsilon-alpha2-beta1-flat",
            Preset::EpsilonGammaBox => "epsilon-gamma-box",
            Preset::Layered => "layered",
        }
    }

    /// The composite, with z^B bounds `low`/`high` where it has z^B.
    pub fn build(self, low: &ArrayD<f32>, high: &ArrayD<f32>) -> relevance::Result<Composite<f32>> {
        Ok(match self {
            Preset::EpsilonPlus => Composite::epsilon_plus(),
            Preset::EpsilonPlusFlat => Composite::epsilon_plus_flat(),
            Preset::EpsilonAlpha2Beta1 => Composite::epsilon_alpha2_beta1(),
            Preset::EpsilonAlpha2Beta1Flat => Composite::epsilon_alpha2_beta1_flat(),
            Preset::EpsilonGammaBox => Composite::epsilon_gamma_box(low.clone(), high.clone())?,
            Preset::Layered => Composite::layered(low.clone(), high.clone())?,
        })
    }
}

impl Method {
    /// A short name for file names and the summary.
    pub fn label(&self) -> String {
        match self {
            Method::Lrp0 => "lrp0".into(),
            Method::Epsilon(e) => format!("epsilon{e}"),
            Method::Gamma(g) => format!("gamma{g}"),
            Method::AlphaBeta(a, b) => format!("alpha{a}beta{b}"),
            Method::ZPlus => "zplus".into(),
            Method::Flat => "flat".into(),
            Method::WSquare => "wsquare".into(),
            Method::ZBox => "zbox".into(),
            Method::Composite(p) => p.name().into(),
            Method::DeepLift(DeepLiftKind::Rescale) => "deeplift".into(),
            Method::DeepLift(DeepLiftKind::RevealCancel) => "deeplift-reveal-cancel".into(),
            Method::DeepLift(DeepLiftKind::Genomics) => "deeplift-genomics".into(),
        }
    }

    /// Whether the method uses z^B bounds (and so the preprocessing's range).
    pub fn uses_bounds(&self) -> bool {
        matches!(
            self,
            Method::ZBox | Method::Composite(Preset::EpsilonGammaBox) | Method::Composite(Preset::Layered)
        )
    }

    /// The DeepLIFT rule, for the DeepLIFT methods.
    pub fn deeplift(&self) -> Option<DeepLift> {
        match self {
            Method::DeepLift(DeepLiftKind::Rescale) => Some(DeepLift::rescale()),
            Method::DeepLift(DeepLiftKind::RevealCancel) => Some(DeepLift::reveal_cancel()),
            Method::DeepLift(DeepLiftKind::Genomics) => Some(DeepLift::genomics_default()),
            _ => None,
        }
    }

    /// The LRP rule set (None for DeepLIFT).
    pub fn rule_set(
        &self,
        low: &ArrayD<f32>,
        high: &ArrayD<f32>,
    ) -> relevance::Result<Option<Box<dyn RuleSet<f32>>>> {
        Ok(Some(match self {
            Method::Lrp0 => Box::new(Lrp0),
            Method::Epsilon(e) => Box::new(LrpEpsilon::new(*e)?),
            Method::Gamma(g) => Box::new(LrpGamma::new(*g)?),
            Method::AlphaBeta(a, b) => Box::new(LrpAlphaBeta::new(*a, *b)?),
            Method::ZPlus => Box::new(LrpZPlus::new()),
            Method::Flat => Box::new(LrpFlat::new()),
            Method::WSquare => Box::new(LrpWSquare::new()),
            Method::ZBox => Box::new(LrpZBox::new(low.clone(), high.clone())?),
            Method::Composite(p) => Box::new(p.build(low, high)?),
            Method::DeepLift(_) => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(parse_rule("epsilon=0.25"), Ok(Method::Epsilon(0.25)));
        assert_eq!(parse_rule("lrp0"), Ok(Method::Lrp0));
        assert!(parse_rule("lrp0=3").unwrap_err().contains("takes no parameter"));
        assert!(parse_rule("epsilon=-1").is_err());
        assert!(parse_rule("alpha-beta=3,1").is_err());
        assert_eq!(parse_rule("alpha-beta=3,2"), Ok(Method::AlphaBeta(3.0, 2.0)));
        assert!(parse_rule("nope").unwrap_err().contains("unknown rule"));
        for e in COMPOSITES {
            assert!(parse_composite(e.name).is_ok(), "{}", e.name);
        }
        for e in RULES {
            let name = e.name.split('[').next().unwrap();
            assert!(parse_rule(name).is_ok(), "{name}");
        }
    }
}
