//! Text to token ids with a Hugging Face `tokenizer.json` (feature `tokenizers`).
//!
//! A text model exported to ONNX takes integer token ids; the tokenizer that made them is a
//! separate file, `tokenizer.json`, which every Hugging Face model ships. [`Tokenizer`] reads
//! it through the `tokenizers` crate (the library behind Hugging Face's Python tokenizers, so
//! the ids are the ones Python gives) and never touches the network: the file is read from
//! disk or from bytes. [`Encoding`] keeps the ids, the tokens' own strings and their byte
//! offsets in the text, and turns into the network's input ([`Encoding::input`]) and, with the
//! relevance per token, into a text heatmap ([`Encoding::token_relevance`]).

use crate::error::{Error, Result};
use crate::float::Float;
use crate::heatmap::TokenRelevance;
use ndarray::{Array2, ArrayD};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The largest `tokenizer.json` read (large multilingual vocabularies are ~20 MB).
const MAX_BYTES: u64 = 256 << 20;

/// A Hugging Face tokenizer read from its `tokenizer.json`.
///
/// ```
/// use relevance::io::Tokenizer;
/// let dir = env!("CARGO_MANIFEST_DIR");
/// let tok = Tokenizer::load(format!("{dir}/tests/fixtures/text/tiny_bert_tokenizer.json"))?;
/// let text = tok.encode("The movie was great")?;
/// assert_eq!(text.tokens(), ["[CLS]", "the", "movie", "was", "great", "[SEP]"]);
/// assert_eq!(text.ids(), [2, 5, 6, 7, 8, 3]);
/// let x = text.input::<f64>()?; // [1, 6]: the ids, as a network with an `Embedding` takes them
/// assert_eq!(x.shape(), [1, 6]);
/// # Ok::<(), relevance::Error>(())
/// ```
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    what: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("what", &self.what)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

/// One text, tokenized: ids, tokens and where each token is in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    ids: Vec<i64>,
    tokens: Vec<String>,
    offsets: Vec<(usize, usize)>,
}

impl Tokenizer {
    /// Reads a `tokenizer.json` file.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read or is larger than 256 MB, [`Error::Format`]
    /// if it is not a tokenizer the `tokenizers` crate reads (the crate's reason is given).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |reason: String| Error::Io {
            path: path.display().to_string(),
            reason,
        };
        let len = std::fs::metadata(path).map_err(|e| io(e.to_string()))?.len();
        if len > MAX_BYTES {
            return Err(io(format!(
                "{len} bytes, more than the {MAX_BYTES} a tokenizer may have"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| io(e.to_string()))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Reads a tokenizer from the bytes of a `tokenizer.json`; `what` names it in errors.
    ///
    /// # Errors
    /// [`Error::Format`] if the bytes are not a tokenizer the `tokenizers` crate reads.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        let format = |reason: String| Error::Format {
            what: format!("tokenizer {what}"),
            reason,
        };
        // The crate's own parser; a panic inside it on a hostile file becomes an error too.
        let inner = catch_unwind(AssertUnwindSafe(|| tokenizers::Tokenizer::from_bytes(bytes)))
            .map_err(|_| format("the tokenizers crate failed on it (a panic)".into()))?
            .map_err(|e| format(e.to_string()))?;
        Ok(Tokenizer {
            inner,
            what: what.to_string(),
        })
    }

    /// The number of ids the tokenizer knows, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenizes a text with the special tokens the tokenizer adds (BERT's `[CLS]` and
    /// `[SEP]`, ...), as a model saw it in training.
    ///
    /// # Errors
    /// [`Error::Format`] if the tokenizer fails on the text (the crate's reason is given).
    pub fn encode(&self, text: &str) -> Result<Encoding> {
        self.encode_with(text, true)
    }

    /// Tokenizes a text, with the special tokens or without.
    ///
    /// # Errors
    /// [`Error::Format`] if the tokenizer fails on the text.
    pub fn encode_with(&self, text: &str, special_tokens: bool) -> Result<Encoding> {
        let failed = |reason: String| Error::Format {
            what: format!("tokenizer {}, text {:?}", self.what, shorten(text)),
            reason,
        };
        let e = catch_unwind(AssertUnwindSafe(|| self.inner.encode(text, special_tokens)))
            .map_err(|_| failed("the tokenizers crate failed on it (a panic)".into()))?
            .map_err(|e| failed(e.to_string()))?;
        Ok(Encoding {
            ids: e.get_ids().iter().map(|&i| i64::from(i)).collect(),
            tokens: e.get_tokens().to_vec(),
            offsets: e.get_offsets().to_vec(),
        })
    }

    /// The tokens of given ids (ids from a `.npy` file, say), for a text heatmap.
    ///
    /// # Errors
    /// [`Error::TokenId`] for an id the tokenizer does not know (its position given).
    pub fn tokens_of(&self, ids: &[i64]) -> Result<Vec<String>> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                u32::try_from(id)
                    .ok()
                    .and_then(|u| self.inner.id_to_token(u))
                    .ok_or(Error::TokenId {
                        value: id as f64,
                        position: vec![i],
                        vocabulary: self.vocab_size(),
                    })
            })
            .collect()
    }
}

impl Encoding {
    /// The token ids.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// The tokens as the tokenizer writes them (`##s` for a word piece, `Ġ` for a space in
    /// byte-level BPE).
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Each token's span in the text, as byte offsets `(start, end)` into its UTF-8
    /// (`&text[start..end]`; Python's `tokenizers` gives character offsets), `(0, 0)` for an
    /// added special token.
    pub fn offsets(&self) -> &[(usize, usize)] {
        &self.offsets
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is no token (an empty text without special tokens).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The network input: a batch of one, `[1, T]`, the ids held in the float type (as the
    /// crate's `Embedding` and the ONNX import of an integer input take them).
    ///
    /// # Errors
    /// [`Error::EmptyBatch`] if there is no token; [`Error::Format`] for an id the float type
    /// does not hold exactly (above 2^24 in `f32`).
    pub fn input<F: Float>(&self) -> Result<ArrayD<F>> {
        if self.ids.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let mut out = Vec::with_capacity(self.ids.len());
        for (i, &id) in self.ids.iter().enumerate() {
            let v = F::lit(id as f64);
            if v.as_f64() != id as f64 {
                return Err(Error::Format {
                    what: format!("token id {id} at position {i}"),
                    reason: "the float type does not hold it exactly (f32: ids up to 2^24)".into(),
                });
            }
            out.push(v);
        }
        Ok(Array2::from_shape_vec((1, out.len()), out)
            .expect("one row of the tokens' length")
            .into_dyn())
    }

    /// A text heatmap of this text: the relevance of each token (one per token, as the
    /// relevance at a token-id input comes out).
    ///
    /// # Errors
    /// [`Error::Shape`] if there is not one relevance per token, [`Error::NonFinite`] for
    /// NaN or ∞.
    pub fn token_relevance(&self, relevance: &[f64]) -> Result<TokenRelevance> {
        TokenRelevance::new(self.tokens.clone(), self.ids.clone(), relevance.to_vec())
    }
}

/// The first 40 characters of a text, for an error message.
fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(40).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}
