//! 256-entry colour palettes, computed from their formulas.
//!
//! zennit's maps are written in its colour-map source language (cmsl, `zennit/cmap.py`):
//! comma-separated RGB colours (`f00` or `ff0000`), each optionally prefixed by a hex index
//! `80:` in 0..=255. The colours become nodes, linearly interpolated; entry `k` of the
//! palette samples the map at `k/255` (times `level`, around the centre), then truncates to
//! `u8` after rounding to 12 decimals. [`Palette::from_cmsl`] re-implements that compiler
//! step by step, so [`Palette::bwr`], [`Palette::coldnhot`] and [`Palette::gray`] equal
//! `zennit.image.palette(name)` byte for byte. [`Palette::seismic`] is matplotlib's
//! `seismic` (`LinearSegmentedColormap.from_list` over five colours, `bytes=True`).

use crate::{Error, Result};

/// zennit's built-in colour maps as cmsl source (`zennit/image.py`, `CMAPS`).
const ZENNIT_SOURCES: [(&str, &str); 11] = [
    ("gray", "000,fff"),
    ("wred", "fff,f00"),
    ("wblue", "fff,00f"),
    ("hot", "000,f00,ff0,fff"),
    ("cold", "000,00f,0ff"),
    ("coldnhot", "0ff,00f,80:000,f00,ff0,fff"),
    ("bwr", "00f,80:fff,f00"),
    ("france", "0055a4,80:fff,ef4135"),
    ("seismic", "0000d0,80:d0d0d0,d00000"),
    ("coolio", "00d0d0,80:d0d0d0,d000d0"),
    ("coleus", "00d000,80:d0d0d0,d000d0"),
];

/// matplotlib's `_seismic_data` (`matplotlib/_cm.py`): dark blue, blue, white, red, dark red.
const MPL_SEISMIC: [[f64; 3]; 5] = [
    [0.0, 0.0, 0.3],
    [0.0, 0.0, 1.0],
    [1.0, 1.0, 1.0],
    [1.0, 0.0, 0.0],
    [0.5, 0.0, 0.0],
];

/// A 256-entry RGB palette: palette index `k` (0..=255) is drawn as `colors()[k]`.
///
/// Index 0 is the most negative (or smallest) value, 255 the most positive; with symmetric
/// normalisation a relevance of zero lands on index 127.
///
/// ```
/// use relevance::heatmap::Palette;
/// let bwr = Palette::bwr();
/// assert_eq!(bwr.color(0), [0, 0, 255]); // blue: most negative
/// assert_eq!(bwr.color(127), [253, 253, 255]); // zero: (almost) white
/// assert_eq!(bwr.color(128), [255, 255, 255]);
/// assert_eq!(bwr.color(255), [255, 0, 0]); // red: most positive
/// assert_eq!(Palette::gray().color(200), [200, 200, 200]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Palette {
    colors: [[u8; 3]; 256],
}

impl Palette {
    /// Blue–white–red, zennit's `bwr` (`00f,80:fff,f00`): blue = negative, white = 0, red =
    /// positive. Entry `k < 128` is `(⌊255k/128⌋, ⌊255k/128⌋, 255)`.
    pub fn bwr() -> Palette {
        Self::builtin("bwr")
    }

    /// zennit's `coldnhot` (`0ff,00f,80:000,f00,ff0,fff`): cyan → blue → black (zero) → red
    /// → yellow → white, nodes at 0, 64, 128, 170, 212, 255. zennit's default colour map.
    pub fn coldnhot() -> Palette {
        Self::builtin("coldnhot")
    }

    /// Black to white (zennit's `gray`, `000,fff`): entry `k` is `(k, k, k)`.
    pub fn gray() -> Palette {
        Self::builtin("gray")
    }

