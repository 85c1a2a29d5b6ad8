#!/usr/bin/env python3
"""Speed comparison: relevance (Rust) against zennit and captum on the same architectures.

Runs, in one go and on the same machine:
  * PyTorch forward, zennit EpsilonGammaBox and captum DeepLift (zero baseline), float32,
    torch.set_num_threads(THREADS), on the small CNN (batch 1 and 64), the VGG16-shaped
    network (batch 1) and torchvision's ResNet-18 and ResNet-50 (batch 1 and 8; zennit with its
    ResNetCanonizer, the Rust side with its batch norms merged the same way) — random weights,
    as the Rust benches, four different inputs taken in turn on both sides;
  * the Rust criterion benches (`cargo bench -p relevance-benches --bench attribution`), with RAYON_NUM_THREADS=THREADS;
  * on Linux, the peak resident memory of one VGG16 call on each side (`cargo bench -p relevance-benches --bench memory`);
  * the evaluation case: pixel flipping with seeded uniform noise on 100 digits × 784 steps, one
    order (`cargo bench -p relevance-benches --bench eval -- morf_noise`; Rust only: Quantus'
    own timing is tools/bench_eval_quantus.py);
then prints the ratio table of the speed issue (Python time / Rust time: > 1 means Rust is faster).

The small-CNN rows are measured in several interleaved rounds (Python, then Rust, then Python
again, ...; --rounds, default 3): a single run per side moves a ratio by 10-20 % on a shared
machine, so each row reports the median of its per-round ratios and their range.

Usage (from the repository root; a venv with torch, zennit, captum outside the repo):
    python3 -m venv ~/venv && ~/venv/bin/pip install torch zennit captum
    ~/venv/bin/python tools/bench_compare.py [--threads 2] [--rounds 3] [--skip-vgg] [--skip-resnet]
                                             [--skip-resnet50] [--skip-eval] [--min-time SECONDS]
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


def resnet(name="resnet18"):
    """torchvision's ResNet-18 or ResNet-50 with random weights and non-trivial batch-norm statistics."""
    import torchvision

    model = getattr(torchvision.models, name)(weights=None)
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(1.0 + torch.rand(c, generator=g) * 0.3)
            m.weight.data.copy_(1.0 + torch.randn(c, generator=g) * 0.2)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return model


def resnet18():
    return resnet("resnet18")


def resnet50():
    return resnet("resnet50")


def split_relus(model):
    """captum refuses a module called twice (the blocks' self.relu): give every block one ReLU
    per call. Same values."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    def basic(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu2(out + identity)

    def bottleneck(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu3(out + identity)

    for m in model.modules():
        if isinstance(m, BasicBlock):
            m.relu2 = nn.ReLU()
            m.forward = basic.__get__(m)
        elif isinstance(m, Bottleneck):
            m.relu2, m.relu3 = nn.ReLU(), nn.ReLU()
            m.forward = bottleneck.__get__(m)
    return model


def timeit(fn, min_time, min_reps=5, inputs=None):
    """Median seconds of `fn()`, or of `fn(x)` with x taken in turn from `inputs`."""
    calls = [lambda: fn()] if inputs is None else [lambda x=x: fn(x) for x in inputs]
    calls[0]()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        call = calls[len(times) % len(calls)]
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def python_times(name, model, shape, batch, min_time):
    from captum.attr import DeepLift
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox
    from zennit.torchvision import ResNetCanonizer

    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    xs = [torch.rand(batch, *shape) for _ in range(4)]
    target = 3
    out = {}
    with torch.no_grad():
        out["forward"] = timeit(lambda x: model(x), min_time, inputs=xs)
    c = shape[0]
    is_resnet = name.startswith("resnet")
    canonizers = [ResNetCanonizer()] if is_resnet else None
    composite = EpsilonGammaBox(low=torch.zeros(1, c, 1, 1), high=torch.ones(1, c, 1, 1), canonizers=canonizers)
    n_out = model(xs[0][:1]).shape[1]
    seed = torch.eye(n_out)[[target] * batch]
    with Gradient(model=model, composite=composite) as attributor:
        out["epsilon_gamma_box"] = timeit(lambda x: attributor(x, seed), min_time, inputs=xs)
    dl = DeepLift(split_relus(model) if is_resnet else model)
    baseline = torch.zeros_like(xs[0])
    out["deeplift"] = timeit(lambda x: dl.attribute(x, baselines=baseline, target=target), min_time, inputs=xs)
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
    """Runs `cargo bench -p relevance-benches --bench memory` and returns {call: peak GB} and its report lines."""
    cmd = ["cargo", "bench", "-p", "relevance-benches", "--bench", "memory"]
    print("$", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    peaks = {}
    for line in out.splitlines():
        m = re.match(r"vgg16_b1/(\S+): peak (\S+) GB", line)
        if m:
            peaks[m.group(1)] = float(m.group(2))
    return peaks, [l for l in out.splitlines() if l.startswith("vgg16_b1")]


UNITS = {"ps": 1e-12, "ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def rust_times(filters, threads, extra=(), bench="attribution"):
    """Runs the criterion benches matching `filters` with `threads` rayon threads and returns
    {bench name: median seconds}, parsed from criterion's `time: [low median high]` lines.
    `extra`: more criterion arguments (e.g. a shorter measurement time)."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    times = {}
    for f in filters:
        cmd = ["cargo", "bench", "-p", "relevance-benches", "--bench", bench, "--", f, *extra]
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


