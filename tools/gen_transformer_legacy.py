#!/usr/bin/env python3
"""Export the tiny ViT and tiny BERT of tools/gen_transformer_fixtures.py with the TorchScript exporter at opset 14,
where nn.LayerNorm has no ONNX operator and is written out (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul,
Add): tests/fixtures/transformers/tiny_{vit,bert}.opset14.onnx (float64) and *.opset14.f32.onnx (float32 twins,
which onnxruntime can run: it has no float64 Conv nor Erf).

How to run (from the repository root, after tools/gen_transformer_fixtures.py):

    ~/venv/bin/python tools/gen_transformer_legacy.py             # writes tests/fixtures/transformers/
    ~/venv/bin/python tools/gen_transformer_legacy.py --out DIR   # write somewhere else

The networks are gen_transformer_fixtures.py's own module definitions, with the weights of tiny_{vit,bert}.json
loaded into them (so that tiny_{vit,bert}.json stays the reference: its logits and lxt's relevance). Checked here:
torch's float64 logits reproduce the JSON's exactly (1e-15), every file passes onnx.checker, each layer norm is
written out (no LayerNormalization node), and onnxruntime's logits of the float32 twin are within 1e-5 (relative to
the largest logit) of the JSON's. Deterministic (one CPU thread); each file is below 200 KB.
"""
import argparse
import os
import sys

import numpy as np
import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_transformer_fixtures as fx  # noqa: E402  (sets float64 as torch's default dtype, one thread)

OPSET = 14
MAX_FILE = 200_000


def tensor(t):
    return torch.tensor(t["data"], dtype=torch.float64).reshape(t["shape"])


def load(name, directory):
    import json
    with open(os.path.join(directory, f"{name}.json")) as f:
        doc = json.load(f)
    model = fx.TinyViT() if name == "tiny_vit" else fx.TinyBert()
    state = {k: tensor(v) for k, v in doc["weights"].items()}
    missing = set(model.state_dict()) - set(state)
    fx.check(not missing, f"{name}: weights missing from the JSON: {missing}")
    model.load_state_dict(state, strict=False)
    model.eval()
    inputs = tensor(doc["x"]) if name == "tiny_vit" else \
        torch.tensor(doc["ids"]["data"], dtype=torch.int64).reshape(doc["ids"]["shape"])
    return model, inputs, np.asarray(doc["logits"]["data"]).reshape(doc["logits"]["shape"])


def export(model, example, path, input_name):
    torch.onnx.export(model, (example,), path, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                      input_names=[input_name], output_names=["logits"],
                      dynamic_axes={input_name: {0: "batch"}, "logits": {0: "batch"}})
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ops = sorted({n.op_type for n in m.graph.node})
    fx.check("LayerNormalization" not in ops, f"{path}: a LayerNormalization node")
    size = os.path.getsize(path)
    fx.check(size < MAX_FILE, f"{path}: {size} bytes")
    return ops, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=fx.DEFAULT_OUT)
    out = os.path.abspath(ap.parse_args().out)
    for name in ("tiny_vit", "tiny_bert"):
        model, inputs, logits = load(name, fx.DEFAULT_OUT)
        with torch.no_grad():
            got = model(inputs).numpy()
        d = fx.max_rel(got, logits)
        fx.check(d <= 1e-15, f"{name}: torch's logits deviate from the JSON's by {d:e}")
        input_name = "x" if name == "tiny_vit" else "ids"
        ops, size = export(model, inputs, os.path.join(out, f"{name}.opset14.onnx"), input_name)
        m32 = model.float()
        ex32 = inputs.float() if name == "tiny_vit" else inputs
        path32 = os.path.join(out, f"{name}.opset14.f32.onnx")
        ops32, size32 = export(m32, ex32, path32, input_name)
        fx.check(ops32 == ops, f"{name}: the float32 twin has other operators")
        feed = ex32.numpy()
        got32 = fx.ort_run(path32, feed)
        d32 = fx.max_rel(got32.astype(np.float64), logits)
        fx.check(d32 <= fx.ORT_TOL, f"{name}: onnxruntime float32 logits deviate by {d32:e}")
        print(f"{name}.opset14.onnx: {size} bytes, .f32: {size32} bytes, onnxruntime f32 vs JSON {d32:.1e}; "
              f"{' '.join(ops)}")


if __name__ == "__main__":
    main()