    /// matplotlib's `seismic`: dark blue (0, 0, 76) → blue → white → red → dark red (127, 0,
    /// 0), equal to `matplotlib.colormaps["seismic"](range(256), bytes=True)`. (zennit has a
    /// different map of the same name; get it with `Palette::zennit("seismic")`.)
    pub fn seismic() -> Palette {
        let mut colors = [[0u8; 3]; 256];
        for (c, channel) in (0..3).map(|c| (c, mpl_lut(&MPL_SEISMIC.map(|rgb| rgb[c])))) {
            for (k, v) in channel.iter().enumerate() {
                // matplotlib: (lut * 255).astype(np.uint8), a truncation.
                colors[k][c] = (v * 255.0) as u8;
            }
        }
        Palette { colors }
    }

    /// One of zennit's built-in colour maps by name: `gray`, `wred`, `wblue`, `hot`, `cold`,
    /// `coldnhot`, `bwr`, `france`, `seismic` (zennit's, not matplotlib's), `coolio`, `coleus`.
    ///
    /// # Errors
    /// [`Error::Image`] if the name is not one of these.
    pub fn zennit(name: &str) -> Result<Palette> {
        let source = ZENNIT_SOURCES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                let names: Vec<&str> = ZENNIT_SOURCES.iter().map(|(n, _)| *n).collect();
                Error::Image {
                    what: "palette name".into(),
                    reason: format!("unknown {name:?}; known: {names:?}"),
                }
            })?;
        Self::from_cmsl(source, 1.0)
    }

    /// Compiles zennit colour-map source (cmsl) into a palette, as `zennit.image.palette(source,
    /// level)` does.
    ///
    /// `level` 1.0 spans the map once; below 1 it uses only the middle part of the map, above
    /// 1 it saturates earlier (a steeper transition around the centre).
    ///
    /// ```
    /// use relevance::heatmap::Palette;
    /// # fn main() -> relevance::Result<()> {
    /// let white_red = Palette::from_cmsl("fff,f00", 1.0)?;
    /// assert_eq!(white_red.color(0), [255, 255, 255]);
    /// assert_eq!(white_red.color(255), [255, 0, 0]);
    /// assert_eq!(Palette::from_cmsl("00f,80:fff,f00", 1.0)?, Palette::bwr());
    /// assert!(Palette::from_cmsl("00f,zz", 1.0).is_err());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Image`] if the source does not parse, has fewer than two colours, has
    /// indices out of order, or `level` is not finite.
    pub fn from_cmsl(source: &str, level: f64) -> Result<Palette> {
        let err = |reason: String| Error::Image {
            what: format!("cmsl source {source:?}"),
            reason,
        };
        if !level.is_finite() {
            return Err(err(format!("level must be finite, got {level}")));
        }
        let map = ColorMap::compile(source).map_err(err)?;
        let mut colors = [[0u8; 3]; 256];
        for (k, color) in colors.iter_mut().enumerate() {
            // numpy: x = linspace(-1, 1, 256) * level; x = ((x + 1) / 2).clip(0, 1).
            let t = if k == 255 {
                1.0
            } else {
                k as f64 * (2.0 / 255.0) + -1.0
            };
            let x = ((t * level + 1.0) / 2.0).clamp(0.0, 1.0);
            let rgb = map.eval(x);
            for c in 0..3 {
                // (x * 255).round(12).clip(0, 255).astype(uint8)
                color[c] = round12(rgb[c] * 255.0).clamp(0.0, 255.0) as u8;
            }
        }
        Ok(Palette { colors })
    }

    /// The colour of palette index `k`.
    pub fn color(&self, k: u8) -> [u8; 3] {
        self.colors[k as usize]
    }

    /// All 256 colours, index 0 first.
    pub fn colors(&self) -> &[[u8; 3]; 256] {
        &self.colors
    }

    fn builtin(name: &str) -> Palette {
        // The built-in sources are constants that compile; fall back to black only to
        // avoid a panic path.
        Self::zennit(name).unwrap_or(Palette {
            colors: [[0; 3]; 256],
        })
    }
}

impl Default for Palette {
    /// [`Palette::bwr`].
    fn default() -> Palette {
        Palette::bwr()
    }
}

