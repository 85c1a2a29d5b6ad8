#!/usr/bin/env python3
"""Speed of explaining a ViT-B/16: relevance (Rust) against PyTorch, lxt's efficient mode and captum, same machine,
same thread count, float32, random weights, four different inputs cycled (no call repeats the last); medians.

Python side (torch.set_num_threads(THREADS)):
  * PyTorch forward of torchvision's vit_b_16 (random init, eval, no_grad);
  * lxt 2.1's efficient AttnLRP and CP-LRP: the same architecture written from plain modules with lxt's own rule
    functions applied where lxt's patches apply them (lxt.efficient.rules: divide_gradient on q, k (/4) and v (/2),
    identity_rule_implicit on GELU, the std of every layer norm detached; CP-LRP: q and k detached), then one
    backward pass for gradient x input; parameters do not require gradients (as in lxt's examples);
  * captum 0.9.0 DeepLift (zero baseline) on torchvision's vit_b_16.
Rust side: `cargo bench -p relevance-benches --bench transformer` (criterion; RAYON_NUM_THREADS=THREADS), on the
same architecture built with the graph builder.

Usage (from the repository root; a venv outside the repository):
    python3 -m venv ~/venv && ~/venv/bin/pip install torch torchvision captum 'lxt==2.1.*' 'transformers<5'
    ~/venv/bin/python tools/bench_transformers.py [--threads 2] [--batches 1 8] [--skip-rust] [--reps 5]
Prints one table (times and ratios: > 1 means relevance is faster) and writes it with the raw timings to
target/bench_transformers.json.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


class Block(nn.Module):
    def __init__(self, d, mlp):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-6)
        self.q, self.k, self.v, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.ln_2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)


class PlainViT(nn.Module):
    """torchvision's vit_b_16 written from plain modules (as tools/train_digits_vit.py), with lxt's rules."""

    def __init__(self, image=224, patch=16, d=768, blocks=12, heads=12, mlp=3072, classes=1000):
        super().__init__()
        self.heads, self.d = heads, d
        self.conv_proj = nn.Conv2d(3, d, patch, stride=patch)
        t = (image // patch) ** 2 + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, t, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, mlp) for _ in range(blocks)])
        self.ln = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, classes)

    def forward(self, x, mode):
        from lxt.efficient.rules import divide_gradient, identity_rule_implicit

        def ln(m, x):
            mean = x.mean(-1, keepdim=True)
            std = (((x - mean) ** 2).mean(-1, keepdim=True) + m.eps).sqrt()
            return (x - mean) / std.detach() * m.weight + m.bias

        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        n, t, d = x.shape
        h_ = self.heads
        for b in self.blocks:
            h = ln(b.ln_1, x)
            q, k, v = b.q(h) * (d // h_) ** -0.5, b.k(h), b.v(h)
            if mode == "attn_lrp":
                q, k, v = divide_gradient(q, 4), divide_gradient(k, 4), divide_gradient(v, 2)
            else:
                q, k = q.detach(), k.detach()
            split = lambda z: z.reshape(n, t, h_, d // h_).transpose(1, 2)
            a = torch.softmax(split(q) @ split(k).transpose(-1, -2), dim=-1) @ split(v)
            x = x + b.out_proj(a.transpose(1, 2).reshape(n, t, d))
            h = b.fc1(ln(b.ln_2, x))
            x = x + b.fc2(identity_rule_implicit(F.gelu, h))
        return self.head(ln(self.ln, x)[:, 0])


def median_time(fn, inputs, reps):
    fn(inputs[0])  # warm-up
    times = []
    for k in range(reps):
        s = time.perf_counter()
        fn(inputs[k % len(inputs)])
        times.append(time.perf_counter() - s)
    return statistics.median(times), times


def python_side(batches, threads, reps):
    import torchvision
    from captum.attr import DeepLift

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tv = torchvision.models.vit_b_16().eval()
    plain = PlainViT().eval()
    for p in list(tv.parameters()) + list(plain.parameters()):
        p.requires_grad_(False)
    dl = DeepLift(tv)
    out = {}
    for n in batches:
        xs = [torch.rand(n, 3, 224, 224) for _ in range(4)]
        target = [3] * n

        def forward(x):
            with torch.no_grad():
                tv(x)

        def lxt(mode):
            def run(x):
                x = x.clone().requires_grad_(True)
                y = plain(x, mode)
                seed = torch.zeros_like(y)
                seed[:, 3] = y[:, 3].detach()
                (g,) = torch.autograd.grad(y, x, seed)
                return g * x
            return run

        def deeplift(x):
            return dl.attribute(x.clone().requires_grad_(True), baselines=torch.zeros_like(x), target=target)

        for name, fn in [("forward", forward), ("attn_lrp", lxt("attn_lrp")), ("cp_lrp", lxt("cp_lrp")),
                         ("deeplift", deeplift)]:
            med, raw = median_time(fn, xs, reps)
            out[f"{name}_b{n}"] = {"median": med, "raw": raw}
            print(f"python {name} b{n}: {med:.3f} s", flush=True)
    return out


def rust_side(threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = ["cargo", "bench", "-p", "relevance-benches", "--bench", "transformer"]
    text = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    out = {}
    # criterion: "vit_b16_b1/forward/1\n  time:   [a b c]" (the middle value is the estimate)
    for m in re.finditer(r"vit_b16_b(\d+)/(\w+)/\d+\s+time:\s+\[\S+ \S+ (\S+) (\w+)", text):
        n, name, value, unit = m.groups()
        scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6}[unit]
        out[f"{name}_b{n}"] = {"median": float(value) * scale}
    return out, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-rust", action="store_true")
    args = ap.parse_args()
    py = python_side(args.batches, args.threads, args.reps)
    rust, raw = ({}, "") if args.skip_rust else rust_side(args.threads)
    print("\n| ViT-B/16, batch | PyTorch forward | ours | lxt AttnLRP | ours | ratio | lxt CP-LRP | ours | ratio "
          "| captum DeepLift | ours | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.batches:
        row = [f"{n}"]
        for name in ["forward", "attn_lrp", "cp_lrp", "deeplift"]:
            p = py[f"{name}_b{n}"]["median"]
            r = rust.get(f"{name}_b{n}", {}).get("median")
            row += [f"{p:.3f} s", f"{r:.3f} s" if r else "-"]
            if name != "forward":
                row.append(f"{p / r:.2f}×" if r else "-")
        print("| " + " | ".join(row) + " |")
    (ROOT / "target").mkdir(exist_ok=True)
    with open(ROOT / "target" / "bench_transformers.json", "w") as f:
        json.dump({"python": py, "rust": rust, "criterion_output": raw, "threads": args.threads,
                   "torch": torch.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
