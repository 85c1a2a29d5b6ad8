#!/usr/bin/env python3
"""Export torchvision's ViT-B/16 (both PyTorch exporters) and ConvNeXt-Tiny (legacy exporter) with seeded random
weights, and record onnxruntime's logits of two seeded inputs: the data of the ignored test
tests/suite/big_transformers.rs (too large to commit: ~330 MB and ~110 MB).

    ~/venv/bin/pip install torch torchvision onnx onnxruntime onnxscript numpy
    ~/venv/bin/python tools/gen_big_transformer_onnx.py --out /tmp/big
    RELEVANCE_BIG_ONNX=/tmp/big cargo test --release --test suite big_transformers -- --ignored --nocapture

Writes into --out: vit_b_16.legacy.onnx (opset 17, dynamic batch), vit_b_16.dynamo.onnx (+ .onnx.data, dynamic
batch), convnext_tiny.legacy.onnx (opset 17, dynamic batch), input.npy (float32 [2, 3, 224, 224]) and
<model>.logits.npy (onnxruntime's float32 logits of input.npy).
"""

import argparse
import os

import numpy as np
import onnxruntime as ort
import torch
import torchvision


def export(model, x, path, dynamo):
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=64)
        torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"], dynamo=True,
                          dynamic_shapes={"x": {0: batch}}, external_data=True)
    else:
        torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"], dynamo=False,
                          opset_version=17, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/big")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    np.save(os.path.join(args.out, "input.npy"), x.numpy())
    for name, ctor, modes in [("vit_b_16", torchvision.models.vit_b_16, ["legacy", "dynamo"]),
                              ("convnext_tiny", torchvision.models.convnext_tiny, ["legacy"])]:
        torch.manual_seed(0)
        model = ctor(weights=None).eval()
        if name.startswith("vit"):
            # torchvision starts the ViT's head at zero: every logit would be 0
            torch.nn.init.normal_(model.heads.head.weight, std=0.02)
            torch.nn.init.normal_(model.heads.head.bias, std=0.02)
        for mode in modes:
            path = os.path.join(args.out, f"{name}.{mode}.onnx")
            # with gradients on: under no_grad, nn.MultiheadAttention takes its fused fast path
            # (aten::_native_multi_head_attention), which the legacy exporter cannot write
            # a batch of 2 as the example: torch.export specialises a dimension of 1
            export(model, x, path, mode == "dynamo")
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            logits = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
            with torch.no_grad():
                ref = model(x).numpy()
            dev = float(np.abs(logits - ref).max() / np.abs(ref).max())
            np.save(os.path.join(args.out, f"{name}.{mode}.logits.npy"), logits)
            print(f"{path}: onnxruntime vs PyTorch {dev:.1e}", flush=True)


if __name__ == "__main__":
    main()