/// numpy's `round(x, 12)`: multiply by 1e12, round half to even, divide.
fn round12(x: f64) -> f64 {
    let y = x * 1e12;
    let mut r = y.round();
    if (r - y).abs() == 0.5 && r % 2.0 != 0.0 {
        r -= y.signum();
    }
    r / 1e12
}

/// One colour channel of matplotlib's `_create_lookup_table(256, data)` for colours spaced
/// evenly over [0, 1] (`LinearSegmentedColormap.from_list`), before clipping to [0, 1].
fn mpl_lut(ys: &[f64]) -> [f64; 256] {
    let m = ys.len();
    // vals = linspace(0, 1, m); x = vals * (N - 1).
    let x: Vec<f64> =
        (0..m).map(|i| if i == m - 1 { 1.0 } else { i as f64 * (1.0 / (m - 1) as f64) } * 255.0).collect();
    let mut lut = [0.0; 256];
    for (k, out) in lut.iter_mut().enumerate() {
        let v = if k == 0 {
            ys[0]
        } else if k == 255 {
            ys[m - 1]
        } else {
            // xind = (N - 1) * linspace(0, 1, N); ind = searchsorted(x, xind) (side left).
            let xi = 255.0 * (k as f64 * (1.0 / 255.0));
            let i = x.iter().position(|&xv| xv >= xi).unwrap_or(m - 1).max(1);
            let distance = (xi - x[i - 1]) / (x[i] - x[i - 1]);
            distance * (ys[i] - ys[i - 1]) + ys[i - 1]
        };
        *out = v.clamp(0.0, 1.0);
    }
    lut
}

/// A parsed cmsl colour: its optional index and its RGB (0..=255).
type Node = (Option<u8>, [f64; 3]);