def fmt_ratio(ratios):
    """`median×` of a list of ratios, with their range when there are several."""
    ratios = [r for r in ratios if r]
    if not ratios:
        return "n/a"
    med = statistics.median(ratios)
    return f"{med:.2f}×" if len(ratios) == 1 else f"{med:.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds for the small-CNN rows")
    ap.add_argument("--skip-vgg", action="store_true")
    ap.add_argument("--skip-resnet", action="store_true", help="skip ResNet-18")
    ap.add_argument("--skip-resnet50", action="store_true")
    ap.add_argument("--skip-eval", action="store_true", help="skip the evaluation case")
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds per Python measurement")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    small = [("small", small_cnn(), (1, 28, 28), 1), ("small", small_cnn(), (1, 28, 28), 64)]
    benches = ["forward", "attribute/epsilon", "attribute/epsilon_gamma_box", "deeplift/rescale",
               "deeplift/rescale_untraced"]
    small_filter = "^small_b(1|64)/(" + "|".join(benches) + ")$"
    threads_filter = "^small_b64/(attribute/epsilon_gamma_box|deeplift/rescale)$"
    # per round: {(name, batch): python times}, {bench: rust seconds}
    rounds = []
    for k in range(args.rounds):
        py = {}
        for name, model, shape, batch in small:
            print(f"round {k + 1}/{args.rounds} python: {name} batch {batch}", file=sys.stderr)
            py[(name, batch)] = python_times(name, model, shape, batch, args.min_time)
        quick = ["--warm-up-time", "1", "--measurement-time", "4"]
        rs = rust_times([small_filter], args.threads, quick)
        # the thread-scaling row: one thread, in the same round
        for b, t in rust_times([threads_filter], 1, quick).items():
            rs[f"1thread:{b}"] = t
        rounds.append((py, rs))
    if not args.skip_vgg:
        print("python: vgg16 batch 1", file=sys.stderr)
        py = {("vgg16", 1): python_times("vgg16", vgg16(), (3, 224, 224), 1, args.min_time)}
        rs = rust_times(["^vgg16_b1/"], args.threads)
        rounds.append((py, rs))
    for name, make, skip in (("resnet18", resnet18, args.skip_resnet), ("resnet50", resnet50, args.skip_resnet50)):
        if skip:
            continue
        py = {}
        for batch in (1, 8):
            print(f"python: {name} batch {batch}", file=sys.stderr)
            py[(name, batch)] = python_times(name, make(), (3, 224, 224), batch, args.min_time)
        rs = rust_times([f"^{name}_b(1|8)/(forward|attribute/epsilon_gamma_box(_kept)?|attribute/epsilon|deeplift/rescale)$"],
                        args.threads)
        rounds.append((py, rs))
    eval_time = None
    if not args.skip_eval:
        eval_time = rust_times(["^pixel_flipping_100_digits/morf_noise$"], args.threads, bench="eval").get(
            "pixel_flipping_100_digits/morf_noise")

    def rows_for(name, batch):
        """[(python seconds, rust times)] of every round that measured this configuration."""
        return [(py[(name, batch)], rs) for py, rs in rounds if (name, batch) in py]

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} with {args.threads} threads, float32; "
          f"small CNN: median of {args.rounds} interleaved rounds (range in brackets)")
    print("| network, batch | what | Python | Rust | ratio (Python / Rust) |")
    print("|---|---|---|---|---|")
    rows = [("forward", "forward", "PyTorch forward"),
            ("epsilon_gamma_box", "attribute/epsilon_gamma_box", "EpsilonGammaBox vs zennit"),
            ("epsilon_gamma_box", "attribute/epsilon_gamma_box_kept",
             "EpsilonGammaBox, rule weights kept (`keep_rule_weights`) vs zennit"),
            ("deeplift", "deeplift/rescale", "DeepLift (zero baseline, its trace kept after the first call) vs captum"),
            ("deeplift", "deeplift/rescale_untraced", "DeepLift, baseline traced in the call (first call) vs captum")]
    configs = [("small", 1), ("small", 64)] + ([] if args.skip_vgg else [("vgg16", 1)])
    configs += [] if args.skip_resnet else [("resnet18", 1), ("resnet18", 8)]
    configs += [] if args.skip_resnet50 else [("resnet50", 1), ("resnet50", 8)]
    for name, batch in configs:
        measured = rows_for(name, batch)
        for key, bench, label in rows:
            pairs = [(py[key], rs.get(f"{name}_b{batch}/{bench}")) for py, rs in measured]
            ratios = [p / r for p, r in pairs if r]
            pt = statistics.median(p for p, _ in pairs)
            rts = [r for _, r in pairs if r]
            if not rts and bench.endswith("_kept"):
                continue  # measured on the larger networks only
            rt = f"{statistics.median(rts) * 1e3:.3f} ms" if rts else "n/a"
            print(f"| {name}, {batch} | {label} | {pt * 1e3:.3f} ms | {rt} | {fmt_ratio(ratios)} |")
        fwd = [rs.get(f"{name}_b{batch}/forward") for _, rs in measured]
        for bench, label in (("attribute/epsilon", "LRP-ε"), ("attribute/epsilon_gamma_box", "EpsilonGammaBox"),
                             ("attribute/epsilon_gamma_box_kept", "EpsilonGammaBox, rule weights kept"),
                             ("deeplift/rescale", "DeepLift")):
            att = [rs.get(f"{name}_b{batch}/{bench}") for _, rs in measured]
            times = [(e, f) for e, f in zip(att, fwd) if e and f]
            if times:
                e = statistics.median(e for e, _ in times)
                t = [e / f for e, f in times]
                print(f"| {name}, {batch} | {label} attribution / our forward | | {e * 1e3:.3f} ms | "
                      f"{statistics.median(t):.2f} (time ratio) |")
    for bench in ("attribute/epsilon_gamma_box", "deeplift/rescale"):
        key = f"small_b64/{bench}"
        pairs = [(rs[f"1thread:{key}"], rs[key]) for _, rs in rounds if rs.get(key) and rs.get(f"1thread:{key}")]
        if pairs:
            t1 = statistics.median(p for p, _ in pairs)
            t2 = statistics.median(q for _, q in pairs)
            print(f"| small, 64 | {bench}: {args.threads} threads vs 1 | | {t1 * 1e3:.3f} / {t2 * 1e3:.3f} ms "
                  f"| {fmt_ratio([p / q for p, q in pairs])} throughput |")
    if eval_time is not None:
        print(f"| digits, 100 | pixel flipping with uniform noise, 784 steps, MoRF | | {eval_time:.3f} s | |")
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
    print("\nRust details (per round):")
    for k, (_, rs) in enumerate(rounds):
        for b in sorted(rs):
            print(f"  round {k + 1} {b}: {rs[b] * 1e3:.4f} ms")
    print("Python details (per round):")
    for k, (py, _) in enumerate(rounds):
        for cfg, times in py.items():
            print(f"  round {k + 1} {cfg[0]} b{cfg[1]}: " + ", ".join(f"{n} {t * 1e3:.3f} ms" for n, t in times.items()))


if __name__ == "__main__":
    main()
