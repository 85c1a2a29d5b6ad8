//! Relevance per token, for text models: a coloured terminal line, an HTML snippet and a CSV
//! table, coloured as the image heatmaps are (red for evidence for the class, blue against,
//! white for none; zennit's `bwr` palette, symmetric about 0, scaled by the largest
//! `|relevance|` of the text).

use super::Palette;
use crate::error::{Error, Result};

/// The tokens of one text with their ids and relevance (one value per token).
///
/// ```
/// use relevance::heatmap::TokenRelevance;
/// let t = TokenRelevance::new(
///     vec!["[CLS]".into(), "great".into(), "film".into()],
///     vec![101, 2307, 2143],
///     vec![0.0, 2.0, -0.5],
/// )?;
/// assert!(t.html().contains("great"));
/// assert_eq!(t.csv().lines().nth(2), Some("1,great,2307,2"));
/// assert!(t.terminal().contains("\x1b[48;2;")); // 24-bit background colours
/// # Ok::<(), relevance::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRelevance {
    tokens: Vec<String>,
    ids: Vec<i64>,
    relevance: Vec<f64>,
}

impl TokenRelevance {
    /// One text: `tokens[i]` (as shown), its id `ids[i]` and its relevance `relevance[i]`.
    ///
    /// # Errors
    /// [`Error::Shape`] if the three lengths differ, [`Error::NonFinite`] for NaN or ∞ in
    /// the relevance.
    pub fn new(tokens: Vec<String>, ids: Vec<i64>, relevance: Vec<f64>) -> Result<Self> {
        if tokens.len() != relevance.len() || ids.len() != relevance.len() {
            return Err(Error::Shape {
                what: "tokens, ids and relevance (one of each per token)".into(),
                expected: vec![relevance.len()],
                got: vec![tokens.len(), ids.len()],
            });
        }
        if let Some((index, &value)) = relevance.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "token relevance".into(),
                index,
                value,
            });
        }
        Ok(TokenRelevance {
            tokens,
            ids,
            relevance,
        })
    }

    /// Tokens named by their ids (`"#17"`), for a model without a vocabulary at hand.
    ///
    /// # Errors
    /// As [`TokenRelevance::new`].
    pub fn from_ids(ids: Vec<i64>, relevance: Vec<f64>) -> Result<Self> {
        let tokens = ids.iter().map(|i| format!("#{i}")).collect();
        Self::new(tokens, ids, relevance)
    }

    /// The tokens.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The relevance of each token.
    pub fn relevance(&self) -> &[f64] {
        &self.relevance
    }

    /// The colour of each token: `bwr` at `0.5 + r / (2 max|r|)`.
    pub fn colors(&self) -> Vec<[u8; 3]> {
        let palette = Palette::bwr();
        let scale = self.relevance.iter().fold(0.0_f64, |m, r| m.max(r.abs()));
        self.relevance
            .iter()
            .map(|&r| {
                let t = if scale > 0.0 { 0.5 + 0.5 * r / scale } else { 0.5 };
                palette.color((t * 255.0).round().clamp(0.0, 255.0) as u8)
            })
            .collect()
    }

    /// One line for a 24-bit colour terminal: each token on its colour (black text),
    /// separated by spaces; ends with the reset sequence.
    pub fn terminal(&self) -> String {
        let mut out = String::new();
        for (i, (tok, [r, g, b])) in self.tokens.iter().zip(self.colors()).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let shown: String = tok.chars().filter(|c| !c.is_control()).collect();
            out.push_str(&format!("\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{shown}\x1b[0m"));
        }
        out
    }

    /// An HTML snippet: one `<span>` per token with its colour as background and its
    /// relevance as a tooltip; text escaped.
    pub fn html(&self) -> String {
        let mut out =
            String::from("<p class=\"relevance-text\" style=\"line-height:1.8;font-family:sans-serif\">");
        for ((tok, &r), [cr, cg, cb]) in self.tokens.iter().zip(&self.relevance).zip(self.colors()) {
            out.push_str(&format!(
                "<span style=\"background:rgb({cr},{cg},{cb});padding:1px 2px;border-radius:2px\" title=\"{r:.4e}\">{}</span> ",
                escape_html(tok)
            ));
        }
        out.push_str("</p>");
        out
    }

    /// A CSV table: a header `position,token,id,relevance`, then one row per token, its
    /// position counted from 0 (fields with commas, quotes or line breaks quoted as RFC 4180
    /// says).
    pub fn csv(&self) -> String {
        let mut out = String::from("position,token,id,relevance\n");
        for (position, ((tok, id), r)) in self.tokens.iter().zip(&self.ids).zip(&self.relevance).enumerate() {
            out.push_str(&format!("{position},{},{id},{r}\n", csv_field(tok)));
        }
        out
    }
}

fn escape_html(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_colours() {
        let t = TokenRelevance::new(
            vec!["<b>".into(), "a,\"b\"".into(), "x".into()],
            vec![1, 2, 3],
            vec![1.0, -1.0, 0.0],
        )
        .unwrap();
        let html = t.html();
        assert!(html.contains("&lt;b&gt;") && !html.contains("<b>"));
        assert_eq!(t.csv().lines().nth(2), Some("1,\"a,\"\"b\"\"\",2,-1"));
        let c = t.colors();
        assert!(c[0][0] > c[0][2], "positive is red");
        assert!(c[1][2] > c[1][0], "negative is blue");
        assert_eq!(c[2], Palette::bwr().color(128));
        assert!(TokenRelevance::new(vec!["a".into()], vec![1], vec![f64::NAN]).is_err());
        assert!(TokenRelevance::new(vec!["a".into()], vec![], vec![1.0]).is_err());
        // all zero: every token white-ish, no division by zero
        let z = TokenRelevance::from_ids(vec![5, 6], vec![0.0, 0.0]).unwrap();
        assert_eq!(z.tokens(), ["#5", "#6"]);
        assert!(z.terminal().ends_with("\x1b[0m"));
    }
}