/// A compiled cmsl colour map: ascending node indices (0 ..= 256) and their colours.
struct ColorMap {
    indices: Vec<f64>,
    colors: Vec<[f64; 3]>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Token<'s> {
    Color(&'s str),
    Index(&'s str),
    Colon,
    Comma,
}

impl ColorMap {
    /// zennit's `ColorMap.__init__`: lex, parse, `_make_palette`.
    fn compile(source: &str) -> std::result::Result<ColorMap, String> {
        let nodes = parse(&lex(source)?)?;
        make_palette(nodes)
    }

    /// zennit's `ColorMap.__call__` for one value `x` in [0, 1], giving RGB in [0, 1].
    fn eval(&self, x: f64) -> [f64; 3] {
        let x = (x * 255.0).clamp(0.0, 255.0);
        // searchsorted(indices[:-1], x, side='right'); always >= 1 since indices[0] == 0.
        let last = self.indices.len() - 1;
        let i = self.indices[..last]
            .iter()
            .take_while(|&&v| v <= x)
            .count()
            .clamp(1, last);
        let alpha = (x - self.indices[i - 1]) / (self.indices[i] - self.indices[i - 1]);
        let (a, b) = (self.colors[i - 1], self.colors[i]);
        [0, 1, 2].map(|c| (a[c] * (1.0 - alpha) + b[c] * alpha) / 255.0)
    }
}

/// zennit's regular-expression lexer: 6 hex digits, else 3, else 1–2 (an index), `:`, `,`,
/// whitespace.
fn lex(source: &str) -> std::result::Result<Vec<Token<'_>>, String> {
    let mut tokens = Vec::new();
    let mut rest = source;
    while let Some(ch) = rest.chars().next() {
        let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        let (token, len) = match ch {
            _ if hex >= 6 => (Some(Token::Color(&rest[..6])), 6),
            _ if hex >= 3 => (Some(Token::Color(&rest[..3])), 3),
            _ if hex >= 1 => (Some(Token::Index(&rest[..hex])), hex),
            ':' => (Some(Token::Colon), 1),
            ',' => (Some(Token::Comma), 1),
            c if c.is_whitespace() => (None, c.len_utf8()),
            _ => {
                return Err(format!(
                    "unexpected {rest:?} at byte {}",
                    source.len() - rest.len()
                ))
            }
        };
        tokens.extend(token);
        rest = &rest[len..];
    }
    Ok(tokens)
}

/// zennit's `_parse`: `[index ':'] color (',' [index ':'] color)*` into (index, RGB) nodes.
fn parse(tokens: &[Token<'_>]) -> std::result::Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    let mut log: Vec<Token<'_>> = Vec::new();
    for &token in tokens {
        match token {
            Token::Index(_) if log.is_empty() => log.push(token),
            Token::Colon if matches!(log.as_slice(), [Token::Index(_)]) => log.push(token),
            Token::Color(hex) => {
                let index = match log.as_slice() {
                    [] => None,
                    [Token::Index(i), Token::Colon] => {
                        let i = if i.len() == 1 { i.repeat(2) } else { i.to_string() };
                        Some(u8::from_str_radix(&i, 16).map_err(|e| e.to_string())?)
                    }
                    _ => return Err(format!("unexpected color {hex:?}")),
                };
                // Short colours double each digit (`f` → `ff`), long ones pair them.
                let digit = |k: usize| u8::from_str_radix(&hex[k..k + 1], 16).unwrap_or(0) as f64;
                let rgb = if hex.len() == 3 {
                    [0, 1, 2].map(|c| digit(c) * 17.0)
                } else {
                    [0, 1, 2].map(|c| digit(2 * c) * 16.0 + digit(2 * c + 1))
                };
                nodes.push((index, rgb));
                log.push(token);
            }
            Token::Comma if matches!(log.last(), Some(Token::Color(_))) => log.clear(),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    if let Some(last) = log.last() {
        if !matches!(last, Token::Color(_)) {
            return Err(format!("unexpected {last:?} at the end"));
        }
    }
    Ok(nodes)
}

/// zennit's `_make_palette`: unindexed colours are spaced evenly between their indexed
/// neighbours (first → 0, last → 255); a final node at 256 repeats the last colour.
fn make_palette(mut nodes: Vec<Node>) -> std::result::Result<ColorMap, String> {
    if nodes.len() < 2 {
        return Err("a colour map needs at least 2 colours".into());
    }
    let start = nodes.remove(0);
    let mut result: Vec<(i64, [f64; 3])> = vec![(0, start.1)];
    if let (Some(i), rgb) = start {
        if i > 0 {
            result.push((i as i64, rgb));
        }
    }
    let mut log: Vec<[f64; 3]> = Vec::new();
    let count = nodes.len();
    for (n, (index, rgb)) in nodes.into_iter().enumerate() {
        let prev = result.last().map_or(0, |r| r.0);
        let index = match index {
            None if n < count - 1 => {
                log.push(rgb);
                continue;
            }
            None => 255,
            Some(i) if (i as i64) < prev => return Err("indices are not in ascending order".into()),
            Some(i) => i as i64,
        };
        let steps = log.len() + 1;
        for (k, between) in log.drain(..).enumerate() {
            // int(prev * (1 - alpha) + index * alpha), alpha = linspace(0, 1, steps + 1)[k + 1]
            let alpha = (k + 1) as f64 * (1.0 / steps as f64);
            result.push((
                (prev as f64 * (1.0 - alpha) + index as f64 * alpha) as i64,
                between,
            ));
        }
        result.push((index, rgb));
    }
    let last = result.last().map_or([0.0; 3], |r| r.1);
    result.push((256, last));
    Ok(ColorMap {
        indices: result.iter().map(|r| r.0 as f64).collect(),
        colors: result.iter().map(|r| r.1).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coldnhot_nodes() {
        let map = ColorMap::compile("0ff,00f,80:000,f00,ff0,fff").unwrap();
        assert_eq!(map.indices, vec![0.0, 64.0, 128.0, 170.0, 212.0, 255.0, 256.0]);
    }

    #[test]
    fn bad_sources() {
        for s in [
            "",
            "fff",
            "80:",
            "fff,,000",
            "fff:000",
            "80:fff,40:000",
            "fff,00g",
        ] {
            assert!(ColorMap::compile(s).is_err(), "{s:?}");
        }
    }
}
