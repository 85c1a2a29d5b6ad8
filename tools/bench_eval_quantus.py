#!/usr/bin/env python3
"""Times Quantus 0.6.0's PixelFlipping on the bundled digits model, for comparison with
`relevance::eval::RegionPerturbation::pixel_flipping()` (examples/evaluate.rs prints its time
per method).

The same work on both sides: the digits CNN (models/digits.safetensors), N test digits evenly
spaced over data/digits_test.bin (default 100), their true labels as targets, gradient × input
attributions, 784 one-pixel steps to "black" (the sample's minimum), logits. Quantus computes the
MoRF curve only, as `RegionPerturbation::evaluate_order(.., Order::MoRF)` (`cargo bench -p relevance-benches --bench
eval`, group pixel_flipping_100_digits/morf); the evaluate example's time column is `evaluate`,
MoRF and LeRF (twice the forward passes).

    ~/venv/bin/pip install torch quantus==0.6.0 safetensors numpy
    ~/venv/bin/python tools/bench_eval_quantus.py [--n 100] [--threads 2] [--batch 256]
    cargo bench -p relevance-benches --bench eval                          # the Rust side
"""
import argparse
import importlib.util
import os
import time

import numpy as np
import quantus
import safetensors.torch
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load_digits():
    raw = open(os.path.join(ROOT, "data", "digits_test.bin"), "rb").read()
    assert raw[:8] == b"RLVDIGIT"
    _, n, rows, cols = np.frombuffer(raw[8:24], dtype="<u4")
    pixels = np.frombuffer(raw[24:24 + n * rows * cols], dtype=np.uint8).reshape(n, 1, rows, cols)
    labels = np.frombuffer(raw[24 + n * rows * cols:], dtype=np.uint8)
    return pixels, labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256, help="Quantus' batch_size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("train_digits", os.path.join(ROOT, "tools", "train_digits.py"))
    td = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(td)
    model = td.make_model()
    model.load_state_dict(safetensors.torch.load_file(os.path.join(ROOT, "models", "digits.safetensors")))
    model.eval()
    pixels, labels = load_digits()
    idx = [k * len(labels) // args.n for k in range(args.n)]
    x = torch.from_numpy(pixels[idx].astype(np.float32) / 255.0)
    y = torch.from_numpy(labels[idx].astype(np.int64))
    xr = x.clone().requires_grad_(True)
    model(xr).gather(1, y[:, None]).sum().backward()
    a = (xr.grad * x).detach().numpy()
    metric = quantus.PixelFlipping(features_in_step=1, perturb_baseline="black", disable_warnings=True)
    start = time.perf_counter()
    scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a, device="cpu",
                    batch_size=args.batch)
    took = time.perf_counter() - start
    print(f"Quantus {quantus.__version__} PixelFlipping (MoRF only), {args.n} digits x 784 steps, "
          f"{args.threads} threads, batch_size {args.batch}: {took:.2f} s; mean AUC {np.mean(scores):.4f}")


if __name__ == "__main__":
    main()
