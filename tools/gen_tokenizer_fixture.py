#!/usr/bin/env python3
"""A WordPiece `tokenizer.json` for the tiny BERT of the transformer fixtures (vocabulary of 20, 6 positions), built
with Hugging Face's `tokenizers` (the Python binding of the Rust crate the `tokenizers` feature uses), and the
encodings it gives a few texts: the reference for tests/suite/tokenizer.rs.

    ~/venv/bin/pip install 'tokenizers==0.22.*'
    ~/venv/bin/python tools/gen_tokenizer_fixture.py

Writes tests/fixtures/text/tiny_bert_tokenizer.json (BERT's normaliser and pre-tokeniser, a [CLS] ... [SEP]
template) and tests/fixtures/text/tiny_bert_encodings.json ({text, ids, tokens, offsets} per text, with the
special tokens).
"""

import json
import os

import tokenizers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "great", "bad", "not", "a", "film",
         "good", "plot", "##s", "acting", "is", "boring", "fun"]
TEXTS = ["The movie was great", "Not a good plot!", "films", "the ACTING is boring", "Ünknown wörds", ""]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "tests", "fixtures", "text")
    os.makedirs(out, exist_ok=True)
    vocab = {t: i for i, t in enumerate(VOCAB)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    path = os.path.join(out, "tiny_bert_tokenizer.json")
    tok.save(path)
    tok = Tokenizer.from_file(path)
    cases = []
    for text in TEXTS:
        e = tok.encode(text)
        cases.append({"text": text, "ids": e.ids, "tokens": e.tokens, "offsets": [list(o) for o in e.offsets]})
    with open(os.path.join(out, "tiny_bert_encodings.json"), "w") as f:
        json.dump({"generator": "tools/gen_tokenizer_fixture.py", "tokenizers": tokenizers.__version__,
                   "cases": cases}, f, indent=1, ensure_ascii=False)
    for c in cases:
        print(c["text"], c["tokens"], c["ids"])


if __name__ == "__main__":
    main()
