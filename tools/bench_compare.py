#!/usr/bin/env python3
"""Speed comparison: relevance (Rust) against zennit and captum on the same architectures.

Runs, in one go and on the same machine:
  * PyTorch forward, zennit EpsilonGammaBox and captum DeepLift (zero baseline), float32,
    torch.set_num_threads(THREADS), on the small CNN (batch 1 and 64) and the VGG16-shaped
    network (batch 1) — random weights, as the Rust benches;
  * the Rust criterion benches (`cargo bench --bench attribution`), with RAYON_NUM_THREADS=THREADS;
  * on Linux, the peak resident memory of one VGG16 call on each side (`cargo bench --bench memory`);
then prints the ratio table of the speed issue (Python time / Rust time: > 1 means Rust is faster).

Usage (from the repository root; a venv with torch, zennit, captum outside the repo):
    python3 -m venv ~/venv && ~/venv/bin/pip install torch zennit captum
    ~/venv/bin/python tools/bench_compare.py [--threads 2] [--skip-vgg] [--min-time SECONDS]
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 10),
    )


def vgg16():
    plan = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0]
    layers, cin = [], 3
    for c in plan:
        if c == 0:
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU()]
            cin = c
    layers += [nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
               nn.Linear(4096, 1000)]
    return nn.Sequential(*layers)


def timeit(fn, min_time, min_reps=5):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def python_times(name, model, shape, batch, min_time):
    from captum.attr import DeepLift
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox

    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(batch, *shape)
    target = 3
    out = {}
    with torch.no_grad():
        out["forward"] = timeit(lambda: model(x), min_time)
    c = shape[0]
    composite = EpsilonGammaBox(low=torch.zeros(1, c, 1, 1), high=torch.ones(1, c, 1, 1))
    n_out = model(x[:1]).shape[1]
    seed = torch.eye(n_out)[[target] * batch]
    with Gradient(model=model, composite=composite) as attributor:
        out["epsilon_gamma_box"] = timeit(lambda: attributor(x, seed), min_time)
    dl = DeepLift(model)
    baseline = torch.zeros_like(x)
    out["deeplift"] = timeit(lambda: dl.attribute(x, baselines=baseline, target=target), min_time)
    return out


def status_gb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1e6
    return float("nan")


def python_peaks(model, shape):
    """Peak resident set (GB, weights included) of one forward / EpsilonGammaBox / DeepLift call,
    resetting the high-water mark before each (Linux /proc/self/clear_refs)."""
    from captum.attr import DeepLift
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox

    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(1, *shape)
    c = shape[0]
    out = {}

    def peak(fn):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        fn()
        return status_gb("VmHWM:")

    with torch.no_grad():
        out["forward"] = peak(lambda: model(x))
    composite = EpsilonGammaBox(low=torch.zeros(1, c, 1, 1), high=torch.ones(1, c, 1, 1))
    seed = torch.eye(model(x).shape[1])[[3]]
    with Gradient(model=model, composite=composite) as attributor:
        out["epsilon_gamma_box"] = peak(lambda: attributor(x, seed))
    dl = DeepLift(model)
    out["deeplift"] = peak(lambda: dl.attribute(x, baselines=torch.zeros_like(x), target=3))
    return out


def rust_peaks():
    """Runs `cargo bench --bench memory` and returns {call: peak GB} and its report lines."""
    cmd = ["cargo", "bench", "--bench", "memory"]
    print("$", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    peaks = {}
    for line in out.splitlines():
        m = re.match(r"vgg16_b1/(\S+): peak (\S+) GB", line)
        if m:
            peaks[m.group(1)] = float(m.group(2))
    return peaks, [l for l in out.splitlines() if l.startswith("vgg16_b1")]


UNITS = {"ps": 1e-12, "ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def rust_times(filters, threads):
    """Runs the criterion benches matching `filters` with `threads` rayon threads and returns
    {bench name: median seconds}, parsed from criterion's `time: [low median high]` lines."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    times = {}
    for f in filters:
        cmd = ["cargo", "bench", "--bench", "attribution", "--", f]
        print("$", f"RAYON_NUM_THREADS={threads}", " ".join(cmd), file=sys.stderr)
        out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
        name = None
        for line in out.splitlines():
            if line and not line[0].isspace():
                name = line.split()[0]
            m = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
            if m and name:
                times[name] = float(m.group(1)) * UNITS[m.group(2)]
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-vgg", action="store_true")
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds per Python measurement")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    configs = [("small", small_cnn(), (1, 28, 28), 1), ("small", small_cnn(), (1, 28, 28), 64)]
    if not args.skip_vgg:
        configs.append(("vgg16", vgg16(), (3, 224, 224), 1))
    py = {}
    for name, model, shape, batch in configs:
        print(f"python: {name} batch {batch}", file=sys.stderr)
        py[(name, batch)] = python_times(name, model, shape, batch, args.min_time)

    filters = ["^small_b(1|64)/(forward|gradient|attribute|deeplift)"] + ([] if args.skip_vgg else ["^vgg16_b1/"])
    rs = rust_times(filters, args.threads)
    one = rust_times(["^small_b64/(attribute/epsilon_gamma_box|deeplift/rescale)$"], 1)

    def r(name, batch, bench):
        return rs.get(f"{name}_b{batch}/{bench}")

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} with {args.threads} threads, float32")
    print("| network, batch | what | Python | Rust | ratio (Python / Rust) |")
    print("|---|---|---|---|---|")
    rows = [("forward", "forward", "PyTorch forward"),
            ("epsilon_gamma_box", "attribute/epsilon_gamma_box", "EpsilonGammaBox vs zennit"),
            ("deeplift", "deeplift/rescale", "DeepLift (zero baseline, its trace kept after the first call) vs captum"),
            ("deeplift", "deeplift/rescale_untraced", "DeepLift, baseline traced in the call (first call) vs captum")]
    for (name, batch), times in py.items():
        for key, bench, label in rows:
            rt = r(name, batch, bench)
            ratio = f"{times[key] / rt:.2f}×" if rt else "n/a"
            rts = f"{rt * 1e3:.3f} ms" if rt else "n/a"
            print(f"| {name}, {batch} | {label} | {times[key] * 1e3:.3f} ms | {rts} | {ratio} |")
        eps, fwd = r(name, batch, "attribute/epsilon"), r(name, batch, "forward")
        if eps and fwd:
            print(f"| {name}, {batch} | LRP-ε attribution / our forward | | {eps * 1e3:.3f} ms | {eps / fwd:.2f} (time ratio) |")
    for bench in ("attribute/epsilon_gamma_box", "deeplift/rescale"):
        t1, t2 = one.get(f"small_b64/{bench}"), r("small", 64, bench)
        if t1 and t2:
            print(f"| small, 64 | {bench}: {args.threads} threads vs 1 | | {t1 * 1e3:.3f} / {t2 * 1e3:.3f} ms "
                  f"| {t1 / t2:.2f}× throughput |")
    if not args.skip_vgg and os.path.exists("/proc/self/clear_refs"):
        peaks_py = python_peaks(vgg16(), (3, 224, 224))
        peaks_rs, lines = rust_peaks()
        print("\nPeak resident memory, one VGG16 call (weights included):")
        print("| call | Python | Rust |")
        print("|---|---|---|")
        for key, label in (("forward", "forward"), ("epsilon_gamma_box", "EpsilonGammaBox"), ("deeplift", "DeepLift")):
            print(f"| {label} | {peaks_py[key]:.2f} GB | {peaks_rs.get(key, float('nan')):.2f} GB |")
        for line in lines:
            print("  rust " + line)
    print("\nRust details:")
    for k in sorted(rs):
        print(f"  {k}: {rs[k] * 1e3:.4f} ms")


if __name__ == "__main__":
    main()
