#!/usr/bin/env python3
"""Speed and memory of DeepLIFT-SHAP on bpnet-lite's BPNet count head: tangermeme against relevance.

Runs, on the same machine and the same thread count:
  * tangermeme 1.6.0 `deep_lift_shap(CountWrapper(BPNet(...)), X, references=R, hypothetical=True)`
    in float32 on CPU with torch.set_num_threads(THREADS), one sequence against 20 explicit random
    one-hot references (the shuffle is excluded on both sides: it is not the cost), and the
    plain PyTorch forward of the same sequence; peak resident memory of a fresh process each;
  * the Rust criterion bench `cargo bench -p relevance-benches --bench genomics` with
    RAYON_NUM_THREADS=THREADS (same shapes, its own seeded random weights: the cost does not
    depend on the values);
then prints seconds per sequence on each side, the ratio (tangermeme / relevance: > 1 means Rust
is faster) and the projected time for 330 000 regions (chrombpnet issue #166).

Shapes: "small" is BPNet(64 filters, 8 layers) on 1 000 bp; "chrombpnet" is BPNet(512 filters,
8 layers) on 2 114 bp, trimming 557 (ChromBPNet's input and output lengths).

Usage (from the repository root; a venv with torch, tangermeme==1.6.0, bpnet-lite==1.1.0):
    ~/venv/bin/python tools/bench_genomics.py [--threads 2] [--only small|chrombpnet] [--skip-rust]
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    "small": dict(filters=64, layers=8, length=1000, trimming=346),
    "chrombpnet": dict(filters=512, layers=8, length=2114, trimming=557),
}
REFERENCES = 20


def python_side(name, threads, repeats):
    """Runs in a child process (fresh peak memory): prints one JSON line."""
    import torch
    from bpnetlite.bpnet import BPNet, CountWrapper
    from tangermeme.deep_lift_shap import deep_lift_shap

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    s = SHAPES[name]
    trimming = s["trimming"]
    model = CountWrapper(BPNet(n_filters=s["filters"], n_layers=s["layers"], n_outputs=1,
                               n_control_tracks=0, trimming=trimming, verbose=False)).eval().float()
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, s["length"]), generator=g), 4).permute(0, 2, 1).float()
    refs = torch.nn.functional.one_hot(torch.randint(0, 4, (1, REFERENCES, s["length"]), generator=g), 4)
    refs = refs.permute(0, 1, 3, 2).float()
    with torch.no_grad():
        model(x)
        t = time.perf_counter()
        for _ in range(repeats):
            model(x)
        forward = (time.perf_counter() - t) / repeats
    deep_lift_shap(model, x, references=refs, hypothetical=True, device="cpu", batch_size=32)
    t = time.perf_counter()
    for _ in range(repeats):
        deep_lift_shap(model, x, references=refs, hypothetical=True, device="cpu", batch_size=32)
    dls = (time.perf_counter() - t) / repeats
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB on Linux
    print(json.dumps(dict(forward=forward, deep_lift_shap=dls, peak_mb=peak)))


def criterion_seconds(text, group, bench):
    m = re.search(re.escape(f"{group}/{bench}") + r"\s+time:\s+\[\S+ \S+ (\S+) (\S+)", text)
    if not m:
        return None
    value, unit = float(m.group(1)), m.group(2)
    return value * {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=sorted(SHAPES))
    ap.add_argument("--skip-rust", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.child:
        python_side(a.child, a.threads, a.repeats)
        return
    names = [a.only] if a.only else list(SHAPES)
    py = {}
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--threads", str(a.threads),
                              "--repeats", str(1 if name == "chrombpnet" else a.repeats)],
                             check=True, capture_output=True, text=True).stdout
        py[name] = json.loads(out.strip().splitlines()[-1])
        print(f"tangermeme {name}: {py[name]}", flush=True)
    rust = ""
    if not a.skip_rust:
        env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
        args = ["cargo", "bench", "-p", "relevance-benches", "--bench", "genomics"]
        if a.only == "small":
            args += ["--", "small"]
        elif a.only == "chrombpnet":
            args += ["--", "chrombpnet"]
        rust = subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    print(f"\n{a.threads} threads, float32, 1 sequence, {REFERENCES} references, hypothetical contributions")
    print("| model | tangermeme s/seq | relevance s/seq | ratio | 330 000 regions (relevance) | torch forward | relevance forward | tangermeme peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    group = {"small": "bpnet_small", "chrombpnet": "bpnet_chrombpnet"}
    for name in names:
        r = criterion_seconds(rust, group[name], "deep_lift_shap_20_refs")
        f = criterion_seconds(rust, group[name], "forward")
        p = py[name]
        ratio = f"{p['deep_lift_shap'] / r:.1f}×" if r else "-"
        hours = f"{330000 * r / 3600:.0f} h" if r else "-"
        print(f"| {name} | {p['deep_lift_shap']:.3f} | {r if r is None else f'{r:.3f}'} | {ratio} | {hours} | "
              f"{p['forward']:.4f} | {f if f is None else f'{f:.4f}'} | {p['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
