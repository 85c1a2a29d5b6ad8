#!/usr/bin/env python3
"""Generate tests/fixtures/transformers/masked_encoder.{onnx,json}: a tiny sentence encoder written the way published
sentence-transformers ONNX files are (Hugging Face `BertModel` with an attention mask and token types, then the
masked mean pooling of sentence-transformers), exported by PyTorch's TorchScript exporter with two int64 inputs
`input_ids` and `attention_mask` [batch, sequence_length] (both axes symbolic), as e.g. the published
paraphrase-MiniLM-L3-v2 export is. It tests what such files need (issue #21): an input held at a fixed value
(`OnnxOptions::fixed_inputs`), the mask arithmetic folded at load time, token-type embeddings from a constant
buffer, and the mean pooling (`ReduceSum` over the token axis, `Clip`, `Div`). masked_encoder.f32.onnx is the float32
twin (same nodes) that onnxruntime runs, as onnxruntime 1.32 has no float64 `Erf`.

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch "transformers<5" onnx onnxruntime numpy
    ~/venv/bin/python tools/gen_masked_encoder.py             # writes tests/fixtures/transformers/ (~5 s)
    ~/venv/bin/python tools/gen_masked_encoder.py --out DIR   # write somewhere else

Produced with torch 2.15.0, transformers 4.57, onnx 1.23, onnxruntime 1.32 (recorded in the JSON). Deterministic
(seed 0, float64, one thread).

Network: `BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
intermediate_size=16, max_position_embeddings=16, type_vocab_size=2, hidden_act="gelu"), add_pooling_layer=False)`,
float64, eval mode, weights as `BertModel` initialises them with seed 0 then every parameter + N(0, 0.1^2) (so that
biases and LayerNorm affines are not trivial); then `pooled = Σ_t h_t · m_t / max(Σ_t m_t, 1e-9)`
(sentence-transformers' `Pooling(pooling_mode_mean_tokens=True)`). Output "sentence_embedding" [batch, 8].

JSON: generator, versions, seed, ids T[2, 6] (integers), cases: {"ones": mask all ones, "padded": mask [1,1,1,1,0,0] for
both samples}, each {mask [6], torch T[2,8] (float64), onnxruntime T[2,8] (the float32 twin)}; "short": the embedding of the first four ids of each
sample with a mask of ones (torch), which equals the padded case's (the mask removes the padding; recorded
deviation); operators (sorted), opset. A tensor T is {"shape", "data"} (flat, C order, Python float reprs).
"""
import argparse
import copy
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers
from transformers import BertConfig, BertModel

GENERATOR = "tools/gen_masked_encoder.py"
SEED = 0


def check(cond, what):
    if not cond:
        raise SystemExit(f"check failed: {what}")


class Encoder(torch.nn.Module):
    """BertModel and the masked mean pooling of sentence-transformers."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).expand(h.size()).to(h.dtype)
        return torch.sum(h * m, 1) / torch.clamp(m.sum(1), min=1e-9)


def tensor(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/transformers")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    config = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, type_vocab_size=2, hidden_act="gelu",
                        attn_implementation="eager")
    bert = BertModel(config, add_pooling_layer=False).double().eval()
    with torch.no_grad():
        for p in bert.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model = Encoder(bert).eval()
    ids = torch.randint(1, 20, (2, 6), dtype=torch.int64)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "masked_encoder.onnx")
    twin = os.path.join(args.out, "masked_encoder.f32.onnx")
    ones = torch.ones(2, 6, dtype=torch.int64)
    for net, where in [(model, path), (copy.deepcopy(model).float(), twin)]:
        torch.onnx.export(net, (ids, ones), where, dynamo=False, opset_version=17, do_constant_folding=True,
                          input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                          dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                                        "attention_mask": {0: "batch_size", 1: "sequence_length"},
                                        "sentence_embedding": {0: "batch_size"}})
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    m32 = onnx.load(twin)
    check([n.op_type for n in m.graph.node] == [n.op_type for n in m32.graph.node], "the float32 twin's nodes differ")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    # onnxruntime 1.32 has no float64 Erf: it runs the float32 twin (same nodes)
    sess = ort.InferenceSession(twin, so, providers=["CPUExecutionProvider"])
    cases = {}
    for name, row in [("ones", [1, 1, 1, 1, 1, 1]), ("padded", [1, 1, 1, 1, 0, 0])]:
        mask = torch.tensor([row, row], dtype=torch.int64)
        with torch.no_grad():
            want = model(ids, mask).numpy()
        got = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0].astype(np.float64)
        dev = float(np.abs(got - want).max() / np.abs(want).max())
        check(dev < 1e-5, f"{name}: onnxruntime (float32 twin) deviates from torch by {dev}")
        cases[name] = {"mask": row, "torch": tensor(want), "onnxruntime": tensor(got), "deviation": dev}
    with torch.no_grad():
        short = model(ids[:, :4], torch.ones(2, 4, dtype=torch.int64)).numpy()
    padded = np.array(cases["padded"]["torch"]["data"]).reshape(2, 8)
    short_dev = float(np.abs(short - padded).max() / np.abs(short).max())
    check(short_dev < 1e-12, f"the mask does not remove the padding: {short_dev}")
    out = {
        "generator": GENERATOR,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        "seed": SEED,
        "ids": {"shape": list(ids.shape), "data": [int(v) for v in ids.reshape(-1)]},
        "cases": cases,
        "short": {"torch": tensor(short), "deviation_from_padded": short_dev},
        "operators": sorted({n.op_type for n in m.graph.node}),
        "opset": [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0],
    }
    with open(os.path.join(args.out, "masked_encoder.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes) and masked_encoder.json; "
          f"onnxruntime {max(c['deviation'] for c in cases.values()):.1e}, padding {short_dev:.1e}")


if __name__ == "__main__":
    main()
